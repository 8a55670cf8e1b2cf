//! The `graph` page (客户关系图谱): who sees which customers, dormant customers from
//! the demo's old visits, a cross-sell chance from won deals, the JSON export and the
//! SVG drawing with its text escaped.

use serde_json::Map;
use stagecraft_engine::Target;
use stagecraft_model::Id;
use stagecraft_runtime::{Command, Record};

use super::*;

/// Runs a command as `actor`; the record after it.
fn run(harness: &Harness, actor: &str, target: Target, command: Command) -> Record {
    harness
        .state
        .engine()
        .execute(Some(actor), target, command, None)
        .unwrap_or_else(|error| panic!("{actor}: {error}"))
        .record
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

fn create(harness: &Harness, actor: &str, form: &str, value: Value) -> Record {
    let command = Command::Create { form: Id::from(form), fields: fields(value), owner: None };
    run(harness, actor, Target::New, command)
}

fn update(harness: &Harness, actor: &str, id: &str, value: Value) -> Record {
    let version = harness.state.engine().record(id).expect("read").expect("a record").version;
    let command = Command::Update { expected_version: version, fields: fields(value) };
    run(harness, actor, Target::Existing(id.to_owned()), command)
}

fn move_to(harness: &Harness, actor: &str, id: &str, stage: &str) -> Record {
    let command = Command::Transition { to: Id::from(stage) };
    run(harness, actor, Target::Existing(id.to_owned()), command)
}

/// The id of the demo customer with this name.
fn customer(harness: &Harness, name: &str) -> String {
    let store = harness.state.engine().store();
    let ids = store.records_of_form("customer", stagecraft_store::Page::first(1000)).expect("ids");
    ids.iter()
        .filter_map(|id| harness.state.engine().record(id.as_str()).ok().flatten())
        .find(|record| record.fields.get("name").and_then(Value::as_str) == Some(name))
        .map(|record| record.id)
        .unwrap_or_else(|| panic!("no customer {name}"))
}

/// Takes a deal of rep01 for `customer` through the whole pipeline, contract included,
/// to won. Dates are old, so they do not wake a dormant customer.
fn win(harness: &Harness, customer: &str, product: &str) {
    let deal = create(
        harness,
        "rep01",
        "opportunity",
        json!({"name": format!("{product} 采购"), "customer": customer, "amount": 200000,
               "expected_close_date": "2027-01-31", "region": "east", "product_line": product}),
    )
    .id;
    move_to(harness, "rep01", &deal, "first_contact");
    update(
        harness,
        "rep01",
        &deal,
        json!({"contact_name": "王工", "contact_title": "经理", "purchase_motivation": "扩产"}),
    );
    create(
        harness,
        "rep01",
        "first_contact_record",
        json!({"opportunity": deal, "customer": customer, "called_at": "2026-01-05T10:00:00+08:00",
               "contact_name": "王工", "summary": "首次沟通"}),
    );
    create(
        harness,
        "rep01",
        "interaction",
        json!({"kind": "visit", "status": "done", "customer": customer, "opportunity": deal,
               "happened_at": "2026-01-10T10:00:00+08:00", "summary": "拜访"}),
    );
    update(harness, "rep01", &deal, json!({"meeting_scheduled_at": "2026-01-10T10:00:00+08:00"}));
    move_to(harness, "rep01", &deal, "needs_confirmed");
    update(
        harness,
        "rep01",
        &deal,
        json!({"needs_survey": {"name": "调研表.pdf", "content_type": "application/pdf"}}),
    );
    let decide = Command::Decide {
        approval: Id::from("regional_manager_review"),
        approve: true,
        reason: None,
    };
    run(harness, "mgr-east", Target::Existing(deal.clone()), decide);
    move_to(harness, "rep01", &deal, "proposal");
    create(
        harness,
        "rep01",
        "technical_proposal",
        json!({"opportunity": deal, "title": "方案",
               "proposal_file": {"name": "方案.pdf", "content_type": "application/pdf"}}),
    );
    create(
        harness,
        "rep01",
        "price_quote",
        json!({"opportunity": deal, "amount": 200000, "valid_until": "2027-01-31"}),
    );
    let waiting = move_to(harness, "rep01", &deal, "negotiation");
    let contract =
        waiting.flow.and_then(|flow| flow.waiting_for).expect("the contract sub-flow record");
    update(harness, "legal", &contract, json!({"legal_opinion": "同意"}));
    move_to(harness, "legal", &contract, "signing");
    update(
        harness,
        "rep01",
        &contract,
        json!({"scanned_contract": {"name": "合同.pdf", "content_type": "application/pdf"},
               "signed_at": "2026-01-20"}),
    );
    move_to(harness, "rep01", &contract, "signed");
    let won = harness.state.engine().record(&deal).expect("read").expect("the deal");
    let outcome = won.flow.and_then(|flow| flow.outcome).map(|outcome| outcome.to_string());
    assert_eq!(outcome.as_deref(), Some("won"));
}

#[tokio::test]
async fn a_rep_sees_own_customers_dormant_ones_and_a_chance_with_its_reason() {
    let harness = Harness::new();
    let group = customer(&harness, "苏州精工控股集团有限公司");
    let suzhou = customer(&harness, "苏州精工机械有限公司");
    let kunshan = customer(&harness, "昆山恒力精密机械有限公司");
    for (customer, product) in [
        (&group, "machine_tools"),
        (&group, "spare_parts"),
        (&suzhou, "machine_tools"),
        (&suzhou, "spare_parts"),
        (&kunshan, "machine_tools"),
    ] {
        win(&harness, customer, product);
    }
    let rep01 = harness.sign_in("rep01").await;
    let page = harness.get("/graph", Some(&rep01.cookie)).await.page(StatusCode::OK);
    let html = &page.body;
    assert!(html.contains("客户关系图谱"), "{html}");
    assert!(html.contains("苏州精工机械有限公司"));
    assert!(html.contains("昆山恒力精密机械有限公司"));
    // rep05's customer is not rep01's to see.
    assert!(!html.contains("东莞华信电子有限公司"));
    // Old visits (demo data) make customers dormant.
    assert!(html.contains("沉睡"));
    // Kunshan bought machines, not spare parts, while its 2 machinery peers bought both.
    // (How many peers depends on the demo's history too: the counts are not fixed.)
    let chance = "买了「整机设备」，未买「备品备件」；所属行业相同、买了「整机设备」的 ";
    let at = html.find(chance).unwrap_or_else(|| panic!("a chance sentence: {html}"));
    let rest = &html[at + chance.len()..];
    assert!(
        rest[..rest.find('。').unwrap_or(rest.len()).min(120)].contains("个也买了「备品备件」")
    );
    // The drawing and the export are linked; contacts and the parent are listed.
    // Handlebars escapes `=` in attributes as `&#x3D;`, which browsers read back.
    assert!(html.contains("src=\"/graph.svg?zoom&#x3D;1&amp;x&#x3D;"), "{html}");
    assert!(html.contains("周建国"));
    assert!(html.contains(&format!("/customers/{kunshan}")));

    // The same in English.
    let english = harness.get("/graph?lang=en", Some(&rep01.cookie)).await.page(StatusCode::OK);
    assert!(english.body.contains("Customer relationship graph"));
    assert!(english.body.contains("Bought “Machines” but not “Spare parts”"), "{}", english.body);

    // The JSON export: nodes with their highlights, edges between drawn records.
    let export = harness.get("/graph.json?lang=en", Some(&rep01.cookie)).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.header("content-type").starts_with("application/json"));
    let graph: Value = serde_json::from_str(&export.body).expect("JSON");
    assert_eq!(graph["graph"], "customers");
    assert_eq!(graph["centre"], "customer");
    let nodes = graph["nodes"].as_array().expect("nodes");
    let node = |id: &str| nodes.iter().find(|node| node["id"] == id).expect("a node").clone();
    let kunshan_node = node(&kunshan);
    assert_eq!(kunshan_node["kind"], "centre");
    assert_eq!(kunshan_node["dormant"], true);
    assert_eq!(kunshan_node["products"][0]["value"], "machine_tools");
    assert_eq!(kunshan_node["chances"][0]["product"]["value"], "spare_parts");
    // Suzhou plus the machinery customers of the demo's history: at least 2 peers,
    // and at least 60% of them bought both.
    let peers = kunshan_node["chances"][0]["peers"].as_u64().expect("peers");
    let both = kunshan_node["chances"][0]["both"].as_u64().expect("both");
    assert!(peers >= 2 && both * 100 >= peers * 60, "{peers} peers, {both} bought both");
    assert!(kunshan_node["x"].as_f64().is_some() && kunshan_node["y"].as_f64().is_some());
    // Suzhou has a recent visit? No: but it bought both, so no chance.
    assert!(node(&suzhou)["chances"].as_array().expect("a list").is_empty());
    let edges = graph["edges"].as_array().expect("edges");
    assert!(
        edges
            .iter()
            .any(|edge| edge["from"] == suzhou && edge["to"] == group && edge["field"] == "parent"),
        "{edges:?}"
    );
    assert!(nodes.iter().any(|node| node["form"] == "contact" && node["kind"] == "linked"));
    assert!(nodes.iter().all(|node| node["title"] != "东莞华信电子有限公司"));
}

