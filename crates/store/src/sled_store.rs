//! The sled backend: the trees, opening and format checks, the commit transaction, reads.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::envelope::{decode, encode};
use crate::error::StoreError;
use crate::group_commit::GroupCommit;
use crate::keys::{KeyBuf, KeyReader, printable};
use crate::types::{
    Commit, ExportSummary, IndexEntry, IndexValue, OutboxId, OutboxRow, Page, Receipt, RecordId,
    StoredEvent, StoredRecord, StoredTask, StoredTimer, TaskChange, TaskId, TimerChange, TimerId,
};
use crate::verify::VerifyReport;
use crate::{Store, backup, verify};

/// The version of the store's layout (trees, keys and envelopes) this build reads and
/// writes; kept in `meta/format`.
pub const STORE_FORMAT: u32 = 1;

pub(crate) const RECORDS: &str = "records";
pub(crate) const EVENTS: &str = "events";
pub(crate) const RECORD_EVENTS: &str = "record_events";
pub(crate) const INDEX: &str = "index";
pub(crate) const FORM_RECORDS: &str = "form_records";
pub(crate) const TASKS: &str = "tasks";
pub(crate) const OPEN_TASKS: &str = "open_tasks_by_assignee";
pub(crate) const TIMERS: &str = "timers";
pub(crate) const TIMERS_BY_DUE: &str = "timers_by_due";
pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const OUTBOX_PENDING: &str = "outbox_pending";
pub(crate) const IDEMPOTENCY: &str = "idempotency";
pub(crate) const META: &str = "meta";

pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_NEXT_EVENT: &[u8] = b"next_event";
pub(crate) const META_NEXT_OUTBOX: &[u8] = b"next_outbox";
/// Present while a restore runs; a store that still has it is refused at open.
pub(crate) const META_IMPORTING: &[u8] = b"importing";

const EMPTY: &[u8] = &[];

/// When `commit` returns relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// D2: `commit` returns after a flush (write and `fsync`) that began after the
    /// commit; concurrent commits share flushes.
    #[default]
    Flush,
    /// D0: `commit` returns as soon as the transaction is applied in memory; sled
    /// still writes its log in the background about every 500 ms. For tests and
    /// benchmarks.
    None,
}

/// How to open a [`SledStore`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// When commits return; [`Durability::Flush`] by default.
    pub durability: Durability,
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Commits applied since the store was opened.
    pub commits: u64,
    /// Group-commit flushes since the store was opened (0 with [`Durability::None`]).
    pub flushes: u64,
}

/// The trees of one store.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub(crate) records: sled::Tree,
    pub(crate) events: sled::Tree,
    pub(crate) record_events: sled::Tree,
    pub(crate) index: sled::Tree,
    pub(crate) form_records: sled::Tree,
    pub(crate) tasks: sled::Tree,
    pub(crate) open_tasks: sled::Tree,
    pub(crate) timers: sled::Tree,
    pub(crate) timers_by_due: sled::Tree,
    pub(crate) outbox: sled::Tree,
    pub(crate) outbox_pending: sled::Tree,
    pub(crate) idempotency: sled::Tree,
    pub(crate) meta: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            records: db.open_tree(RECORDS)?,
            events: db.open_tree(EVENTS)?,
            record_events: db.open_tree(RECORD_EVENTS)?,
            index: db.open_tree(INDEX)?,
            form_records: db.open_tree(FORM_RECORDS)?,
            tasks: db.open_tree(TASKS)?,
            open_tasks: db.open_tree(OPEN_TASKS)?,
            timers: db.open_tree(TIMERS)?,
            timers_by_due: db.open_tree(TIMERS_BY_DUE)?,
            outbox: db.open_tree(OUTBOX)?,
            outbox_pending: db.open_tree(OUTBOX_PENDING)?,
            idempotency: db.open_tree(IDEMPOTENCY)?,
            meta: db.open_tree(META)?,
        })
    }

    /// Every tree but `meta`, with its name.
    pub(crate) fn data_trees(&self) -> [(&'static str, &sled::Tree); 12] {
        [
            (RECORDS, &self.records),
            (EVENTS, &self.events),
            (RECORD_EVENTS, &self.record_events),
            (INDEX, &self.index),
            (FORM_RECORDS, &self.form_records),
            (TASKS, &self.tasks),
            (OPEN_TASKS, &self.open_tasks),
            (TIMERS, &self.timers),
            (TIMERS_BY_DUE, &self.timers_by_due),
            (OUTBOX, &self.outbox),
            (OUTBOX_PENDING, &self.outbox_pending),
            (IDEMPOTENCY, &self.idempotency),
        ]
    }

    pub(crate) fn counter(&self, name: &'static [u8]) -> Result<u64, StoreError> {
        read_counter(name, self.meta.get(name)?.as_deref())
    }
}

