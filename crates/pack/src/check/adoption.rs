//! Checks of a flow's `adoption:` and `audit:` blocks: the fields, stages, alerts
//! and roles they name exist, and their durations can be counted.

use std::collections::BTreeMap;

use stagecraft_model::{FlowFile, Id};

use super::{Context, Kind};

impl Context<'_> {
    /// Reports every unknown name and uncountable duration in the flow's `adoption:`
    /// and `audit:` blocks.
    pub(super) fn check_adoption(
        &mut self,
        flow: &FlowFile,
        form: Option<&Id>,
        file: usize,
        unknown_stage: &dyn Fn(&mut Self, &str, &str),
        stages: &BTreeMap<Id, usize>,
    ) {
        if let Some(adoption) = &flow.adoption {
            if let Some(field) = &adoption.happened_at {
                self.field(form, field, file, "/adoption/happened_at");
            }
            if let Some(within) = &adoption.enter_within {
                self.duration(within, file, "/adoption/enter_within");
            }
            if let Some(within) = &adoption.update_within {
                self.duration(within, file, "/adoption/update_within");
            }
            for (stage, window) in &adoption.stage_windows {
                let pointer = format!("/adoption/stage_windows/{stage}");
                if !stages.contains_key(stage) {
                    unknown_stage(self, stage.as_str(), &pointer);
                }
                self.duration(window, file, &pointer);
            }
            for (n, stage) in adoption.exempt_stages.iter().enumerate() {
                if !stages.contains_key(stage) {
                    unknown_stage(self, stage.as_str(), &format!("/adoption/exempt_stages/{n}"));
                }
            }
            for (n, field) in adoption.complete.iter().enumerate() {
                self.field(form, field, file, &format!("/adoption/complete/{n}"));
            }
        }
        if let Some(audit) = &flow.audit {
            if let Some(after) = &audit.late_entry {
                self.duration(after, file, "/audit/late_entry");
            }
            if let Some(within) = &audit.rush_within {
                self.duration(within, file, "/audit/rush_within");
            }
            if let Some(after) = &audit.stall_after {
                self.duration(after, file, "/audit/stall_after");
            }
            for (n, alert) in audit.stall_alerts.iter().enumerate() {
                self.reference(Kind::Alert, alert, file, &format!("/audit/stall_alerts/{n}"));
            }
            for (n, role) in audit.admin_roles.iter().enumerate() {
                self.reference(Kind::Role, role, file, &format!("/audit/admin_roles/{n}"));
            }
        }
    }
}