#[tokio::test]
async fn a_manager_sees_the_team_and_a_rep_only_their_own() {
    let harness = Harness::new();
    let manager = harness.sign_in("mgr-east").await;
    let page = harness.get("/graph", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("苏州精工机械有限公司"), "{}", page.body);
    assert!(page.body.contains("宁波海创汽车零部件有限公司"));
    assert!(!page.body.contains("东莞华信电子有限公司"));
    // Links narrow the graph to the team and to the department.
    assert!(page.body.contains("href=\"/graph?team&#x3D;mgr-east\""), "{}", page.body);
    assert!(page.body.contains("href=\"/graph?department&#x3D;sales-east\""));
    // Narrowed to one person of the team.
    let rep02 = harness.get("/graph?rep=rep02", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(rep02.body.contains("宁波海创汽车零部件有限公司"));
    assert!(!rep02.body.contains("昆山恒力精密机械有限公司"));

    let rep05 = harness.sign_in("rep05").await;
    let own = harness.get("/graph", Some(&rep05.cookie)).await.page(StatusCode::OK);
    assert!(own.body.contains("东莞华信电子有限公司"));
    assert!(!own.body.contains("苏州精工"), "{}", own.body);
    // Asking for someone else's records shows nothing of them.
    let other = harness.get("/graph.json?rep=rep01", Some(&rep05.cookie)).await;
    let graph: Value = serde_json::from_str(&other.body).expect("JSON");
    assert_eq!(graph["nodes"].as_array().map(Vec::len), Some(0), "{graph}");
    // An unknown graph is a page that says so.
    let unknown = harness.get("/graph?graph=nope", Some(&rep05.cookie)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_drawing_is_svg_with_its_text_escaped_and_zooms_by_link() {
    let harness = Harness::new();
    create(&harness, "rep01", "customer", json!({"name": "<script>alert('x')</script>"}));
    let rep01 = harness.sign_in("rep01").await;
    let drawing = harness.get("/graph.svg", Some(&rep01.cookie)).await;
    assert_eq!(drawing.status, StatusCode::OK);
    assert!(drawing.header("content-type").starts_with("image/svg+xml"));
    assert!(drawing.body.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!drawing.body.contains("<script"), "{}", drawing.body);
    assert!(drawing.body.contains("&lt;script&gt;"));
    let page = harness.get("/graph", Some(&rep01.cookie)).await.page(StatusCode::OK);
    assert!(!page.body.contains("<script"));
    assert!(page.body.contains("&lt;script&gt;"));
    // Zooming in is a link to the same page with a larger zoom.
    assert!(page.body.contains("/graph?zoom&#x3D;1.5&amp;x&#x3D;"), "{}", page.body);
    let zoomed = harness.get("/graph.svg?zoom=2&x=0&y=0", Some(&rep01.cookie)).await;
    assert!(zoomed.body.contains("viewBox=\"-"), "{}", &zoomed.body[..200]);
    // Without a session, the page leads to the login.
    let anonymous = harness.get("/graph", None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
}
