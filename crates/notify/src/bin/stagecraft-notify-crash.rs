//! The kill -9 harness of the delivery worker (`tests/crash/notify-run`).
//!
//! `stagecraft-notify-crash [--notifications N] [--kills K] [--max-delay-ms M]
//! [--seed S] [--dir PATH]` writes N notifications to the outbox of a fresh store
//! (each to a signed webhook), starts a local HTTP receiver that counts every request
//! by its `webhook-id`, then K times starts a worker process and kills it with SIGKILL
//! after a random 20..M ms; finally a worker runs until everything is delivered. It
//! prints the figures — notifications, distinct ids received, lost, repeated and the
//! crash window allowed (K × in-flight deliveries) — and exits 0 only when nothing is
//! lost and the repeats stay within the window.
//!
//! `stagecraft-notify-crash worker --dir PATH --url URL [--until-done]` is the worker
//! process itself.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use stagecraft_engine::{Engine, SystemClock};
use stagecraft_notify::config::WebhookConfig;
use stagecraft_notify::{IN_FLIGHT, Notifier, NotifyConfig, RetryPolicy, Secret, delivery};
use stagecraft_store::{Commit, SledStore, Store};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pack of one template, so that the harness depends on nothing else.
fn write_pack(dir: &Path) -> std::io::Result<PathBuf> {
    let pack = dir.join("pack");
    std::fs::create_dir_all(pack.join("templates"))?;
    std::fs::write(
        pack.join("pack.yaml"),
        "stagecraft: 1\nname: crash\nversion: 1.0.0\ntitle: 投递测试\n",
    )?;
    std::fs::write(
        pack.join("templates/crash.zh-CN.hbs"),
        "{{#*inline \"subject\"}}投递测试 {{cause}}{{/inline}}\n第 {{cause}} 条通知。\n",
    )?;
    Ok(pack)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        return worker(&args);
    }
    harness(&args)
}

fn open_engine(store_dir: &Path) -> Result<Arc<Engine>, String> {
    let paths = [store_dir.with_file_name("pack")];
    let (definitions, _) = stagecraft_pack::load(&paths)
        .map_err(|report| format!("the test pack has {} errors", report.error_count()))?;
    // A restarted worker may find the killed one's lock still held for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match SledStore::open(store_dir) {
            Ok(store) => break store,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(format!("cannot open the store: {error}")),
        }
    };
    let store: Arc<dyn Store> = Arc::new(store);
    Ok(Arc::new(Engine::new(store, definitions, Arc::new(SystemClock), 1)))
}

fn worker(args: &[String]) -> ExitCode {
    let dir: PathBuf = arg(args, "--dir", PathBuf::from("crash-notify"));
    let url: String = arg(args, "--url", String::new());
    let until_done = args.iter().any(|a| a == "--until-done");
    let engine = match open_engine(&dir.join("store")) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let config = NotifyConfig {
        webhook: Some(WebhookConfig { url: Secret::new(url), secret: Secret::new("crash-test") }),
        retry: RetryPolicy {
            attempts: 100,
            first_delay_ms: 50,
            max_delay_ms: 200,
            timeout_ms: 5_000,
        },
        ..NotifyConfig::default()
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        return ExitCode::from(1);
    };
    let notifier = match Notifier::new(engine.clone(), config) {
        Ok(notifier) => notifier,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        loop {
            if let Err(error) = notifier.round().await {
                eprintln!("error: {error}");
            }
            if until_done {
                let store = engine.store();
                let pending = store.outbox_pending(1).map(|rows| rows.len()).unwrap_or(1);
                let active =
                    delivery::indexed(store.as_ref(), "active", 1).map(|a| a.len()).unwrap_or(1);
                if pending == 0 && active == 0 {
                    return ExitCode::SUCCESS;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
}

/// Counts requests by `webhook-id`; answers 200 after a short pause, so that kills
/// land while deliveries are in flight.
fn receiver(counts: Arc<Mutex<BTreeMap<String, usize>>>) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || answer(stream, &counts));
        }
    });
    Ok(format!("http://{addr}/hook"))
}

