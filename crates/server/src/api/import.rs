//! Importing records from another system's CSV file, for integrators (the import
//! page uses the same jobs): a dry run answers the per-row report at once; an apply
//! runs as a job whose progress is read from `GET /api/import/jobs/{id}`, and writes
//! every record or none.
//!
//! Only people holding a role that a pack declares with `sees: all` may import: an
//! import writes records for any owner, which only someone who sees every record
//! may check afterwards.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stagecraft_import::{ImportError, Mapping, Progress, Report, Source};
use stagecraft_model::{Id, RoleSees};
use stagecraft_runtime::Org;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::files::MAX_UPLOAD_BYTES;
use super::{blocking, query};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// How many finished jobs are remembered (the oldest are forgotten first).
const KEPT_JOBS: usize = 64;

pub(crate) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(import).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)))
        .routes(routes!(job))
        .routes(routes!(import_org).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)))
}

/// Whether `user` may import: they hold a role declared with `sees: all`.
pub(crate) fn may_import(state: &AppState, user: &str) -> bool {
    let definitions = state.engine().definitions();
    state.with_org(|org| {
        org.roles_of(user).iter().any(|role| {
            definitions
                .roles
                .get(&Id::from(role.as_str()))
                .is_some_and(|declared| declared.sees == Some(RoleSees::All))
        })
    })
}

/// An import: the file and, optionally, how its columns map onto the form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRequest {
    /// The CSV file's text (UTF-8, comma-separated, a header line first).
    csv: String,
    /// The mapping (see docs/import.md); what it leaves out is found from the
    /// headers. Its `form`, when given, must be the form of the path.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    mapping: Option<serde_json::Value>,
    /// A name for where the records come from, kept in each `imported` event
    /// (default: `api`).
    #[serde(default)]
    source: Option<String>,
}

/// An import job and where it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobStatus {
    /// The job id.
    pub(crate) id: String,
    /// The form.
    pub(crate) form: String,
    /// `running`, `done` (every record written), `refused` (rows have problems:
    /// nothing written, see `report`) or `failed` (nothing written, see `error`).
    pub(crate) state: String,
    /// Rows in the file.
    pub(crate) total: usize,
    /// Rows read and checked so far.
    pub(crate) checked: usize,
    /// Records written (all at once, at the end).
    pub(crate) written: usize,
    /// The per-row report, once the rows are checked.
    pub(crate) report: Option<Report>,
    /// The new records' ids, in the file's order, once written.
    pub(crate) ids: Vec<String>,
    /// Why the job failed.
    pub(crate) error: Option<String>,
}

/// How a job ended.
#[derive(Debug)]
pub(crate) enum Finished {
    Done { report: Report, ids: Vec<String> },
    Refused(Report),
    Failed(String),
}

/// An import job, kept in memory while the server runs.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) form: String,
    pub(crate) progress: Progress,
    pub(crate) finished: Mutex<Option<Finished>>,
}

impl Job {
    /// Where the job stands now.
    pub(crate) fn status(&self) -> JobStatus {
        let (checked, written, total) = self.progress.snapshot();
        let mut status = JobStatus {
            id: self.id.clone(),
            form: self.form.clone(),
            state: "running".into(),
            total,
            checked,
            written,
            report: None,
            ids: Vec::new(),
            error: None,
        };
        let finished = match self.finished.lock() {
            Ok(finished) => finished,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &*finished {
            None => {}
            Some(Finished::Done { report, ids }) => {
                status.state = "done".into();
                status.report = Some(report.clone());
                status.ids = ids.clone();
            }
            Some(Finished::Refused(report)) => {
                status.state = "refused".into();
                status.report = Some(report.clone());
            }
            Some(Finished::Failed(error)) => {
                status.state = "failed".into();
                status.error = Some(error.clone());
            }
        }
        status
    }

    /// Whether the job has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.lock().map(|finished| finished.is_some()).unwrap_or(true)
    }
}

