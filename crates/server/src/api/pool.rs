//! The pools of forms with `x-form.pool` (the customer pool, 公海): records without
//! an owner, which anyone may see and claim; owners (or whoever may change the
//! record) give them back; idle ones go back by themselves (the engine's sweep).
//!
//! The checks that make an answer precise (no pool: 422; owned by someone, or the
//! caller's limit reached: 409) are made here before the engine runs, and the runtime
//! makes them again, so a race still ends in a refusal. The pages use the same
//! functions, with the reasons in words ([`PoolError`]).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use stagecraft_engine::{EngineError, Target};
use stagecraft_model::{Id, PoolRules};
use stagecraft_runtime::{Command, FieldProblem, Record};
use stagecraft_store::{Page, RecordId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::list::{cursor_of, record_after};
use super::records::{Access, known_form, visible};
use super::{blocking, query};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// Records per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
const MAX_LIMIT: usize = 200;
/// The most records one request looks at.
const MAX_SCANNED: usize = 2_000;

pub(crate) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router.routes(routes!(pool)).routes(routes!(claim)).routes(routes!(release))
}

/// Why a pool request was not carried out, for the API (a problem) and the pages
/// (words in both languages).
#[derive(Debug)]
pub(crate) enum PoolError {
    /// The form has no `x-form.pool`.
    NoPool(String),
    /// The record belongs to someone (maybe the caller).
    Owned { owner: String, mine: bool },
    /// The caller owns as many records of the form as one person may.
    Limit { max: u32 },
    /// The record is in the pool already (nothing to release).
    InPool,
    /// Anything else: no such record, not visible, not allowed, a failure.
    Other(Problem),
}

impl From<Problem> for PoolError {
    fn from(problem: Problem) -> Self {
        PoolError::Other(problem)
    }
}

impl From<EngineError> for PoolError {
    fn from(error: EngineError) -> Self {
        PoolError::Other(error.into())
    }
}

impl PoolError {
    /// The answer of the JSON API.
    pub(crate) fn problem(self) -> Problem {
        match self {
            PoolError::NoPool(form) => Problem::invalid(vec![FieldProblem {
                pointer: String::new(),
                message_zh: format!("表单 {form} 没有客户池：它的记录不能认领或释放"),
                message_en: format!(
                    "form `{form}` has no pool (`x-form.pool`): its records are not claimed or released"
                ),
            }]),
            PoolError::Owned { owner, mine: true } => {
                Problem::not_applicable(format!("you ({owner}) own this record already"))
            }
            PoolError::Owned { owner, mine: false } => Problem::not_applicable(format!(
                "the record belongs to {owner}; only a record in the pool can be claimed"
            )),
            PoolError::Limit { max } => Problem::not_applicable(format!(
                "you own {max} records of this form, the most one person may own \
                 (max_per_owner: {max}); release one first"
            )),
            PoolError::InPool => Problem::not_applicable("the record is in the pool already"),
            PoolError::Other(problem) => problem,
        }
    }
}

/// The pool rules of `form`, or why there are none.
pub(crate) fn rules(state: &AppState, form: &str) -> Result<PoolRules, PoolError> {
    known_form(state, form)?;
    state
        .engine()
        .definitions()
        .forms
        .get(&Id::from(form))
        .and_then(|compiled| compiled.meta.pool.clone())
        .ok_or_else(|| PoolError::NoPool(form.to_owned()))
}

/// `user` takes record `id` of `form` from the pool. Blocking.
pub(crate) fn claim_record(
    state: &AppState,
    user: &str,
    form: &str,
    id: &str,
) -> Result<Record, PoolError> {
    let pool = rules(state, form)?;
    let record = visible(state, user, form, id, Access::Read)?;
    if let Some(owner) = record.owner {
        return Err(PoolError::Owned { mine: owner == user, owner });
    }
    let engine = state.engine();
    if let Some(max) = pool.max_per_owner {
        if engine.owned_count(form, user)? >= u64::from(max) {
            return Err(PoolError::Limit { max });
        }
    }
    Ok(engine.claim(user, id)?.record)
}

/// `user` gives record `id` of `form` back to the pool: allowed to whoever may
/// change the record (its owner, the owner's managers and department heads, roles
/// that see everything). Blocking.
pub(crate) fn release_record(
    state: &AppState,
    user: &str,
    form: &str,
    id: &str,
) -> Result<Record, PoolError> {
    rules(state, form)?;
    let record = visible(state, user, form, id, Access::Read)?;
    if record.owner.is_none() {
        return Err(PoolError::InPool);
    }
    if !state.may_write(user, &record) {
        return Err(Problem::forbidden(format!("you may not change {form} record {id}")).into());
    }
    let target = Target::Existing(id.to_owned());
    Ok(state.engine().execute(Some(user), target, Command::Release, None)?.record)
}

