//! Adoption and the process-health audit on hand-built histories whose figures are
//! worked out by hand in the comments.
//!
//! The flow `pipe` drives `deal` records through `a → b → c → d` (terminal `done`),
//! with a side exit `x` (terminal `dropped`); stage `b` has the approval `check`.
//! All times are China time (UTC+8) in November 2026: Monday the 2nd starts ISO week
//! 45, the 9th week 46, the 16th week 47, the 23rd week 48, the 30th week 49.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use stagecraft_insights::adoption::{self, Count, FlowRules, LedgerEntry};
use stagecraft_insights::audit::{self, OverrideKind, People, Period, Thresholds};
use stagecraft_insights::dataset::{
    Dataset, DecisionMark, EventMark, FieldChange, History, Mark, RequestMark, StageEntry,
};
use stagecraft_model::{FlowFile, Id};

/// Milliseconds of a China-time moment in 2026.
fn at(month: u32, day: u32, hour: u32, minute: u32) -> i64 {
    let local = NaiveDate::from_ymd_opt(2026, month, day)
        .and_then(|date| date.and_hms_opt(hour, minute, 0))
        .expect("a valid time");
    local.and_utc().timestamp_millis() - 8 * 3600 * 1000
}

/// A November moment.
fn nov(day: u32, hour: u32, minute: u32) -> i64 {
    at(11, day, hour, minute)
}

fn flow() -> FlowFile {
    serde_json::from_value(json!({
        "id": "pipe",
        "form": "deal",
        "title": "Pipe",
        "stages": [
            {"id": "a", "title": "A"},
            {"id": "b", "title": "B", "approvals": [
                {"id": "check", "title": "Check", "approvers": [{"role": "manager"}]}
            ]},
            {"id": "c", "title": "C"},
            {"id": "d", "title": "D", "outcome": "done"},
            {"id": "x", "title": "X", "outcome": "dropped"}
        ],
        "transitions": [
            {"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"},
            {"from": "*", "to": "x"}
        ],
        "adoption": {
            "happened_at": "seen_on",
            "enter_within": "30d",
            "update_within": "7d",
            "exempt_stages": ["c"],
            "complete": ["name", "size", "note", "seen_on"],
            "targets": {"entry": 1.0, "timeliness": 0.9},
            "points": 10
        },
        "audit": {"stall_alerts": ["stuck"], "rush_moves": 3, "rush_within": "10m"}
    }))
    .expect("the flow parses")
}

/// A record of `pipe` created at its first stage entry.
fn record(id: &str, owner: &str, fields: Value, stages: &[(&str, i64, Option<&str>)]) -> History {
    let fields: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
    let created_at = stages.first().map(|(_, at, _)| *at).expect("a first stage");
    History {
        id: id.to_owned(),
        form: Id::from("deal"),
        flow: Some(Id::from("pipe")),
        owner: Some(owner.to_owned()),
        parent: None,
        created_at,
        created_by: stages.first().and_then(|(_, _, by)| by.map(str::to_owned)),
        fields,
        stage: stages.last().map(|(stage, _, _)| Id::from(*stage)),
        stages: stages
            .iter()
            .map(|(stage, at, by)| StageEntry {
                stage: Id::from(*stage),
                at: *at,
                by: by.map(str::to_owned),
            })
            .collect(),
        ended: None,
        alerts: Vec::new(),
        breaches: Vec::new(),
        escalations: Vec::new(),
        actions: Vec::new(),
        decisions: Vec::new(),
        requests: Vec::new(),
        auto_approvals: Vec::new(),
        changes: Vec::new(),
        events: Vec::new(),
        imported_from: None,
    }
}

fn imported(mut history: History, imported_at: i64) -> History {
    history.imported_from = Some("crm.csv".to_owned());
    history.created_by = None;
    for entry in &mut history.stages {
        entry.by = None;
    }
    history.events.push(EventMark { kind: "imported".to_owned(), at: imported_at, by: None });
    history
}

fn rules() -> Vec<FlowRules> {
    vec![FlowRules::of(&flow(), &[]).expect("the flow has an adoption block")]
}

fn row<'a>(report: &'a adoption::Adoption, person: &str, week: &str) -> &'a adoption::WeekRow {
    report
        .weeks
        .iter()
        .find(|row| row.person == person && row.week == week)
        .unwrap_or_else(|| panic!("a row for {person} in {week}: {:#?}", report.weeks))
}

fn count(hit: u32, total: u32) -> Count {
    Count { hit, total }
}

