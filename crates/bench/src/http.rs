//! B3 and the HTTP ceiling: a small closed-loop load generator (keep-alive HTTP/1.1
//! connections, each sending its next request when the answer arrived) against an
//! axum hello-world and against the real server, both in this process on the same
//! two-worker runtime, with the generator on one thread of its own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use stagecraft_server::{AppState, Config, PasswordCost};
use stagecraft_store::Page;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Figure, quantile};

/// What one run of the generator saw.
#[derive(Debug, Default)]
pub(crate) struct Load {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) seconds: f64,
    /// Latencies of the answered requests, in milliseconds, sorted.
    pub(crate) latencies_ms: Vec<f64>,
}

impl Load {
    pub(crate) fn per_second(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// Reads one HTTP/1.1 answer; returns its status and body.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).context("no status")?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[head_end..head_end + length].to_vec()))
}

/// One request as bytes.
pub(crate) fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\n");
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Sends one request on a new connection and returns status and body.
pub(crate) async fn once(addr: SocketAddr, bytes: &[u8]) -> anyhow::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut buf = Vec::new();
    let (status, body) = read_answer(&mut stream, &mut buf).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Runs `connections` closed loops for `duration`, each sending `bytes` and expecting
/// `expect`. Runs on its own single-threaded runtime on a thread of its own.
pub(crate) fn generate(
    addr: SocketAddr,
    bytes: Vec<u8>,
    expect: u16,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bytes = Arc::new(bytes);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                runtime.block_on(async {
                    let start = Instant::now();
                    let deadline = start + duration;
                    let mut handles = Vec::new();
                    for _ in 0..connections {
                        let bytes = bytes.clone();
                        handles.push(tokio::spawn(async move {
                            let mut load = Load::default();
                            let mut stream = match TcpStream::connect(addr).await {
                                Ok(stream) => stream,
                                Err(error) => {
                                    load.failed += 1;
                                    load.first_failure = Some(error.to_string());
                                    return load;
                                }
                            };
                            let _ = stream.set_nodelay(true);
                            let mut buf = Vec::with_capacity(16 * 1024);
                            while Instant::now() < deadline {
                                let sent = Instant::now();
                                if let Err(error) = stream.write_all(&bytes).await {
                                    load.failed += 1;
                                    load.first_failure.get_or_insert(error.to_string());
                                    break;
                                }
                                match read_answer(&mut stream, &mut buf).await {
                                    Ok((status, _)) if status == expect => {
                                        load.ok += 1;
                                        load.latencies_ms
                                            .push(sent.elapsed().as_secs_f64() * 1000.0);
                                    }
                                    Ok((status, body)) => {
                                        load.failed += 1;
                                        load.first_failure.get_or_insert(format!(
                                            "{status}: {}",
                                            String::from_utf8_lossy(&body)
                                        ));
                                    }
                                    Err(error) => {
                                        load.failed += 1;
                                        load.first_failure.get_or_insert(error.to_string());
                                        break;
                                    }
                                }
                            }
                            load
                        }));
                    }
                    let mut total = Load::default();
                    for handle in handles {
                        let load = handle.await.unwrap_or_default();
                        total.ok += load.ok;
                        total.failed += load.failed;
                        if total.first_failure.is_none() {
                            total.first_failure = load.first_failure;
                        }
                        total.latencies_ms.extend(load.latencies_ms);
                    }
                    total.seconds = start.elapsed().as_secs_f64();
                    total.latencies_ms.sort_by(f64::total_cmp);
                    total
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))
    })
}

