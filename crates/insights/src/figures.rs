//! The dashboard's figures for one period, per flow: the stage funnel of the records
//! that entered in the period (their cohort) with the conversion from each stage to
//! the next, the same conversion week by week (is it stable?), the flow's named
//! conversions, win rates overall and by size, the cycle time, SLA breaches and
//! alerts. Which field is the amount and which outcomes are success come from the
//! flow's `measures`; nothing here knows a field name.
//!
//! Definitions used throughout (and checked by hand in the tests):
//! - the **cohort** of a period is the records created in it;
//! - the **funnel** stages are the flow's stages in order, without the terminal
//!   stages whose outcome is a failure; a record **reached** a funnel stage when it
//!   entered that stage or a later one;
//! - the **stability** of a stage-to-stage conversion is the lowest and highest of
//!   its weekly rates (weeks where nobody reached the stage have no rate);
//! - a **conversion** from → to is the share of the cohort records that entered `from`
//!   that also entered `to`;
//! - the **win rate** is success ÷ (success + failure) over the records that ended in
//!   the period; "large" records have an amount at or above `large_amount`;
//! - the **cycle time** is the average time from creation to a success outcome (to
//!   any outcome when the flow names no success) of the records that ended in the
//!   period;
//! - breaches and alerts are counted when they happened in the period.

use std::collections::BTreeMap;

use serde::Serialize;
use stagecraft_model::{FlowFile, Id, Measures};
use stagecraft_pack::Definitions;

use crate::dataset::{Dataset, History, Mark};
use crate::period::{DAY_MS, Period, date_text};

/// Every flow's figures for a period.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowReport {
    /// The flow id.
    pub flow: String,
    /// Its name in the requested language.
    pub title: String,
    /// How many records were created in the period.
    pub cohort: usize,
    /// The stage funnel of the cohort.
    pub funnel: Vec<FunnelStep>,
    /// The conversion between consecutive funnel stages, per weekly cohort.
    pub weekly: Vec<WeekConversion>,
    /// How stable each stage-to-stage conversion was from week to week.
    pub stability: Vec<Stability>,
    /// The flow's named conversions (`measures.conversions`).
    pub conversions: Vec<Conversion>,
    /// Records that ended in the period, by outcome kind.
    pub outcomes: Outcomes,
    /// Win rate of large records and of the others (when the flow has `large_amount`).
    pub by_size: Vec<SizeRow>,
    /// The cycle time (when the flow asks for it).
    pub cycle: Option<Cycle>,
    /// SLA breaches in the period, by stage.
    pub breaches: Vec<Count>,
    /// Alerts raised in the period, by alert.
    pub alerts: Vec<Count>,
}

/// One stage of the funnel.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelStep {
    /// The stage id.
    pub stage: String,
    /// Its name.
    pub title: String,
    /// Cohort records that reached it.
    pub reached: usize,
    /// The share of them that reached the next funnel stage (none for the last stage
    /// or when nobody reached this one).
    pub to_next: Option<f64>,
}

/// The stage-to-stage conversion of one week's cohort.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WeekConversion {
    /// The week's Monday (local date).
    pub week: String,
    /// Records created that week (within the period).
    pub entered: usize,
    /// For each funnel stage but the last, the share of the week's records that reached
    /// it and went on to the next (none when nobody reached it).
    pub rates: Vec<Option<f64>>,
}

/// How much one stage-to-stage conversion moved between the weekly cohorts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stability {
    /// The stage converted from.
    pub from: String,
    /// The next funnel stage.
    pub to: String,
    /// `from → to` with the stages' names.
    pub title: String,
    /// Weeks in which someone reached `from` (weeks with a rate).
    pub weeks: usize,
    /// The lowest weekly rate.
    pub lowest: Option<f64>,
    /// The highest weekly rate.
    pub highest: Option<f64>,
    /// `highest − lowest`: 0 is perfectly stable.
    pub spread: Option<f64>,
}

/// A named conversion.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversion {
    /// Its id.
    pub id: String,
    /// Its name.
    pub title: String,
    /// Cohort records that entered the `from` stage.
    pub entered: usize,
    /// Of them, those that entered the `to` stage.
    pub converted: usize,
    /// `converted ÷ entered`.
    pub rate: Option<f64>,
}

/// Records that ended in the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcomes {
    /// All that ended.
    pub ended: usize,
    /// With a success outcome.
    pub success: usize,
    /// With a failure outcome.
    pub failure: usize,
    /// `success ÷ (success + failure)`.
    pub win_rate: Option<f64>,
    /// The sum of the success records' amounts (when the flow has `amount`).
    pub success_amount: Option<f64>,
}

/// Win rate of one size class.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SizeRow {
    /// `large` (amount at or above the threshold) or `other`.
    pub size: String,
    /// The threshold.
    pub threshold: f64,
    /// Successes.
    pub success: usize,
    /// Failures.
    pub failure: usize,
    /// `success ÷ (success + failure)`.
    pub win_rate: Option<f64>,
}

