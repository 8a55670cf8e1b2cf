//! `GET /api/graph`: the relationship graph the sales pack declares, as JSON — who
//! sees which records, pooled records left out, and answers that validate
//! strictly against the OpenAPI document.

mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::{Map, Value, json};

/// Closes every object schema that lists its properties: no other property allowed.
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

/// Why `body` does not match what the document says `GET /api/graph` answers with
/// `status`, read strictly.
async fn problems(harness: &Harness, status: StatusCode, body: &Value) -> Vec<String> {
    let document = harness
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(StatusCode::OK)
        .body;
    let response = &document["paths"]["/api/graph"]["get"]["responses"][status.as_str()];
    let (_, media) = response["content"].as_object().expect("a body").iter().next().expect("one");
    let mut components = document["components"].clone();
    close_objects(&mut components);
    let mut schema = media["schema"].clone();
    close_objects(&mut schema);
    let mut root = Map::new();
    root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    root.insert("components".into(), components);
    root.insert("allOf".into(), json!([schema]));
    let validator = jsonschema::validator_for(&Value::Object(root)).expect("a schema");
    validator
        .iter_errors(body)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect()
}

fn node<'a>(graph: &'a Value, title: &str) -> Option<&'a Value> {
    graph["nodes"].as_array()?.iter().find(|node| node["title"] == title)
}

#[tokio::test]
async fn the_graph_needs_a_session_and_answers_in_the_documented_shape() {
    let harness = Harness::new();
    let anonymous = harness.call(Method::GET, "/api/graph", None, None).await;
    let problem = anonymous.problem(StatusCode::UNAUTHORIZED);
    assert!(problems(&harness, StatusCode::UNAUTHORIZED, &problem).await.is_empty());

    let rep01 = harness.login("rep01").await;
    let graph = harness.get("/api/graph", &rep01).await.expect(StatusCode::OK).body;
    let found = problems(&harness, StatusCode::OK, &graph).await;
    assert!(found.is_empty(), "{found:#?}\n{graph:#}");
    assert_eq!(graph["graph"], "customers");
    assert_eq!(graph["title"], "客户关系图谱");
    assert_eq!(graph["lang"], "zh-CN");
    // rep01's customers, their contacts and dormant old customers; nobody else's.
    let kunshan = node(&graph, "昆山恒力精密机械有限公司").expect("rep01's old customer");
    assert_eq!(kunshan["kind"], "centre");
    assert_eq!(kunshan["dormant"], true);
    assert_eq!(kunshan["last_contact"], "2026-03-12");
    assert!(node(&graph, "周建国").is_some_and(|contact| contact["kind"] == "linked"));
    assert!(node(&graph, "东莞华信电子有限公司").is_none());
    assert!(node(&graph, "宁波海创汽车零部件有限公司").is_none());

    let english = harness.get("/api/graph?lang=en", &rep01).await.expect(StatusCode::OK).body;
    assert_eq!(english["title"], "Customer relationship graph");
    assert_eq!(english["lang"], "en");

    let unknown = harness.get("/api/graph?graph=nope", &rep01).await;
    let problem = unknown.problem(StatusCode::NOT_FOUND);
    assert!(problems(&harness, StatusCode::NOT_FOUND, &problem).await.is_empty());
}

#[tokio::test]
async fn a_team_is_narrowed_by_person_and_customers_fall_dormant_as_time_passes() {
    let harness = Harness::new();
    let manager = harness.login("mgr-east").await;
    let team = harness.get("/api/graph?team=mgr-east", &manager).await.expect(StatusCode::OK).body;
    let haichuang = node(&team, "宁波海创汽车零部件有限公司").expect("rep02's customer");
    // A call on 18 November: not dormant yet.
    assert_eq!(haichuang["dormant"], false, "{haichuang:#}");
    assert!(node(&team, "苏州精工机械有限公司").is_some());
    let rep02 = harness.get("/api/graph?rep=rep02", &manager).await.expect(StatusCode::OK).body;
    assert!(node(&rep02, "宁波海创汽车零部件有限公司").is_some());
    assert!(node(&rep02, "苏州精工机械有限公司").is_none());

    // A department and the ones under it, for someone who sees everything.
    let director = harness.login("director").await;
    let east = harness
        .get("/api/graph?department=sales-east", &director)
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(node(&east, "宁波海创汽车零部件有限公司").is_some());
    assert!(node(&east, "东莞华信电子有限公司").is_none());
    let regions = harness
        .get("/api/graph?department=sales-regions", &director)
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(node(&regions, "东莞华信电子有限公司").is_some(), "{regions:#}");

    // Another team's rep sees none of it, even when asking for it.
    let rep05 = harness.login("rep05").await;
    let asked = harness.get("/api/graph?team=mgr-east", &rep05).await.expect(StatusCode::OK).body;
    assert_eq!(asked["nodes"], json!([]));

    // Half a year later nobody has worked on it: it is back in the customer pool,
    // nobody's, and no graph draws it.
    harness.clock(json!({"advance": "200d"})).await;
    let director = harness.login("director").await;
    let later = harness.get("/api/graph", &director).await.expect(StatusCode::OK).body;
    assert!(node(&later, "宁波海创汽车零部件有限公司").is_none(), "{later:#}");
    assert!(problems(&harness, StatusCode::OK, &later).await.is_empty());
}
