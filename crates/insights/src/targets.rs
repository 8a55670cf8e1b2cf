//! Targets and pipeline coverage. Targets come from the org files (`targets:`), per
//! person or department and period, on one flow's amount. The coverage of a target
//! is the amount of the open records expected to end in the period (the flow's
//! `measures.expected_end` date) divided by the target; the attainment is the amount
//! of the records that ended with success in the period divided by the target.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use stagecraft_model::{Department, FlowFile, Target, User};
use stagecraft_pack::Definitions;

use crate::dataset::{Dataset, History};
use crate::figures::total;
use crate::period::Period;

/// Who belongs where, as the org says now.
#[derive(Clone, Debug, Default)]
pub struct People {
    /// Display names of users and departments, by id.
    pub names: BTreeMap<String, String>,
    /// The members of each department, its sub-departments' members included.
    pub members: BTreeMap<String, BTreeSet<String>>,
}

impl People {
    /// Builds the names and memberships from the org's users and departments.
    pub fn build<'a>(
        users: impl Iterator<Item = &'a User>,
        departments: impl Iterator<Item = &'a Department>,
        locale: &str,
    ) -> Self {
        let departments: Vec<&Department> = departments.collect();
        let mut people = People::default();
        for department in &departments {
            people.names.insert(department.id.to_string(), department.title.get(locale).to_owned());
            people.members.entry(department.id.to_string()).or_default();
        }
        for user in users {
            people.names.insert(user.id.to_string(), user.name.clone());
            let mut current = user.department.clone();
            // Departments may (wrongly) be each other's parents: the walk stays bounded.
            for _ in 0..=departments.len() {
                let Some(id) = current else { break };
                people.members.entry(id.to_string()).or_default().insert(user.id.to_string());
                current = departments.iter().find(|d| d.id == id).and_then(|d| d.parent.clone());
            }
        }
        people
    }

    /// A user's or department's name, or the id.
    pub fn name(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

/// One target with its coverage.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageRow {
    /// `user` or `department`.
    pub kind: String,
    /// The user or department id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The flow whose amounts count.
    pub flow: String,
    /// The target.
    pub target: f64,
    /// The amount of the open records expected to end in the period.
    pub pipeline: f64,
    /// `pipeline ÷ target`.
    pub coverage: Option<f64>,
    /// The amount of the records that ended with success in the period.
    pub achieved: f64,
    /// `achieved ÷ target`.
    pub attainment: Option<f64>,
}

/// The coverage of every target of the period whose people are all in `scope`
/// (`None`: everyone), people first and then departments, each by id. The dataset
/// must hold the records of everyone in scope.
pub fn coverage(
    dataset: &Dataset,
    definitions: &Definitions,
    people: &People,
    scope: Option<&BTreeSet<String>>,
    period: &Period,
) -> Vec<CoverageRow> {
    let mut rows: Vec<CoverageRow> = definitions
        .org
        .targets
        .iter()
        .filter(|target| target.period == period.label)
        .filter_map(|target| {
            let members = members_of(target, people)?;
            let in_scope = scope.is_none_or(|scope| members.is_subset(scope));
            in_scope.then(|| row(dataset, definitions, people, target, &members, period))
        })
        .flatten()
        .collect();
    rows.sort_by(|a, b| b.kind.cmp(&a.kind).then_with(|| a.id.cmp(&b.id)));
    rows
}

/// The people a target is for (none for a department without members).
fn members_of(target: &Target, people: &People) -> Option<BTreeSet<String>> {
    match (&target.user, &target.department) {
        (Some(user), _) => Some(BTreeSet::from([user.to_string()])),
        (None, Some(department)) => {
            people.members.get(department.as_str()).filter(|members| !members.is_empty()).cloned()
        }
        (None, None) => None,
    }
}

fn row(
    dataset: &Dataset,
    definitions: &Definitions,
    people: &People,
    target: &Target,
    members: &BTreeSet<String>,
    period: &Period,
) -> Option<CoverageRow> {
    let flow: &FlowFile = definitions.flows.get(&target.flow)?;
    let measures = flow.measures.as_ref()?;
    let amount_field = measures.amount.as_ref()?;
    let owned = |record: &&History| record.owner.as_ref().is_some_and(|o| members.contains(o));
    let records: Vec<&History> = dataset.of_flow(&flow.id).filter(owned).collect();
    let amount = |record: &&History| record.number(amount_field.as_str()).unwrap_or(0.0);
    let pipeline: f64 = match &measures.expected_end {
        Some(field) => total(
            records
                .iter()
                .filter(|record| record.ended.is_none())
                .filter(|record| {
                    record.text(field.as_str()).is_some_and(|d| period.contains_date(d))
                })
                .map(amount),
        ),
        None => 0.0,
    };
    let achieved: f64 = total(
        records
            .iter()
            .filter(|record| {
                record.ended.as_ref().is_some_and(|end| {
                    period.contains(end.at) && measures.success.contains(&end.outcome)
                })
            })
            .map(amount),
    );
    let (kind, id) = match (&target.user, &target.department) {
        (Some(user), _) => ("user", user.to_string()),
        (None, Some(department)) => ("department", department.to_string()),
        (None, None) => return None,
    };
    let share = |part: f64| (target.amount > 0.0).then(|| part / target.amount);
    Some(CoverageRow {
        kind: kind.to_owned(),
        name: people.name(&id),
        id,
        flow: flow.id.to_string(),
        target: target.amount,
        pipeline,
        coverage: share(pipeline),
        achieved,
        attainment: share(achieved),
    })
}
