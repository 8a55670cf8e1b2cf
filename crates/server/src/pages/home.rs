//! The workbench: my open tasks, what I can create, and my records per form.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Record, Task};

use super::{Lang, Page, PageLang, Signed, blocking, fields::local_time};
use crate::access::sees_by_org;
use crate::api::records::{Access, visible};
use crate::api::tasks::open_tasks;
use crate::state::AppState;

/// How many records of each form the workbench lists.
const LISTED: usize = 10;
/// How many record ids of a form are looked at to find the ones a person may see.
const SCANNED: usize = 2000;

/// The records of a form that `user` may see, newest first, at most `limit`, among
/// the first [`SCANNED`] of the form. Blocking.
pub(crate) fn visible_records(
    state: &AppState,
    user: &str,
    form: &str,
    limit: usize,
) -> (Vec<Record>, bool) {
    visible_records_where(state, user, form, limit, |_| true)
}

/// [`visible_records`], keeping only those `keep` accepts. Blocking.
pub(crate) fn visible_records_where(
    state: &AppState,
    user: &str,
    form: &str,
    limit: usize,
    keep: impl Fn(&Record) -> bool,
) -> (Vec<Record>, bool) {
    let store = state.engine().store();
    let mut ids = Vec::new();
    let mut page = stagecraft_store::Page::first(500);
    while ids.len() < SCANNED {
        let Ok(batch) = store.records_of_form(form, page.clone()) else { break };
        let Some(last) = batch.last().cloned() else { break };
        let full = batch.len() == page.limit;
        ids.extend(batch);
        if !full {
            break;
        }
        page = stagecraft_store::Page::after(last, 500);
    }
    // Ids are ordered by creation time: the newest are last.
    let mut records = Vec::new();
    let mut more = false;
    for id in ids.iter().rev() {
        if let Ok(record) = visible(state, user, form, id.as_str(), Access::Read) {
            if !keep(&record) {
                continue;
            }
            if records.len() == limit {
                more = true;
                break;
            }
            records.push(record);
        }
    }
    (records, more)
}

/// A record's name: its form's title field, else its id.
pub(crate) fn record_title(definitions: &Definitions, record: &Record) -> String {
    definitions
        .forms
        .get(&record.form)
        .and_then(|form| form.meta.title_field.as_ref())
        .and_then(|field| record.fields.get(field.as_str()))
        .and_then(|value| match value {
            Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| record.id.clone())
}

/// The title of a form in a language.
pub(crate) fn form_title(definitions: &Definitions, form: &str, lang: Lang) -> String {
    definitions
        .forms
        .get(&stagecraft_model::Id::from(form))
        .and_then(|form| form.meta.title.as_ref())
        .map(|title| lang.text(title))
        .unwrap_or_else(|| form.to_owned())
}

/// The title of a record's stage, if a flow drives it.
pub(crate) fn stage_title(definitions: &Definitions, record: &Record, lang: Lang) -> String {
    let Some(flow) = record.flow.as_ref() else { return String::new() };
    definitions
        .flows
        .get(&flow.flow)
        .and_then(|file| file.stages.iter().find(|stage| stage.id == flow.stage))
        .map(|stage| lang.text(&stage.title))
        .unwrap_or_else(|| flow.stage.to_string())
}

/// Forms people create themselves: every form, except those whose flow only starts
/// from another flow (`start_on_create: false`, e.g. a contract that a deal opens).
pub(crate) fn creatable_forms(definitions: &Definitions) -> Vec<String> {
    definitions
        .forms
        .keys()
        .filter(|form| {
            !definitions
                .flows
                .values()
                .any(|flow| &flow.form == *form && flow.start_on_create == Some(false))
        })
        .map(|form| form.to_string())
        .collect()
}

pub(crate) async fn home(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    // The first visit shows the walkthrough, once.
    let (checking, who) = (state.clone(), user.clone());
    if blocking(move || Ok(super::onboarding::first_visit(&checking, &who))).await.unwrap_or(false)
    {
        // A language chosen in the address goes along.
        let query = if lang.chosen { format!("?lang={}", l.code()) } else { String::new() };
        return super::see_other(&format!("/welcome{query}"));
    }
    let built = blocking(move || {
        let definitions = state.engine().definitions();
        let tasks: Vec<Value> = open_tasks(&state, &user)?
            .into_iter()
            .filter_map(|stored| {
                let task: Task = serde_json::from_value(stored.data).ok()?;
                let record = state.engine().record(&task.record).ok().flatten()?;
                Some(json!({
                    "title": l.text(&task.title),
                    "href": format!("/ui/records/{}/{}", record.form, record.id),
                    "record": format!(
                        "{}：{}",
                        form_title(&definitions, record.form.as_str(), l),
                        record_title(&definitions, &record)
                    ),
                    "due": stored.due_ms.map(local_time).unwrap_or_default(),
                }))
            })
            .collect();
        let creatable: Vec<Value> = creatable_forms(&definitions)
            .into_iter()
            .map(|form| {
                json!({
                    "href": format!("/ui/records/{form}/new"),
                    "label": format!("{}{}", l.pick("新建", "New "), form_title(&definitions, &form, l)),
                })
            })
            .collect();
        let mut lists = Vec::new();
        for form in definitions.forms.keys() {
            // "My records" are those the org gives the person (own, the team's), not
            // the customer pool or the company-wide feedback everyone may read.
            let (records, more) = visible_records_where(&state, &user, form.as_str(), LISTED, |r| {
                state.with_org(|org| sees_by_org(&definitions, org, &user, r))
            });
            if records.is_empty() {
                continue;
            }
            let records: Vec<Value> = records
                .iter()
                .map(|record| {
                    json!({
                        "href": format!("/ui/records/{}/{}", record.form, record.id),
                        "title": record_title(&definitions, record),
                        "stage": stage_title(&definitions, record, l),
                    })
                })
                .collect();
            lists.push(json!({
                "title": form_title(&definitions, form.as_str(), l),
                "records": records,
                "more": more,
            }));
        }
        Ok(json!({
            "title": l.pick("工作台", "Workbench"),
            "tasks": tasks,
            "creatable": creatable,
            "lists": lists,
        }))
    })
    .await;
    match built {
        Ok(data) => {
            Page::render(StatusCode::OK, "home", lang, Some(&signed), "/ui", data).into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}
