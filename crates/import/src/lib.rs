//! CSV import of records from other systems, with their history.
//!
//! A [`Mapping`] says which column feeds which field of a form (with defaults found
//! from the headers, [`Mapping::suggest`]), how the other system's stage names become
//! the flow's stages, and which columns hold the dates the records were created,
//! reached their stages and ended. [`dry_run`] reads every row the way the API checks
//! a new record (values converted to the field types, then the form's own validator
//! through the runtime) and reports every problem with its row and column, writing
//! nothing. [`apply`] does the same and, only when no row has a problem, writes all
//! records at once through [`stagecraft_engine::Engine::import`]: one store commit,
//! all or nothing, history not pushed through the flow's gates.

mod convert;
mod mapping;
mod org;
mod rows;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use stagecraft_engine::{Engine, EngineError};

pub use convert::{Unreadable, boolean, convert, date_time, number};
pub use mapping::Mapping;
pub use org::{
    OrgImport, OrgProblem, WriteOrgError, find_org_file, import_org, read_org_file, write_org_file,
};
pub use rows::{RowProblem, Table, distinct_values, read_table};

/// How far an import is, for a progress bar: rows read of the total, then written.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows in the file.
    pub total: AtomicUsize,
    /// Rows read and checked.
    pub checked: AtomicUsize,
    /// Records written (all at once, at the end).
    pub written: AtomicUsize,
}

impl Progress {
    /// `(checked, written, total)` now.
    pub fn snapshot(&self) -> (usize, usize, usize) {
        (
            self.checked.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// What a dry run (or an apply) found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    /// The form.
    pub form: String,
    /// The file's columns.
    pub columns: Vec<String>,
    /// Rows in the file (the header and empty lines not counted).
    pub rows: usize,
    /// Rows without problems.
    pub valid_rows: usize,
    /// Every problem, by row.
    pub problems: Vec<RowProblem>,
    /// The mapping as used: the one given, its gaps filled from the headers.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub mapping: Mapping,
}

impl Report {
    /// Whether the file can be applied.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What an apply wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Applied {
    /// The report (without problems).
    pub report: Report,
    /// The new records' ids, in the file's order.
    pub ids: Vec<String>,
}

/// Why an import did not write.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Some rows have problems: nothing was written.
    #[error("{} problem(s) in the file; nothing was written", .0.problems.len())]
    Problems(Box<Report>),
    /// The engine refused or the store failed: nothing was written.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Who imports and from where.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The user who imports (owner of rows without one, `by` of the events).
    pub actor: Option<&'a str>,
    /// A name for the file or system, kept in each `imported` event unless the
    /// mapping names one.
    pub name: &'a str,
}

/// Reads and checks every row; writes nothing.
pub fn dry_run(
    engine: &Engine,
    source: Source<'_>,
    mapping: &Mapping,
    csv: &[u8],
    progress: &Progress,
) -> Report {
    prepare(engine, source, mapping, csv, progress).0
}

/// Reads and checks every row and, when none has a problem, writes them all in one
/// commit; otherwise writes nothing and answers the report.
pub fn apply(
    engine: &Engine,
    source: Source<'_>,
    mapping: &Mapping,
    csv: &[u8],
    progress: &Progress,
) -> Result<Applied, ImportError> {
    let (report, records) = prepare(engine, source, mapping, csv, progress);
    if !report.is_clean() {
        return Err(ImportError::Problems(Box::new(report)));
    }
    let name = mapping.source.as_deref().unwrap_or(source.name);
    let count = records.len();
    let ids = engine.import(source.actor, name, records)?;
    progress.written.store(count, Ordering::Relaxed);
    Ok(Applied { report, ids })
}

fn prepare(
    engine: &Engine,
    source: Source<'_>,
    mapping: &Mapping,
    csv: &[u8],
    progress: &Progress,
) -> (Report, Vec<stagecraft_engine::ImportedRecord>) {
    let mut report =
        Report { form: mapping.form.clone(), mapping: mapping.clone(), ..Report::default() };
    let table = match read_table(csv) {
        Ok(table) => table,
        Err(problem) => {
            report.problems.push(problem);
            return (report, Vec::new());
        }
    };
    let definitions = engine.definitions();
    let mapping = &mapping.with_defaults(&definitions, &table.headers);
    report.mapping = mapping.clone();
    let org = engine.org();
    let org = match org.read() {
        Ok(org) => org.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let reader = rows::Reader {
        definitions: &definitions,
        org: &org,
        store: engine.store().as_ref(),
        mapping,
        actor: source.actor,
        now: engine.now(),
    };
    let prepared = reader.prepare(&table, progress);
    report.columns = table.headers.clone();
    report.rows = table.rows.len();
    let bad_rows: std::collections::BTreeSet<u64> =
        prepared.problems.iter().map(|problem| problem.row).filter(|row| *row > 1).collect();
    report.valid_rows = if prepared.problems.iter().any(|problem| problem.row <= 1) {
        0
    } else {
        report.rows - bad_rows.len()
    };
    report.problems = prepared.problems;
    (report, prepared.records)
}
