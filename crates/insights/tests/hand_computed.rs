//! The dashboard's figures against a small data set computed by hand.
//!
//! A test pack (written to a temporary folder) has two flows:
//! - `deals` (form `deal`): lead → qualified → offer → won, or lost from any open
//!   stage; measures: amount `value`, expected end `close_on`, success `won`, failure
//!   `lost`, large at 500 000, conversion `lead_to_qualified`, cycle time;
//! - `papers` (form `paper`): review → signed or rejected; success `signed`, failure
//!   `rejected`, cycle time.
//!
//! People: ann and bob in `east`, cat in `west`. Targets for 2026-11: ann 1 000 000,
//! bob 400 000, east 1 500 000. Times are UTC (the flows have no calendar), all at
//! 09:00; 2026-11-02 is a Monday.
//!
//! | deal | owner | value | created | stages entered | end |
//! |---|---|---|---|---|---|
//! | d1 | ann | 600 000 | 11-02 | lead, qualified 11-04, offer 11-06 | won 11-12 |
//! | d2 | ann | 200 000 | 11-03 | lead, qualified 11-05 | lost 11-09 |
//! | d3 | bob | 800 000 | 11-03 | lead, qualified 11-06, offer 11-10 | lost 11-20 |
//! | d4 | bob | 100 000 | 11-10 | lead, qualified 11-11, offer 11-13 | won 11-17 |
//! | d5 | ann | 300 000 | 11-10 | lead | open, close_on 11-25 |
//! | d6 | bob | 250 000 | 11-11 | lead, qualified 11-12, offer 11-16 | open, close_on 11-28 |
//! | d7 | cat | 700 000 | 11-16 | lead, qualified 11-17, offer 11-18 | won 11-24 |
//! | d8 | ann | 500 000 | 10-20 | lead, qualified 10-22, offer 10-28 | won 11-05 |
//! | d9 | ann | 150 000 | 10-01 (imported on 11-20) | lead 10-01, qualified 10-05 | open, close_on 11-20 |
//! | d10 | bob | 50 000 | 11-24 | lead | open, close_on 12-05 |
//!
//! SLA breaches: d3 in qualified on 11-08, d6 in offer on 11-20, d8 in offer on 10-25
//! (outside November). Alerts `stalled`: d3 on 11-15, d6 on 11-25.
//!
//! | paper | owner | created | end |
//! |---|---|---|---|
//! | p1 | ann | 11-05 | signed 11-08 |
//! | p2 | bob | 11-12 | rejected 11-13 |
//! | p3 | ann | 11-20 | signed 11-25 |

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};
use stagecraft_insights::dataset::{Dataset, Filter};
use stagecraft_insights::figures::{Count, FunnelStep, flow_report};
use stagecraft_insights::period::Period;
use stagecraft_insights::targets::{People, coverage};
use stagecraft_model::Id;
use stagecraft_pack::Definitions;
use stagecraft_store::{Commit, NewEvent, RecordWrite, SledStore, Store};

const DAY: i64 = 86_400_000;
/// 2026-10-01 09:00 UTC.
const OCT_1: i64 = 1_790_845_200_000;
/// 2026-11-01 09:00 UTC.
const NOV_1: i64 = OCT_1 + 31 * DAY;

/// 09:00 UTC on a day of October.
fn oct(day: i64) -> i64 {
    OCT_1 + (day - 1) * DAY
}

/// 09:00 UTC on a day of November (32 is 2 December, …).
fn nov(day: i64) -> i64 {
    NOV_1 + (day - 1) * DAY
}

