//! The mapping: which CSV column feeds which form field, and how another system's
//! stage names, dates and outcomes become the flow's. Written as JSON or YAML, or
//! built by the import page's form; every part has a default found by matching the
//! file's column headers to the form's field ids and labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stagecraft_model::Id;
use stagecraft_pack::{CompiledForm, Definitions, SourceFile, YamlFile};

/// How the columns of a CSV file become records of a form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The form the rows become records of (the API and the command line name it
    /// too, so a mapping file may leave it out).
    #[serde(default)]
    pub form: String,
    /// For each form field, the column (its header) it comes from.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// For link fields, the fields of the linked form a cell is looked up by (indexed
    /// fields; default: the link's `search` fields that the linked form indexes). A
    /// cell holding a record id is taken as it is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub link_keys: BTreeMap<String, Vec<String>>,
    /// The column with the owner: a user id, name or e-mail of the org. Rows without
    /// one are owned by `default_owner`, else (for a form with a pool) by nobody:
    /// they are in the pool, else by whoever imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The owner of rows whose owner cell is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_owner: Option<String>,
    /// The column with the creation date in the other system (default: the time
    /// of the import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The column with the stage (flow forms): a stage id, a stage title, or a name
    /// from `stage_names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The other system's stage names, each with the flow's stage id it means.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_names: BTreeMap<String, String>,
    /// For stages of the flow, the column with the date the record reached them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_dates: BTreeMap<String, String>,
    /// The column with the outcome (a terminal stage's outcome, its stage id or
    /// title, or a name from `stage_names`); it overrides the stage column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The column with the date the record ended (default: the date of its last
    /// stage, else its creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    /// Where the records come from, stored with each `imported` event (default: the
    /// file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The offset of the file's local times from UTC, in minutes (default 480,
    /// China Standard Time); dates with an explicit offset keep theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
}

/// Headers that name the owner, the creation date, the stage, the outcome and the
/// closing date when a mapping does not say.
const OWNER_HEADERS: &[&str] = &["owner", "负责人", "所有人", "归属人"];
const CREATED_HEADERS: &[&str] =
    &["created", "created_at", "created at", "创建时间", "创建日期", "建立日期"];
const STAGE_HEADERS: &[&str] = &["stage", "阶段", "当前阶段", "状态"];
const OUTCOME_HEADERS: &[&str] = &["outcome", "结果", "结局"];
const CLOSED_HEADERS: &[&str] =
    &["closed", "closed_at", "closed at", "关闭时间", "关闭日期", "结束日期", "结束时间"];

impl Mapping {
    /// Reads a mapping written as JSON or YAML.
    pub fn parse(name: &str, text: &str) -> Result<Mapping, String> {
        let value = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => value,
            Err(_) => {
                let source = SourceFile::new(name, name, text.to_owned());
                YamlFile::parse(source).map_err(|diagnostic| diagnostic.message.clone())?.value
            }
        };
        serde_json::from_value(value).map_err(|error| format!("{name}: {error}"))
    }

    /// This mapping with the gaps filled from the headers ([`Mapping::suggest`]): what
    /// it names wins; a field or column mapped to `""` is left out.
    pub fn with_defaults(&self, definitions: &Definitions, headers: &[String]) -> Mapping {
        let suggested = Mapping::suggest(definitions, &self.form, headers);
        let mut mapping = self.clone();
        let used: Vec<String> = mapping.columns.values().cloned().collect();
        for (field, column) in suggested.columns {
            if !mapping.columns.contains_key(&field) && !used.contains(&column) {
                mapping.columns.insert(field, column);
            }
        }
        mapping.columns.retain(|_, column| !column.trim().is_empty());
        for (mine, theirs) in [
            (&mut mapping.owner, suggested.owner),
            (&mut mapping.created, suggested.created),
            (&mut mapping.stage, suggested.stage),
            (&mut mapping.outcome, suggested.outcome),
            (&mut mapping.closed, suggested.closed),
        ] {
            if mine.is_none() {
                *mine = theirs;
            }
            if mine.as_deref().is_some_and(|column| column.trim().is_empty()) {
                *mine = None;
            }
        }
        for (stage, column) in suggested.stage_dates {
            mapping.stage_dates.entry(stage).or_insert(column);
        }
        mapping.stage_dates.retain(|_, column| !column.trim().is_empty());
        mapping
    }

    /// The mapping for `form` that the headers suggest: a column whose header is a
    /// field id or one of its labels (zh-CN or en, case and spaces ignored) feeds
    /// that field; the usual names of owner, creation date, stage, outcome and
    /// closing date find those columns, and a stage's id or title followed by a date
    /// word (`won date`, `成交日期`) its date column.
    pub fn suggest(definitions: &Definitions, form: &str, headers: &[String]) -> Mapping {
        let mut mapping = Mapping { form: form.to_owned(), ..Mapping::default() };
        let Some(compiled) = definitions.forms.get(&Id::from(form)) else { return mapping };
        let find = |names: &[&str]| {
            headers.iter().find(|header| names.iter().any(|name| same(header, name))).cloned()
        };
        for (field, info) in &compiled.fields {
            if info.file {
                continue;
            }
            let mut names = vec![field.as_str().to_owned()];
            if let Some(label) = &info.label {
                names.push(label.get("zh-CN").to_owned());
                names.push(label.get("en").to_owned());
            }
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            if let Some(column) = find(&names) {
                mapping.columns.insert(field.as_str().to_owned(), column);
            }
        }
        let taken =
            |mapping: &Mapping, column: &String| mapping.columns.values().any(|c| c == column);
        mapping.owner = find(OWNER_HEADERS).filter(|c| !taken(&mapping, c));
        mapping.created = find(CREATED_HEADERS).filter(|c| !taken(&mapping, c));
        if let Some(flow) = flow_of(definitions, form) {
            mapping.stage = find(STAGE_HEADERS).filter(|c| !taken(&mapping, c));
            mapping.outcome = find(OUTCOME_HEADERS).filter(|c| !taken(&mapping, c));
            mapping.closed = find(CLOSED_HEADERS).filter(|c| !taken(&mapping, c));
            for stage in &flow.stages {
                let mut names = Vec::new();
                for base in [stage.id.as_str(), stage.title.get("zh-CN"), stage.title.get("en")] {
                    for suffix in [" date", "_at", " at", "日期", "时间"] {
                        names.push(format!("{base}{suffix}"));
                    }
                }
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                if let Some(column) = find(&names).filter(|c| !taken(&mapping, c)) {
                    mapping.stage_dates.insert(stage.id.to_string(), column);
                }
            }
        }
        mapping
    }
}

/// Whether a header names `name`: case, spaces and the header's surrounding
/// punctuation ignored.
pub(crate) fn same(header: &str, name: &str) -> bool {
    let clean = |text: &str| -> String {
        text.trim()
            .trim_end_matches(['*', ':', '：'])
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    !name.trim().is_empty() && clean(header) == clean(name)
}

/// The flow a new record of `form` starts, if any.
pub(crate) fn flow_of<'d>(
    definitions: &'d Definitions,
    form: &str,
) -> Option<&'d stagecraft_model::FlowFile> {
    definitions
        .flows
        .values()
        .find(|flow| flow.form.as_str() == form && flow.start_on_create.unwrap_or(true))
}

/// The form's schema of one top-level field.
pub(crate) fn field_schema<'f>(
    form: &'f CompiledForm,
    field: &str,
) -> Option<&'f serde_json::Value> {
    form.schema.get("properties").and_then(|properties| properties.get(field))
}