/// The cycle time.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cycle {
    /// The records it averages over.
    pub records: usize,
    /// The average, in days.
    pub average_days: Option<f64>,
}

/// How many times something happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Count {
    /// The stage or alert id.
    pub id: String,
    /// Its name.
    pub title: String,
    /// How many times.
    pub count: usize,
}

/// The figures of every flow that has records or measures, in flow id order.
pub fn flow_reports(
    dataset: &Dataset,
    definitions: &Definitions,
    period: &Period,
    locale: &str,
) -> Vec<FlowReport> {
    definitions
        .flows
        .values()
        .filter(|flow| flow.measures.is_some() || dataset.of_flow(&flow.id).next().is_some())
        .map(|flow| flow_report(dataset, definitions, flow, period, locale))
        .collect()
}

/// One flow's figures.
pub fn flow_report(
    dataset: &Dataset,
    definitions: &Definitions,
    flow: &FlowFile,
    period: &Period,
    locale: &str,
) -> FlowReport {
    let default = Measures::default();
    let measures = flow.measures.as_ref().unwrap_or(&default);
    let records: Vec<&History> = dataset.of_flow(&flow.id).collect();
    let cohort: Vec<&History> =
        records.iter().copied().filter(|record| period.contains(record.created_at)).collect();
    let funnel_stages = funnel_stages(flow, measures);
    let weekly = weekly(&funnel_stages, &cohort, period);
    let ended: Vec<&History> = records
        .iter()
        .copied()
        .filter(|record| record.ended.as_ref().is_some_and(|end| period.contains(end.at)))
        .collect();
    FlowReport {
        flow: flow.id.to_string(),
        title: flow.title.get(locale).to_owned(),
        cohort: cohort.len(),
        funnel: funnel(flow, &funnel_stages, &cohort, locale),
        stability: stability(flow, &funnel_stages, &weekly, locale),
        weekly,
        conversions: conversions(measures, &cohort, locale),
        outcomes: outcomes(measures, &ended),
        by_size: by_size(measures, &ended),
        cycle: measures.cycle_time.then(|| cycle(measures, &ended)),
        breaches: counts(
            &records,
            period,
            |record| &record.breaches,
            |id| stage_title(flow, id, locale),
        ),
        alerts: counts(
            &records,
            period,
            |record| &record.alerts,
            |id| {
                definitions
                    .alerts
                    .iter()
                    .find(|alert| alert.id.as_str() == id)
                    .map(|alert| alert.title.get(locale).to_owned())
                    .unwrap_or_else(|| id.to_owned())
            },
        ),
    }
}

/// The flow's stages in order, without the terminal stages of failure outcomes.
pub fn funnel_stages(flow: &FlowFile, measures: &Measures) -> Vec<Id> {
    flow.stages
        .iter()
        .filter(|stage| {
            stage.outcome.as_ref().is_none_or(|outcome| !measures.failure.contains(outcome))
        })
        .map(|stage| stage.id.clone())
        .collect()
}

/// The furthest funnel stage a record entered, by position.
fn furthest(record: &History, stages: &[Id]) -> Option<usize> {
    record
        .stages
        .iter()
        .filter_map(|entry| stages.iter().position(|stage| stage == &entry.stage))
        .max()
}

/// How many of `records` reached each funnel stage.
fn reached_counts(stages: &[Id], records: &[&History]) -> Vec<usize> {
    let mut counts = vec![0; stages.len()];
    for record in records {
        if let Some(furthest) = furthest(record, stages) {
            for count in counts.iter_mut().take(furthest + 1) {
                *count += 1;
            }
        }
    }
    counts
}

fn funnel(flow: &FlowFile, stages: &[Id], cohort: &[&History], locale: &str) -> Vec<FunnelStep> {
    let counts = reached_counts(stages, cohort);
    stages
        .iter()
        .enumerate()
        .map(|(index, stage)| FunnelStep {
            stage: stage.to_string(),
            title: stage_title(flow, stage.as_str(), locale),
            reached: counts[index],
            to_next: counts.get(index + 1).and_then(|next| ratio(*next, counts[index])),
        })
        .collect()
}

fn weekly(stages: &[Id], cohort: &[&History], period: &Period) -> Vec<WeekConversion> {
    period
        .weeks()
        .into_iter()
        .map(|week| {
            let of_week: Vec<&History> = cohort
                .iter()
                .copied()
                .filter(|record| week <= record.created_at && record.created_at < week + 7 * DAY_MS)
                .collect();
            let counts = reached_counts(stages, &of_week);
            WeekConversion {
                week: date_text(week, period.utc_offset_minutes),
                entered: of_week.len(),
                rates: counts.windows(2).map(|pair| ratio(pair[1], pair[0])).collect(),
            }
        })
        .collect()
}

