//! R20: after-sales on the same engine — a repair request is reported, dispatched to
//! an engineer, handled on site, resolved and followed up with a satisfaction survey,
//! with a response time limit of four working hours.

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{World, event_kinds};

#[test]
fn a_repair_goes_from_report_to_survey() {
    let world = World::at("2026-11-30T10:00:00+08:00");
    let customer = world.create("rep01", "customer", json!({"name": "苏州恒力精密铸造有限公司"}));
    let repair = world.create(
        "rep01",
        "repair_request",
        json!({"customer": customer["id"], "equipment": "注塑机 HX-260", "description": "液压泵异响，压力不稳", "urgency": "high"}),
    );
    assert_eq!(repair["flow"]["stage"], "reported");
    // The service manager is told and has the dispatch in their list.
    assert_eq!(world.notified(&repair, "repair_reported")[0].to, ["service-mgr"]);
    assert!(!world.tasks_about("service-mgr", &repair).is_empty());

    // Only the service manager dispatches, and only with an engineer named.
    let refused = world.try_move("rep01", &repair, "dispatched");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.says("只有指定角色可以执行此操作"), "{:?}", refused.messages());
    let refused = world.try_move("service-mgr", &repair, "dispatched");
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:#}", refused.body);
    world.update(
        "service-mgr",
        &repair,
        json!({"engineer": "eng01", "planned_visit_at": "2026-12-01T09:30:00+08:00"}),
    );
    world.advance("service-mgr", &repair, "dispatched");
    assert_eq!(world.notified(&repair, "repair_assigned")[0].to, ["eng01"]);
    assert_eq!(world.tasks_about("eng01", &repair).len(), 1);

    // On site: the diagnosis before the resolution.
    world.update("eng01", &repair, json!({"arrived_at": "2026-12-01T09:40:00+08:00"}));
    world.advance("eng01", &repair, "on_site");
    world.update(
        "eng01",
        &repair,
        json!({"resolution": "更换液压泵密封件", "resolved_at": "2026-12-01T11:00:00+08:00"}),
    );
    let refused = world.try_move("eng01", &repair, "resolved");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    world.update("eng01", &repair, json!({"diagnosis": "密封件老化漏油"}));
    world.update("eng01", &repair, json!({"resolution": "更换液压泵密封件，试机正常"}));
    world.advance("eng01", &repair, "resolved");

    // Customer success calls the customer and files the survey.
    let survey_tasks = world.tasks_about("cs", &repair);
    assert!(
        survey_tasks.iter().any(|t| t["data"]["form"] == "satisfaction_survey"),
        "{survey_tasks:#?}"
    );
    world.create(
        "cs",
        "satisfaction_survey",
        json!({"repair_request": repair["id"], "score": 5, "response_ok": true, "fixed_first_time": true, "comment": "响应很快"}),
    );
    let surveyed = world.advance("cs", &repair, "surveyed");
    assert_eq!(surveyed["flow"]["outcome"], "closed");
    let history = event_kinds(&world.history("rep01", &repair));
    // Entering the first stage, then four moves.
    assert_eq!(history.iter().filter(|kind| *kind == "stage_changed").count(), 5, "{history:?}");
    assert_eq!(history.last().map(String::as_str), Some("flow_ended"));
}

#[test]
fn a_repair_nobody_dispatches_within_four_working_hours_escalates() {
    // Friday 16:00: two working hours on Friday, two on Monday morning.
    let world = World::at("2026-11-27T16:00:00+08:00");
    let customer = world.create("rep01", "customer", json!({"name": "昆山瑞丰电子有限公司"}));
    let repair = world.create(
        "rep01",
        "repair_request",
        json!({"customer": customer["id"], "equipment": "贴片机 SM-481", "description": "吸嘴无法取料", "urgency": "medium"}),
    );
    world.set_clock("2026-11-30T10:59:00+08:00");
    assert!(world.notified(&repair, "sla_overdue").is_empty());
    world.set_clock("2026-11-30T11:01:00+08:00");
    let overdue = world.notified(&repair, "sla_overdue");
    assert_eq!(overdue.len(), 1, "{overdue:?}");
}
