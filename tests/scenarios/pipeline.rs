//! R4, R5, R6, R13, R2, R12: the six stages of the sales pipeline, their entry and exit
//! conditions, the key actions in their order, the regional manager's approval and
//! the proposal approval that passes by default and is audited by sample.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{World, event_kinds, kinds};

/// Monday 2026-11-30, 10:00 in China: a normal working morning.
pub(crate) const MONDAY: &str = "2026-11-30T10:00:00+08:00";

/// rep01's new customer and a deal for it, with only the four fields a lead needs.
pub(crate) fn new_deal(world: &World, amount: i64) -> (Value, Value) {
    let customer = world.create("rep01", "customer", json!({"name": "常州精密模具有限公司"}));
    let deal = world.create(
        "rep01",
        "opportunity",
        json!({
            "name": "模具车间自动化改造",
            "customer": customer["id"],
            "amount": amount,
            "expected_close_date": "2027-03-31",
        }),
    );
    (customer, deal)
}

/// Brings a new deal through first contact: the three key actions in order and the
/// scheduled meeting. Returns it in `needs_confirmed`.
pub(crate) fn through_first_contact(world: &World, customer: &Value, deal: &Value) -> Value {
    world.update("rep01", deal, json!({"region": "east"}));
    world.advance("rep01", deal, "first_contact");
    world.update(
        "rep01",
        deal,
        json!({"contact_name": "王建国", "contact_title": "设备部经理", "purchase_motivation": "老设备故障频繁，想提高产能"}),
    );
    world.create(
        "rep01",
        "first_contact_record",
        json!({"opportunity": deal["id"], "called_at": "2026-11-30T14:00:00+08:00", "contact_name": "王建国", "summary": "客户有两条产线要改造，预算在申请中"}),
    );
    world.create(
        "rep01",
        "interaction",
        json!({"kind": "visit", "status": "planned", "customer": customer["id"], "opportunity": deal["id"], "happened_at": "2026-12-02T10:00:00+08:00", "who": "林晓峰、王建国", "summary": "现场看产线"}),
    );
    world.update("rep01", deal, json!({"meeting_scheduled_at": "2026-12-02T10:00:00+08:00"}));
    world.advance("rep01", deal, "needs_confirmed")
}

/// Brings a deal in `needs_confirmed` to `proposal`: survey uploaded, manager approves.
pub(crate) fn through_needs(world: &World, deal: &Value) -> Value {
    let survey = world.upload_pdf("rep01", "客户需求调研表.pdf");
    world.update("rep01", deal, json!({"needs_survey": survey, "product_line": "automation"}));
    world.decide("mgr-east", deal, "regional_manager_review", true, None).ok(StatusCode::OK);
    world.advance("rep01", deal, "proposal")
}

/// Brings a deal in `proposal` to `negotiation`: technical proposal, then the quote.
pub(crate) fn through_proposal(world: &World, deal: &Value) -> Value {
    let file = world.upload_pdf("rep01", "技术方案.pdf");
    world.create(
        "rep01",
        "technical_proposal",
        json!({"opportunity": deal["id"], "title": "注塑车间自动化方案", "proposal_file": file}),
    );
    world.create(
        "rep01",
        "price_quote",
        json!({"opportunity": deal["id"], "amount": 880000, "valid_until": "2027-01-31"}),
    );
    world.advance("rep01", deal, "negotiation")
}

