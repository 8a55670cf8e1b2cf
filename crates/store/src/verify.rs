//! Consistency check: rebuild every projection from the primary data and compare.
//!
//! The primary data is the records, the event log, the tasks, the timers, the outbox
//! and the idempotency keys. Everything else is a projection of it and must equal
//! what a rebuild produces. The rebuilt key sets are held in memory, which is fine
//! for a check run by an operator or a test, not for a hot path.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use crate::envelope::decode;
use crate::error::StoreError;
use crate::keys::{KeyReader, printable};
use crate::sled_store::{
    self, EVENTS, FORM_RECORDS, IDEMPOTENCY, INDEX, META, META_NEXT_EVENT, META_NEXT_OUTBOX,
    OPEN_TASKS, OUTBOX, OUTBOX_PENDING, RECORD_EVENTS, RECORDS, TASKS, TIMERS, TIMERS_BY_DUE,
    Trees,
};
use crate::types::{OutboxRow, RecordId, StoredEvent, StoredRecord, StoredTask, StoredTimer};

/// The differences `verify` found; empty when the store is consistent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every difference, grouped by tree.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing differs.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return f.write_str("consistent");
        }
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The tree it is in.
    pub tree: &'static str,
    /// The key, decoded into its parts where it has the layout of its tree
    /// (`form "lead", field "owner", Text("ann"), record "r1"`), else printable with
    /// other bytes as `\xNN`.
    pub key: String,
    /// What is wrong with it.
    pub issue: Issue,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.tree, self.key, self.issue)
    }
}

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// The rebuilt projection has the entry, the live one does not.
    Missing,
    /// The live projection has the entry, the rebuilt one does not.
    Unexpected,
    /// The entry cannot be read or contradicts other data.
    Invalid(String),
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing from the projection"),
            Self::Unexpected => f.write_str("in the projection but not in the primary data"),
            Self::Invalid(reason) => f.write_str(reason),
        }
    }
}

#[derive(Default)]
struct Rebuilt {
    record_events: BTreeSet<Vec<u8>>,
    index: BTreeSet<Vec<u8>>,
    form_records: BTreeSet<Vec<u8>>,
    open_tasks: BTreeSet<Vec<u8>>,
    timers_by_due: BTreeSet<Vec<u8>>,
    outbox_pending: BTreeSet<Vec<u8>>,
}

pub(crate) fn verify(trees: &Trees) -> Result<VerifyReport, StoreError> {
    let mut problems = Vec::new();
    let mut invalid = |tree: &'static str, key: &[u8], reason: String| {
        problems.push(Problem { tree, key: describe(tree, key), issue: Issue::Invalid(reason) });
    };
    let mut rebuilt = Rebuilt::default();

    let mut records = HashSet::new();
    for item in trees.records.iter() {
        let (key, bytes) = item?;
        let record: StoredRecord = match decode(RECORDS, &key, &bytes) {
            Ok(record) => record,
            Err(error) => {
                invalid(RECORDS, &key, error.to_string());
                continue;
            }
        };
        if *key != *sled_store::record_key(&record.id) {
            invalid(RECORDS, &key, format!("holds record {}", record.id));
        }
        for entry in &record.index {
            rebuilt.index.insert(sled_store::index_key(&record.form, entry, &record.id));
        }
        rebuilt.form_records.insert(sled_store::form_record_key(
            &record.form,
            record.created_at_ms,
            &record.id,
        ));
        records.insert(record.id);
    }

    let mut expected_sequence = 1;
    for item in trees.events.iter() {
        let (key, bytes) = item?;
        let event: StoredEvent = match decode(EVENTS, &key, &bytes) {
            Ok(event) => event,
            Err(error) => {
                invalid(EVENTS, &key, error.to_string());
                continue;
            }
        };
        if *key != *sled_store::event_key(event.sequence) {
            invalid(EVENTS, &key, format!("holds event {}", event.sequence));
        }
        if event.sequence != expected_sequence {
            invalid(
                EVENTS,
                &key,
                format!(
                    "the log has a gap: expected sequence {expected_sequence}, found {}",
                    event.sequence
                ),
            );
        }
        expected_sequence = event.sequence.saturating_add(1);
        if !records.contains(&event.record) {
            invalid(EVENTS, &key, format!("is about missing record {}", event.record));
        }
        rebuilt.record_events.insert(sled_store::record_event_key(&event.record, event.sequence));
    }
    let next_event = trees.counter(META_NEXT_EVENT)?;
    if next_event != expected_sequence {
        invalid(
            META,
            META_NEXT_EVENT,
            format!("is {next_event}, the log ends before {expected_sequence}"),
        );
    }

    for item in trees.tasks.iter() {
        let (key, bytes) = item?;
        match decode::<StoredTask>(TASKS, &key, &bytes) {
            Ok(task) => {
                if *key != *sled_store::task_key(&task.id) {
                    invalid(TASKS, &key, format!("holds task {}", task.id));
                }
                if task.open {
                    rebuilt.open_tasks.insert(sled_store::open_task_key(&task.assignee, &task.id));
                }
            }
            Err(error) => invalid(TASKS, &key, error.to_string()),
        }
    }

    for item in trees.timers.iter() {
        let (key, bytes) = item?;
        match decode::<StoredTimer>(TIMERS, &key, &bytes) {
            Ok(timer) => {
                if *key != *sled_store::timer_key(&timer.id) {
                    invalid(TIMERS, &key, format!("holds timer {}", timer.id));
                }
                rebuilt.timers_by_due.insert(sled_store::timer_due_key(timer.due_ms, &timer.id));
            }
            Err(error) => invalid(TIMERS, &key, error.to_string()),
        }
    }

    let mut highest_outbox = 0;
    for item in trees.outbox.iter() {
        let (key, bytes) = item?;
        match decode::<OutboxRow>(OUTBOX, &key, &bytes) {
            Ok(row) => {
                if *key != *sled_store::outbox_key(row.id) {
                    invalid(OUTBOX, &key, format!("holds outbox row {}", row.id));
                }
                highest_outbox = highest_outbox.max(row.id.0);
                if row.delivered_at_ms.is_none() {
                    rebuilt.outbox_pending.insert(sled_store::outbox_key(row.id));
                }
            }
            Err(error) => invalid(OUTBOX, &key, error.to_string()),
        }
    }
    let next_outbox = trees.counter(META_NEXT_OUTBOX)?;
    if next_outbox <= highest_outbox {
        invalid(
            META,
            META_NEXT_OUTBOX,
            format!("is {next_outbox}, but outbox row {highest_outbox} exists"),
        );
    }

    for item in trees.idempotency.iter() {
        let (key, bytes) = item?;
        match decode::<RecordId>(IDEMPOTENCY, &key, &bytes) {
            Ok(record) if !records.contains(&record) => {
                invalid(IDEMPOTENCY, &key, format!("names missing record {record}"));
            }
            Ok(_) => {}
            Err(error) => invalid(IDEMPOTENCY, &key, error.to_string()),
        }
    }

    let projections = [
        (RECORD_EVENTS, &trees.record_events, &rebuilt.record_events),
        (INDEX, &trees.index, &rebuilt.index),
        (FORM_RECORDS, &trees.form_records, &rebuilt.form_records),
        (OPEN_TASKS, &trees.open_tasks, &rebuilt.open_tasks),
        (TIMERS_BY_DUE, &trees.timers_by_due, &rebuilt.timers_by_due),
        (OUTBOX_PENDING, &trees.outbox_pending, &rebuilt.outbox_pending),
    ];
    for (name, tree, expected) in projections {
        compare(name, tree, expected, &mut problems)?;
    }
    Ok(VerifyReport { problems })
}

