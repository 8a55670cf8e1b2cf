//! Helpers shared by the store's integration tests: a store in a temporary directory.

#![allow(dead_code, unreachable_pub)]

use serde_json::json;
use stagecraft_store::{
    Commit, Durability, NewEvent, NewTask, NewTimer, OpenOptions, RecordWrite, SledStore,
    TaskChange, TimerChange,
};
use tempfile::TempDir;

/// A durable store in a fresh temporary directory (the directory lives as long as
/// the returned guard).
pub fn store() -> (TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(dir.path().join("db")).expect("opens");
    (dir, store)
}

/// A store that does not wait for flushes, for tests with many commits.
pub fn fast_store() -> (TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = OpenOptions { durability: Durability::None };
    let store = SledStore::open_with(dir.path().join("db"), &options).expect("opens");
    (dir, store)
}

/// A commit that creates lead `id` owned by `owner`, with an event, a task, a timer
/// and a notification.
pub fn create_lead(id: &str, owner: &str, at_ms: i64) -> Commit {
    Commit {
        at_ms,
        records: vec![
            RecordWrite::create(id, "lead", json!({"name": id, "owner": owner}))
                .indexed("owner", owner)
                .indexed("stage", "new"),
        ],
        events: vec![NewEvent::new(id, "created", json!({"by": owner}))],
        tasks: vec![TaskChange::Upsert(NewTask {
            id: format!("call-{id}").into(),
            assignee: owner.to_owned(),
            due_ms: Some(at_ms + 1000),
            data: json!({"record": id}),
        })],
        timers: vec![TimerChange::Add(NewTimer {
            id: format!("sla-{id}").into(),
            due_ms: at_ms + 5000,
            data: json!({"record": id}),
        })],
        outbox: vec![json!({"notify": owner, "record": id})],
        ..Commit::default()
    }
}

/// Fills a store with a bit of everything: creations, updates that move index
/// entries, closed and reassigned tasks, removed timers, delivered notifications,
/// idempotency keys, text with NUL bytes and non-ASCII characters.
pub fn populate(store: &dyn stagecraft_store::Store) {
    use stagecraft_store::{IdempotencyClaim, IndexValue, OutboxId};
    for n in 0..20_i64 {
        let id = format!("lead-{n:02}");
        let owner = ["ann", "bob", "张伟"][(n % 3) as usize];
        let mut commit = create_lead(&id, owner, 1_000 + n * 7 % 5);
        if n % 4 == 0 {
            commit.idempotency =
                Some(IdempotencyClaim { key: format!("request\0{n}"), record: id.as_str().into() });
        }
        store.commit(commit).expect("creates");
    }
    for n in (0..20_i64).step_by(3) {
        let id = format!("lead-{n:02}");
        let commit = Commit {
            records: vec![
                RecordWrite::update(id.as_str(), "lead", 1, json!({"stage": "won", "amount": n}))
                    .indexed("stage", "won")
                    .indexed("amount", IndexValue::Float(n as f64 / 4.0))
                    .indexed("closed", true)
                    .indexed("note", IndexValue::Null),
            ],
            events: vec![NewEvent::new(id.as_str(), "won", json!({"amount": n}))],
            tasks: vec![TaskChange::Close(format!("call-{id}").into())],
            timers: vec![TimerChange::Remove(format!("sla-{id}").into())],
            delivered: vec![OutboxId(n as u64 + 1)],
            outbox: vec![json!({"won": id})],
            ..Commit::at(5_000 + n)
        };
        store.commit(commit).expect("updates");
    }
    let reassign = Commit {
        tasks: vec![TaskChange::Upsert(NewTask {
            id: "call-lead-01".into(),
            assignee: "carol".into(),
            due_ms: None,
            data: json!({"reassigned": true}),
        })],
        ..Commit::at(9_000)
    };
    store.commit(reassign).expect("reassigns");
}

/// Opens the sled database under a store directly, to damage it behind the store's
/// back. sled keeps a database locked for a moment after the store is dropped.
#[allow(dead_code)]
pub fn open_raw(path: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        if let Ok(db) = sled::open(path) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sled::open(path).expect("opens sled")
}
