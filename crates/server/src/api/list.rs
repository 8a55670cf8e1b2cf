//! Listing the records of a form: filters on indexed fields, pages with an opaque
//! cursor, and only the records the caller may read.
//!
//! Authorization is part of the query: records the caller may not read are skipped
//! while scanning, and the scan goes on until the page is full or the form's records
//! run out, so a rep who sees 3 of 1000 deals still gets their 3 on the first page.
//! One request looks at no more than [`MAX_SCANNED`] records; when it stops there, the
//! answer carries a cursor to go on from, even if the page is not full (or empty).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use stagecraft_model::Id;
use stagecraft_pack::{CompiledForm, Definitions};
use stagecraft_runtime::Record;
use stagecraft_store::{IndexValue, Page, RecordId, StoreError};

use super::records::known_form;
use super::{blocking, query};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// Records per page unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub(crate) const MAX_LIMIT: usize = 200;
/// The most records one request looks at.
pub(crate) const MAX_SCANNED: usize = 2_000;
/// Ids read from the store at a time.
const BATCH: usize = 200;

/// A page of records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RecordPage {
    /// The records, as `GET /api/records/{form}/{id}` gives them: by creation time, or
    /// by id when filtered.
    records: Vec<Record>,
    /// The cursor of the next page, or `null` when there is none.
    next: Option<String>,
}

/// The paging parameters of a listing; every other parameter is a filter.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Records per page, 1 to 200 (default 50).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// The fields a form's records can be filtered on: its indexed fields (`x-form.indexes`),
/// its link fields (always indexed), `owner` when records have owners, and `stage`
/// when a flow drives the form.
pub(crate) fn filterable(definitions: &Definitions, form: &CompiledForm) -> Vec<String> {
    let mut fields: Vec<String> = form
        .fields
        .iter()
        .filter(|(_, info)| info.indexed || info.link.is_some())
        .map(|(name, _)| name.as_str().to_owned())
        .collect();
    if form.meta.owned != Some(false) {
        fields.push("owner".to_owned());
    }
    if definitions.flows.values().any(|flow| flow.form == form.id) {
        fields.push("stage".to_owned());
    }
    fields.sort();
    fields.dedup();
    fields
}

/// The value a filter looks for, read as the field's type says.
fn filter_value(
    definitions: &Definitions,
    form: &CompiledForm,
    field: &str,
    text: &str,
) -> Result<IndexValue, Problem> {
    if field == "owner" {
        return Ok(IndexValue::from(text));
    }
    if field == "stage" {
        let stages: Vec<&str> = definitions
            .flows
            .values()
            .filter(|flow| flow.form == form.id)
            .flat_map(|flow| flow.stages.iter().map(|stage| stage.id.as_str()))
            .collect();
        if stages.contains(&text) {
            return Ok(IndexValue::from(text));
        }
        return Err(Problem::bad_request(format!(
            "`{text}` is not a stage of the flows of form `{}`; the stages are: {}",
            form.id,
            stages.join(", ")
        )));
    }
    let types: &[String] = form
        .fields
        .iter()
        .find(|(name, _)| name.as_str() == field)
        .map_or(&[], |(_, info)| &info.types);
    let has = |kind: &str| types.iter().any(|declared| declared == kind);
    if has("integer") || has("number") {
        if let Ok(integer) = text.parse::<i64>() {
            return Ok(IndexValue::Int(integer));
        }
        if let Some(number) =
            text.parse::<f64>().ok().filter(|number| number.is_finite() && has("number"))
        {
            return Ok(IndexValue::Float(number));
        }
    }
    if has("boolean") {
        match text {
            "true" => return Ok(IndexValue::Bool(true)),
            "false" => return Ok(IndexValue::Bool(false)),
            _ => {}
        }
    }
    if has("null") && text == "null" {
        return Ok(IndexValue::Null);
    }
    if types.is_empty() || has("string") {
        return Ok(IndexValue::from(text));
    }
    Err(Problem::bad_request(format!(
        "`{field}` holds {}; `{text}` is not one",
        match types.first().map(String::as_str) {
            Some("integer") => "whole numbers",
            Some("number") => "numbers",
            Some("boolean") => "`true` or `false`",
            _ => "values of another type",
        }
    )))
}

/// The cursor of a page that ends after `id`: its bytes in hexadecimal.
pub(crate) fn cursor_of(id: &RecordId) -> String {
    id.as_str().bytes().map(|byte| format!("{byte:02x}")).collect()
}

fn bad_cursor() -> Problem {
    Problem::bad_request(
        "the cursor is not one this listing gave; ask for the first page again, without `cursor`",
    )
}

