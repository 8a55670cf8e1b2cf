//! `*.flow.yaml`: a state machine that drives the records of one form through
//! stages, with key actions, approvals, gates, SLAs, sub-flows and effects.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Duration, FieldName, Id, Party, Text};
use crate::rules::Channel;

/// One flow file. A flow drives the records of exactly one form.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// The flow's id, unique across all loaded packs (e.g. `sales-pipeline`).
    pub id: Id,
    /// The form whose records this flow drives (e.g. `opportunity`).
    pub form: Id,
    /// The flow's name as people see it.
    pub title: Text,
    /// What the flow is for, shown to operations staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
    /// The business calendar SLAs use unless they name another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Id>,
    /// The stage a new record starts in. Defaults to the first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Id>,
    /// Whether a record of the form starts this flow when it is created (default true).
    /// Flows that only run as sub-flows set this to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_on_create: Option<bool>,
    /// The stages, in the order they are shown (funnels and boards use this order).
    #[schemars(length(min = 1))]
    pub stages: Vec<Stage>,
    /// The moves allowed between stages. A record can only move along a transition.
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// What the dashboard measures on this flow's records: which field holds their
    /// value, which outcomes count as success, which stage pairs are conversions.
    /// Without it the dashboard shows only the stage funnel, SLA breaches and alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measures: Option<Measures>,
    /// How people's use of the system is measured on this flow's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<Box<crate::adoption::Adoption>>,
    /// The thresholds of the process-health audit for this flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Box<crate::adoption::AuditThresholds>>,
}

/// The figures a flow's records feed, named by the pack so that the engine never
/// guesses which field is money or which ending is a success.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Measures {
    /// The number field holding a record's value (e.g. `amount`): revenue, pipeline
    /// coverage and win rate by size are computed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<FieldName>,
    /// The date field saying when an open record is expected to end (e.g.
    /// `expected_close_date`): coverage counts the open records expected in a period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_end: Option<FieldName>,
    /// Outcomes that count as success (e.g. `won`, `signed`, `closed`): win rates and
    /// revenue count them.
    #[serde(default)]
    pub success: Vec<Id>,
    /// Outcomes that count as failure (e.g. `lost`, `rejected`).
    #[serde(default)]
    pub failure: Vec<Id>,
    /// Records whose amount is at or above this are large: the win rate is shown for
    /// large records and for the others apart (e.g. `500000`). Needs `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub large_amount: Option<f64>,
    /// Named stage pairs shown as conversion rates, e.g. lead → first contact as
    /// "lead to opportunity".
    #[serde(default)]
    pub conversions: Vec<ConversionMeasure>,
    /// Whether the dashboard shows the cycle time: from a record's creation to a
    /// success outcome (any outcome when `success` is empty), e.g. the sales cycle
    /// or a contract's approval time.
    #[serde(default)]
    pub cycle_time: bool,
}

/// A conversion rate: of the records that entered `from`, the share that went on to
/// enter `to`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionMeasure {
    /// The conversion's id, unique within the flow (e.g. `lead_to_opportunity`).
    pub id: Id,
    /// Its name as people see it (e.g. `{zh-CN: 线索转商机, en: Lead to opportunity}`).
    pub title: Text,
    /// The stage records start from.
    pub from: Id,
    /// The stage that counts as converted.
    pub to: Id,
}

/// A stage of a flow.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The stage id (e.g. `needs_confirmed`).
    pub id: Id,
    /// The stage name (e.g. `{zh-CN: 需求确认, en: Needs confirmed}`).
    pub title: Text,
    /// A status label shown while a record waits in this stage (e.g. 等待合同审批).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Text>,
    /// Onboarding text: what a newcomer should do in this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<Text>,
    /// Fields that must be filled from this stage on (requirements grow by stage).
    #[serde(default)]
    pub requires: Vec<FieldName>,
    /// Conditions checked before a record may enter this stage.
    #[serde(default)]
    pub entry: Vec<Condition>,
    /// Conditions checked before a record may leave this stage, besides its key
    /// actions and approvals, which must always be complete.
    #[serde(default)]
    pub exit: Vec<Condition>,
    /// Key actions to complete in this stage, with their order.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Approvals needed before the record may leave this stage.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// How long a record may stay in this stage before it escalates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    /// What happens when a record enters the stage.
    #[serde(default)]
    pub on_enter: Vec<Effect>,
    /// What happens when a record leaves the stage.
    #[serde(default)]
    pub on_exit: Vec<Effect>,
    /// A flow started on entry; the record may wait for it to finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subflow: Option<Subflow>,
    /// Marks a terminal stage and names its outcome (`won`, `lost`, `signed`…).
    /// A record in a terminal stage has finished the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Id>,
}

/// A condition of a gate: a named rule, or an inline rhai check with its reason.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A gate rule declared in a `*.rules.yaml` file or a `.rhai` file of a loaded pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Id>,
    /// An inline rhai expression. `true` lets the record pass; `false` stops it with
    /// `reason`; a text or a list of texts stops it with those reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// What people are told when the condition stops them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
}

