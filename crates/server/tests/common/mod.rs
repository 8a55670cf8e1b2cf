//! The in-process harness of the API tests: a server on a fresh data folder with the
//! shipped packs, the demo company and a manual clock, called through the router
//! (no socket).

// Each test binary uses a part of the harness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use stagecraft_server::{AppState, ClockChoice, Config, PasswordCost, app};
use stagecraft_store::{IndexValue, Page};
use tower::ServiceExt;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server on a fresh data folder with the demo company.
pub(crate) struct Harness {
    pub(crate) app: Router,
    pub(crate) state: AppState,
    pub(crate) dir: tempfile::TempDir,
}

/// What the server answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The body as JSON (a string when it is not JSON, null when empty).
    pub(crate) body: Value,
    /// The body as sent.
    pub(crate) bytes: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    #[track_caller]
    pub(crate) fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{:#}", self.body);
        self
    }

    /// A problem answer: checks the RFC 9457 shape and returns the body.
    #[track_caller]
    pub(crate) fn problem(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(self.header("content-type"), "application/problem+json");
        for field in ["type", "title", "detail"] {
            assert!(self.body[field].is_string(), "problem without {field}: {:#}", self.body);
        }
        assert_eq!(self.body["status"], json!(status.as_u16()));
        self.body
    }

    /// The problem's `detail`.
    #[track_caller]
    pub(crate) fn detail(self, status: StatusCode) -> String {
        self.problem(status)["detail"].as_str().unwrap_or_default().to_owned()
    }
}

pub(crate) fn config(dir: &Path, clock: ClockChoice) -> Config {
    Config {
        data: dir.join("data"),
        packs: vec![repo().join("flows"), repo().join("schemas")],
        demo: Some(repo().join("examples/demo")),
        clock,
        password_cost: PasswordCost::Low,
        ..Config::default()
    }
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self::with_clock(ClockChoice::Manual)
    }

    /// A server on a fresh data folder with the given clock.
    pub(crate) fn with_clock(clock: ClockChoice) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (state, _) = match AppState::open(&config(dir.path(), clock)) {
            Ok(opened) => opened,
            Err(error) => panic!("the server must start: {error}"),
        };
        Harness { app: app(state.clone()), state, dir }
    }

    /// Moves the manual clock as admin.
    pub(crate) async fn clock(&self, change: Value) -> Value {
        let admin = self.login("admin").await;
        self.post("/api/admin/clock", &admin, change).await.expect(StatusCode::OK).body
    }

    /// The ids of the first 20 deals of a user.
    pub(crate) fn deals_of(&self, user: &str) -> Vec<String> {
        self.indexed("opportunity", "owner", user).into_iter().take(20).collect()
    }

    /// The data folder.
    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer { status, headers, body, bytes: bytes.to_vec() }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).expect("request")).await
    }

    pub(crate) async fn get(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub(crate) async fn post(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    pub(crate) async fn patch(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PATCH, uri, Some(token), Some(body)).await
    }

    /// Uploads `bytes` as a file of `content_type`, named `name` if given.
    pub(crate) async fn upload(
        &self,
        token: &str,
        content_type: &str,
        name: Option<&str>,
        bytes: impl Into<Body>,
    ) -> Answer {
        let uri = match name {
            Some(name) => format!("/api/files?name={}", percent(name)),
            None => "/api/files".to_owned(),
        };
        let request = Request::post(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(bytes.into())
            .expect("request");
        self.send(request).await
    }

    /// Uploads a small PDF as `user`; returns its id.
    pub(crate) async fn pdf(&self, token: &str, name: &str) -> String {
        let answer = self
            .upload(token, "application/pdf", Some(name), format!("%PDF-1.7\n% {name}\n%%EOF\n"))
            .await
            .expect(StatusCode::CREATED);
        answer.body["id"].as_str().expect("a file id").to_owned()
    }

    pub(crate) async fn login(&self, user: &str) -> String {
        let answer = self
            .call(
                Method::POST,
                "/api/session",
                None,
                Some(json!({"username": user, "password": "stagecraft"})),
            )
            .await
            .expect(StatusCode::OK);
        answer.body["token"].as_str().expect("a token").to_owned()
    }

    /// Creates a customer and a deal for it as `user`; returns the deal.
    pub(crate) async fn deal(&self, user: &str) -> Value {
        let token = self.login(user).await;
        let customer = self
            .post(
                "/api/records/customer",
                &token,
                json!({"fields": {"name": format!("{user} 的客户")}}),
            )
            .await
            .expect(StatusCode::CREATED)
            .body;
        self.post("/api/records/opportunity", &token, json!({"fields": deal_fields(&customer)}))
            .await
            .expect(StatusCode::CREATED)
            .body
    }

    pub(crate) fn version(&self, id: &str) -> u64 {
        self.state.engine().record(id).expect("read").expect("the record").version
    }

    /// The ids of the records of `form` indexed under `field = value`.
    pub(crate) fn indexed(&self, form: &str, field: &str, value: &str) -> Vec<String> {
        self.state
            .engine()
            .store()
            .records_by_index(form, field, &IndexValue::from(value), Page::first(10_000))
            .expect("index")
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// The ids of every record of `form`, by creation time.
    pub(crate) fn all(&self, form: &str) -> Vec<String> {
        self.state
            .engine()
            .store()
            .records_of_form(form, Page::first(100_000))
            .expect("list")
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }
}

/// Percent-encodes text for a query string.
pub(crate) fn percent(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

pub(crate) fn deal_fields(customer: &Value) -> Value {
    json!({
        "name": "注塑机两台",
        "customer": customer["id"],
        "amount": 400000,
        "expected_close_date": "2027-01-31",
    })
}

pub(crate) fn record_uri(record: &Value) -> String {
    format!(
        "/api/records/{}/{}",
        record["form"].as_str().unwrap_or_default(),
        record["id"].as_str().unwrap_or_default()
    )
}

/// Copies a folder with everything in it.
pub(crate) fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("a folder");
    for entry in std::fs::read_dir(from).expect("a listing") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("a copy");
        }
    }
}
