//! A server in-process with the shipped packs, the demo company and a manual clock,
//! and the moves the people of the story make, as HTTP requests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use stagecraft_server::{AppState, ClockChoice, Config, PasswordCost, app};
use stagecraft_store::OutboxId;
use tower::ServiceExt;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running server and the sessions of the people who signed in.
pub(crate) struct World {
    app: Router,
    state: AppState,
    tokens: Mutex<HashMap<String, String>>,
    _dir: tempfile::TempDir,
}

/// What the server answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    /// The body, after checking the status.
    #[track_caller]
    pub(crate) fn ok(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        self.body
    }

    /// The Chinese and English messages of a refusal's reasons and field errors.
    pub(crate) fn messages(&self) -> Vec<String> {
        let mut found = Vec::new();
        for list in ["reasons", "errors"] {
            for entry in self.body[list].as_array().into_iter().flatten() {
                for language in ["message_zh", "message_en"] {
                    if let Some(text) = entry[language].as_str() {
                        found.push(text.to_owned());
                    }
                }
            }
        }
        found
    }

    /// Whether some reason or field error says `text` (in either language).
    pub(crate) fn says(&self, text: &str) -> bool {
        self.messages().iter().any(|message| message.contains(text))
    }
}

/// A notification as the engine put it in the outbox.
#[derive(Debug)]
pub(crate) struct Notification {
    pub(crate) record: String,
    pub(crate) to: Vec<String>,
    pub(crate) template: String,
    pub(crate) channels: Vec<String>,
}

