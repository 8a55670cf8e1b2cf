//! Adoption: whether people use the system as agreed, per person (a record's owner)
//! and ISO week, from the flows' `adoption:` blocks.
//!
//! - **Entry rate**: of the records created in the week (imported ones left out:
//!   they were imported, not entered late), the share created at most
//!   `enter_within` after the record's `happened_at` field. A date without a time
//!   means the end of that day, so "within 30 days" counts calendar days.
//! - **Timeliness**: every stay in a non-terminal, non-exempt stage is one update
//!   due. It is in time when the record leaves the stage within the stage's window;
//!   it counts in the week the answer became known (the week of the move when in
//!   time, the week the window ran out when late, and again as late in every
//!   further week the stage stays overdue). For an imported record, the
//!   window of a stay open at the import starts at the import, and stays that ended
//!   before it are not counted.
//! - **Completeness**: the share of the counted fields filled on the person's
//!   records that were open during the week, as they stood at the week's end (an
//!   imported record counts from the week of its import).
//! - **Compliant week**: something was measured (a record entered, an update due or
//!   an open record) and every measured share reaches its target.
//! - **Points**: per person and flow, a run of compliant weeks earns the flow's
//!   points at its 2nd, 4th, 6th… week; pairs never overlap and a week that is not
//!   compliant starts a new run. Only weeks that have ended count.
//! - **透明度之星**: per month, the person with the highest completeness over the
//!   weeks that begin in the month, all flows together; ties go to more counted
//!   fields, then to the smaller user id.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration as Span, FixedOffset, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::Value;
use stagecraft_model::{FlowFile, Id};
use stagecraft_pack::Definitions;

use crate::dataset::{Dataset, History};

/// Entry window when the pack names none.
pub const DEFAULT_ENTER_WITHIN_MINUTES: u64 = 30 * 24 * 60;
/// Stage window when the pack names none.
pub const DEFAULT_UPDATE_WITHIN_MINUTES: u64 = 7 * 24 * 60;
/// Entry target when the pack names none.
pub const DEFAULT_ENTRY_TARGET: f64 = 1.0;
/// Timeliness target when the pack names none.
pub const DEFAULT_TIMELINESS_TARGET: f64 = 0.9;
/// Completeness target when the pack names none (shown, not required).
pub const DEFAULT_COMPLETENESS_TARGET: f64 = 0.0;
/// Points for two compliant weeks in a row when the pack names none.
pub const DEFAULT_POINTS: u32 = 10;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
const WEEK_MS: i64 = 7 * DAY_MS;
/// The company's time zone, in which weeks and months begin (China, UTC+8).
const ZONE_SECONDS: i32 = 8 * 3600;
/// How many weeks back the figures go at most, so that a long history stays cheap.
const MAX_WEEKS: i64 = 104;

/// A flow's adoption settings with every default applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowRules {
    /// The flow.
    pub flow: Id,
    /// The field holding when the real-world thing happened.
    pub happened_at: Option<String>,
    /// The longest delay for an entry in time, in milliseconds.
    pub enter_within_ms: i64,
    /// The stage window, in milliseconds.
    pub update_within_ms: i64,
    /// Windows of particular stages, in milliseconds.
    pub stage_windows_ms: BTreeMap<Id, i64>,
    /// Stages that need no update, terminal stages included.
    pub unmeasured_stages: BTreeSet<Id>,
    /// The fields counted for completeness.
    pub complete: Vec<String>,
    /// Entry target.
    pub entry_target: f64,
    /// Timeliness target.
    pub timeliness_target: f64,
    /// Completeness target.
    pub completeness_target: f64,
    /// Points for two compliant weeks in a row.
    pub points: u32,
}

