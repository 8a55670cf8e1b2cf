//! Backups: a portable JSON-lines file of the primary data, and restoring one.
//!
//! The file holds logical rows, not sled's bytes, so that another backend can read it
//! and so that a restore does not depend on sled's on-disk format. Projections are
//! not written: a restore rebuilds them from the rows, exactly as `verify` would.
//!
//! Layout: a header line, then one line per row, primary trees in a fixed order
//! (records, events, tasks, timers, outbox, idempotency), each in key order:
//!
//! ```text
//! {"format":"stagecraft-store-backup","version":1,"next_event_sequence":3,"next_outbox_id":2,"counts":{"records":1,…}}
//! {"record":{"id":"r1","form":"lead","version":1,…}}
//! {"event":{"sequence":1,"record":"r1",…}}
//! {"idempotency":{"key":"req-1","record":"r1"}}
//! ```
//!
//! The counts in the header let a restore notice a truncated file.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::envelope::{decode, encode};
use crate::error::StoreError;
use crate::keys::KeyReader;
use crate::sled_store::{
    self, EVENTS, IDEMPOTENCY, META_FORMAT, META_IMPORTING, META_NEXT_EVENT, META_NEXT_OUTBOX,
    OUTBOX, RECORDS, STORE_FORMAT, TASKS, TIMERS, Trees, corrupt_key,
};
use crate::types::{
    ExportSummary, IndexValue, OutboxRow, RecordId, StoredEvent, StoredRecord, StoredTask,
    StoredTimer,
};

const BACKUP_FORMAT: &str = "stagecraft-store-backup";
/// The version of the backup file layout this build writes and reads.
const BACKUP_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    next_event_sequence: u64,
    next_outbox_id: u64,
    counts: ExportSummary,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Row {
    Record(StoredRecord),
    Event(StoredEvent),
    Task(StoredTask),
    Timer(StoredTimer),
    Outbox(OutboxRow),
    Idempotency { key: String, record: RecordId },
}

pub(crate) fn export(trees: &Trees, out: &mut dyn Write) -> Result<ExportSummary, StoreError> {
    let len = |tree: &sled::Tree| tree.len() as u64;
    let counts = ExportSummary {
        records: len(&trees.records),
        events: len(&trees.events),
        tasks: len(&trees.tasks),
        timers: len(&trees.timers),
        outbox: len(&trees.outbox),
        idempotency: len(&trees.idempotency),
    };
    let header = Header {
        format: BACKUP_FORMAT.to_owned(),
        version: BACKUP_VERSION,
        next_event_sequence: trees.counter(META_NEXT_EVENT)?,
        next_outbox_id: trees.counter(META_NEXT_OUTBOX)?,
        counts,
    };
    let mut out = std::io::BufWriter::new(out);
    write_line(&mut out, &header)?;
    write_rows::<StoredRecord>(&mut out, RECORDS, &trees.records, Row::Record)?;
    write_rows::<StoredEvent>(&mut out, EVENTS, &trees.events, Row::Event)?;
    write_rows::<StoredTask>(&mut out, TASKS, &trees.tasks, Row::Task)?;
    write_rows::<StoredTimer>(&mut out, TIMERS, &trees.timers, Row::Timer)?;
    write_rows::<OutboxRow>(&mut out, OUTBOX, &trees.outbox, Row::Outbox)?;
    for item in trees.idempotency.iter() {
        let (key, bytes) = item?;
        let text = KeyReader::new(&key).text().ok_or_else(|| corrupt_key(IDEMPOTENCY, &key))?;
        let record = decode(IDEMPOTENCY, &key, &bytes)?;
        write_line(&mut out, &Row::Idempotency { key: text, record })?;
    }
    out.flush()?;
    Ok(counts)
}

fn write_rows<T: serde::de::DeserializeOwned>(
    out: &mut impl Write,
    name: &'static str,
    tree: &sled::Tree,
    row: impl Fn(T) -> Row,
) -> Result<(), StoreError> {
    for item in tree.iter() {
        let (key, bytes) = item?;
        write_line(out, &row(decode(name, &key, &bytes)?))?;
    }
    Ok(())
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub(crate) fn import(
    db: &sled::Db,
    trees: &Trees,
    backup: impl BufRead,
) -> Result<ExportSummary, StoreError> {
    trees.meta.insert(META_IMPORTING, &[1][..])?;
    trees.meta.insert(META_FORMAT, &STORE_FORMAT.to_be_bytes()[..])?;

    let mut lines = backup.lines();
    let header_line = lines
        .next()
        .ok_or(StoreError::Backup { line: 1, reason: "the file is empty".to_owned() })??;
    let header: Header = serde_json::from_str(&header_line).map_err(|error| {
        StoreError::Backup { line: 1, reason: format!("not a backup header: {error}") }
    })?;
    if header.format != BACKUP_FORMAT {
        return Err(StoreError::Backup {
            line: 1,
            reason: format!("not a stagecraft store backup (format {:?})", header.format),
        });
    }
    if header.version != BACKUP_VERSION {
        return Err(StoreError::UnsupportedFormat {
            what: "the backup".to_owned(),
            found: header.version,
            supported: BACKUP_VERSION,
        });
    }

    let mut restore =
        Restore { trees, counts: ExportSummary::default(), last_sequence: 0, highest_outbox: 0 };
    for (number, line) in lines.enumerate() {
        let line_number = number + 2;
        let line = line?;
        let row: Row = serde_json::from_str(&line)
            .map_err(|error| StoreError::Backup { line: line_number, reason: error.to_string() })?;
        restore.row(row).map_err(|error| match error {
            RowError::Bad(reason) => StoreError::Backup { line: line_number, reason },
            RowError::Store(error) => error,
        })?;
    }

    let file_end = |reason: String| StoreError::Backup { line: 0, reason };
    if restore.counts != header.counts {
        return Err(file_end(format!(
            "the header promises {:?} but the file holds {:?}; it may be truncated",
            header.counts, restore.counts
        )));
    }
    if header.next_event_sequence != restore.last_sequence + 1 {
        return Err(file_end(format!(
            "the header says the next event is {}, but the last event is {}",
            header.next_event_sequence, restore.last_sequence
        )));
    }
    if header.next_outbox_id <= restore.highest_outbox {
        return Err(file_end(format!(
            "the header says the next outbox row is {}, but row {} exists",
            header.next_outbox_id, restore.highest_outbox
        )));
    }
    trees.meta.insert(META_NEXT_EVENT, &header.next_event_sequence.to_be_bytes()[..])?;
    trees.meta.insert(META_NEXT_OUTBOX, &header.next_outbox_id.to_be_bytes()[..])?;
    // Everything must be on disk before the marker goes, or a crash could leave a
    // store that opens but misses rows.
    db.flush()?;
    trees.meta.remove(META_IMPORTING)?;
    db.flush()?;
    Ok(restore.counts)
}

enum RowError {
    Bad(String),
    Store(StoreError),
}

impl From<StoreError> for RowError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<sled::Error> for RowError {
    fn from(error: sled::Error) -> Self {
        Self::Store(error.into())
    }
}

struct Restore<'a> {
    trees: &'a Trees,
    counts: ExportSummary,
    last_sequence: u64,
    highest_outbox: u64,
}

