//! What the runtime keeps about a record: its fields and, when a flow drives it, where
//! it is in the flow (stage, key actions done, approvals, the sub-flow it waits for).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stagecraft_model::Id;

/// A record: one filled form, with its place in a flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    /// The record id.
    pub id: String,
    /// The form it fills.
    pub form: Id,
    /// Incremented by every change; a command names the version it read (optimistic
    /// concurrency).
    pub version: u64,
    /// The user who owns it, if the form has owners.
    pub owner: Option<String>,
    /// When it was created (Unix milliseconds).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
    /// The last time someone worked on it or on a record that `touches` it.
    pub last_activity_at: i64,
    /// The form's fields.
    pub fields: Map<String, Value>,
    /// The flow driving it, if any.
    pub flow: Option<FlowState>,
    /// The record whose stage started this one as a sub-flow.
    pub parent: Option<ParentLink>,
    /// When each alert last fired for this record, and in which stage.
    #[serde(default)]
    pub alerts: BTreeMap<Id, AlertMark>,
    /// The open tasks about this record, by key.
    #[serde(default)]
    pub tasks: BTreeMap<String, crate::protocol::Task>,
    /// The timers set for this record that have not fired, by key.
    #[serde(default)]
    pub timers: std::collections::BTreeSet<String>,
}

/// The place of a record in its flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowState {
    /// The flow.
    pub flow: Id,
    /// The version of the pack that defined the flow when the record started; the
    /// record stays on it.
    pub pack_version: String,
    /// The current stage.
    pub stage: Id,
    /// When the record entered it.
    pub stage_entered_at: i64,
    /// Key actions of the current stage that are done, with when.
    pub actions: BTreeMap<Id, i64>,
    /// Approvals of the current stage.
    pub approvals: BTreeMap<Id, ApprovalState>,
    /// The sub-flow record the stage waits for.
    pub waiting_for: Option<String>,
    /// Stages the record has entered, in order, each once. Their `requires` stay
    /// required ("requirements grow by stage").
    pub visited: Vec<Id>,
    /// Set when the record reached a terminal stage.
    pub outcome: Option<Id>,
}

/// Where an approval stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalState {
    /// The people who may decide, resolved when the stage was entered, per approver
    /// entry of the definition (for `required`, one approval per entry is needed).
    pub approvers: Vec<Vec<String>>,
    /// Decisions so far.
    pub decisions: Vec<Decision>,
    /// The result.
    pub status: ApprovalStatus,
    /// Whether an automatic approval was sampled for audit.
    pub audited: bool,
}

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Approved (by people or automatically).
    Approved,
    /// Rejected; the reason is in the decisions.
    Rejected,
}

/// One person's decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// Who decided.
    pub user: String,
    /// Yes or no.
    pub approve: bool,
    /// Why (required for a rejection).
    pub reason: Option<String>,
    /// When.
    pub at: i64,
}

/// The record and stage that started a sub-flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParentLink {
    /// The parent record.
    pub record: String,
    /// The parent's stage that started this one.
    pub stage: Id,
    /// Whether the parent waits for this record to finish.
    pub wait: bool,
}

/// When an alert last fired for a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertMark {
    /// When.
    pub at: i64,
    /// The stage the record was in.
    pub stage: Option<Id>,
}

impl Record {
    /// The current stage, if a flow drives the record.
    pub fn stage(&self) -> Option<&Id> {
        self.flow.as_ref().map(|flow| &flow.stage)
    }

    /// The record as rules see it: its fields plus `id`, `owner`, `created_at` (seconds)
    /// and `stage`.
    pub fn facts(&self) -> Map<String, Value> {
        let mut facts = self.fields.clone();
        facts.insert("id".into(), Value::String(self.id.clone()));
        facts.insert("owner".into(), self.owner.clone().map(Value::String).unwrap_or(Value::Null));
        facts.insert("created_at".into(), Value::from(self.created_at / 1000));
        facts.insert(
            "stage".into(),
            self.stage().map(|stage| Value::String(stage.to_string())).unwrap_or(Value::Null),
        );
        facts
    }
}
