//! Checks of a flow's `measures:` block and of the org files' `targets:`: the fields,
//! stages and outcomes they name exist, fields hold the right kind of value, and each
//! target names one person or department, a period that exists and a flow with an
//! amount.

use std::collections::BTreeSet;

use stagecraft_model::{Code, Diagnostic, FieldName, FlowFile, Id};

use super::{Context, Kind};
use crate::load::Content;
use crate::structure::closest;

impl Context<'_> {
    /// Checks the `measures:` of every flow.
    pub(super) fn check_all_measures(&mut self) {
        let flows: Vec<(usize, FlowFile)> =
            self.flows.values().map(|def| (def.file, def.value.clone())).collect();
        for (file, flow) in flows {
            self.check_measures(&flow, file);
        }
    }

    fn check_measures(&mut self, flow: &FlowFile, file: usize) {
        let Some(measures) = &flow.measures else { return };
        let form = self.forms.contains_key(&flow.form).then_some(&flow.form);
        if let Some(field) = &measures.amount {
            self.field(form, field, file, "/measures/amount");
            self.field_kind(form, field, &["number", "integer"], file, "/measures/amount");
        }
        if let Some(field) = &measures.expected_end {
            self.field(form, field, file, "/measures/expected_end");
            self.field_kind(form, field, &["string"], file, "/measures/expected_end");
        }
        if measures.large_amount.is_some() && measures.amount.is_none() {
            let diagnostic = Diagnostic::new(
                Code::MeasureMismatch,
                "`large_amount` needs `amount`: which field holds the value?",
            )
            .at(self.at(file, "/measures/large_amount"))
            .hint("add `amount: <number field>` to `measures`");
            self.push(diagnostic);
        }
        let outcomes: BTreeSet<&Id> =
            flow.stages.iter().filter_map(|stage| stage.outcome.as_ref()).collect();
        for (list, names) in [("success", &measures.success), ("failure", &measures.failure)] {
            for (n, outcome) in names.iter().enumerate() {
                if !outcomes.contains(outcome) {
                    let hint = match closest(outcome.as_str(), outcomes.iter().map(|o| o.as_str()))
                    {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => "name the `outcome` of a terminal stage".to_owned(),
                    };
                    let diagnostic = Diagnostic::new(
                        Code::UnknownOutcome,
                        format!("flow `{}` has no outcome `{outcome}`", flow.id),
                    )
                    .at(self.at(file, &format!("/measures/{list}/{n}")))
                    .hint(hint);
                    self.push(diagnostic);
                }
            }
        }
        for (n, outcome) in measures.success.iter().enumerate() {
            if measures.failure.contains(outcome) {
                let diagnostic = Diagnostic::new(
                    Code::MeasureMismatch,
                    format!("outcome `{outcome}` is both a success and a failure"),
                )
                .at(self.at(file, &format!("/measures/success/{n}")))
                .hint("keep it in one of `success` and `failure`");
                self.push(diagnostic);
            }
        }
        let stages: Vec<&str> = flow.stages.iter().map(|stage| stage.id.as_str()).collect();
        let mut ids = BTreeSet::new();
        for (n, conversion) in measures.conversions.iter().enumerate() {
            let pointer = format!("/measures/conversions/{n}");
            if !ids.insert(&conversion.id) {
                let diagnostic = Diagnostic::new(
                    Code::DuplicateId,
                    format!("conversion `{}` is defined twice in this flow", conversion.id),
                )
                .at(self.at(file, &format!("{pointer}/id")));
                self.push(diagnostic);
            }
            for (key, stage) in [("from", &conversion.from), ("to", &conversion.to)] {
                if !stages.contains(&stage.as_str()) {
                    let hint = match closest(stage.as_str(), stages.iter().copied()) {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => format!("the stages of this flow are: {}", stages.join(", ")),
                    };
                    let diagnostic =
                        Diagnostic::new(Code::UnknownStage, format!("unknown stage `{stage}`"))
                            .at(self.at(file, &format!("{pointer}/{key}")))
                            .hint(hint);
                    self.push(diagnostic);
                }
            }
        }
    }

    /// Reports a field whose declared JSON types include none of `kinds`.
    fn field_kind(
        &mut self,
        form: Option<&Id>,
        field: &FieldName,
        kinds: &[&str],
        file: usize,
        pointer: &str,
    ) {
        let Some(info) = form.and_then(|form| self.form_fields(form)).and_then(|f| f.get(field))
        else {
            return;
        };
        if info.types.is_empty() || info.types.iter().any(|t| kinds.contains(&t.as_str())) {
            return;
        }
        let diagnostic = Diagnostic::new(
            Code::MeasureMismatch,
            format!("field `{field}` holds {}, not {}", info.types.join("/"), kinds.join("/")),
        )
        .at(self.at(file, pointer))
        .hint(format!("name a field of type {}", kinds.join(" or ")));
        self.push(diagnostic);
    }

    /// Checks the `targets:` of every org file.
    pub(super) fn check_targets(&mut self) {
        // A flow without an amount is reported once, at its first target.
        let mut without_amount = BTreeSet::new();
        for file in self.org_files.clone() {
            let Some(Content::Org(org)) = &self.workspace.files[file].content else { continue };
            let targets = org.targets.clone();
            for (n, target) in targets.iter().enumerate() {
                let pointer = format!("/targets/{n}");
                self.check_target_whom(target, file, &pointer);
                if !valid_period(&target.period) {
                    let diagnostic = Diagnostic::new(
                        Code::InvalidDate,
                        format!("`{}` is not a month or a quarter", target.period),
                    )
                    .at(self.at(file, &format!("{pointer}/period")))
                    .hint("write a month as `2026-11` or a quarter as `2026-Q4`");
                    self.push(diagnostic);
                }
                if !target.amount.is_finite() || target.amount < 0.0 {
                    let diagnostic =
                        Diagnostic::new(Code::MeasureMismatch, "a target's amount must be ≥ 0")
                            .at(self.at(file, &format!("{pointer}/amount")));
                    self.push(diagnostic);
                }
                if self.reference(Kind::Flow, &target.flow, file, &format!("{pointer}/flow")) {
                    // A flow that did not load has been reported already.
                    let lacks_amount = self.flows.get(&target.flow).is_some_and(|def| {
                        def.value.measures.as_ref().is_none_or(|m| m.amount.is_none())
                    });
                    if lacks_amount && without_amount.insert(target.flow.clone()) {
                        let diagnostic = Diagnostic::new(
                            Code::MeasureMismatch,
                            format!("flow `{}` declares no `measures.amount`", target.flow),
                        )
                        .at(self.at(file, &format!("{pointer}/flow")))
                        .hint("a target counts the flow's amount field: declare it in the flow");
                        self.push(diagnostic);
                    }
                }
            }
        }
    }

    /// A target is for exactly one known user or department.
    fn check_target_whom(&mut self, target: &stagecraft_model::Target, file: usize, pointer: &str) {
        match (&target.user, &target.department) {
            (Some(user), None) => {
                if !self.user_known(user) {
                    let users = self.org.users.iter().map(|u| u.id.as_str());
                    let hint = match closest(user.as_str(), users) {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => "name a user of the org file".to_owned(),
                    };
                    let diagnostic =
                        Diagnostic::new(Code::UnknownOrgEntry, format!("unknown user `{user}`"))
                            .at(self.at(file, &format!("{pointer}/user")))
                            .hint(hint);
                    self.push(diagnostic);
                }
            }
            (None, Some(department)) => {
                if !self.org.departments.iter().any(|d| &d.id == department) {
                    let departments = self.org.departments.iter().map(|d| d.id.as_str());
                    let hint = match closest(department.as_str(), departments) {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => "name a department of the org file".to_owned(),
                    };
                    let diagnostic = Diagnostic::new(
                        Code::UnknownOrgEntry,
                        format!("unknown department `{department}`"),
                    )
                    .at(self.at(file, &format!("{pointer}/department")))
                    .hint(hint);
                    self.push(diagnostic);
                }
            }
            _ => {
                let diagnostic = Diagnostic::new(
                    Code::MissingKey,
                    "a target is for one `user` or one `department`",
                )
                .at(self.at(file, pointer))
                .hint("give exactly one of `user` and `department`");
                self.push(diagnostic);
            }
        }
    }
}

/// Whether `period` is a month (`2026-11`) or a quarter (`2026-Q4`).
pub(crate) fn valid_period(period: &str) -> bool {
    let Some((year, rest)) = period.split_once('-') else { return false };
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match rest.strip_prefix('Q') {
        Some(quarter) => matches!(quarter, "1" | "2" | "3" | "4"),
        None => rest.len() == 2 && rest.parse::<u8>().is_ok_and(|month| (1..=12).contains(&month)),
    }
}
