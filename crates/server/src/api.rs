//! The JSON API: the routes, their bodies and answers. Every record endpoint reaches
//! its record through [`visible`], which applies the rules of `access.rs`; every
//! engine call runs on a blocking thread, since the store writes to disk.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, middleware};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use stagecraft_engine::{EngineError, Target};
use stagecraft_model::{FieldName, Id};
use stagecraft_runtime::{Command, FieldProblem, Org, Record, create_problems};
use stagecraft_store::{RecordId, StoredTask};

use crate::access::{can_read, can_write};
use crate::auth::{ABSOLUTE_TIMEOUT_MS, Caller, SESSION_COOKIE, stored_hash, verify_password};
use crate::headers::security_headers;
use crate::problem::Problem;
use crate::state::AppState;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 128;
/// The role that may move a manual clock.
const ADMIN_ROLE: &str = "admin";

/// The router of the whole API. The clock endpoint exists only on a manual clock.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/session", post(login).delete(logout))
        .route("/api/tasks", get(tasks))
        .route("/api/records/{form}", post(create))
        .route("/api/records/{form}/{id}", get(read).patch(update))
        .route("/api/records/{form}/{id}/transitions", post(transition))
        .route("/api/records/{form}/{id}/approvals/{approval}", post(decide))
        .route("/api/records/{form}/{id}/events", get(events));
    if state.manual_clock().is_some() {
        router = router.route("/api/admin/clock", post(move_clock));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> Problem {
    Problem::not_found("there is nothing at this path")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// Runs blocking work (store, engine, password hashing) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(work).await.map_err(|error| Problem::failure(&error))?
}

// ----- request bodies ---------------------------------------------------------------

/// A JSON body: `content-type: application/json`, at most [`MAX_BODY_BYTES`], and of
/// the endpoint's shape; anything else is answered with a problem that says which.
struct JsonBody<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"));
        if !is_json {
            return Err(Problem::unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large(MAX_BODY_BYTES)
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| Problem::bad_request(format!("the body is not valid: {error}")))
    }
}

fn field_problem(pointer: &str, zh: impl Into<String>, en: impl Into<String>) -> FieldProblem {
    FieldProblem { pointer: pointer.to_owned(), message_zh: zh.into(), message_en: en.into() }
}

// ----- sessions -----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Response, Problem> {
    let user = login.username.trim().to_ascii_lowercase();
    let mut problems = Vec::new();
    if user.is_empty() {
        problems.push(field_problem("/username", "请填写用户名", "the username is empty"));
    }
    if login.password.is_empty() {
        problems.push(field_problem("/password", "请填写密码", "the password is empty"));
    }
    if !problems.is_empty() {
        return Err(Problem::invalid(problems));
    }
    // Failures are counted per username, whether or not it exists.
    let counted: String = user.chars().take(64).collect();
    if let Err(wait) = state.logins().check(&counted, Instant::now()) {
        return Err(Problem::too_many_requests(
            format!("too many failed logins for this username; try again in {wait} seconds"),
            wait,
        ));
    }
    let checking = state.clone();
    let name = user.clone();
    let verified = blocking(move || {
        let hash = if checking.knows_user(&name) {
            stored_hash(checking.engine().store().as_ref(), &name)
                .map_err(|error| Problem::failure(&error))?
        } else {
            None
        };
        Ok(match hash {
            Some(hash) => verify_password(&login.password, &hash),
            None => {
                // As slow as a real check, so that answers do not tell which users exist.
                verify_password(&login.password, checking.decoy_hash());
                false
            }
        })
    })
    .await?;
    if !verified {
        state.logins().failed(&counted, Instant::now());
        return Err(Problem::unauthorized("the username or password is wrong"));
    }
    state.logins().succeeded(&counted);
    let token = state.sessions().start(&user, state.engine().now());
    let (name, roles) = state.with_org(|org| {
        (org.user(&user).map(|person| person.name.clone()).unwrap_or_default(), org.roles_of(&user))
    });
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}",
        ABSOLUTE_TIMEOUT_MS / 1000
    );
    let body = json!({"token": token, "user": {"id": user, "name": name, "roles": roles}});
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

async fn logout(State(state): State<AppState>, caller: Caller) -> Response {
    state.sessions().end(&caller.token);
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response()
}

// ----- records ------------------------------------------------------------------------

/// What a handler needs from a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The form, if the packs define it. Internal forms (`_credential`, …) are not.
fn known_form(state: &AppState, form: &str) -> Result<(), Problem> {
    if state.engine().definitions().forms.contains_key(&Id::from(form)) {
        Ok(())
    } else {
        Err(Problem::not_found(format!("there is no form `{form}`")))
    }
}

