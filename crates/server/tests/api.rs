//! The JSON API, called in-process through the router (no socket), on the shipped
//! packs with the demo company and a manual clock: every endpoint, every error
//! answer, and who may see and change whose records.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Answer, Harness, config, deal_fields, record_uri, repo};
use serde_json::{Value, json};
use stagecraft_server::{AppState, ClockChoice, MAX_BODY_BYTES};
use stagecraft_store::{Page, RecordId};

/// 2026-11-30 (a Monday) 10:00 in China, a normal working day.
const MONDAY_10AM: &str = "2026-11-30T10:00:00+08:00";

#[tokio::test]
async fn health_answers_ok_with_the_security_headers() {
    let server = Harness::new();
    let answer = server.call(Method::GET, "/healthz", None, None).await.expect(StatusCode::OK);
    assert_eq!(answer.body, json!({"status": "ok"}));
    for answer in [answer, server.call(Method::GET, "/nowhere", None, None).await] {
        assert_eq!(answer.header("x-content-type-options"), "nosniff");
        assert_eq!(answer.header("x-frame-options"), "DENY");
        assert_eq!(answer.header("referrer-policy"), "no-referrer");
        assert!(answer.header("content-security-policy").contains("default-src 'none'"));
        assert_eq!(answer.header("cache-control"), "no-store");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let server = Harness::new();
    server.call(Method::GET, "/api/nothing", None, None).await.problem(StatusCode::NOT_FOUND);
    let problem = server
        .call(Method::PUT, "/api/session", None, None)
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem["type"], "urn:stagecraft:problem:method-not-allowed");
}

// ----- signing in ---------------------------------------------------------------------------

