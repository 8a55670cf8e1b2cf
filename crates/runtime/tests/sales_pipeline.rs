//! The runtime over the shipped sales packs, without disk or clock: every command is
//! a call to `step` with a fixed time, and every assertion is on what a person would
//! see (refusal reasons, tasks, notifications, stage history).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use stagecraft_model::Id;
use stagecraft_pack::Definitions;
use stagecraft_rules::{Host, Limits, Query, Sandbox};
use stagecraft_runtime::{
    ApprovalStatus, Command, Context, Effect, Event, Org, Outcome, ParentLink, Record, Refusal,
    TaskKind, TimerKind, start_subflow, step,
};

/// 2026-11-02 10:00 (Monday) in China, in Unix milliseconds.
const MONDAY_10AM: i64 = 1_793_584_800_000;
const HOUR: i64 = 3_600_000;

/// The shipped packs, loaded once for all tests.
fn definitions() -> &'static Definitions {
    static DEFINITIONS: std::sync::OnceLock<Definitions> = std::sync::OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        match stagecraft_pack::load(&[root.join("flows"), root.join("schemas")]) {
            Ok((definitions, _)) => definitions,
            Err(report) => panic!("the shipped packs must load: {:#?}", report.diagnostics),
        }
    })
}

#[derive(Default)]
struct TestOrg {
    managers: HashMap<&'static str, &'static str>,
    departments: HashMap<&'static str, &'static str>,
    heads: HashMap<&'static str, &'static str>,
    roles: HashMap<&'static str, Vec<&'static str>>,
}

impl TestOrg {
    fn demo() -> Self {
        TestOrg {
            managers: HashMap::from([("rep01", "mgr-east"), ("mgr-east", "director")]),
            departments: HashMap::from([("rep01", "sales-east"), ("legal-li", "legal")]),
            heads: HashMap::from([("sales-east", "dept-head"), ("legal", "legal-head")]),
            roles: HashMap::from([
                ("sales_director", vec!["director"]),
                ("finance_bp", vec!["finance"]),
                ("legal", vec!["legal-li"]),
                ("regional_manager", vec!["mgr-east"]),
            ]),
        }
    }
}

impl Org for TestOrg {
    fn manager(&self, user: &str) -> Option<String> {
        self.managers.get(user).map(|m| (*m).to_owned())
    }
    fn department(&self, user: &str) -> Option<String> {
        self.departments.get(user).map(|d| (*d).to_owned())
    }
    fn head(&self, department: &str) -> Option<String> {
        self.heads.get(department).map(|h| (*h).to_owned())
    }
    fn role_members(&self, role: &str) -> Vec<String> {
        self.roles
            .get(role)
            .map(|users| users.iter().map(|u| (*u).to_owned()).collect())
            .unwrap_or_default()
    }
    fn roles_of(&self, user: &str) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, users)| users.contains(&user))
            .map(|(role, _)| (*role).to_owned())
            .collect()
    }
}

/// Queries see one signed contract, as a store would once contract approval ended.
struct SignedContracts;

impl Host for SignedContracts {
    fn manager(&self, _: &str) -> Option<String> {
        None
    }
    fn department(&self, _: &str) -> Option<String> {
        None
    }
    fn head(&self, _: &str) -> Option<String> {
        None
    }
    fn role_members(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
    fn query(&self, query: &Query) -> Result<Vec<serde_json::Map<String, Value>>, String> {
        Ok(match query.form.as_str() {
            "contract" => vec![fields(json!({"id": "signed-contract", "stage": "signed"}))],
            _ => Vec::new(),
        })
    }
}

struct World {
    definitions: &'static Definitions,
    org: TestOrg,
    sandbox: Sandbox,
    next_id: u64,
    now: i64,
    seed: u64,
}

impl World {
    fn new() -> Self {
        World {
            definitions: definitions(),
            org: TestOrg::demo(),
            sandbox: Sandbox::new(Limits::default(), Arc::new(SignedContracts)),
            next_id: 0,
            now: MONDAY_10AM,
            seed: 7,
        }
    }