fn answer(stream: TcpStream, counts: &Mutex<BTreeMap<String, usize>>) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut id) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "webhook-id" => id = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
        if let Ok(mut counts) = counts.lock() {
            *counts.entry(id).or_default() += 1;
        }
        if writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").is_err() {
            return;
        }
    }
}

fn harness(args: &[String]) -> ExitCode {
    let notifications: usize = arg(args, "--notifications", 1000);
    let kills: usize = arg(args, "--kills", 10);
    let max_delay_ms: u64 = arg(args, "--max-delay-ms", 400).max(21);
    let seed: u64 = arg(args, "--seed", fastrand::u64(..));
    fastrand::seed(seed);
    let scratch = tempfile_dir();
    let dir: PathBuf = arg(args, "--dir", scratch.clone());
    let _ = std::fs::remove_dir_all(&dir);
    println!("seed={seed} notifications={notifications} kills={kills} dir={}", dir.display());

    let counts: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let url = match receiver(counts.clone()) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("error: cannot start the receiver: {error}");
            return ExitCode::from(1);
        }
    };
    // The notifications, written as the engine writes them: rows in the outbox.
    {
        if let Err(error) = write_pack(&dir) {
            eprintln!("error: cannot write the test pack: {error}");
            return ExitCode::from(1);
        }
        let store = match SledStore::open(dir.join("store")) {
            Ok(store) => store,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(1);
            }
        };
        for chunk in (0..notifications).collect::<Vec<_>>().chunks(100) {
            let mut commit = Commit::at(0);
            for n in chunk {
                commit.outbox.push(json!({
                    "record": null, "to": ["admin"], "template": "crash",
                    "channels": ["webhook"], "cause": format!("crash-test-{n}"), "at": 0,
                }));
            }
            if let Err(error) = store.commit(commit) {
                eprintln!("error: {error}");
                return ExitCode::from(1);
            }
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let received = |counts: &Mutex<BTreeMap<String, usize>>| {
        counts.lock().map(|c| c.values().sum::<usize>()).unwrap_or(0)
    };
    let mut killed_in_flight = 0;
    for round in 0..kills {
        let mut child =
            match Command::new(&exe).args(["worker", "--url", &url, "--dir"]).arg(&dir).spawn() {
                Ok(child) => child,
                Err(error) => {
                    eprintln!("error: cannot start a worker: {error}");
                    return ExitCode::from(1);
                }
            };
        let delay = 20 + fastrand::u64(0..max_delay_ms - 20);
        // Wait until deliveries flow (startup loads the packs), then kill at random.
        let before = received(&counts);
        let started = Instant::now();
        while received(&counts) == before && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = received(&counts);
        if now > before {
            killed_in_flight += 1;
        }
        println!("kill {}: after {delay} ms of delivery, {now} requests received", round + 1);
    }
    let status = Command::new(&exe)
        .args(["worker", "--until-done", "--url", &url, "--dir"])
        .arg(&dir)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("error: the last worker did not finish");
        return ExitCode::from(1);
    }
    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
    let expected: Vec<String> =
        (1..=notifications as u64).map(|n| format!("{n}.webhook.endpoint")).collect();
    let lost = expected.iter().filter(|id| !counts.contains_key(*id)).count();
    let unexpected = counts.keys().filter(|id| !expected.contains(id)).count();
    let total: usize = counts.values().sum();
    let repeated = total - counts.len();
    let window = kills * IN_FLIGHT;
    let max_repeats = counts.values().copied().max().unwrap_or(0);
    println!(
        "kills={kills} killed_during_delivery={killed_in_flight} notifications={notifications} \
         received_distinct={} requests={total} lost={lost} repeated={repeated} \
         max_copies_of_one={max_repeats} crash_window_allows={window} (in flight per kill: {IN_FLIGHT})",
        counts.len()
    );
    if dir == scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if lost == 0 && unexpected == 0 && repeated <= window {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn tempfile_dir() -> PathBuf {
    std::env::temp_dir().join(format!("stagecraft-notify-crash-{}", std::process::id()))
}