#[tokio::test]
async fn signing_in_gives_a_token_and_an_http_only_cookie() {
    let server = Harness::new();
    let answer = server
        .call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"username": "rep01", "password": "stagecraft"})),
        )
        .await
        .expect(StatusCode::OK);
    let token = answer.body["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(answer.body["user"]["name"], "林晓峰");
    assert_eq!(answer.body["user"]["roles"], json!(["sales_rep"]));
    let cookie = answer.header("set-cookie");
    assert!(cookie.starts_with(&format!("stagecraft_session={token};")), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    // The cookie alone signs the request in.
    let request = Request::get("/api/tasks")
        .header("cookie", format!("theme=dark; stagecraft_session={token}"))
        .body(Body::empty())
        .expect("request");
    server.send(request).await.expect(StatusCode::OK);
    // Signing out ends the session.
    let answer = server.call(Method::DELETE, "/api/session", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.header("set-cookie").contains("Max-Age=0"));
    server.get("/api/tasks", &token).await.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_wrong_login_gets_a_precise_answer() {
    let server = Harness::new();
    let login = |body: Value| server.call(Method::POST, "/api/session", None, Some(body));
    let wrong = login(json!({"username": "rep01", "password": "Stagecraft"}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let unknown = login(json!({"username": "nobody", "password": "stagecraft"}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // Whether the username exists is not told.
    assert_eq!(wrong["detail"], unknown["detail"]);
    let missing = login(json!({"username": "rep01"})).await.problem(StatusCode::BAD_REQUEST);
    assert!(
        missing["detail"].as_str().unwrap_or_default().contains("missing field `password`"),
        "{missing}"
    );
    let empty = login(json!({"username": "rep01", "password": ""}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty["errors"][0]["pointer"], "/password");
    assert!(empty["errors"][0]["message_zh"].is_string());
    let request = Request::post("/api/session")
        .header("content-type", "application/json")
        .body(Body::from("{\"username\": \"rep01\","))
        .expect("request");
    let malformed = server.send(request).await.problem(StatusCode::BAD_REQUEST);
    assert!(malformed["detail"].as_str().unwrap_or_default().contains("EOF"), "{malformed}");
    let request = Request::post("/api/session")
        .header("content-type", "text/plain")
        .body(Body::from("username=rep01"))
        .expect("request");
    server.send(request).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn failed_logins_are_limited_per_username() {
    let server = Harness::new();
    let login = |user: &'static str, password: &'static str| {
        server.call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"username": user, "password": password})),
        )
    };
    for _ in 0..5 {
        login("rep01", "guess").await.problem(StatusCode::UNAUTHORIZED);
    }
    let answer = login("rep01", "stagecraft").await;
    assert!(answer.header("retry-after").parse::<u64>().is_ok_and(|secs| secs > 0 && secs <= 60));
    let limited = answer.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited["type"], "urn:stagecraft:problem:too-many-attempts");
    // Someone else is not locked out.
    login("rep02", "stagecraft").await.expect(StatusCode::OK);
}

#[tokio::test]
async fn requests_without_a_live_session_are_401() {
    let server = Harness::new();
    let none = server.call(Method::GET, "/api/tasks", None, None).await;
    assert_eq!(none.header("www-authenticate"), "Bearer");
    none.problem(StatusCode::UNAUTHORIZED);
    server.get("/api/tasks", "0123abcd").await.problem(StatusCode::UNAUTHORIZED);
    let request = Request::get("/api/tasks")
        .header("authorization", "Basic cmVwMDE6c3RhZ2VjcmFmdA==")
        .body(Body::empty())
        .expect("request");
    server.send(request).await.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_end_after_eight_idle_hours_on_the_engine_clock() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    server.clock(json!({"advance": "7h"})).await;
    server.get("/api/tasks", &rep).await.expect(StatusCode::OK);
    server.clock(json!({"advance": "9h"})).await;
    let ended = server.get("/api/tasks", &rep).await.problem(StatusCode::UNAUTHORIZED);
    assert!(ended["detail"].as_str().unwrap_or_default().contains("8 hours"), "{ended}");
    // And after 24 hours whatever the activity.
    let rep = server.login("rep01").await;
    for _ in 0..3 {
        server.clock(json!({"advance": "7h"})).await;
        server.get("/api/tasks", &rep).await.expect(StatusCode::OK);
    }
    server.clock(json!({"advance": "4h"})).await;
    let ended = server.get("/api/tasks", &rep).await.problem(StatusCode::UNAUTHORIZED);
    assert!(ended["detail"].as_str().unwrap_or_default().contains("24 hours"), "{ended}");
}

// ----- records ----------------------------------------------------------------------------------

#[tokio::test]
async fn creating_a_record_answers_201_with_its_id() {
    let server = Harness::new();
    let token = server.login("rep01").await;
    let customer = server
        .post("/api/records/customer", &token, json!({"fields": {"name": "苏州新客户"}}))
        .await
        .expect(StatusCode::CREATED);
    let id = customer.body["id"].as_str().expect("id").to_owned();
    assert_eq!(customer.header("location"), format!("/api/records/customer/{id}"));
    assert_eq!(customer.body["owner"], "rep01");
    assert_eq!(customer.body["fields"]["name"], "苏州新客户");
    let read =
        server.get(&format!("/api/records/customer/{id}"), &token).await.expect(StatusCode::OK);
    assert_eq!(read.body, customer.body);
}

#[tokio::test]
async fn an_idempotency_key_makes_one_record() {
    let server = Harness::new();
    let token = server.login("rep01").await;
    let before = server.deals_of("rep01").len();
    let customer = server
        .post("/api/records/customer", &token, json!({"fields": {"name": "重复提交测试"}}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let create = |token: String, key: &'static str| {
        let request = Request::post("/api/records/opportunity")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(json!({"fields": deal_fields(&customer)}).to_string()))
            .expect("request");
        server.send(request)
    };
    let first = create(token.clone(), "order-7").await.expect(StatusCode::CREATED);
    let again = create(token.clone(), "order-7").await.expect(StatusCode::OK);
    assert_eq!(again.body, first.body);
    assert_eq!(server.deals_of("rep01").len(), before + 1);
    // Another key is another deal.
    create(token.clone(), "order-8").await.expect(StatusCode::CREATED);
    assert_eq!(server.deals_of("rep01").len(), before + 2);
    let bad = create(token, "with space").await.problem(StatusCode::BAD_REQUEST);
    assert!(bad["detail"].as_str().unwrap_or_default().contains("idempotency key"));
}

#[tokio::test]
async fn a_repeated_move_or_decision_with_its_idempotency_key_happens_once() {
    let server = Harness::new();
    let token = server.login("rep01").await;
    let deal = server.deal("rep01").await;
    let uri = record_uri(&deal);
    server
        .patch(&uri, &token, json!({"version": deal["version"], "fields": {"region": "east"}}))
        .await
        .expect(StatusCode::OK);
    let request = |token: &str, key: &str| {
        Request::post(format!("{uri}/transitions"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(json!({"to": "first_contact"}).to_string()))
            .expect("request")
    };
    let first = server.send(request(&token, "move-1")).await.expect(StatusCode::OK);
    // The answer to the first request was lost; the client sends it again.
    let again = server.send(request(&token, "move-1")).await.expect(StatusCode::OK);
    assert_eq!(again.body["flow"]["stage"], "first_contact");
    assert_eq!(again.body["version"], first.body["version"]);
    let events = server.get(&format!("{uri}/events"), &token).await.expect(StatusCode::OK).body;
    let moves = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["kind"] == "stage_changed" && event["data"]["to"] == "first_contact")
        .count();
    assert_eq!(moves, 1, "{events:#}");
    // Without the key the repeat is a request of its own, and the flow refuses it.
    let plain =
        server.post(&format!("{uri}/transitions"), &token, json!({"to": "first_contact"})).await;
    assert!(plain.status.is_client_error(), "{:#}", plain.body);
}

#[tokio::test]
async fn missing_and_invalid_fields_are_422_with_pointers() {
    let server = Harness::new();
    let token = server.login("rep01").await;
    let problem = server
        .post(
            "/api/records/opportunity",
            &token,
            json!({"fields": {"name": "缺金额", "expected_close_date": "2027-01-31", "amount": "很多"}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["type"], "urn:stagecraft:problem:invalid-fields");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert!(pointers.contains(&"/customer"), "{problem:#}");
    assert!(pointers.contains(&"/amount"), "{problem:#}");
    for error in problem["errors"].as_array().into_iter().flatten() {
        assert!(error["message_zh"].is_string() && error["message_en"].is_string(), "{error}");
    }
    // The body must have the endpoint's shape.
    let wrong_shape = server
        .post("/api/records/opportunity", &token, json!({"name": "没有 fields"}))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(wrong_shape["detail"].as_str().unwrap_or_default().contains("unknown field `name`"));
}

#[tokio::test]
async fn unknown_forms_and_records_are_404() {
    let server = Harness::new();
    let token = server.login("admin").await;
    server.get("/api/records/no_such_form/x", &token).await.problem(StatusCode::NOT_FOUND);
    server
        .post("/api/records/no_such_form", &token, json!({"fields": {}}))
        .await
        .problem(StatusCode::NOT_FOUND);
    server.get("/api/records/opportunity/no-such-id", &token).await.problem(StatusCode::NOT_FOUND);
    // Internal records are not records of any form.
    server.get("/api/records/_credential/admin", &token).await.problem(StatusCode::NOT_FOUND);
    server.get("/api/records/_server/_server", &token).await.problem(StatusCode::NOT_FOUND);
    // A record asked for under another form does not exist there.
    let deal = server.deals_of("rep01").remove(0);
    server
        .get(&format!("/api/records/customer/{deal}"), &token)
        .await
        .problem(StatusCode::NOT_FOUND);
    server.get(&format!("/api/records/opportunity/{deal}"), &token).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = Harness::new();
    let token = server.login("rep01").await;
    let huge = "x".repeat(MAX_BODY_BYTES + 1);
    let problem = server
        .post("/api/records/customer", &token, json!({"fields": {"name": huge}}))
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem["type"], "urn:stagecraft:problem:body-too-large");
}

#[tokio::test]
async fn updates_name_the_version_they_change() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let uri = record_uri(&deal);
    let token = server.login("rep01").await;
    let version = deal["version"].as_u64().expect("version");
    let changed = server
        .patch(
            &uri,
            &token,
            json!({"version": version, "fields": {"region": "east", "amount": 450000}}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(changed["version"], json!(version + 1));
    assert_eq!(changed["fields"]["amount"], 450000);
    let stale = server
        .patch(&uri, &token, json!({"version": version, "fields": {"amount": 1}}))
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(stale["type"], "urn:stagecraft:problem:stale-version");
    assert_eq!(stale["version"], json!(version + 1));
    let invalid = server
        .patch(&uri, &token, json!({"version": version + 1, "fields": {"region": "mars"}}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid["errors"][0]["pointer"], "/region");
    let missing = server
        .patch(&uri, &token, json!({"fields": {"amount": 1}}))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(missing["detail"].as_str().unwrap_or_default().contains("missing field `version`"));
    // Clearing a field the first stage requires is refused.
    let cleared = server
        .patch(&uri, &token, json!({"version": version + 1, "fields": {"amount": null}}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cleared["errors"][0]["pointer"], "/amount");
}

#[tokio::test]
async fn a_closed_gate_answers_409_with_the_runtime_reasons() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let id = deal["id"].as_str().expect("id").to_owned();
    let token = server.login("rep01").await;
    let uri = format!("{}/transitions", record_uri(&deal));
    let problem = server
        .post(&uri, &token, json!({"to": "first_contact"}))
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(problem["type"], "urn:stagecraft:problem:gate-closed");
    // Exactly what the runtime says (a refusal changes nothing, so asking again is safe).
    let refused = server.state.engine().execute(
        Some("rep01"),
        stagecraft_engine::Target::Existing(id.clone()),
        stagecraft_runtime::Command::Transition { to: stagecraft_model::Id::from("first_contact") },
        None,
    );
    let Err(stagecraft_engine::EngineError::Refused(stagecraft_runtime::Refusal::Gated(reasons))) =
        refused
    else {
        panic!("the runtime must refuse: {refused:?}");
    };
    assert_eq!(problem["reasons"], json!(reasons));
    let reason = &problem["reasons"][0];
    assert_eq!(reason["kind"], "field");
    assert_eq!(reason["subject"], "region");
    assert!(reason["message_zh"].is_string() && reason["message_en"].is_string());
    assert_eq!(server.version(&id), deal["version"].as_u64().expect("version"));
    // A stage the flow does not have.
    server.post(&uri, &token, json!({"to": "nowhere"})).await.problem(StatusCode::CONFLICT);
    server
        .post(&uri, &token, json!({"stage": "first_contact"}))
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_transition_moves_the_record_and_its_events_tell_the_story() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let uri = record_uri(&deal);
    let token = server.login("rep01").await;
    let version = deal["version"].as_u64().expect("version");
    server
        .patch(&uri, &token, json!({"version": version, "fields": {"region": "east"}}))
        .await
        .expect(StatusCode::OK);
    let moved = server
        .post(&format!("{uri}/transitions"), &token, json!({"to": "first_contact"}))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(moved["flow"]["stage"], "first_contact");
    let events = server.get(&format!("{uri}/events"), &token).await.expect(StatusCode::OK).body;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["created", "flow_started", "stage_changed", "fields_changed", "stage_changed"]
    );
    assert_eq!(events["events"][4]["data"]["to"], "first_contact");
}

#[tokio::test]
async fn approvals_are_decided_by_their_approvers() {
    let server = Harness::new();
    // The seeded deal of rep02 waits in needs_confirmed for mgr-east.
    let manager = server.login("mgr-east").await;
    let tasks = server.get("/api/tasks", &manager).await.expect(StatusCode::OK).body;
    let task = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|task| task["data"]["kind"]["kind"] == "approval")
        .expect("an approval task for mgr-east")
        .clone();
    let record = task["data"]["record"].as_str().expect("record");
    let uri = format!("/api/records/opportunity/{record}/approvals/regional_manager_review");
    let owner = server.login("rep02").await;
    let forbidden =
        server.post(&uri, &owner, json!({"approve": true})).await.problem(StatusCode::FORBIDDEN);
    assert!(forbidden["detail"].as_str().unwrap_or_default().contains("not an approver"));
    let no_reason = server
        .post(&uri, &manager, json!({"approve": false}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_reason["errors"][0]["pointer"], "/reason");
    let approved =
        server.post(&uri, &manager, json!({"approve": true})).await.expect(StatusCode::OK).body;
    assert_eq!(approved["flow"]["approvals"]["regional_manager_review"]["status"], "approved");
    let again =
        server.post(&uri, &manager, json!({"approve": true})).await.problem(StatusCode::CONFLICT);
    assert_eq!(again["type"], "urn:stagecraft:problem:not-applicable");
    server
        .post(
            &format!("/api/records/opportunity/{record}/approvals/no_such"),
            &manager,
            json!({"approve": true}),
        )
        .await
        .problem(StatusCode::CONFLICT);
    // The task is done.
    let tasks = server.get("/api/tasks", &manager).await.expect(StatusCode::OK).body;
    assert!(tasks["tasks"].as_array().into_iter().flatten().all(|t| t["id"] != task["id"]));
}

#[tokio::test]
async fn tasks_are_the_callers_and_their_roles() {
    let server = Harness::new();
    let legal = server.login("legal").await;
    let tasks = server.get("/api/tasks", &legal).await.expect(StatusCode::OK).body;
    let assignees: Vec<&str> = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["assignee"].as_str())
        .collect();
    assert_eq!(assignees, ["role:legal"], "{tasks:#}");
    let rep = server.login("rep03").await;
    let tasks = server.get("/api/tasks", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(tasks["tasks"], json!([]));
}

#[tokio::test]
async fn links_must_name_records_the_caller_can_see() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let customer = deal["fields"]["customer"].clone();
    let other = server.login("rep02").await;
    let problem = server
        .post(
            "/api/records/opportunity",
            &other,
            json!({"fields": deal_fields(&json!({"id": customer}))}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let missing = server
        .post(
            "/api/records/opportunity",
            &other,
            json!({"fields": deal_fields(&json!({"id": "no-such-id"}))}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/customer");
    // Someone else's customer and no customer at all read the same.
    assert_eq!(
        problem["errors"][0]["message_en"]
            .as_str()
            .map(|m| m.replace(customer.as_str().unwrap_or_default(), "")),
        missing["errors"][0]["message_en"].as_str().map(|m| m.replace("no-such-id", "")),
    );
    // Nor can work be attached to someone else's deal.
    server
        .post(
            "/api/records/interaction",
            &other,
            json!({"fields": {"kind": "visit", "status": "planned", "customer": customer, "opportunity": deal["id"], "happened_at": "2026-12-01T10:00:00+08:00"}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_bad_link_and_a_missing_field_are_reported_together() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    let problem = server
        .post(
            "/api/records/opportunity",
            &rep,
            json!({"fields": {"name": "x", "customer": "no-such-id", "amount": 5}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["/customer", "/expected_close_date"], "{problem:#}");
}

// ----- who sees what -------------------------------------------------------------------------

const EVERYONE: [&str; 24] = [
    "admin",
    "director",
    "dept-head",
    "legal",
    "finance",
    "cs",
    "mgr-east",
    "mgr-south",
    "mgr-north",
    "rep01",
    "rep02",
    "rep03",
    "rep04",
    "rep05",
    "rep06",
    "rep07",
    "rep08",
    "rep09",
    "rep10",
    "rep11",
    "rep12",
    "service-mgr",
    "eng01",
    "eng02",
];

#[tokio::test]
async fn every_role_against_someone_elses_deal() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let id = deal["id"].as_str().expect("id").to_owned();
    let uri = record_uri(&deal);
    // The owner, the owner's manager, the head of the regional centre above the
    // owner's team, and the two roles that see everything.
    let allowed = ["rep01", "mgr-east", "dept-head", "director", "admin"];
    for user in EVERYONE {
        let token = server.login(user).await;
        let may = allowed.contains(&user);
        let hidden = |answer: Answer, what: &str| {
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{user} {what}: {:#}", answer.body);
            assert_eq!(answer.body["detail"], format!("there is no opportunity record {id}"));
        };
        let read = server.get(&uri, &token).await;
        if may {
            read.expect(StatusCode::OK);
        } else {
            hidden(read, "read");
        }
        let events = server.get(&format!("{uri}/events"), &token).await;
        if may {
            events.expect(StatusCode::OK);
        } else {
            hidden(events, "events");
        }
        let version = server.version(&id);
        let update = server
            .patch(
                &uri,
                &token,
                json!({"version": version, "fields": {"next_step_plan": format!("{user} 跟进")}}),
            )
            .await;
        if may {
            update.expect(StatusCode::OK);
        } else {
            hidden(update, "update");
        }
        let transition = server
            .post(&format!("{uri}/transitions"), &token, json!({"to": "first_contact"}))
            .await;
        if may {
            assert_eq!(transition.status, StatusCode::CONFLICT, "{user}: the gate, not access");
        } else {
            hidden(transition, "transition");
        }
        let decide = server
            .post(
                &format!("{uri}/approvals/regional_manager_review"),
                &token,
                json!({"approve": true}),
            )
            .await;
        if may {
            assert_eq!(
                decide.status,
                StatusCode::CONFLICT,
                "{user}: nothing to decide in this stage"
            );
        } else {
            hidden(decide, "decide");
        }
    }
    // Only the allowed people changed it.
    let changes =
        server.state.engine().store().events_of(&RecordId::new(id.as_str())).expect("events");
    assert_eq!(
        changes.iter().filter(|event| event.kind == "fields_changed").count(),
        allowed.len()
    );
}

#[tokio::test]
async fn a_manager_sees_the_team_and_not_other_teams() {
    let server = Harness::new();
    let south = server.login("mgr-south").await;
    for deal in server.deals_of("rep05") {
        server
            .get(&format!("/api/records/opportunity/{deal}"), &south)
            .await
            .expect(StatusCode::OK);
    }
    for deal in server.deals_of("rep09") {
        server
            .get(&format!("/api/records/opportunity/{deal}"), &south)
            .await
            .problem(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn legal_and_finance_see_what_is_routed_to_them_while_it_is() {
    let server = Harness::new();
    let legal = server.login("legal").await;
    let finance = server.login("finance").await;
    let tasks = server.get("/api/tasks", &legal).await.expect(StatusCode::OK).body;
    let contract =
        tasks["tasks"][0]["data"]["record"].as_str().expect("a contract for legal").to_owned();
    let uri = format!("/api/records/contract/{contract}");
    server.get(&uri, &legal).await.expect(StatusCode::OK);
    server.get(&uri, &finance).await.problem(StatusCode::NOT_FOUND);
    // Legal approves the contract: the review task closes, and with it legal's view.
    let version = server.version(&contract);
    server
        .patch(
            &uri,
            &legal,
            json!({"version": version, "fields": {"legal_opinion": "条款合规，同意签署。"}}),
        )
        .await
        .expect(StatusCode::OK);
    server
        .post(&format!("{uri}/transitions"), &legal, json!({"to": "signing"}))
        .await
        .expect(StatusCode::OK);
    server.get(&uri, &legal).await.problem(StatusCode::NOT_FOUND);
    // The owner has it signed; the invoicing task goes to finance, who now sees it.
    let owner = server.login("rep09").await;
    let upload = Request::post("/api/files?name=scan.pdf")
        .header("authorization", format!("Bearer {owner}"))
        .header("content-type", "application/pdf")
        .body(Body::from("%PDF-1.7\n%%EOF\n"))
        .expect("request");
    let scan = server.send(upload).await.expect(StatusCode::CREATED).body["id"].clone();
    let version = server.version(&contract);
    server
        .patch(
            &uri,
            &owner,
            json!({"version": version, "fields": {"scanned_contract": scan, "signed_at": "2026-12-02"}}),
        )
        .await
        .expect(StatusCode::OK);
    server
        .post(&format!("{uri}/transitions"), &owner, json!({"to": "signed"}))
        .await
        .expect(StatusCode::OK);
    server.get(&uri, &finance).await.expect(StatusCode::OK);
    let tasks = server.get("/api/tasks", &finance).await.expect(StatusCode::OK).body;
    assert_eq!(tasks["tasks"][0]["assignee"], "role:finance_bp");
    server.get(&uri, &server.login("cs").await).await.problem(StatusCode::NOT_FOUND);
}

// ----- the manual clock ----------------------------------------------------------------------

#[tokio::test]
async fn moving_the_clock_fires_slas_and_escalations() {
    let server = Harness::new();
    let moved = server.clock(json!({"now": MONDAY_10AM})).await;
    assert_eq!(moved["now"], "2026-11-30T02:00:00+00:00");
    let deal = server.deal("rep01").await;
    let moved = server.clock(json!({"advance": "3d"})).await;
    assert!(moved["timers_fired"].as_u64().is_some_and(|fired| fired >= 2), "{moved}");
    let token = server.login("rep01").await;
    let events = server
        .get(&format!("{}/events", record_uri(&deal)), &token)
        .await
        .expect(StatusCode::OK)
        .body;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"sla_breached"), "{kinds:?}");
    assert!(kinds.contains(&"escalated"), "{kinds:?}");
    let pending = server.state.engine().store().outbox_pending(1000).expect("outbox");
    let escalation = pending
        .iter()
        .find(|row| row.data["record"] == deal["id"] && row.data["cause"] == "escalation")
        .expect("an escalation notice");
    assert_eq!(escalation.data["to"], json!(["rep01", "mgr-east"]));
}

#[tokio::test]
async fn only_an_admin_moves_the_clock_and_only_in_a_valid_way() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    server
        .post("/api/admin/clock", &rep, json!({"advance": "1d"}))
        .await
        .problem(StatusCode::FORBIDDEN);
    let admin = server.login("admin").await;
    let bad_unit = server
        .post("/api/admin/clock", &admin, json!({"advance": "3y"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_unit["errors"][0]["pointer"], "/advance");
    let bad_time = server
        .post("/api/admin/clock", &admin, json!({"now": "next monday"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_time["errors"][0]["pointer"], "/now");
    server
        .post("/api/admin/clock", &admin, json!({"advance": "1d", "now": MONDAY_10AM}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    server
        .post("/api/admin/clock", &admin, json!({}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let before = server.state.engine().now();
    server.post("/api/admin/clock", &admin, json!({"advance": "90m"})).await.expect(StatusCode::OK);
    assert_eq!(server.state.engine().now(), before + 90 * 60_000);
}

#[tokio::test]
async fn without_a_manual_clock_there_is_no_clock_endpoint() {
    let server = Harness::with_clock(ClockChoice::System);
    let admin = server.login("admin").await;
    server
        .post("/api/admin/clock", &admin, json!({"advance": "1d"}))
        .await
        .problem(StatusCode::NOT_FOUND);
}

// ----- starting again --------------------------------------------------------------------------

#[test]
fn the_demo_company_is_created_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), ClockChoice::Manual);
    let records = {
        let (state, startup) = AppState::open(&config).expect("first start");
        let demo = startup.demo.expect("demo");
        assert!(demo.created);
        assert!(demo.records >= 15, "{}", demo.records);
        let text = demo.to_string();
        assert!(text.contains("password for everyone: stagecraft"), "{text}");
        assert!(text.contains("rep12"), "{text}");
        let definitions = state.engine().definitions();
        definitions
            .forms
            .keys()
            .map(|form| {
                state
                    .engine()
                    .store()
                    .records_of_form(form.as_str(), Page::first(1000))
                    .expect("list")
                    .len()
            })
            .sum::<usize>()
    };
    let (state, startup) = AppState::open(&config).expect("second start");
    let demo = startup.demo.expect("demo");
    assert!(!demo.created);
    assert_eq!(demo.logins.len(), 24);
    let definitions = state.engine().definitions();
    let again: usize = definitions
        .forms
        .keys()
        .map(|form| {
            state
                .engine()
                .store()
                .records_of_form(form.as_str(), Page::first(1000))
                .expect("list")
                .len()
        })
        .sum();
    assert_eq!(again, records);
    // Passwords are stored as Argon2id hashes, never as the password.
    let stored = state
        .engine()
        .store()
        .record(&RecordId::new("_credential/rep01"))
        .expect("read")
        .expect("credential");
    let text = stored.value.to_string();
    assert!(text.contains("$argon2id$"), "{text}");
    assert!(!text.contains("\"stagecraft\""), "{text}");
}

#[test]
fn broken_packs_stop_the_start_with_their_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(dir.path(), ClockChoice::System);
    config.packs = vec![repo().join("tests/fixtures/broken/01-unknown-key")];
    match AppState::open(&config) {
        Err(stagecraft_server::ServerError::Packs(report)) => assert!(report.has_errors()),
        other => panic!("broken packs must not start: {:?}", other.map(|_| ())),
    }
}
