//! R16: the alert rules that business staff maintain in files — a deal stalled in a
//! stage for more than 7 days, a swing of more than ±20% in a deal's amount, a
//! customer silent for 30 days.

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::World;
use crate::pipeline::{MONDAY, new_deal};

#[test]
fn a_deal_stalled_for_more_than_seven_days_asks_its_owner_for_a_reason_and_a_plan() {
    let world = World::at(MONDAY);
    let (_, deal) = new_deal(&world, 880_000);

    // The scan runs at 09:00 on working days: after 7 days nothing yet.
    world.set_clock("2026-12-07T09:30:00+08:00");
    assert!(world.notified(&deal, "stalled_deal").is_empty());
    // On the 8th day it fires, to the owner and their direct manager.
    world.set_clock("2026-12-08T09:30:00+08:00");
    let stalled = world.notified(&deal, "stalled_deal");
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    assert_eq!(stalled[0].to, ["rep01", "mgr-east"]);
    let tasks = world.tasks_about("rep01", &deal);
    let report =
        tasks.iter().find(|t| t["data"]["form"] == "stall_report").expect("a stall report task");
    assert_eq!(report["data"]["kind"]["alert"], "stalled-deal");

    // Filing the stall report (reason and next step) closes the task.
    world.create(
        "rep01",
        "stall_report",
        json!({
            "opportunity": deal["id"],
            "reason_kind": "customer_budget",
            "stall_reason": "客户预算要等到年初才批",
            "next_step_plan": "一月初与采购总监再约",
            "next_step_date": "2027-01-05",
        }),
    );
    assert!(
        world.tasks_about("rep01", &deal).iter().all(|t| t["data"]["form"] != "stall_report"),
        "{:#?}",
        world.tasks_about("rep01", &deal)
    );
    // It does not fire again the next day; it repeats after a week.
    world.set_clock("2026-12-09T09:30:00+08:00");
    assert_eq!(world.notified(&deal, "stalled_deal").len(), 1);
}

#[test]
fn a_swing_of_more_than_twenty_percent_goes_to_the_director_and_finance() {
    let world = World::at(MONDAY);
    let (_, deal) = new_deal(&world, 1_000_000);
    world.update("rep01", &deal, json!({"amount": 1_150_000}));
    assert!(world.notified(&deal, "large_swing").is_empty(), "+15% is within the band");
    world.update("rep01", &deal, json!({"amount": 850_000}));
    let swung = world.notified(&deal, "large_swing");
    assert_eq!(swung.len(), 1, "-26% is a swing: {swung:?}");
    assert_eq!(swung[0].to, ["director", "finance"]);
    assert!(swung[0].channels.contains(&"email".to_owned()));
    let review = world.tasks_about("director", &deal);
    assert!(review.iter().any(|t| t["data"]["form"] == "review_meeting"), "{review:#?}");
}

#[test]
fn a_customer_silent_for_thirty_days_gets_a_wake_up_task_for_customer_success() {
    let world = World::at(MONDAY);
    let quiet = world.create("rep01", "customer", json!({"name": "无锡远航纺织有限公司"}));
    let active = world.create("rep01", "customer", json!({"name": "南通海星船舶配件有限公司"}));
    world.set_clock("2026-12-21T10:00:00+08:00");
    world.create(
        "rep01",
        "interaction",
        json!({"kind": "call", "status": "done", "customer": active["id"], "happened_at": "2026-12-21T10:00:00+08:00", "summary": "回访"}),
    );
    // 31 days after the start: the quiet one is flagged, the active one is not.
    world.set_clock("2026-12-31T09:30:00+08:00");
    let flagged = world.notified(&quiet, "silent_customer");
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].to, ["cs"]);
    assert!(world.notified(&active, "silent_customer").is_empty());
    let tasks = world.tasks_about("cs", &quiet);
    assert!(tasks.iter().any(|t| t["data"]["form"] == "interaction"), "{tasks:#?}");
    // Customer success may now see the customer it has to call.
    world
        .call("cs", axum::http::Method::GET, &crate::harness::uri(&quiet), None)
        .ok(StatusCode::OK);
}
