//! The engine: runs commands on records over a store. Each command becomes one
//! atomic, durable commit holding the record, the records it touched (a parent that
//! waited for a sub-flow, a customer an interaction keeps active), the events, task
//! and timer changes and outbox rows. Durable timers fire SLAs and escalations, also
//! after a restart; scheduled alert scans run from the definitions' cron schedules.
//!
//! The engine reads time only from its [`Clock`], so tests (and a demo server) can
//! move time forward.

mod clock;
mod engine;
mod host;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Engine, EngineError, Executed, ImportedRecord, Target, Verification};
pub use host::StoreHost;