/// The record `id` of `form`, if the caller may have it for `access`. A record the
/// caller may not see is answered exactly like one that does not exist.
fn visible(
    state: &AppState,
    user: &str,
    form: &str,
    id: &str,
    access: Access,
) -> Result<Record, Problem> {
    known_form(state, form)?;
    let missing = || Problem::not_found(format!("there is no {form} record {id}"));
    let stored = state
        .engine()
        .store()
        .record(&RecordId::new(id))
        .map_err(|error| Problem::failure(&error))?
        .filter(|stored| stored.form == form)
        .ok_or_else(missing)?;
    let record: Record = serde_json::from_value(stored.value).map_err(|error| {
        Problem::failure(&format!("stored record {id} cannot be read: {error}"))
    })?;
    let (readable, writable) =
        state.with_org(|org| (can_read(org, user, &record), can_write(org, user, &record)));
    if !readable {
        return Err(missing());
    }
    if access == Access::Write && !writable {
        return Err(Problem::forbidden(format!("you may not change {form} record {id}")));
    }
    Ok(record)
}

/// Link fields must name records of the linked form that the caller may see: nobody
/// attaches work to someone else's deal, or learns that an id exists by trying.
fn link_problems(
    state: &AppState,
    user: &str,
    form: &str,
    fields: &Map<String, Value>,
) -> Vec<FieldProblem> {
    let definitions = state.engine().definitions();
    let Some(compiled) = definitions.forms.get(&Id::from(form)) else { return Vec::new() };
    let mut problems = Vec::new();
    for (field, value) in fields {
        let Some(linked_form) =
            compiled.fields.get(&FieldName(field.clone())).and_then(|info| info.link.as_ref())
        else {
            continue;
        };
        let Value::String(linked) = value else { continue };
        if visible(state, user, linked_form.as_str(), linked, Access::Read).is_err() {
            problems.push(field_problem(
                &format!("/{field}"),
                format!("找不到所选的记录（{linked_form}：{linked}）"),
                format!("there is no {linked_form} record {linked}"),
            ));
        }
    }
    problems
}

fn record_response(status: StatusCode, record: &Record) -> Response {
    let location = format!("/api/records/{}/{}", record.form, record.id);
    (status, [(LOCATION, location)], Json(json!(record))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRecord {
    fields: Map<String, Value>,
}

/// The `Idempotency-Key` header, if any: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY
                && key.bytes().all(|byte| byte.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(Problem::bad_request(format!(
            "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ascii characters"
        ))),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(form): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewRecord>,
) -> Result<Response, Problem> {
    known_form(&state, &form)?;
    // Keys are the caller's own: the same key from someone else is another request.
    let key = idempotency_key(&headers)?.map(|key| format!("create/{}/{form}/{key}", caller.user));
    blocking(move || {
        let engine = state.engine();
        let first = |id: &str| -> Result<Response, Problem> {
            let record = visible(&state, &caller.user, &form, id, Access::Read)?;
            Ok(record_response(StatusCode::OK, &record))
        };
        if let Some(key) = &key {
            if let Some(id) = engine.store().idempotent(key).map_err(|e| Problem::failure(&e))? {
                return first(id.as_str());
            }
        }
        let mut problems = link_problems(&state, &caller.user, &form, &body.fields);
        if !problems.is_empty() {
            // Say everything that is wrong with the new record in one answer.
            let definitions = engine.definitions();
            for problem in create_problems(&definitions, &Id::from(form.as_str()), &body.fields) {
                if !problems.iter().any(|known| known.pointer == problem.pointer) {
                    problems.push(problem);
                }
            }
            return Err(Problem::invalid(problems));
        }
        let command =
            Command::Create { form: Id::from(form.as_str()), fields: body.fields, owner: None };
        match engine.execute(Some(&caller.user), Target::New, command, key.as_deref()) {
            Ok(executed) => Ok(record_response(StatusCode::CREATED, &executed.record)),
            Err(EngineError::Duplicate(id)) => first(&id),
            Err(error) => Err(error.into()),
        }
    })
    .await
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Record>, Problem> {
    blocking(move || visible(&state, &caller.user, &form, &id, Access::Read).map(Json)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    version: u64,
    fields: Map<String, Value>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
    JsonBody(change): JsonBody<Change>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let problems = link_problems(&state, &caller.user, &form, &change.fields);
        if !problems.is_empty() {
            return Err(Problem::invalid(problems));
        }
        let command = Command::Update { expected_version: change.version, fields: change.fields };
        run(&state, &caller, id, command)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    to: String,
}

async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Move>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        run(&state, &caller, id, Command::Transition { to: Id::from(body.to.as_str()) })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id, approval)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Decision>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let command = Command::Decide {
            approval: Id::from(approval.as_str()),
            approve: body.approve,
            reason: body.reason,
        };
        run(&state, &caller, id, command)
    })
    .await
}

