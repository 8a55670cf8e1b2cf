//! The process-health audit: signs that people go around the process, and steps
//! where the process holds most records up, from the flows' `audit:` thresholds.
//!
//! Bypass signs, each with the records involved:
//! - **Entered after the fact**: a record (not imported) created longer than
//!   `late_entry` after its `adoption.happened_at`.
//! - **Stages skipped by an administrator**: a move made by someone holding a role
//!   that sees all records (or one of `admin_roles`), who does not own the record,
//!   forward past a non-terminal stage the record never entered. Stages are read in
//!   their declared order; the first terminal stage ends the main path, and later
//!   terminal stages (side exits such as a loss) skip nothing.
//! - **Approvals overridden**: a decision by someone the approval was not requested
//!   from (unless it was escalated in between), or a forward move out of an approval's stage after the approval was
//!   rejected and before it was approved again.
//! - **Pushed through**: at least `rush_moves` stage moves by people within
//!   `rush_within`.
//!
//! Rigid steps: per stage, of the records that entered it in the period, the share
//! that stalled there (one of `stall_alerts` raised during the stay, the stage's SLA
//! breached, or a stay longer than the stall window). A stage with at least
//! `rigid_min_records` records and a share above `rigid_share` is rigid.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use stagecraft_model::{FlowFile, Id, RoleSees};
use stagecraft_pack::Definitions;

use crate::adoption::{DEFAULT_ENTER_WITHIN_MINUTES, DEFAULT_UPDATE_WITHIN_MINUTES, entry_delay};
use crate::dataset::{Dataset, History, StageEntry};

/// Stage moves that make a rush when the pack names no number.
pub const DEFAULT_RUSH_MOVES: u32 = 3;
/// The span of a rush when the pack names none, in minutes.
pub const DEFAULT_RUSH_WITHIN_MINUTES: u64 = 10;
/// The share of stalled records above which a stage is rigid.
pub const DEFAULT_RIGID_SHARE: f64 = 0.5;
/// The fewest records a stage needs to be judged.
pub const DEFAULT_RIGID_MIN_RECORDS: u32 = 3;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// A flow's audit thresholds with every default applied, and the shape of the flow
/// the checks need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// The flow.
    pub flow: Id,
    /// The field holding when the real-world thing happened (from `adoption`).
    pub happened_at: Option<String>,
    /// Entered after the fact beyond this delay, in milliseconds.
    pub late_entry_ms: i64,
    /// Moves that make a rush.
    pub rush_moves: u32,
    /// The span of a rush, in milliseconds.
    pub rush_within_ms: i64,
    /// Alerts that mean a record stalls.
    pub stall_alerts: BTreeSet<String>,
    /// The stall window of each non-terminal stage, in milliseconds.
    pub stall_after_ms: BTreeMap<Id, i64>,
    /// The share above which a stage is rigid.
    pub rigid_share: f64,
    /// The fewest records a stage needs to be judged.
    pub rigid_min_records: u32,
    /// Roles counted as administrators besides those that see all records.
    pub admin_roles: BTreeSet<Id>,
    /// The stages in declared order, with whether each is terminal.
    pub stages: Vec<(Id, bool)>,
    /// The stage of each approval.
    pub approval_stages: BTreeMap<String, Id>,
}

impl Thresholds {
    /// A flow's thresholds.
    pub fn of(flow: &FlowFile) -> Thresholds {
        let audit = flow.audit.clone().unwrap_or_default();
        let adoption = flow.adoption.clone().unwrap_or_default();
        let ms = |minutes: Option<u64>, default: u64| minutes_ms(minutes.unwrap_or(default));
        let enter_within = adoption.enter_within.as_ref().and_then(|d| d.minutes());
        let update_within = adoption.update_within.as_ref().and_then(|d| d.minutes());
        let stall_after = audit.stall_after.as_ref().and_then(|d| d.minutes());
        let stall_after_ms = flow
            .stages
            .iter()
            .filter(|stage| stage.outcome.is_none())
            .map(|stage| {
                let window = stall_after
                    .or_else(|| adoption.stage_windows.get(&stage.id).and_then(|d| d.minutes()))
                    .or(update_within);
                (stage.id.clone(), ms(window, DEFAULT_UPDATE_WITHIN_MINUTES))
            })
            .collect();
        Thresholds {
            flow: flow.id.clone(),
            happened_at: adoption.happened_at.as_ref().map(|field| field.to_string()),
            late_entry_ms: ms(
                audit.late_entry.as_ref().and_then(|d| d.minutes()).or(enter_within),
                DEFAULT_ENTER_WITHIN_MINUTES,
            ),
            rush_moves: audit.rush_moves.unwrap_or(DEFAULT_RUSH_MOVES).max(2),
            rush_within_ms: ms(
                audit.rush_within.as_ref().and_then(|d| d.minutes()),
                DEFAULT_RUSH_WITHIN_MINUTES,
            ),
            stall_alerts: audit.stall_alerts.iter().map(|alert| alert.to_string()).collect(),
            stall_after_ms,
            rigid_share: audit.rigid_share.unwrap_or(DEFAULT_RIGID_SHARE),
            rigid_min_records: audit.rigid_min_records.unwrap_or(DEFAULT_RIGID_MIN_RECORDS),
            admin_roles: audit.admin_roles.iter().cloned().collect(),
            stages: flow.stages.iter().map(|s| (s.id.clone(), s.outcome.is_some())).collect(),
            approval_stages: flow
                .stages
                .iter()
                .flat_map(|stage| {
                    stage
                        .approvals
                        .iter()
                        .map(|approval| (approval.id.to_string(), stage.id.clone()))
                })
                .collect(),
        }
    }

