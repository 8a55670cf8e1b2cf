//! Storage for the engine: one atomic, durable commit per command, behind a trait.
//!
//! The store does not know what a flow or a stage is. It keeps records (opaque JSON
//! documents with a form, a version and index entries), an event log, tasks, timers,
//! an outbox of notifications and idempotency keys, and it applies a [`Commit`] —
//! everything one command changes — all at once or not at all, and durably before
//! [`Store::commit`] returns. [`SledStore`] implements it on sled; a PostgreSQL
//! backend can implement the same trait later.
//!
//! # Guarantees
//!
//! - **Atomic:** a commit's record writes, events, task, timer and outbox changes,
//!   index changes and idempotency key are applied in one sled transaction across all
//!   trees. A refused commit ([`StoreError::Conflict`], [`StoreError::AlreadyApplied`],
//!   …) applies nothing and consumes no sequence number.
//! - **Durable before acknowledged:** with [`Durability::Flush`] (the default),
//!   `commit` returns only after a `flush` (write and `fsync` of sled's log) that
//!   began after the commit's transaction. Concurrent commits share flushes (group
//!   commit). sled promises that flushed data survives a crash of the process; it
//!   does not promise survival of a power loss or an operating-system crash.
//! - **Ordered log:** events get global sequence numbers 1, 2, 3, … without gaps,
//!   allocated inside the transaction.
//! - **Rebuildable projections:** the secondary index, the per-form record lists, the
//!   per-record event lists, the open tasks per assignee, timers by due time and the
//!   pending outbox are derived from the primary data; [`Store::verify`] rebuilds
//!   them and reports every difference.
//!
//! # Key layout
//!
//! One sled tree per kind. Keys are built from order-preserving parts (see below), so
//! range scans return rows in the order given here. Values marked *envelope* are one
//! format-version byte (currently `1`) followed by JSON; projection rows have an empty
//! value (everything is in the key).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `records` | record id | envelope: [`StoredRecord`] (with its current index entries) |
//! | `events` | sequence (`u64`) | envelope: [`StoredEvent`] |
//! | `record_events` | record id, sequence | empty |
//! | `index` | form, field, value, record id | empty |
//! | `form_records` | form, created at (`i64`), record id | empty |
//! | `tasks` | task id | envelope: [`StoredTask`] |
//! | `open_tasks_by_assignee` | assignee, task id | empty |
//! | `timers` | timer id | envelope: [`StoredTimer`] |
//! | `timers_by_due` | due at (`i64`), timer id | empty |
//! | `outbox` | outbox id (`u64`) | envelope: [`OutboxRow`] |
//! | `outbox_pending` | outbox id (`u64`) | empty |
//! | `idempotency` | key | envelope: the record id |
//! | `meta` | `format`, `next_event`, `next_outbox`, `importing` | `u32`/`u64` big-endian |
//!
//! Encodings: text is written byte for byte with `0x00` escaped as `0x00 0xFF` and
//! ends with `0x00 0x01`; `u64` is big-endian; `i64` is big-endian with the sign bit
//! flipped; an index value is a type tag (null, false, true, integer, float, text)
//! and then the value, floats in IEEE 754 total order. So a scan of
//! `(form, field, Int(..))` returns records by increasing number, and a scan of
//! `(form, …)` in `form_records` returns records by creation time.
//!
//! `meta/format` holds the store format version ([`STORE_FORMAT`]); opening a store
//! of another version fails with [`StoreError::UnsupportedFormat`].

mod backup;
mod envelope;
mod error;
mod group_commit;
mod keys;
mod sled_store;
mod types;
mod verify;

pub use error::StoreError;
pub use sled_store::{Durability, OpenOptions, STORE_FORMAT, SledStore, StoreStats};
pub use types::{
    Commit, ExportSummary, IdempotencyClaim, IndexEntry, IndexValue, NewEvent, NewTask, NewTimer,
    OutboxId, OutboxRow, Page, Receipt, RecordId, RecordWrite, StoredEvent, StoredRecord,
    StoredTask, StoredTimer, TaskChange, TaskId, TimerChange, TimerId,
};
pub use verify::{Issue, Problem, VerifyReport};

/// What the engine needs from storage. Every backend passes the same tests.
///
/// Reads are not snapshots: a read that runs alongside commits sees each commit's
/// rows either before or after it, but a listing may combine rows from before and
/// after a concurrent commit. Listings skip rows whose primary data a concurrent
/// commit is changing.
pub trait Store: Send + Sync {
    /// Applies everything in `commit` atomically and durably, or nothing.
    ///
    /// Refuses with [`StoreError::AlreadyApplied`] when the idempotency key was used
    /// before, [`StoreError::Conflict`] when a record is not at the expected version,
    /// and other refusals for malformed commits; nothing is applied then.
    fn commit(&self, commit: Commit) -> Result<Receipt, StoreError>;

    /// A record by id.
    fn record(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError>;

    /// Records of `form` indexed under `field = value`, by record id.
    fn records_by_index(
        &self,
        form: &str,
        field: &str,
        value: &IndexValue,
        page: Page,
    ) -> Result<Vec<RecordId>, StoreError>;

    /// Records of `form` in the order they were created (ties by record id).
    fn records_of_form(&self, form: &str, page: Page) -> Result<Vec<RecordId>, StoreError>;

    /// The events of a record, oldest first.
    fn events_of(&self, record: &RecordId) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events with a sequence number above `after_sequence`, in order.
    fn events_since(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The open tasks of an assignee, by task id.
    fn open_tasks_of(&self, assignee: &str) -> Result<Vec<StoredTask>, StoreError>;

    /// A task by id, open or closed.
    fn task(&self, id: &TaskId) -> Result<Option<StoredTask>, StoreError>;

    /// A timer by id.
    fn timer(&self, id: &TimerId) -> Result<Option<StoredTimer>, StoreError>;

    /// Up to `limit` timers due at or before `until_ms`, earliest first (ties by id).
    fn timers_due(&self, until_ms: i64, limit: usize) -> Result<Vec<StoredTimer>, StoreError>;

    /// Up to `limit` outbox rows not yet delivered, oldest first.
    fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;

    /// An outbox row by id, pending or delivered.
    fn outbox_row(&self, id: OutboxId) -> Result<Option<OutboxRow>, StoreError>;

    /// The record a commit with this idempotency key made, if there was one.
    fn idempotent(&self, key: &str) -> Result<Option<RecordId>, StoreError>;

    /// Writes a portable backup (JSON lines, see the crate's README); commits wait
    /// while it runs, so the backup is one consistent state.
    fn export(&self, out: &mut dyn std::io::Write) -> Result<ExportSummary, StoreError>;

    /// Rebuilds every projection from the primary data and the event log and compares
    /// it with the live one; commits wait while it runs.
    fn verify(&self) -> Result<VerifyReport, StoreError>;
}
