//! The pool page (`/pool`): for every form with `x-form.pool`, the records nobody
//! owns, each with a claim button, then the person's own records of the form with a
//! release button, when each goes back to the pool unless someone works on it, and
//! how many they own of the most they may.
//!
//! Claims and releases go through the same functions as the JSON API
//! (`api/pool.rs`); after one the page comes back with a notice (`?done=`), or with
//! why not (`?refused=`).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use stagecraft_pack::{CompiledForm, Definitions};
use stagecraft_runtime::{Record, returns_to_pool_at};
use stagecraft_store::{IndexValue, Page as StorePage};

use super::fields::{self, Ctx, LinkTitles, local_time};
use super::home::{form_title, record_title};
use super::i18n::{notice, words};
use super::{
    Lang, Page, PageError, PageLang, Posted, Signed, blocking, checked_post, encode_component,
    see_other,
};
use crate::api::pool::{PoolError, claim_record, release_record, unowned};
use crate::state::AppState;

/// How many unowned records of a form the page lists.
const LISTED: usize = 50;
/// How many indexed fields a listed record shows besides its title.
const SHOWN_FIELDS: usize = 3;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "客户池", "Customer pool"),
    (
        "intro",
        "无人负责的记录在这里，任何人都可以认领；长期没有跟进的记录会自动退回。",
        "Records nobody owns wait here for anyone to claim; records nobody works on go back by themselves.",
    ),
    ("unowned", "待认领", "Waiting to be claimed"),
    ("mine", "我负责的", "Mine"),
    ("claim", "认领", "Claim"),
    ("release", "释放", "Release"),
    ("last_activity", "最近跟进", "Last activity"),
    (
        "returns_on",
        "如无跟进，将于以下时间退回：",
        "Returns to the pool unless there is activity by ",
    ),
    ("owned", "已负责", "Owned"),
    ("no_limit", "不限", "no limit"),
    ("pool_empty", "池中暂时没有记录。", "The pool is empty."),
    ("mine_empty", "您还没有负责的记录。", "You own none yet."),
    ("more", "还有更多记录未列出。", "There are more records than listed here."),
    ("no_pools", "当前的配置包没有定义客户池。", "The loaded packs define no pool."),
    ("done_claimed", "认领成功，记录已归您负责。", "Claimed: the record is yours now."),
    ("done_released", "已释放，记录回到了池中。", "Released: the record is back in the pool."),
    (
        "refused_owned",
        "该记录已有负责人，不能认领。",
        "The record has an owner; it cannot be claimed.",
    ),
    ("refused_mine", "您已经负责这条记录了。", "You own this record already."),
    (
        "refused_limit",
        "您负责的记录已达上限，请先释放一些再认领。",
        "You own as many records as one person may; release one before claiming another.",
    ),
    ("refused_in_pool", "该记录已在池中。", "The record is in the pool already."),
    ("refused_no_pool", "该表单没有客户池。", "This form has no pool."),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/pool", get(page))
        .route("/pool/{form}/{id}/claim", post(claim))
        .route("/pool/{form}/{id}/release", post(release))
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
        let pools: Vec<Value> = definitions
            .forms
            .values()
            .filter(|form| form.meta.pool.is_some())
            .map(|form| pool_view(&state, &definitions, form, &user, l))
            .collect::<Result<_, _>>()?;
        let notice = notice.map(|(refused, key)| {
            json!({"refused": refused, "text": w.get(&key).cloned().unwrap_or_default()})
        });
        Ok(json!({
            "title": l.pick("客户池", "Customer pool"),
            "w": w,
            "pools": pools,
            "notice": notice,
        }))
    })
    .await;
    match built {
        Ok(data) => {
            Page::render(StatusCode::OK, "pool", lang, Some(&signed), "/pool", data).into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// One form's pool and the person's records of it. Blocking.
fn pool_view(
    state: &AppState,
    definitions: &Definitions,
    form: &CompiledForm,
    user: &str,
    l: Lang,
) -> Result<Value, PageError> {
    let id = form.id.as_str();
    let (waiting, next) = unowned(state, id, None, LISTED)?;
    let mine = owned_by(state, id, user)?;
    let max = form.meta.pool.as_ref().and_then(|pool| pool.max_per_owner);
    let item = |record: &Record, action: &str| {
        json!({
            "id": record.id,
            "href": format!("/ui/records/{}/{}", record.form, encode_component(&record.id)),
            "title": record_title(definitions, record),
            "fields": shown_fields(form, record, l),
            "last_activity": local_time(record.last_activity_at),
            "returns_on": returns_to_pool_at(definitions, record).map(local_time),
            "action": format!(
                "/pool/{}/{}/{action}",
                encode_component(id),
                encode_component(&record.id)
            ),
        })
    };
    Ok(json!({
        "form": id,
        "title": form_title(definitions, id, l),
        "new_href": format!("/ui/records/{id}/new"),
        "unowned": waiting.iter().map(|record| item(record, "claim")).collect::<Vec<_>>(),
        "more": next.is_some(),
        "mine": mine.iter().map(|record| item(record, "release")).collect::<Vec<_>>(),
        "owned": mine.len(),
        "max": max,
    }))
}

/// The records of `form` that `user` owns, oldest first. Blocking.
fn owned_by(state: &AppState, form: &str, user: &str) -> Result<Vec<Record>, PageError> {
    let engine = state.engine();
    let owner = IndexValue::from(user);
    let mut records = Vec::new();
    let mut page = StorePage::first(500);
    loop {
        let ids = engine
            .store()
            .records_by_index(form, "owner", &owner, page.clone())
            .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))?;
        for id in &ids {
            if let Some(record) =
                engine.record(id.as_str()).map_err(crate::problem::Problem::from)?
            {
                records.push(record);
            }
        }
        match ids.last() {
            Some(last) if ids.len() == page.limit => page = StorePage::after(last.clone(), 500),
            _ => return Ok(records),
        }
    }
}

