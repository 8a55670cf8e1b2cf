//! The OpenAPI document at `/api/openapi.json` matches the server: every operation it
//! lists is routed, and what the endpoints answer validates against the schemas it
//! gives, read strictly (an object may have no property the document does not name).

mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::{Map, Value, json};
use stagecraft_server::ClockChoice;

/// Calls the server; the status and the JSON body (null when empty).
async fn call(
    server: &Harness,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let answer = server.call(method, uri, token, body).await;
    (answer.status, answer.body)
}

async fn document(server: &Harness) -> Value {
    server.call(Method::GET, "/api/openapi.json", None, None).await.expect(StatusCode::OK).body
}

/// The operations of the document: (method, path template, whether it needs a token).
fn operations(document: &Value) -> Vec<(Method, String, bool)> {
    let global_security = document["security"].as_array().is_some_and(|s| !s.is_empty());
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().expect("a method");
            let needs_token = match operation.get("security").and_then(Value::as_array) {
                Some(security) => security.iter().any(|entry| {
                    entry.as_object().is_some_and(|requirement| !requirement.is_empty())
                }),
                None => global_security,
            };
            found.push((method, path.clone(), needs_token));
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_operation_it_lists_is_routed() {
    let server = Harness::new();
    let document = document(&server).await;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{document:#}");
    let operations = operations(&document);
    for expected in [
        "GET /healthz",
        "POST /api/session",
        "DELETE /api/session",
        "GET /api/tasks",
        "POST /api/records/{form}",
        "GET /api/records/{form}/{id}",
        "PATCH /api/records/{form}/{id}",
        "POST /api/records/{form}/{id}/transitions",
        "POST /api/admin/clock",
    ] {
        assert!(
            operations.iter().any(|(method, path, _)| format!("{method} {path}") == expected),
            "{expected} is not in the document"
        );
    }
    for (method, path, needs_token) in operations {
        let uri = path.replace(['{', '}'], "");
        let body = matches!(method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));
        let (status, answer) = call(&server, method.clone(), &uri, None, body).await;
        // An unrouted path answers 404 `not-found`, a wrong method 405: neither may
        // happen for what the document lists. Without a token, a protected operation
        // answers 401 before looking at anything else.
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(answer["type"], json!("urn:stagecraft:problem:not-found"), "{method} {path}");
        if needs_token {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {answer}");
        }
    }
}

#[tokio::test]
async fn without_a_manual_clock_the_clock_endpoint_is_neither_routed_nor_documented() {
    let server = Harness::with_clock(ClockChoice::System);
    let document = document(&server).await;
    assert!(document["paths"].get("/api/admin/clock").is_none());
    let admin = server.login("admin").await;
    let (status, _) =
        call(&server, Method::POST, "/api/admin/clock", Some(&admin), Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Validates answers against the document's schema for their operation and status.
struct Checker {
    document: Value,
    /// The document's components, made strict: objects that list their properties
    /// allow no others.
    components: Value,
    checked: usize,
}

fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

impl Checker {
    fn new(document: Value) -> Self {
        let mut components = document["components"].clone();
        close_objects(&mut components);
        Checker { document, components, checked: 0 }
    }

    #[track_caller]
    fn check(&mut self, method: &str, path: &str, status: StatusCode, body: &Value) {
        let errors = self.errors(method, path, status, body);
        assert!(errors.is_empty(), "{method} {path} {status}: {errors:#?}\n{body:#}");
        self.checked += 1;
    }

    /// Why `body` does not match the document (nothing when it does).
    #[track_caller]
    fn errors(&self, method: &str, path: &str, status: StatusCode, body: &Value) -> Vec<String> {
        let operation = &self.document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not in the document");
        let response = &operation["responses"][status.as_str()];
        assert!(response.is_object(), "{method} {path} does not document status {status}");
        let Some(content) = response["content"].as_object() else {
            return if body.is_null() {
                Vec::new()
            } else {
                vec![format!("{method} {path} {status} documents no body")]
            };
        };
        let (_, media) = content.iter().next().expect("a media type");
        let mut schema = media["schema"].clone();
        close_objects(&mut schema);
        let mut root = Map::new();
        root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        root.insert("components".into(), self.components.clone());
        root.insert("allOf".into(), json!([schema]));
        let validator = jsonschema::validator_for(&Value::Object(root))
            .unwrap_or_else(|error| panic!("{method} {path} {status}: bad schema: {error}"));
        validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }
}

#[tokio::test]
async fn what_the_endpoints_answer_validates_against_the_document() {
    let server = Harness::new();
    let mut checker = Checker::new(document(&server).await);

    let (status, body) = call(&server, Method::GET, "/healthz", None, None).await;
    checker.check("get", "/healthz", status, &body);

    let wrong = json!({"username": "rep01", "password": "wrong"});
    let (status, body) = call(&server, Method::POST, "/api/session", None, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    checker.check("post", "/api/session", status, &body);
    let empty = json!({"username": "", "password": ""});
    let (status, body) = call(&server, Method::POST, "/api/session", None, Some(empty)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    checker.check("post", "/api/session", status, &body);
    let right = json!({"username": "rep01", "password": "stagecraft"});
    let (status, body) = call(&server, Method::POST, "/api/session", None, Some(right)).await;
    checker.check("post", "/api/session", status, &body);
    let rep = body["token"].as_str().expect("token").to_owned();

    let new = json!({"fields": {"name": "华东精密机械有限公司"}});
    let (status, customer) =
        call(&server, Method::POST, "/api/records/customer", Some(&rep), Some(new)).await;
    assert_eq!(status, StatusCode::CREATED);
    checker.check("post", "/api/records/{form}", status, &customer);
    let deal = json!({"fields": {
        "name": "注塑机两台", "customer": customer["id"], "amount": 400000,
        "expected_close_date": "2027-01-31",
    }});
    let (status, deal) =
        call(&server, Method::POST, "/api/records/opportunity", Some(&rep), Some(deal)).await;
    assert_eq!(status, StatusCode::CREATED);
    checker.check("post", "/api/records/{form}", status, &deal);
    let bad = json!({"fields": {"name": "", "amount": "很多"}});
    let (status, body) =
        call(&server, Method::POST, "/api/records/opportunity", Some(&rep), Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    checker.check("post", "/api/records/{form}", status, &body);

    // The check is strict: a property the document does not name, or a missing one,
    // fails it.
    let mut extra = deal.clone();
    extra["colour"] = json!("red");
    assert!(!checker.errors("post", "/api/records/{form}", StatusCode::CREATED, &extra).is_empty());
    let mut missing = deal.clone();
    missing.as_object_mut().expect("an object").remove("version");
    assert!(
        !checker.errors("post", "/api/records/{form}", StatusCode::CREATED, &missing).is_empty()
    );

    let uri = format!("/api/records/opportunity/{}", deal["id"].as_str().expect("id"));
    let (status, body) = call(&server, Method::GET, &uri, Some(&rep), None).await;
    checker.check("get", "/api/records/{form}/{id}", status, &body);
    let (status, body) =
        call(&server, Method::GET, "/api/records/opportunity/nope", Some(&rep), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    checker.check("get", "/api/records/{form}/{id}", status, &body);
    let change = json!({"version": deal["version"], "fields": {"amount": 450000}});
    let (status, changed) = call(&server, Method::PATCH, &uri, Some(&rep), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    checker.check("patch", "/api/records/{form}/{id}", status, &changed);
    let stale = json!({"version": deal["version"], "fields": {"amount": 1}});
    let (status, body) = call(&server, Method::PATCH, &uri, Some(&rep), Some(stale)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    checker.check("patch", "/api/records/{form}/{id}", status, &body);

    let jump = json!({"to": "won"});
    let transitions = format!("{uri}/transitions");
    let (status, body) = call(&server, Method::POST, &transitions, Some(&rep), Some(jump)).await;
    assert!(status.is_client_error(), "{body}");
    checker.check("post", "/api/records/{form}/{id}/transitions", status, &body);
    let (status, body) =
        call(&server, Method::GET, &format!("{uri}/events"), Some(&rep), None).await;
    checker.check("get", "/api/records/{form}/{id}/events", status, &body);
    let approval = format!("{uri}/approvals/none");
    let decision = json!({"approve": true});
    let (status, body) = call(&server, Method::POST, &approval, Some(&rep), Some(decision)).await;
    assert!(status.is_client_error(), "{body}");
    checker.check("post", "/api/records/{form}/{id}/approvals/{approval}", status, &body);

    for uri in [
        "/api/records/opportunity?limit=2",
        "/api/forms",
        "/api/forms/opportunity",
        "/api/flows",
        "/api/flows/sales-pipeline",
        "/api/org/me",
        "/api/org/users",
        "/api/org/departments",
        "/api/tokens",
        "/api/insights?period=2027-Q1",
    ] {
        let (status, body) = call(&server, Method::GET, uri, Some(&rep), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let template = uri
            .split('?')
            .next()
            .unwrap_or(uri)
            .replace("records/opportunity", "records/{form}")
            .replace("forms/opportunity", "forms/{form}")
            .replace("flows/sales-pipeline", "flows/{flow}");
        checker.check("get", &template, status, &body);
    }
    let (status, body) =
        call(&server, Method::GET, "/api/records/opportunity?colour=red", Some(&rep), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    checker.check("get", "/api/records/{form}", status, &body);
    let new_token = json!({"name": "ERP"});
    let (status, body) =
        call(&server, Method::POST, "/api/tokens", Some(&rep), Some(new_token)).await;
    checker.check("post", "/api/tokens", status, &body);
    let file = server.pdf(&rep, "需求调研.pdf").await;
    let (status, body) =
        call(&server, Method::GET, &format!("/api/files/{file}/info"), Some(&rep), None).await;
    checker.check("get", "/api/files/{id}/info", status, &body);

    let manager = server.login("mgr-east").await;
    let (status, body) = call(&server, Method::GET, "/api/tasks", Some(&manager), None).await;
    assert!(body["tasks"].as_array().is_some_and(|tasks| !tasks.is_empty()), "{body}");
    checker.check("get", "/api/tasks", status, &body);

    let (status, body) =
        call(&server, Method::POST, "/api/admin/clock", Some(&rep), Some(json!({"advance": "3d"})))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    checker.check("post", "/api/admin/clock", status, &body);
    let admin = server.login("admin").await;
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/admin/clock",
        Some(&admin),
        Some(json!({"advance": "2h"})),
    )
    .await;
    checker.check("post", "/api/admin/clock", status, &body);

    // Notifications: the inbox, preferences, the dead-letter list, retry and preview.
    let (status, body) = call(&server, Method::GET, "/api/inbox?limit=5", Some(&rep), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    checker.check("get", "/api/inbox", status, &body);
    let (status, body) =
        call(&server, Method::GET, "/api/inbox?colour=red", Some(&rep), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    checker.check("get", "/api/inbox", status, &body);
    let (status, body) = call(&server, Method::POST, "/api/inbox/999/read", Some(&rep), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    checker.check("post", "/api/inbox/{id}/read", status, &body);
    let quiet = json!({"off": ["email"], "quiet_hours": {"from": "22:00", "to": "08:00"}});
    let (status, body) =
        call(&server, Method::PUT, "/api/inbox/preferences", Some(&rep), Some(quiet)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    checker.check("put", "/api/inbox/preferences", status, &body);
    let (status, body) =
        call(&server, Method::GET, "/api/inbox/preferences", Some(&rep), None).await;
    assert_eq!(body["off"], json!(["email"]));
    checker.check("get", "/api/inbox/preferences", status, &body);
    let no_inbox = json!({"off": ["inbox"]});
    let (status, body) =
        call(&server, Method::PUT, "/api/inbox/preferences", Some(&rep), Some(no_inbox)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    checker.check("put", "/api/inbox/preferences", status, &body);
    let (status, body) =
        call(&server, Method::GET, "/api/admin/deliveries?state=dead", Some(&rep), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    checker.check("get", "/api/admin/deliveries", status, &body);
    let (status, body) =
        call(&server, Method::GET, "/api/admin/deliveries?state=dead", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    checker.check("get", "/api/admin/deliveries", status, &body);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/admin/deliveries/1.email.rep01/retry",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    checker.check("post", "/api/admin/deliveries/{id}/retry", status, &body);
    let preview = format!(
        "/api/admin/preview?template=stalled_deal&record={}&locale=en&reader=rep01",
        deal["id"].as_str().expect("id")
    );
    let (status, body) = call(&server, Method::GET, &preview, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["subject"].as_str().is_some_and(|s| s.contains("注塑机两台")), "{body}");
    checker.check("get", "/api/admin/preview", status, &body);
    let (status, body) =
        call(&server, Method::GET, "/api/admin/preview?template=nope", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    checker.check("get", "/api/admin/preview", status, &body);

    let (status, body) = call(&server, Method::DELETE, "/api/session", Some(&rep), None).await;
    checker.check("delete", "/api/session", status, &body);
    let (status, body) = call(&server, Method::GET, "/api/tasks", Some(&rep), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    checker.check("get", "/api/tasks", status, &body);
    assert!(checker.checked >= 30, "{} answers checked", checker.checked);
}