/// A sled database holding one store.
#[derive(Debug)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    trees: Trees,
    /// Commits hold it shared while their transaction runs; export and verify hold it
    /// exclusively, so they see one state without a snapshot facility in sled.
    gate: RwLock<()>,
    /// The flusher of [`Durability::Flush`]; dropping it stops and joins the thread.
    group: Option<GroupCommit>,
    commits: AtomicU64,
}

impl SledStore {
    /// Opens (or creates) the store in the directory `path`, durable by default.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens (or creates) the store in `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let is_new = match std::fs::read_dir(&path) {
            Ok(mut entries) => entries.next().is_none(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
            Err(error) => return Err(error.into()),
        };
        if is_new {
            create(&path)?;
        }
        let db = open_db(&path)?;
        let trees = Trees::open(&db)?;
        check_format(&path, &db, &trees)?;
        Self::from_parts(path, db, trees, options)
    }

    pub(crate) fn from_parts(
        path: PathBuf,
        db: sled::Db,
        trees: Trees,
        options: &OpenOptions,
    ) -> Result<Self, StoreError> {
        let group = match options.durability {
            Durability::Flush => Some(GroupCommit::start(db.clone())?),
            Durability::None => None,
        };
        Ok(Self { path, db, trees, gate: RwLock::new(()), group, commits: AtomicU64::new(0) })
    }

    /// Restores a backup written by [`Store::export`] into `path`, which must not
    /// exist or be an empty directory, and opens it. Projections are rebuilt from the
    /// restored rows. If the restore fails halfway the directory is left marked as
    /// incomplete and cannot be opened; delete it and restore again.
    pub fn import(
        path: impl AsRef<Path>,
        options: &OpenOptions,
        backup: impl std::io::BufRead,
    ) -> Result<(Self, ExportSummary), StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Ok(mut entries) = std::fs::read_dir(&path) {
            if entries.next().is_some() {
                return Err(StoreError::NotEmpty(path));
            }
        }
        let db = sled::Config::new().path(&path).open()?;
        let trees = Trees::open(&db)?;
        let summary = backup::import(&db, &trees, backup)?;
        let store = Self::from_parts(path, db, trees, options)?;
        Ok((store, summary))
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits and flushes so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            flushes: self.group.as_ref().map_or(0, GroupCommit::flushes),
        }
    }

    /// The sequence number the next event will get.
    pub fn next_event_sequence(&self) -> Result<u64, StoreError> {
        self.trees.counter(META_NEXT_EVENT)
    }

    /// Writes everything to disk now, whatever the durability mode.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn shared_gate(&self) -> RwLockReadGuard<'_, ()> {
        // The gate guards no data of its own, so a poisoned gate is still a gate.
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn exclusive_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&self, commit: &Commit, plan: &Plan) -> Result<Receipt, StoreError> {
        let t = &self.trees;
        let _gate = self.shared_gate();
        (
            &t.records,
            &t.events,
            &t.record_events,
            &t.index,
            &t.form_records,
            &t.tasks,
            &t.open_tasks,
            &t.timers,
            &t.timers_by_due,
            &t.outbox,
            &t.outbox_pending,
            &t.idempotency,
            &t.meta,
        )
            .transaction(
                |(
                    records,
                    events,
                    record_events,
                    index,
                    form_records,
                    tasks,
                    open_tasks,
                    timers,
                    timers_by_due,
                    outbox,
                    outbox_pending,
                    idempotency,
                    meta,
                )| {
                    let tx = Tx {
                        records,
                        events,
                        record_events,
                        index,
                        form_records,
                        tasks,
                        open_tasks,
                        timers,
                        timers_by_due,
                        outbox,
                        outbox_pending,
                        idempotency,
                        meta,
                    };
                    tx.apply(commit, plan)
                },
            )
            .map_err(|error| match error {
                TransactionError::Abort(error) => error,
                TransactionError::Storage(error) => StoreError::Storage(error),
            })
    }

    fn get<T: serde::de::DeserializeOwned>(
        tree_name: &'static str,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        tree.get(key)?.map(|bytes| decode(tree_name, key, &bytes)).transpose()
    }

    /// Ids from the keys of `tree` that start with `prefix`, after `start`, read with
    /// `parse` from the rest of the key.
    fn scan_ids<T>(
        tree_name: &'static str,
        tree: &sled::Tree,
        prefix: &[u8],
        start: Bound<Vec<u8>>,
        limit: usize,
        parse: impl Fn(&mut KeyReader<'_>) -> Option<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        for item in tree.range((start, Bound::Unbounded)) {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            let mut reader = KeyReader::new(rest);
            let parsed = parse(&mut reader)
                .and_then(|id| reader.end().map(|()| id))
                .ok_or_else(|| corrupt_key(tree_name, &key))?;
            found.push(parsed);
            if found.len() == limit {
                break;
            }
        }
        Ok(found)
    }
}