/// The server side: a two-worker runtime, as on a two-core machine.
fn server_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// Runs `repeats` loads of `seconds` and describes them as figures.
#[allow(clippy::too_many_arguments)]
fn measure(
    bench: &'static str,
    subject: &str,
    durability: &'static str,
    addr: SocketAddr,
    bytes: Vec<u8>,
    expect: u16,
    connections: usize,
    seconds: f64,
    repeats: usize,
) -> anyhow::Result<Vec<Figure>> {
    // A short warm-up: connections, caches, the store's first pages.
    generate(addr, bytes.clone(), expect, connections, Duration::from_secs_f64(seconds / 4.0))?;
    let mut rates = Vec::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut failed = 0;
    let mut first_failure = None;
    for _ in 0..repeats {
        let load =
            generate(addr, bytes.clone(), expect, connections, Duration::from_secs_f64(seconds))?;
        rates.push(load.per_second());
        p50.push(quantile(&load.latencies_ms, 0.50));
        p99.push(quantile(&load.latencies_ms, 0.99));
        failed += load.failed;
        if first_failure.is_none() {
            first_failure = load.first_failure;
        }
    }
    if let Some(failure) = &first_failure {
        eprintln!("{bench} {subject}: {failed} failed requests, first: {failure}");
    }
    let size = format!("{connections} connections, {repeats} × {seconds} s");
    let extra =
        json!({"failed": failed, "first_failure": first_failure, "connections": connections});
    let figure = |what: &str, unit: &'static str, values: Vec<f64>, higher: bool| Figure {
        bench,
        subject: subject.to_owned(),
        what: what.to_owned(),
        unit,
        values,
        higher_is_better: higher,
        durability,
        size: size.clone(),
        extra: extra.clone(),
    };
    Ok(vec![
        figure("throughput", "req/s", rates, true),
        figure("latency p50", "ms", p50, false),
        figure("latency p99", "ms", p99, false),
    ])
}

/// The HTTP ceiling: axum answering `GET /` with a short text.
pub(crate) fn hello(
    connections: usize,
    seconds: f64,
    repeats: usize,
) -> anyhow::Result<Vec<Figure>> {
    let runtime = server_runtime()?;
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
    runtime.spawn(async move { axum::serve(listener, app).await });
    let bytes = request("GET", "/", None, None);
    measure("base", "axum hello-world", "-", addr, bytes, 200, connections, seconds, repeats)
}

/// B3: `POST /api/records/opportunity` through the real server (sign-in with a bearer
/// token, access checks, validation, link check, the flow's start with its SLA timer,
/// the split-deal alert's rule, one D2 commit with group commit, the JSON answer).
pub(crate) fn b3(
    root: &Path,
    dir: &Path,
    connections: usize,
    seconds: f64,
    repeats: usize,
) -> anyhow::Result<Vec<Figure>> {
    let runtime = server_runtime()?;
    let config = Config {
        addr: "127.0.0.1:0".parse()?,
        data: dir.join("b3-data"),
        packs: vec![root.join("flows"), root.join("schemas")],
        demo: Some(root.join("examples/demo")),
        password_cost: PasswordCost::Low,
        ..Config::default()
    };
    let (state, _) = AppState::open(&config).map_err(|error| anyhow::anyhow!("{error}"))?;
    // A customer of rep01's, for the new opportunities to link to.
    let engine = state.engine().clone();
    let mut customer = None;
    for id in engine.store().records_of_form("customer", Page::first(500))? {
        if let Some(record) = engine.record(id.as_str())? {
            if record.owner.as_deref() == Some("rep01") {
                customer = Some(record.id);
                break;
            }
        }
    }
    let customer = customer.context("the demo company has no customer of rep01's")?;
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = stagecraft_server::app(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    let login = request(
        "POST",
        "/api/session",
        None,
        Some(&json!({"username": "rep01", "password": stagecraft_server::DEMO_PASSWORD})),
    );
    let (status, body) = runtime.block_on(once(addr, &login))?;
    let token = body.get("token").and_then(Value::as_str).map(str::to_owned);
    let Some(token) = token.filter(|_| status == 200) else {
        bail!("sign-in failed: {status} {body}");
    };
    let fields = json!({"fields": crate::common::opportunity(&customer, 1)});
    let bytes = request("POST", "/api/records/opportunity", Some(&token), Some(&fields));
    let figures =
        measure("B3", "stagecraft", "D2", addr, bytes, 201, connections, seconds, repeats)?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(figures)
}
