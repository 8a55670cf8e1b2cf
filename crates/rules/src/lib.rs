//! The rules sandbox. Gate and alert rules are rhai scripts written by operations
//! staff and integrators; this crate compiles them at load time (reporting syntax
//! errors, unknown variables and unknown functions with their position) and evaluates
//! them under hard limits, so that no script can hang, exhaust memory or reach
//! anything outside the facts it is given.
//!
//! Settings follow the project's security targets: `Engine::new_raw()` with only the
//! packages rules need (no time, no files, no `eval`, no modules), operation, call
//! depth, expression depth, string, array, map and variable limits, and a wall-clock
//! deadline checked from `on_progress`. The `unchecked` feature is never enabled.

mod host;
mod sandbox;

pub use host::{Host, NoHost, Query};
pub use sandbox::{
    CompiledRule, EvalError, Facts, GateOutcome, Limits, QUERY_KEYS, QueryUse, RuleError,
    RuleErrorKind, Sandbox, VARIABLES,
};
