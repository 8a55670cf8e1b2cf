//! The vocabulary of the store: typed ids, what a commit asks for and what reads return.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <String as utoipa::PartialSchema>::schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Wraps an id chosen by the caller.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

string_id!(
    /// The id of a record, chosen by the caller (the engine), unique across forms.
    RecordId
);
string_id!(
    /// The id of a task, chosen by the caller.
    TaskId
);
string_id!(
    /// The id of a timer, chosen by the caller.
    TimerId
);

/// The id of an outbox row, assigned by the store: increasing, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OutboxId(pub u64);

impl fmt::Display for OutboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A value a record is indexed under. Keys sort by type first (null, false, true,
/// integers, floats, text), then by value within a type, so a range of one type can
/// be scanned in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexValue {
    /// An explicit null, so that "field is empty" can be looked up.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite floating-point number (NaN and infinities are refused at commit).
    Float(f64),
    /// Text, compared byte by byte (UTF-8 order, which is code point order).
    Text(String),
}

impl From<&str> for IndexValue {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for IndexValue {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for IndexValue {
    fn from(number: i64) -> Self {
        Self::Int(number)
    }
}

impl From<bool> for IndexValue {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

/// One secondary-index entry of a record: the record can be found under
/// `(form, field, value)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The indexed field (any name the caller likes: a form field, `owner`, `stage`).
    pub field: String,
    /// The value the record has for it.
    pub value: IndexValue,
}

impl IndexEntry {
    /// An entry for `field` with `value`.
    pub fn new(field: impl Into<String>, value: impl Into<IndexValue>) -> Self {
        Self { field: field.into(), value: value.into() }
    }
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Its id.
    pub id: RecordId,
    /// The form it belongs to; fixed at creation.
    pub form: String,
    /// 1 after creation, one more after each write.
    pub version: u64,
    /// The commit time (`Commit::at_ms`) of the commit that created it.
    pub created_at_ms: i64,
    /// The commit time of its latest write.
    pub updated_at_ms: i64,
    /// The document, opaque to the store.
    pub value: Value,
    /// The index entries it has now.
    pub index: Vec<IndexEntry>,
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    /// Global position in the log: 1, 2, 3, … without gaps.
    pub sequence: u64,
    /// The record the event is about.
    pub record: RecordId,
    /// What happened, in the caller's words.
    pub kind: String,
    /// The commit time.
    pub at_ms: i64,
    /// Details, opaque to the store.
    pub data: Value,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredTask {
    /// Its id.
    pub id: TaskId,
    /// Who it is assigned to (a user, a role, a queue: opaque to the store).
    pub assignee: String,
    /// When it is due, if ever.
    pub due_ms: Option<i64>,
    /// Open until closed; an upsert reopens it.
    pub open: bool,
    /// Details, opaque to the store.
    pub data: Value,
    /// The commit time of its first upsert.
    pub created_at_ms: i64,
    /// The commit time of its latest change.
    pub updated_at_ms: i64,
}

/// A timer as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTimer {
    /// Its id.
    pub id: TimerId,
    /// When it is due.
    pub due_ms: i64,
    /// What to do then, opaque to the store.
    pub data: Value,
}

/// A notification waiting for (or past) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// Assigned by the store; deliverers deduplicate by it.
    pub id: OutboxId,
    /// The commit time of the commit that added it.
    pub created_at_ms: i64,
    /// The commit time of the commit that marked it delivered.
    pub delivered_at_ms: Option<i64>,
    /// What to deliver, opaque to the store.
    pub data: Value,
}

/// One record to create or update.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// The record.
    pub id: RecordId,
    /// Its form; an update must name the form the record was created with.
    pub form: String,
    /// The version the caller read: `None` means the record must not exist yet.
    pub expected_version: Option<u64>,
    /// The new document.
    pub value: Value,
    /// All the index entries the record has after this write; the store removes the
    /// old ones itself.
    pub index: Vec<IndexEntry>,
}

impl RecordWrite {
    /// Creates a record that must not exist yet.
    pub fn create(id: impl Into<RecordId>, form: impl Into<String>, value: Value) -> Self {
        Self { id: id.into(), form: form.into(), expected_version: None, value, index: Vec::new() }
    }

