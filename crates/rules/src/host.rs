//! What rules may ask of the world outside the facts they are given: the org
//! (managers, roles, department heads) and a read-only query over indexed fields.
//! The engine implements [`Host`] over its store; checking uses [`NoHost`].

use serde_json::{Map, Value};

/// A read-only query from a rule: records of `form` whose indexed fields equal the
/// given values, optionally created within a window before `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// The form whose records are searched.
    pub form: String,
    /// Indexed field → value the record must have.
    pub equals: Map<String, Value>,
    /// Only records created at or after this Unix time (seconds).
    pub created_since: Option<i64>,
    /// Leave out the record with this id (usually the record the rule runs for).
    pub exclude_id: Option<String>,
    /// At most this many records.
    pub limit: usize,
}

/// The services a rule can call. Implementations must be fast and must not block for
/// long: rules run inside a deadline.
pub trait Host: Send + Sync + 'static {
    /// The direct manager of a user.
    fn manager(&self, user: &str) -> Option<String>;
    /// The department a user works in.
    fn department(&self, user: &str) -> Option<String>;
    /// The head of a department.
    fn head(&self, department: &str) -> Option<String>;
    /// The users holding a role.
    fn role_members(&self, role: &str) -> Vec<String>;
    /// Records matching a query, each as its JSON fields plus `id`, `owner`,
    /// `created_at` and `stage`.
    fn query(&self, query: &Query) -> Result<Vec<Map<String, Value>>, String>;
}

/// A host that knows nobody and finds nothing, used to compile rules at check time.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl Host for NoHost {
    fn manager(&self, _user: &str) -> Option<String> {
        None
    }
    fn department(&self, _user: &str) -> Option<String> {
        None
    }
    fn head(&self, _department: &str) -> Option<String> {
        None
    }
    fn role_members(&self, _role: &str) -> Vec<String> {
        Vec::new()
    }
    fn query(&self, _query: &Query) -> Result<Vec<Map<String, Value>>, String> {
        Ok(Vec::new())
    }
}