const EMPTY: &[u8] = &[];

impl Restore<'_> {
    fn record_exists(&self, id: &RecordId) -> Result<bool, RowError> {
        Ok(self.trees.records.contains_key(sled_store::record_key(id))?)
    }

    fn once(
        tree: &sled::Tree,
        key: Vec<u8>,
        what: &str,
        id: &dyn std::fmt::Debug,
    ) -> Result<(), RowError> {
        if tree.contains_key(key)? {
            return Err(RowError::Bad(format!("{what} {id:?} appears twice")));
        }
        Ok(())
    }

    fn put(tree: &sled::Tree, key: Vec<u8>, value: &impl Serialize) -> Result<(), RowError> {
        tree.insert(key, encode(value)?)?;
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<(), RowError> {
        let trees = self.trees;
        match row {
            Row::Record(record) => {
                if self.record_exists(&record.id)? {
                    return Err(RowError::Bad(format!("record {} appears twice", record.id)));
                }
                for entry in &record.index {
                    if matches!(entry.value, IndexValue::Float(number) if !number.is_finite()) {
                        return Err(RowError::Bad(format!(
                            "record {} has a non-finite index value",
                            record.id
                        )));
                    }
                    trees
                        .index
                        .insert(sled_store::index_key(&record.form, entry, &record.id), EMPTY)?;
                }
                trees.form_records.insert(
                    sled_store::form_record_key(&record.form, record.created_at_ms, &record.id),
                    EMPTY,
                )?;
                Self::put(&trees.records, sled_store::record_key(&record.id), &record)?;
                self.counts.records += 1;
            }
            Row::Event(event) => {
                if event.sequence != self.last_sequence + 1 {
                    return Err(RowError::Bad(format!(
                        "event {} follows event {}; the log must have no gaps",
                        event.sequence, self.last_sequence
                    )));
                }
                if !self.record_exists(&event.record)? {
                    return Err(RowError::Bad(format!(
                        "event {} is about record {}, which is not in the backup before it",
                        event.sequence, event.record
                    )));
                }
                trees
                    .record_events
                    .insert(sled_store::record_event_key(&event.record, event.sequence), EMPTY)?;
                Self::put(&trees.events, sled_store::event_key(event.sequence), &event)?;
                self.last_sequence = event.sequence;
                self.counts.events += 1;
            }
            Row::Task(task) => {
                Self::once(&trees.tasks, sled_store::task_key(&task.id), "task", &task.id)?;
                if task.open {
                    trees
                        .open_tasks
                        .insert(sled_store::open_task_key(&task.assignee, &task.id), EMPTY)?;
                }
                Self::put(&trees.tasks, sled_store::task_key(&task.id), &task)?;
                self.counts.tasks += 1;
            }
            Row::Timer(timer) => {
                Self::once(&trees.timers, sled_store::timer_key(&timer.id), "timer", &timer.id)?;
                trees
                    .timers_by_due
                    .insert(sled_store::timer_due_key(timer.due_ms, &timer.id), EMPTY)?;
                Self::put(&trees.timers, sled_store::timer_key(&timer.id), &timer)?;
                self.counts.timers += 1;
            }
            Row::Outbox(row) => {
                Self::once(&trees.outbox, sled_store::outbox_key(row.id), "outbox row", &row.id)?;
                if row.delivered_at_ms.is_none() {
                    trees.outbox_pending.insert(sled_store::outbox_key(row.id), EMPTY)?;
                }
                self.highest_outbox = self.highest_outbox.max(row.id.0);
                Self::put(&trees.outbox, sled_store::outbox_key(row.id), &row)?;
                self.counts.outbox += 1;
            }
            Row::Idempotency { key, record } => {
                let id = sled_store::idempotency_key(&key);
                Self::once(&trees.idempotency, id, "idempotency key", &key)?;
                if !self.record_exists(&record)? {
                    return Err(RowError::Bad(format!(
                        "idempotency key {key:?} names record {record}, which is not in the backup"
                    )));
                }
                Self::put(&trees.idempotency, sled_store::idempotency_key(&key), &record)?;
                self.counts.idempotency += 1;
            }
        }
        Ok(())
    }
}
