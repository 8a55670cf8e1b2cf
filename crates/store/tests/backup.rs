//! Backups: export, restore into an empty directory, and the same state after.

mod common;

use std::path::Path;

use common::{create_lead, fast_store, populate, store};
use stagecraft_store::{
    Commit, IndexValue, OpenOptions, Page, RecordId, SledStore, Store, StoreError,
};

fn export(store: &dyn Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.export(&mut out).expect("exports");
    out
}

/// The rows of one sled tree: its name, and every key with its value.
type RawTree = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Every key and value of every tree of the sled database at `path`.
fn raw_trees(path: &Path) -> Vec<RawTree> {
    let db = common::open_raw(path);
    let mut names = db.tree_names();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let tree = db.open_tree(&name).expect("tree");
            let rows = tree
                .iter()
                .map(|item| {
                    let (key, value) = item.expect("reads");
                    (key.to_vec(), value.to_vec())
                })
                .collect();
            (name.to_vec(), rows)
        })
        .collect()
}

#[test]
fn a_restored_backup_has_the_same_state() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let original_path = dir.path().join("original");
    let restored_path = dir.path().join("restored");
    {
        let original = SledStore::open(&original_path).expect("opens");
        populate(&original);
        assert!(original.verify().expect("verifies").is_clean());
        let backup = export(&original);
        let text = String::from_utf8(backup.clone()).expect("backups are UTF-8");
        let header = text.lines().next().expect("a header");
        assert!(header.contains("\"format\":\"stagecraft-store-backup\""), "{header}");

        let (restored, summary) =
            SledStore::import(&restored_path, &OpenOptions::default(), backup.as_slice())
                .expect("restores");
        assert_eq!(summary.records, 20);
        assert_eq!(summary.events, 27);
        assert_eq!(summary.idempotency, 5);
        assert!(restored.verify().expect("verifies").is_clean());
        assert_eq!(export(&restored), backup);

        // The same answers through the API.
        for id in ["lead-00", "lead-01", "lead-19"] {
            let id = RecordId::from(id);
            assert_eq!(restored.record(&id).expect("reads"), original.record(&id).expect("reads"));
            assert_eq!(
                restored.events_of(&id).expect("reads"),
                original.events_of(&id).expect("reads")
            );
        }
        for assignee in ["ann", "bob", "张伟", "carol"] {
            assert_eq!(
                restored.open_tasks_of(assignee).expect("reads"),
                original.open_tasks_of(assignee).expect("reads")
            );
        }
        let amount = IndexValue::Float(0.75);
        assert_eq!(
            restored.records_by_index("lead", "amount", &amount, Page::first(10)).expect("reads"),
            vec![RecordId::from("lead-03")]
        );
        assert_eq!(
            restored.records_of_form("lead", Page::first(100)).expect("reads"),
            original.records_of_form("lead", Page::first(100)).expect("reads")
        );
        assert_eq!(
            restored.timers_due(i64::MAX, 100).expect("reads"),
            original.timers_due(i64::MAX, 100).expect("reads")
        );
        assert_eq!(
            restored.outbox_pending(100).expect("reads"),
            original.outbox_pending(100).expect("reads")
        );
        assert_eq!(
            restored.idempotent("request\u{0}4").expect("reads"),
            Some(RecordId::from("lead-04"))
        );
        assert_eq!(
            restored.next_event_sequence().expect("reads"),
            original.next_event_sequence().expect("reads")
        );

        // Both continue alike.
        let a = original.commit(create_lead("next", "ann", 10_000)).expect("commits");
        let b = restored.commit(create_lead("next", "ann", 10_000)).expect("commits");
        assert_eq!(a, b);
    }
    // And byte for byte, every tree.
    assert_eq!(raw_trees(&original_path), raw_trees(&restored_path));
}

#[test]
fn an_empty_store_round_trips() {
    let (dir, store) = fast_store();
    let backup = export(&store);
    assert_eq!(backup.iter().filter(|&&byte| byte == b'\n').count(), 1);
    let (restored, summary) =
        SledStore::import(dir.path().join("copy"), &OpenOptions::default(), backup.as_slice())
            .expect("restores");
    assert_eq!(summary, Default::default());
    assert_eq!(restored.commit(create_lead("r1", "ann", 1)).expect("commits").events, vec![1]);
}

#[test]
fn a_restore_needs_an_empty_directory() {
    let (dir, store) = store();
    store.commit(Commit::at(1)).expect("commits");
    let backup = export(&store);
    let error = SledStore::import(dir.path(), &OpenOptions::default(), backup.as_slice())
        .expect_err("refused");
    assert!(matches!(error, StoreError::NotEmpty(_)), "{error}");
}

#[test]
fn a_truncated_backup_is_refused_and_the_half_restore_cannot_be_opened() {
    let (dir, store) = fast_store();
    populate(&store);
    let backup = String::from_utf8(export(&store)).expect("UTF-8");
    let mut lines: Vec<&str> = backup.lines().collect();
    lines.pop();
    let truncated = lines.join("\n");
    let path = dir.path().join("copy");
    let error = SledStore::import(&path, &OpenOptions::default(), truncated.as_bytes())
        .expect_err("refused");
    assert!(matches!(error, StoreError::Backup { line: 0, .. }), "{error}");
    let error = SledStore::open(&path).expect_err("refused");
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error}");
}

#[test]
fn damaged_backups_are_refused() {
    let (dir, store) = fast_store();
    populate(&store);
    let backup = String::from_utf8(export(&store)).expect("UTF-8");
    let cases = [
        (backup.replacen("\"version\":1", "\"version\":7", 1), "version"),
        (backup.replacen("stagecraft-store-backup", "other", 1), "format"),
        (
            {
                // Drop the first event: the log then starts with a gap.
                let mut lines: Vec<&str> = backup.lines().collect();
                let first_event =
                    lines.iter().position(|line| line.starts_with("{\"event\"")).expect("events");
                lines.remove(first_event);
                lines.join("\n")
            },
            "gap",
        ),
        (String::new(), "empty"),
        (format!("{backup}not json\n"), "line"),
    ];
    for (n, (text, what)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("copy-{n}"));
        let result = SledStore::import(&path, &OpenOptions::default(), text.as_bytes());
        assert!(result.is_err(), "{what}");
    }
}