impl Store for SledStore {
    fn commit(&self, commit: Commit) -> Result<Receipt, StoreError> {
        let plan = Plan::new(&commit)?;
        let receipt = self.apply(&commit, &plan)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        if let Some(group) = &self.group {
            group.wait_durable()?;
        }
        Ok(receipt)
    }

    fn record(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        Self::get(RECORDS, &self.trees.records, &record_key(id))
    }

    fn records_by_index(
        &self,
        form: &str,
        field: &str,
        value: &IndexValue,
        page: Page,
    ) -> Result<Vec<RecordId>, StoreError> {
        let prefix = KeyBuf::new().text(form).text(field).value(value).into_vec();
        let start = match &page.after {
            Some(after) => Bound::Excluded(
                KeyBuf::new().text(form).text(field).value(value).text(after.as_str()).into_vec(),
            ),
            None => Bound::Included(prefix.clone()),
        };
        Self::scan_ids(INDEX, &self.trees.index, &prefix, start, page.limit, |key| {
            key.text().map(RecordId::new)
        })
    }

    fn records_of_form(&self, form: &str, page: Page) -> Result<Vec<RecordId>, StoreError> {
        let prefix = KeyBuf::new().text(form).into_vec();
        let start = match &page.after {
            Some(after) => {
                let record = self
                    .record(after)?
                    .filter(|record| record.form == form)
                    .ok_or_else(|| StoreError::UnknownRecord(after.clone()))?;
                Bound::Excluded(form_record_key(form, record.created_at_ms, after))
            }
            None => Bound::Included(prefix.clone()),
        };
        Self::scan_ids(FORM_RECORDS, &self.trees.form_records, &prefix, start, page.limit, |key| {
            key.i64()?;
            key.text().map(RecordId::new)
        })
    }

