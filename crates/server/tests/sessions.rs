//! Sessions and API tokens: a session survives a restart of the server and a signed-out
//! one stays signed out; an integrator's API token acts as its maker, can be listed
//! and revoked, and cannot mint more tokens.

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, config};
use serde_json::json;
use stagecraft_server::{AppState, ClockChoice, app};

/// Stops the in-process server and starts it again on the same data folder.
fn restart(harness: Harness) -> Harness {
    let Harness { app: router, state, dir } = harness;
    drop(router);
    drop(state);
    let (state, _) = AppState::open(&config(dir.path(), ClockChoice::Manual)).expect("restart");
    Harness { app: app(state.clone()), state, dir }
}

#[tokio::test]
async fn a_session_survives_a_restart_and_a_sign_out_does_too() {
    let harness = Harness::new();
    let kept = harness.login("rep01").await;
    let ended = harness.login("rep02").await;
    harness
        .call(Method::DELETE, "/api/session", Some(&ended), None)
        .await
        .expect(StatusCode::NO_CONTENT);

    let harness = restart(harness);
    harness.get("/api/tasks", &kept).await.expect(StatusCode::OK);
    let detail = harness.get("/api/tasks", &ended).await.detail(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("sign in again"), "{detail}");
}

#[tokio::test]
async fn an_api_token_acts_as_its_maker_until_revoked() {
    let harness = Harness::new();
    let session = harness.login("rep01").await;
    let made = harness
        .post("/api/tokens", &session, json!({"name": "ERP 同步", "days": 30}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let token = made["token"].as_str().expect("the secret").to_owned();
    assert!(token.starts_with("sct_"), "{made}");
    assert_eq!(made["info"]["user"], "rep01");
    assert_eq!(made["info"]["name"], "ERP 同步");
    let id = made["info"]["id"].as_str().expect("an id").to_owned();
    assert!(!token.contains(&id), "the public id is not part of the secret");

    // The token works like the session: rep01's own deal, and not rep05's.
    let own = harness.deal("rep01").await;
    let uri = common::record_uri(&own);
    harness.get(&uri, &token).await.expect(StatusCode::OK);
    let other = harness.deal("rep05").await;
    harness.get(&common::record_uri(&other), &token).await.problem(StatusCode::NOT_FOUND);

    // It lists without its secret, and cannot make or revoke tokens.
    let listed = harness.get("/api/tokens", &token).await.expect(StatusCode::OK).body;
    assert_eq!(listed["tokens"][0]["id"], json!(id));
    assert!(!listed.to_string().contains(&token), "{listed}");
    harness
        .post("/api/tokens", &token, json!({"name": "more"}))
        .await
        .problem(StatusCode::FORBIDDEN);
    let revoke = format!("/api/tokens/{id}");
    harness.call(Method::DELETE, &revoke, Some(&token), None).await.problem(StatusCode::FORBIDDEN);

    // Someone else cannot revoke it; its maker can, and it stops working at once.
    let other_session = harness.login("rep02").await;
    harness
        .call(Method::DELETE, &revoke, Some(&other_session), None)
        .await
        .problem(StatusCode::NOT_FOUND);
    harness
        .call(Method::DELETE, &revoke, Some(&session), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let detail = harness.get(&uri, &token).await.detail(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("revoked"), "{detail}");
    let listed = harness.get("/api/tokens", &session).await.expect(StatusCode::OK).body;
    assert!(listed["tokens"][0]["revoked_at"].is_i64(), "{listed}");
}

#[tokio::test]
async fn api_tokens_expire_and_bad_requests_say_which_field() {
    let harness = Harness::new();
    let session = harness.login("rep01").await;
    let problem = harness
        .post("/api/tokens", &session, json!({"name": " ", "days": 400}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["/name", "/days"]);
    harness.get("/api/tasks", "sct_0123").await.problem(StatusCode::UNAUTHORIZED);

    let made = harness
        .post("/api/tokens", &session, json!({"name": "报表", "days": 1}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let token = made["token"].as_str().expect("the secret").to_owned();
    harness.get("/api/tasks", &token).await.expect(StatusCode::OK);
    let admin = harness.login("admin").await;
    harness.post("/api/admin/clock", &admin, json!({"advance": "2d"})).await.expect(StatusCode::OK);
    let detail = harness.get("/api/tasks", &token).await.detail(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("expired"), "{detail}");
}

#[tokio::test]
async fn signing_in_again_ends_the_session_the_browser_came_with() {
    let harness = Harness::new();
    let old = harness.login("rep01").await;
    let request = axum::http::Request::post("/api/session")
        .header("content-type", "application/json")
        .header("cookie", format!("stagecraft_session={old}"))
        .body(axum::body::Body::from(
            json!({"username": "rep01", "password": "stagecraft"}).to_string(),
        ))
        .expect("request");
    let answer = harness.send(request).await.expect(StatusCode::OK);
    let new = answer.body["token"].as_str().expect("a token").to_owned();
    assert_ne!(new, old);
    assert!(answer.header("set-cookie").contains(&new));
    harness.get("/api/tasks", &new).await.expect(StatusCode::OK);
    let detail = harness.get("/api/tasks", &old).await.detail(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("signed in again"), "{detail}");
}
