//! `GET /customers/{id}`: one record and everything around it, on one page (the
//! "360° view" of a customer, but generic: any record that others link to). The
//! records that link to it through an indexed `x-link` field, and those that link to
//! them (one more hop: a contract of a deal of the customer), grouped by form; one
//! timeline of all their events, newest first, with who and when; their files. Only
//! what the person may see: the record itself answers 404 otherwise.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use stagecraft_model::Id;
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Event, Record};
use stagecraft_store::{IndexValue, RecordId};

use super::fields::{Ctx, LinkTitles, field_label, local_time};
use super::home::{form_title, record_title, stage_title};
use super::i18n::words;
use super::todos::person_name;
use super::{Lang, Page, PageError, PageLang, Signed, blocking, encode_component};
use crate::api::files;
use crate::api::records::{Access, visible};
use crate::state::AppState;

/// How many linked records the page gathers at most.
const RELATED: usize = 400;
/// How many events the timeline shows.
const TIMELINE: usize = 300;
/// How many fields a related record shows besides its title.
const KEY_FIELDS: usize = 3;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("overview", "全景视图", "360° view"),
    ("profile", "基本信息", "Profile"),
    ("related", "相关记录", "Related records"),
    ("timeline", "动态时间线", "Timeline"),
    ("files", "文件", "Files"),
    ("no_related", "暂无相关记录。", "No related records yet."),
    ("no_files", "暂无文件。", "No files yet."),
    ("no_events", "暂无动态。", "Nothing has happened yet."),
    ("owner", "负责人", "Owner"),
    ("stage", "阶段", "Stage"),
    ("open_record", "打开记录", "Open the record"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/customers/{id}", get(show))
}

/// The indexed link fields of other forms that point to `form`: (form, field).
fn links_to(definitions: &Definitions, form: &Id) -> Vec<(Id, String)> {
    definitions
        .forms
        .iter()
        .flat_map(|(id, compiled)| {
            compiled
                .fields
                .iter()
                .filter(|(_, info)| info.indexed && info.link.as_ref() == Some(form))
                .map(|(field, _)| (id.clone(), field.0.clone()))
        })
        .collect()
}

/// The overview page of a record that other forms link to, else nothing: the record
/// page links to it.
pub(crate) fn overview_href(definitions: &Definitions, record: &Record) -> String {
    if links_to(definitions, &record.form).is_empty() {
        String::new()
    } else {
        format!("/customers/{}", encode_component(&record.id))
    }
}

/// The visible records of `form` whose `field` holds `id`. Blocking.
fn linking(state: &AppState, user: &str, form: &Id, field: &str, id: &str) -> Vec<Record> {
    let ids = state
        .engine()
        .store()
        .records_by_index(
            form.as_str(),
            field,
            &IndexValue::from(id),
            stagecraft_store::Page::first(RELATED),
        )
        .unwrap_or_default();
    ids.iter()
        .filter_map(|linked| {
            visible(state, user, form.as_str(), linked.as_str(), Access::Read).ok()
        })
        .collect()
}

/// The records linking to `record`, and those linking to them, without repeats.
/// Blocking.
fn related(
    state: &AppState,
    user: &str,
    definitions: &Definitions,
    record: &Record,
) -> Vec<Record> {
    let mut seen: BTreeSet<String> = BTreeSet::from([record.id.clone()]);
    let mut first = Vec::new();
    for (form, field) in links_to(definitions, &record.form) {
        for linked in linking(state, user, &form, &field, &record.id) {
            if seen.insert(linked.id.clone()) {
                first.push(linked);
            }
        }
    }
    let mut second = Vec::new();
    for near in &first {
        for (form, field) in links_to(definitions, &near.form) {
            for linked in linking(state, user, &form, &field, &near.id) {
                if seen.len() < RELATED && seen.insert(linked.id.clone()) {
                    second.push(linked);
                }
            }
        }
    }
    first.extend(second);
    first.truncate(RELATED);
    first
}