    fn run(
        &mut self,
        actor: Option<&str>,
        record: Option<&Record>,
        command: Command,
    ) -> Result<Outcome, Refusal> {
        let mut counter = self.next_id;
        let mut new_id = || {
            counter += 1;
            format!("r{counter}")
        };
        let mut cx = Context {
            definitions: self.definitions,
            org: &self.org,
            sandbox: &self.sandbox,
            actor,
            now: self.now,
            new_id: &mut new_id,
            seed: self.seed,
        };
        let result = step(&mut cx, record, command);
        self.next_id = counter;
        result
    }

    fn ok(&mut self, actor: &str, record: &Record, command: Command) -> Outcome {
        self.run(Some(actor), Some(record), command)
            .unwrap_or_else(|refusal| panic!("refused: {refusal}"))
    }
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn new_deal(world: &mut World) -> Outcome {
    world
        .run(
            Some("rep01"),
            None,
            Command::Create {
                form: Id::from("opportunity"),
                fields: fields(json!({
                    "name": "华东某厂 2 台注塑机",
                    "customer": "c1",
                    "amount": 400000,
                    "expected_close_date": "2026-12-31"
                })),
                owner: None,
            },
        )
        .unwrap_or_else(|refusal| {
            panic!("a deal with the four starting fields is accepted: {refusal}")
        })
}

fn gated_reasons(result: Result<Outcome, Refusal>) -> Vec<(String, String)> {
    match result {
        Err(Refusal::Gated(reasons)) => {
            reasons.into_iter().map(|r| (r.kind, r.subject.unwrap_or_default())).collect()
        }
        other => panic!("expected a gated refusal, got {other:?}"),
    }
}

#[test]
fn a_deal_starts_with_four_fields_in_lead_capture() {
    let mut world = World::new();
    let outcome = new_deal(&mut world);
    let record = &outcome.record;
    assert_eq!(record.stage().map(Id::as_str), Some("lead"));
    assert_eq!(record.owner.as_deref(), Some("rep01"));
    assert_eq!(record.version, 1);
    assert!(matches!(outcome.events[0], Event::Created { .. }));
    assert!(
        outcome.events.iter().any(
            |e| matches!(e, Event::StageChanged { to, from: None, .. } if to.as_str() == "lead")
        )
    );
    // Two working days to move on: a timer on the business calendar.
    let due = outcome.effects.iter().find_map(|effect| match effect {
        Effect::SetTimer { due, kind: TimerKind::SlaExpired { .. }, .. } => Some(*due),
        _ => None,
    });
    assert_eq!(
        due,
        Some(MONDAY_10AM + 48 * HOUR),
        "Monday 10:00 + 2 working days = Wednesday 10:00"
    );
}

#[test]
fn a_deal_without_its_amount_is_refused_at_the_field() {
    let mut world = World::new();
    let result = world.run(
        Some("rep01"),
        None,
        Command::Create {
            form: Id::from("opportunity"),
            fields: fields(
                json!({"name": "x", "customer": "c1", "expected_close_date": "2026-12-31"}),
            ),
            owner: None,
        },
    );
    match result {
        Err(Refusal::Invalid(problems)) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].pointer, "/amount");
            assert!(problems[0].message_zh.contains("请填写"), "{problems:?}");
        }
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn first_contact_needs_its_three_key_actions_in_order() {
    let mut world = World::new();
    let deal = new_deal(&mut world).record;
    // Leaving lead capture needs the region (required from first contact on).
    let reasons = gated_reasons(world.run(
        Some("rep01"),
        Some(&deal),
        Command::Transition { to: Id::from("first_contact") },
    ));
    assert_eq!(reasons, [("field".to_owned(), "region".to_owned())]);
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Update { expected_version: 1, fields: fields(json!({"region": "east"})) },
        )
        .record;
    let deal =
        world.ok("rep01", &deal, Command::Transition { to: Id::from("first_contact") }).record;

