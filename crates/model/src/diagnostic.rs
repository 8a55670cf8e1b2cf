//! Diagnostics: every problem found in pack files, with a stable code, a place,
//! a message and a hint. The same values are printed by `stagecraft check`, returned
//! as JSON to editors and CI, and served over HTTP when a reload is refused.

use std::fmt;

use serde::Serialize;

/// How bad a problem is. Errors stop a pack from loading; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The pack cannot be loaded until this is fixed.
    Error,
    /// The pack loads, but something is probably not what its author meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $severity:ident, $title:literal, $explanation:literal;)*) => {
        /// A stable diagnostic code. Codes never change meaning; retired codes are not reused.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = $title] $variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `SC0101`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The severity a problem of this kind has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// A short title, e.g. "unknown key".
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// What the problem means and how it is usually fixed.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explanation,)* }
            }

            /// Looks a code up by its printed form (`SC0101`, case-insensitive).
            pub fn parse(text: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|code| code.as_str().eq_ignore_ascii_case(text))
            }
        }
    };
}

codes! {
    PathNotFound = "SC0001", Error, "path not found",
        "A path given on the command line or listed in a manifest's `contents` does not exist. Check the spelling; paths in `contents` are relative to the `pack.yaml` that lists them.";
    Unreadable = "SC0002", Error, "file cannot be read",
        "The file exists but could not be read (permissions, or it is a special file). The message carries the system's reason.";
    TooLarge = "SC0003", Error, "file too large",
        "Pack files are limited in size so that a mistake (a log or a data dump saved under a pack folder) cannot stall loading. Split the file, or move data out of the pack.";
    NotUtf8 = "SC0004", Error, "file is not UTF-8",
        "Pack files must be UTF-8 text. Editors on Windows sometimes save as GBK/GB2312: save the file again as UTF-8.";
    YamlSyntax = "SC0005", Error, "YAML syntax error",
        "The file is not well-formed YAML. Common causes: a tab used for indentation, a missing space after `:`, an unclosed quote or bracket, or inconsistent indentation.";
    JsonSyntax = "SC0006", Error, "JSON syntax error",
        "The file is not well-formed JSON. Common causes: a trailing comma, a missing comma between entries, single quotes, or a comment (JSON has none).";
    AliasBomb = "SC0007", Error, "YAML aliases expand too much",
        "YAML anchors and aliases (`&a`, `*a`) are expanded when the file is read. The expansion is limited so that a few lines cannot grow into millions of nodes. Write the values out, or use fewer nested aliases.";
    DuplicateKey = "SC0008", Error, "duplicate key",
        "The same key appears twice in one mapping; only one can be meant. Remove or rename one of them.";
    TooDeep = "SC0009", Error, "nesting too deep",
        "Values are nested deeper than the limit (64 levels). Pack files never need that much nesting; the file is probably generated or damaged.";
    UnsupportedYaml = "SC0010", Error, "unsupported YAML feature",
        "Pack files use plain YAML: one document per file, string keys, and no custom tags. Remove the `---` separators between documents, complex keys or `!tags`.";
    UnknownFileKind = "SC0011", Error, "unknown kind of file",
        "Pack files are recognised by their names: `pack.yaml`, `*.flow.yaml`, `*.rules.yaml`, `*.calendar.yaml`, `*.org.yaml`, `*.rhai`, `*.hbs` and form schemas `*.json`. Rename the file, or move it out of the pack's `contents`.";
    EmptyFile = "SC0012", Error, "empty file",
        "The file holds no content. Delete it, or fill it in.";
    NoPackFound = "SC0013", Warning, "no pack files found",
        "The path holds no pack manifest and no pack files, so nothing was checked there.";
    UnknownKey = "SC0101", Error, "unknown key",
        "The key is not part of the format at this place. It is often a typo (the hint suggests the nearest known key) or a key placed at the wrong indentation level. The reference page lists every key.";
    MissingKey = "SC0102", Error, "missing key",
        "A key that must be present here is missing. Add it; the reference page shows an example.";
    WrongType = "SC0103", Error, "wrong type of value",
        "The value has the wrong type: for example a single text where a list is expected (write `[a]` or a `- a` list), or a number in quotes.";
    NotAllowedValue = "SC0104", Error, "value not allowed",
        "The value must be one of a fixed set of words. The message lists them; the hint suggests the nearest.";
    MalformedValue = "SC0105", Error, "malformed value",
        "The value does not have the expected form: ids are lowercase letters, digits, `_` and `-`; durations are like `30m`, `48h`, `7d`; dates are `YYYY-MM-DD`.";
    OutOfRange = "SC0106", Error, "value out of range",
        "The value is too small, too large, too short or too long for this place.";
    NoShapeMatches = "SC0107", Error, "value matches no accepted form",
        "The value can be written in several forms (for example a person as `{role: legal}` or `{manager_of: owner}`), and it matches none of them. The message lists the accepted forms.";
    FormatVersion = "SC0108", Error, "unsupported format version",
        "The manifest's `stagecraft:` key names a pack format version this build does not understand. This build reads version 1.";
    ConflictingKeys = "SC0109", Error, "keys that exclude each other",
        "Exactly one of a set of keys must be given here (for example a condition has either `rule` or `check`, a gate either `script` or `file`).";
    DuplicateId = "SC0201", Error, "duplicate id",
        "Two things of the same kind have the same id. Ids must be unique (stages and actions within a flow; forms, flows, rules, templates, calendars and roles across all loaded packs).";
    UnknownStage = "SC0202", Error, "unknown stage",
        "The stage named here is not a stage of this flow. Check the spelling against the flow's `stages`.";
    UnknownForm = "SC0203", Error, "unknown form",
        "No loaded form has this id. Forms are the `*.json` files in the pack's `contents`; their id is `x-form.id` or the file name.";
    UnknownField = "SC0204", Error, "unknown field",
        "The form has no top-level field of this name. `owner` is always available.";
    UnknownRule = "SC0205", Error, "unknown rule",
        "No gate rule of this id is declared in a `*.rules.yaml` file or as a `.rhai` file of a loaded pack.";
    UnknownTemplate = "SC0206", Error, "unknown template",
        "No template of this id is loaded. Templates are `templates/<id>.<locale>.hbs` files, e.g. `task_assigned.zh-CN.hbs`.";
    UnknownRole = "SC0207", Error, "unknown role",
        "The role is not declared by any loaded pack (`roles:` in `pack.yaml`).";
    UnknownCalendar = "SC0208", Error, "unknown calendar",
        "No `*.calendar.yaml` file of a loaded pack declares this calendar id.";
    UnknownFlow = "SC0209", Error, "unknown flow",
        "No loaded `*.flow.yaml` file has this id.";
    UnknownEscalation = "SC0210", Error, "unknown escalation ladder",
        "No `escalations:` entry of a loaded rules file has this id.";
    UnknownAction = "SC0211", Error, "unknown key action",
        "`after` names a key action that is not in the same stage.";
    ActionOrderCycle = "SC0212", Error, "key actions wait for each other",
        "The `after` lists form a cycle, so none of these actions could ever be done first.";
    UnknownOutcome = "SC0213", Error, "unknown outcome",
        "The sub-flow has no terminal stage with this `outcome`.";
    MissingPack = "SC0214", Error, "required pack missing",
        "The manifest requires a pack that is not loaded, or is loaded in a version the requirement does not accept. Check the paths given to `check`/`serve` and the version requirement.";
    UnknownOrgEntry = "SC0215", Error, "unknown user or department",
        "The org file names a user or department that it does not declare.";
    ReportingCycle = "SC0216", Error, "reporting lines form a cycle",
        "Following `manager` from this user comes back to the same user; reporting lines must end at someone without a manager.";
    UnknownSection = "SC0217", Error, "unknown form section",
        "`x-ui.section` names a section that `x-form.sections` does not declare.";
    DuplicatePack = "SC0218", Error, "pack loaded twice",
        "Two manifests have the same pack name. Each pack must be loaded once.";
    SubflowCycle = "SC0219", Error, "flows start each other in a cycle",
        "Following the sub-flows from this flow leads back to it, so a record would wait for itself.";
    InvalidDuration = "SC0301", Error, "invalid duration",
        "A duration is a number and a unit: `m` minutes, `h` hours, `d` days, `w` weeks (e.g. `48h`).";
    InvalidCron = "SC0302", Error, "invalid cron schedule",
        "A schedule has five fields, `minute hour day-of-month month day-of-week`, e.g. `0 9 * * MON` for Mondays at 09:00.";
    InvalidDate = "SC0303", Error, "invalid date or time",
        "Dates are `YYYY-MM-DD` and must exist in the calendar; working hours are `HH:MM-HH:MM` with the start before the end.";
    InvalidVersion = "SC0304", Error, "invalid version",
        "Pack versions follow semantic versioning (`1.2.0`); requirements are like `^1.0` or `>=1.2, <2`.";
    PolicyMismatch = "SC0305", Error, "setting does not fit the policy",
        "`audit` only makes sense with `policy: auto_approve`, and `auto_approve` needs an `audit` to say how many approvals are sampled.";
    NoStages = "SC0306", Error, "flow cannot start",
        "The initial stage must be a stage of the flow and must not be terminal.";
    MeasureMismatch = "SC0310", Error, "measure does not fit",
        "A flow's `measures` or an org file's `targets` name something that cannot be measured: an `amount` that is not a number field, an `expected_end` that is not a text (date) field, `large_amount` without `amount`, an outcome that is both a success and a failure, a target below zero, or a target on a flow that declares no `amount`.";
    InvalidSchema = "SC0401", Error, "not a valid JSON Schema",
        "The form is not a valid JSON Schema 2020-12 document (for example `type: \"text\"` instead of `\"string\"`, or `required` that is not a list).";
    SchemaCompile = "SC0402", Error, "form schema cannot be compiled",
        "The form is valid JSON Schema but cannot be used: a `pattern` is not a valid regular expression, or a `$ref` points nowhere.";
    RemoteRef = "SC0403", Error, "remote reference",
        "Forms may only refer inside themselves (`#/$defs/...`). Remote `$ref`s are not fetched, so that loading never depends on the network.";
    FormShape = "SC0404", Error, "form is not an object of fields",
        "A form's root must be `\"type\": \"object\"` with `properties`, and field names must be lowercase letters, digits and `_` so rules can use them as `record.<name>`.";
    WidgetMismatch = "SC0405", Warning, "widget does not fit the field",
        "The `x-ui.widget` does not suit the field's type (e.g. `money` on a text field); the generated page falls back to the default input.";
    RhaiSyntax = "SC0501", Error, "rule syntax error",
        "The rhai script does not parse. The message names the problem; scripts are rhai (https://rhai.rs), an expression language close to JavaScript and Rust.";
    UnknownVariable = "SC0502", Error, "unknown variable in rule",
        "Rules see `record`, `previous`, `stage`, `stage_entered_at`, `time_in_stage`, `now`, `actor` and `changed`, plus variables they define with `let`. The hint suggests the nearest name.";
    UnknownFunction = "SC0503", Error, "unknown function in rule",
        "The function is not available to rules. Rules have rhai's basic functions (strings, numbers, arrays, maps) and the host functions listed in the reference page; time, files and `eval` are not available.";
    RuleLimit = "SC0504", Error, "rule exceeds a sandbox limit",
        "The script is too large or nested too deeply for the rules sandbox.";
    TemplateSyntax = "SC0601", Error, "template syntax error",
        "The handlebars template does not parse: usually an unclosed `{{#if}}`/`{{#each}}` block or a stray `}}`.";
    UnescapedOutput = "SC0602", Error, "unescaped output in template",
        "Templates must not use `{{{ }}}` or `{{& }}`: they print values without escaping, and values come from what users typed. Use `{{ }}`.";
    TemplateName = "SC0603", Error, "template file name",
        "Template files are named `<id>.<locale>.hbs` with locale `zh-CN` or `en` (or `<id>.hbs` for zh-CN).";
    UnreachableStage = "SC0701", Warning, "unreachable stage",
        "No transition leads to this stage from the initial stage, so no record can ever get there.";
    StuckStage = "SC0702", Warning, "stage nobody can leave",
        "The stage is not terminal (it has no `outcome`) but no transition leaves it, so records that reach it stay forever.";
    TerminalWithExit = "SC0703", Warning, "terminal stage has a way out",
        "A stage with an `outcome` ends the flow, yet a transition leaves it. If the record may go on, remove the `outcome`.";
    MissingTranslation = "SC0704", Warning, "text without Chinese",
        "Texts shown to people should have a `zh-CN` version; the product speaks Chinese first.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A place in a file: a byte range, and the 1-based line and column (in characters)
/// where it starts and ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file, as the user named it (relative paths stay relative).
    pub file: String,
    /// The first line, from 1.
    pub line: u32,
    /// The first column, from 1, counted in characters.
    pub column: u32,
    /// The last line.
    pub end_line: u32,
    /// The column just after the end.
    pub end_column: u32,
    /// The byte offset where the place starts.
    #[serde(skip)]
    pub start: usize,
    /// The byte offset where the place ends.
    #[serde(skip)]
    pub end: usize,
}

/// A secondary place that helps explain a problem ("first defined here").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Related {
    /// What this place is.
    pub message: String,
    /// Where it is.
    pub location: Location,
}

/// One problem found in pack files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// What is wrong, in one line, lowercase, without a trailing period.
    pub message: String,
    /// Where it is wrong, when it can be placed in a file.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Other places involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A problem of the code's usual severity.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            location: None,
            hint: None,
            related: Vec::new(),
        }
    }

    /// Places the problem.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a related place.
    pub fn related(mut self, message: impl Into<String>, location: Option<Location>) -> Self {
        if let Some(location) = location {
            self.related.push(Related { message: message.into(), location });
        }
        self
    }

    /// Whether this problem stops loading.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error[SC0101]: message`, the one-line form used in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{}:{}:{}: ", location.file, location.line, location.column)?;
        }
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}