fn jobs() -> &'static Mutex<VecDeque<Arc<Job>>> {
    static JOBS: OnceLock<Mutex<VecDeque<Arc<Job>>>> = OnceLock::new();
    JOBS.get_or_init(|| Mutex::new(VecDeque::new()))
}

/// The job `id`, if `user` started it.
pub(crate) fn find_job(id: &str, user: &str) -> Option<Arc<Job>> {
    let jobs = jobs().lock().ok()?;
    jobs.iter().find(|job| job.id == id && job.user == user).cloned()
}

/// Starts applying `csv` on a blocking thread and answers the job at once.
pub(crate) fn start_job(
    state: &AppState,
    user: &str,
    mapping: Mapping,
    csv: Vec<u8>,
    source: String,
) -> Arc<Job> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:x}-{number}", state.engine().now());
    let job = Arc::new(Job {
        id,
        user: user.to_owned(),
        form: mapping.form.clone(),
        progress: Progress::default(),
        finished: Mutex::new(None),
    });
    if let Ok(mut jobs) = jobs().lock() {
        jobs.push_back(job.clone());
        while jobs.len() > KEPT_JOBS {
            match jobs.iter().position(|job| job.is_finished()) {
                Some(oldest) => drop(jobs.remove(oldest)),
                None => break,
            }
        }
    }
    let running = job.clone();
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let source = Source { actor: Some(&running.user), name: &source };
        let outcome =
            stagecraft_import::apply(state.engine(), source, &mapping, &csv, &running.progress);
        let finished = match outcome {
            Ok(applied) => Finished::Done { report: applied.report, ids: applied.ids },
            Err(ImportError::Problems(report)) => Finished::Refused(*report),
            Err(ImportError::Engine(error)) => Finished::Failed(error.to_string()),
        };
        match running.finished.lock() {
            Ok(mut slot) => *slot = Some(finished),
            Err(poisoned) => *poisoned.into_inner() = Some(finished),
        }
    });
    job
}

/// The mapping of a request for `form`: the one given (its `form` must match) or
/// one to be filled from the headers.
pub(crate) fn mapping_for(
    form: &str,
    given: Option<serde_json::Value>,
) -> Result<Mapping, Problem> {
    let mut given = given.unwrap_or_else(|| serde_json::json!({}));
    if let Some(object) = given.as_object_mut() {
        match object.get("form").and_then(serde_json::Value::as_str) {
            Some(named) if named != form => {
                return Err(Problem::bad_request(format!(
                    "the mapping is for form `{named}`, the path names form `{form}`"
                )));
            }
            _ => {
                object.insert("form".into(), serde_json::Value::String(form.to_owned()));
            }
        }
    }
    serde_json::from_value(given)
        .map_err(|error| Problem::bad_request(format!("the mapping is not valid: {error}")))
}

/// Whether the query asks for a dry run (`dry_run=true`).
fn dry_run_asked(raw: Option<&str>) -> Result<bool, Problem> {
    let mut dry = false;
    for (name, value) in query::pairs(raw)? {
        match (name.as_str(), value.as_str()) {
            ("dry_run", "true" | "1" | "") => dry = true,
            ("dry_run", "false" | "0") => dry = false,
            ("dry_run", other) => {
                return Err(Problem::bad_request(format!(
                    "`dry_run` is `true` or `false`, not `{other}`"
                )));
            }
            (other, _) => {
                return Err(Problem::bad_request(format!("unknown query parameter `{other}`")));
            }
        }
    }
    Ok(dry)
}

/// The request's file, mapping and source: a JSON [`ImportRequest`], or the CSV
/// itself as `text/csv` (the mapping then comes from the headers).
fn read_request(
    form: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Mapping, Vec<u8>, String), Problem> {
    let essence = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "text/csv" => Ok((mapping_for(form, None)?, body.to_vec(), "api".to_owned())),
        "application/json" => {
            let request: ImportRequest = serde_json::from_slice(body)
                .map_err(|error| Problem::bad_request(format!("the body is not valid: {error}")))?;
            let mapping = mapping_for(form, request.mapping)?;
            let source = request.source.filter(|s| !s.trim().is_empty());
            Ok((mapping, request.csv.into_bytes(), source.unwrap_or_else(|| "api".to_owned())))
        }
        _ => Err(Problem::unsupported_media_type()),
    }
}

