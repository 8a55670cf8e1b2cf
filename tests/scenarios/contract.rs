//! R15: entering negotiation opens a contract approval ticket for legal (e-mail and
//! WeCom), with 48 hours — two working days on the China calendar — before it
//! escalates to the head of legal; once signed, the scan is filed, finance gets an
//! invoicing reminder, the deal becomes won and the contract's cycle time is recorded.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{World, event_kinds, ms};
use crate::pipeline::{new_deal, through_first_contact, through_needs, through_proposal};

/// A deal of rep01 brought to negotiation at `at`; returns it and its contract.
fn in_negotiation(world: &World) -> (Value, Value) {
    let (customer, deal) = new_deal(world, 880_000);
    let deal = through_first_contact(world, &customer, &deal);
    let deal = through_needs(world, &deal);
    let deal = through_proposal(world, &deal);
    let contracts = world
        .call(
            "legal",
            Method::GET,
            &format!("/api/records/contract?opportunity={}", deal["id"].as_str().expect("id")),
            None,
        )
        .ok(StatusCode::OK);
    let contract = contracts["records"][0].clone();
    assert!(contract.is_object(), "legal sees the contract: {contracts:#}");
    (deal, contract)
}

#[test]
fn legal_gets_a_ticket_by_email_and_wecom_and_the_deal_waits_for_it() {
    let world = World::at("2026-11-30T10:00:00+08:00");
    let (deal, contract) = in_negotiation(&world);
    assert_eq!(deal["flow"]["stage"], "negotiation");
    assert_eq!(contract["flow"]["stage"], "legal_review");
    assert_eq!(contract["fields"]["amount"], json!(880000));
    assert_eq!(contract["fields"]["opportunity"], deal["id"]);

    let tickets = world.tasks_about("legal", &contract);
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0]["data"]["title"]["zh-CN"], "审核合同");
    let notified = world.notified(&contract, "contract_ticket");
    assert_eq!(notified.len(), 1);
    assert_eq!(notified[0].to, ["legal"]);
    assert_eq!(notified[0].channels, ["email", "wecom"]);

    // The deal cannot be closed by hand while the contract is not signed.
    let refused = world.try_move("mgr-east", &deal, "won");
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.says("还没有已签署的合同"), "{:?}", refused.messages());
}

#[test]
fn the_48_hours_skip_the_national_day_holiday_then_escalate_to_the_head_of_legal() {
    // Wednesday 30 September 2026, 10:00. 1–7 October are holidays: the two working
    // days are Thursday 8 and Friday 9 October, so the ticket is due on 9 October at
    // 10:00 — not on 2 October.
    let world = World::at("2026-09-30T10:00:00+08:00");
    let (_, contract) = in_negotiation(&world);
    let tickets = world.tasks_about("legal", &contract);
    assert_eq!(tickets[0]["due_ms"], json!(ms("2026-10-09T10:00:00+08:00")), "{tickets:#?}");

    world.set_clock("2026-10-08T17:00:00+08:00");
    assert!(world.notified(&contract, "contract_overdue").is_empty());
    world.set_clock("2026-10-09T09:59:00+08:00");
    assert!(world.notified(&contract, "contract_overdue").is_empty());
    world.set_clock("2026-10-09T10:01:00+08:00");
    let escalated = world.notified(&contract, "contract_overdue");
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    // The head of the legal department and the contract's owner (the sales rep).
    assert_eq!(escalated[0].to, ["legal", "rep01"]);
    assert_eq!(escalated[0].channels, ["inbox", "email", "wecom"]);
    let history = event_kinds(&world.history("legal", &contract));
    assert!(
        history.contains(&"sla_breached".to_owned()) && history.contains(&"escalated".to_owned()),
        "{history:?}"
    );

    // One working day later (Saturday 10 October is a make-up working day) the sales
    // director hears of it too.
    world.set_clock("2026-10-10T10:01:00+08:00");
    let escalated = world.notified(&contract, "contract_overdue");
    assert_eq!(escalated.len(), 2, "{escalated:?}");
    assert_eq!(escalated[1].to, ["director"]);
}

#[test]
fn a_signed_contract_is_filed_finance_is_reminded_and_the_deal_is_won() {
    let world = World::at("2026-11-30T10:00:00+08:00");
    let (deal, contract) = in_negotiation(&world);

    // Legal approves with an opinion (required), a day later.
    world.pass("1d");
    let refused = world.try_move("legal", &contract, "signing");
    assert!(refused.status.is_client_error(), "{:#}", refused.body);
    world.update("legal", &contract, json!({"legal_opinion": "条款合规，同意签署"}));
    world.advance("legal", &contract, "signing");
    assert!(world.tasks_about("legal", &contract).is_empty(), "the ticket is closed");
    assert_eq!(world.notified(&contract, "contract_approved")[0].to, ["rep01"]);
    assert!(!world.tasks_about("rep01", &contract).is_empty(), "the rep has the signing task");

    // The rep files the signed scan.
    let scan = world.upload_pdf("rep01", "合同扫描件.pdf");
    world.update("rep01", &contract, json!({"scanned_contract": scan, "signed_at": "2026-12-03"}));
    world.pass("2d");
    let signed = world.advance("rep01", &contract, "signed");
    assert_eq!(signed["flow"]["outcome"], "signed");

    // Finance: a reminder and a task to invoice.
    let reminders = world.notified(&contract, "invoice_reminder");
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0].to, ["finance"]);
    assert!(reminders[0].channels.contains(&"email".to_owned()));
    assert_eq!(world.tasks_about("finance", &contract).len(), 1);

    // The deal moved on to won by itself; the rep and the manager hear of it.
    let won = world.read("rep01", &deal);
    assert_eq!(won["flow"]["stage"], "won");
    assert_eq!(won["flow"]["outcome"], "won");
    assert_eq!(world.notified(&deal, "deal_won")[0].to, ["rep01", "mgr-east"]);

    // The contract's cycle time, from the ticket to the signature, is in its history.
    let events = world.history("rep01", &contract);
    let ended = events.iter().find(|e| e["kind"] == "flow_ended").expect("the flow ended");
    assert_eq!(ended["data"]["duration_ms"], json!(3 * 86_400_000), "{ended:#}");
}

#[test]
fn a_rejected_contract_sends_the_deal_back_to_proposal() {
    let world = World::at("2026-11-30T10:00:00+08:00");
    let (deal, contract) = in_negotiation(&world);
    let refused = world.try_move("legal", &contract, "rejected");
    assert!(refused.status.is_client_error());
    world.update("legal", &contract, json!({"reject_reason": "付款条款风险过高"}));
    world.advance("legal", &contract, "rejected");
    assert_eq!(world.notified(&contract, "contract_rejected")[0].to, ["rep01"]);
    assert_eq!(world.read("rep01", &deal)["flow"]["stage"], "proposal");
}
