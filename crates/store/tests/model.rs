//! Random commit sequences against an in-memory model: after every step the store
//! answers exactly what the model says, and refuses exactly what the model refuses.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use stagecraft_store::{
    Commit, IdempotencyClaim, IndexEntry, IndexValue, NewEvent, NewTask, NewTimer, OutboxId, Page,
    RecordId, RecordWrite, SledStore, Store, StoreError, TaskChange, TimerChange,
};

const RECORDS: [&str; 4] = ["a", "b", "c", "d\0x"];
const FORMS: [&str; 2] = ["lead", "deal"];
const FIELDS: [&str; 2] = ["owner", "stage"];
const TASKS: [&str; 3] = ["t1", "t2", "t3"];
const ASSIGNEES: [&str; 2] = ["ann", "bob"];
const TIMERS: [&str; 3] = ["m1", "m2", "m3"];
const KEYS: [&str; 2] = ["k1", "k2"];

fn index_values() -> Vec<IndexValue> {
    vec![
        IndexValue::Null,
        IndexValue::Bool(true),
        IndexValue::Int(-1),
        IndexValue::Int(2),
        IndexValue::Float(0.5),
        IndexValue::Text("x".into()),
        IndexValue::Text(String::new()),
    ]
}

/// The expected version a generated write claims, resolved against the model.
#[derive(Debug, Clone)]
enum Expect {
    Right,
    Given(Option<u64>),
}

#[derive(Debug, Clone)]
struct WriteSpec {
    record: usize,
    /// Usually the record's own form; sometimes the other one, to provoke refusals.
    wrong_form: bool,
    expect: Expect,
    index: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
enum TaskSpec {
    Upsert(usize, usize, Option<i64>),
    Close(usize),
}

#[derive(Debug, Clone)]
enum TimerSpec {
    Add(usize, i64),
    Remove(usize),
}

#[derive(Debug, Clone)]
struct CommitSpec {
    writes: Vec<WriteSpec>,
    events: Vec<usize>,
    tasks: Vec<TaskSpec>,
    timers: Vec<TimerSpec>,
    outbox: usize,
    delivered: Vec<u64>,
    claim: Option<(usize, usize)>,
}

fn write_spec() -> impl Strategy<Value = WriteSpec> {
    (
        0..RECORDS.len(),
        prop::bool::weighted(0.05),
        prop_oneof![
            8 => Just(Expect::Right),
            2 => prop::option::of(0_u64..3).prop_map(Expect::Given),
        ],
        prop::collection::vec((0..FIELDS.len(), 0..index_values().len()), 0..4),
    )
        .prop_map(|(record, wrong_form, expect, index)| WriteSpec {
            record,
            wrong_form,
            expect,
            index,
        })
}

fn commit_spec() -> impl Strategy<Value = CommitSpec> {
    (
        prop::collection::vec(write_spec(), 0..3),
        prop::collection::vec(0..RECORDS.len(), 0..3),
        prop::collection::vec(
            prop_oneof![
                3 => (0..TASKS.len(), 0..ASSIGNEES.len(), prop::option::of(-3_i64..3))
                    .prop_map(|(t, a, d)| TaskSpec::Upsert(t, a, d)),
                1 => (0..TASKS.len()).prop_map(TaskSpec::Close),
            ],
            0..3,
        ),
        prop::collection::vec(
            prop_oneof![
                2 => (0..TIMERS.len(), -5_i64..5).prop_map(|(t, d)| TimerSpec::Add(t, d)),
                1 => (0..TIMERS.len()).prop_map(TimerSpec::Remove),
            ],
            0..3,
        ),
        0_usize..3,
        prop::collection::vec(1_u64..8, 0..2),
        prop::option::weighted(0.3, (0..KEYS.len(), 0..RECORDS.len())),
    )
        .prop_map(|(writes, events, tasks, timers, outbox, delivered, claim)| CommitSpec {
            writes,
            events,
            tasks,
            timers,
            outbox,
            delivered,
            claim,
        })
}

fn form_of(record: usize) -> &'static str {
    FORMS[record % FORMS.len()]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelRecord {
    form: String,
    version: u64,
    created_at_ms: i64,
    value: Value,
    index: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Default)]
struct Model {
    records: BTreeMap<String, ModelRecord>,
    /// Record of each event, by sequence - 1.
    events: Vec<String>,
    /// Task id -> (assignee, open).
    tasks: BTreeMap<String, (String, bool)>,
    /// Timer id -> due.
    timers: BTreeMap<String, i64>,
    /// Outbox id -> delivered.
    outbox: BTreeMap<u64, bool>,
    idempotency: BTreeMap<String, String>,
}

