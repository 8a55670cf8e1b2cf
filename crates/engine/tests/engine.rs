//! The engine on a real sled store with a manual clock: commands commit atomically,
//! SLA timers fire on the business calendar, survive a restart, and escalate once.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use stagecraft_engine::{Engine, EngineError, ManualClock, Target};
use stagecraft_model::{Id, Text, User};
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Command, Refusal};
use stagecraft_store::{IndexValue, Page, RecordId, SledStore, Store};

/// 2026-11-02 (Monday) 10:00 in China.
const MONDAY_10AM: i64 = 1_793_584_800_000;
const HOUR: i64 = 3_600_000;

fn definitions() -> Definitions {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match stagecraft_pack::load(&[root.join("flows"), root.join("schemas")]) {
        Ok((definitions, _)) => definitions,
        Err(report) => panic!("the shipped packs must load: {:#?}", report.diagnostics),
    }
}

fn person(id: &str, manager: Option<&str>, department: Option<&str>, roles: &[&str]) -> User {
    User {
        id: Id::from(id),
        name: id.to_owned(),
        email: None,
        phone: None,
        department: department.map(Id::from),
        manager: manager.map(Id::from),
        roles: roles.iter().map(|role| Id::from(*role)).collect(),
        locale: None,
    }
}

fn engine(dir: &Path, clock: Arc<ManualClock>) -> Engine {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).expect("open the store"));
    let engine = Engine::new(store, definitions(), clock, 42);
    let org = engine.org();
    let mut org = org.write().expect("org");
    org.add_department("sales", Text::Plain("销售部".into()), None, None).expect("department");
    org.add_department("sales-east", Text::Plain("华东区".into()), Some("sales"), None)
        .expect("department");
    org.add_user(person("director", None, Some("sales"), &["sales_director"])).expect("user");
    org.add_user(person("dept-head", Some("director"), Some("sales"), &["department_head"]))
        .expect("user");
    org.add_user(person("mgr-east", Some("director"), Some("sales-east"), &["regional_manager"]))
        .expect("user");
    org.add_user(person("rep01", Some("mgr-east"), Some("sales-east"), &["sales_rep"]))
        .expect("user");
    org.set_head("sales-east", Some("dept-head")).expect("head");
    drop(org);
    engine
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn create(
    engine: &Engine,
    form: &str,
    value: Value,
    key: Option<&str>,
) -> Result<stagecraft_engine::Executed, EngineError> {
    engine.execute(
        Some("rep01"),
        Target::New,
        Command::Create { form: Id::from(form), fields: fields(value), owner: None },
        key,
    )
}

/// A deal with only its four starting fields, for tests about what happens next.
fn plain_deal(engine: &Engine) -> stagecraft_runtime::Record {
    create(
        engine,
        "opportunity",
        json!({"name": "x", "customer": "c", "amount": 1, "expected_close_date": "2026-12-31"}),
        None,
    )
    .expect("deal")
    .record
}

fn outbox_recipients(store: &Arc<dyn Store>) -> Vec<(String, Vec<String>)> {
    store
        .outbox_pending(100)
        .expect("outbox")
        .into_iter()
        .map(|row| {
            let template = row.data["template"].as_str().unwrap_or_default().to_owned();
            let to = row.data["to"]
                .as_array()
                .map(|to| to.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            (template, to)
        })
        .collect()
}

#[test]
fn a_deal_is_stored_with_its_events_and_indexes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock);
    let customer = create(&engine, "customer", json!({"name": "华东精密机械"}), None)
        .expect("customer")
        .record;
    let deal = create(
        &engine,
        "opportunity",
        json!({"name": "2 台注塑机", "customer": customer.id, "amount": 400000, "expected_close_date": "2026-12-31"}),
        Some("request-1"),
    )
    .expect("deal")
    .record;
    let stored = engine.record(&deal.id).expect("read").expect("stored");
    assert_eq!(stored, deal);
    let events = engine.store().events_of(&RecordId::new(deal.id.as_str())).expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "flow_started", "stage_changed"]);
    let by_customer = engine
        .store()
        .records_by_index(
            "opportunity",
            "customer",
            &IndexValue::Text(customer.id.clone()),
            Page::first(10),
        )
        .expect("index");
    assert_eq!(by_customer, [RecordId::new(deal.id.as_str())]);
    // The same request again makes no second deal.
    let again = create(
        &engine,
        "opportunity",
        json!({"name": "2 台注塑机", "customer": customer.id, "amount": 400000, "expected_close_date": "2026-12-31"}),
        Some("request-1"),
    );
    assert!(matches!(again, Err(EngineError::Duplicate(id)) if id == deal.id));
}

#[test]
fn a_refused_command_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock);
    let deal = plain_deal(&engine);
    let before = engine.store().events_since(0, 1000).expect("events").len();
    let refused = engine.execute(
        Some("rep01"),
        Target::Existing(deal.id.clone()),
        Command::Transition { to: Id::from("first_contact") },
        None,
    );
    assert!(matches!(refused, Err(EngineError::Refused(Refusal::Gated(_)))));
    assert_eq!(engine.store().events_since(0, 1000).expect("events").len(), before);
    assert_eq!(engine.record(&deal.id).expect("read").expect("stored").version, deal.version);
}

