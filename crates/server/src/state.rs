//! What every request shares: the engine, the clock (when it is manual), sessions and
//! the login limit; and opening all of it from a [`Config`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use stagecraft_engine::{Clock, Engine, ManualClock, SystemClock};
use stagecraft_runtime::Directory;
use stagecraft_store::{Commit, RecordId, RecordWrite, SledStore, Store};

use crate::auth::{LoginLimiter, Sessions, hash_password, new_token};
use crate::config::{ClockChoice, Config};
use crate::demo::{self, Demo};
use crate::error::ServerError;

/// The record that keeps the server's own settings in the store.
const SERVER_RECORD: &str = "_server";

/// How often (in clock milliseconds) the pools' idle sweep runs: an hour. A record
/// returns to its pool within an hour of running out of time.
const POOL_SWEEP_EVERY: i64 = 60 * 60 * 1000;

/// What a started server has loaded, for the lines it prints.
#[derive(Debug)]
pub struct Startup {
    /// How many packs are loaded.
    pub packs: usize,
    /// The data folder.
    pub data: PathBuf,
    /// The demo company, when asked for.
    pub demo: Option<Demo>,
}

/// The state shared by every request; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Arc<Engine>,
    manual_clock: Option<Arc<ManualClock>>,
    sessions: Sessions,
    logins: LoginLimiter,
    /// Held while timers fire and scans run, so that the background task and a clock
    /// change do not run them side by side.
    maintenance: Mutex<()>,
    /// When (clock time) the pools' idle sweep last ran: it reads every record of the
    /// pool forms, so it runs at most once per [`POOL_SWEEP_EVERY`].
    pool_swept_at: std::sync::atomic::AtomicI64,
    /// Checked against when a username is unknown, so that a wrong username takes as
    /// long to refuse as a wrong password.
    decoy_hash: String,
    /// The pack files and folders the definitions are loaded from.
    pack_paths: Vec<PathBuf>,
    /// Where uploaded files are kept (`<data>/files`).
    files_dir: PathBuf,
    /// The notification settings (channels, links, retries).
    notify: stagecraft_notify::NotifyConfig,
}