/// The adoption data set:
///
/// p1
/// - R1, created Mon 2 Nov 10:00, seen 20 Oct (13 days before: in time); a → b on the
///   4th (2 days: in time) → c on Sat the 7th (3 days: in time); c is exempt. All four
///   counted fields filled.
/// - R2, created Tue 10 Nov, seen 1 Nov (in time); a → b on the 13th (3 days: in
///   time) → c on the 19th (6 days: in time). `note` empty until the 18th.
/// - R3, created Tue 24 Nov, seen 1 Oct (54 days: late); stays in a, due 1 Dec, after
///   `until`. `note` empty.
///
/// p2
/// - R4, created Wed 4 Nov, no `seen_on` (in time); only `name` filled (1 of 4); stays
///   in a: due 11 Nov (week 46) and overdue in weeks 47, 48 and 49.
/// - R6, imported on Tue 3 Nov 10:00 (created 1 Oct in the old system, seen in 2025:
///   not counted as an entry); a until 20 Oct (before the import: not counted), then b:
///   its window starts at the import, due 10 Nov (week 46), overdue after. 3 of 4
///   fields filled (`note` empty).
///
/// `until` is Mon 30 Nov 12:00 (week 49 is under way).
fn adoption_dataset() -> Dataset {
    let r1 = record(
        "r1",
        "p1",
        json!({"name": "R1", "size": 5, "note": "n", "seen_on": "2026-10-20"}),
        &[
            ("a", nov(2, 10, 0), Some("p1")),
            ("b", nov(4, 10, 0), Some("p1")),
            ("c", nov(7, 10, 0), Some("p1")),
        ],
    );
    let mut r2 = record(
        "r2",
        "p1",
        json!({"name": "R2", "size": 5, "note": "x", "seen_on": "2026-11-01"}),
        &[
            ("a", nov(10, 10, 0), Some("p1")),
            ("b", nov(13, 10, 0), Some("p1")),
            ("c", nov(19, 10, 0), Some("p1")),
        ],
    );
    r2.changes.push(FieldChange {
        field: "note".to_owned(),
        before: Value::Null,
        after: json!("x"),
        at: nov(18, 10, 0),
        by: Some("p1".to_owned()),
    });
    let r3 = record(
        "r3",
        "p1",
        json!({"name": "R3", "size": 1, "seen_on": "2026-10-01"}),
        &[("a", nov(24, 10, 0), Some("p1"))],
    );
    let r4 = record("r4", "p2", json!({"name": "R4"}), &[("a", nov(4, 10, 0), Some("p2"))]);
    let r6 = imported(
        record(
            "r6",
            "p2",
            json!({"name": "R6", "size": 2, "seen_on": "2025-01-01"}),
            &[("a", at(10, 1, 9, 0), None), ("b", at(10, 20, 9, 0), None)],
        ),
        nov(3, 10, 0),
    );
    Dataset { records: vec![r1, r2, r3, r4, r6], skipped: 0 }
}

#[test]
fn weekly_entry_rate_timeliness_completeness_and_compliance() {
    let report = adoption::measure(&adoption_dataset(), &rules(), nov(30, 12, 0));

    // p1, week 45: R1 entered in time (1/1); a → b and b → c in time (2/2); R1 4/4.
    let w45 = row(&report, "p1", "2026-W45");
    assert_eq!(
        (w45.entries, w45.updates, w45.completeness),
        (count(1, 1), count(2, 2), count(4, 4))
    );
    assert!(w45.compliant && w45.ended);
    // Week 46: R2 entered in time; R2 a → b in time; R1 4/4 + R2 3/4 (note still empty).
    let w46 = row(&report, "p1", "2026-W46");
    assert_eq!(
        (w46.entries, w46.updates, w46.completeness),
        (count(1, 1), count(1, 1), count(7, 8))
    );
    assert!(w46.compliant);
    // Week 47: nothing entered; R2 b → c in time; R1 4/4 + R2 4/4 (note filled on the 18th).
    let w47 = row(&report, "p1", "2026-W47");
    assert_eq!(
        (w47.entries, w47.updates, w47.completeness),
        (count(0, 0), count(1, 1), count(8, 8))
    );
    assert!(w47.compliant);
    // Week 48: R3 entered 54 days after it was seen: 0/1, not compliant; 4 + 4 + 3 of 12.
    let w48 = row(&report, "p1", "2026-W48");
    assert_eq!(
        (w48.entries, w48.updates, w48.completeness),
        (count(0, 1), count(0, 0), count(11, 12))
    );
    assert!(!w48.compliant);
    // Week 49 is under way: shown, not ended.
    let w49 = row(&report, "p1", "2026-W49");
    assert_eq!(w49.completeness, count(11, 12));
    assert!(!w49.ended);

    // p2, week 45: R4 entered in time (the imported R6 is not an entry); nothing due;
    // R4 1/4 + R6 3/4.
    let p2 = row(&report, "p2", "2026-W45");
    assert_eq!((p2.entries, p2.updates, p2.completeness), (count(1, 1), count(0, 0), count(4, 8)));
    assert!(p2.compliant);
    // Weeks 46 to 49: R4 and R6 overdue every week: timeliness 0/2, not compliant.
    for week in ["2026-W46", "2026-W47", "2026-W48", "2026-W49"] {
        let late = row(&report, "p2", week);
        assert_eq!(late.updates, count(0, 2), "{week}");
        assert!(!late.compliant, "{week}");
    }
    // Nothing before the import week.
    assert!(report.weeks.iter().all(|row| row.week.as_str() >= "2026-W45"), "{:#?}", report.weeks);
}