impl Model {
    /// Builds the commit for `spec`, resolving expected versions against the model.
    fn commit(&self, spec: &CommitSpec, step: i64) -> Commit {
        let values = index_values();
        let records = spec
            .writes
            .iter()
            .map(|write| {
                let id = RECORDS[write.record];
                let form = if write.wrong_form {
                    form_of(write.record + 1)
                } else {
                    form_of(write.record)
                };
                let expected_version = match &write.expect {
                    Expect::Right => self.records.get(id).map(|record| record.version),
                    Expect::Given(version) => *version,
                };
                RecordWrite {
                    id: id.into(),
                    form: form.to_owned(),
                    expected_version,
                    value: json!({"step": step, "id": id}),
                    index: write
                        .index
                        .iter()
                        .map(|&(field, value)| {
                            IndexEntry::new(FIELDS[field], values[value].clone())
                        })
                        .collect(),
                }
            })
            .collect();
        Commit {
            at_ms: step,
            records,
            events: spec
                .events
                .iter()
                .map(|&record| NewEvent::new(RECORDS[record], "happened", json!(step)))
                .collect(),
            tasks: spec
                .tasks
                .iter()
                .map(|task| match *task {
                    TaskSpec::Upsert(task, assignee, due_ms) => TaskChange::Upsert(NewTask {
                        id: TASKS[task].into(),
                        assignee: ASSIGNEES[assignee].into(),
                        due_ms,
                        data: json!(step),
                    }),
                    TaskSpec::Close(task) => TaskChange::Close(TASKS[task].into()),
                })
                .collect(),
            timers: spec
                .timers
                .iter()
                .map(|timer| match *timer {
                    TimerSpec::Add(timer, due_ms) => TimerChange::Add(NewTimer {
                        id: TIMERS[timer].into(),
                        due_ms,
                        data: json!(step),
                    }),
                    TimerSpec::Remove(timer) => TimerChange::Remove(TIMERS[timer].into()),
                })
                .collect(),
            outbox: (0..spec.outbox).map(|n| json!({"step": step, "n": n})).collect(),
            delivered: spec.delivered.iter().map(|&id| OutboxId(id)).collect(),
            idempotency: spec.claim.map(|(key, record)| IdempotencyClaim {
                key: KEYS[key].into(),
                record: RECORDS[record].into(),
            }),
        }
    }

    /// Applies `commit` to a copy; the name of the refusal if the store must refuse it.
    fn apply(&self, commit: &Commit) -> Result<Model, &'static str> {
        let mut next = self.clone();
        let ids: BTreeSet<&RecordId> = commit.records.iter().map(|write| &write.id).collect();
        if ids.len() != commit.records.len() {
            return Err("invalid");
        }
        if let Some(claim) = &commit.idempotency {
            if next.idempotency.contains_key(&claim.key) {
                return Err("already applied");
            }
        }
        for write in &commit.records {
            let old = next.records.get(write.id.as_str());
            if old.map(|record| record.version) != write.expected_version {
                return Err("conflict");
            }
            if old.is_some_and(|record| record.form != write.form) {
                return Err("form mismatch");
            }
            let mut index: Vec<IndexEntry> = Vec::new();
            for entry in &write.index {
                if !index.contains(entry) {
                    index.push(entry.clone());
                }
            }
            let record = ModelRecord {
                form: write.form.clone(),
                version: old.map_or(1, |record| record.version + 1),
                created_at_ms: old.map_or(commit.at_ms, |record| record.created_at_ms),
                value: write.value.clone(),
                index,
            };
            next.records.insert(write.id.to_string(), record);
        }
        for event in &commit.events {
            if !next.records.contains_key(event.record.as_str()) {
                return Err("unknown record");
            }
            next.events.push(event.record.to_string());
        }
        for change in &commit.tasks {
            match change {
                TaskChange::Upsert(task) => {
                    next.tasks.insert(task.id.to_string(), (task.assignee.clone(), true));
                }
                TaskChange::Close(id) => match next.tasks.get_mut(id.as_str()) {
                    Some(task) => task.1 = false,
                    None => return Err("unknown task"),
                },
            }
        }
        for change in &commit.timers {
            match change {
                TimerChange::Add(timer) => {
                    next.timers.insert(timer.id.to_string(), timer.due_ms);
                }
                TimerChange::Remove(id) => {
                    next.timers.remove(id.as_str());
                }
            }
        }
        let first_outbox = self.outbox.keys().last().map_or(1, |id| id + 1);
        for n in 0..commit.outbox.len() as u64 {
            next.outbox.insert(first_outbox + n, false);
        }
        for id in &commit.delivered {
            match next.outbox.get_mut(&id.0) {
                Some(delivered) => *delivered = true,
                None => return Err("unknown outbox row"),
            }
        }
        if let Some(claim) = &commit.idempotency {
            if !next.records.contains_key(claim.record.as_str()) {
                return Err("unknown record");
            }
            next.idempotency.insert(claim.key.clone(), claim.record.to_string());
        }
        Ok(next)
    }
}

fn refusal(error: &StoreError) -> &'static str {
    match error {
        StoreError::InvalidCommit(_) => "invalid",
        StoreError::AlreadyApplied { .. } => "already applied",
        StoreError::Conflict { .. } => "conflict",
        StoreError::FormMismatch { .. } => "form mismatch",
        StoreError::UnknownRecord(_) => "unknown record",
        StoreError::UnknownTask(_) => "unknown task",
        StoreError::UnknownOutboxRow(_) => "unknown outbox row",
        _ => "failure",
    }
}

