//! The pack file formats, version 1: the raw serde types that mirror the files
//! operations staff write, and the diagnostic vocabulary used to report mistakes.
//!
//! Nothing here reads files or checks references: `stagecraft-pack` does that and
//! turns these raw types into validated definitions. The types double as the source
//! of the JSON Schemas editors use (see [`format_schemas`]).

mod adoption;
mod calendar;
mod common;
mod diagnostic;
mod flow;
mod form;
mod graph;
mod manifest;
mod org;
mod rules;
mod schemas;

pub use adoption::{Adoption, AdoptionTargets, AuditThresholds};
pub use calendar::{CalendarFile, DateEntry, DateRange, HoursSpan, WeekHours};
pub use common::{
    DURATION_PATTERN, Duration, FIELD_PATTERN, FieldName, ID_PATTERN, Id, LocalizedText, Party,
    Text,
};
pub use diagnostic::{Code, Diagnostic, Location, Related, Severity};
pub use flow::{
    Action, Approval, ApprovalPolicy, AuditSampling, Condition, Effect, FlowFile, NotifyEffect,
    SetEffect, Sla, Stage, StartFlowEffect, Subflow, SubflowOutcome, TaskEffect, Transition,
};
pub use flow::{ConversionMeasure, Measures};
pub use form::{
    FeedbackRules, FileUpload, FormMeta, FormSection, Link, PoolRules, UiHints, UserPick, Widget,
};
pub use graph::{ActivityDate, CrossSell, Dormancy, Graph, Purchases};
pub use manifest::{PackManifest, PackRequirement, RoleDecl, RoleSees};
pub use org::{Department, Locale, OrgFile, Target, User};
pub use rules::{
    Alert, AlertRepeat, Channel, EscalationLadder, EscalationStep, Gate, Report, RulesFile,
    Severity as AlertSeverity, Trigger, TriggerEvent,
};
pub use schemas::{FORMAT_VERSION, FormatSchema, format_schemas};