fn compare(
    name: &'static str,
    tree: &sled::Tree,
    expected: &BTreeSet<Vec<u8>>,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    let mut live = BTreeSet::new();
    for item in tree.iter() {
        let (key, value) = item?;
        if !value.is_empty() {
            problems.push(Problem {
                tree: name,
                key: describe(name, &key),
                issue: Issue::Invalid("a projection row must have an empty value".to_owned()),
            });
        }
        live.insert(key.to_vec());
    }
    for key in expected.difference(&live) {
        problems.push(Problem { tree: name, key: describe(name, key), issue: Issue::Missing });
    }
    for key in live.difference(expected) {
        problems.push(Problem { tree: name, key: describe(name, key), issue: Issue::Unexpected });
    }
    Ok(())
}

/// A key of `tree` in words, for people reading a report.
fn describe(tree: &'static str, key: &[u8]) -> String {
    let mut reader = KeyReader::new(key);
    let parts = match tree {
        RECORDS => reader.text().map(|id| format!("record {id:?}")),
        EVENTS => reader.u64().map(|sequence| format!("event {sequence}")),
        RECORD_EVENTS => reader.text().and_then(|record| {
            reader.u64().map(|sequence| format!("record {record:?}, event {sequence}"))
        }),
        INDEX => (|| {
            let form = reader.text()?;
            let field = reader.text()?;
            let value = reader.value()?;
            let record = reader.text()?;
            Some(format!("form {form:?}, field {field:?}, {value:?}, record {record:?}"))
        })(),
        FORM_RECORDS => (|| {
            let form = reader.text()?;
            let created_at_ms = reader.i64()?;
            let record = reader.text()?;
            Some(format!("form {form:?}, created at {created_at_ms}, record {record:?}"))
        })(),
        TASKS => reader.text().map(|id| format!("task {id:?}")),
        OPEN_TASKS => reader.text().and_then(|assignee| {
            reader.text().map(|task| format!("assignee {assignee:?}, task {task:?}"))
        }),
        TIMERS => reader.text().map(|id| format!("timer {id:?}")),
        TIMERS_BY_DUE => reader.i64().and_then(|due_ms| {
            reader.text().map(|timer| format!("due at {due_ms}, timer {timer:?}"))
        }),
        OUTBOX | OUTBOX_PENDING => reader.u64().map(|id| format!("outbox row {id}")),
        IDEMPOTENCY => reader.text().map(|key| format!("key {key:?}")),
        _ => None,
    };
    match parts.filter(|_| reader.end().is_some()) {
        Some(parts) => parts,
        None => printable(key),
    }
}