impl World {
    /// A fresh server whose clock reads `now` (RFC 3339).
    pub(crate) fn at(now: &str) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            data: dir.path().join("data"),
            packs: vec![repo().join("flows"), repo().join("schemas")],
            demo: Some(repo().join("examples/demo")),
            clock: ClockChoice::Manual,
            password_cost: PasswordCost::Low,
            ..Config::default()
        };
        let (state, _) = AppState::open(&config).expect("the server starts");
        let world = World { app: app(state.clone()), state, tokens: Mutex::default(), _dir: dir };
        world.set_clock(now);
        world
    }

    fn block<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    fn send(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Answer {
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
        let request = request.body(body).expect("a request");
        Self::block(async {
            let response = self.app.clone().oneshot(request).await.expect("an answer");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
            Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
        })
    }

    fn token(&self, user: &str) -> String {
        if let Some(token) = self.tokens.lock().expect("tokens").get(user) {
            return token.clone();
        }
        let login = json!({"username": user, "password": "stagecraft"});
        let body = self.send(Method::POST, "/api/session", None, Some(login)).ok(StatusCode::OK);
        let token = body["token"].as_str().expect("a token").to_owned();
        self.tokens.lock().expect("tokens").insert(user.to_owned(), token.clone());
        token
    }

    /// A request as `user` (signed in again when the session ended meanwhile, as a
    /// person would after a few idle days).
    pub(crate) fn call(
        &self,
        user: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let answer = self.send(method.clone(), uri, Some(&self.token(user)), body.clone());
        if answer.status != StatusCode::UNAUTHORIZED {
            return answer;
        }
        self.tokens.lock().expect("tokens").remove(user);
        self.send(method, uri, Some(&self.token(user)), body)
    }

    /// Creates a record of `form` as `user`; the answer (201 with the record, or why not).
    pub(crate) fn try_create(&self, user: &str, form: &str, fields: Value) -> Answer {
        self.call(
            user,
            Method::POST,
            &format!("/api/records/{form}"),
            Some(json!({"fields": fields})),
        )
    }

    /// Creates a record that must be accepted; returns it.
    #[track_caller]
    pub(crate) fn create(&self, user: &str, form: &str, fields: Value) -> Value {
        self.try_create(user, form, fields).ok(StatusCode::CREATED)
    }

    /// The record as `user` sees it.
    #[track_caller]
    pub(crate) fn read(&self, user: &str, record: &Value) -> Value {
        self.call(user, Method::GET, &uri(record), None).ok(StatusCode::OK)
    }

    /// Changes fields of a record as `user` (at its current version).
    pub(crate) fn try_update(&self, user: &str, record: &Value, fields: Value) -> Answer {
        let version = self.read(user, record)["version"].clone();
        let change = json!({"version": version, "fields": fields});
        self.call(user, Method::PATCH, &uri(record), Some(change))
    }

    /// Changes fields that must be accepted; returns the record.
    #[track_caller]
    pub(crate) fn update(&self, user: &str, record: &Value, fields: Value) -> Value {
        self.try_update(user, record, fields).ok(StatusCode::OK)
    }

    /// Asks to move a record to `stage` as `user`.
    pub(crate) fn try_move(&self, user: &str, record: &Value, stage: &str) -> Answer {
        let uri = format!("{}/transitions", uri(record));
        self.call(user, Method::POST, &uri, Some(json!({"to": stage})))
    }

    /// Moves a record to `stage`, which must be allowed; returns the record.
    #[track_caller]
    pub(crate) fn advance(&self, user: &str, record: &Value, stage: &str) -> Value {
        let moved = self.try_move(user, record, stage).ok(StatusCode::OK);
        assert_eq!(moved["flow"]["stage"], json!(stage), "{moved:#}");
        moved
    }

    /// Decides an approval as `user`.
    pub(crate) fn decide(
        &self,
        user: &str,
        record: &Value,
        approval: &str,
        approve: bool,
        reason: Option<&str>,
    ) -> Answer {
        let uri = format!("{}/approvals/{approval}", uri(record));
        self.call(user, Method::POST, &uri, Some(json!({"approve": approve, "reason": reason})))
    }

    /// Uploads a small PDF as `user`; returns the file id to put in a file field.
    pub(crate) fn upload_pdf(&self, user: &str, name: &str) -> Value {
        let token = self.token(user);
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/files?name={}", percent(name)))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/pdf")
            .body(Body::from(format!("%PDF-1.7\n% {name}\n%%EOF\n")))
            .expect("a request");
        let answer = Self::block(async {
            let response = self.app.clone().oneshot(request).await.expect("an answer");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
            Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
        });
        answer.ok(StatusCode::CREATED)["id"].clone()
    }

    /// The open tasks in `user`'s list.
    pub(crate) fn tasks(&self, user: &str) -> Vec<Value> {
        let body = self.call(user, Method::GET, "/api/tasks", None).ok(StatusCode::OK);
        body["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// The open tasks in `user`'s list about `record`.
    pub(crate) fn tasks_about(&self, user: &str, record: &Value) -> Vec<Value> {
        let id = record["id"].as_str().expect("a record id");
        self.tasks(user)
            .into_iter()
            .filter(|task| task["data"]["record"].as_str() == Some(id))
            .collect()
    }

    /// The kinds of a record's events, oldest first.
    pub(crate) fn history(&self, user: &str, record: &Value) -> Vec<Value> {
        let uri = format!("{}/events", uri(record));
        let body = self.call(user, Method::GET, &uri, None).ok(StatusCode::OK);
        body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Sets the clock (RFC 3339); timers that fell due fire before it returns.
    pub(crate) fn set_clock(&self, now: &str) -> Value {
        self.call("admin", Method::POST, "/api/admin/clock", Some(json!({"now": now})))
            .ok(StatusCode::OK)
    }

    /// Moves the clock on (`30m`, `8h`, `3d`, `2w`, calendar time).
    pub(crate) fn pass(&self, time: &str) -> Value {
        self.call("admin", Method::POST, "/api/admin/clock", Some(json!({"advance": time})))
            .ok(StatusCode::OK)
    }

    /// Every notification the engine has put in the outbox so far, oldest first.
    pub(crate) fn notifications(&self) -> Vec<Notification> {
        let store = self.state.engine().store();
        let mut found = Vec::new();
        for id in 1.. {
            let Some(row) = store.outbox_row(OutboxId(id)).expect("read the outbox") else {
                break;
            };
            let strings = |value: &Value| -> Vec<String> {
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            };
            found.push(Notification {
                record: row.data["record"].as_str().unwrap_or_default().to_owned(),
                to: strings(&row.data["to"]),
                template: row.data["template"].as_str().unwrap_or_default().to_owned(),
                channels: strings(&row.data["channels"]),
            });
        }
        found
    }

    /// The notifications about `record` made from `template`.
    pub(crate) fn notified(&self, record: &Value, template: &str) -> Vec<Notification> {
        let id = record["id"].as_str().expect("a record id");
        self.notifications()
            .into_iter()
            .filter(|n| n.record == id && n.template == template)
            .collect()
    }
}

/// The API path of a record.
pub(crate) fn uri(record: &Value) -> String {
    format!(
        "/api/records/{}/{}",
        record["form"].as_str().expect("a form"),
        record["id"].as_str().expect("an id")
    )
}

/// Percent-encodes a query value.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Unix milliseconds of an RFC 3339 time.
pub(crate) fn ms(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time).expect("an RFC 3339 time").timestamp_millis()
}

/// The ids of the tasks' kinds (`approval`, `action`, `audit`, `stage`, `alert`).
pub(crate) fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .filter_map(|task| task["data"]["kind"]["kind"].as_str().map(str::to_owned))
        .collect()
}

/// The kinds of events, in order.
pub(crate) fn event_kinds(events: &[Value]) -> Vec<String> {
    events.iter().filter_map(|event| event["kind"].as_str().map(str::to_owned)).collect()
}
