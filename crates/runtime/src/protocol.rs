//! What goes into the runtime and what comes out: commands, events (the history,
//! stored for ever), effects (work for the engine) and refusals (answers that explain
//! why a command was not accepted).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stagecraft_model::{Channel, Id, Text};

/// Something a person or the engine asks of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Create a record of a form (and start the form's flow, if it has one).
    Create {
        /// The form.
        form: Id,
        /// The fields.
        fields: Map<String, Value>,
        /// The owner (defaults to the actor).
        owner: Option<String>,
    },
    /// Change fields. `null` clears a field.
    Update {
        /// The version the change was made against.
        expected_version: u64,
        /// The fields to change.
        fields: Map<String, Value>,
    },
    /// Move to another stage.
    Transition {
        /// The target stage.
        to: Id,
    },
    /// Approve or reject an approval of the current stage.
    Decide {
        /// The approval.
        approval: Id,
        /// Yes or no.
        approve: bool,
        /// Why; required to reject.
        reason: Option<String>,
    },
    /// Ask for an approval again after a rejection.
    Resubmit {
        /// The approval.
        approval: Id,
    },
    /// A record of another form was created with a link to this one (it may complete
    /// a key action). Refused when it would break the order of key actions.
    Linked {
        /// The other record's form.
        form: Id,
        /// The other record, as rules see it.
        record: Map<String, Value>,
    },
    /// The sub-flow this record waits for ended.
    SubflowEnded {
        /// The sub-flow's record.
        child: String,
        /// Its outcome.
        outcome: Id,
    },
    /// A timer this record set went off.
    Timer {
        /// The timer's key, as set.
        key: String,
        /// What it is for.
        timer: TimerKind,
    },
    /// A record that `touches` this one was created or changed: activity, nothing more.
    Touched {
        /// The other record.
        by: String,
    },
    /// A scheduled alert scan reached this record.
    Scan {
        /// The alert.
        alert: Id,
    },
    /// Take a record of a pool form (`x-form.pool`) that has no owner: the actor
    /// becomes its owner. Refused when it has an owner, when its form has no pool, or
    /// when the actor already owns `max_per_owner` records of the form.
    Claim {
        /// How many records of the form the actor owns now (the engine counts them
        /// on the store's `owner` index, so the runtime stays free of queries).
        owned: u64,
    },
    /// Give a record of a pool form back to the pool: its owner is cleared. Who may
    /// do it is the caller's decision (the server lets whoever may change the
    /// record: the owner, their managers, `sees: all` roles).
    Release,
    /// The engine's idle sweep: an owned record of a pool form with no activity for
    /// the pool's `return_after` goes back to the pool, and its former owner is told.
    /// Refused when the record is not idle (yet).
    ReturnIdle,
}

/// Why a timer was set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "timer", rename_all = "snake_case")]
pub enum TimerKind {
    /// The SLA of a stage (or of an approval) ran out.
    SlaExpired {
        /// The stage.
        stage: Id,
        /// When the record entered it (a timer from an earlier visit is ignored).
        entered_at: i64,
        /// The approval, for an approval's SLA.
        approval: Option<Id>,
    },
    /// A step of an escalation ladder is due.
    Escalation {
        /// The stage.
        stage: Id,
        /// When the record entered it.
        entered_at: i64,
        /// The ladder.
        ladder: Id,
        /// The step, from 0.
        step: usize,
    },
}

