//! CSV import through the JSON API, on the shipped packs and the demo company: the
//! dry run's per-row report, all or nothing, history kept (creation date, stage,
//! outcome, an `imported` event), the job's progress, and who may import.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, repo};
use serde_json::{Value, json};
use stagecraft_store::RecordId;

/// Deals from another CRM, for customers of the demo company, with that system's
/// stage names.
const DEALS: &str = "商机名称,客户,预计金额（元）,预计成交日期,阶段,负责人,创建日期,成交日期\n\
    精工三期改造,苏州精工机械有限公司,\"1,280,000\",2025-06-30,赢单,林晓峰,2024-04-01,2025-05-20\n\
    海创产线升级,宁波海创汽车零部件有限公司,85万,2026/9/30,谈判中,rep02,2025-11-12,\n";

fn deals_mapping() -> Value {
    json!({
        "stage_names": {"谈判中": "negotiation", "赢单": "won", "输单": "lost"},
        "closed": "成交日期",
        "source": "旧 CRM",
    })
}

/// Waits for an import job to end; answers its last status.
async fn finished(harness: &Harness, token: &str, location: &str) -> Value {
    for _ in 0..600 {
        let status = harness.get(location, token).await.expect(StatusCode::OK).body;
        if status["state"] != "running" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the import job did not end");
}

#[tokio::test]
async fn a_dry_run_reports_every_problem_with_its_row_and_column_and_writes_nothing() {
    let harness = Harness::new();
    let admin = harness.login("admin").await;
    let before = harness.all("opportunity").len();
    let csv = format!("{DEALS}坏行,没有这家公司,很多,2026-13-01,火星,nobody,昨天,\n");
    let answer = harness
        .post(
            "/api/import/opportunity?dry_run=true",
            &admin,
            json!({"csv": csv, "mapping": deals_mapping()}),
        )
        .await
        .expect(StatusCode::OK);
    let report = answer.body;
    assert_eq!(report["rows"], 3);
    assert_eq!(report["valid_rows"], 2);
    assert_eq!(report["mapping"]["columns"]["amount"], "预计金额（元）", "found from the header");
    let problems = report["problems"].as_array().expect("problems");
    let at = |column: &str| {
        problems
            .iter()
            .find(|p| p["column"] == column)
            .unwrap_or_else(|| panic!("{column}: {problems:#?}"))
    };
    for column in ["客户", "预计金额（元）", "预计成交日期", "阶段", "负责人", "创建日期"]
    {
        assert_eq!(at(column)["row"], 4, "row 4 of the file (the header is row 1)");
    }
    assert_eq!(at("预计金额（元）")["field"], "amount");
    assert_eq!(at("预计金额（元）")["value"], "很多");
    assert!(at("阶段")["message_zh"].as_str().is_some_and(|m| m.contains("火星")));
    assert!(at("阶段")["message_en"].as_str().is_some_and(|m| m.contains("not a stage")));
    assert_eq!(harness.all("opportunity").len(), before, "a dry run writes nothing");
}

#[tokio::test]
async fn one_bad_row_and_nothing_is_written() {
    let harness = Harness::new();
    let admin = harness.login("admin").await;
    let before = harness.all("opportunity").len();
    let csv =
        format!("{DEALS}坏金额,苏州精工机械有限公司,很多,2026-01-01,谈判中,rep01,2025-01-01,\n");
    let answer = harness
        .post("/api/import/opportunity", &admin, json!({"csv": csv, "mapping": deals_mapping()}))
        .await
        .expect(StatusCode::ACCEPTED);
    let location = answer.header("location").to_owned();
    let status = finished(&harness, &admin, &location).await;
    assert_eq!(status["state"], "refused", "{status:#}");
    assert_eq!(status["written"], 0);
    assert_eq!(status["report"]["problems"][0]["row"], 4);
    assert_eq!(harness.all("opportunity").len(), before, "all or nothing");
}

#[tokio::test]
async fn a_good_file_becomes_records_with_their_own_history() {
    let harness = Harness::new();
    let admin = harness.login("admin").await;
    let answer = harness
        .post("/api/import/opportunity", &admin, json!({"csv": DEALS, "mapping": deals_mapping()}))
        .await
        .expect(StatusCode::ACCEPTED);
    assert!(answer.header("location").starts_with("/api/import/jobs/"));
    let status = finished(&harness, &admin, answer.header("location")).await;
    assert_eq!(status["state"], "done", "{status:#}");
    assert_eq!((status["total"].clone(), status["written"].clone()), (json!(2), json!(2)));
    let ids: Vec<String> = status["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let won = harness.state.engine().record(&ids[0]).expect("read").expect("the record");
    // 2024-04-01 00:00 in China.
    assert_eq!(won.created_at, 1_711_900_800_000);
    assert_eq!(won.owner.as_deref(), Some("rep01"));
    let flow = won.flow.as_ref().expect("a flow");
    assert_eq!(
        (flow.stage.as_str(), flow.outcome.as_ref().map(|o| o.as_str())),
        ("won", Some("won"))
    );
    let events =
        harness.state.engine().store().events_of(&RecordId::new(ids[0].as_str())).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "imported");
    let data = &events[0].data;
    assert_eq!(data["event"], "imported");
    assert_eq!(data["source"], "旧 CRM");
    assert_eq!(data["created_at"], 1_711_900_800_000_i64);
    assert_eq!(data["stages"], json!([{"stage": "won", "at": 1_747_670_400_000_i64}]));
    assert_eq!(data["ended"], json!({"outcome": "won", "at": 1_747_670_400_000_i64}));
    assert_eq!(data["by"], "admin");
    let open = harness.state.engine().record(&ids[1]).expect("read").expect("the record");
    assert_eq!(open.stage().map(|s| s.as_str()), Some("negotiation"));
    let events =
        harness.state.engine().store().events_of(&RecordId::new(ids[1].as_str())).expect("events");
    assert_eq!(events[0].data["ended"], Value::Null);
    // The record reads through the API like any other, for its owner.
    let rep = harness.login("rep02").await;
    let read = harness.get(&format!("/api/records/opportunity/{}", ids[1]), &rep).await;
    assert_eq!(read.expect(StatusCode::OK).body["fields"]["amount"], json!(850_000.0));
}

#[tokio::test]
async fn the_fixture_customers_import_as_text_csv() {
    let harness = Harness::new();
    let admin = harness.login("admin").await;
    let csv =
        std::fs::read(repo().join("crates/import/tests/data/customers.csv")).expect("fixture");
    let request = Request::post("/api/import/customer?dry_run=true")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "text/csv; charset=utf-8")
        .body(Body::from(csv))
        .expect("request");
    let report = harness.send(request).await.expect(StatusCode::OK).body;
    assert_eq!(report["problems"], json!([]), "{report:#}");
    assert_eq!(report["valid_rows"], 3);
}