#[test]
fn two_compliant_weeks_in_a_row_earn_points_once_per_pair() {
    let report = adoption::measure(&adoption_dataset(), &rules(), nov(30, 12, 0));
    // p1: weeks 45 and 46 compliant → 10 points at week 46. Week 47 is compliant too but
    // starts a new pair (46 + 47 would overlap); week 48 is not compliant, so week 47
    // earns nothing. p2: only week 45 compliant → nothing.
    assert_eq!(
        report.ledger,
        vec![LedgerEntry {
            person: "p1".to_owned(),
            flow: Id::from("pipe"),
            week: "2026-W46".to_owned(),
            points: 10,
            why: "2026-W45 + 2026-W46".to_owned(),
        }]
    );
    assert_eq!(report.points_of("p1"), 10);
    assert_eq!(report.points_of("p2"), 0);
}

#[test]
fn the_transparency_star_has_the_most_complete_data() {
    let report = adoption::measure(&adoption_dataset(), &rules(), nov(30, 12, 0));
    // November's weeks (those beginning in it: 45 to 49): p1 4 + 7 + 8 + 11 + 11 = 41
    // of 4 + 8 + 8 + 12 + 12 = 44 (93%); p2 4 of 8 five times = 20 of 40 (50%).
    let star = report.star_of_month(nov(30, 12, 0)).expect("a star for November");
    assert_eq!((star.month.as_str(), star.person.as_str()), ("2026-11", "p1"));
    assert_eq!(star.completeness, count(41, 44));
}

#[test]
fn a_tied_star_goes_to_more_counted_fields_then_the_smaller_id() {
    let full = json!({"name": "N", "size": 1, "note": "n", "seen_on": "2026-11-01"});
    let mut records = vec![record("t1", "ann", full.clone(), &[("a", nov(2, 10, 0), Some("ann"))])];
    for (id, owner) in [("t2", "cat"), ("t3", "cat"), ("t4", "bob"), ("t5", "bob")] {
        records.push(record(id, owner, full.clone(), &[("a", nov(2, 10, 0), Some(owner))]));
    }
    let dataset = Dataset { records, skipped: 0 };
    // One week (45), nothing due before the 8th: ann 4/4, bob 8/8, cat 8/8. All 100%;
    // bob and cat count more fields than ann; bob's id is smaller than cat's.
    let report = adoption::measure(&dataset, &rules(), nov(8, 12, 0));
    let star = report.star_of_month(nov(8, 12, 0)).expect("a star");
    assert_eq!((star.person.as_str(), star.completeness), ("bob", count(8, 8)));
}

#[test]
fn a_flow_without_an_adoption_block_is_not_measured() {
    let mut plain = flow();
    plain.adoption = None;
    assert!(FlowRules::of(&plain, &["name".to_owned()]).is_none());
    // Left out, the counted fields are the form's fields and the defaults apply.
    plain.adoption = Some(Default::default());
    let rule = FlowRules::of(&plain, &["name".to_owned(), "size".to_owned()]).expect("rules");
    assert_eq!(rule.complete, ["name", "size"]);
    assert_eq!((rule.entry_target, rule.timeliness_target, rule.points), (1.0, 0.9, 10));
    assert_eq!(rule.update_within_ms, 7 * 24 * 3600 * 1000);
}

// ----- audit -------------------------------------------------------------------------

fn people() -> People {
    let mut roles: BTreeMap<String, BTreeSet<Id>> = BTreeMap::new();
    for (user, role) in [("boss", "admin"), ("m1", "manager"), ("p1", "rep"), ("p2", "rep")] {
        roles.entry(user.to_owned()).or_default().insert(Id::from(role));
    }
    People { roles, sees_all: [Id::from("admin")].into_iter().collect() }
}