pub(crate) fn record_after(cursor: &str) -> Result<RecordId, Problem> {
    if cursor.is_empty() || cursor.len() % 2 != 0 || cursor.len() > 1024 {
        return Err(bad_cursor());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(cursor.get(at..at + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad_cursor())?;
    String::from_utf8(bytes).map(RecordId::new).map_err(|_| bad_cursor())
}

/// A listing, as asked for.
#[derive(Debug)]
struct Listing {
    limit: usize,
    after: Option<RecordId>,
    /// `(field, value)` pairs, all of which a record must have.
    filters: Vec<(String, IndexValue)>,
}

fn listing(state: &AppState, form: &str, raw: Option<&str>) -> Result<Listing, Problem> {
    let definitions = state.engine().definitions();
    let compiled = definitions
        .forms
        .get(&Id::from(form))
        .ok_or_else(|| Problem::not_found(format!("there is no form `{form}`")))?;
    let allowed = filterable(&definitions, compiled);
    let mut paging = ListQuery::default();
    let mut filters: Vec<(String, IndexValue)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in query::pairs(raw)? {
        if seen.contains(&name) {
            return Err(Problem::bad_request(format!(
                "give `{name}` once; a listing filters on one value per field"
            )));
        }
        seen.push(name.clone());
        match name.as_str() {
            "limit" => {
                let limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|limit| (1..=MAX_LIMIT as u32).contains(limit))
                    .ok_or_else(|| {
                        Problem::bad_request(format!(
                            "`limit` must be a whole number from 1 to {MAX_LIMIT}, not `{value}`"
                        ))
                    })?;
                paging.limit = Some(limit);
            }
            "cursor" => paging.cursor = Some(value),
            field if allowed.iter().any(|known| known == field) => {
                let value = filter_value(&definitions, compiled, field, &value)?;
                filters.push((field.to_owned(), value));
            }
            field => {
                let why = if compiled.fields.keys().any(|known| known.as_str() == field) {
                    format!("`{field}` is a field of form `{form}`, but not one lists filter on")
                } else {
                    format!("`{field}` is not a field of form `{form}`")
                };
                return Err(Problem::bad_request(format!(
                    "{why}; filter on {} (or page with `limit` and `cursor`)",
                    allowed.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    // The index scanned is the first filter on a field of the form, else `stage`, else
    // `owner`: fixed by the filters, not their order, so a cursor means the same
    // thing on every page.
    filters.sort_by_key(|(field, _)| (field == "owner", field == "stage", field.clone()));
    Ok(Listing {
        limit: paging.limit.map_or(DEFAULT_LIMIT, |limit| limit as usize),
        after: paging.cursor.as_deref().map(record_after).transpose()?,
        filters,
    })
}

/// Scans for the records of `form` the caller may read, as the listing asks. Blocking.
fn scan(state: &AppState, user: &str, form: &str, listing: Listing) -> Result<RecordPage, Problem> {
    let store = state.engine().store();
    let Listing { limit, mut after, filters } = listing;
    let mut records = Vec::new();
    let mut scanned = 0;
    loop {
        let wanted = BATCH.min(MAX_SCANNED - scanned);
        let page = Page { after: after.clone(), limit: wanted };
        let ids = match filters.first() {
            Some((field, value)) => store.records_by_index(form, field, value, page),
            None => store.records_of_form(form, page),
        }
        .map_err(|error| match error {
            StoreError::UnknownRecord(_) => bad_cursor(),
            other => Problem::failure(&other),
        })?;
        let exhausted = ids.len() < wanted;
        for (position, id) in ids.iter().enumerate() {
            scanned += 1;
            after = Some(id.clone());
            let Some(stored) = store.record(id).map_err(|error| Problem::failure(&error))? else {
                continue;
            };
            let matches = stored.form == form
                && filters.iter().skip(1).all(|(field, value)| {
                    stored.index.iter().any(|entry| entry.field == *field && entry.value == *value)
                });
            if !matches {
                continue;
            }
            let record: Record = serde_json::from_value(stored.value).map_err(|error| {
                Problem::failure(&format!("stored record {id} cannot be read: {error}"))
            })?;
            if !state.may_read(user, &record) {
                continue;
            }
            records.push(record);
            if records.len() == limit {
                let last_there_is = exhausted && position + 1 == ids.len();
                let next = (!last_there_is).then(|| cursor_of(id));
                return Ok(RecordPage { records, next });
            }
        }
        if exhausted {
            return Ok(RecordPage { records, next: None });
        }
        if scanned >= MAX_SCANNED {
            return Ok(RecordPage { records, next: after.as_ref().map(cursor_of) });
        }
    }
}

/// Lists the records of a form that the caller may read, a page at a time. Every
/// query parameter besides `limit` and `cursor` is a filter `<field>=<value>` on an
/// indexed field of the form, a link field, `owner` or `stage`
/// (`GET /api/forms/{form}` lists them); the value is read as the field's type.
/// Without filters records come by creation time, with filters by id. A page may be
/// short (even empty) with a `next` cursor when the request looked at 2000 records
/// without filling it; go on with `next` until it is `null`.
#[utoipa::path(get, path = "/api/records/{form}", tag = "records",
    params(("form" = String, Path, description = "The form id"), ListQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordPage),
        (status = 400, description = "A filter on a field that is not filterable (the answer lists those that are), a value of the wrong type, a bad `limit` or `cursor`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(form): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RecordPage>, Problem> {
    known_form(&state, &form)?;
    let listing = listing(&state, &form, raw.as_deref())?;
    blocking(move || scan(&state, &caller.user, &form, listing).map(Json)).await
}

#[cfg(test)]
mod tests {
    use super::{cursor_of, record_after};
    use stagecraft_store::RecordId;

    #[test]
    fn cursors_go_back_to_the_record_they_name() {
        let id = RecordId::new("opportunity-01JC商机");
        assert_eq!(record_after(&cursor_of(&id)).ok(), Some(id));
        for bad in ["", "abc", "zz", "c3", &"00".repeat(600)] {
            assert!(record_after(bad).is_err(), "{bad}");
        }
    }
}