#[test]
fn a_lead_needs_four_fields_and_each_stage_asks_for_more() {
    let world = World::at(MONDAY);
    let customer = world.create("rep01", "customer", json!({"name": "常州精密模具有限公司"}));

    // Only name, customer, amount and expected close date; each missing one is named.
    let refused = world.try_create("rep01", "opportunity", json!({"name": "模具车间自动化改造"}));
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:#}", refused.body);
    let pointers: Vec<&str> = refused.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    for field in ["/customer", "/amount", "/expected_close_date"] {
        assert!(pointers.contains(&field), "{field} in {pointers:?}");
    }
    let (_, deal) = new_deal(&world, 880_000);
    assert_eq!(deal["flow"]["stage"], "lead");
    assert_eq!(deal["owner"], "rep01");
    let _ = customer;

    // ② needs the region too; the refusal says so in Chinese and English.
    let refused = world.try_move("rep01", &deal, "first_contact");
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:#}", refused.body);
    assert!(
        refused.body["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["subject"] == "region")),
        "{:#}",
        refused.body
    );
    world.update("rep01", &deal, json!({"region": "east"}));
    world.advance("rep01", &deal, "first_contact");

    // Skipping a stage is not a transition of the flow.
    let refused = world.try_move("rep01", &deal, "proposal");
    assert!(refused.status.is_client_error(), "{:#}", refused.body);
    let history = event_kinds(&world.history("rep01", &deal));
    assert!(history.contains(&"stage_changed".to_owned()), "{history:?}");
}

#[test]
fn first_contact_has_three_key_actions_that_go_in_order() {
    let world = World::at(MONDAY);
    let (customer, deal) = new_deal(&world, 880_000);
    world.update("rep01", &deal, json!({"region": "east"}));
    world.advance("rep01", &deal, "first_contact");

    // Nothing done: all three actions and the meeting time hold the deal.
    let refused = world.try_move("rep01", &deal, "needs_confirmed");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let subjects: Vec<&str> = refused.body["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["subject"].as_str())
        .collect();
    for action in ["basic_info", "first_call", "schedule_meeting"] {
        assert!(subjects.contains(&action), "{action} in {subjects:?}");
    }
    assert!(refused.says("拜访或线上会议时间"), "{:?}", refused.messages());

    // The first-call record before the basic information is refused, with the order.
    let refused = world.try_create(
        "rep01",
        "first_contact_record",
        json!({"opportunity": deal["id"], "called_at": "2026-11-30T14:00:00+08:00", "contact_name": "王建国", "summary": "初步沟通"}),
    );
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:#}", refused.body);
    assert_eq!(refused.body["reasons"][0]["kind"], "order");
    assert!(refused.says("请先完成「录入客户基本信息"), "{:?}", refused.messages());

    // Basic information, then the call, then a visit: all done, in order.
    world.update(
        "rep01",
        &deal,
        json!({"contact_name": "王建国", "contact_title": "设备部经理", "purchase_motivation": "提高产能"}),
    );
    world.create(
        "rep01",
        "first_contact_record",
        json!({"opportunity": deal["id"], "called_at": "2026-11-30T15:00:00+08:00", "contact_name": "王建国", "summary": "确认需求方向"}),
    );
    // A phone call is not the visit or meeting the third action asks for.
    world.create(
        "rep01",
        "interaction",
        json!({"kind": "call", "status": "done", "customer": customer["id"], "opportunity": deal["id"], "happened_at": "2026-11-30T16:00:00+08:00", "summary": "电话确认拜访时间"}),
    );
    let state = world.read("rep01", &deal);
    assert!(state["flow"]["actions"].get("basic_info").is_some(), "{:#}", state["flow"]);
    assert!(state["flow"]["actions"].get("first_call").is_some(), "{:#}", state["flow"]);
    assert!(state["flow"]["actions"].get("schedule_meeting").is_none(), "{:#}", state["flow"]);
    world.create(
        "rep01",
        "interaction",
        json!({"kind": "meeting", "status": "planned", "customer": customer["id"], "opportunity": deal["id"], "happened_at": "2026-12-02T10:00:00+08:00", "summary": "线上会议演示方案"}),
    );
    let refused = world.try_move("rep01", &deal, "needs_confirmed");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.says("拜访或线上会议时间"), "{:?}", refused.messages());
    world.update("rep01", &deal, json!({"meeting_scheduled_at": "2026-12-02T10:00:00+08:00"}));
    world.advance("rep01", &deal, "needs_confirmed");
}

#[test]
fn needs_are_confirmed_with_the_survey_and_the_regional_managers_approval() {
    let world = World::at(MONDAY);
    let (customer, deal) = new_deal(&world, 880_000);
    let deal = through_first_contact(&world, &customer, &deal);

    // The review waits in the regional manager's list, not in another region's.
    assert!(kinds(&world.tasks_about("mgr-east", &deal)).contains(&"approval".to_owned()));
    assert!(world.tasks_about("mgr-south", &deal).is_empty());
    world
        .decide("mgr-south", &deal, "regional_manager_review", true, None)
        .ok(StatusCode::NOT_FOUND);
    world.decide("rep01", &deal, "regional_manager_review", true, None).ok(StatusCode::FORBIDDEN);

    let refused = world.try_move("rep01", &deal, "proposal");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let reason_kinds: Vec<&str> = refused.body["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(
        reason_kinds.contains(&"action") && reason_kinds.contains(&"approval"),
        "{reason_kinds:?}"
    );

    // A rejection needs a reason, and the reason is what the rep then sees.
    world
        .decide("mgr-east", &deal, "regional_manager_review", false, None)
        .ok(StatusCode::UNPROCESSABLE_ENTITY);
    world
        .decide("mgr-east", &deal, "regional_manager_review", false, Some("预算未确认"))
        .ok(StatusCode::OK);
    let refused = world.try_move("rep01", &deal, "proposal");
    assert!(refused.says("预算未确认"), "{:?}", refused.messages());

    // Once the budget is confirmed, the rep asks again; the manager approves.
    let resubmit =
        format!("{}/approvals/regional_manager_review/resubmit", crate::harness::uri(&deal));
    world.call("rep01", axum::http::Method::POST, &resubmit, None).ok(StatusCode::OK);
    assert!(kinds(&world.tasks_about("mgr-east", &deal)).contains(&"approval".to_owned()));
    world.decide("mgr-east", &deal, "regional_manager_review", true, None).ok(StatusCode::OK);
    let survey = world.upload_pdf("rep01", "客户需求调研表.pdf");
    world.update("rep01", &deal, json!({"needs_survey": survey, "product_line": "automation"}));
    world.advance("rep01", &deal, "proposal");
}

#[test]
fn the_quote_comes_after_the_technical_proposal_and_approval_passes_by_default() {
    let world = World::at(MONDAY);
    let (customer, deal) = new_deal(&world, 880_000);
    let deal = through_first_contact(&world, &customer, &deal);
    let deal = through_needs(&world, &deal);
    assert!(
        world
            .tasks_about("mgr-east", &deal)
            .iter()
            .all(|t| t["data"]["kind"]["kind"] != "approval")
    );

    // The approval of this stage passed by itself on entry.
    let approval = &deal["flow"]["approvals"]["proposal_approval"];
    assert_eq!(approval["status"], "approved", "{:#}", deal["flow"]);
    // When sampled for audit, the manager has an audit task, due within 3 working days.
    let audits: Vec<Value> = world
        .tasks_about("mgr-east", &deal)
        .into_iter()
        .filter(|t| t["data"]["kind"]["kind"] == "audit")
        .collect();
    assert_eq!(audits.len(), usize::from(approval["audited"] == json!(true)), "{audits:#?}");

    // A quote before the technical proposal is refused: the system stops it.
    let refused = world.try_create(
        "rep01",
        "price_quote",
        json!({"opportunity": deal["id"], "amount": 880000, "valid_until": "2027-01-31"}),
    );
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:#}", refused.body);
    assert_eq!(refused.body["reasons"][0]["subject"], "price_quote");
    assert!(refused.says("请先完成「提交技术方案」"), "{:?}", refused.messages());
    let refused = world.try_move("rep01", &deal, "negotiation");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let subjects: Vec<&str> = refused.body["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["subject"].as_str())
        .collect();
    assert!(
        subjects.contains(&"technical_proposal") && subjects.contains(&"price_quote"),
        "{subjects:?}"
    );
    through_proposal(&world, &deal);
}

#[test]
fn about_one_in_five_automatic_approvals_is_audited() {
    // The sample is random per data folder; over 40 deals it is near 20%, never all
    // or none.
    let world = World::at(MONDAY);
    let mut audited = 0;
    let deals = 40;
    for _ in 0..deals {
        let (customer, deal) = new_deal(&world, 880_000);
        let deal = through_first_contact(&world, &customer, &deal);
        let deal = through_needs(&world, &deal);
        if deal["flow"]["approvals"]["proposal_approval"]["audited"] == json!(true) {
            audited += 1;
        }
    }
    assert!((2..=16).contains(&audited), "{audited} of {deals} audited");
}

#[test]
fn a_deal_is_lost_only_with_a_reason() {
    let world = World::at(MONDAY);
    let (_, deal) = new_deal(&world, 300_000);
    let refused = world.try_move("rep01", &deal, "lost");
    assert!(refused.status.is_client_error());
    assert!(refused.body.to_string().contains("loss_reason"), "{:#}", refused.body);
    world.update(
        "rep01",
        &deal,
        json!({"loss_reason": "competitor", "loss_note": "对手报价低 15%"}),
    );
    let lost = world.advance("rep01", &deal, "lost");
    assert_eq!(lost["flow"]["outcome"], "lost");
}

#[test]
fn a_lead_nobody_contacts_in_two_working_days_escalates() {
    // Friday 16:00: two working days run out on Tuesday 16:00, not on Sunday.
    let world = World::at("2026-11-27T16:00:00+08:00");
    let (_, deal) = new_deal(&world, 880_000);
    world.set_clock("2026-12-01T15:59:00+08:00");
    assert!(world.notified(&deal, "sla_overdue").is_empty());
    world.set_clock("2026-12-01T16:01:00+08:00");
    let overdue = world.notified(&deal, "sla_overdue");
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0].to, ["rep01", "mgr-east"]);
}
