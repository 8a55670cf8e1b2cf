//! What rules may ask of the world, answered from the org directory and the store:
//! org lookups and read-only queries over indexed fields.

use std::cell::RefCell;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use stagecraft_rules::{Host, Query};
use stagecraft_runtime::{Directory, Org, Record};
use stagecraft_store::{IndexValue, Page, RecordId, Store};

/// The host rules run against in the engine.
pub struct StoreHost {
    store: Arc<dyn Store>,
    org: Arc<RwLock<Directory>>,
}

impl std::fmt::Debug for StoreHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHost").finish_non_exhaustive()
    }
}

impl StoreHost {
    /// A host over a store and an org directory.
    pub fn new(store: Arc<dyn Store>, org: Arc<RwLock<Directory>>) -> Self {
        StoreHost { store, org }
    }

    fn with_org<T>(&self, read: impl FnOnce(&Directory) -> T) -> T {
        match self.org.read() {
            Ok(org) => read(&org),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }
}

thread_local! {
    /// The records a running command has changed but not yet committed, by id. Rules
    /// run on the command's thread, so their queries see them (see [`with_pending`]).
    static PENDING: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with queries seeing `records` as they are in the running command
/// instead of as stored, and records created in it as if they were stored.
pub(crate) fn with_pending<T>(records: Vec<Record>, work: impl FnOnce() -> T) -> T {
    let outer = PENDING.with(|pending| pending.replace(records));
    let result = work();
    PENDING.with(|pending| *pending.borrow_mut() = outer);
    result
}

/// The index value a JSON value is stored under.
pub(crate) fn index_value(value: &Value) -> Option<IndexValue> {
    Some(match value {
        Value::Null => IndexValue::Null,
        Value::Bool(flag) => IndexValue::Bool(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => IndexValue::Int(integer),
            None => IndexValue::Float(number.as_f64().filter(|f| f.is_finite())?),
        },
        Value::String(text) => IndexValue::Text(text.clone()),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// Reads a stored record back into the runtime's shape.
pub(crate) fn decode(value: &Value) -> Option<Record> {
    serde_json::from_value(value.clone()).ok()
}

impl Host for StoreHost {
    fn manager(&self, user: &str) -> Option<String> {
        self.with_org(|org| org.manager(user))
    }

    fn department(&self, user: &str) -> Option<String> {
        self.with_org(|org| org.department(user))
    }

    fn head(&self, department: &str) -> Option<String> {
        self.with_org(|org| org.head(department))
    }

    fn role_members(&self, role: &str) -> Vec<String> {
        self.with_org(|org| org.role_members(role))
    }

    fn query(&self, query: &Query) -> Result<Vec<Map<String, Value>>, String> {
        // Use the first equality as the index lookup; check the rest on each record.
        let candidates: Vec<RecordId> = match query
            .equals
            .iter()
            .find_map(|(field, value)| index_value(value).map(|value| (field.clone(), value)))
        {
            Some((field, value)) => self
                .store
                .records_by_index(
                    &query.form,
                    &field,
                    &value,
                    Page::first(query.limit.saturating_mul(4)),
                )
                .map_err(|error| error.to_string())?,
            None => self
                .store
                .records_of_form(&query.form, Page::first(query.limit.saturating_mul(4)))
                .map_err(|error| error.to_string())?,
        };
        let pending: Vec<Record> = PENDING.with(|pending| {
            pending
                .borrow()
                .iter()
                .filter(|record| record.form.as_str() == query.form)
                .cloned()
                .collect()
        });
        let mut records = Vec::new();
        for id in &candidates {
            if let Some(record) = pending.iter().find(|record| record.id == id.as_str()) {
                records.push(record.clone());
                continue;
            }
            let Some(stored) = self.store.record(id).map_err(|error| error.to_string())? else {
                continue;
            };
            if let Some(record) = decode(&stored.value) {
                records.push(record);
            }
        }
        // Records the command created are in no index yet.
        for record in &pending {
            if !candidates.iter().any(|id| id.as_str() == record.id) {
                records.push(record.clone());
            }
        }
        let mut found = Vec::new();
        for record in records {
            if query.exclude_id.as_deref() == Some(record.id.as_str()) {
                continue;
            }
            if query.created_since.is_some_and(|since| record.created_at / 1000 < since) {
                continue;
            }
            let facts = record.facts();
            if query.equals.iter().all(|(field, value)| facts.get(field) == Some(value)) {
                found.push(facts);
                if found.len() >= query.limit {
                    break;
                }
            }
        }
        Ok(found)
    }
}