impl FlowRules {
    /// The rules of a flow with an `adoption:` block; `fields` are its form's fields,
    /// counted for completeness when the block lists none.
    pub fn of(flow: &FlowFile, fields: &[String]) -> Option<FlowRules> {
        let adoption = flow.adoption.as_ref()?;
        let minutes = |duration: Option<&stagecraft_model::Duration>, default: u64| {
            minutes_ms(duration.and_then(|d| d.minutes()).unwrap_or(default))
        };
        let mut unmeasured: BTreeSet<Id> = adoption.exempt_stages.iter().cloned().collect();
        unmeasured.extend(
            flow.stages.iter().filter(|stage| stage.outcome.is_some()).map(|s| s.id.clone()),
        );
        let complete = if adoption.complete.is_empty() {
            fields.to_vec()
        } else {
            adoption.complete.iter().map(|field| field.to_string()).collect()
        };
        Some(FlowRules {
            flow: flow.id.clone(),
            happened_at: adoption.happened_at.as_ref().map(|field| field.to_string()),
            enter_within_ms: minutes(adoption.enter_within.as_ref(), DEFAULT_ENTER_WITHIN_MINUTES),
            update_within_ms: minutes(
                adoption.update_within.as_ref(),
                DEFAULT_UPDATE_WITHIN_MINUTES,
            ),
            stage_windows_ms: adoption
                .stage_windows
                .iter()
                .filter_map(|(stage, window)| Some((stage.clone(), minutes_ms(window.minutes()?))))
                .collect(),
            unmeasured_stages: unmeasured,
            complete,
            entry_target: adoption.targets.entry.unwrap_or(DEFAULT_ENTRY_TARGET),
            timeliness_target: adoption.targets.timeliness.unwrap_or(DEFAULT_TIMELINESS_TARGET),
            completeness_target: adoption
                .targets
                .completeness
                .unwrap_or(DEFAULT_COMPLETENESS_TARGET),
            points: adoption.points.unwrap_or(DEFAULT_POINTS),
        })
    }

    /// The rules of every flow of the definitions that has an `adoption:` block.
    pub fn from_definitions(definitions: &Definitions) -> Vec<FlowRules> {
        definitions
            .flows
            .values()
            .filter_map(|flow| {
                let fields: Vec<String> = definitions
                    .forms
                    .get(&flow.form)
                    .map(|form| form.fields.keys().map(|field| field.to_string()).collect())
                    .unwrap_or_default();
                FlowRules::of(flow, &fields)
            })
            .collect()
    }

    /// The window of a stage, in milliseconds.
    pub fn window_ms(&self, stage: &Id) -> i64 {
        self.stage_windows_ms.get(stage).copied().unwrap_or(self.update_within_ms)
    }
}

fn minutes_ms(minutes: u64) -> i64 {
    i64::try_from(minutes).unwrap_or(i64::MAX / MINUTE_MS).saturating_mul(MINUTE_MS)
}

/// A share: how many of how many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// In time, filled…
    pub hit: u32,
    /// …of this many.
    pub total: u32,
}

impl Count {
    /// The share, when there is anything to count.
    pub fn share(self) -> Option<f64> {
        (self.total > 0).then(|| f64::from(self.hit) / f64::from(self.total))
    }

    fn add(&mut self, hit: bool) {
        self.total += 1;
        self.hit += u32::from(hit);
    }

    /// Whether the share reaches a target; nothing to count holds nothing back.
    fn meets(self, target: f64) -> bool {
        self.share().is_none_or(|share| share + 1e-9 >= target)
    }
}

/// One person's week on one flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeekRow {
    /// The person.
    pub person: String,
    /// The flow.
    pub flow: Id,
    /// The ISO week, e.g. `2026-W48`.
    pub week: String,
    /// When the week begins (Monday 00:00, China time), in milliseconds.
    pub week_start: i64,
    /// Whether the week has ended.
    pub ended: bool,
    /// Records entered in time, of those created in the week.
    pub entries: Count,
    /// Stage updates in time, of those due in the week.
    pub updates: Count,
    /// Filled fields, of the counted fields of the records open in the week.
    pub completeness: Count,
    /// Whether the week is compliant.
    pub compliant: bool,
}

impl WeekRow {
    /// Whether anything was measured.
    pub fn measured(&self) -> bool {
        self.entries.total + self.updates.total + self.completeness.total > 0
    }
}