/// Runs a command on an existing record as the caller.
fn run(
    state: &AppState,
    caller: &Caller,
    id: String,
    command: Command,
) -> Result<Json<Record>, Problem> {
    let executed =
        state.engine().execute(Some(&caller.user), Target::Existing(id), command, None)?;
    Ok(Json(executed.record))
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Read)?;
        let events = state
            .engine()
            .store()
            .events_of(&RecordId::new(id))
            .map_err(|error| Problem::failure(&error))?;
        Ok(Json(json!({"events": events})))
    })
    .await
}

// ----- tasks --------------------------------------------------------------------------

async fn tasks(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    blocking(move || {
        let roles = state.with_org(|org| org.roles_of(&caller.user));
        let store = state.engine().store();
        let mut open: Vec<StoredTask> = Vec::new();
        let assignees = std::iter::once(caller.user.clone())
            .chain(roles.iter().map(|role| format!("role:{role}")));
        for assignee in assignees {
            open.extend(store.open_tasks_of(&assignee).map_err(|error| Problem::failure(&error))?);
        }
        // Soonest due first; tasks without a due date last.
        open.sort_by(|a, b| {
            (a.due_ms.is_none(), a.due_ms, &a.id).cmp(&(b.due_ms.is_none(), b.due_ms, &b.id))
        });
        Ok(Json(json!({"tasks": open})))
    })
    .await
}

// ----- the manual clock -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    #[serde(default)]
    advance: Option<String>,
    #[serde(default)]
    now: Option<String>,
}

/// `30m`, `8h`, `3d`, `2w` in milliseconds (calendar time, not working time).
fn duration_ms(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let unit_ms = match unit {
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    (0..=1_000_000).contains(&number).then(|| number * unit_ms)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|at| at.to_rfc3339()).unwrap_or_default()
}

async fn move_clock(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(change): JsonBody<ClockChange>,
) -> Result<Json<Value>, Problem> {
    let is_admin = state.with_org(|org| org.roles_of(&caller.user).iter().any(|r| r == ADMIN_ROLE));
    if !is_admin {
        return Err(Problem::forbidden("only an administrator may move the clock"));
    }
    let Some(clock) = state.manual_clock().cloned() else {
        return Err(Problem::not_found("there is nothing at this path"));
    };
    let now = match (change.advance.as_deref(), change.now.as_deref()) {
        (Some(advance), None) => {
            let ms = duration_ms(advance).ok_or_else(|| {
                Problem::invalid(vec![field_problem(
                    "/advance",
                    "请写成数字加单位：m（分钟）、h（小时）、d（天）或 w（周），例如 8d",
                    "write a number and a unit: m, h, d or w, e.g. 8d",
                )])
            })?;
            clock.advance(ms)
        }
        (None, Some(now)) => {
            let at = chrono::DateTime::parse_from_rfc3339(now).map_err(|error| {
                Problem::invalid(vec![field_problem(
                    "/now",
                    "请写成 RFC 3339 时间，例如 2026-11-30T09:00:00+08:00",
                    format!("not an rfc 3339 time ({error}), e.g. 2026-11-30T09:00:00+08:00"),
                )])
            })?;
            clock.set(at.timestamp_millis());
            at.timestamp_millis()
        }
        _ => {
            return Err(Problem::invalid(vec![field_problem(
                "/",
                "请给出 advance 或 now 二者之一",
                "give either `advance` or `now`",
            )]));
        }
    };
    // What the move made due happens before the answer, not at the next tick.
    let (fired, scanned) =
        blocking(move || state.run_maintenance().map_err(|error| Problem::failure(&error))).await?;
    Ok(Json(json!({
        "now": rfc3339(now),
        "now_ms": now,
        "timers_fired": fired,
        "records_scanned": scanned,
    })))
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn durations_take_minutes_hours_days_and_weeks() {
        assert_eq!(duration_ms("30m"), Some(1_800_000));
        assert_eq!(duration_ms("8h"), Some(28_800_000));
        assert_eq!(duration_ms("3d"), Some(259_200_000));
        assert_eq!(duration_ms("2w"), Some(1_209_600_000));
        for bad in ["", "d", "3", "3x", "-1d", "1.5d", "３d", "99999999999d"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }
}