/// Something that happened to a record. Events are the history: metrics, audits and
/// projections are computed from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The record was created.
    Created {
        /// Its form.
        form: Id,
        /// Its fields.
        fields: Map<String, Value>,
        /// Its owner.
        owner: Option<String>,
    },
    /// Fields changed.
    FieldsChanged {
        /// The values before (absent fields as `null`).
        before: Map<String, Value>,
        /// The values after.
        after: Map<String, Value>,
    },
    /// A flow started on the record.
    FlowStarted {
        /// The flow.
        flow: Id,
        /// The version of its pack.
        pack_version: String,
    },
    /// The record moved to another stage.
    StageChanged {
        /// The flow.
        flow: Id,
        /// From.
        from: Option<Id>,
        /// To.
        to: Id,
        /// How long it stayed in `from` (milliseconds).
        stayed_ms: Option<i64>,
    },
    /// A key action was done.
    ActionDone {
        /// The action.
        action: Id,
    },
    /// An approval was requested.
    ApprovalRequested {
        /// The approval.
        approval: Id,
        /// Who may decide.
        approvers: Vec<String>,
    },
    /// An approval was approved automatically; `audited` tells whether it was sampled.
    ApprovalAutoApproved {
        /// The approval.
        approval: Id,
        /// Whether an audit task was opened.
        audited: bool,
    },
    /// Someone decided.
    ApprovalDecided {
        /// The approval.
        approval: Id,
        /// Who.
        user: String,
        /// Yes or no.
        approve: bool,
        /// Why.
        reason: Option<String>,
        /// The approval's status after the decision.
        status: crate::state::ApprovalStatus,
    },
    /// The record reached a terminal stage.
    FlowEnded {
        /// The flow.
        flow: Id,
        /// The outcome.
        outcome: Id,
        /// How long the record took from its creation to the outcome, in
        /// milliseconds (a contract's cycle time, a repair's resolution time).
        #[serde(default)]
        duration_ms: i64,
    },
    /// A sub-flow was started and (maybe) waited for.
    SubflowStarted {
        /// The flow.
        flow: Id,
        /// Its record.
        child: String,
    },
    /// The sub-flow ended.
    SubflowEnded {
        /// Its record.
        child: String,
        /// Its outcome.
        outcome: Id,
    },
    /// A sub-flow's outcome should have moved the record on, but the gates refused.
    AdvanceRefused {
        /// The stage it should have moved to.
        to: Id,
        /// Why not.
        reasons: Vec<Reason>,
    },
    /// A stage's or approval's SLA ran out.
    SlaBreached {
        /// The stage.
        stage: Id,
        /// The approval, for an approval's SLA.
        approval: Option<Id>,
    },
    /// A step of an escalation ladder ran.
    Escalated {
        /// The ladder.
        ladder: Id,
        /// The step.
        step: usize,
        /// Who was told.
        notified: Vec<String>,
        /// Who took over the stage's open tasks.
        reassigned_to: Option<String>,
    },
    /// An alert fired.
    AlertRaised {
        /// The alert.
        alert: Id,
    },
    /// A record linked to this one counted as activity.
    Touched {
        /// The record.
        by: String,
    },
    /// The record was imported from another system with its own history: it was
    /// created then, reached these stages then, and (maybe) ended. Reports read
    /// these dates instead of the commit time.
    Imported {
        /// Where it came from (a file name, a system's name).
        source: String,
        /// When it was created in the other system (Unix milliseconds).
        created_at: i64,
        /// The stages it reached, in order, each with when.
        stages: Vec<ImportedStage>,
        /// How it ended, if it did.
        ended: Option<ImportedEnd>,
    },
    /// The record changed hands: taken from or given back to the pool.
    OwnerChanged {
        /// The owner before (`None`: it was in the pool).
        from: Option<String>,
        /// The owner after (`None`: it is in the pool now).
        to: Option<String>,
        /// Why.
        why: OwnerChange,
    },
}

/// Why the owner of a record changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerChange {
    /// Someone took the record from the pool.
    Claimed,
    /// Its owner (or someone who may change it) gave it back to the pool.
    Released,
    /// Nobody worked on it for the pool's `return_after`; it went back by itself.
    ReturnedIdle,
}

/// A stage an imported record reached, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedStage {
    /// The stage.
    pub stage: Id,
    /// When (Unix milliseconds).
    pub at: i64,
}

/// How an imported record ended, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedEnd {
    /// The outcome.
    pub outcome: Id,
    /// When (Unix milliseconds).
    pub at: i64,
}