    fn events_of(&self, record: &RecordId) -> Result<Vec<StoredEvent>, StoreError> {
        let prefix = KeyBuf::new().text(record.as_str()).into_vec();
        let sequences = Self::scan_ids(
            RECORD_EVENTS,
            &self.trees.record_events,
            &prefix,
            Bound::Included(prefix.clone()),
            usize::MAX,
            |key| key.u64(),
        )?;
        let mut found = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            if let Some(event) = Self::get(EVENTS, &self.trees.events, &event_key(sequence))? {
                found.push(event);
            }
        }
        Ok(found)
    }

    fn events_since(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut found = Vec::new();
        let Some(first) = after_sequence.checked_add(1) else {
            return Ok(found);
        };
        for item in self.trees.events.range(event_key(first)..).take(limit) {
            let (key, bytes) = item?;
            found.push(decode(EVENTS, &key, &bytes)?);
        }
        Ok(found)
    }

    fn open_tasks_of(&self, assignee: &str) -> Result<Vec<StoredTask>, StoreError> {
        let prefix = KeyBuf::new().text(assignee).into_vec();
        let ids = Self::scan_ids(
            OPEN_TASKS,
            &self.trees.open_tasks,
            &prefix,
            Bound::Included(prefix.clone()),
            usize::MAX,
            |key| key.text().map(TaskId::new),
        )?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(task) = self.task(&id)? {
                if task.open && task.assignee == assignee {
                    found.push(task);
                }
            }
        }
        Ok(found)
    }

    fn task(&self, id: &TaskId) -> Result<Option<StoredTask>, StoreError> {
        Self::get(TASKS, &self.trees.tasks, &task_key(id))
    }

    fn timer(&self, id: &TimerId) -> Result<Option<StoredTimer>, StoreError> {
        Self::get(TIMERS, &self.trees.timers, &timer_key(id))
    }

    fn timers_due(&self, until_ms: i64, limit: usize) -> Result<Vec<StoredTimer>, StoreError> {
        let mut found = Vec::new();
        for item in self.trees.timers_by_due.iter() {
            if found.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let mut reader = KeyReader::new(&key);
            let (due_ms, id) = reader
                .i64()
                .and_then(|due| reader.text().map(|id| (due, TimerId::new(id))))
                .ok_or_else(|| corrupt_key(TIMERS_BY_DUE, &key))?;
            if due_ms > until_ms {
                break;
            }
            if let Some(timer) = self.timer(&id)?.filter(|timer| timer.due_ms == due_ms) {
                found.push(timer);
            }
        }
        Ok(found)
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut found = Vec::new();
        for item in self.trees.outbox_pending.iter() {
            if found.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let id = KeyReader::new(&key).u64().ok_or_else(|| corrupt_key(OUTBOX_PENDING, &key))?;
            if let Some(row) = self.outbox_row(OutboxId(id))? {
                if row.delivered_at_ms.is_none() {
                    found.push(row);
                }
            }
        }
        Ok(found)
    }

    fn outbox_row(&self, id: OutboxId) -> Result<Option<OutboxRow>, StoreError> {
        Self::get(OUTBOX, &self.trees.outbox, &outbox_key(id))
    }

    fn idempotent(&self, key: &str) -> Result<Option<RecordId>, StoreError> {
        Self::get(IDEMPOTENCY, &self.trees.idempotency, &idempotency_key(key))
    }

    fn export(&self, out: &mut dyn std::io::Write) -> Result<ExportSummary, StoreError> {
        let _gate = self.exclusive_gate();
        backup::export(&self.trees, out)
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        let _gate = self.exclusive_gate();
        verify::verify(&self.trees)
    }
}

/// Creates a new store in a sibling directory and renames it into place.
///
/// sled writes its configuration file without making the write atomic, so a process
/// killed while sled creates a database can leave a directory sled refuses to open.
/// Building the store elsewhere and renaming it means `path` either does not exist
/// or holds a complete, empty store. An empty directory counts as not existing.
fn create(path: &Path) -> Result<(), StoreError> {
    let not_a_store = |reason: &str| StoreError::NotAStore {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| not_a_store("the path must end in a directory name"))?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    // Leftovers of creations that were killed; nothing else uses these names.
    let prefix = format!(".{name}.creating-");
    for entry in std::fs::read_dir(&parent)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    let staging = parent.join(format!("{prefix}{}", std::process::id()));
    {
        let db = sled::Config::new().path(&staging).open()?;
        let trees = Trees::open(&db)?;
        check_format(&staging, &db, &trees)?;
    }
    match std::fs::rename(&staging, path) {
        // (Renaming over an empty directory replaces it.)
        Ok(()) => {}
        // Someone else created it meanwhile: theirs wins.
        Err(_) if path.join("conf").exists() => std::fs::remove_dir_all(&staging)?,
        Err(error) => return Err(error.into()),
    }
    // The rename is durable only once the directory holding it is synced.
    std::fs::File::open(&parent)?.sync_all()?;
    Ok(())
}