/// A few indexed fields of a record (not its owner or title), as label and words.
fn shown_fields(form: &CompiledForm, record: &Record, l: Lang) -> Vec<Value> {
    let (links, files) = (BTreeMap::new(), BTreeMap::new());
    let ctx = Ctx { lang: l, root: &form.schema, links: &links, people: &[], files: &files };
    let wanted: Vec<&str> = form
        .meta
        .indexes
        .iter()
        .map(|field| field.as_str())
        .filter(|field| {
            *field != "owner"
                && form.meta.title_field.as_ref().is_none_or(|title| title.as_str() != *field)
                && form
                    .fields
                    .get(&stagecraft_model::FieldName(field.to_string()))
                    .is_some_and(|info| info.link.is_none())
        })
        .collect();
    let shown = serde_json::to_value(fields::display(&ctx, &record.fields, &LinkTitles::new()))
        .unwrap_or(Value::Null);
    let mut out: Vec<Value> = shown
        .as_array()
        .into_iter()
        .flatten()
        .filter(|view| {
            let name = view.get("name").and_then(Value::as_str).unwrap_or_default();
            let text = view.get("text").and_then(Value::as_str).unwrap_or_default();
            let filled = record.fields.get(name).is_some_and(|value| !value.is_null());
            wanted.contains(&name) && filled && !text.is_empty()
        })
        .map(|view| json!({"label": view.get("label"), "text": view.get("text")}))
        .collect();
    out.truncate(SHOWN_FIELDS);
    out
}

/// Claim and release: check the form's token, run, come back with a notice.
async fn act(
    state: AppState,
    lang: PageLang,
    signed: Signed,
    (form, id): (String, String),
    posted: Result<Posted, super::BadBody>,
    claim: bool,
) -> Response {
    if let Err(refused) = checked_post(posted, &signed, lang) {
        return refused;
    }
    let user = signed.user.clone();
    let outcome = blocking(move || {
        Ok(if claim {
            claim_record(&state, &user, &form, &id)
        } else {
            release_record(&state, &user, &form, &id)
        })
    })
    .await;
    let back = |query: &str| see_other(&format!("/pool?{query}"));
    match outcome {
        Ok(Ok(_)) if claim => back("done=claimed"),
        Ok(Ok(_)) => back("done=released"),
        Ok(Err(PoolError::Owned { mine: true, .. })) => back("refused=mine"),
        Ok(Err(PoolError::Owned { mine: false, .. })) => back("refused=owned"),
        Ok(Err(PoolError::Limit { .. })) => back("refused=limit"),
        Ok(Err(PoolError::InPool)) => back("refused=in_pool"),
        Ok(Err(PoolError::NoPool(_))) => back("refused=no_pool"),
        Ok(Err(PoolError::Other(problem))) => {
            PageError::from_problem(problem).page(lang, Some(&signed)).into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

async fn claim(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(target): Path<(String, String)>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    act(state, lang, signed, target, posted, true).await
}

async fn release(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(target): Path<(String, String)>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    act(state, lang, signed, target, posted, false).await
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