const PACK: &str = "stagecraft: 1
name: test
version: 1.0.0
title: Test
contents: [\".\"]
roles:
  - {id: boss, title: Boss, sees: all}
";

const DEALS: &str = "id: deals
form: deal
title: {zh-CN: 交易, en: Deals}
measures:
  amount: value
  expected_end: close_on
  success: [won]
  failure: [lost]
  large_amount: 500000
  conversions:
    - {id: lead_to_qualified, title: {zh-CN: 线索转合格, en: Lead to qualified}, from: lead, to: qualified}
  cycle_time: true
stages:
  - {id: lead, title: {zh-CN: 线索, en: Lead}}
  - {id: qualified, title: {zh-CN: 合格, en: Qualified}}
  - {id: offer, title: {zh-CN: 报价, en: Offer}}
  - {id: won, title: {zh-CN: 赢单, en: Won}, outcome: won}
  - {id: lost, title: {zh-CN: 丢单, en: Lost}, outcome: lost}
transitions:
  - {from: lead, to: qualified}
  - {from: qualified, to: offer}
  - {from: offer, to: won}
  - {from: lead, to: lost}
  - {from: qualified, to: lost}
  - {from: offer, to: lost}
";

const PAPERS: &str = "id: papers
form: paper
title: {zh-CN: 合同, en: Papers}
measures:
  success: [signed]
  failure: [rejected]
  cycle_time: true
stages:
  - {id: review, title: {zh-CN: 审核, en: Review}}
  - {id: signed, title: {zh-CN: 已签, en: Signed}, outcome: signed}
  - {id: rejected, title: {zh-CN: 退回, en: Rejected}, outcome: rejected}
transitions:
  - {from: review, to: signed}
  - {from: review, to: rejected}
";

const ORG: &str = "departments:
  - {id: east, title: {zh-CN: 东区, en: East}}
  - {id: west, title: {zh-CN: 西区, en: West}}
users:
  - {id: ann, name: Ann, department: east}
  - {id: bob, name: Bob, department: east}
  - {id: cat, name: Cat, department: west}
targets:
  - {flow: deals, user: ann, period: 2026-11, amount: 1000000}
  - {flow: deals, user: bob, period: 2026-11, amount: 400000}
  - {flow: deals, department: east, period: 2026-11, amount: 1500000}
  - {flow: deals, user: ann, period: 2026-12, amount: 9}
";

fn form(id: &str, fields: Value) -> String {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "x-form": {"id": id, "title": id},
        "properties": fields,
    })
    .to_string()
}

fn definitions(dir: &Path) -> Definitions {
    let files = [
        ("pack.yaml", PACK.to_owned()),
        ("deals.flow.yaml", DEALS.to_owned()),
        ("papers.flow.yaml", PAPERS.to_owned()),
        ("company.org.yaml", ORG.to_owned()),
        (
            "deal.json",
            form(
                "deal",
                json!({"name": {"type": "string"}, "value": {"type": "number"},
                       "close_on": {"type": "string", "format": "date"}}),
            ),
        ),
        ("paper.json", form("paper", json!({"name": {"type": "string"}}))),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write pack file");
    }
    match stagecraft_pack::load(&[dir.to_path_buf()]) {
        Ok((definitions, _)) => definitions,
        Err(report) => {
            let messages: Vec<String> =
                report.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
            panic!("test pack does not load: {messages:#?}")
        }
    }
}