    let reasons = gated_reasons(world.run(
        Some("rep01"),
        Some(&deal),
        Command::Transition { to: Id::from("needs_confirmed") },
    ));
    let subjects: Vec<&str> = reasons.iter().map(|(_, subject)| subject.as_str()).collect();
    assert!(
        subjects.contains(&"basic_info")
            && subjects.contains(&"first_call")
            && subjects.contains(&"schedule_meeting"),
        "{reasons:?}"
    );

    // A meeting cannot be logged before the first call.
    let meeting = fields(json!({"id": "i1", "kind": "visit", "opportunity": deal.id}));
    let refused = world.run(
        Some("rep01"),
        Some(&deal),
        Command::Linked { form: Id::from("interaction"), record: meeting.clone() },
    );
    assert_eq!(gated_reasons(refused), [("order".to_owned(), "schedule_meeting".to_owned())]);

    let version = deal.version;
    let outcome = world.ok(
        "rep01",
        &deal,
        Command::Update {
            expected_version: version,
            fields: fields(json!({"contact_name": "王经理", "contact_title": "采购经理", "purchase_motivation": "产能扩张"})),
        },
    );
    assert!(
        outcome
            .events
            .iter()
            .any(|e| matches!(e, Event::ActionDone { action } if action.as_str() == "basic_info"))
    );
    let deal = outcome.record;
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Linked {
                form: Id::from("first_contact_record"),
                record: fields(json!({"id": "f1"})),
            },
        )
        .record;
    let deal = world
        .ok("rep01", &deal, Command::Linked { form: Id::from("interaction"), record: meeting })
        .record;
    // All three done; the meeting time is still missing (an exit condition).
    let reasons = gated_reasons(world.run(
        Some("rep01"),
        Some(&deal),
        Command::Transition { to: Id::from("needs_confirmed") },
    ));
    assert!(reasons.iter().all(|(kind, _)| kind == "condition" || kind == "field"), "{reasons:?}");
    let version = deal.version;
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Update {
                expected_version: version,
                fields: fields(json!({"meeting_scheduled_at": "2026-11-05T10:00:00+08:00"})),
            },
        )
        .record;
    let moved = world.ok("rep01", &deal, Command::Transition { to: Id::from("needs_confirmed") });
    assert_eq!(moved.record.stage().map(Id::as_str), Some("needs_confirmed"));
}

fn deal_in_needs_confirmed(world: &mut World) -> Record {
    let deal = new_deal(world).record;
    let all = fields(json!({
        "region": "east", "contact_name": "王经理", "contact_title": "采购经理",
        "purchase_motivation": "产能扩张", "meeting_scheduled_at": "2026-11-05T10:00:00+08:00"
    }));
    let deal =
        world.ok("rep01", &deal, Command::Update { expected_version: 1, fields: all }).record;
    let deal =
        world.ok("rep01", &deal, Command::Transition { to: Id::from("first_contact") }).record;
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Linked {
                form: Id::from("first_contact_record"),
                record: fields(json!({"id": "f1"})),
            },
        )
        .record;
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Linked {
                form: Id::from("interaction"),
                record: fields(json!({"id": "i1", "kind": "meeting"})),
            },
        )
        .record;
    world.ok("rep01", &deal, Command::Transition { to: Id::from("needs_confirmed") }).record
}

/// A deal whose needs were approved and that has moved on to the proposal stage.
fn deal_in_proposal(world: &mut World) -> Record {
    let deal = deal_in_needs_confirmed(world);
    let deal = world
        .ok(
            "mgr-east",
            &deal,
            Command::Decide {
                approval: Id::from("regional_manager_review"),
                approve: true,
                reason: None,
            },
        )
        .record;
    let version = deal.version;
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Update {
                expected_version: version,
                fields: fields(json!({"needs_survey": "u1", "product_line": "automation"})),
            },
        )
        .record;
    world.ok("rep01", &deal, Command::Transition { to: Id::from("proposal") }).record
}

