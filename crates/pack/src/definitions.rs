//! The validated definitions: what the engine runs once every check has passed.
//! References in here are known to resolve, scripts are compiled and schemas are
//! built, so the engine never meets a half-valid definition at request time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::Value;
use stagecraft_model::{
    Alert, EscalationLadder, FieldName, FlowFile, FormMeta, Gate, Id, OrgFile,
    Report as ScheduledReport, RoleDecl, Text,
};
use stagecraft_rules::{CompiledRule, Sandbox};

/// A loaded pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// The pack's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its manifest, as named in messages.
    pub manifest: String,
}

/// Where an embedded script sits, so the engine can find its compiled form: the
/// owner (`flow:<id>`, `gate:<id>`, `alert:<id>`, `escalation:<id>`, `report:<id>`)
/// and the JSON pointer of the script within the owner's definition
/// (e.g. `/stages/2/exit/0/check`). Gate scripts use an empty pointer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptKey {
    /// `flow:<id>`, `gate:<id>`, `alert:<id>`, ….
    pub owner: String,
    /// The pointer within the owner.
    pub pointer: String,
}

impl ScriptKey {
    /// A key from its parts.
    pub fn new(owner: impl Into<String>, pointer: impl Into<String>) -> Self {
        ScriptKey { owner: owner.into(), pointer: pointer.into() }
    }
}

/// What the engine needs to know about one field of a form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldInfo {
    /// The JSON type(s) the schema declares (`string`, `number`, …).
    pub types: Vec<String>,
    /// The linked form, for `x-link` fields.
    pub link: Option<Id>,
    /// Whether the field holds uploaded files: `x-file` on the field (one file id) or on
    /// its `items` (a list of file ids).
    pub file: bool,
    /// Whether the field holds a user id.
    pub user: bool,
    /// Whether the field is indexed.
    pub indexed: bool,
    /// The field label.
    pub label: Option<Text>,
}

/// A form, compiled.
#[derive(Clone)]
pub struct CompiledForm {
    /// The form id.
    pub id: Id,
    /// The pack it comes from.
    pub pack: Option<String>,
    /// `x-form`.
    pub meta: FormMeta,
    /// The schema as written.
    pub schema: Value,
    /// The compiled validator (linear-time regular expressions, no remote references).
    pub validator: Arc<jsonschema::Validator>,
    /// Top-level fields by name.
    pub fields: BTreeMap<FieldName, FieldInfo>,
    /// Fields the schema requires from the start.
    pub required: BTreeSet<FieldName>,
}

impl std::fmt::Debug for CompiledForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledForm")
            .field("id", &self.id)
            .field("pack", &self.pack)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A business calendar, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// The calendar id.
    pub id: Id,
    /// Offset of local time from UTC, in minutes.
    pub utc_offset_minutes: i32,
    /// Working spans per weekday, Monday first, in minutes after midnight.
    pub week: [Vec<(u16, u16)>; 7],
    /// Days off.
    pub holidays: BTreeSet<NaiveDate>,
    /// Weekend days that are working days.
    pub makeup_workdays: BTreeSet<NaiveDate>,
    /// Working spans on make-up days.
    pub makeup_hours: Vec<(u16, u16)>,
}

/// A template in each language it is written in (`zh-CN`, `en`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateSet {
    /// Locale → handlebars source.
    pub sources: BTreeMap<String, String>,
}

/// Everything loaded from a set of packs, validated.
#[derive(Debug)]
pub struct Definitions {
    /// The packs.
    pub packs: Vec<PackInfo>,
    /// Forms by id.
    pub forms: BTreeMap<Id, CompiledForm>,
    /// Flows by id.
    pub flows: BTreeMap<Id, FlowFile>,
    /// Named gate rules by id.
    pub gates: BTreeMap<Id, Gate>,
    /// Alerts, in file order.
    pub alerts: Vec<Alert>,
    /// Escalation ladders by id.
    pub escalations: BTreeMap<Id, EscalationLadder>,
    /// Scheduled reports.
    pub reports: Vec<ScheduledReport>,
    /// Relationship graphs, in file order.
    pub graphs: Vec<stagecraft_model::Graph>,
    /// Calendars by id.
    pub calendars: BTreeMap<Id, Calendar>,
    /// Templates by id.
    pub templates: BTreeMap<Id, TemplateSet>,
    /// Roles declared by the packs.
    pub roles: BTreeMap<Id, RoleDecl>,
    /// The organisation from the packs' org files (merged).
    pub org: OrgFile,
    /// Every compiled script, by where it sits.
    pub scripts: BTreeMap<ScriptKey, CompiledRule>,
    /// The sandbox the scripts were compiled for.
    pub sandbox: Arc<Sandbox>,
}

impl Definitions {
    /// The compiled script at a place.
    pub fn script(&self, owner: &str, pointer: &str) -> Option<&CompiledRule> {
        self.scripts.get(&ScriptKey::new(owner, pointer))
    }
}