fn check_format(path: &Path, db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    if trees.meta.get(META_IMPORTING)?.is_some() {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            reason: "a restore into it did not finish; restore again into an empty directory"
                .to_owned(),
        });
    }
    match trees.meta.get(META_FORMAT)? {
        Some(bytes) => {
            let found =
                <[u8; 4]>::try_from(bytes.as_ref()).map(u32::from_be_bytes).map_err(|_| {
                    StoreError::NotAStore {
                        path: path.to_path_buf(),
                        reason: "the format marker is malformed".to_owned(),
                    }
                })?;
            if found != STORE_FORMAT {
                return Err(StoreError::UnsupportedFormat {
                    what: format!("the store at {}", path.display()),
                    found,
                    supported: STORE_FORMAT,
                });
            }
            Ok(())
        }
        None => {
            for (name, tree) in trees.data_trees() {
                if !tree.is_empty() {
                    return Err(StoreError::NotAStore {
                        path: path.to_path_buf(),
                        reason: format!("tree {name} has data but there is no format marker"),
                    });
                }
            }
            trees.meta.insert(META_FORMAT, &STORE_FORMAT.to_be_bytes()[..])?;
            db.flush()?;
            Ok(())
        }
    }
}

pub(crate) fn read_counter(name: &'static [u8], bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    match bytes {
        // Counters start at 1 so that 0 can mean "before the first" in `events_since`.
        None => Ok(1),
        Some(bytes) => {
            <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt {
                tree: META,
                key: printable(name),
                reason: "a counter must be 8 bytes".to_owned(),
            })
        }
    }
}

pub(crate) fn corrupt_key(tree: &'static str, key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: printable(key),
        reason: "the key does not have the layout of its tree".to_owned(),
    }
}

pub(crate) fn record_key(id: &RecordId) -> Vec<u8> {
    KeyBuf::new().text(id.as_str()).into_vec()
}

pub(crate) fn event_key(sequence: u64) -> Vec<u8> {
    KeyBuf::new().u64(sequence).into_vec()
}

pub(crate) fn record_event_key(record: &RecordId, sequence: u64) -> Vec<u8> {
    KeyBuf::new().text(record.as_str()).u64(sequence).into_vec()
}

pub(crate) fn index_key(form: &str, entry: &IndexEntry, record: &RecordId) -> Vec<u8> {
    KeyBuf::new().text(form).text(&entry.field).value(&entry.value).text(record.as_str()).into_vec()
}

pub(crate) fn form_record_key(form: &str, created_at_ms: i64, record: &RecordId) -> Vec<u8> {
    KeyBuf::new().text(form).i64(created_at_ms).text(record.as_str()).into_vec()
}

pub(crate) fn task_key(id: &TaskId) -> Vec<u8> {
    KeyBuf::new().text(id.as_str()).into_vec()
}

pub(crate) fn open_task_key(assignee: &str, id: &TaskId) -> Vec<u8> {
    KeyBuf::new().text(assignee).text(id.as_str()).into_vec()
}

pub(crate) fn timer_key(id: &TimerId) -> Vec<u8> {
    KeyBuf::new().text(id.as_str()).into_vec()
}

pub(crate) fn timer_due_key(due_ms: i64, id: &TimerId) -> Vec<u8> {
    KeyBuf::new().i64(due_ms).text(id.as_str()).into_vec()
}

pub(crate) fn outbox_key(id: OutboxId) -> Vec<u8> {
    KeyBuf::new().u64(id.0).into_vec()
}

pub(crate) fn idempotency_key(key: &str) -> Vec<u8> {
    KeyBuf::new().text(key).into_vec()
}