    /// Updates a record that must be at `expected_version`.
    pub fn update(
        id: impl Into<RecordId>,
        form: impl Into<String>,
        expected_version: u64,
        value: Value,
    ) -> Self {
        Self { expected_version: Some(expected_version), ..Self::create(id, form, value) }
    }

    /// Adds an index entry.
    pub fn indexed(mut self, field: impl Into<String>, value: impl Into<IndexValue>) -> Self {
        self.index.push(IndexEntry::new(field, value));
        self
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The record it is about: written in the same commit or existing already.
    pub record: RecordId,
    /// What happened.
    pub kind: String,
    /// Details.
    pub data: Value,
}

impl NewEvent {
    /// An event of `kind` about `record`.
    pub fn new(record: impl Into<RecordId>, kind: impl Into<String>, data: Value) -> Self {
        Self { record: record.into(), kind: kind.into(), data }
    }
}

/// A task to create, replace or reopen.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Its id.
    pub id: TaskId,
    /// Who it is assigned to.
    pub assignee: String,
    /// When it is due.
    pub due_ms: Option<i64>,
    /// Details.
    pub data: Value,
}

/// A change to a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskChange {
    /// Creates the task, or replaces it (reopening it if it was closed).
    Upsert(NewTask),
    /// Closes an existing task; closing a closed task changes nothing.
    Close(TaskId),
}

/// A timer to set.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimer {
    /// Its id.
    pub id: TimerId,
    /// When it is due.
    pub due_ms: i64,
    /// What to do then.
    pub data: Value,
}

/// A change to the timers.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerChange {
    /// Sets a timer, replacing one with the same id.
    Add(NewTimer),
    /// Removes a timer; removing a missing timer changes nothing (it may have fired).
    Remove(TimerId),
}

/// Claims an idempotency key for the record a command made.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyClaim {
    /// The caller's key (for example a request id).
    pub key: String,
    /// The record the first command with this key made or changed.
    pub record: RecordId,
}

/// Everything one command changes, applied atomically and durably by
/// [`Store::commit`](crate::Store::commit), or not at all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Commit {
    /// The command's time, given by the caller (the store has no clock): creation and
    /// update times, event and outbox times come from it.
    pub at_ms: i64,
    /// Records to create or update; each record at most once.
    pub records: Vec<RecordWrite>,
    /// Events to append, in order.
    pub events: Vec<NewEvent>,
    /// Task changes, applied in order.
    pub tasks: Vec<TaskChange>,
    /// Timer changes, applied in order.
    pub timers: Vec<TimerChange>,
    /// Notifications to add to the outbox.
    pub outbox: Vec<Value>,
    /// Outbox rows to mark delivered.
    pub delivered: Vec<OutboxId>,
    /// A key that makes the commit happen at most once.
    pub idempotency: Option<IdempotencyClaim>,
}

impl Commit {
    /// An empty commit at `at_ms`.
    pub fn at(at_ms: i64) -> Self {
        Self { at_ms, ..Self::default() }
    }
}

/// What a successful commit assigned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    /// The new version of each written record, in the order of `Commit::records`.
    pub versions: Vec<(RecordId, u64)>,
    /// The sequence numbers of the appended events, in order.
    pub events: Vec<u64>,
    /// The ids of the added outbox rows, in order.
    pub outbox: Vec<OutboxId>,
}

/// A page of a listing: up to `limit` ids after the record `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The last record of the previous page, or `None` for the first page.
    pub after: Option<RecordId>,
    /// How many ids at most.
    pub limit: usize,
}

impl Page {
    /// The first `limit` ids.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// Up to `limit` ids after `record`.
    pub fn after(record: impl Into<RecordId>, limit: usize) -> Self {
        Self { after: Some(record.into()), limit }
    }
}

/// How many rows of each kind a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExportSummary {
    /// Records.
    pub records: u64,
    /// Events.
    pub events: u64,
    /// Tasks, open and closed.
    pub tasks: u64,
    /// Timers.
    pub timers: u64,
    /// Outbox rows, pending and delivered.
    pub outbox: u64,
    /// Idempotency keys.
    pub idempotency: u64,
}