fn request(approval: &str, approvers: &[&str], at: i64) -> RequestMark {
    RequestMark {
        approval: approval.to_owned(),
        approvers: approvers.iter().map(|user| (*user).to_owned()).collect(),
        at,
    }
}

fn decision(user: &str, approve: bool, at: i64) -> DecisionMark {
    DecisionMark {
        approval: "check".to_owned(),
        user: user.to_owned(),
        approve,
        status: if approve { "approved" } else { "rejected" }.to_owned(),
        at,
    }
}

fn mark(name: &str, at: i64) -> Mark {
    Mark { name: name.to_owned(), detail: None, at, by: None }
}

/// The audit data set; the period is November, `now` Mon 30 Nov 12:00.
fn audit_dataset() -> Dataset {
    let p1 = Some("p1");
    let p2 = Some("p2");
    let boss = Some("boss");
    let m1 = Some("m1");
    // Late entry: L1 seen 1 Oct, created 24 Nov → 53 days 10 hours after the end of
    // 1 Oct; L2 in time; L3 imported (never late).
    let l1 = record("l1", "p1", json!({"seen_on": "2026-10-01"}), &[("a", nov(24, 10, 0), p1)]);
    let l2 = record("l2", "p1", json!({"seen_on": "2026-11-01"}), &[("a", nov(24, 11, 0), p1)]);
    let l3 = imported(
        record("l3", "p1", json!({"seen_on": "2026-01-01"}), &[("a", nov(3, 9, 0), None)]),
        nov(3, 9, 0),
    );
    // Skips: S1 the admin moves p2's record a → c past b: reported. S2 the admin
    // drops p2's record (a side exit skips nothing). S3 a manager (not an admin) moves
    // a → c. S4 the admin moves a record he owns.
    let s1 =
        record("s1", "p2", json!({}), &[("a", nov(10, 9, 0), p2), ("c", nov(12, 10, 0), boss)]);
    let s2 =
        record("s2", "p2", json!({}), &[("a", nov(10, 9, 0), p2), ("x", nov(12, 10, 0), boss)]);
    let s3 = record("s3", "p2", json!({}), &[("a", nov(10, 9, 0), p2), ("c", nov(12, 10, 0), m1)]);
    let s4 =
        record("s4", "boss", json!({}), &[("a", nov(10, 9, 0), boss), ("c", nov(12, 10, 0), boss)]);
    // Overrides: O1 approved by the admin though asked of m1 (and a stall alert in b).
    // O2 rejected by m1, then moved on to c without a new approval. O3 rejected,
    // asked again and approved, then moved: fine (a non-stall alert in b).
    let stages_ob =
        |moved: i64| vec![("a", nov(10, 9, 0), p2), ("b", nov(10, 10, 0), p2), ("c", moved, p2)];
    let mut o1 = record("o1", "p2", json!({}), &stages_ob(nov(11, 10, 0)));
    o1.requests.push(request("check", &["m1"], nov(10, 10, 0)));
    o1.decisions.push(decision("boss", true, nov(11, 9, 0)));
    o1.alerts.push(mark("stuck", nov(10, 20, 0)));
    let mut o2 = record("o2", "p2", json!({}), &stages_ob(nov(12, 10, 0)));
    o2.requests.push(request("check", &["m1"], nov(10, 10, 0)));
    o2.decisions.push(decision("m1", false, nov(11, 9, 0)));
    let mut o3 = record("o3", "p2", json!({}), &stages_ob(nov(11, 12, 0)));
    o3.stages.push(StageEntry {
        stage: Id::from("d"),
        at: nov(13, 12, 0),
        by: p2.map(str::to_owned),
    });
    o3.requests.push(request("check", &["m1"], nov(10, 10, 0)));
    o3.decisions.push(decision("m1", false, nov(11, 9, 0)));
    o3.requests.push(request("check", &["m1"], nov(11, 10, 0)));
    o3.decisions.push(decision("m1", true, nov(11, 11, 0)));
    o3.alerts.push(mark("other", nov(10, 20, 0)));
    // O4: escalated to the department head, who then decides: the process, not a bypass.
    let mut o4 =
        record("o4", "p2", json!({}), &[("a", nov(10, 9, 0), p2), ("b", nov(10, 10, 0), p2)]);
    o4.requests.push(request("check", &["m1"], nov(10, 10, 0)));
    o4.escalations.push(mark("slow-approval", nov(12, 10, 0)));
    o4.decisions.push(decision("dh", true, nov(12, 11, 0)));
    // Rushes: U1 three moves in 6 minutes; U2 three moves over 41 minutes (and its
    // SLA in b breached).
    let u1 = record(
        "u1",
        "p1",
        json!({}),
        &[
            ("a", nov(16, 9, 0), p1),
            ("b", nov(16, 9, 2), p1),
            ("c", nov(16, 9, 5), p1),
            ("d", nov(16, 9, 8), p1),
        ],
    );
    let mut u2 = record(
        "u2",
        "p1",
        json!({}),
        &[
            ("a", nov(16, 9, 0), p1),
            ("b", nov(16, 9, 1), p1),
            ("c", nov(16, 9, 21), p1),
            ("d", nov(16, 9, 41), p1),
        ],
    );
    u2.breaches.push(mark("b", nov(16, 9, 1)));
    Dataset { records: vec![l1, l2, l3, s1, s2, s3, s4, o1, o2, o3, o4, u1, u2], skipped: 0 }
}

