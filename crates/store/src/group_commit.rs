//! Group commit: one flusher thread makes many commits durable with one `fsync`.
//!
//! A committer that has applied its transaction takes a ticket and waits. The
//! flusher reads the highest ticket handed out, flushes, and then marks every ticket
//! up to that one durable. Because a ticket is taken only after its transaction
//! committed, and the flusher reads the ticket before it starts flushing, the flush
//! that releases a committer began after that committer's writes were in the log.
//! Committers that arrive while a flush runs share the next one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::StoreError;

#[derive(Debug, Default)]
struct State {
    /// The highest ticket handed out.
    requested: u64,
    /// The highest ticket a flush was attempted for.
    attempted: u64,
    /// The highest ticket a successful flush covered.
    durable: u64,
    /// The highest ticket covered by a failed flush, with the error.
    failed: Option<(u64, String)>,
    shutdown: bool,
    flusher_gone: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher when there is a ticket to flush or on shutdown.
    work: Condvar,
    /// Wakes committers after each flush.
    done: Condvar,
    flushes: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a handful of counters updated in one step each, so a panic
        // elsewhere cannot leave it half-changed; keep going rather than poison
        // every later commit.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The flusher thread and the committers' side of it.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(crate) fn start(db: sled::Db) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("stagecraft-store-flusher".to_owned())
            .spawn(move || run_flusher(&for_thread, &db))?;
        Ok(Self { shared, flusher: Some(flusher) })
    }

    /// Waits until a flush that began after the caller's commit has completed.
    pub(crate) fn wait_durable(&self) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        state.requested += 1;
        let ticket = state.requested;
        self.shared.work.notify_one();
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if let Some((failed, error)) = &state.failed {
                if *failed >= ticket {
                    return Err(StoreError::NotDurable(error.clone()));
                }
            }
            if state.flusher_gone {
                return Err(StoreError::NotDurable("the flusher thread has stopped".to_owned()));
            }
            state = self.shared.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// How many flushes have completed (successfully or not).
    pub(crate) fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            // A flusher that panicked has already released its waiters (see
            // `Gone`); there is nothing more to do with the panic here.
            let _ = flusher.join();
        }
    }
}

/// Marks the flusher gone when its thread ends, however it ends, so that no
/// committer waits forever.
struct Gone<'a>(&'a Shared);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.lock().flusher_gone = true;
        self.0.done.notify_all();
    }
}

fn run_flusher(shared: &Shared, db: &sled::Db) {
    let _gone = Gone(shared);
    loop {
        let target = {
            let mut state = shared.lock();
            while state.requested == state.attempted && !state.shutdown {
                state = shared.work.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.requested == state.attempted {
                // Shut down with nothing left to flush.
                return;
            }
            state.requested
        };
        let result = db.flush();
        let mut state = shared.lock();
        state.attempted = target;
        match result {
            Ok(_) => state.durable = target,
            Err(error) => state.failed = Some((target, error.to_string())),
        }
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        drop(state);
        shared.done.notify_all();
    }
}