#[test]
fn needs_confirmed_needs_the_survey_and_the_regional_managers_approval() {
    let mut world = World::new();
    let deal = deal_in_needs_confirmed(&mut world);
    let approval =
        &deal.flow.as_ref().expect("flow").approvals[&Id::from("regional_manager_review")];
    assert_eq!(approval.approvers, [vec!["mgr-east".to_owned()]]);
    assert_eq!(approval.status, ApprovalStatus::Pending);

    let reasons = gated_reasons(world.run(
        Some("rep01"),
        Some(&deal),
        Command::Transition { to: Id::from("proposal") },
    ));
    let kinds: Vec<&str> = reasons.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(
        kinds.contains(&"action") && kinds.contains(&"approval") && kinds.contains(&"condition"),
        "{reasons:?}"
    );

    // The rep cannot approve their own deal; a rejection needs a reason.
    let decide = |approve: bool, reason: Option<&str>| Command::Decide {
        approval: Id::from("regional_manager_review"),
        approve,
        reason: reason.map(str::to_owned),
    };
    assert!(matches!(
        world.run(Some("rep01"), Some(&deal), decide(true, None)),
        Err(Refusal::Forbidden(_))
    ));
    assert!(matches!(
        world.run(Some("mgr-east"), Some(&deal), decide(false, None)),
        Err(Refusal::Invalid(_))
    ));
    let rejected = world.ok("mgr-east", &deal, decide(false, Some("需求不清晰")));
    let reasons = world.run(
        Some("rep01"),
        Some(&rejected.record),
        Command::Transition { to: Id::from("proposal") },
    );
    match reasons {
        Err(Refusal::Gated(reasons)) => {
            assert!(reasons.iter().any(|r| r.message_zh.contains("需求不清晰")), "{reasons:?}")
        }
        other => panic!("{other:?}"),
    }
    let resubmitted = world.ok(
        "rep01",
        &rejected.record,
        Command::Resubmit { approval: Id::from("regional_manager_review") },
    );
    let approved = world.ok("mgr-east", &resubmitted.record, decide(true, None));
    assert!(approved.effects.iter().any(|e| matches!(e, Effect::CloseTask { key } if key.contains("approval/regional_manager_review"))));
    let version = approved.record.version;
    let deal = world
        .ok(
            "rep01",
            &approved.record,
            Command::Update {
                expected_version: version,
                fields: fields(json!({"needs_survey": "upload-1", "product_line": "automation"})),
            },
        )
        .record;
    let moved = world.ok("rep01", &deal, Command::Transition { to: Id::from("proposal") });
    assert_eq!(moved.record.stage().map(Id::as_str), Some("proposal"));
    // The proposal approval passes by itself; whether it is audited is reproducible.
    let audited = moved.events.iter().find_map(|e| match e {
        Event::ApprovalAutoApproved { audited, .. } => Some(*audited),
        _ => None,
    });
    assert!(audited.is_some());
    let audit_task = moved.effects.iter().any(
        |e| matches!(e, Effect::OpenTask(task) if matches!(task.kind, TaskKind::Audit { .. })),
    );
    assert_eq!(audited, Some(audit_task));
}

#[test]
fn the_price_quote_cannot_come_before_the_technical_proposal() {
    let mut world = World::new();
    let deal = deal_in_proposal(&mut world);
    let quote =
        Command::Linked { form: Id::from("price_quote"), record: fields(json!({"id": "q1"})) };
    let refused = world.run(Some("rep01"), Some(&deal), quote.clone());
    match refused {
        Err(Refusal::Gated(reasons)) => {
            assert!(reasons[0].message_zh.contains("请先完成"), "{reasons:?}")
        }
        other => panic!("{other:?}"),
    }
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Linked {
                form: Id::from("technical_proposal"),
                record: fields(json!({"id": "t1"})),
            },
        )
        .record;
    let deal = world.ok("rep01", &deal, quote).record;
    let done = &deal.flow.as_ref().expect("flow").actions;
    assert!(
        done.contains_key(&Id::from("technical_proposal"))
            && done.contains_key(&Id::from("price_quote"))
    );
}