/// Imports a CSV file as records of a form, with their own history (creation date,
/// stages reached, outcome). The body is JSON, or the file itself as `text/csv` (the
/// mapping is then found from its headers). With `dry_run=true`, answers the per-row
/// report and writes nothing; otherwise starts a job (202, `Location` names it) that
/// checks every row and writes all records in one commit only when no row has a
/// problem.
#[utoipa::path(post, path = "/api/import/{form}", tag = "import",
    params(("form" = String, Path, description = "The form id"),
        ("dry_run" = Option<bool>, Query, description = "Only check: answer the report, write nothing")),
    request_body(content(
        (ImportRequest = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "The dry run's report: every problem with its row (the header is row 1) and column", body = Report),
        (status = 202, description = "The import job started; `Location` names it", body = JobStatus),
        (status = 400, description = "A malformed body, mapping or query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller holds no role that sees every record", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than the upload limit", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither JSON nor text/csv", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(form): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    if !may_import(&state, &caller.user) {
        return Err(Problem::forbidden("only a role that sees every record may import"));
    }
    super::records::known_form(&state, &form)?;
    let dry = dry_run_asked(raw.as_deref())?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(MAX_UPLOAD_BYTES)
        } else {
            Problem::bad_request(rejection.body_text())
        }
    })?;
    let (mapping, csv, source) = read_request(&form, &headers, &body)?;
    if dry {
        let user = caller.user.clone();
        let report = blocking(move || {
            let source = Source { actor: Some(&user), name: &source };
            Ok(stagecraft_import::dry_run(
                state.engine(),
                source,
                &mapping,
                &csv,
                &Progress::default(),
            ))
        })
        .await?;
        return Ok(Json(report).into_response());
    }
    let job = start_job(&state, &caller.user, mapping, csv, source);
    let location = format!("/api/import/jobs/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(job.status())).into_response())
}

/// Where an import job stands: rows checked and written of the total, then the
/// report and the new records' ids. Only the person who started it may read it.
#[utoipa::path(get, path = "/api/import/jobs/{id}", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such job of the caller's (jobs are kept in memory until the server stops)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn job(
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, Problem> {
    find_job(&id, &caller.user)
        .map(|job| Json(job.status()))
        .ok_or_else(|| Problem::not_found(format!("there is no import job `{id}`")))
}

/// People and departments to merge into the org file, as CSV text (see
/// docs/import.md for the columns).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrgImportRequest {
    /// The people: id, name, e-mail, phone, department, manager, roles.
    #[serde(default)]
    people: Option<String>,
    /// The departments: id, name, English name, parent, head.
    #[serde(default)]
    departments: Option<String>,
}

/// A problem of one of the org files.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OrgProblemView {
    /// `people` or `departments`.
    pub(crate) file: String,
    /// The row (the header is row 1).
    pub(crate) row: u64,
    /// The column, when one is concerned.
    pub(crate) column: Option<String>,
    /// The cell's text.
    pub(crate) value: Option<String>,
    /// The problem, in Chinese.
    pub(crate) message_zh: String,
    /// The problem, in English.
    pub(crate) message_en: String,
}

/// What an org import changes (or would change).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OrgImportAnswer {
    /// People added, by id.
    pub(crate) added_people: Vec<String>,
    /// People whose entry changed, by id.
    pub(crate) changed_people: Vec<String>,
    /// Departments added, by id.
    pub(crate) added_departments: Vec<String>,
    /// Departments whose entry changed, by id.
    pub(crate) changed_departments: Vec<String>,
    /// Every problem; nothing is written when there is one.
    pub(crate) problems: Vec<OrgProblemView>,
    /// Whether the org file was written (and the org reloaded).
    pub(crate) written: bool,
}