    /// The thresholds of every flow.
    pub fn from_definitions(definitions: &Definitions) -> Vec<Thresholds> {
        definitions.flows.values().map(Thresholds::of).collect()
    }

    fn position(&self, stage: &Id) -> Option<usize> {
        self.stages.iter().position(|(id, _)| id == stage)
    }

    /// Where the main path ends: the first terminal stage.
    fn main_end(&self) -> usize {
        self.stages.iter().position(|(_, terminal)| *terminal).unwrap_or(self.stages.len())
    }

    /// Whether a move from `from` to `to` goes forward on the main path (not back, not
    /// to a side exit).
    fn forward(&self, from: &Id, to: &Id) -> bool {
        match (self.position(from), self.position(to)) {
            (Some(from), Some(to)) => to > from && to <= self.main_end(),
            _ => false,
        }
    }

    /// The non-terminal stages a forward move passes over that `entered` does not hold.
    fn skipped(&self, from: &Id, to: &Id, entered: &BTreeSet<&Id>) -> Vec<Id> {
        if !self.forward(from, to) {
            return Vec::new();
        }
        let (Some(from), Some(to)) = (self.position(from), self.position(to)) else {
            return Vec::new();
        };
        self.stages[from + 1..to]
            .iter()
            .filter(|(id, terminal)| !terminal && !entered.contains(id))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn minutes_ms(minutes: u64) -> i64 {
    i64::try_from(minutes).unwrap_or(i64::MAX / MINUTE_MS).saturating_mul(MINUTE_MS)
}

/// Who holds which roles, and which roles see all records.
#[derive(Clone, Debug, Default)]
pub struct People {
    /// User id → roles.
    pub roles: BTreeMap<String, BTreeSet<Id>>,
    /// Roles that see every record (`sees: all`).
    pub sees_all: BTreeSet<Id>,
}

impl People {
    /// The roles that see all records, from the definitions; users are added by the
    /// caller from the organisation directory.
    pub fn with_roles_of(definitions: &Definitions) -> People {
        People {
            roles: BTreeMap::new(),
            sees_all: definitions
                .roles
                .values()
                .filter(|role| role.sees == Some(RoleSees::All))
                .map(|role| role.id.clone())
                .collect(),
        }
    }

    /// Whether a user counts as an administrator for a flow.
    pub fn is_admin(&self, user: &str, extra: &BTreeSet<Id>) -> bool {
        self.roles.get(user).is_some_and(|roles| {
            roles.iter().any(|role| self.sees_all.contains(role) || extra.contains(role))
        })
    }
}

/// The period audited: from `from` (included) to `to` (excluded), in milliseconds;
/// `now` ends the stays still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// The start.
    pub from: i64,
    /// The end (excluded).
    pub to: i64,
    /// Now.
    pub now: i64,
}

impl Period {
    fn holds(&self, at: i64) -> bool {
        (self.from..self.to).contains(&at)
    }

    fn end(&self) -> i64 {
        self.to.min(self.now)
    }
}

/// Which record a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordRef {
    /// The record id.
    pub id: String,
    /// Its form.
    pub form: Id,
    /// Its flow.
    pub flow: Id,
    /// Its owner.
    pub owner: Option<String>,
}

impl RecordRef {
    fn of(record: &History, flow: &Id) -> RecordRef {
        RecordRef {
            id: record.id.clone(),
            form: record.form.clone(),
            flow: flow.clone(),
            owner: record.owner.clone(),
        }
    }
}

/// A record entered after the fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LateEntry {
    /// The record.
    pub record: RecordRef,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: i64,
    /// How many whole days after the real-world event.
    pub days_late: i64,
}

/// A move by an administrator past stages the record never entered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageSkip {
    /// The record.
    pub record: RecordRef,
    /// Who moved it.
    pub by: String,
    /// From.
    pub from: Id,
    /// To.
    pub to: Id,
    /// The stages passed over.
    pub skipped: Vec<Id>,
    /// When.
    pub at: i64,
}

