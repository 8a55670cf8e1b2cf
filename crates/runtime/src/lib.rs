//! The runtime: a pure state machine over validated definitions. Given the
//! definitions, a record's state, a command and the current time, it returns the new
//! state, the events that describe the change and the effects the engine must carry
//! out (tasks, notifications, timers, sub-flows). It does no IO and reads no clock.

pub mod calendar;
mod machine;
mod org;
mod protocol;
mod state;

pub use machine::{
    Context, Exit, Org, Outcome, create_problems, exits, returns_to_pool_at, start_subflow, step,
};
pub use org::{Directory, OrgError};
pub use protocol::{
    Command, Effect, Event, FieldProblem, ImportedEnd, ImportedStage, Notification, OwnerChange,
    Reason, Refusal, Task, TaskKind, TimerKind,
};
pub use state::{
    AlertMark, ApprovalState, ApprovalStatus, Decision, FlowState, ParentLink, Record,
};