#[test]
fn an_interaction_keeps_its_customer_active() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let customer = create(&engine, "customer", json!({"name": "华东精密机械"}), None)
        .expect("customer")
        .record;
    clock.advance(5 * 24 * HOUR);
    let visit = create(
        &engine,
        "interaction",
        json!({"customer": customer.id, "kind": "visit", "status": "done", "summary": "介绍新产品线", "happened_at": "2026-11-07T10:00:00+08:00"}),
        None,
    );
    let visit = visit.unwrap_or_else(|error| panic!("{error}"));
    assert!(visit.others.iter().any(|other| other.id == customer.id));
    let customer = engine.record(&customer.id).expect("read").expect("stored");
    assert_eq!(customer.last_activity_at, MONDAY_10AM + 5 * 24 * HOUR);
}

#[test]
fn an_overdue_deal_escalates_once_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let deal = {
        let engine = engine(dir.path(), clock.clone());
        let deal = plain_deal(&engine);
        // Two working days: due Wednesday 10:00. Tuesday evening nothing is due.
        clock.set(MONDAY_10AM + 32 * HOUR);
        assert_eq!(engine.fire_due_timers().expect("fire"), 0);
        deal.id
    };
    // The process stops; a new one opens the same store on Wednesday 10:30.
    clock.set(MONDAY_10AM + 48 * HOUR + HOUR / 2);
    let engine = engine(dir.path(), clock.clone());
    let fired = engine.fire_due_timers().expect("fire");
    assert_eq!(fired, 2, "the SLA, then the first escalation step at once");
    let events = engine.store().events_of(&RecordId::new(deal.as_str())).expect("events");
    assert!(events.iter().any(|e| e.kind == "sla_breached"));
    assert_eq!(
        outbox_recipients(engine.store()),
        [("sla_overdue".to_owned(), vec!["rep01".to_owned(), "dept-head".to_owned()])]
    );
    // Nothing fires twice.
    assert_eq!(engine.fire_due_timers().expect("fire"), 0);
    // One working day later the sales director is told.
    clock.set(MONDAY_10AM + 72 * HOUR + HOUR);
    assert_eq!(engine.fire_due_timers().expect("fire"), 1);
    let recipients = outbox_recipients(engine.store());
    assert_eq!(recipients.len(), 2);
    assert_eq!(recipients[1], ("sla_overdue".to_owned(), vec!["director".to_owned()]));
    let record = engine.record(&deal).expect("read").expect("stored");
    assert!(record.timers.is_empty(), "every timer of the stage fired: {:?}", record.timers);
    let escalations = engine
        .store()
        .events_of(&RecordId::new(deal.as_str()))
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "escalated")
        .count();
    assert_eq!(escalations, 2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn a_record_stays_on_the_pack_version_it_started_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock);
    let old = plain_deal(&engine);
    // Version 1.1.0 of the sales pack requires a region from the very first stage.
    let packs = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    copy_dir(&root.join("flows"), &packs.path().join("flows"));
    copy_dir(&root.join("schemas"), &packs.path().join("schemas"));
    let manifest = packs.path().join("flows/sales/pack.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let version =
        text.lines().find(|line| line.starts_with("version:")).expect("a version line").to_owned();
    std::fs::write(&manifest, text.replacen(&version, "version: 1.1.0", 1)).expect("write");
    let flow = packs.path().join("flows/sales/pipeline.flow.yaml");
    let text = std::fs::read_to_string(&flow).expect("flow");
    std::fs::write(
        &flow,
        text.replacen(
            "requires: [name, customer, amount, expected_close_date]",
            "requires: [name, customer, amount, expected_close_date, region]",
            1,
        ),
    )
    .expect("write");
    let (newer, _) =
        stagecraft_pack::load(&[packs.path().join("flows"), packs.path().join("schemas")])
            .unwrap_or_else(|report| panic!("{:#?}", report.diagnostics));
    engine.reload(newer);
    let refused = create(
        &engine,
        "opportunity",
        json!({"name": "y", "customer": "c", "amount": 1, "expected_close_date": "2026-12-31"}),
        None,
    );
    assert!(
        matches!(refused, Err(EngineError::Refused(Refusal::Invalid(_)))),
        "new records follow 1.1.0"
    );
    // The old record still runs on its version: an update without a region is fine.
    let updated = engine.execute(
        Some("rep01"),
        Target::Existing(old.id.clone()),
        Command::Update { expected_version: old.version, fields: fields(json!({"amount": 2})) },
        None,
    );
    assert!(updated.is_ok(), "{updated:?}");
}