/// Whether a record holds a value in a field (not nothing, an empty text or list).
fn filled(record: &Record, field: &str) -> bool {
    match record.fields.get(field) {
        None | Some(Value::Null) => false,
        Some(Value::String(text)) => !text.trim().is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
        Some(_) => true,
    }
}

/// A few filled-in fields of a record as people read them, leaving out its title,
/// links and files.
fn key_fields(definitions: &Definitions, record: &Record, l: Lang) -> Vec<Value> {
    let Some(compiled) = definitions.forms.get(&record.form) else { return Vec::new() };
    let (links, files) = (BTreeMap::new(), BTreeMap::new());
    let ctx = Ctx { lang: l, root: &compiled.schema, links: &links, people: &[], files: &files };
    let title = compiled.meta.title_field.as_ref().map(|field| field.0.as_str());
    let shown =
        serde_json::to_value(super::fields::display(&ctx, &record.fields, &LinkTitles::new()))
            .unwrap_or(Value::Null);
    shown
        .as_array()
        .into_iter()
        .flatten()
        .filter(|view| {
            let name = view.get("name").and_then(Value::as_str).unwrap_or_default();
            let info =
                compiled.fields.iter().find(|(field, _)| field.0 == name).map(|(_, info)| info);
            Some(name) != title
                && info.is_some_and(|info| info.link.is_none() && !info.file && !info.user)
                && filled(record, name)
        })
        .take(KEY_FIELDS)
        .map(|view| json!({"label": view.get("label"), "text": view.get("text")}))
        .collect()
}

/// The files of a record's file fields that the person may see.
fn files_of(
    state: &AppState,
    user: &str,
    definitions: &Definitions,
    record: &Record,
    l: Lang,
) -> Vec<Value> {
    let Some(compiled) = definitions.forms.get(&record.form) else { return Vec::new() };
    let mut out = Vec::new();
    for (field, _) in compiled.fields.iter().filter(|(_, info)| info.file) {
        let ids: Vec<String> = match record.fields.get(field.0.as_str()) {
            Some(Value::String(id)) => vec![id.clone()],
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        };
        for id in ids {
            let Ok(Some(file)) = files::file_info(state, &id) else { continue };
            if files::may_see(state, user, &file).unwrap_or(false) {
                out.push(json!({
                    "name": file.name,
                    "href": format!("/api/files/{}", encode_component(&id)),
                    "field": field_label(l, &compiled.schema, &field.0),
                    "record": record_title(definitions, record),
                    "record_href": format!("/ui/records/{}/{}", record.form, record.id),
                }));
            }
        }
    }
    out
}

/// One event in words, for the timeline: as the record page tells it.
fn describe(
    l: Lang,
    state: &AppState,
    definitions: &Definitions,
    record: &Record,
    data: &Value,
) -> String {
    let form = definitions.forms.get(&record.form);
    let (Ok(event), Some(form)) = (serde_json::from_value::<Event>(data.clone()), form) else {
        return l.pick("记录有更新", "Updated").to_owned();
    };
    let flow = record.flow.as_ref().and_then(|state| definitions.flows.get(&state.flow));
    let person = |user: &str| person_name(state, user);
    super::records::describe(l, definitions, flow, &form.schema, &person, &event)
}