/// How an approval was overridden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKind {
    /// Decided by someone it was not requested from.
    NotAnApprover,
    /// Rejected, then the record moved on without a new approval.
    MovedAfterRejection,
}

/// An approval overridden.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Override {
    /// The record.
    pub record: RecordRef,
    /// The approval.
    pub approval: String,
    /// How.
    pub kind: OverrideKind,
    /// Who decided, or who moved the record.
    pub by: Option<String>,
    /// When.
    pub at: i64,
}

/// A record pushed through several stages within minutes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rush {
    /// The record.
    pub record: RecordRef,
    /// Who moved it.
    pub by: Vec<String>,
    /// The stages it entered, in order.
    pub stages: Vec<Id>,
    /// When the first of the moves was made.
    pub at: i64,
    /// How many minutes the moves took.
    pub minutes: i64,
}

/// How often records stall in a stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageHealth {
    /// The flow.
    pub flow: Id,
    /// The stage.
    pub stage: Id,
    /// Records that entered the stage in the period.
    pub entered: u32,
    /// Of those, the ones that stalled there.
    pub stalled: Vec<String>,
    /// Whether most records stall here.
    pub rigid: bool,
}

impl StageHealth {
    /// The share of records that stalled.
    pub fn share(&self) -> f64 {
        if self.entered == 0 {
            0.0
        } else {
            f64::from(u32::try_from(self.stalled.len()).unwrap_or(u32::MAX))
                / f64::from(self.entered)
        }
    }
}

/// The audit's findings.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Records entered after the fact.
    pub late: Vec<LateEntry>,
    /// Stages skipped by administrators.
    pub skips: Vec<StageSkip>,
    /// Approvals overridden.
    pub overrides: Vec<Override>,
    /// Records pushed through.
    pub rushes: Vec<Rush>,
    /// Every non-terminal stage that records entered, with its stalls.
    pub stages: Vec<StageHealth>,
}

/// Audits the records of the flows with thresholds over a period.
pub fn audit(
    dataset: &Dataset,
    thresholds: &[Thresholds],
    people: &People,
    period: Period,
) -> Report {
    let mut report = Report::default();
    for limits in thresholds {
        let records: Vec<&History> = dataset.of_flow(&limits.flow).collect();
        for record in &records {
            let reference = RecordRef::of(record, &limits.flow);
            if let Some(late) = late_entry(record, limits, period) {
                report.late.push(LateEntry { record: reference.clone(), ..late });
            }
            report.skips.extend(stage_skips(record, limits, people, period, &reference));
            report.overrides.extend(overrides(record, limits, period, &reference));
            report.rushes.extend(rush(record, limits, period, &reference));
        }
        report.stages.extend(stage_health(&records, limits, period));
    }
    report.late.sort_by_key(|late| std::cmp::Reverse(late.days_late));
    report.skips.sort_by_key(|skip| skip.at);
    report.overrides.sort_by_key(|found| found.at);
    report.rushes.sort_by_key(|rush| rush.at);
    report
}

fn late_entry(record: &History, limits: &Thresholds, period: Period) -> Option<LateEntry> {
    if record.imported_from.is_some() || !period.holds(record.created_at) {
        return None;
    }
    let delay = entry_delay(record, limits.happened_at.as_deref())?;
    (delay > limits.late_entry_ms).then(|| LateEntry {
        record: RecordRef::of(record, &limits.flow),
        created_by: record.created_by.clone(),
        created_at: record.created_at,
        days_late: delay / DAY_MS,
    })
}

fn stage_skips(
    record: &History,
    limits: &Thresholds,
    people: &People,
    period: Period,
    reference: &RecordRef,
) -> Vec<StageSkip> {
    let mut found = Vec::new();
    for (index, pair) in record.stages.windows(2).enumerate() {
        let [from, to] = pair else { continue };
        let Some(by) = to.by.as_deref() else { continue };
        if !period.holds(to.at)
            || record.owner.as_deref() == Some(by)
            || !people.is_admin(by, &limits.admin_roles)
        {
            continue;
        }
        let entered: BTreeSet<&Id> = record.stages[..=index].iter().map(|e| &e.stage).collect();
        let skipped = limits.skipped(&from.stage, &to.stage, &entered);
        if !skipped.is_empty() {
            found.push(StageSkip {
                record: reference.clone(),
                by: by.to_owned(),
                from: from.stage.clone(),
                to: to.stage.clone(),
                skipped,
                at: to.at,
            });
        }
    }
    found
}

