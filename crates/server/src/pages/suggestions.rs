//! The suggestions page (`/suggestions`): the records of every feedback form
//! (`x-form.feedback`), newest first, with their status and the handlers' reply, a
//! link to the generated form to submit a new one, and for the handlers (the roles
//! the form names, see `access.rs`) a reply and status form under each record.
//!
//! A reply changes the record through the engine's `Update`, as the record's edit
//! page does: the form's checks apply, and a change made meanwhile is refused.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use stagecraft_engine::{EngineError, Target};
use stagecraft_model::FeedbackRules;
use stagecraft_pack::{CompiledForm, Definitions};
use stagecraft_runtime::{Command, Record, Refusal};

use super::fields::{field_label, local_time};
use super::home::{form_title, record_title, visible_records};
use super::i18n::{notice, words};
use super::{
    Lang, Page, PageError, PageLang, Posted, Signed, blocking, checked_post, encode_component,
    see_other,
};
use crate::access::handles_feedback;
use crate::api::records::{Access, visible};
use crate::state::AppState;

/// How many records of each feedback form the page lists.
const LISTED: usize = 100;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "流程优化建议", "Process suggestions"),
    (
        "intro",
        "每个人都可以提出建议，也都能看到建议的处理状态和答复。",
        "Everyone may make a suggestion, and everyone sees where each stands and the reply.",
    ),
    ("new", "提交新建议", "Make a suggestion"),
    ("by", "提出人", "By"),
    ("status", "状态", "Status"),
    ("no_status", "新提交", "New"),
    ("reply", "答复", "Reply"),
    ("no_reply", "尚未答复", "No reply yet"),
    ("answer", "答复并更新状态", "Reply and set the status"),
    ("save", "保存答复", "Save the reply"),
    ("empty", "还没有建议。", "No suggestions yet."),
    ("more", "只列出了最新的一部分。", "Only the newest are listed."),
    ("no_forms", "当前的配置包没有声明反馈表单。", "The loaded packs declare no feedback form."),
    ("done_saved", "答复已保存。", "The reply is saved."),
    (
        "refused_stale",
        "这条建议刚被他人修改过，请查看最新内容后重新答复。",
        "Someone changed this suggestion meanwhile; read it again and reply again.",
    ),
    (
        "refused_invalid",
        "答复未保存：状态或答复内容不符合表单要求。",
        "Not saved: the status or the reply does not fit the form.",
    ),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/suggestions", get(page))
        .route("/suggestions/{form}/{id}/reply", post(reply))
}

