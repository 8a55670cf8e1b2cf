//! Running the server: bind, serve the API, fire timers and run scans in the
//! background, and stop cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use crate::api::app;
use crate::config::Config;
use crate::error::ServerError;
use crate::state::{AppState, Startup};
use crate::watch::{self, Snapshot, Watcher};

/// How often due timers fire and scheduled scans run.
const TICK: Duration = Duration::from_secs(5);

/// A server that has loaded everything and bound its address, ready to run.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    startup: Startup,
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Loads the packs, opens the data folder (creating the demo company if asked) and
    /// binds the address. Blocking.
    pub fn open(config: &Config) -> Result<Server, ServerError> {
        let (state, startup) = AppState::open(config)?;
        let listener = std::net::TcpListener::bind(config.addr)
            .map_err(|source| ServerError::Bind { addr: config.addr, source })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Server { state, startup, listener, addr })
    }

    /// The address it listens on (with the port chosen, when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One line saying which notification channels are on.
    pub fn notifications(&self) -> String {
        self.state.notify_config().describe()
    }

    /// What it loaded.
    pub fn startup(&self) -> &Startup {
        &self.startup
    }

    /// Serves until Ctrl-C or SIGTERM, then lets requests in flight and a running
    /// timer round finish. Blocking.
    pub fn run(self) -> Result<(), ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(self.serve())
    }

    async fn serve(self) -> Result<(), ServerError> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let ticker = tokio::spawn(tick(self.state.clone()));
        // The delivery worker (`stagecraft-notify`): the outbox to inboxes, e-mail,
        // chat robots and webhooks.
        let notifier = stagecraft_notify::Notifier::new(
            self.state.engine().clone(),
            self.state.notify_config().clone(),
        )
        .map_err(std::io::Error::other)?;
        let delivering = tokio::spawn(notifier.run());
        let watcher = tokio::spawn(watch_packs(self.state.clone()));
        let served = axum::serve(listener, app(self.state.clone()))
            .with_graceful_shutdown(shutdown_signal())
            .await;
        ticker.abort();
        watcher.abort();
        delivering.abort();
        // A round of timers may be running on a blocking thread; wait for it, so
        // that the store closes after its last commit.
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.wait_for_maintenance())
            .await
            .map_err(std::io::Error::other)?;
        served?;
        Ok(())
    }
}

/// Fires due timers and runs scheduled scans every [`TICK`], starting at once (so
/// that what fell due while the server was down happens first).
async fn tick(state: AppState) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let running = state.clone();
        match tokio::task::spawn_blocking(move || running.run_maintenance()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => eprintln!("error: firing timers: {error}"),
            Err(error) => eprintln!("error: firing timers: {error}"),
        }
    }
}

/// Loads the packs again when their files change (see `watch.rs`), and says on the
/// console what happened: the packs loaded, or each problem and that the running
/// definitions stay.
async fn watch_packs(state: AppState) {
    let paths = state.pack_paths().to_vec();
    let listing = paths.clone();
    let Ok(first) = tokio::task::spawn_blocking(move || Snapshot::take(&listing)).await else {
        return;
    };
    let mut watcher = Watcher::new(first);
    let mut interval = tokio::time::interval(watch::POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let listing = paths.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || Snapshot::take(&listing)).await else {
            continue;
        };
        if !watcher.poll(now) {
            continue;
        }
        let loading = state.clone();
        match tokio::task::spawn_blocking(move || loading.reload_packs()).await {
            Ok(Ok(report)) => eprintln!(
                "reloaded the packs: {} packs, {} warnings",
                report.packs.len(),
                report.warning_count()
            ),
            Ok(Err(report)) => {
                for diagnostic in &report.diagnostics {
                    eprintln!("{diagnostic}");
                }
                eprintln!(
                    "error: the changed packs have {} errors; the running definitions stay \
                     until they are fixed",
                    report.error_count()
                );
            }
            Err(error) => eprintln!("error: reloading the packs: {error}"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without the handler, only SIGTERM stops the server.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