/// A record to write: its document, then its events as (kind, time, details).
struct Seed {
    id: &'static str,
    form: &'static str,
    flow: &'static str,
    owner: &'static str,
    created: i64,
    fields: Value,
    stage: &'static str,
    outcome: Option<&'static str>,
    events: Vec<(&'static str, i64, Value)>,
}

fn stage(flow: &str, from: Option<&str>, to: &str, by: &str) -> Value {
    json!({"event": "stage_changed", "flow": flow, "from": from, "to": to, "stayed_ms": null, "by": by})
}

/// A record created at `created` in its first stage, moved through `moves` and maybe
/// ended, by its owner.
#[allow(clippy::too_many_arguments)]
fn deal(
    id: &'static str,
    owner: &'static str,
    value: i64,
    close_on: &str,
    created: i64,
    moves: &[(&'static str, i64)],
    end: Option<(&'static str, i64)>,
) -> Seed {
    let mut events = vec![
        ("created", created, json!({"event": "created", "form": "deal", "by": owner})),
        ("stage_changed", created, stage("deals", None, "lead", owner)),
    ];
    let mut current = "lead";
    for (to, at) in moves.iter().copied().chain(end) {
        events.push(("stage_changed", at, stage("deals", Some(current), to, owner)));
        current = to;
    }
    if let Some((outcome, at)) = end {
        events.push((
            "flow_ended",
            at,
            json!({"event": "flow_ended", "flow": "deals", "outcome": outcome, "duration_ms": at - created}),
        ));
    }
    Seed {
        id,
        form: "deal",
        flow: "deals",
        owner,
        created,
        fields: json!({"name": id, "value": value, "close_on": close_on}),
        stage: current,
        outcome: end.map(|(outcome, _)| outcome),
        events,
    }
}

fn paper(id: &'static str, owner: &'static str, created: i64, end: (&'static str, i64)) -> Seed {
    let (outcome, at) = end;
    Seed {
        id,
        form: "paper",
        flow: "papers",
        owner,
        created,
        fields: json!({"name": id}),
        stage: outcome,
        outcome: Some(outcome),
        events: vec![
            ("created", created, json!({"event": "created", "form": "paper"})),
            ("stage_changed", created, stage("papers", None, "review", "legal")),
            ("stage_changed", at, stage("papers", Some("review"), outcome, "legal")),
            (
                "flow_ended",
                at,
                json!({"event": "flow_ended", "flow": "papers", "outcome": outcome}),
            ),
        ],
    }
}

fn mark(seed: &mut Seed, kind: &'static str, at: i64, data: Value) {
    seed.events.push((kind, at, data));
}

fn seeds() -> Vec<Seed> {
    let mut d3 = deal(
        "d3",
        "bob",
        800_000,
        "2026-11-30",
        nov(3),
        &[("qualified", nov(6)), ("offer", nov(10))],
        Some(("lost", nov(20))),
    );
    mark(&mut d3, "sla_breached", nov(8), json!({"event": "sla_breached", "stage": "qualified"}));
    mark(&mut d3, "alert_raised", nov(15), json!({"event": "alert_raised", "alert": "stalled"}));
    let mut d6 = deal(
        "d6",
        "bob",
        250_000,
        "2026-11-28",
        nov(11),
        &[("qualified", nov(12)), ("offer", nov(16))],
        None,
    );
    mark(&mut d6, "sla_breached", nov(20), json!({"event": "sla_breached", "stage": "offer"}));
    mark(&mut d6, "alert_raised", nov(25), json!({"event": "alert_raised", "alert": "stalled"}));
    let mut d8 = deal(
        "d8",
        "ann",
        500_000,
        "2026-11-05",
        oct(20),
        &[("qualified", oct(22)), ("offer", oct(28))],
        Some(("won", nov(5))),
    );
    mark(&mut d8, "sla_breached", oct(25), json!({"event": "sla_breached", "stage": "offer"}));
    // d9 came from another system on 11-20: the engine's own creation and stage
    // events of that day are replaced by the imported history.
    let mut d9 = deal("d9", "ann", 150_000, "2026-11-20", nov(20), &[], None);
    d9.created = oct(1);
    d9.stage = "qualified";
    mark(
        &mut d9,
        "imported",
        nov(20),
        json!({"event": "imported", "source": "crm.xlsx", "created_at": oct(1),
               "stages": [{"stage": "lead", "at": oct(1)}, {"stage": "qualified", "at": oct(5)}],
               "ended": null, "by": "admin"}),
    );
    vec![
        deal(
            "d1",
            "ann",
            600_000,
            "2026-11-15",
            nov(2),
            &[("qualified", nov(4)), ("offer", nov(6))],
            Some(("won", nov(12))),
        ),
        deal(
            "d2",
            "ann",
            200_000,
            "2026-11-30",
            nov(3),
            &[("qualified", nov(5))],
            Some(("lost", nov(9))),
        ),
        d3,
        deal(
            "d4",
            "bob",
            100_000,
            "2026-11-20",
            nov(10),
            &[("qualified", nov(11)), ("offer", nov(13))],
            Some(("won", nov(17))),
        ),
        deal("d5", "ann", 300_000, "2026-11-25", nov(10), &[], None),
        d6,
        deal(
            "d7",
            "cat",
            700_000,
            "2026-11-30",
            nov(16),
            &[("qualified", nov(17)), ("offer", nov(18))],
            Some(("won", nov(24))),
        ),
        d8,
        d9,
        deal("d10", "bob", 50_000, "2026-12-05", nov(24), &[], None),
        paper("p1", "ann", nov(5), ("signed", nov(8))),
        paper("p2", "bob", nov(12), ("rejected", nov(13))),
        paper("p3", "ann", nov(20), ("signed", nov(25))),
    ]
}

/// Writes the seeds through a real store, one commit per event at its time.
fn store(dir: &Path) -> SledStore {
    let store = SledStore::open(dir).expect("open store");
    for seed in seeds() {
        let document = json!({
            "id": seed.id, "form": seed.form, "version": 1, "owner": seed.owner,
            "created_at": seed.created, "updated_at": seed.created,
            "last_activity_at": seed.created, "fields": seed.fields,
            "flow": {"flow": seed.flow, "pack_version": "1.0.0", "stage": seed.stage,
                     "stage_entered_at": seed.created, "actions": {}, "approvals": {},
                     "waiting_for": null, "visited": [], "outcome": seed.outcome},
            "parent": null
        });
        let mut events = seed.events.into_iter();
        let mut first = Commit::at(seed.created);
        first.records.push(RecordWrite::create(seed.id, seed.form, document));
        if let Some((kind, _, data)) = events.next() {
            first.events.push(NewEvent::new(seed.id, kind, data));
        }
        store.commit(first).expect("create");
        for (kind, at, data) in events {
            let mut commit = Commit::at(at);
            commit.events.push(NewEvent::new(seed.id, kind, data));
            store.commit(commit).expect("event");
        }
    }
    store
}

fn setup() -> (tempfile::TempDir, Definitions, SledStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pack = dir.path().join("pack");
    std::fs::create_dir(&pack).expect("pack dir");
    let definitions = definitions(&pack);
    let store = store(&dir.path().join("store"));
    (dir, definitions, store)
}

fn step(stage: &str, title: &str, reached: usize, to_next: Option<f64>) -> FunnelStep {
    FunnelStep { stage: stage.into(), title: title.into(), reached, to_next }
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a value");
    assert!((actual - expected).abs() < 1e-9, "{actual} ≠ {expected}");
}

#[test]
fn imported_history_replaces_the_engine_s_day_of_import() {
    let (_dir, definitions, store) = setup();
    let dataset = Dataset::load(&store, &definitions, &Filter::default()).expect("load");
    assert_eq!(dataset.records.len(), 13);
    let d9 = dataset.records.iter().find(|record| record.id == "d9").expect("d9");
    assert_eq!(d9.created_at, oct(1));
    let stages: Vec<(&str, i64)> =
        d9.stages.iter().map(|entry| (entry.stage.as_str(), entry.at)).collect();
    assert_eq!(stages, [("lead", oct(1)), ("qualified", oct(5))]);
    assert_eq!(d9.imported_from.as_deref(), Some("crm.xlsx"));
    assert_eq!(d9.ended, None);
    let d3 = dataset.records.iter().find(|record| record.id == "d3").expect("d3");
    assert_eq!(d3.created_by.as_deref(), Some("bob"));
    assert_eq!(d3.breaches.len(), 1);
    assert_eq!(
        d3.ended.as_ref().map(|end| (end.outcome.as_str(), end.at)),
        Some(("lost", nov(20)))
    );
}

#[test]
fn november_figures_match_the_hand_computed_ones() {
    let (_dir, definitions, store) = setup();
    let dataset = Dataset::load(&store, &definitions, &Filter::default()).expect("load");
    let november = Period::parse("2026-11", 0).expect("period");
    let deals = definitions.flows.get(&Id::from("deals")).expect("deals");
    let report = flow_report(&dataset, &definitions, deals, &november, "en");

    // Cohort: created in November: d1 d2 d3 d4 d5 d6 d7 d10 (d8 and d9 are older).
    assert_eq!(report.cohort, 8);
    // Furthest stage: d1 d4 d7 won; d3 d6 offer; d2 qualified (then lost); d5 d10 lead.
    // Reached: lead 8, qualified 6, offer 5, won 3 → 6/8, 5/6, 3/5.
    assert_eq!(
        report.funnel,
        [
            step("lead", "Lead", 8, Some(0.75)),
            step("qualified", "Qualified", 6, Some(5.0 / 6.0)),
            step("offer", "Offer", 5, Some(0.6)),
            step("won", "Won", 3, None),
        ]
    );
    // Weeks overlapping November: 10-26 (only 11-01, nothing created), 11-02 (d1 d2
    // d3: lead 3, qualified 3, offer 2, won 1), 11-09 (d4 d5 d6: 3, 2, 2, 1), 11-16
    // (d7: 1, 1, 1, 1), 11-23 (d10: 1, 0, 0, 0), 11-30 (nothing).
    let weeks: Vec<(&str, usize, Vec<Option<f64>>)> = report
        .weekly
        .iter()
        .map(|week| (week.week.as_str(), week.entered, week.rates.clone()))
        .collect();
    assert_eq!(
        weeks,
        [
            ("2026-10-26", 0, vec![None, None, None]),
            ("2026-11-02", 3, vec![Some(1.0), Some(2.0 / 3.0), Some(0.5)]),
            ("2026-11-09", 3, vec![Some(2.0 / 3.0), Some(1.0), Some(0.5)]),
            ("2026-11-16", 1, vec![Some(1.0), Some(1.0), Some(1.0)]),
            ("2026-11-23", 1, vec![Some(0.0), None, None]),
            ("2026-11-30", 0, vec![None, None, None]),
        ]
    );
    // Stability over the weeks with a rate: lead → qualified 1, 2/3, 1, 0; qualified
    // → offer 1, 1 (and 2/3 in the first week); offer → won 0.5, 0.5, 1.
    let spread: Vec<(&str, usize, Option<f64>, Option<f64>)> = report
        .stability
        .iter()
        .map(|row| (row.from.as_str(), row.weeks, row.lowest, row.highest))
        .collect();
    assert_eq!(
        spread,
        [
            ("lead", 4, Some(0.0), Some(1.0)),
            ("qualified", 3, Some(2.0 / 3.0), Some(1.0)),
            ("offer", 3, Some(0.5), Some(1.0)),
        ]
    );
    close(report.stability[1].spread, 1.0 / 3.0);
    assert_eq!(report.stability[0].title, "Lead → Qualified");
    // Lead → qualified: all 8 entered lead, 6 entered qualified.
    let conversion = &report.conversions[0];
    assert_eq!(
        (conversion.id.as_str(), conversion.entered, conversion.converted),
        ("lead_to_qualified", 8, 6)
    );
    close(conversion.rate, 0.75);
    // Ended in November: d1 won, d2 lost, d3 lost, d4 won, d7 won, d8 won → 4 / 6.
    assert_eq!(
        (report.outcomes.ended, report.outcomes.success, report.outcomes.failure),
        (6, 4, 2)
    );
    close(report.outcomes.win_rate, 4.0 / 6.0);
    // Won amount: 600 000 + 100 000 + 700 000 + 500 000.
    close(report.outcomes.success_amount, 1_900_000.0);
    // Large (≥ 500 000): d1 won, d3 lost, d7 won, d8 won (exactly 500 000) → 3 / 4;
    // others: d2 lost, d4 won → 1 / 2.
    let sizes: Vec<(&str, usize, usize)> =
        report.by_size.iter().map(|row| (row.size.as_str(), row.success, row.failure)).collect();
    assert_eq!(sizes, [("large", 3, 1), ("other", 1, 1)]);
    close(report.by_size[0].win_rate, 0.75);
    close(report.by_size[1].win_rate, 0.5);
    // Cycle of the won deals: d1 10 days, d4 7, d7 8, d8 16 → 41 / 4 = 10.25 days.
    let cycle = report.cycle.as_ref().expect("cycle time");
    assert_eq!(cycle.records, 4);
    close(cycle.average_days, 10.25);
    // Breaches in November: d3 in qualified, d6 in offer (d8's is in October).
    assert_eq!(
        report.breaches,
        [
            Count { id: "offer".into(), title: "Offer".into(), count: 1 },
            Count { id: "qualified".into(), title: "Qualified".into(), count: 1 },
        ]
    );
    assert_eq!(report.alerts, [Count { id: "stalled".into(), title: "stalled".into(), count: 2 }]);

    // Papers: p1 signed in 3 days, p3 in 5, p2 rejected → 2 / 3, cycle 4 days.
    let papers = definitions.flows.get(&Id::from("papers")).expect("papers");
    let report = flow_report(&dataset, &definitions, papers, &november, "zh-CN");
    assert_eq!(report.title, "合同");
    assert_eq!((report.outcomes.success, report.outcomes.failure), (2, 1));
    close(report.outcomes.win_rate, 2.0 / 3.0);
    let cycle = report.cycle.as_ref().expect("cycle time");
    assert_eq!(cycle.records, 2);
    close(cycle.average_days, 4.0);
    assert!(report.by_size.is_empty(), "papers have no amount");
}

#[test]
fn coverage_against_targets_matches_the_hand_computed_one() {
    let (_dir, definitions, store) = setup();
    let dataset = Dataset::load(&store, &definitions, &Filter::default()).expect("load");
    let november = Period::parse("2026-11", 0).expect("period");
    let people =
        People::build(definitions.org.users.iter(), definitions.org.departments.iter(), "en");
    let rows = coverage(&dataset, &definitions, &people, None, &november);
    let summary: Vec<(&str, &str, f64, f64, f64)> = rows
        .iter()
        .map(|row| (row.kind.as_str(), row.id.as_str(), row.target, row.pipeline, row.achieved))
        .collect();
    // ann: open and expected in November: d5 300 000 + d9 150 000; won d1 + d8.
    // bob: open d6 250 000 (d10 is expected in December); won d4 100 000.
    // east = ann + bob.
    assert_eq!(
        summary,
        [
            ("user", "ann", 1_000_000.0, 450_000.0, 1_100_000.0),
            ("user", "bob", 400_000.0, 250_000.0, 100_000.0),
            ("department", "east", 1_500_000.0, 700_000.0, 1_200_000.0),
        ]
    );
    close(rows[0].coverage, 0.45);
    close(rows[0].attainment, 1.1);
    close(rows[1].coverage, 0.625);
    close(rows[1].attainment, 0.25);
    close(rows[2].coverage, 700_000.0 / 1_500_000.0);
    close(rows[2].attainment, 0.8);
    assert_eq!(rows[2].name, "East");

    // December: ann has nothing open expected then, and nothing won; zero, not -0.
    let december = Period::parse("2026-12", 0).expect("period");
    let rows = coverage(&dataset, &definitions, &people, None, &december);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].pipeline == 0.0 && rows[0].pipeline.is_sign_positive(), "{:?}", rows[0]);
    assert!(rows[0].achieved.is_sign_positive());

    // Seen by ann alone: her own target only (east also counts bob).
    let ann = BTreeSet::from(["ann".to_owned()]);
    let filter = Filter { owners: Some(ann.clone()), flows: None };
    let dataset = Dataset::load(&store, &definitions, &filter).expect("load");
    let rows = coverage(&dataset, &definitions, &people, Some(&ann), &november);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id.as_str(), rows[0].pipeline), ("ann", 450_000.0));
}

#[test]
fn a_scope_of_one_person_counts_only_their_records() {
    let (_dir, definitions, store) = setup();
    let filter = Filter { owners: Some(BTreeSet::from(["bob".to_owned()])), flows: None };
    let dataset = Dataset::load(&store, &definitions, &filter).expect("load");
    let november = Period::parse("2026-11", 0).expect("period");
    let deals = definitions.flows.get(&Id::from("deals")).expect("deals");
    let report = flow_report(&dataset, &definitions, deals, &november, "en");
    // bob's November deals: d3 (offer, lost), d4 (won), d6 (offer), d10 (lead).
    let reached: Vec<usize> = report.funnel.iter().map(|step| step.reached).collect();
    assert_eq!(reached, [4, 3, 3, 1]);
    assert_eq!((report.outcomes.success, report.outcomes.failure), (1, 1));
}