async fn page(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    uri: axum::http::Uri,
) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    let notice = notice(&uri, WORDS);
    let built = blocking(move || {
        let definitions = state.engine().definitions();
        let w = words(l, WORDS);
        let forms: Vec<Value> = definitions
            .forms
            .values()
            .filter_map(|form| form.meta.feedback.as_ref().map(|rules| (form, rules)))
            .map(|(form, rules)| form_view(&state, &definitions, form, rules, &user, l))
            .collect();
        let notice = notice.map(|(refused, key)| {
            json!({"refused": refused, "text": w.get(&key).cloned().unwrap_or_default()})
        });
        Ok(json!({"title": l.pick("流程优化建议", "Process suggestions"), "w": w, "forms": forms, "notice": notice}))
    })
    .await;
    match built {
        Ok(data) => {
            Page::render(StatusCode::OK, "suggestions", lang, Some(&signed), "/suggestions", data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// The values of an `enum` field with their labels (`x-ui.options`) in a language.
fn options(form: &CompiledForm, field: &str, l: Lang) -> Vec<(Value, String)> {
    let node = form.schema.pointer(&format!("/properties/{field}"));
    let values = node.and_then(|node| node.get("enum")).and_then(Value::as_array);
    let labels = node
        .and_then(|node| node.pointer("/x-ui/options"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    values
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, value)| {
            let label = labels
                .get(index)
                .and_then(|label| {
                    serde_json::from_value::<stagecraft_model::Text>(label.clone()).ok()
                })
                .map(|text| l.text(&text))
                .unwrap_or_else(|| value.as_str().map_or_else(|| value.to_string(), str::to_owned));
            (value.clone(), label)
        })
        .collect()
}

/// The name of a person, else their id.
fn person(state: &AppState, user: &str) -> String {
    state
        .with_org(|org| org.user(user).map(|person| person.name.clone()))
        .unwrap_or_else(|| user.to_owned())
}

/// One feedback form's records. Blocking.
fn form_view(
    state: &AppState,
    definitions: &Definitions,
    form: &CompiledForm,
    rules: &FeedbackRules,
    user: &str,
    l: Lang,
) -> Value {
    let id = form.id.as_str();
    let (records, more) = visible_records(state, user, id, LISTED);
    let statuses = options(form, rules.status.as_str(), l);
    let text_of = |record: &Record, field: &str| {
        record.fields.get(field).and_then(Value::as_str).unwrap_or_default().to_owned()
    };
    // The fields that say what the suggestion is: the form's required text fields
    // besides the title (for the base pack: the problem and the suggestion).
    let body_fields: Vec<String> = form
        .required
        .iter()
        .map(|field| field.as_str().to_owned())
        .filter(|field| {
            form.meta.title_field.as_ref().is_none_or(|title| title.as_str() != field)
                && form.schema.pointer(&format!("/properties/{field}/enum")).is_none()
        })
        .collect();
    let items: Vec<Value> = records
        .iter()
        .map(|record| {
            let status = record.fields.get(rules.status.as_str());
            let status_label = status.and_then(|value| {
                statuses.iter().find(|(known, _)| known == value).map(|(_, label)| label.clone())
            });
            let body: Vec<Value> = body_fields
                .iter()
                .filter_map(|field| {
                    let text = text_of(record, field);
                    (!text.is_empty()).then(|| {
                        json!({"label": field_label(l, &form.schema, field), "text": text})
                    })
                })
                .collect();
            let handles = state.with_org(|org| handles_feedback(definitions, org, user, record));
            let choices: Vec<Value> = statuses
                .iter()
                .map(|(value, label)| {
                    json!({
                        "value": value.as_str().map_or_else(|| value.to_string(), str::to_owned),
                        "label": label,
                        "selected": Some(value) == status,
                    })
                })
                .collect();
            json!({
                "id": record.id,
                "href": format!("/ui/records/{id}/{}", encode_component(&record.id)),
                "title": record_title(definitions, record),
                "by": record.owner.as_deref().map(|owner| person(state, owner)),
                "at": local_time(record.created_at),
                "status": status_label,
                "status_value": status.and_then(Value::as_str),
                "body": body,
                "reply": text_of(record, rules.reply.as_str()),
                "reply_label": field_label(l, &form.schema, rules.reply.as_str()),
                "status_label": field_label(l, &form.schema, rules.status.as_str()),
                "handles": handles,
                "action": format!("/suggestions/{}/{}/reply", encode_component(id), encode_component(&record.id)),
                "version": record.version,
                "choices": choices,
            })
        })
        .collect();
    json!({
        "form": id,
        "title": form_title(definitions, id, l),
        "new_href": format!("/ui/records/{id}/new"),
        "items": items,
        "more": more,
    })
}

/// The fields a reply sets: the status (when one of the form's values) and the reply
/// text (empty clears it).
fn reply_fields(form: &CompiledForm, rules: &FeedbackRules, posted: &Posted) -> Map<String, Value> {
    let mut fields = Map::new();
    if let Some(chosen) = posted.get("status").filter(|chosen| !chosen.is_empty()) {
        let value = options(form, rules.status.as_str(), Lang::Zh)
            .into_iter()
            .map(|(value, _)| value)
            .find(|value| value.as_str() == Some(chosen))
            .unwrap_or_else(|| Value::String(chosen.to_owned()));
        fields.insert(rules.status.as_str().to_owned(), value);
    }
    let text = posted.get("reply").unwrap_or_default().trim();
    let reply = if text.is_empty() { Value::Null } else { Value::String(text.to_owned()) };
    fields.insert(rules.reply.as_str().to_owned(), reply);
    fields
}

async fn reply(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path((form, id)): Path<(String, String)>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let user = signed.user.clone();
    let outcome = blocking(move || {
        let definitions = state.engine().definitions();
        let compiled = definitions
            .forms
            .get(&stagecraft_model::Id::from(form.as_str()))
            .filter(|compiled| compiled.meta.feedback.is_some())
            .ok_or_else(PageError::not_found)?;
        let Some(rules) = compiled.meta.feedback.as_ref() else {
            return Err(PageError::not_found());
        };
        let record = visible(&state, &user, &form, &id, Access::Write)?;
        let version = posted
            .get("version")
            .and_then(|version| version.parse::<u64>().ok())
            .unwrap_or(record.version);
        let fields = reply_fields(compiled, rules, &posted);
        let command = Command::Update { expected_version: version, fields };
        Ok(state.engine().execute(Some(&user), Target::Existing(record.id), command, None))
    })
    .await;
    match outcome {
        Ok(Ok(_)) => see_other("/suggestions?done=saved"),
        Ok(Err(EngineError::Refused(Refusal::Stale { .. }) | EngineError::Conflict)) => {
            see_other("/suggestions?refused=stale")
        }
        Ok(Err(EngineError::Refused(Refusal::Invalid(_)))) => {
            see_other("/suggestions?refused=invalid")
        }
        Ok(Err(error)) => {
            PageError::from_problem(error.into()).page(lang, Some(&signed)).into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::WORDS;

    #[test]
    fn every_word_has_both_languages_once() {
        let mut keys: Vec<&str> = WORDS.iter().map(|(key, _, _)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), WORDS.len());
        assert!(WORDS.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
    }
}
