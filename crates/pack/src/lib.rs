//! Loading and checking packs.
//!
//! [`check`] reads every pack file under the given paths, validates each against its
//! format, resolves every reference across all loaded packs (stages, forms, fields,
//! rules, templates, roles, calendars, flows), compiles every form schema and every
//! rule, and returns **all** problems at once, each with a file, line, column, stable
//! code and hint. [`load`] does the same and, when there are no errors, returns the
//! validated [`Definitions`] the engine runs.
//!
//! Invariant: nothing here panics on input, and nothing is half-loaded: either every
//! file is accepted or the caller gets the diagnostics and keeps what it had.

mod check;
mod definitions;
mod discover;
mod forms;
mod load;
mod schedule;
mod source;
mod structure;
mod tree;

use std::path::PathBuf;

pub use definitions::{
    Calendar, CompiledForm, Definitions, FieldInfo, PackInfo, ScriptKey, TemplateSet,
};
pub use discover::{FileKind, classify};
pub use schedule::{Schedule, parse_schedule};
pub use source::{MAX_FILE_BYTES, SourceFile};
pub use stagecraft_model::{Code, Diagnostic, Location, Severity};
pub use tree::{MAX_ALIAS_NODES, MAX_DEPTH};

/// A YAML settings file that is not a pack file (such as the notification settings),
/// read with the pack files' parser and limits, so that its mistakes can be shown at
/// their line and column too.
#[derive(Debug)]
pub struct YamlFile {
    /// The content.
    pub value: serde_json::Value,
    /// The file as read.
    pub source: SourceFile,
    document: tree::Document,
}

impl YamlFile {
    /// Parses the file; a syntax mistake is a diagnostic at its place.
    pub fn parse(source: SourceFile) -> Result<YamlFile, Diagnostic> {
        let document = tree::parse_yaml(&source)?;
        Ok(YamlFile { value: document.value.clone(), source, document })
    }

    /// Where the value at a JSON pointer sits (`""` is the whole file).
    pub fn value_location(&self, pointer: &str) -> Location {
        self.source.location(self.document.value_range(pointer))
    }

    /// Where the key that names the value at a JSON pointer sits.
    pub fn key_location(&self, pointer: &str) -> Location {
        self.source.location(self.document.key_range(pointer))
    }
}

/// The outcome of checking: every problem, plus what was read.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The files read, for showing source lines next to problems.
    pub sources: Vec<SourceFile>,
    /// The packs found.
    pub packs: Vec<PackInfo>,
}

impl Report {
    /// How many errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count()
    }

    /// How many warnings.
    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    /// Whether any problem stops loading.
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// The source a diagnostic points into.
    pub fn source(&self, name: &str) -> Option<&SourceFile> {
        self.sources.iter().find(|source| source.name == name)
    }
}

/// Checks the packs and pack files under the given paths.
pub fn check(paths: &[PathBuf]) -> Report {
    load::run(paths).1
}

/// Loads the packs under the given paths. On any error, returns the report and no
/// definitions; warnings alone do not stop loading.
pub fn load(paths: &[PathBuf]) -> Result<(Definitions, Report), Report> {
    match load::run(paths) {
        (Some(definitions), report) if !report.has_errors() => Ok((definitions, report)),
        (_, report) => Err(report),
    }
}
