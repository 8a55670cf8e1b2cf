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

/// 2025-07-01, 2025-07-10 and 2025-08-15, 04:00 UTC (noon in China): before the demo
/// company's own history, so the figures of that quarter are this record's alone.
const JULY_1: i64 = 1_751_342_400_000;
const JULY_10: i64 = 1_752_120_000_000;
const AUGUST_15: i64 = 1_755_230_400_000;

#[tokio::test]
async fn imported_history_counts_at_its_own_dates() {
    let harness = Harness::new();
    let customer = harness.all("customer").into_iter().next().expect("a demo customer");
    let mut fields = serde_json::Map::new();
    fields.insert("name".into(), "历史商机".into());
    fields.insert("customer".into(), customer.into());
    fields.insert("amount".into(), 900_000.into());
    fields.insert("expected_close_date".into(), "2025-08-31".into());
    let stage =
        |stage: &str, at: i64| stagecraft_runtime::ImportedStage { stage: stage.into(), at };
    let deal = stagecraft_engine::ImportedRecord {
        form: "opportunity".into(),
        owner: Some("rep01".into()),
        fields,
        created_at: JULY_1,
        stages: vec![stage("lead", JULY_1), stage("first_contact", JULY_10)],
        ended: Some(stagecraft_runtime::ImportedEnd { outcome: "won".into(), at: AUGUST_15 }),
        links_in_import: Vec::new(),
    };
    harness.state.engine().import(Some("admin"), "old-crm.csv", vec![deal]).expect("imported");

    // Imported today, but created on 1 July and won on 15 August: it counts in Q3.
    let director = harness.login("director").await;
    let q3 = harness
        .get("/api/insights?period=2025-Q3&rep=rep01", &director)
        .await
        .expect(StatusCode::OK)
        .body;
    let pipeline = q3["flows"]
        .as_array()
        .and_then(|flows| flows.iter().find(|flow| flow["flow"] == "sales-pipeline"))
        .cloned()
        .expect("the pipeline");
    assert_eq!(pipeline["cohort"], 1, "{pipeline:#}");
    assert_eq!(pipeline["conversions"][0]["converted"], 1);
    assert_eq!(pipeline["outcomes"]["success"], 1);
    assert_eq!(pipeline["outcomes"]["success_amount"], 900_000.0);
    // 1 July to 15 August: 45 days.
    assert_eq!(pipeline["cycle"]["average_days"], 45.0);
    assert_eq!(pipeline["by_size"][0]["success"], 1, "large (≥ 500 000)");
    // Its history names the end, not the stage: the funnel still counts it as won.
    let funnel = pipeline["funnel"].as_array().cloned().unwrap_or_default();
    let reached: Vec<(String, u64)> = funnel
        .iter()
        .map(|step| {
            (
                step["stage"].as_str().unwrap_or_default().to_owned(),
                step["reached"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        reached,
        [
            ("lead", 1),
            ("first_contact", 1),
            ("needs_confirmed", 1),
            ("proposal", 1),
            ("negotiation", 1),
            ("won", 1)
        ]
        .map(|(stage, count)| (stage.to_owned(), count))
    );
}
