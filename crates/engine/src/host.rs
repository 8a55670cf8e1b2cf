//! What rules may ask of the world, answered from the org directory and the store:
//! org lookups and read-only queries over indexed fields.

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
        let mut found = Vec::new();
        for id in candidates {
            if query.exclude_id.as_deref() == Some(id.as_str()) {
                continue;
            }
            let Some(stored) = self.store.record(&id).map_err(|error| error.to_string())? else {
                continue;
            };
            if query.created_since.is_some_and(|since| stored.created_at_ms / 1000 < since) {
                continue;
            }
            let Some(record) = decode(&stored.value) else { continue };
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
