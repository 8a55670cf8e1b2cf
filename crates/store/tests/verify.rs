//! `verify` is clean on a consistent store and finds every projection changed behind
//! the store's back.

mod common;

use common::{open_raw, populate};
use stagecraft_store::{Issue, OpenOptions, SledStore, Store};

fn damaged(damage: impl Fn(&sled::Db)) -> Vec<stagecraft_store::Problem> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).expect("opens");
        populate(&store);
        assert!(store.verify().expect("verifies").is_clean());
    }
    {
        let db = open_raw(&path);
        damage(&db);
        db.flush().expect("flushes");
    }
    let store = SledStore::open_with(&path, &OpenOptions::default()).expect("reopens");
    store.verify().expect("verifies").problems
}

fn first_key(db: &sled::Db, tree: &str) -> sled::IVec {
    db.open_tree(tree).expect("tree").first().expect("reads").expect("a row").0
}

#[test]
fn a_consistent_store_verifies_clean() {
    let problems = damaged(|_| {});
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_missing_index_entry_is_found() {
    let problems = damaged(|db| {
        let key = first_key(db, "index");
        db.open_tree("index").expect("tree").remove(key).expect("removes");
    });
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].tree, "index");
    assert_eq!(problems[0].issue, Issue::Missing);
    assert!(problems[0].key.starts_with("form \"lead\", field "), "{}", problems[0].key);
}

#[test]
fn stray_and_missing_projection_rows_are_found() {
    let problems = damaged(|db| {
        db.open_tree("open_tasks_by_assignee")
            .expect("tree")
            .insert(b"ghost\x00\x01task\x00\x01", &[][..])
            .expect("writes");
        let key = first_key(db, "timers_by_due");
        db.open_tree("timers_by_due").expect("tree").remove(key).expect("removes");
        let key = first_key(db, "form_records");
        db.open_tree("form_records").expect("tree").remove(key).expect("removes");
        let key = first_key(db, "outbox_pending");
        db.open_tree("outbox_pending").expect("tree").remove(key).expect("removes");
        let key = first_key(db, "record_events");
        db.open_tree("record_events").expect("tree").remove(key).expect("removes");
    });
    let mut found: Vec<(&str, String)> =
        problems.iter().map(|problem| (problem.tree, problem.issue.to_string())).collect();
    found.sort();
    let missing = "missing from the projection".to_owned();
    assert_eq!(
        found,
        [
            ("form_records", missing.clone()),
            ("open_tasks_by_assignee", "in the projection but not in the primary data".to_owned()),
            ("outbox_pending", missing.clone()),
            ("record_events", missing.clone()),
            ("timers_by_due", missing),
        ]
    );
    let stray =
        problems.iter().find(|problem| problem.tree == "open_tasks_by_assignee").expect("found");
    assert_eq!(stray.key, "assignee \"ghost\", task \"task\"");
}

#[test]
fn a_gap_in_the_event_log_is_found() {
    let problems = damaged(|db| {
        let events = db.open_tree("events").expect("tree");
        events.remove(3_u64.to_be_bytes()).expect("removes");
    });
    assert!(
        problems
            .iter()
            .any(|problem| problem.tree == "events" && problem.to_string().contains("gap")),
        "{problems:?}"
    );
    // The per-record list still names the removed event.
    assert!(
        problems
            .iter()
            .any(|problem| problem.tree == "record_events" && problem.issue == Issue::Unexpected)
    );
}