fn assert_same(store: &SledStore, model: &Model) -> Result<(), TestCaseError> {
    for id in RECORDS {
        let stored = store.record(&id.into()).expect("reads");
        let expected = model.records.get(id);
        prop_assert_eq!(stored.is_some(), expected.is_some(), "record {:?}", id);
        if let (Some(stored), Some(expected)) = (stored, expected) {
            let as_model = ModelRecord {
                form: stored.form,
                version: stored.version,
                created_at_ms: stored.created_at_ms,
                value: stored.value,
                index: stored.index,
            };
            prop_assert_eq!(&as_model, expected);
        }
        let events: Vec<u64> = store
            .events_of(&id.into())
            .expect("reads")
            .iter()
            .map(|event| event.sequence)
            .collect();
        let expected: Vec<u64> = (1..)
            .zip(&model.events)
            .filter(|(_, record)| record.as_str() == id)
            .map(|(sequence, _)| sequence)
            .collect();
        prop_assert_eq!(events, expected);
    }
    for form in FORMS {
        for field in FIELDS {
            for value in index_values() {
                let found =
                    store.records_by_index(form, field, &value, Page::first(100)).expect("reads");
                let expected: Vec<RecordId> = model
                    .records
                    .iter()
                    .filter(|(_, record)| {
                        record.form == form
                            && record
                                .index
                                .iter()
                                .any(|entry| entry.field == field && entry.value == value)
                    })
                    .map(|(id, _)| RecordId::from(id.as_str()))
                    .collect();
                prop_assert_eq!(found, expected, "{} {} {:?}", form, field, value);
            }
        }
        let listed = store.records_of_form(form, Page::first(100)).expect("reads");
        let mut expected: Vec<(i64, &String)> = model
            .records
            .iter()
            .filter(|(_, record)| record.form == form)
            .map(|(id, record)| (record.created_at_ms, id))
            .collect();
        expected.sort();
        let expected: Vec<RecordId> =
            expected.into_iter().map(|(_, id)| RecordId::from(id.as_str())).collect();
        prop_assert_eq!(listed, expected);
    }
    for assignee in ASSIGNEES {
        let open: Vec<String> = store
            .open_tasks_of(assignee)
            .expect("reads")
            .into_iter()
            .map(|task| task.id.to_string())
            .collect();
        let expected: Vec<String> = model
            .tasks
            .iter()
            .filter(|(_, (who, open))| *open && who == assignee)
            .map(|(id, _)| id.clone())
            .collect();
        prop_assert_eq!(open, expected);
    }
    for id in TASKS {
        let task = store.task(&id.into()).expect("reads");
        prop_assert_eq!(task.map(|task| (task.assignee, task.open)), model.tasks.get(id).cloned());
    }
    let timers: Vec<(i64, String)> = store
        .timers_due(i64::MAX, 100)
        .expect("reads")
        .into_iter()
        .map(|timer| (timer.due_ms, timer.id.to_string()))
        .collect();
    let mut expected: Vec<(i64, String)> =
        model.timers.iter().map(|(id, due)| (*due, id.clone())).collect();
    expected.sort();
    prop_assert_eq!(timers, expected);
    let pending: Vec<u64> =
        store.outbox_pending(100).expect("reads").iter().map(|row| row.id.0).collect();
    let expected: Vec<u64> =
        model.outbox.iter().filter(|(_, delivered)| !**delivered).map(|(id, _)| *id).collect();
    prop_assert_eq!(pending, expected);
    let log: Vec<String> = store
        .events_since(0, 1000)
        .expect("reads")
        .into_iter()
        .map(|event| event.record.to_string())
        .collect();
    prop_assert_eq!(&log, &model.events);
    for key in KEYS {
        prop_assert_eq!(
            store.idempotent(key).expect("reads").map(|id| id.to_string()),
            model.idempotency.get(key).cloned()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_behaves_like_the_model(specs in prop::collection::vec(commit_spec(), 1..25)) {
        let (_dir, store) = common::fast_store();
        let mut model = Model::default();
        for (step, spec) in specs.iter().enumerate() {
            let commit = model.commit(spec, step as i64);
            let expected = model.apply(&commit);
            match (store.commit(commit), expected) {
                (Ok(receipt), Ok(next)) => {
                    let first = model.events.len() as u64 + 1;
                    let events: Vec<u64> = (first..next.events.len() as u64 + 1).collect();
                    prop_assert_eq!(receipt.events, events);
                    model = next;
                }
                (Err(error), Err(refused)) => prop_assert_eq!(refusal(&error), refused),
                (Ok(_), Err(refused)) => prop_assert!(false, "the store accepted, the model refused: {}", refused),
                (Err(error), Ok(_)) => prop_assert!(false, "the store refused: {}", error),
            }
            assert_same(&store, &model)?;
        }
        let report = store.verify().expect("verifies");
        prop_assert!(report.is_clean(), "{}", report);
    }
}