fn overrides(
    record: &History,
    limits: &Thresholds,
    period: Period,
    reference: &RecordRef,
) -> Vec<Override> {
    let mut found = Vec::new();
    for decision in record.decisions.iter().filter(|decision| period.holds(decision.at)) {
        let asked = record
            .requests
            .iter()
            .rfind(|request| request.approval == decision.approval && request.at <= decision.at);
        // An escalation between the request and the decision may hand the decision to
        // someone else (a department head): that is the process, not a bypass.
        let escalated = |since: i64| {
            record.escalations.iter().any(|step| (since..=decision.at).contains(&step.at))
        };
        if asked.is_some_and(|request| {
            !request.approvers.contains(&decision.user) && !escalated(request.at)
        }) {
            found.push(Override {
                record: reference.clone(),
                approval: decision.approval.clone(),
                kind: OverrideKind::NotAnApprover,
                by: Some(decision.user.clone()),
                at: decision.at,
            });
        }
    }
    for rejection in record.decisions.iter().filter(|decision| decision.status == "rejected") {
        let Some(stage) = limits.approval_stages.get(&rejection.approval) else { continue };
        let Some(index) = record.stages.iter().position(|entry| entry.at >= rejection.at) else {
            continue;
        };
        let (Some(previous), Some(moved)) =
            (index.checked_sub(1).and_then(|i| record.stages.get(i)), record.stages.get(index))
        else {
            continue;
        };
        let approved_again = record.decisions.iter().any(|decision| {
            decision.approval == rejection.approval
                && decision.status == "approved"
                && (rejection.at..=moved.at).contains(&decision.at)
        }) || record.auto_approvals.iter().any(|auto| {
            auto.name == rejection.approval && (rejection.at..=moved.at).contains(&auto.at)
        });
        if &previous.stage == stage
            && !approved_again
            && period.holds(moved.at)
            && limits.forward(&previous.stage, &moved.stage)
        {
            found.push(Override {
                record: reference.clone(),
                approval: rejection.approval.clone(),
                kind: OverrideKind::MovedAfterRejection,
                by: moved.by.clone(),
                at: moved.at,
            });
        }
    }
    found
}

fn rush(
    record: &History,
    limits: &Thresholds,
    period: Period,
    reference: &RecordRef,
) -> Option<Rush> {
    if record.imported_from.is_some() {
        return None;
    }
    let moves: Vec<&StageEntry> =
        record.stages.iter().skip(1).filter(|entry| entry.by.is_some()).collect();
    let needed = usize::try_from(limits.rush_moves).unwrap_or(usize::MAX);
    for first in 0..moves.len() {
        if !period.holds(moves[first].at) {
            continue;
        }
        let window: Vec<&StageEntry> = moves[first..]
            .iter()
            .copied()
            .take_while(|entry| entry.at - moves[first].at <= limits.rush_within_ms)
            .collect();
        if window.len() >= needed {
            let mut by: Vec<String> = window.iter().filter_map(|entry| entry.by.clone()).collect();
            by.sort();
            by.dedup();
            let last = window.last().map_or(moves[first].at, |entry| entry.at);
            return Some(Rush {
                record: reference.clone(),
                by,
                stages: window.iter().map(|entry| entry.stage.clone()).collect(),
                at: moves[first].at,
                minutes: (last - moves[first].at) / MINUTE_MS,
            });
        }
    }
    None
}

fn stage_health(records: &[&History], limits: &Thresholds, period: Period) -> Vec<StageHealth> {
    let mut health: Vec<StageHealth> = Vec::new();
    for (stage, terminal) in &limits.stages {
        if *terminal {
            continue;
        }
        let window = limits.stall_after_ms.get(stage).copied().unwrap_or(i64::MAX);
        let mut entered = 0;
        let mut stalled = Vec::new();
        for record in records {
            let Some(index) = record
                .stages
                .iter()
                .position(|entry| &entry.stage == stage && period.holds(entry.at))
            else {
                continue;
            };
            entered += 1;
            let since = record.stages[index].at;
            let until = record.stages.get(index + 1).map_or(period.end(), |next| next.at);
            let alerted = record.alerts.iter().any(|alert| {
                limits.stall_alerts.contains(&alert.name) && (since..=until).contains(&alert.at)
            });
            let breached = record.breaches.iter().any(|breach| {
                breach.name == stage.as_str()
                    && breach.detail.is_none()
                    && (since..=until).contains(&breach.at)
            });
            if alerted || breached || until - since > window {
                stalled.push(record.id.clone());
            }
        }
        if entered == 0 {
            continue;
        }
        let mut row = StageHealth {
            flow: limits.flow.clone(),
            stage: stage.clone(),
            entered,
            stalled,
            rigid: false,
        };
        row.rigid = entered >= limits.rigid_min_records && row.share() > limits.rigid_share;
        health.push(row);
    }
    health
}
