//! What the server is started with.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the server gets its time from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockChoice {
    /// The operating system's clock.
    #[default]
    System,
    /// A clock that starts at the system time and then moves only when an admin moves
    /// it (`POST /api/admin/clock`), for demos and tests of SLAs and escalations.
    Manual,
}

/// How expensive password hashes are to compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PasswordCost {
    /// Argon2id with 19 MiB of memory and 2 passes (the OWASP recommendation).
    #[default]
    Standard,
    /// The cheapest Argon2id settings, for tests that create many users. Never for
    /// real passwords.
    Low,
}

/// How to start the server.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// The data folder (an embedded store; created when missing).
    pub data: PathBuf,
    /// The packs to load.
    pub packs: Vec<PathBuf>,
    /// The folder of the demo company (`company.org.yaml`, `records.jsonl`): its org
    /// is loaded with the packs, and its people and records are created on the first
    /// start.
    pub demo: Option<PathBuf>,
    /// The clock.
    pub clock: ClockChoice,
    /// The cost of password hashes.
    pub password_cost: PasswordCost,
    /// The notification settings file (`--notify`); without one, `notify.yaml` in the
    /// data folder is read if it exists, else only the inbox (and e-mail through
    /// `STAGECRAFT_SMTP_URL`) works.
    pub notify: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("data"),
            packs: vec![PathBuf::from("flows"), PathBuf::from("schemas")],
            demo: None,
            clock: ClockChoice::System,
            password_cost: PasswordCost::Standard,
            notify: None,
        }
    }
}
