//! Many committers at once: every commit applied once, a gap-free log, shared flushes.

mod common;

use std::sync::Barrier;

use common::{create_lead, store};
use serde_json::json;
use stagecraft_store::{Commit, RecordWrite, Store, StoreError};

const THREADS: usize = 8;
const COMMITS_PER_THREAD: usize = 25;

#[test]
fn concurrent_commits_get_distinct_gap_free_sequences_and_share_flushes() {
    let (_dir, store) = store();
    let barrier = Barrier::new(THREADS);
    let mut sequences: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let store = &store;
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    for n in 0..COMMITS_PER_THREAD {
                        let id = format!("t{thread}-{n}");
                        let mut commit = create_lead(&id, &format!("owner-{thread}"), 1);
                        commit.events.push(stagecraft_store::NewEvent::new(
                            id.as_str(),
                            "noted",
                            json!(n),
                        ));
                        let receipt = store.commit(commit).expect("commits");
                        assert_eq!(receipt.events.len(), 2);
                        assert_eq!(receipt.events[1], receipt.events[0] + 1);
                        mine.extend(receipt.events);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("thread finished")).collect()
    });
    let commits = (THREADS * COMMITS_PER_THREAD) as u64;
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=commits * 2).collect::<Vec<u64>>());

    let stats = store.stats();
    assert_eq!(stats.commits, commits);
    assert!(stats.flushes >= 1);
    assert!(
        stats.flushes < stats.commits,
        "{} flushes for {} commits: no flush was shared",
        stats.flushes,
        stats.commits
    );
    for thread in 0..THREADS {
        let tasks = store.open_tasks_of(&format!("owner-{thread}")).expect("reads");
        assert_eq!(tasks.len(), COMMITS_PER_THREAD);
    }
    assert!(store.verify().expect("verifies").is_clean());
}

#[test]
fn concurrent_updates_of_one_record_never_lose_a_write() {
    const INCREMENTS: u64 = 20;
    let (_dir, store) = store();
    store
        .commit(Commit {
            records: vec![RecordWrite::create("counter", "tally", json!({"count": 0}))],
            ..Commit::at(0)
        })
        .expect("creates");
    let conflicts: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = &store;
                scope.spawn(move || {
                    let mut conflicts = 0;
                    let mut done = 0;
                    while done < INCREMENTS {
                        let current =
                            store.record(&"counter".into()).expect("reads").expect("exists");
                        let count = current.value["count"].as_u64().expect("a count");
                        let write = RecordWrite::update(
                            "counter",
                            "tally",
                            current.version,
                            json!({"count": count + 1}),
                        );
                        match store.commit(Commit { records: vec![write], ..Commit::at(1) }) {
                            Ok(_) => done += 1,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                    }
                    conflicts
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("thread finished")).sum()
    });
    let counter = store.record(&"counter".into()).expect("reads").expect("exists");
    assert_eq!(counter.value["count"], json!(4 * INCREMENTS));
    assert_eq!(counter.version, 1 + 4 * INCREMENTS);
    assert_eq!(store.stats().commits, 1 + 4 * INCREMENTS);
    // Conflicts are possible, not required; they are refusals, never lost writes.
    let _ = conflicts;
}

#[test]
fn one_idempotency_key_makes_one_record_under_concurrency() {
    let (_dir, store) = store();
    let barrier = Barrier::new(THREADS);
    let results: Vec<Result<String, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    let id = format!("attempt-{thread}");
                    let commit = Commit {
                        idempotency: Some(stagecraft_store::IdempotencyClaim {
                            key: "the-request".into(),
                            record: id.as_str().into(),
                        }),
                        ..create_lead(&id, "ann", 1)
                    };
                    barrier.wait();
                    store.commit(commit).map(|_| id)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("thread finished")).collect()
    });
    let winners: Vec<&String> = results.iter().filter_map(|result| result.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0].as_str();
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, StoreError::AlreadyApplied { record, .. } if record.as_str() == winner),
                "{error}"
            );
        }
    }
    assert_eq!(store.open_tasks_of("ann").expect("reads").len(), 1);
    assert_eq!(store.events_since(0, 100).expect("reads").len(), 1);
}