/// Everything the page shows. Blocking.
fn overview(state: &AppState, user: &str, id: &str, l: Lang) -> Result<Value, PageError> {
    let found = state.engine().record(id).ok().flatten().ok_or_else(PageError::not_found)?;
    let record = visible(state, user, found.form.as_str(), id, Access::Read)
        .map_err(|_| PageError::not_found())?;
    let definitions = state.engine().definitions();
    let related = related(state, user, &definitions, &record);

    let mut groups: Vec<(Id, Vec<Value>)> = Vec::new();
    for linked in &related {
        let item = json!({
            "id": linked.id,
            "title": record_title(&definitions, linked),
            "href": format!("/ui/records/{}/{}", linked.form, linked.id),
            "stage": stage_title(&definitions, linked, l),
            "owner": linked.owner.as_deref().map(|owner| person_name(state, owner)).unwrap_or_default(),
            "fields": key_fields(&definitions, linked, l),
        });
        match groups.iter_mut().find(|(form, _)| *form == linked.form) {
            Some((_, items)) => items.push(item),
            None => groups.push((linked.form.clone(), vec![item])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(form, items)| {
            json!({
                "form": form.to_string(),
                "title": form_title(&definitions, form.as_str(), l),
                "count": items.len(),
                "records": items,
            })
        })
        .collect();

    let everyone: Vec<&Record> = std::iter::once(&record).chain(related.iter()).collect();
    let mut events = Vec::new();
    for each in &everyone {
        let stored =
            state.engine().store().events_of(&RecordId::new(each.id.clone())).unwrap_or_default();
        // A linked record's activity is listed itself; its echo on this one is not.
        events.extend(
            stored.into_iter().filter(|event| event.kind != "touched").map(|event| (*each, event)),
        );
    }
    events.sort_by_key(|(_, event)| std::cmp::Reverse((event.at_ms, event.sequence)));
    let timeline: Vec<Value> = events
        .iter()
        .take(TIMELINE)
        .map(|(each, event)| {
            let by = event.data.get("by").and_then(Value::as_str);
            json!({
                "at": local_time(event.at_ms),
                "who": by.map(|by| person_name(state, by)).unwrap_or_default(),
                "form": form_title(&definitions, each.form.as_str(), l),
                "record": record_title(&definitions, each),
                "href": format!("/ui/records/{}/{}", each.form, each.id),
                "text": describe(l, state, &definitions, each, &event.data),
            })
        })
        .collect();
    let files: Vec<Value> =
        everyone.iter().flat_map(|each| files_of(state, user, &definitions, each, l)).collect();

    let compiled = definitions.forms.get(&record.form).ok_or_else(PageError::not_found)?;
    let (links, file_names) = (BTreeMap::new(), BTreeMap::new());
    let ctx =
        Ctx { lang: l, root: &compiled.schema, links: &links, people: &[], files: &file_names };
    let profile = super::fields::display(&ctx, &record.fields, &LinkTitles::new());
    let profile: Vec<Value> = serde_json::to_value(profile)
        .ok()
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|view| {
            filled(&record, view.get("name").and_then(Value::as_str).unwrap_or_default())
        })
        .map(|view| {
            let mut kept = Map::new();
            for key in ["name", "label", "text"] {
                kept.insert(key.to_owned(), view.get(key).cloned().unwrap_or_default());
            }
            Value::Object(kept)
        })
        .collect();

    let name = record_title(&definitions, &record);
    let w = words(l, WORDS);
    Ok(json!({
        "title": format!("{}：{name}", w.get("overview").and_then(Value::as_str).unwrap_or_default()),
        "w": w,
        "name": name,
        "form_title": form_title(&definitions, record.form.as_str(), l),
        "href": format!("/ui/records/{}/{}", record.form, record.id),
        "owner": record.owner.as_deref().map(|owner| person_name(state, owner)).unwrap_or_default(),
        "stage": stage_title(&definitions, &record, l),
        "profile": profile,
        "groups": groups,
        "timeline": timeline,
        "files": files,
    }))
}

async fn show(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    let switch = format!("/customers/{}", encode_component(&id));
    let built = blocking(move || overview(&state, &user, &id, l)).await;
    match built {
        Ok(data) => Page::render(StatusCode::OK, "customer", lang, Some(&signed), &switch, data)
            .into_response(),
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
        assert_eq!(keys.len(), WORDS.len(), "a key is listed twice");
        assert!(WORDS.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
    }
}