/// Work for the engine, carried out in the same commit as the events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Open a task.
    OpenTask(Task),
    /// Close an open task (the stage was left, the approval decided). A reassigned
    /// task comes again as [`Effect::OpenTask`] with the new assignee.
    CloseTask {
        /// The task's key.
        key: String,
    },
    /// Put a notification in the outbox.
    Notify(Notification),
    /// Set a timer that comes back as [`Command::Timer`].
    SetTimer {
        /// A key that is unique for the timer and the same if set again.
        key: String,
        /// When (Unix milliseconds).
        due: i64,
        /// What it is for.
        kind: TimerKind,
    },
    /// Remove a timer that has not fired.
    CancelTimer {
        /// The timer's key.
        key: String,
    },
    /// Create a record of the flow's form and start the flow on it.
    StartFlow {
        /// The flow.
        flow: Id,
        /// The new record's id (allocated by the runtime so the parent can name it).
        child: String,
        /// Its fields.
        fields: Map<String, Value>,
        /// Its owner.
        owner: Option<String>,
        /// Whether the parent waits for it.
        wait: bool,
    },
    /// Tell the parent record that this sub-flow ended.
    NotifyParent {
        /// The parent.
        parent: String,
        /// The outcome.
        outcome: Id,
    },
    /// Mark records as active (a record that `touches` them was created or changed);
    /// the engine runs [`Command::Touched`] on each.
    Touch {
        /// The records.
        records: Vec<String>,
    },
}

/// A task: a to-do for a person or a role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// A key that says what the task is for (`<record>/<stage>/<kind>/<id>`), so the
    /// same task is not opened twice and the tasks of a stage can be closed together.
    pub key: String,
    /// The record it concerns.
    pub record: String,
    /// What to do.
    pub title: Text,
    /// The user who must do it.
    pub assignee: Option<String>,
    /// Or anyone holding this role.
    pub role: Option<Id>,
    /// The form that completes it.
    pub form: Option<Id>,
    /// When it is due.
    pub due: Option<i64>,
    /// Why it exists.
    pub kind: TaskKind,
}

/// Why a task exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaskKind {
    /// A key action to do.
    Action {
        /// The action.
        action: Id,
    },
    /// An approval to decide.
    Approval {
        /// The approval.
        approval: Id,
    },
    /// An automatic approval sampled for audit.
    Audit {
        /// The approval.
        approval: Id,
    },
    /// Opened by a stage's `task` effect.
    Stage,
    /// Opened by an alert.
    Alert {
        /// The alert.
        alert: Id,
    },
}

/// A notification for the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The record it is about.
    pub record: String,
    /// The users to tell.
    pub to: Vec<String>,
    /// The template.
    pub template: Id,
    /// The channels.
    pub channels: Vec<Channel>,
    /// Why (an alert id, `escalation`, a stage id).
    pub cause: String,
}

/// Why a command was not accepted, in words people can act on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    /// What kind of obstacle: `field`, `condition`, `action`, `approval`, `subflow`,
    /// `role`, `transition`, `order`.
    pub kind: String,
    /// The field, action, approval or rule concerned.
    pub subject: Option<String>,
    /// The message, in Chinese.
    pub message_zh: String,
    /// The message, in English.
    pub message_en: String,
}

impl Reason {
    pub(crate) fn new(
        kind: &str,
        subject: Option<&str>,
        zh: impl Into<String>,
        en: impl Into<String>,
    ) -> Self {
        Reason {
            kind: kind.to_owned(),
            subject: subject.map(str::to_owned),
            message_zh: zh.into(),
            message_en: en.into(),
        }
    }
}

/// A command that was not accepted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The fields do not fit the form (or the stage's required fields are missing).
    #[error("the record is not valid: {}", summary(.0))]
    Invalid(Vec<FieldProblem>),
    /// The gates of the move are closed.
    #[error("the move is not allowed: {}", reasons(.0))]
    Gated(Vec<Reason>),
    /// The command was made against an older version of the record.
    #[error("the record changed since version {expected}; it is now at version {actual}")]
    Stale {
        /// The version named by the command.
        expected: u64,
        /// The current version.
        actual: u64,
    },
    /// The command names something that does not exist or does not apply.
    #[error("{0}")]
    NotApplicable(String),
    /// The actor may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A rule failed while running (it was stopped by the sandbox or hit an error).
    #[error("{0}")]
    RuleFailed(String),
}

/// A problem with one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    /// JSON pointer of the field (`/amount`).
    pub pointer: String,
    /// The message, in Chinese.
    pub message_zh: String,
    /// The message, in English.
    pub message_en: String,
}

fn summary(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.pointer, p.message_en))
        .collect::<Vec<_>>()
        .join("; ")
}

fn reasons(reasons: &[Reason]) -> String {
    reasons.iter().map(|r| r.message_en.clone()).collect::<Vec<_>>().join("; ")
}
