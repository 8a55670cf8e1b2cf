//! The one error type of the store: refusals a caller answers, and failures it reports.

use std::path::PathBuf;

use crate::types::{OutboxId, RecordId, TaskId};

/// Why the store refused a commit or failed.
///
/// The first group are refusals: nothing of the commit was applied and the caller
/// can answer them (reload and retry, return the first result, fix the command).
/// The rest are failures of the storage itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record is not at the version the caller read.
    #[error("record {id} is at version {actual:?}, the commit expected {expected:?}")]
    Conflict {
        /// The record.
        id: RecordId,
        /// What the commit expected (`None`: that it does not exist).
        expected: Option<u64>,
        /// What it is (`None`: it does not exist).
        actual: Option<u64>,
    },
    /// The idempotency key was claimed by an earlier commit.
    #[error("idempotency key {key:?} was already used for record {record}")]
    AlreadyApplied {
        /// The key.
        key: String,
        /// The record of the first commit with this key.
        record: RecordId,
    },
    /// An update named another form than the one the record was created with.
    #[error("record {id} belongs to form {stored:?}, not {given:?}")]
    FormMismatch {
        /// The record.
        id: RecordId,
        /// Its form.
        stored: String,
        /// The form the commit named.
        given: String,
    },
    /// An event, idempotency key or page cursor names a record that does not exist.
    #[error("record {0} does not exist")]
    UnknownRecord(RecordId),
    /// A task to close does not exist.
    #[error("task {0} does not exist")]
    UnknownTask(TaskId),
    /// An outbox row to mark delivered does not exist.
    #[error("outbox row {0} does not exist")]
    UnknownOutboxRow(OutboxId),
    /// The commit is malformed (empty id, a record written twice, a NaN index value).
    #[error("invalid commit: {0}")]
    InvalidCommit(String),

    /// sled failed.
    #[error("storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// The commit was applied but the flush that would make it durable failed; the
    /// caller must not acknowledge it.
    #[error("the commit was applied but could not be made durable: {0}")]
    NotDurable(String),
    /// A stored value or key cannot be read.
    #[error("corrupt {tree} entry {key}: {reason}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// The key, printable.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The data was written by a format this build does not know.
    #[error("{what} has format version {found}, this build reads version {supported}")]
    UnsupportedFormat {
        /// What carries the version (the store, a value of some tree, a backup).
        what: String,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The directory holds something that is not a store of this kind.
    #[error("{path} is not a stagecraft store: {reason}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A restore was started into a directory that is not empty.
    #[error("cannot restore into {0}: the directory is not empty")]
    NotEmpty(PathBuf),
    /// A backup file cannot be read.
    #[error("backup line {line}: {reason}")]
    Backup {
        /// The line number, from 1 (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a backup failed.
    #[error("backup io failed: {0}")]
    Io(#[from] std::io::Error),
}