#[test]
fn negotiation_starts_contract_approval_and_waits_for_it() {
    let mut world = World::new();
    let deal = deal_in_proposal(&mut world);
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Linked {
                form: Id::from("technical_proposal"),
                record: fields(json!({"id": "t1"})),
            },
        )
        .record;
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Linked { form: Id::from("price_quote"), record: fields(json!({"id": "q1"})) },
        )
        .record;
    let entered = world.ok("rep01", &deal, Command::Transition { to: Id::from("negotiation") });
    let (child, child_fields) = entered
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::StartFlow { flow, child, fields, wait: true, .. }
                if flow.as_str() == "contract-approval" =>
            {
                Some((child.clone(), fields.clone()))
            }
            _ => None,
        })
        .expect("contract approval starts");
    assert_eq!(child_fields["opportunity"], json!(deal.id));
    assert_eq!(child_fields["amount"], json!(400000));
    let deal = entered.record;
    assert_eq!(deal.flow.as_ref().and_then(|f| f.waiting_for.clone()), Some(child.clone()));

    // The contract record goes to legal, with a 2-working-day SLA.
    let mut cx_ids = 100;
    let contract = {
        let mut new_id = || {
            cx_ids += 1;
            format!("r{cx_ids}")
        };
        let mut cx = Context {
            definitions: world.definitions,
            org: &world.org,
            sandbox: &world.sandbox,
            actor: None,
            now: world.now,
            new_id: &mut new_id,
            seed: 1,
        };
        start_subflow(
            &mut cx,
            &Id::from("contract-approval"),
            child.clone(),
            child_fields,
            Some("rep01".into()),
            ParentLink { record: deal.id.clone(), stage: Id::from("negotiation"), wait: true },
        )
        .expect("the contract record is created")
    };
    assert_eq!(contract.record.stage().map(Id::as_str), Some("legal_review"));
    let legal_told =
        contract.effects.iter().any(|e| matches!(e, Effect::Notify(n) if n.to == ["legal-li"]));
    assert!(legal_told, "{:?}", contract.effects);

    // The deal cannot be closed by hand while it waits.
    let reasons = gated_reasons(world.run(
        Some("rep01"),
        Some(&deal),
        Command::Transition { to: Id::from("won") },
    ));
    assert!(reasons.iter().any(|(kind, _)| kind == "subflow"), "{reasons:?}");
    // Signed: the deal moves to won on its own.
    let won = world
        .run(None, Some(&deal), Command::SubflowEnded { child, outcome: Id::from("signed") })
        .expect("accepted");
    assert_eq!(won.record.stage().map(Id::as_str), Some("won"));
    assert!(
        won.events
            .iter()
            .any(|e| matches!(e, Event::FlowEnded { outcome, .. } if outcome.as_str() == "won"))
    );
    assert!(
        won.effects
            .iter()
            .any(|e| matches!(e, Effect::Notify(n) if n.template.as_str() == "deal_won"))
    );
}

#[test]
fn a_stale_update_is_refused_not_merged() {
    let mut world = World::new();
    let deal = new_deal(&mut world).record;
    let updated = world
        .ok(
            "rep01",
            &deal,
            Command::Update { expected_version: 1, fields: fields(json!({"region": "east"})) },
        )
        .record;
    let stale = world.run(
        Some("rep01"),
        Some(&updated),
        Command::Update { expected_version: 1, fields: fields(json!({"region": "south"})) },
    );
    assert_eq!(stale, Err(Refusal::Stale { expected: 1, actual: 2 }));
}