#[tokio::test]
async fn only_roles_that_see_everything_may_import() {
    let harness = Harness::new();
    let rep = harness.login("rep01").await;
    let answer =
        harness.post("/api/import/opportunity?dry_run=true", &rep, json!({"csv": DEALS})).await;
    answer.problem(StatusCode::FORBIDDEN);
    let director = harness.login("director").await;
    harness
        .post("/api/import/opportunity?dry_run=true", &director, json!({"csv": DEALS}))
        .await
        .expect(StatusCode::OK);
    let admin = harness.login("admin").await;
    harness
        .post("/api/import/nothing?dry_run=true", &admin, json!({"csv": DEALS}))
        .await
        .problem(StatusCode::NOT_FOUND);
    let wrong = json!({"csv": DEALS, "mapping": {"form": "customer"}});
    harness.post("/api/import/opportunity", &admin, wrong).await.problem(StatusCode::BAD_REQUEST);
    // Someone else's job is not found.
    let started = harness
        .post("/api/import/opportunity", &admin, json!({"csv": DEALS, "mapping": deals_mapping()}))
        .await
        .expect(StatusCode::ACCEPTED);
    let location = started.header("location").to_owned();
    finished(&harness, &admin, &location).await;
    harness.get(&location, &director).await.problem(StatusCode::NOT_FOUND);
}

/// Objects that list their properties allow no others (as the OpenAPI test reads
/// the document).
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

/// Why `body` does not match what the document gives for the operation and status.
fn schema_errors(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
) -> Vec<String> {
    let response = &document["paths"][path][method]["responses"][status.to_string()];
    let (_, media) = response["content"].as_object().and_then(|c| c.iter().next()).expect("a body");
    let mut schema = media["schema"].clone();
    close_objects(&mut schema);
    let mut components = document["components"].clone();
    close_objects(&mut components);
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": components,
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).expect("a schema");
    validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

