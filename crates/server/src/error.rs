//! The one error type of the server crate: why the server could not start or stopped.
//! Answers to HTTP requests are problems (`problem.rs`), not errors.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start, or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The packs (or the demo company's org file) have errors; the report lists them.
    #[error("the packs have {} errors", .0.error_count())]
    Packs(stagecraft_pack::Report),
    /// The data folder cannot be opened.
    #[error("cannot open the data in {path}: {source}")]
    Store {
        /// The data folder.
        path: PathBuf,
        /// What went wrong.
        source: stagecraft_store::StoreError,
    },
    /// The store failed while the server was starting.
    #[error(transparent)]
    Storage(#[from] stagecraft_store::StoreError),
    /// The engine failed while the server was starting.
    #[error(transparent)]
    Engine(#[from] stagecraft_engine::EngineError),
    /// The notification settings have mistakes; each is `file:line:col: message`.
    #[error("the notification settings have mistakes:\n{0}")]
    Notify(stagecraft_notify::ConfigError),
    /// The demo folder has no org file.
    #[error("there is no demo company in {0}: it has no company.org.yaml")]
    NoDemo(PathBuf),
    /// A file of the demo company is missing or cannot be read.
    #[error("cannot read {path}: {source}")]
    DemoFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line of the demo data cannot be carried out.
    #[error("{path}:{line}: {reason}")]
    DemoData {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A password could not be hashed.
    #[error("cannot hash a password: {0}")]
    Password(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The server's runtime or connection handling failed.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}