#[test]
fn a_stalled_deal_is_found_by_the_daily_scan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let deal = plain_deal(&engine);
    // The first run only starts the schedule.
    assert_eq!(engine.run_scheduled_scans().expect("scan"), 0);
    // Next morning after 09:00: scanned, but not stalled yet.
    clock.set(MONDAY_10AM + 24 * HOUR);
    assert!(engine.run_scheduled_scans().expect("scan") >= 1);
    let raised = |engine: &Engine| {
        engine
            .store()
            .events_of(&RecordId::new(deal.id.as_str()))
            .expect("events")
            .iter()
            .filter(|e| e.kind == "alert_raised" && e.data["alert"] == "stalled-deal")
            .count()
    };
    assert_eq!(raised(&engine), 0);
    // Eight days later it has been in lead capture for more than seven days.
    clock.set(MONDAY_10AM + 8 * 24 * HOUR);
    engine.run_scheduled_scans().expect("scan");
    assert_eq!(raised(&engine), 1);
    let tasks = engine.store().open_tasks_of("rep01").expect("tasks");
    assert!(tasks.iter().any(|task| task.data["form"] == "stall_report"), "{tasks:?}");
    assert!(
        outbox_recipients(engine.store())
            .iter()
            .any(|(template, to)| template == "stalled_deal" && to == &["rep01", "mgr-east"])
    );
    // Later the same day the scan does not run again; the next day the alert waits a week.
    clock.set(MONDAY_10AM + 8 * 24 * HOUR + 2 * HOUR);
    assert_eq!(engine.run_scheduled_scans().expect("scan"), 0);
    clock.set(MONDAY_10AM + 9 * 24 * HOUR);
    engine.run_scheduled_scans().expect("scan");
    assert_eq!(raised(&engine), 1);
    assert!(engine.verify().expect("verify").is_clean());
}

#[test]
fn a_scan_that_raises_nothing_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let store = Arc::new(SledStore::open(dir.path()).expect("open the store"));
    let engine = Engine::new(store.clone(), definitions(), clock.clone(), 42);
    for _ in 0..3 {
        plain_deal(&engine);
    }
    engine.run_scheduled_scans().expect("scan");
    let commits = store.stats().commits;
    // Next morning: every deal is scanned, none has stalled, so only the schedule's own
    // record is written.
    clock.set(MONDAY_10AM + 24 * HOUR);
    assert_eq!(engine.run_scheduled_scans().expect("scan"), 3);
    assert_eq!(store.stats().commits, commits + 1);
    assert!(engine.verify().expect("verify").is_clean());
}

#[test]
fn timers_of_many_records_due_together_fire_once_each() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let deals: Vec<_> = (0..40).map(|_| plain_deal(&engine).id).collect();
    // Wednesday 10:00: the lead stage's two working days are over for every deal at once.
    clock.set(MONDAY_10AM + 48 * HOUR);
    let fired = engine.fire_due_timers().expect("fire");
    assert!(fired >= deals.len(), "{fired}");
    assert_eq!(engine.fire_due_timers().expect("fire again"), 0);
    for deal in &deals {
        let breached = engine
            .store()
            .events_of(&RecordId::new(deal.as_str()))
            .expect("events")
            .iter()
            .filter(|event| event.kind == "sla_breached")
            .count();
        assert_eq!(breached, 1, "deal {deal}");
    }
    assert!(engine.verify().expect("verify").is_clean());
}

#[test]
fn every_record_can_be_rebuilt_from_its_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let customer = create(&engine, "customer", json!({"name": "华东精密机械"}), None)
        .expect("customer")
        .record;
    let deal = create(&engine, "opportunity", json!({"name": "x", "customer": customer.id, "amount": 100, "expected_close_date": "2026-12-31"}), None)
        .expect("deal")
        .record;
    let deal = engine
        .execute(
            Some("rep01"),
            Target::Existing(deal.id.clone()),
            Command::Update {
                expected_version: deal.version,
                fields: fields(json!({"region": "east", "amount": 900000})),
            },
            None,
        )
        .expect("update")
        .record;
    engine
        .execute(
            Some("rep01"),
            Target::Existing(deal.id.clone()),
            Command::Transition { to: Id::from("first_contact") },
            None,
        )
        .expect("transition");
    clock.advance(3 * 24 * HOUR);
    engine.fire_due_timers().expect("timers");
    let verification = engine.verify().expect("verify");
    assert!(verification.is_clean(), "{verification:?}");
    assert_eq!(verification.records, 2);
}

#[test]
fn a_broken_reload_keeps_the_running_definitions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock);
    let packs = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    copy_dir(&root.join("flows"), &packs.path().join("flows"));
    copy_dir(&root.join("schemas"), &packs.path().join("schemas"));
    let flow = packs.path().join("flows/sales/pipeline.flow.yaml");
    let text = std::fs::read_to_string(&flow).expect("flow");
    std::fs::write(&flow, text.replacen("to: first_contact", "to: first_contakt", 1))
        .expect("write");
    let report = engine
        .reload_from(&[packs.path().join("flows"), packs.path().join("schemas")])
        .expect_err("refused");
    assert!(report.diagnostics.iter().any(|d| d.message.contains("first_contakt")));
    // Still serving the good definitions.
    create(
        &engine,
        "opportunity",
        json!({"name": "x", "customer": "c", "amount": 1, "expected_close_date": "2026-12-31"}),
        None,
    )
    .expect("deal");
}