#[tokio::test]
async fn the_answers_validate_strictly_against_the_openapi_document() {
    let harness = Harness::new();
    let document = harness
        .call(axum::http::Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(StatusCode::OK)
        .body;
    let admin = harness.login("admin").await;
    let csv = format!("{DEALS}坏行,没有这家公司,很多,2026-13-01,火星,nobody,昨天,\n");
    let report = harness
        .post(
            "/api/import/opportunity?dry_run=true",
            &admin,
            json!({"csv": csv, "mapping": deals_mapping()}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    let errors = schema_errors(&document, "post", "/api/import/{form}", 200, &report);
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
    for body in [json!({"csv": DEALS, "mapping": deals_mapping()}), json!({"csv": csv})] {
        let started = harness
            .post("/api/import/opportunity", &admin, body)
            .await
            .expect(StatusCode::ACCEPTED);
        let errors = schema_errors(&document, "post", "/api/import/{form}", 202, &started.body);
        assert!(errors.is_empty(), "{errors:#?}\n{:#}", started.body);
        let status = finished(&harness, &admin, started.header("location")).await;
        let errors = schema_errors(&document, "get", "/api/import/jobs/{id}", 200, &status);
        assert!(errors.is_empty(), "{errors:#?}\n{status:#}");
    }
}

/// A server whose demo company (org file included) is a copy in its own folder, so
/// that an org import may rewrite it.
fn harness_with_own_org() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    std::fs::create_dir_all(&demo).expect("demo folder");
    common::copy_folder(&repo().join("examples/demo"), &demo);
    let mut config = common::config(dir.path(), stagecraft_server::ClockChoice::Manual);
    config.demo = Some(demo);
    let (state, _) = match stagecraft_server::AppState::open(&config) {
        Ok(opened) => opened,
        Err(error) => panic!("the server must start: {error}"),
    };
    Harness { app: stagecraft_server::app(state.clone()), state, dir }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("crates/import/tests/data").join(name)).expect("fixture")
}

#[tokio::test]
async fn the_org_import_shows_who_changes_then_writes_the_org_file_and_reloads_it() {
    let harness = harness_with_own_org();
    let admin = harness.login("admin").await;
    let body = json!({"people": fixture("people.csv"), "departments": fixture("departments.csv")});
    let dry = harness
        .post("/api/org/import?dry_run=true", &admin, body.clone())
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(dry["added_people"], json!(["rep13", "mgr-west"]));
    assert_eq!(dry["changed_people"], json!(["rep01"]));
    assert_eq!(dry["added_departments"], json!(["sales-west"]));
    assert_eq!(dry["written"], false);
    let users = harness.get("/api/org/users", &admin).await.expect(StatusCode::OK).body;
    assert!(!users.to_string().contains("rep13"), "a dry run changes nothing");

    let done = harness.post("/api/org/import", &admin, body).await.expect(StatusCode::OK).body;
    assert_eq!(done["written"], true, "{done:#}");
    let users = harness.get("/api/org/users", &admin).await.expect(StatusCode::OK).body;
    let rep13 = users["users"]
        .as_array()
        .and_then(|users| users.iter().find(|user| user["id"] == "rep13"))
        .cloned()
        .unwrap_or_else(|| panic!("rep13 after the reload: {users:#}"));
    assert_eq!(rep13["manager"], "mgr-west");
    assert_eq!(rep13["department"], "sales-west");
    let written = std::fs::read_to_string(harness.dir.path().join("demo/company.org.yaml"))
        .expect("the org file");
    assert!(written.contains("\"rep13\""));
    assert!(harness.dir.path().join("demo/company.org.yaml.bak").is_file());

    let bad = json!({"people": "用户名,姓名,角色\nx1,甲,wizard\n"});
    let refused =
        harness.post("/api/org/import", &admin, bad).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["problems"][0]["column"], "角色");
    assert_eq!(refused.body["written"], false);
    let rep = harness.login("rep01").await;
    let body = json!({"people": fixture("people.csv")});
    harness.post("/api/org/import?dry_run=true", &rep, body).await.problem(StatusCode::FORBIDDEN);
}