fn stability(
    flow: &FlowFile,
    stages: &[Id],
    weekly: &[WeekConversion],
    locale: &str,
) -> Vec<Stability> {
    stages
        .windows(2)
        .enumerate()
        .map(|(index, pair)| {
            let rates: Vec<f64> =
                weekly.iter().filter_map(|week| week.rates.get(index).copied().flatten()).collect();
            let lowest = rates.iter().copied().reduce(f64::min);
            let highest = rates.iter().copied().reduce(f64::max);
            Stability {
                from: pair[0].to_string(),
                to: pair[1].to_string(),
                title: format!(
                    "{} → {}",
                    stage_title(flow, pair[0].as_str(), locale),
                    stage_title(flow, pair[1].as_str(), locale)
                ),
                weeks: rates.len(),
                lowest,
                highest,
                spread: lowest.zip(highest).map(|(low, high)| high - low),
            }
        })
        .collect()
}

fn conversions(measures: &Measures, cohort: &[&History], locale: &str) -> Vec<Conversion> {
    measures
        .conversions
        .iter()
        .map(|conversion| {
            let entered: Vec<&&History> =
                cohort.iter().filter(|record| record.reached(&conversion.from)).collect();
            let converted = entered.iter().filter(|record| record.reached(&conversion.to)).count();
            Conversion {
                id: conversion.id.to_string(),
                title: conversion.title.get(locale).to_owned(),
                entered: entered.len(),
                converted,
                rate: ratio(converted, entered.len()),
            }
        })
        .collect()
}

/// Whether a record ended with a success / failure outcome.
fn ended_as(record: &History, outcomes: &[Id]) -> bool {
    record.ended.as_ref().is_some_and(|end| outcomes.contains(&end.outcome))
}

fn outcomes(measures: &Measures, ended: &[&History]) -> Outcomes {
    let success: Vec<&&History> =
        ended.iter().filter(|record| ended_as(record, &measures.success)).collect();
    let failure = ended.iter().filter(|record| ended_as(record, &measures.failure)).count();
    Outcomes {
        ended: ended.len(),
        success: success.len(),
        failure,
        win_rate: ratio(success.len(), success.len() + failure),
        success_amount: measures
            .amount
            .as_ref()
            .map(|field| total(success.iter().filter_map(|record| record.number(field.as_str())))),
    }
}

fn by_size(measures: &Measures, ended: &[&History]) -> Vec<SizeRow> {
    let (Some(threshold), Some(field)) = (measures.large_amount, measures.amount.as_ref()) else {
        return Vec::new();
    };
    let large = |record: &History| record.number(field.as_str()).is_some_and(|n| n >= threshold);
    [("large", true), ("other", false)]
        .into_iter()
        .map(|(size, is_large)| {
            let class: Vec<&&History> =
                ended.iter().filter(|record| large(record) == is_large).collect();
            let success = class.iter().filter(|record| ended_as(record, &measures.success)).count();
            let failure = class.iter().filter(|record| ended_as(record, &measures.failure)).count();
            SizeRow {
                size: size.to_owned(),
                threshold,
                success,
                failure,
                win_rate: ratio(success, success + failure),
            }
        })
        .collect()
}

fn cycle(measures: &Measures, ended: &[&History]) -> Cycle {
    let durations: Vec<i64> = ended
        .iter()
        .filter(|record| measures.success.is_empty() || ended_as(record, &measures.success))
        .filter_map(|record| record.ended.as_ref().map(|end| end.at - record.created_at))
        .collect();
    let total: i64 = durations.iter().sum();
    Cycle {
        records: durations.len(),
        average_days: (!durations.is_empty())
            .then(|| total as f64 / durations.len() as f64 / DAY_MS as f64),
    }
}

/// Marks in the period, counted by name, in name order.
fn counts(
    records: &[&History],
    period: &Period,
    marks: impl Fn(&History) -> &Vec<Mark>,
    title: impl Fn(&str) -> String,
) -> Vec<Count> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for record in records {
        for mark in marks(record).iter().filter(|mark| period.contains(mark.at)) {
            *by_name.entry(mark.name.as_str()).or_default() += 1;
        }
    }
    by_name
        .into_iter()
        .map(|(id, count)| Count { id: id.to_owned(), title: title(id), count })
        .collect()
}

/// A stage's name in a language.
pub fn stage_title(flow: &FlowFile, stage: &str, locale: &str) -> String {
    flow.stages
        .iter()
        .find(|candidate| candidate.id.as_str() == stage)
        .map(|candidate| candidate.title.get(locale).to_owned())
        .unwrap_or_else(|| stage.to_owned())
}

/// The sum of amounts; `0` when there are none (a bare `sum` of no floats is `-0`,
/// which would show as `-0.0%`).
pub fn total(amounts: impl Iterator<Item = f64>) -> f64 {
    amounts.fold(0.0, |sum, amount| sum + amount)
}

/// `part ÷ whole`, none when `whole` is zero.
pub fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}