/// Points earned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// The person.
    pub person: String,
    /// The flow.
    pub flow: Id,
    /// The week that completed the pair.
    pub week: String,
    /// The points.
    pub points: u32,
    /// The two compliant weeks, e.g. `2026-W47 + 2026-W48`.
    pub why: String,
}

/// The 透明度之星 of a month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Star {
    /// The month, e.g. `2026-11`.
    pub month: String,
    /// The person.
    pub person: String,
    /// Their filled and counted fields over the month's weeks.
    pub completeness: Count,
}

/// Everything the adoption page shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Adoption {
    /// Every measured person-week, oldest week first, then by person and flow.
    pub weeks: Vec<WeekRow>,
    /// Points earned, oldest first.
    pub ledger: Vec<LedgerEntry>,
    /// One star per month that has measured weeks, oldest first.
    pub stars: Vec<Star>,
}

impl Adoption {
    /// A person's points in total.
    pub fn points_of(&self, person: &str) -> u32 {
        self.ledger.iter().filter(|entry| entry.person == person).map(|entry| entry.points).sum()
    }

    /// The star of the month that contains `at`.
    pub fn star_of_month(&self, at: i64) -> Option<&Star> {
        let month = month_key(at);
        self.stars.iter().find(|star| star.month == month)
    }
}

/// Measures adoption on the dataset's records up to `until` (now): every week from
/// the first measured record's week (at most two years back) to the week holding
/// `until`; the current week is shown as it stands and earns no points yet.
pub fn measure(dataset: &Dataset, rules: &[FlowRules], until: i64) -> Adoption {
    let last_week = week_start(until);
    let mut grid = Grid { cells: BTreeMap::new(), first_week: last_week, last_week, until };
    for rule in rules {
        let records: Vec<&History> = dataset
            .of_flow(&rule.flow)
            .filter(|record| record.owner.is_some() && record.created_at <= until)
            .collect();
        let Some(first) = records.iter().map(|record| in_system_since(record)).min() else {
            continue;
        };
        grid.first_week = week_start(first).max(last_week - (MAX_WEEKS - 1) * WEEK_MS);
        for record in &records {
            grid.add_record(record, rule);
        }
    }
    let by_flow: BTreeMap<&Id, &FlowRules> = rules.iter().map(|rule| (&rule.flow, rule)).collect();
    let mut weeks: Vec<WeekRow> = grid.cells.into_values().collect();
    for row in &mut weeks {
        if let Some(rule) = by_flow.get(&row.flow) {
            row.compliant = row.measured()
                && row.entries.meets(rule.entry_target)
                && row.updates.meets(rule.timeliness_target)
                && row.completeness.meets(rule.completeness_target);
        }
    }
    let ledger = points(&weeks, &by_flow);
    let stars = stars(&weeks);
    Adoption { weeks, ledger, stars }
}

/// The person-weeks being counted.
struct Grid {
    cells: BTreeMap<(i64, String, Id), WeekRow>,
    first_week: i64,
    last_week: i64,
    until: i64,
}

impl Grid {
    /// The row of the week holding `at`, if that week is counted.
    fn row(&mut self, at: i64, person: &str, flow: &Id) -> Option<&mut WeekRow> {
        let start = week_start(at);
        if !(self.first_week..=self.last_week).contains(&start) {
            return None;
        }
        let until = self.until;
        Some(
            self.cells
                .entry((start, person.to_owned(), flow.clone()))
                .or_insert_with(|| empty_row(person, flow, start, until)),
        )
    }