#[test]
fn an_overdue_stage_escalates_along_its_ladder() {
    let mut world = World::new();
    let created = new_deal(&mut world);
    let deal = created.record;
    let (key, due, kind) = created
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::SetTimer { key, due, kind } => Some((key.clone(), *due, kind.clone())),
            _ => None,
        })
        .expect("an SLA timer");
    world.now = due;
    let breached =
        world.run(None, Some(&deal), Command::Timer { key, timer: kind }).expect("accepted");
    assert!(breached.events.iter().any(|e| matches!(e, Event::SlaBreached { .. })));
    let steps: Vec<(i64, TimerKind, String)> = breached
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer { due, kind: kind @ TimerKind::Escalation { .. }, key } => {
                Some((*due, kind.clone(), key.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(steps.len(), 2, "two steps in the standard ladder");
    assert_eq!(steps[0].0, due, "the first step runs at once");
    assert_eq!(
        steps[1].0,
        due + 24 * HOUR,
        "the second one working day later (Wednesday to Thursday)"
    );
    let first = world
        .run(
            None,
            Some(&breached.record),
            Command::Timer { key: steps[0].2.clone(), timer: steps[0].1.clone() },
        )
        .expect("accepted");
    let told = first.effects.iter().find_map(|e| match e {
        Effect::Notify(n) => Some(n.to.clone()),
        _ => None,
    });
    assert_eq!(told, Some(vec!["rep01".to_owned(), "dept-head".to_owned()]));
    assert!(first.events.iter().any(|e| matches!(
        e,
        Event::Escalated { reassigned_to: Some(to), .. } if to == "dept-head"
    )));
    // Once the deal has moved on, the old ladder has nothing to do.
    let version = first.record.version;
    let moved = world
        .ok(
            "rep01",
            &first.record,
            Command::Update {
                expected_version: version,
                fields: fields(json!({"region": "east"})),
            },
        )
        .record;
    let moved =
        world.ok("rep01", &moved, Command::Transition { to: Id::from("first_contact") }).record;
    let late = world
        .run(
            None,
            Some(&moved),
            Command::Timer { key: steps[1].2.clone(), timer: steps[1].1.clone() },
        )
        .expect("accepted");
    assert!(late.events.is_empty() && late.effects.is_empty());
}

#[test]
fn a_large_swing_in_the_amount_alerts_the_director_and_finance() {
    let mut world = World::new();
    let deal = new_deal(&mut world).record;
    let small = world.ok(
        "rep01",
        &deal,
        Command::Update { expected_version: 1, fields: fields(json!({"amount": 440000})) },
    );
    assert!(
        !small.events.iter().any(|e| matches!(e, Event::AlertRaised { .. })),
        "+10% is not a swing"
    );
    let big = world.ok(
        "rep01",
        &small.record,
        Command::Update { expected_version: 2, fields: fields(json!({"amount": 800000})) },
    );
    assert!(
        big.events
            .iter()
            .any(|e| matches!(e, Event::AlertRaised { alert } if alert.as_str() == "large-swing"))
    );
    let told = big.effects.iter().find_map(|e| match e {
        Effect::Notify(n) => Some(n.to.clone()),
        _ => None,
    });
    assert_eq!(told, Some(vec!["director".to_owned(), "finance".to_owned()]));
    assert!(big.effects.iter().any(|e| matches!(e, Effect::OpenTask(task) if task.role.as_ref().map(Id::as_str) == Some("sales_director"))));
}

#[test]
fn any_open_stage_can_be_marked_lost_with_a_reason() {
    let mut world = World::new();
    let deal = new_deal(&mut world).record;
    let reasons = gated_reasons(world.run(
        Some("rep01"),
        Some(&deal),
        Command::Transition { to: Id::from("lost") },
    ));
    assert_eq!(reasons, [("field".to_owned(), "loss_reason".to_owned())]);
    let deal = world
        .ok(
            "rep01",
            &deal,
            Command::Update {
                expected_version: 1,
                fields: fields(json!({"loss_reason": "price"})),
            },
        )
        .record;
    let lost = world.ok("rep01", &deal, Command::Transition { to: Id::from("lost") });
    assert!(
        lost.events
            .iter()
            .any(|e| matches!(e, Event::FlowEnded { outcome, .. } if outcome.as_str() == "lost"))
    );
    let again =
        world.run(Some("rep01"), Some(&lost.record), Command::Transition { to: Id::from("lead") });
    assert!(matches!(again, Err(Refusal::NotApplicable(_))));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Commands a person might try, in any order.
    fn command() -> impl Strategy<Value = (usize, Command)> {
        let stages =
            ["lead", "first_contact", "needs_confirmed", "proposal", "negotiation", "won", "lost"];
        let forms = ["first_contact_record", "interaction", "technical_proposal", "price_quote"];
        let field_sets = [
            json!({"region": "east"}),
            json!({"contact_name": "王", "contact_title": "经理", "purchase_motivation": "扩产"}),
            json!({"meeting_scheduled_at": "2026-11-05T10:00:00+08:00"}),
            json!({"needs_survey": "u1", "product_line": "automation"}),
            json!({"loss_reason": "price"}),
            json!({"amount": 900000}),
            json!({"amount": -5}),
        ];
        prop_oneof![
            (0..stages.len())
                .prop_map(move |i| (0, Command::Transition { to: Id::from(stages[i]) })),
            (0..field_sets.len()).prop_map(move |i| (
                0,
                Command::Update {
                    expected_version: u64::MAX,
                    fields: fields(field_sets[i].clone())
                }
            )),
            (0..forms.len(), any::<bool>()).prop_map(move |(i, visit)| (
                0,
                Command::Linked {
                    form: Id::from(forms[i]),
                    record: fields(
                        json!({"id": format!("l{i}"), "kind": if visit { "visit" } else { "call" }})
                    ),
                }
            )),
            any::<bool>().prop_map(|approve| (
                1,
                Command::Decide {
                    approval: Id::from("regional_manager_review"),
                    approve,
                    reason: Some("理由".into()),
                }
            )),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn random_commands_keep_the_invariants(commands in prop::collection::vec(command(), 1..40)) {
            let mut world = World::new();
            let mut deal = new_deal(&mut world).record;
            for (who, mut command) in commands {
                if let Command::Update { expected_version, .. } = &mut command {
                    *expected_version = deal.version;
                }
                let actor = if who == 1 { "mgr-east" } else { "rep01" };
                let before = deal.clone();
                let transition_to = match &command { Command::Transition { to } => Some(to.clone()), _ => None };
                if let Ok(outcome) = world.run(Some(actor), Some(&deal), command) {
                    {
                        // Every change has its event, and only changes bump the version.
                        prop_assert_eq!(outcome.record.version > before.version, !outcome.events.is_empty());
                        // No stage is left while a key action or approval is open.
                        if transition_to.is_some() {
                            let state = before.flow.as_ref().expect("flow");
                            let flow = &world.definitions.flows[&state.flow];
                            let stage = flow.stages.iter().find(|s| s.id == state.stage).expect("stage");
                            for action in stage.actions.iter().filter(|a| !a.optional) {
                                prop_assert!(state.actions.contains_key(&action.id), "left {} without {}", stage.id, action.id);
                            }
                            for approval in &stage.approvals {
                                prop_assert_eq!(state.approvals.get(&approval.id).map(|a| a.status), Some(ApprovalStatus::Approved));
                            }
                        }
                        // Every open task and timer belongs to this record.
                        for key in outcome.record.tasks.keys().chain(outcome.record.timers.iter()) {
                            prop_assert!(key.starts_with(&format!("{}/", outcome.record.id)), "{}", key);
                        }
                        // A finished flow keeps no timers.
                        if outcome.record.flow.as_ref().is_some_and(|f| f.outcome.is_some()) {
                            prop_assert!(outcome.record.timers.is_empty());
                        }
                        deal = outcome.record;
                    }
                }
            }
        }
    }
}
