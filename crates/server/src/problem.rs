//! Answers that say no, as RFC 9457 problem details (`application/problem+json`):
//! `type`, `title`, `status`, `detail`, plus `errors` for field problems and `reasons`
//! for closed gates, exactly as the runtime words them.

use axum::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stagecraft_engine::EngineError;
use stagecraft_runtime::{FieldProblem, Reason, Refusal};

/// A problem to answer with.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    /// The last part of the `type` URI; stable, for clients to match on.
    kind: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldProblem>,
    reasons: Vec<Reason>,
    version: Option<u64>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: String) -> Self {
        Problem {
            status,
            kind,
            title,
            detail,
            errors: Vec::new(),
            reasons: Vec::new(),
            version: None,
            headers: Vec::new(),
        }
    }

    /// 400: the body is not the JSON the endpoint takes.
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", detail.into())
    }

    /// 401: no session, or one that ended.
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        let mut problem =
            Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail.into());
        problem.headers.push((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        problem
    }

    /// 403: the caller may see the record but not do this.
    pub(crate) fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail.into())
    }

    /// 404: no such form, record or path (also for records the caller may not see, so
    /// that ids do not leak).
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail.into())
    }

    /// 405.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not take this method".into(),
        )
    }

    /// 409: the command does not apply to the record as it is now.
    pub(crate) fn not_applicable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "not-applicable", "Not applicable", detail.into())
    }

    /// 413.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    /// 415: bodies are JSON.
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as `content-type: application/json`".into(),
        )
    }

    /// 415: an uploaded file of a type that is not accepted, or whose content is not
    /// what its type says.
    pub(crate) fn unsupported_file(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-file-type",
            "Unsupported file type",
            detail.into(),
        )
    }

    /// 422 with one problem per field.
    pub(crate) fn invalid(problems: Vec<FieldProblem>) -> Self {
        let detail = problems
            .iter()
            .map(|problem| format!("{}: {}", problem.pointer, problem.message_en))
            .collect::<Vec<_>>()
            .join("; ");
        let mut problem =
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-fields", "Invalid fields", detail);
        problem.errors = problems;
        problem
    }

    /// 429 with the seconds to wait.
    pub(crate) fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "Too many attempts",
            detail.into(),
        );
        problem.headers.push((RETRY_AFTER, HeaderValue::from(retry_after_secs)));
        problem
    }

    /// 500: the details went to the server's log, not to the caller.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server could not carry out the request; the error was logged".into(),
        )
    }

    /// A failure of the server itself: logged here, answered with a plain 500.
    pub(crate) fn failure(error: &dyn std::fmt::Display) -> Self {
        eprintln!("error: {error}");
        Self::internal()
    }

    fn gated(reasons: Vec<Reason>) -> Self {
        let detail = reasons.iter().map(|r| r.message_en.as_str()).collect::<Vec<_>>().join("; ");
        let mut problem =
            Self::new(StatusCode::CONFLICT, "gate-closed", "The move is not allowed", detail);
        problem.reasons = reasons;
        problem
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        let text = refusal.to_string();
        match refusal {
            Refusal::Invalid(problems) => Problem::invalid(problems),
            Refusal::Gated(reasons) => Problem::gated(reasons),
            Refusal::Stale { actual, .. } => {
                let mut problem =
                    Problem::new(StatusCode::CONFLICT, "stale-version", "The record changed", text);
                problem.version = Some(actual);
                problem
            }
            Refusal::NotApplicable(detail) => Problem::not_applicable(detail),
            Refusal::Forbidden(detail) => Problem::forbidden(detail),
            // A rule that stops or fails is a fault of the definitions, not of the
            // request: the caller cannot fix it, so it is a server error, told plainly.
            Refusal::RuleFailed(detail) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rule-failed",
                "A rule failed",
                detail,
            ),
        }
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Refused(refusal) => refusal.into(),
            EngineError::NotFound(id) => Problem::not_found(format!("there is no record {id}")),
            EngineError::Conflict => Problem::new(
                StatusCode::CONFLICT,
                "concurrent-change",
                "The record changed",
                error.to_string(),
            ),
            // The handlers answer duplicates themselves; one that reaches here is a
            // repeated command on an existing record, which changed nothing.
            EngineError::Duplicate(_) => Problem::not_applicable(error.to_string()),
            other => Problem::failure(&other),
        }
    }
}

/// The body of a problem answer (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProblemDetails {
    /// `urn:stagecraft:problem:<kind>`; stable, for clients to match on.
    #[serde(rename = "type")]
    kind: String,
    /// A short summary of the kind of problem, in English.
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request, in English.
    detail: String,
    /// One entry per bad field (JSON pointer, message in Chinese and English).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldProblem>,
    /// Why a move was refused: each closed gate, missing action or approval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<Reason>,
    /// The record's current version, when the request named an older one.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemDetails {
            kind: format!("urn:stagecraft:problem:{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            reasons: self.reasons,
            version: self.version,
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        let text = serde_json::to_string(&body).unwrap_or_default();
        (self.status, headers, text).into_response()
    }
}