    /// Counts one record's entry, updates and completeness for its owner.
    fn add_record(&mut self, record: &History, rule: &FlowRules) {
        let Some(owner) = record.owner.as_deref() else { return };
        if let Some(in_time) = entered_in_time(record, rule) {
            if let Some(row) = self.row(record.created_at, owner, &rule.flow) {
                row.entries.add(in_time);
            }
        }
        for (at, in_time) in updates_due(record, rule, self.until) {
            if let Some(row) = self.row(at, owner, &rule.flow) {
                row.updates.add(in_time);
            }
        }
        let closed = record.ended.as_ref().map(|ending| ending.at);
        let mut start = self.first_week.max(week_start(in_system_since(record)));
        while start <= self.last_week && closed.is_none_or(|closed| closed >= start) {
            let snapshot = (start + WEEK_MS - 1).min(self.until);
            let filled = filled_fields(record, &rule.complete, snapshot);
            let counted = len_u32(rule.complete.len());
            if let Some(row) = self.row(start, owner, &rule.flow) {
                row.completeness.hit += filled;
                row.completeness.total += counted;
            }
            start += WEEK_MS;
        }
    }
}

fn empty_row(person: &str, flow: &Id, start: i64, until: i64) -> WeekRow {
    WeekRow {
        person: person.to_owned(),
        flow: flow.clone(),
        week: week_key(start),
        week_start: start,
        ended: start + WEEK_MS <= until,
        entries: Count::default(),
        updates: Count::default(),
        completeness: Count::default(),
        compliant: false,
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Whether a record was entered in time; `None` for an imported record.
pub fn entered_in_time(record: &History, rule: &FlowRules) -> Option<bool> {
    if record.imported_from.is_some() {
        return None;
    }
    Some(
        entry_delay(record, rule.happened_at.as_deref())
            .is_none_or(|delay| delay <= rule.enter_within_ms),
    )
}

/// How long after the real-world event (`happened_at`) the record was created, in
/// milliseconds; `None` when the field is not set or not a date. A date without a
/// time counts from the end of that day.
pub fn entry_delay(record: &History, happened_at: Option<&str>) -> Option<i64> {
    let value = record.fields.get(happened_at?)?.as_str()?;
    Some(record.created_at - moment(value)?)
}

/// A date (`2026-11-02`, the end of that day in China) or a date and time (RFC 3339,
/// or without offset in China time) in milliseconds.
pub fn moment(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc().timestamp_millis() - i64::from(ZONE_SECONDS) * 1000);
        }
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day_start(day.succ_opt()?))
}

/// The stage updates of a record that were decided by `until`: when, and whether
/// in time.
pub fn updates_due(record: &History, rule: &FlowRules, until: i64) -> Vec<(i64, bool)> {
    let imported_at = imported_at(record);
    let mut due = Vec::new();
    for (index, entry) in record.stages.iter().enumerate() {
        if rule.unmeasured_stages.contains(&entry.stage) {
            continue;
        }
        let left = record.stages.get(index + 1).map(|next| next.at);
        if let (Some(imported), Some(left)) = (imported_at, left) {
            if left <= imported {
                continue;
            }
        }
        let start = imported_at.map_or(entry.at, |imported| entry.at.max(imported));
        let deadline = start.saturating_add(rule.window_ms(&entry.stage));
        match left {
            Some(left) if left <= deadline => due.push((left, true)),
            _ if deadline <= until => {
                // Late in the week the window ran out, and again in every week the
                // stage stays overdue.
                let end = left.unwrap_or(until).min(until);
                due.push((deadline, false));
                let mut week = week_start(deadline) + WEEK_MS;
                while week <= end {
                    due.push((week, false));
                    week += WEEK_MS;
                }
            }
            _ => {}
        }
    }
    due
}

/// Since when the record is in this system: its import, else its creation.
fn in_system_since(record: &History) -> i64 {
    imported_at(record).unwrap_or(record.created_at)
}

/// When the record's history was imported, if it was.
pub fn imported_at(record: &History) -> Option<i64> {
    record.imported_from.as_ref()?;
    record.events.iter().find(|event| event.kind == "imported").map(|event| event.at)
}

/// How many of `fields` were filled at `at`: the record's values now, with every
/// later change undone.
pub fn filled_fields(record: &History, fields: &[String], at: i64) -> u32 {
    let mut values = record.fields.clone();
    for change in record.changes.iter().rev().filter(|change| change.at > at) {
        values.insert(change.field.clone(), change.before.clone());
    }
    len_u32(fields.iter().filter(|field| values.get(field.as_str()).is_some_and(filled)).count())
}

