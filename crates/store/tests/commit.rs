//! Commits: every part applied together, refusals applying nothing, and the reads.

mod common;

use common::{create_lead, store};
use serde_json::json;
use stagecraft_store::{
    Commit, IdempotencyClaim, IndexValue, NewEvent, NewTask, NewTimer, OutboxId, Page, RecordId,
    RecordWrite, SledStore, Store, StoreError, TaskChange, TaskId, TimerChange, TimerId,
};

fn owner_index(store: &SledStore, owner: &str) -> Vec<RecordId> {
    store
        .records_by_index("lead", "owner", &IndexValue::from(owner), Page::first(100))
        .expect("reads the index")
}

fn ids(ids: &[&str]) -> Vec<RecordId> {
    ids.iter().map(|id| RecordId::from(*id)).collect()
}

#[test]
fn a_commit_writes_every_part() {
    let (_dir, store) = store();
    let receipt = store.commit(create_lead("r1", "ann", 1_000)).expect("commits");
    assert_eq!(receipt.versions, vec![(RecordId::from("r1"), 1)]);
    assert_eq!(receipt.events, vec![1]);
    assert_eq!(receipt.outbox, vec![OutboxId(1)]);

    let record = store.record(&"r1".into()).expect("reads").expect("exists");
    assert_eq!(record.version, 1);
    assert_eq!(record.form, "lead");
    assert_eq!(record.created_at_ms, 1_000);
    assert_eq!(record.value, json!({"name": "r1", "owner": "ann"}));

    let events = store.events_of(&"r1".into()).expect("reads");
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].sequence, events[0].kind.as_str()), (1, "created"));
    assert_eq!(owner_index(&store, "ann"), ids(&["r1"]));
    let tasks = store.open_tasks_of("ann").expect("reads");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].id, TaskId::from("call-r1"));
    assert_eq!(store.timers_due(i64::MAX, 10).expect("reads")[0].id, TimerId::from("sla-r1"));
    let pending = store.outbox_pending(10).expect("reads");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].data, json!({"notify": "ann", "record": "r1"}));
    assert_eq!(store.stats().commits, 1);
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn a_stale_version_is_refused_and_nothing_is_applied() {
    let (_dir, store) = store();
    store.commit(create_lead("r1", "ann", 1_000)).expect("commits");
    let before_sequence = store.next_event_sequence().expect("reads");

    let mut commit = create_lead("r2", "bob", 2_000);
    commit.records.push(
        RecordWrite::update("r1", "lead", 5, json!({"owner": "bob"})).indexed("owner", "bob"),
    );
    commit.events.push(NewEvent::new("r1", "reassigned", json!({})));
    commit.delivered.push(OutboxId(1));
    commit.tasks.push(TaskChange::Close("call-r1".into()));
    commit.timers.push(TimerChange::Remove("sla-r1".into()));
    commit.idempotency = Some(IdempotencyClaim { key: "request-2".into(), record: "r2".into() });
    let error = store.commit(commit).expect_err("refused");
    match error {
        StoreError::Conflict { id, expected, actual } => {
            assert_eq!(id, RecordId::from("r1"));
            assert_eq!((expected, actual), (Some(5), Some(1)));
        }
        other => panic!("expected a conflict, got {other}"),
    }

    assert!(store.record(&"r2".into()).expect("reads").is_none());
    assert_eq!(store.record(&"r1".into()).expect("reads").expect("r1").version, 1);
    assert_eq!(store.next_event_sequence().expect("reads"), before_sequence);
    assert_eq!(store.events_since(0, 100).expect("reads").len(), 1);
    assert_eq!(owner_index(&store, "ann"), ids(&["r1"]));
    assert!(owner_index(&store, "bob").is_empty());
    assert!(store.task(&"call-r2".into()).expect("reads").is_none());
    assert!(store.task(&"call-r1".into()).expect("reads").expect("task").open);
    assert_eq!(store.timers_due(i64::MAX, 10).expect("reads").len(), 1);
    assert_eq!(store.outbox_pending(10).expect("reads").len(), 1);
    assert!(store.idempotent("request-2").expect("reads").is_none());
    assert_eq!(store.stats().commits, 1);

    // The next commit takes the next sequence number: the refusal consumed none.
    let receipt = store.commit(create_lead("r3", "bob", 3_000)).expect("commits");
    assert_eq!(receipt.events, vec![before_sequence]);
    assert_eq!(receipt.outbox, vec![OutboxId(2)]);
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn creating_an_existing_record_is_a_conflict() {
    let (_dir, store) = store();
    store.commit(create_lead("r1", "ann", 1)).expect("commits");
    let error = store.commit(create_lead("r1", "bob", 2)).expect_err("refused");
    assert!(matches!(error, StoreError::Conflict { expected: None, actual: Some(1), .. }));
    let error = store
        .commit(Commit {
            records: vec![RecordWrite::update("nobody", "lead", 1, json!({}))],
            ..Commit::at(3)
        })
        .expect_err("refused");
    assert!(matches!(error, StoreError::Conflict { expected: Some(1), actual: None, .. }));
}

#[test]
fn an_idempotency_key_is_used_once() {
    let (_dir, store) = store();
    let claim =
        |record: &str| Some(IdempotencyClaim { key: "request-1".into(), record: record.into() });
    let first = Commit { idempotency: claim("r1"), ..create_lead("r1", "ann", 1) };
    store.commit(first.clone()).expect("commits");
    assert_eq!(store.idempotent("request-1").expect("reads"), Some(RecordId::from("r1")));

    // The same request again, even one that would otherwise conflict, is answered
    // with the first result.
    let error = store.commit(first).expect_err("refused");
    assert!(
        matches!(&error, StoreError::AlreadyApplied { key, record } if key == "request-1" && record.as_str() == "r1"),
        "{error}"
    );
    let second = Commit { idempotency: claim("r2"), ..create_lead("r2", "ann", 2) };
    let error = store.commit(second).expect_err("refused");
    assert!(matches!(error, StoreError::AlreadyApplied { .. }));
    assert!(store.record(&"r2".into()).expect("reads").is_none());
    assert_eq!(store.events_since(0, 10).expect("reads").len(), 1);
    assert!(store.idempotent("request-2").expect("reads").is_none());
}

#[test]
fn an_update_replaces_the_index_entries() {
    let (_dir, store) = store();
    store.commit(create_lead("r1", "ann", 1_000)).expect("commits");
    store.commit(create_lead("r2", "ann", 1_001)).expect("commits");
    let update = RecordWrite::update("r1", "lead", 1, json!({"owner": "bob", "amount": 12}))
        .indexed("owner", "bob")
        .indexed("amount", 12)
        .indexed("owner", "bob");
    let receipt =
        store.commit(Commit { records: vec![update], ..Commit::at(2_000) }).expect("commits");
    assert_eq!(receipt.versions, vec![(RecordId::from("r1"), 2)]);

    assert_eq!(owner_index(&store, "ann"), ids(&["r2"]));
    assert_eq!(owner_index(&store, "bob"), ids(&["r1"]));
    let stage_new =
        store.records_by_index("lead", "stage", &"new".into(), Page::first(10)).expect("reads");
    assert_eq!(stage_new, ids(&["r2"]));
    assert_eq!(
        store
            .records_by_index("lead", "amount", &IndexValue::Int(12), Page::first(10))
            .expect("reads"),
        ids(&["r1"])
    );
    let record = store.record(&"r1".into()).expect("reads").expect("exists");
    assert_eq!(record.version, 2);
    assert_eq!((record.created_at_ms, record.updated_at_ms), (1_000, 2_000));
    // Duplicate entries are kept once.
    assert_eq!(record.index.len(), 2);
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn an_update_must_name_the_same_form() {
    let (_dir, store) = store();
    store.commit(create_lead("r1", "ann", 1)).expect("commits");
    let error = store
        .commit(Commit {
            records: vec![RecordWrite::update("r1", "deal", 1, json!({}))],
            ..Commit::at(2)
        })
        .expect_err("refused");
    assert!(matches!(error, StoreError::FormMismatch { .. }), "{error}");
}

#[test]
fn records_of_a_form_come_in_creation_order_and_page() {
    let (_dir, store) = store();
    let create = |id: &str, form: &str, at_ms: i64| Commit {
        records: vec![RecordWrite::create(id, form, json!({})).indexed("kind", "x")],
        ..Commit::at(at_ms)
    };
    for (id, form, at_ms) in [
        ("z", "lead", 10),
        ("m", "lead", 20),
        ("d1", "deal", 15),
        ("a", "lead", 20),
        ("b", "lead", 30),
        ("c", "lead", -5),
    ] {
        store.commit(create(id, form, at_ms)).expect("commits");
    }
    let all = store.records_of_form("lead", Page::first(100)).expect("reads");
    assert_eq!(all, ids(&["c", "z", "a", "m", "b"]));
    assert_eq!(store.records_of_form("lead", Page::first(2)).expect("reads"), ids(&["c", "z"]));
    assert_eq!(
        store.records_of_form("lead", Page::after("z", 2)).expect("reads"),
        ids(&["a", "m"])
    );
    assert!(store.records_of_form("lead", Page::after("b", 2)).expect("reads").is_empty());
    assert_eq!(store.records_of_form("deal", Page::first(10)).expect("reads"), ids(&["d1"]));
    assert!(store.records_of_form("lea", Page::first(10)).expect("reads").is_empty());
    assert!(matches!(
        store.records_of_form("lead", Page::after("d1", 2)),
        Err(StoreError::UnknownRecord(_))
    ));

    // The index pages by record id.
    let kind_x = |page| store.records_by_index("lead", "kind", &"x".into(), page).expect("reads");
    assert_eq!(kind_x(Page::first(3)), ids(&["a", "b", "c"]));
    assert_eq!(kind_x(Page::after("c", 3)), ids(&["m", "z"]));
    assert!(kind_x(Page::first(0)).is_empty());
}

#[test]
fn tasks_are_listed_by_assignee_while_open() {
    let (_dir, store) = store();
    let upsert = |id: &str, assignee: &str| {
        TaskChange::Upsert(NewTask {
            id: id.into(),
            assignee: assignee.into(),
            due_ms: None,
            data: json!({"task": id}),
        })
    };
    store
        .commit(Commit {
            tasks: vec![upsert("t2", "ann"), upsert("t1", "ann"), upsert("t3", "bob")],
            ..Commit::at(1)
        })
        .expect("commits");
    let open = |assignee: &str| -> Vec<String> {
        store
            .open_tasks_of(assignee)
            .expect("reads")
            .into_iter()
            .map(|task| task.id.to_string())
            .collect()
    };
    assert_eq!(open("ann"), ["t1", "t2"]);
    assert_eq!(open("bob"), ["t3"]);

    // Reassign t1 to bob, close t3.
    store
        .commit(Commit {
            tasks: vec![upsert("t1", "bob"), TaskChange::Close("t3".into())],
            ..Commit::at(2)
        })
        .expect("commits");
    assert_eq!(open("ann"), ["t2"]);
    assert_eq!(open("bob"), ["t1"]);
    let t3 = store.task(&"t3".into()).expect("reads").expect("kept");
    assert!(!t3.open);
    assert_eq!((t3.created_at_ms, t3.updated_at_ms), (1, 2));
    let t1 = store.task(&"t1".into()).expect("reads").expect("kept");
    assert_eq!((t1.assignee.as_str(), t1.created_at_ms), ("bob", 1));

    // Closing twice changes nothing; closing an unknown task refuses the commit.
    store
        .commit(Commit { tasks: vec![TaskChange::Close("t3".into())], ..Commit::at(3) })
        .expect("commits");
    let error = store
        .commit(Commit {
            tasks: vec![TaskChange::Close("t2".into()), TaskChange::Close("t9".into())],
            ..Commit::at(4)
        })
        .expect_err("refused");
    assert!(matches!(error, StoreError::UnknownTask(id) if id.as_str() == "t9"));
    assert_eq!(open("ann"), ["t2"]);

    // An upsert reopens.
    store.commit(Commit { tasks: vec![upsert("t3", "ann")], ..Commit::at(5) }).expect("commits");
    assert_eq!(open("ann"), ["t2", "t3"]);
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn timers_come_due_in_order() {
    let (_dir, store) = store();
    let add = |id: &str, due_ms: i64| {
        TimerChange::Add(NewTimer { id: id.into(), due_ms, data: json!({"timer": id}) })
    };
    store
        .commit(Commit {
            timers: vec![
                add("c", 300),
                add("b", 100),
                add("a", 100),
                add("late", 200),
                add("past", -50),
            ],
            ..Commit::at(1)
        })
        .expect("commits");
    let due = |until_ms, limit| -> Vec<String> {
        store
            .timers_due(until_ms, limit)
            .expect("reads")
            .into_iter()
            .map(|timer| timer.id.to_string())
            .collect()
    };
    assert_eq!(due(150, 10), ["past", "a", "b"]);
    assert_eq!(due(150, 2), ["past", "a"]);
    assert_eq!(due(i64::MAX, 10), ["past", "a", "b", "late", "c"]);
    assert!(due(-51, 10).is_empty());

    // Moving a timer moves it in the order; removing one (twice) drops it.
    store
        .commit(Commit {
            timers: vec![
                add("past", 250),
                TimerChange::Remove("b".into()),
                TimerChange::Remove("b".into()),
                TimerChange::Remove("never-set".into()),
            ],
            ..Commit::at(2)
        })
        .expect("commits");
    assert_eq!(due(i64::MAX, 10), ["a", "late", "past", "c"]);
    assert_eq!(store.timer(&"past".into()).expect("reads").expect("set").due_ms, 250);
    assert!(store.timer(&"b".into()).expect("reads").is_none());
    assert_eq!(store.timers_due(250, 10).expect("reads")[2].due_ms, 250);
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn outbox_rows_stay_pending_until_delivered() {
    let (_dir, store) = store();
    let receipt = store
        .commit(Commit { outbox: vec![json!(1), json!(2), json!(3)], ..Commit::at(10) })
        .expect("commits");
    assert_eq!(receipt.outbox, vec![OutboxId(1), OutboxId(2), OutboxId(3)]);
    store.commit(Commit { delivered: vec![OutboxId(2)], ..Commit::at(20) }).expect("commits");
    let pending: Vec<u64> =
        store.outbox_pending(10).expect("reads").iter().map(|row| row.id.0).collect();
    assert_eq!(pending, [1, 3]);
    assert_eq!(store.outbox_pending(1).expect("reads").len(), 1);
    let delivered = store.outbox_row(OutboxId(2)).expect("reads").expect("kept");
    assert_eq!(delivered.delivered_at_ms, Some(20));
    assert_eq!(delivered.created_at_ms, 10);

    // Delivered twice keeps the first time; an unknown row refuses the commit.
    store.commit(Commit { delivered: vec![OutboxId(2)], ..Commit::at(30) }).expect("commits");
    assert_eq!(
        store.outbox_row(OutboxId(2)).expect("reads").expect("kept").delivered_at_ms,
        Some(20)
    );
    let error = store
        .commit(Commit { delivered: vec![OutboxId(1), OutboxId(9)], ..Commit::at(40) })
        .expect_err("refused");
    assert!(matches!(error, StoreError::UnknownOutboxRow(OutboxId(9))));
    assert_eq!(store.outbox_pending(10).expect("reads").len(), 2);
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn events_since_pages_through_the_log() {
    let (_dir, store) = store();
    let mut expected = Vec::new();
    for n in 0..12 {
        let id = format!("r{n}");
        let mut commit = Commit {
            records: vec![RecordWrite::create(id.as_str(), "lead", json!({}))],
            events: vec![NewEvent::new(id.as_str(), "created", json!({"n": n}))],
            ..Commit::at(n)
        };
        if n % 3 == 0 {
            commit.events.push(NewEvent::new(id.as_str(), "noted", json!({"n": n})));
        }
        expected.extend(store.commit(commit).expect("commits").events);
    }
    assert_eq!(expected, (1..=16).collect::<Vec<u64>>());

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_since(after, 5).expect("reads");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after = page.last().expect("non-empty").sequence;
        seen.extend(page.into_iter().map(|event| event.sequence));
    }
    assert_eq!(seen, expected);
    assert!(store.events_since(u64::MAX, 5).expect("reads").is_empty());
    let r3: Vec<String> =
        store.events_of(&"r3".into()).expect("reads").into_iter().map(|event| event.kind).collect();
    assert_eq!(r3, ["created", "noted"]);
}

#[test]
fn events_and_claims_must_name_existing_records() {
    let (_dir, store) = store();
    let error = store
        .commit(Commit {
            events: vec![NewEvent::new("ghost", "created", json!({}))],
            ..Commit::at(1)
        })
        .expect_err("refused");
    assert!(matches!(error, StoreError::UnknownRecord(id) if id.as_str() == "ghost"));
    let error = store
        .commit(Commit {
            idempotency: Some(IdempotencyClaim { key: "k".into(), record: "ghost".into() }),
            ..Commit::at(1)
        })
        .expect_err("refused");
    assert!(matches!(error, StoreError::UnknownRecord(_)));
    assert_eq!(store.next_event_sequence().expect("reads"), 1);
}

#[test]
fn malformed_commits_are_refused() {
    let (_dir, store) = store();
    let twice = Commit {
        records: vec![
            RecordWrite::create("r1", "lead", json!({})),
            RecordWrite::create("r1", "lead", json!({})),
        ],
        ..Commit::at(1)
    };
    let not_a_number = Commit {
        records: vec![
            RecordWrite::create("r1", "lead", json!({}))
                .indexed("amount", IndexValue::Float(f64::NAN)),
        ],
        ..Commit::at(1)
    };
    let empty_id =
        Commit { records: vec![RecordWrite::create("", "lead", json!({}))], ..Commit::at(1) };
    for commit in [twice, not_a_number, empty_id] {
        let error = store.commit(commit).expect_err("refused");
        assert!(matches!(error, StoreError::InvalidCommit(_)), "{error}");
    }
    assert!(store.record(&"r1".into()).expect("reads").is_none());
}

#[test]
fn a_reopened_store_has_everything_and_continues_the_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).expect("opens");
        store.commit(create_lead("r1", "ann", 1)).expect("commits");
        store.commit(create_lead("r2", "bob", 2)).expect("commits");
    }
    let store = SledStore::open(&path).expect("reopens");
    assert!(store.record(&"r2".into()).expect("reads").is_some());
    assert_eq!(owner_index(&store, "bob"), ids(&["r2"]));
    let receipt = store.commit(create_lead("r3", "ann", 3)).expect("commits");
    assert_eq!(receipt.events, vec![3]);
    assert_eq!(receipt.outbox, vec![OutboxId(3)]);
}

#[test]
fn unknown_formats_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).expect("opens");
        store.commit(create_lead("r1", "ann", 1)).expect("commits");
    }
    // A value written by a future version of the store.
    {
        let db = common::open_raw(&path);
        let records = db.open_tree("records").expect("tree");
        let (key, value) = records.first().expect("reads").expect("a record");
        let mut future = value.to_vec();
        future[0] = 2;
        records.insert(key, future).expect("writes");
        db.flush().expect("flushes");
    }
    {
        let store = SledStore::open(&path).expect("opens");
        let error = store.record(&"r1".into()).expect_err("unknown version");
        assert!(matches!(error, StoreError::UnsupportedFormat { found: 2, .. }), "{error}");
        let report = store.verify().expect("verifies");
        assert!(!report.is_clean());
    }
    // A store written by a future version.
    {
        let db = common::open_raw(&path);
        let meta = db.open_tree("meta").expect("tree");
        meta.insert("format", &99u32.to_be_bytes()[..]).expect("writes");
        db.flush().expect("flushes");
    }
    let error = SledStore::open(&path).expect_err("refused");
    assert!(matches!(error, StoreError::UnsupportedFormat { found: 99, .. }), "{error}");
}

#[test]
fn a_directory_with_foreign_data_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("db");
    {
        let db = common::open_raw(&path);
        db.open_tree("records").expect("tree").insert("x", "y").expect("writes");
        db.flush().expect("flushes");
    }
    let error = SledStore::open(&path).expect_err("refused");
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error}");
}