/// A page of the records of `form` that have no owner, oldest first, from the record
/// after `after`. Looks at no more than [`MAX_SCANNED`] records; when it stops there,
/// `next` says where to go on. Blocking.
pub(crate) fn unowned(
    state: &AppState,
    form: &str,
    after: Option<RecordId>,
    limit: usize,
) -> Result<(Vec<Record>, Option<String>), Problem> {
    let engine = state.engine();
    let store = engine.store();
    let mut records = Vec::new();
    let mut after = after;
    let mut scanned = 0;
    loop {
        let wanted = 200.min(MAX_SCANNED - scanned);
        let ids = store
            .records_of_form(form, Page { after: after.clone(), limit: wanted })
            .map_err(|error| Problem::failure(&error))?;
        let exhausted = ids.len() < wanted;
        for (position, id) in ids.iter().enumerate() {
            scanned += 1;
            after = Some(id.clone());
            let Some(record) = engine.record(id.as_str())? else { continue };
            if record.owner.is_some() {
                continue;
            }
            records.push(record);
            if records.len() == limit {
                let last = exhausted && position + 1 == ids.len();
                return Ok((records, (!last).then(|| cursor_of(id))));
            }
        }
        if exhausted {
            return Ok((records, None));
        }
        if scanned >= MAX_SCANNED {
            return Ok((records, after.as_ref().map(cursor_of)));
        }
    }
}

/// A page of a form's pool.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PoolPage {
    /// Records of the form without an owner, oldest first.
    records: Vec<Record>,
    /// The cursor of the next page, or `null` when there is none.
    next: Option<String>,
    /// How many records of the form the caller owns.
    owned: u64,
    /// The most records of the form one person may own, if the pack limits it.
    max_per_owner: Option<u32>,
    /// How long an owned record may go without activity before it returns to the
    /// pool (a pack duration such as `30d`), if it does.
    return_after: Option<String>,
}

/// The paging parameters of a pool.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PoolQuery {
    /// Records per page, 1 to 200 (default 50).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

fn paging(raw: Option<&str>) -> Result<(usize, Option<RecordId>), Problem> {
    let mut asked = PoolQuery::default();
    for (name, value) in query::pairs(raw)? {
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
                asked.limit = Some(limit);
            }
            "cursor" => asked.cursor = Some(value),
            other => {
                return Err(Problem::bad_request(format!(
                    "`{other}` is not a parameter of a pool; page with `limit` and `cursor`"
                )));
            }
        }
    }
    let after = asked.cursor.as_deref().map(record_after).transpose()?;
    Ok((asked.limit.map_or(DEFAULT_LIMIT, |limit| limit as usize), after))
}

/// The records of a form's pool (records without an owner), a page at a time, with
/// how many records of the form the caller owns and the pool's limits.
#[utoipa::path(get, path = "/api/pool/{form}", tag = "pool",
    params(("form" = String, Path, description = "The form id"), PoolQuery),
    responses(
        (status = 200, description = "A page of the pool", body = PoolPage),
        (status = 400, description = "A bad `limit` or `cursor`, or another parameter", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The form has no pool (`x-form.pool`)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn pool(
    State(state): State<AppState>,
    caller: Caller,
    Path(form): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PoolPage>, Problem> {
    let rules = rules(&state, &form).map_err(PoolError::problem)?;
    let (limit, after) = paging(raw.as_deref())?;
    blocking(move || {
        let (records, next) = unowned(&state, &form, after, limit)?;
        let owned = state.engine().owned_count(&form, &caller.user)?;
        Ok(Json(PoolPage {
            records,
            next,
            owned,
            max_per_owner: rules.max_per_owner,
            return_after: rules.return_after.map(|duration| duration.to_string()),
        }))
    })
    .await
}

/// Takes a record from its form's pool: the caller becomes its owner. Counts as
/// activity on it.
#[utoipa::path(post, path = "/api/records/{form}/{id}/claim", tag = "pool",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id")),
    responses(
        (status = 200, description = "Claimed: the record, owned by the caller", body = Record),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The record has an owner, or the caller owns `max_per_owner` records of the form already (the detail says which, with the limit)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The form has no pool (`x-form.pool`)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        claim_record(&state, &caller.user, &form, &id).map(Json).map_err(PoolError::problem)
    })
    .await
}

/// Gives a record back to its form's pool: its owner is cleared. Allowed to whoever
/// may change the record: its owner, their managers and department heads, roles that
/// see everything.
#[utoipa::path(post, path = "/api/records/{form}/{id}/release", tag = "pool",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id")),
    responses(
        (status = 200, description = "Released: the record, without an owner", body = Record),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller may see the record but not change it", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The record is in the pool already", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The form has no pool (`x-form.pool`)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        release_record(&state, &caller.user, &form, &id).map(Json).map_err(PoolError::problem)
    })
    .await
}