/// What can be worked out about a commit before the transaction: validation, keys
/// and each record's index entries without duplicates. The transaction closure may
/// run more than once, so it should do as little as possible.
struct Plan {
    records: Vec<PlannedRecord>,
}

struct PlannedRecord {
    key: Vec<u8>,
    index: Vec<(IndexEntry, Vec<u8>)>,
}

impl Plan {
    fn new(commit: &Commit) -> Result<Self, StoreError> {
        let invalid = |reason: String| Err(StoreError::InvalidCommit(reason));
        let mut seen = HashSet::new();
        let mut records = Vec::with_capacity(commit.records.len());
        for write in &commit.records {
            if write.id.as_str().is_empty() {
                return invalid("a record id is empty".to_owned());
            }
            if write.form.is_empty() {
                return invalid(format!("record {} has an empty form", write.id));
            }
            if !seen.insert(&write.id) {
                return invalid(format!("record {} is written twice", write.id));
            }
            let mut keys = HashSet::new();
            let mut index = Vec::with_capacity(write.index.len());
            for entry in &write.index {
                if entry.field.is_empty() {
                    return invalid(format!(
                        "record {} has an index entry without field",
                        write.id
                    ));
                }
                if let IndexValue::Float(number) = entry.value {
                    if !number.is_finite() {
                        return invalid(format!(
                            "record {} has a non-finite number in index field {}",
                            write.id, entry.field
                        ));
                    }
                }
                let key = index_key(&write.form, entry, &write.id);
                if keys.insert(key.clone()) {
                    index.push((entry.clone(), key));
                }
            }
            records.push(PlannedRecord { key: record_key(&write.id), index });
        }
        for change in &commit.tasks {
            let id = match change {
                TaskChange::Upsert(task) => &task.id,
                TaskChange::Close(id) => id,
            };
            if id.as_str().is_empty() {
                return invalid("a task id is empty".to_owned());
            }
        }
        for change in &commit.timers {
            let id = match change {
                TimerChange::Add(timer) => &timer.id,
                TimerChange::Remove(id) => id,
            };
            if id.as_str().is_empty() {
                return invalid("a timer id is empty".to_owned());
            }
        }
        Ok(Self { records })
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(error: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(error)
}

// Borrowing twins of the stored types, so that a transaction that runs more than once
// does not clone documents each time; they serialize exactly like the owned types.
#[derive(Serialize)]
struct RecordOut<'a> {
    id: &'a RecordId,
    form: &'a str,
    version: u64,
    created_at_ms: i64,
    updated_at_ms: i64,
    value: &'a Value,
    index: Vec<&'a IndexEntry>,
}

#[derive(Serialize)]
struct EventOut<'a> {
    sequence: u64,
    record: &'a RecordId,
    kind: &'a str,
    at_ms: i64,
    data: &'a Value,
}

#[derive(Serialize)]
struct TaskOut<'a> {
    id: &'a TaskId,
    assignee: &'a str,
    due_ms: Option<i64>,
    open: bool,
    data: &'a Value,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(Serialize)]
struct TimerOut<'a> {
    id: &'a TimerId,
    due_ms: i64,
    data: &'a Value,
}

#[derive(Serialize)]
struct OutboxOut<'a> {
    id: OutboxId,
    created_at_ms: i64,
    delivered_at_ms: Option<i64>,
    data: &'a Value,
}

/// The transactional views of all trees.
struct Tx<'a> {
    records: &'a TransactionalTree,
    events: &'a TransactionalTree,
    record_events: &'a TransactionalTree,
    index: &'a TransactionalTree,
    form_records: &'a TransactionalTree,
    tasks: &'a TransactionalTree,
    open_tasks: &'a TransactionalTree,
    timers: &'a TransactionalTree,
    timers_by_due: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    outbox_pending: &'a TransactionalTree,
    idempotency: &'a TransactionalTree,
    meta: &'a TransactionalTree,
}

