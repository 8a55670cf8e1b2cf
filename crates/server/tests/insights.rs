//! `GET /api/insights`: the dashboard's figures as JSON, limited to what the caller
//! may see, on the shipped packs and the demo company.

mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::Value;

/// The number of records of the sales pipeline that reached its first stage.
fn leads(body: &Value) -> u64 {
    body["flows"]
        .as_array()
        .and_then(|flows| flows.iter().find(|flow| flow["flow"] == "sales-pipeline"))
        .and_then(|flow| flow["funnel"][0]["reached"].as_u64())
        .unwrap_or_else(|| panic!("a pipeline funnel in {body:#}"))
}

#[tokio::test]
async fn figures_follow_what_the_caller_may_see() {
    let harness = Harness::new();
    let anonymous = harness.call(Method::GET, "/api/insights", None, None).await;
    anonymous.problem(StatusCode::UNAUTHORIZED);

    let director = harness.login("director").await;
    let all =
        harness.get("/api/insights?period=2027-Q1&lang=en", &director).await.expect(StatusCode::OK);
    let body = &all.body;
    assert_eq!(body["period"], "2027-Q1");
    assert_eq!(
        (body["first_day"].as_str(), body["last_day"].as_str()),
        (Some("2027-01-01"), Some("2027-03-31"))
    );
    assert_eq!(body["sees_all"], true);
    let pipeline = body["flows"]
        .as_array()
        .and_then(|flows| flows.iter().find(|flow| flow["flow"] == "sales-pipeline"))
        .expect("the pipeline");
    assert_eq!(pipeline["title"], "Sales pipeline");
    assert_eq!(pipeline["conversions"][0]["id"], "lead_to_opportunity");
    assert_eq!(pipeline["by_size"][0]["threshold"], 500_000.0);
    let targets = body["coverage"].as_array().expect("coverage");
    assert!(targets.iter().any(|row| row["id"] == "sales" && row["kind"] == "department"));
    assert!(targets.iter().any(|row| row["id"] == "rep09"));

    // This quarter's cohort: everyone's, then one person's.
    let everyone =
        leads(&harness.get("/api/insights", &director).await.expect(StatusCode::OK).body);
    let rep01 = harness.login("rep01").await;
    let own = harness.get("/api/insights", &rep01).await.expect(StatusCode::OK).body;
    assert_eq!(own["sees_all"], false);
    let mine = leads(&own);
    assert!(0 < mine && mine < everyone, "rep01 {mine}, everyone {everyone}");
    let asked = harness.get("/api/insights?rep=rep01", &director).await.expect(StatusCode::OK).body;
    assert_eq!(leads(&asked), mine, "the director filtering on rep01 sees what rep01 sees");
    let rows = own["coverage"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().all(|row| row["id"] == "rep01"), "{rows:?}");

    // Outside one's scope: 403; not understood: 400 naming the parameter.
    let detail = harness.get("/api/insights?rep=rep02", &rep01).await.detail(StatusCode::FORBIDDEN);
    assert!(detail.contains("rep02"), "{detail}");
    harness.get("/api/insights?team=sales-north", &rep01).await.problem(StatusCode::FORBIDDEN);
    // A team the caller sees part of is narrowed to that part.
    let narrowed =
        harness.get("/api/insights?team=sales-east", &rep01).await.expect(StatusCode::OK).body;
    assert_eq!(leads(&narrowed), mine);
    for (uri, word) in [
        ("/api/insights?period=2027-13", "2027-13"),
        ("/api/insights?team=nowhere", "nowhere"),
        ("/api/insights?rep=nobody", "nobody"),
        ("/api/insights?colour=red", "colour"),
        ("/api/insights?lang=fr", "fr"),
    ] {
        let detail = harness.get(uri, &director).await.detail(StatusCode::BAD_REQUEST);
        assert!(detail.contains(word), "{uri}: {detail}");
    }
}
