//! The customer pool through the JSON API, on the shipped packs and the demo company
//! (which seeds customers nobody owns): listing the pool, claiming, releasing, who may
//! do which, and the idle return with the manual clock.

mod common;

use axum::http::StatusCode;
use common::{Harness, record_uri};
use serde_json::{Value, json};
use stagecraft_store::RecordId;

/// The first customer in the pool, as `token` lists it.
async fn first_in_pool(harness: &Harness, token: &str) -> Value {
    let page = harness.get("/api/pool/customer", token).await.expect(StatusCode::OK).body;
    let records = page["records"].as_array().cloned().unwrap_or_default();
    assert!(records.len() >= 4, "the demo puts customers in the pool: {page:#}");
    assert!(records.iter().all(|record| record["owner"].is_null()), "{page:#}");
    records[0].clone()
}

fn claim_uri(record: &Value) -> String {
    format!("{}/claim", record_uri(record))
}

fn release_uri(record: &Value) -> String {
    format!("{}/release", record_uri(record))
}

#[tokio::test]
async fn the_pool_lists_unowned_customers_with_the_callers_count_and_the_limits() {
    let harness = Harness::new();
    let rep = harness.login("rep03").await;
    let page = harness.get("/api/pool/customer?limit=2", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(2), "{page:#}");
    assert_eq!(page["max_per_owner"], json!(200));
    assert_eq!(page["return_after"], json!("30d"));
    assert_eq!(page["owned"], json!(0));
    let next = page["next"].as_str().expect("a next page").to_owned();
    let rest = harness
        .get(&format!("/api/pool/customer?limit=2&cursor={next}"), &rep)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_ne!(rest["records"][0]["id"], page["records"][0]["id"]);
    // Every signed-in person may read a record in the pool, to decide to claim it.
    let first = &page["records"][0];
    harness.get(&record_uri(first), &rep).await.expect(StatusCode::OK);
    harness.get("/api/pool/customer?sort=name", &rep).await.problem(StatusCode::BAD_REQUEST);
    harness.get("/api/pool/opportunity", &rep).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
    harness.get("/api/pool/nothing", &rep).await.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn claiming_makes_the_caller_the_owner_once() {
    let harness = Harness::new();
    let rep = harness.login("rep03").await;
    let customer = first_in_pool(&harness, &rep).await;
    let claimed = harness.post(&claim_uri(&customer), &rep, json!({})).await.expect(StatusCode::OK);
    assert_eq!(claimed.body["owner"], json!("rep03"));
    let page = harness.get("/api/pool/customer", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(page["owned"], json!(1));
    assert!(
        page["records"].as_array().into_iter().flatten().all(|r| r["id"] != customer["id"]),
        "a claimed customer leaves the pool"
    );
    // Claimed again by the owner, or by someone who sees it (rep03's manager): 409.
    let again = harness.post(&claim_uri(&customer), &rep, json!({})).await;
    assert!(again.detail(StatusCode::CONFLICT).contains("already"));
    let manager = harness.login("mgr-east").await;
    let taken = harness.post(&claim_uri(&customer), &manager, json!({})).await;
    assert!(taken.detail(StatusCode::CONFLICT).contains("belongs to rep03"));
    // Another rep no longer sees it at all.
    let other = harness.login("rep05").await;
    harness.post(&claim_uri(&customer), &other, json!({})).await.problem(StatusCode::NOT_FOUND);
    // The history says who took it.
    let events = harness.get(&format!("{}/events", record_uri(&customer)), &rep).await;
    let events = events.expect(StatusCode::OK).body["events"].clone();
    let last = events.as_array().and_then(|events| events.last()).cloned().unwrap_or_default();
    assert_eq!(last["kind"], json!("owner_changed"));
    assert_eq!(last["data"]["why"], json!("claimed"));
    assert_eq!(last["data"]["to"], json!("rep03"));
    assert_eq!(last["data"]["by"], json!("rep03"));
}

#[tokio::test]
async fn the_owner_or_their_manager_releases_but_another_rep_cannot() {
    let harness = Harness::new();
    let rep = harness.login("rep03").await;
    let customer = first_in_pool(&harness, &rep).await;
    harness.post(&claim_uri(&customer), &rep, json!({})).await.expect(StatusCode::OK);
    let other = harness.login("rep05").await;
    harness.post(&release_uri(&customer), &other, json!({})).await.problem(StatusCode::NOT_FOUND);
    let released =
        harness.post(&release_uri(&customer), &rep, json!({})).await.expect(StatusCode::OK);
    assert!(released.body["owner"].is_null());
    let twice = harness.post(&release_uri(&customer), &rep, json!({})).await;
    assert!(twice.detail(StatusCode::CONFLICT).contains("in the pool already"));
    // rep03's manager may give rep03's customer back.
    harness.post(&claim_uri(&customer), &rep, json!({})).await.expect(StatusCode::OK);
    let manager = harness.login("mgr-east").await;
    let back = harness.post(&release_uri(&customer), &manager, json!({})).await;
    assert!(back.expect(StatusCode::OK).body["owner"].is_null());
}

#[tokio::test]
async fn a_form_without_a_pool_answers_422() {
    let harness = Harness::new();
    let deal = harness.deal("rep01").await;
    let rep = harness.login("rep01").await;
    let problem = harness.post(&claim_uri(&deal), &rep, json!({})).await;
    assert!(problem.detail(StatusCode::UNPROCESSABLE_ENTITY).contains("no pool"));
    harness
        .post(&release_uri(&deal), &rep, json!({}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_idle_customer_returns_to_the_pool_and_its_former_owner_is_told() {
    let harness = Harness::new();
    let rep = harness.login("rep03").await;
    let customer = first_in_pool(&harness, &rep).await;
    let id = customer["id"].as_str().unwrap_or_default().to_owned();
    harness.post(&claim_uri(&customer), &rep, json!({})).await.expect(StatusCode::OK);
    // Four weeks are fewer than 30 working days: still rep03's.
    harness.clock(json!({"advance": "4w"})).await;
    let record = harness.state.engine().record(&id).expect("read").expect("the customer");
    assert_eq!(record.owner.as_deref(), Some("rep03"));
    // Eight weeks later it is more than 30 working days without activity.
    harness.clock(json!({"advance": "4w"})).await;
    let record = harness.state.engine().record(&id).expect("read").expect("the customer");
    assert_eq!(record.owner, None, "an idle customer goes back to the pool");
    let events = harness.state.engine().store().events_of(&RecordId::new(id.as_str()));
    let last = events.expect("events").last().cloned().expect("an event");
    assert_eq!(last.kind, "owner_changed");
    assert_eq!(last.data["why"], json!("returned_idle"));
    assert_eq!(last.data["from"], json!("rep03"));
    assert!(last.data.get("by").is_none(), "the sweep is no person");
    let told =
        harness.state.engine().store().outbox_pending(10_000).expect("the outbox").into_iter().any(
            |row| {
                row.data["record"] == json!(id)
                    && row.data["to"] == json!(["rep03"])
                    && row.data["template"] == json!("customer_returned_to_pool")
            },
        );
    assert!(told, "the former owner gets a message");
    // Anyone may claim it again.
    let other = harness.login("rep05").await;
    let claimed = harness.post(&claim_uri(&customer), &other, json!({})).await;
    assert_eq!(claimed.expect(StatusCode::OK).body["owner"], json!("rep05"));
}

/// The shipped packs with customers limited to two per person.
fn harness_with_two_customers_each() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let packs = dir.path().join("packs");
    for folder in ["flows", "schemas"] {
        common::copy_folder(&common::repo().join(folder), &packs.join(folder));
    }
    let customer = packs.join("schemas/sales/customer.json");
    let text = std::fs::read_to_string(&customer).expect("the customer form");
    assert!(text.contains("\"max_per_owner\": 200"));
    std::fs::write(&customer, text.replace("\"max_per_owner\": 200", "\"max_per_owner\": 2"))
        .expect("written");
    let mut config = common::config(dir.path(), stagecraft_server::ClockChoice::Manual);
    config.packs = vec![packs.join("flows"), packs.join("schemas")];
    let (state, _) = match stagecraft_server::AppState::open(&config) {
        Ok(opened) => opened,
        Err(error) => panic!("the server must start: {error}"),
    };
    Harness { app: stagecraft_server::app(state.clone()), state, dir }
}

#[tokio::test]
async fn nobody_claims_more_than_max_per_owner() {
    let harness = harness_with_two_customers_each();
    let rep = harness.login("rep03").await;
    let page = harness.get("/api/pool/customer", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(page["max_per_owner"], json!(2));
    let records = page["records"].as_array().cloned().unwrap_or_default();
    for record in &records[..2] {
        harness.post(&claim_uri(record), &rep, json!({})).await.expect(StatusCode::OK);
    }
    let refused = harness.post(&claim_uri(&records[2]), &rep, json!({})).await;
    assert!(refused.detail(StatusCode::CONFLICT).contains("max_per_owner: 2"));
    let record = harness.state.engine().record(records[2]["id"].as_str().unwrap_or_default());
    assert_eq!(record.expect("read").expect("the customer").owner, None);
    // Releasing one makes room again.
    harness.post(&release_uri(&records[0]), &rep, json!({})).await.expect(StatusCode::OK);
    harness.post(&claim_uri(&records[2]), &rep, json!({})).await.expect(StatusCode::OK);
}