/// Merges people and departments (CSV) into the company's org file — the one org
/// file among the server's packs — and, unless `dry_run=true`, writes it after the
/// pack checker accepts it (the file before is kept as `<file>.bak`) and reloads the
/// packs, so the org changes at once. Only roles that see every record may.
#[utoipa::path(post, path = "/api/org/import", tag = "import",
    params(("dry_run" = Option<bool>, Query, description = "Only say who would be added and changed")),
    request_body = OrgImportRequest,
    responses(
        (status = 200, description = "Checked (and, without `dry_run`, written)", body = OrgImportAnswer),
        (status = 400, description = "A malformed body or query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller holds no role that sees every record", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The server's packs hold no org file, or several", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The files have problems, or the new org file does not pass the pack checks: nothing was written", body = OrgImportAnswer),
    ))]
pub(crate) async fn import_org(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    super::JsonBody(request): super::JsonBody<OrgImportRequest>,
) -> Result<Response, Problem> {
    if !may_import(&state, &caller.user) {
        return Err(Problem::forbidden("only a role that sees every record may import"));
    }
    let dry = dry_run_asked(raw.as_deref())?;
    blocking(move || {
        let (status, answer) =
            run_org_import(&state, request.people.as_deref(), request.departments.as_deref(), dry)?;
        Ok((status, Json(answer)).into_response())
    })
    .await
}

/// Merges people and departments into the server's org file (see [`import_org`]):
/// 200 and what changes (written unless `dry`), or 422 and the problems. Blocking.
pub(crate) fn run_org_import(
    state: &AppState,
    people: Option<&str>,
    departments: Option<&str>,
    dry: bool,
) -> Result<(StatusCode, OrgImportAnswer), Problem> {
    let file = stagecraft_import::find_org_file(state.pack_paths()).map_err(|count| {
        Problem::not_applicable(format!("the server's packs hold {count} org files, not one"))
    })?;
    let current = stagecraft_import::read_org_file(&file).map_err(Problem::bad_request)?;
    let definitions = state.engine().definitions();
    let result = stagecraft_import::import_org(
        &definitions,
        &current,
        people.map(str::as_bytes),
        departments.map(str::as_bytes),
    );
    let mut answer = OrgImportAnswer {
        added_people: result.added_people,
        changed_people: result.changed_people,
        added_departments: result.added_departments,
        changed_departments: result.changed_departments,
        problems: result
            .problems
            .into_iter()
            .map(|found| OrgProblemView {
                file: found.file,
                row: found.problem.row,
                column: found.problem.column,
                value: found.problem.value,
                message_zh: found.problem.message_zh,
                message_en: found.problem.message_en,
            })
            .collect(),
        written: false,
    };
    if !answer.problems.is_empty() {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, answer));
    }
    if dry {
        return Ok((StatusCode::OK, answer));
    }
    let others: Vec<std::path::PathBuf> =
        state.pack_paths().iter().filter(|path| **path != file).cloned().collect();
    match stagecraft_import::write_org_file(&others, &file, &result.yaml) {
        Ok(_) => {}
        Err(stagecraft_import::WriteOrgError::Checks(report)) => {
            answer.problems = report
                .diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
                .map(|diagnostic| OrgProblemView {
                    file: "org".into(),
                    row: 1,
                    column: None,
                    value: None,
                    message_zh: diagnostic.message.clone(),
                    message_en: diagnostic.message.clone(),
                })
                .collect();
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, answer));
        }
        Err(error) => return Err(Problem::failure(&error)),
    }
    // The watcher would notice the file too; reloading now makes the answer true.
    state.reload_packs().map_err(|_| {
        Problem::not_applicable("the org file was written but the packs did not reload")
    })?;
    answer.written = true;
    Ok((StatusCode::OK, answer))
}