fn audited() -> audit::Report {
    let period = Period { from: nov(1, 0, 0), to: at(12, 1, 0, 0), now: nov(30, 12, 0) };
    audit::audit(&audit_dataset(), &[Thresholds::of(&flow())], &people(), period)
}

#[test]
fn late_entries_are_found_and_imports_are_not() {
    let report = audited();
    let late: Vec<(&str, i64)> =
        report.late.iter().map(|late| (late.record.id.as_str(), late.days_late)).collect();
    assert_eq!(late, [("l1", 53)]);
}

#[test]
fn only_an_admin_jumping_over_a_stage_of_someone_else_is_reported() {
    let report = audited();
    let skips: Vec<(&str, &str, &str, &str, Vec<&str>)> = report
        .skips
        .iter()
        .map(|skip| {
            (
                skip.record.id.as_str(),
                skip.by.as_str(),
                skip.from.as_str(),
                skip.to.as_str(),
                skip.skipped.iter().map(Id::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(skips, [("s1", "boss", "a", "c", vec!["b"])]);
}

#[test]
fn approvals_decided_by_someone_else_or_ignored_after_a_rejection_are_reported() {
    let report = audited();
    let found: Vec<(&str, OverrideKind, Option<&str>)> = report
        .overrides
        .iter()
        .map(|found| (found.record.id.as_str(), found.kind, found.by.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            ("o1", OverrideKind::NotAnApprover, Some("boss")),
            ("o2", OverrideKind::MovedAfterRejection, Some("p2")),
        ]
    );
}

#[test]
fn records_pushed_through_three_stages_within_ten_minutes_are_reported() {
    let report = audited();
    assert_eq!(report.rushes.len(), 1, "{:#?}", report.rushes);
    let rush = &report.rushes[0];
    assert_eq!(rush.record.id, "u1");
    assert_eq!(rush.stages, [Id::from("b"), Id::from("c"), Id::from("d")]);
    assert_eq!((rush.minutes, rush.by.clone()), (6, vec!["p1".to_owned()]));
}

#[test]
fn a_stage_where_most_records_stall_is_rigid() {
    let report = audited();
    let stage =
        |id: &str| report.stages.iter().find(|row| row.stage.as_str() == id).expect("a stage row");
    // c: entered by s1, s3, s4, o1, o2, o3, u1, u2 (8); s1, s3, s4, o1 and o2 are
    // still there on the 30th, 18+ days > 7 → 5 of 8 = 62.5% > 50%: rigid.
    let c = stage("c");
    assert_eq!(c.entered, 8);
    assert_eq!(c.stalled, ["s1", "s3", "s4", "o1", "o2"]);
    assert!(c.rigid);
    // b: o1, o2, o3, o4, u1, u2 (6); o1 had the stall alert, u2 its SLA breached, o4
    // is still there (20 days); o3's alert is not a stall alert → 3 of 6 = 50%, not
    // more than half: not rigid.
    let b = stage("b");
    assert_eq!(
        (b.entered, b.stalled.clone(), b.rigid),
        (6, vec!["o1".to_owned(), "o4".to_owned(), "u2".to_owned()], false)
    );
    // a: 13 records; only the imported l3 stayed over 7 days (since the 3rd) → 1 of 13.
    let a = stage("a");
    assert_eq!((a.entered, a.stalled.clone(), a.rigid), (13, vec!["l3".to_owned()], false));
    // Terminal stages are not judged.
    assert!(report.stages.iter().all(|row| !["d", "x"].contains(&row.stage.as_str())));
}