impl AppState {
    /// Loads the packs (with the demo company's org file, if asked for), opens the
    /// data folder, and creates the demo company on its first start. Blocking.
    pub fn open(config: &Config) -> Result<(AppState, Startup), ServerError> {
        let mut paths = config.packs.clone();
        if let Some(demo) = &config.demo {
            let org = demo.join(demo::ORG_FILE);
            if !org.is_file() {
                return Err(ServerError::NoDemo(demo.clone()));
            }
            paths.push(org);
        }
        let (definitions, _) = stagecraft_pack::load(&paths).map_err(ServerError::Packs)?;
        let notify_file = config.notify.clone().or_else(|| {
            let default = config.data.join("notify.yaml");
            default.is_file().then_some(default)
        });
        let notify = stagecraft_notify::NotifyConfig::load(notify_file.as_deref())
            .map_err(ServerError::Notify)?;
        let packs = definitions.packs.len();
        let store = SledStore::open(&config.data)
            .map_err(|source| ServerError::Store { path: config.data.clone(), source })?;
        let store: Arc<dyn Store> = Arc::new(store);
        let (clock, manual_clock): (Arc<dyn Clock>, _) = match config.clock {
            ClockChoice::System => (Arc::new(SystemClock), None),
            ClockChoice::Manual => {
                let manual = Arc::new(ManualClock::new(SystemClock.now_ms()));
                (manual.clone(), Some(manual))
            }
        };
        let seed = audit_seed(store.as_ref(), clock.now_ms())?;
        let engine = Arc::new(Engine::new(store, definitions, clock, seed));
        let demo = match &config.demo {
            Some(folder) => Some(demo::open(&engine, folder, config.password_cost)?),
            None => None,
        };
        let sessions = Sessions::load(engine.store().clone())?;
        let state = AppState {
            inner: Arc::new(Inner {
                engine,
                manual_clock,
                sessions,
                logins: LoginLimiter::default(),
                maintenance: Mutex::new(()),
                pool_swept_at: std::sync::atomic::AtomicI64::new(i64::MIN),
                decoy_hash: hash_password(&new_token(), config.password_cost)?,
                pack_paths: paths,
                files_dir: config.data.join(crate::uploads::FILES_FOLDER),
                notify,
            }),
        };
        Ok((state, Startup { packs, data: config.data.clone(), demo }))
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The manual clock, when the server runs on one.
    pub(crate) fn manual_clock(&self) -> Option<&Arc<ManualClock>> {
        self.inner.manual_clock.as_ref()
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub(crate) fn logins(&self) -> &LoginLimiter {
        &self.inner.logins
    }

    pub(crate) fn decoy_hash(&self) -> &str {
        &self.inner.decoy_hash
    }

    /// The pack files and folders the definitions are loaded from.
    pub(crate) fn pack_paths(&self) -> &[PathBuf] {
        &self.inner.pack_paths
    }

    /// Loads the packs again; without errors they replace the running definitions
    /// (and the org), with errors nothing changes and the report says why. Blocking.
    pub(crate) fn reload_packs(&self) -> Result<stagecraft_pack::Report, stagecraft_pack::Report> {
        self.inner.engine.reload_from(&self.inner.pack_paths)
    }

    /// The notification settings.
    pub fn notify_config(&self) -> &stagecraft_notify::NotifyConfig {
        &self.inner.notify
    }

    /// The folder of uploaded files.
    pub(crate) fn files_dir(&self) -> &std::path::Path {
        &self.inner.files_dir
    }

    /// Reads the organisation.
    pub(crate) fn with_org<T>(&self, read: impl FnOnce(&Directory) -> T) -> T {
        let org = self.inner.engine.org();
        let guard = org.read().unwrap_or_else(PoisonError::into_inner);
        read(&guard)
    }

    /// Whether `user` may see `record` (see `access.rs`).
    pub(crate) fn may_read(&self, user: &str, record: &stagecraft_runtime::Record) -> bool {
        let definitions = self.inner.engine.definitions();
        self.with_org(|org| crate::access::can_read(&definitions, org, user, record))
    }

    /// Whether `user` may change `record` (see `access.rs`).
    pub(crate) fn may_write(&self, user: &str, record: &stagecraft_runtime::Record) -> bool {
        let definitions = self.inner.engine.definitions();
        self.with_org(|org| crate::access::can_write(&definitions, org, user, record))
    }

    /// Whether the user is in the organisation.
    pub(crate) fn knows_user(&self, user: &str) -> bool {
        self.with_org(|org| org.user(user).is_some())
    }

    /// Fires the timers that are due and runs the scheduled scans that ticked, then
    /// forgets ended sessions and old login failures. Blocking: call it from a
    /// blocking thread. Returns how many timers fired and records were scanned.
    pub(crate) fn run_maintenance(&self) -> Result<(usize, usize), stagecraft_engine::EngineError> {
        let _running = self.inner.maintenance.lock().unwrap_or_else(PoisonError::into_inner);
        let engine = &self.inner.engine;
        let fired = engine.fire_due_timers()?;
        let scanned = engine.run_scheduled_scans()?;
        self.return_idle_to_pool()?;
        self.inner.sessions.prune(engine.now());
        self.inner.logins.prune(Instant::now());
        Ok((fired, scanned))
    }

    /// Runs the pools' idle sweep when the clock moved on by [`POOL_SWEEP_EVERY`] since
    /// it last ran (at start, and after a manual clock jumps ahead); returns how many
    /// records went back to their pool.
    fn return_idle_to_pool(&self) -> Result<usize, stagecraft_engine::EngineError> {
        use std::sync::atomic::Ordering;
        let engine = &self.inner.engine;
        let now = engine.now();
        let last = self.inner.pool_swept_at.load(Ordering::Relaxed);
        if last != i64::MIN && now.saturating_sub(last) < POOL_SWEEP_EVERY {
            return Ok(0);
        }
        let returned = engine.return_idle_to_pool()?;
        self.inner.pool_swept_at.store(now, Ordering::Relaxed);
        Ok(returned)
    }

    /// Returns once no round of timers and scans is running.
    pub(crate) fn wait_for_maintenance(&self) {
        drop(self.inner.maintenance.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The seed that picks which automatic approvals are audited: random per data folder,
/// so that nobody can tell in advance which deals will be checked, and stored, so
/// that the choice stays the same across restarts.
fn audit_seed(store: &dyn Store, now: i64) -> Result<u64, ServerError> {
    let stored = store.record(&RecordId::new(SERVER_RECORD))?;
    if let Some(seed) =
        stored.as_ref().and_then(|s| s.value.get("audit_seed")).and_then(Value::as_u64)
    {
        return Ok(seed);
    }
    let seed = OsRng.next_u64();
    let mut commit = Commit::at(now);
    commit.records.push(RecordWrite::create(
        SERVER_RECORD,
        SERVER_RECORD,
        json!({"audit_seed": seed}),
    ));
    store.commit(commit)?;
    Ok(seed)
}