impl Tx<'_> {
    fn get<T: serde::de::DeserializeOwned>(
        tree_name: &'static str,
        tree: &TransactionalTree,
        key: &[u8],
    ) -> TxResult<Option<T>> {
        match tree.get(key)? {
            Some(bytes) => decode(tree_name, key, &bytes).map(Some).map_err(abort),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(tree: &TransactionalTree, key: Vec<u8>, value: &T) -> TxResult<()> {
        let bytes = encode(value).map_err(abort)?;
        tree.insert(key, bytes)?;
        Ok(())
    }

    fn counter(&self, name: &'static [u8]) -> TxResult<u64> {
        read_counter(name, self.meta.get(name)?.as_deref()).map_err(abort)
    }

    fn set_counter(&self, name: &'static [u8], value: u64) -> TxResult<()> {
        self.meta.insert(name, &value.to_be_bytes()[..])?;
        Ok(())
    }

    fn record_exists(&self, id: &RecordId) -> TxResult<bool> {
        Ok(self.records.get(record_key(id))?.is_some())
    }

    fn apply(&self, commit: &Commit, plan: &Plan) -> TxResult<Receipt> {
        // First, so that a retried request is told it was applied, not that its
        // expected versions are stale.
        if let Some(claim) = &commit.idempotency {
            let key = idempotency_key(&claim.key);
            if let Some(record) = Self::get::<RecordId>(IDEMPOTENCY, self.idempotency, &key)? {
                return Err(abort(StoreError::AlreadyApplied { key: claim.key.clone(), record }));
            }
        }
        let mut receipt = Receipt::default();
        for (write, planned) in commit.records.iter().zip(&plan.records) {
            let old: Option<StoredRecord> = Self::get(RECORDS, self.records, &planned.key)?;
            let actual = old.as_ref().map(|record| record.version);
            if actual != write.expected_version {
                return Err(abort(StoreError::Conflict {
                    id: write.id.clone(),
                    expected: write.expected_version,
                    actual,
                }));
            }
            if let Some(old) = &old {
                if old.form != write.form {
                    return Err(abort(StoreError::FormMismatch {
                        id: write.id.clone(),
                        stored: old.form.clone(),
                        given: write.form.clone(),
                    }));
                }
                for entry in &old.index {
                    self.index.remove(index_key(&old.form, entry, &write.id))?;
                }
            }
            for (_, key) in &planned.index {
                self.index.insert(key.clone(), EMPTY)?;
            }
            let version = actual.map_or(1, |version| version + 1);
            let created_at_ms = match &old {
                Some(old) => old.created_at_ms,
                None => {
                    self.form_records
                        .insert(form_record_key(&write.form, commit.at_ms, &write.id), EMPTY)?;
                    commit.at_ms
                }
            };
            let stored = RecordOut {
                id: &write.id,
                form: &write.form,
                version,
                created_at_ms,
                updated_at_ms: commit.at_ms,
                value: &write.value,
                index: planned.index.iter().map(|(entry, _)| entry).collect(),
            };
            Self::put(self.records, planned.key.clone(), &stored)?;
            receipt.versions.push((write.id.clone(), version));
        }

        if !commit.events.is_empty() {
            let mut sequence = self.counter(META_NEXT_EVENT)?;
            for event in &commit.events {
                if !self.record_exists(&event.record)? {
                    return Err(abort(StoreError::UnknownRecord(event.record.clone())));
                }
                let stored = EventOut {
                    sequence,
                    record: &event.record,
                    kind: &event.kind,
                    at_ms: commit.at_ms,
                    data: &event.data,
                };
                Self::put(self.events, event_key(sequence), &stored)?;
                self.record_events.insert(record_event_key(&event.record, sequence), EMPTY)?;
                receipt.events.push(sequence);
                sequence += 1;
            }
            self.set_counter(META_NEXT_EVENT, sequence)?;
        }

        for change in &commit.tasks {
            self.change_task(change, commit.at_ms)?;
        }
        for change in &commit.timers {
            self.change_timer(change)?;
        }

        if !commit.outbox.is_empty() {
            let mut next = self.counter(META_NEXT_OUTBOX)?;
            for data in &commit.outbox {
                let id = OutboxId(next);
                let row =
                    OutboxOut { id, created_at_ms: commit.at_ms, delivered_at_ms: None, data };
                Self::put(self.outbox, outbox_key(id), &row)?;
                self.outbox_pending.insert(outbox_key(id), EMPTY)?;
                receipt.outbox.push(id);
                next += 1;
            }
            self.set_counter(META_NEXT_OUTBOX, next)?;
        }
        for &id in &commit.delivered {
            let key = outbox_key(id);
            let Some(mut row) = Self::get::<OutboxRow>(OUTBOX, self.outbox, &key)? else {
                return Err(abort(StoreError::UnknownOutboxRow(id)));
            };
            // Delivery is at least once, so a second "delivered" is expected and kept
            // as the first.
            if row.delivered_at_ms.is_none() {
                row.delivered_at_ms = Some(commit.at_ms);
                Self::put(self.outbox, key.clone(), &row)?;
                self.outbox_pending.remove(key)?;
            }
        }

        if let Some(claim) = &commit.idempotency {
            if !self.record_exists(&claim.record)? {
                return Err(abort(StoreError::UnknownRecord(claim.record.clone())));
            }
            Self::put(self.idempotency, idempotency_key(&claim.key), &claim.record)?;
        }
        Ok(receipt)
    }

    fn change_task(&self, change: &TaskChange, at_ms: i64) -> TxResult<()> {
        match change {
            TaskChange::Upsert(task) => {
                let key = task_key(&task.id);
                let old: Option<StoredTask> = Self::get(TASKS, self.tasks, &key)?;
                if let Some(old) = old.as_ref().filter(|old| old.open) {
                    self.open_tasks.remove(open_task_key(&old.assignee, &old.id))?;
                }
                self.open_tasks.insert(open_task_key(&task.assignee, &task.id), EMPTY)?;
                let stored = TaskOut {
                    id: &task.id,
                    assignee: &task.assignee,
                    due_ms: task.due_ms,
                    open: true,
                    data: &task.data,
                    created_at_ms: old.as_ref().map_or(at_ms, |old| old.created_at_ms),
                    updated_at_ms: at_ms,
                };
                Self::put(self.tasks, key, &stored)
            }
            TaskChange::Close(id) => {
                let key = task_key(id);
                let Some(mut task) = Self::get::<StoredTask>(TASKS, self.tasks, &key)? else {
                    return Err(abort(StoreError::UnknownTask(id.clone())));
                };
                if task.open {
                    self.open_tasks.remove(open_task_key(&task.assignee, &task.id))?;
                    task.open = false;
                    task.updated_at_ms = at_ms;
                    Self::put(self.tasks, key, &task)?;
                }
                Ok(())
            }
        }
    }

    fn change_timer(&self, change: &TimerChange) -> TxResult<()> {
        let id = match change {
            TimerChange::Add(timer) => &timer.id,
            TimerChange::Remove(id) => id,
        };
        let key = timer_key(id);
        if let Some(old) = Self::get::<StoredTimer>(TIMERS, self.timers, &key)? {
            self.timers_by_due.remove(timer_due_key(old.due_ms, id))?;
        }
        match change {
            TimerChange::Add(timer) => {
                self.timers_by_due.insert(timer_due_key(timer.due_ms, id), EMPTY)?;
                let stored = TimerOut { id, due_ms: timer.due_ms, data: &timer.data };
                Self::put(self.timers, key, &stored)
            }
            TimerChange::Remove(_) => {
                self.timers.remove(key)?;
                Ok(())
            }
        }
    }
}

/// Opens sled, waiting briefly for the file lock: sled's own background threads keep
/// a database open for a moment after the last handle is dropped, so reopening right
/// after closing (a restart in the same process) can find it still locked.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let mut attempts = 0;
    loop {
        match sled::Config::new().path(path).open() {
            // Up to ten seconds: on a loaded machine sled's threads can take a while to
            // let go. sled reports a held lock as an `Other` error naming the lock.
            Err(sled::Error::Io(error)) if is_lock_held(&error) && attempts < 500 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

fn is_lock_held(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.to_string().contains("could not acquire lock")
}
