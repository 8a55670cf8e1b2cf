//! The customer pool over the shipped packs: claim, the limit, release and the idle
//! return, each a call to `step` with a fixed time.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use stagecraft_model::Id;
use stagecraft_pack::Definitions;
use stagecraft_rules::{Limits, NoHost, Sandbox};
use stagecraft_runtime::{
    Command, Context, Effect, Event, Org, Outcome, OwnerChange, Record, Refusal,
    returns_to_pool_at, step,
};

/// 2026-11-02 10:00 (Monday) in China, in Unix milliseconds.
const MONDAY_10AM: i64 = 1_793_584_800_000;
const DAY: i64 = 24 * 3_600_000;

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

struct NoOrg;

impl Org for NoOrg {
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
    fn roles_of(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

fn run(
    actor: Option<&str>,
    now: i64,
    record: Option<&Record>,
    command: Command,
) -> Result<Outcome, Refusal> {
    let sandbox = Sandbox::new(Limits::default(), Arc::new(NoHost));
    let mut counter = 0;
    let mut new_id = || {
        counter += 1;
        format!("r{counter}")
    };
    let mut cx = Context {
        definitions: definitions(),
        org: &NoOrg,
        sandbox: &sandbox,
        actor,
        now,
        new_id: &mut new_id,
        seed: 1,
    };
    step(&mut cx, record, command)
}

fn new_record(form: &str, fields: Value) -> Record {
    let fields: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
    let command = Command::Create { form: Id::from(form), fields, owner: None };
    run(Some("rep01"), MONDAY_10AM, None, command)
        .unwrap_or_else(|refusal| panic!("created: {refusal}"))
        .record
}

/// A customer in the pool: created by rep01, then released.
fn pooled_customer() -> Record {
    let customer = new_record("customer", json!({"name": "无锡远航纺织机械有限公司"}));
    run(Some("rep01"), MONDAY_10AM, Some(&customer), Command::Release)
        .unwrap_or_else(|refusal| panic!("released: {refusal}"))
        .record
}

fn owner_changes(outcome: &Outcome) -> Vec<(Option<String>, Option<String>, OwnerChange)> {
    outcome
        .events
        .iter()
        .filter_map(|event| match event {
            Event::OwnerChanged { from, to, why } => Some((from.clone(), to.clone(), *why)),
            _ => None,
        })
        .collect()
}

#[test]
fn releasing_clears_the_owner_and_claiming_sets_it() {
    let customer = pooled_customer();
    assert_eq!(customer.owner, None);
    let later = MONDAY_10AM + DAY;
    let claimed = run(Some("rep02"), later, Some(&customer), Command::Claim { owned: 0 })
        .unwrap_or_else(|refusal| panic!("claimed: {refusal}"));
    assert_eq!(claimed.record.owner.as_deref(), Some("rep02"));
    assert_eq!(claimed.record.last_activity_at, later, "claiming is activity");
    assert_eq!(claimed.record.version, customer.version + 1);
    assert_eq!(owner_changes(&claimed), [(None, Some("rep02".to_owned()), OwnerChange::Claimed)]);
}

#[test]
fn an_owned_record_cannot_be_claimed() {
    let customer = new_record("customer", json!({"name": "苏州精工机械有限公司"}));
    let refused = run(Some("rep02"), MONDAY_10AM, Some(&customer), Command::Claim { owned: 0 });
    assert!(
        matches!(&refused, Err(Refusal::NotApplicable(why)) if why.contains("belongs to rep01")),
        "{refused:?}"
    );
    let again = run(Some("rep01"), MONDAY_10AM, Some(&customer), Command::Claim { owned: 1 });
    assert!(matches!(again, Err(Refusal::NotApplicable(_))));
}

#[test]
fn the_limit_per_owner_is_the_packs_max_per_owner() {
    let customer = pooled_customer();
    // The shipped customer form allows 200 customers per rep.
    let refused = run(Some("rep02"), MONDAY_10AM, Some(&customer), Command::Claim { owned: 200 });
    assert!(
        matches!(&refused, Err(Refusal::NotApplicable(why)) if why.contains("(200)")),
        "{refused:?}"
    );
    assert!(
        run(Some("rep02"), MONDAY_10AM, Some(&customer), Command::Claim { owned: 199 }).is_ok()
    );
}

#[test]
fn a_form_without_a_pool_is_neither_claimed_nor_released() {
    let suggestion = new_record(
        "process_suggestion",
        json!({"title": "审批太慢", "area": "sales", "problem": "慢", "suggestion": "快"}),
    );
    for command in [Command::Release, Command::Claim { owned: 0 }, Command::ReturnIdle] {
        let refused = run(Some("rep01"), MONDAY_10AM, Some(&suggestion), command);
        assert!(
            matches!(&refused, Err(Refusal::NotApplicable(why)) if why.contains("no pool")),
            "{refused:?}"
        );
    }
}

#[test]
fn a_record_in_the_pool_is_not_released_again() {
    let customer = pooled_customer();
    assert!(matches!(
        run(Some("rep01"), MONDAY_10AM, Some(&customer), Command::Release),
        Err(Refusal::NotApplicable(_))
    ));
}

#[test]
fn an_idle_record_returns_after_30_working_days_and_its_owner_is_told() {
    let customer = new_record("customer", json!({"name": "苏州精工机械有限公司"}));
    let due = returns_to_pool_at(definitions(), &customer).unwrap_or_default();
    // 30 working days on the 2026 China calendar: more than 30 calendar days.
    assert!(due > MONDAY_10AM + 30 * DAY, "due {due}");
    let early = run(None, due - 1, Some(&customer), Command::ReturnIdle);
    assert!(matches!(early, Err(Refusal::NotApplicable(_))), "{early:?}");
    let returned = run(None, due, Some(&customer), Command::ReturnIdle)
        .unwrap_or_else(|refusal| panic!("returned: {refusal}"));
    assert_eq!(returned.record.owner, None);
    assert_eq!(
        owner_changes(&returned),
        [(Some("rep01".to_owned()), None, OwnerChange::ReturnedIdle)]
    );
    let told: Vec<_> = returned
        .effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Notify(notification) => Some(notification.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].to, ["rep01"]);
    assert_eq!(told[0].template.as_str(), "customer_returned_to_pool");
}