/// Whether a value counts as filled.
pub fn filled(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.trim().is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// The points ledger: per person and flow, every second week of a run of compliant
/// ended weeks.
fn points(weeks: &[WeekRow], rules: &BTreeMap<&Id, &FlowRules>) -> Vec<LedgerEntry> {
    let mut runs: BTreeMap<(String, Id), Vec<&WeekRow>> = BTreeMap::new();
    for row in weeks.iter().filter(|row| row.ended) {
        runs.entry((row.person.clone(), row.flow.clone())).or_default().push(row);
    }
    let mut ledger = Vec::new();
    for ((person, flow), rows) in runs {
        let points = rules.get(&flow).map_or(DEFAULT_POINTS, |rule| rule.points);
        let mut run: Vec<&WeekRow> = Vec::new();
        for row in rows {
            let follows =
                run.last().is_some_and(|last| last.week_start + WEEK_MS == row.week_start);
            if !row.compliant || !follows {
                run.clear();
            }
            if row.compliant {
                run.push(row);
            }
            if run.len() % 2 == 0 && !run.is_empty() && row.compliant {
                let first = run[run.len() - 2];
                ledger.push(LedgerEntry {
                    person: person.clone(),
                    flow: flow.clone(),
                    week: row.week.clone(),
                    points,
                    why: format!("{} + {}", first.week, row.week),
                });
            }
        }
    }
    ledger.sort_by(|a, b| (&a.week, &a.person, &a.flow).cmp(&(&b.week, &b.person, &b.flow)));
    ledger
}

/// The star of every month: the highest completeness over the weeks beginning in the
/// month, all flows together; ties to more counted fields, then the smaller user id.
fn stars(weeks: &[WeekRow]) -> Vec<Star> {
    let mut months: BTreeMap<String, BTreeMap<String, Count>> = BTreeMap::new();
    for row in weeks {
        let count = months
            .entry(month_key(row.week_start))
            .or_default()
            .entry(row.person.clone())
            .or_default();
        count.hit += row.completeness.hit;
        count.total += row.completeness.total;
    }
    months
        .into_iter()
        .filter_map(|(month, people)| {
            let (person, completeness) = people
                .into_iter()
                .filter(|(_, count)| count.total > 0)
                .max_by(|(a_person, a), (b_person, b)| {
                    // hit/total compared without rounding: a.hit × b.total vs b.hit × a.total.
                    let left = u64::from(a.hit) * u64::from(b.total);
                    let right = u64::from(b.hit) * u64::from(a.total);
                    left.cmp(&right).then(a.total.cmp(&b.total)).then(b_person.cmp(a_person))
                })?;
            Some(Star { month, person, completeness })
        })
        .collect()
}

// ----- time ---------------------------------------------------------------------------

/// China has one time zone without daylight saving time: UTC+8.
const ZONE: FixedOffset = match FixedOffset::east_opt(ZONE_SECONDS) {
    Some(offset) => offset,
    None => panic!("+08:00 is a valid offset"),
};

fn local_date(at: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(at)
        .map(|time| time.with_timezone(&ZONE).date_naive())
        .unwrap_or_default()
}

fn day_start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|time| time.and_utc().timestamp_millis() - i64::from(ZONE_SECONDS) * 1000)
        .unwrap_or_default()
}

/// The start of the ISO week (Monday 00:00, China time) holding `at`.
pub fn week_start(at: i64) -> i64 {
    let day = local_date(at);
    let monday = day - Span::days(i64::from(day.weekday().num_days_from_monday()));
    day_start(monday)
}

/// The ISO week holding `at`, e.g. `2026-W48`.
pub fn week_key(at: i64) -> String {
    let week = local_date(at).iso_week();
    format!("{}-W{:02}", week.year(), week.week())
}

/// The month holding `at`, e.g. `2026-11`.
pub fn month_key(at: i64) -> String {
    let day = local_date(at);
    format!("{}-{:02}", day.year(), day.month())
}
