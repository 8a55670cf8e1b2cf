//! `*.rules.yaml`: named gates, alerts, escalation ladders and scheduled reports.
//! A pack made only of rule files is a rule pack that integrators can add.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Duration, FieldName, Id, Party, Text};
use crate::flow::{NotifyEffect, TaskEffect};

/// One rules file. Every section is optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// Named gate rules that stages and transitions refer to with `rule: <id>`.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// Alerts: when something happens (or on a schedule) and a condition holds, tell
    /// people and open a task.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// Escalation ladders that SLAs refer to.
    #[serde(default)]
    pub escalations: Vec<EscalationLadder>,
    /// Reports sent on a schedule.
    #[serde(default)]
    pub reports: Vec<Report>,
    /// Relationship graphs (客户关系图谱).
    #[serde(default)]
    pub graphs: Vec<crate::graph::Graph>,
}

/// A named gate rule: answers yes or no, with reasons people can read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// The rule id, unique across loaded packs.
    pub id: Id,
    /// What the rule checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Text>,
    /// The rhai script. `true` passes; `false` stops with `reason`; a text or list of
    /// texts stops with those reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// A `.rhai` file holding the script, relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The reason shown when the script answers `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
}

/// An alert rule (rule centre).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// The alert id, unique across loaded packs.
    pub id: Id,
    /// The alert's name (e.g. 商机停滞).
    pub title: Text,
    /// The form whose records the alert watches.
    pub form: Id,
    /// When the alert is considered.
    pub trigger: Trigger,
    /// A rhai expression; the alert fires when it is `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Who is told, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyEffect>,
    /// The task that opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskEffect>,
    /// How often the alert may fire for one record.
    #[serde(default)]
    pub repeat: AlertRepeat,
    /// How serious the alert is, for boards and reports.
    #[serde(default)]
    pub severity: Severity,
}

/// When an alert is considered: on an event, or on a cron schedule.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// An event on a record of the alert's form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<TriggerEvent>,
    /// With `event: field_changed`: the field to watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<FieldName>,
    /// With `event: stage_changed`: the flow to watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Id>,
    /// A cron schedule (`minute hour day month weekday`, e.g. `0 9 * * *`); at each
    /// tick every record of the form is scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The calendar whose time zone the schedule uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Id>,
}

/// Record events an alert can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerEvent {
    /// A record was created.
    Created,
    /// A field changed; `previous` holds the value before.
    FieldChanged,
    /// A record moved to another stage.
    StageChanged,
}

/// How often an alert may fire for the same record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertRepeat {
    /// Every time the trigger and condition hold.
    Always,
    /// Once while the record stays in the same stage (the default).
    #[default]
    OncePerStage,
    /// At most once per this duration.
    Every(Duration),
}

/// How serious an alert is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention (the default).
    #[default]
    Warning,
    /// Needs action now.
    Critical,
}

/// Where a notification is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The in-app inbox.
    Inbox,
    /// E-mail.
    Email,
    /// 企业微信 (WeCom) group robot.
    Wecom,
    /// 钉钉 (DingTalk) robot.
    Dingtalk,
    /// 飞书 (Feishu/Lark) bot.
    Feishu,
    /// A signed generic webhook.
    Webhook,
}

/// An escalation ladder: after X, tell Y and reassign to Z; after more, the next step.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationLadder {
    /// The ladder id, unique across loaded packs.
    pub id: Id,
    /// The ladder's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Text>,
    /// The steps, in order; each `after` counts from when the SLA ran out.
    #[schemars(length(min = 1))]
    pub steps: Vec<EscalationStep>,
}

/// A step of an escalation ladder.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// How long after the SLA ran out this step runs (`0m` for at once).
    pub after: Duration,
    /// Who is told.
    #[serde(default)]
    pub notify: Vec<Party>,
    /// The message template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Id>,
    /// The channels to use.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Who takes over the open task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassign: Option<Party>,
}

/// A report sent on a schedule (e.g. every Monday 09:00).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The report id.
    pub id: Id,
    /// The report's name.
    pub title: Text,
    /// A cron schedule (`minute hour day month weekday`).
    pub schedule: String,
    /// The calendar whose time zone the schedule uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Id>,
    /// Who receives it.
    #[schemars(length(min = 1))]
    pub to: Vec<Party>,
    /// The template that renders it.
    pub template: Id,
    /// The flow whose figures it summarizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Id>,
    /// The period it covers (e.g. `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Duration>,
}