/// A key action bound to a stage. It is done when its form has been filled for the
/// record, its fields are filled, or its rule says so.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The action id, unique within the flow.
    pub id: Id,
    /// What to do (e.g. 完成首次电话沟通并填写《初次沟通记录》).
    pub title: Text,
    /// How to do it, for newcomers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<Text>,
    /// A form to fill: the action is done once a record of this form links to the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Id>,
    /// Fields of the record to fill: the action is done once all of them have values.
    #[serde(default)]
    pub fields: Vec<FieldName>,
    /// A rhai expression that says when the action is done (with `form`, it is
    /// evaluated against each linked record of that form as `record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_when: Option<String>,
    /// Key actions of the same stage that must be done before this one may be done
    /// ("technical proposal before price quote").
    #[serde(default)]
    pub after: Vec<Id>,
    /// An optional action does not hold the record in the stage.
    #[serde(default)]
    pub optional: bool,
}

/// An approval a stage needs before a record may leave it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approval id, unique within the flow.
    pub id: Id,
    /// What is being approved (e.g. 区域经理审核).
    pub title: Text,
    /// Who approves.
    #[schemars(length(min = 1))]
    pub approvers: Vec<Party>,
    /// How the approvers' answers combine.
    #[serde(default)]
    pub policy: ApprovalPolicy,
    /// With `auto_approve`: the share of approvals sampled for a later audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSampling>,
    /// A form the approver fills with the decision (comments, conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Id>,
    /// How long the approvers have before it escalates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
}

/// How the approvers' answers combine into a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Every listed approver entry must approve (any one person for a role entry).
    #[default]
    Required,
    /// One approval from any of the approvers is enough.
    AnyOf,
    /// Every person the approvers resolve to must approve.
    AllOf,
    /// Approved at once; a sampled share is audited afterwards (see `audit`).
    AutoApprove,
}

/// The sampled audit after an automatic approval.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSampling {
    /// The share of approvals audited, between 0 and 1 (0.2 means one in five).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub rate: f64,
    /// Who audits the sampled approvals.
    pub auditor: Party,
    /// How long the auditor has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Duration>,
}

/// A time limit with an escalation ladder.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// The time allowed, e.g. `48h`.
    pub within: Duration,
    /// Count only working time on this calendar (defaults to the flow's calendar;
    /// without any calendar the time runs around the clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Id>,
    /// The escalation ladder that runs when the time is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Id>,
}

/// A flow started when a record enters a stage, such as contract approval started
/// from negotiation.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subflow {
    /// The flow to start. It runs on a new record of its own form.
    pub flow: Id,
    /// Fields of the new record, each a rhai expression over the parent (`record`).
    #[serde(default)]
    pub set: BTreeMap<FieldName, String>,
    /// Whether the parent waits in this stage until the sub-flow finishes (default true).
    #[serde(default = "default_true")]
    pub wait: bool,
    /// What the parent does when the sub-flow ends with an outcome.
    #[serde(default)]
    pub when_done: Vec<SubflowOutcome>,
}

fn default_true() -> bool {
    true
}

/// A reaction of the parent to an outcome of its sub-flow.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubflowOutcome {
    /// An outcome of the sub-flow (the `outcome` of one of its terminal stages).
    pub outcome: Id,
    /// The stage the parent moves to.
    pub advance: Id,
}

/// A move between two stages.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The stage the move starts from, or `"*"` for every stage that is not terminal.
    pub from: String,
    /// The stage the move goes to.
    pub to: Id,
    /// The button label (defaults to the target stage's title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Text>,
    /// Extra conditions for this move only.
    #[serde(default)]
    pub gate: Vec<Condition>,
    /// Fields that must be filled to take this move (e.g. a loss reason).
    #[serde(default)]
    pub requires: Vec<FieldName>,
    /// Roles allowed to take this move (default: whoever may edit the record).
    #[serde(default)]
    pub roles: Vec<Id>,
}

/// Something that happens when a record enters or leaves a stage. Written as a
/// one-key map such as `- notify: {...}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// Open a task.
    Task(TaskEffect),
    /// Send a notification through the outbox.
    Notify(NotifyEffect),
    /// Set a field of the record.
    Set(SetEffect),
    /// Start another flow without waiting for it.
    StartFlow(StartFlowEffect),
}

/// A task to open: a to-do for a person, with a due time and optionally a form.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskEffect {
    /// The task's name in to-do lists.
    pub title: Text,
    /// Who the task is for.
    pub assignee: Party,
    /// The form that completes the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Id>,
    /// When the task is due, counted from when it opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Duration>,
    /// Count working time on this calendar for `due`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Id>,
}

/// A notification.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyEffect {
    /// Who is told.
    #[schemars(length(min = 1))]
    pub to: Vec<Party>,
    /// The message template (`templates/<id>.<locale>.hbs`).
    pub template: Id,
    /// The channels to use; the default is the in-app inbox.
    #[serde(default)]
    pub channels: Vec<Channel>,
}

/// Sets a field of the record to a literal value or to the result of a rhai expression.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEffect {
    /// The field to set.
    pub field: FieldName,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// A rhai expression whose result is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

/// Starts another flow on a new record, without waiting for it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartFlowEffect {
    /// The flow to start.
    pub flow: Id,
    /// Fields of the new record, each a rhai expression over `record`.
    #[serde(default)]
    pub set: BTreeMap<FieldName, String>,
}
