//! What every workload shares: result lines, statistics, memory, the repository's
//! packs and an engine over a fresh store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use serde_json::{Map, Value, json};
use stagecraft_engine::{Engine, EngineError, ManualClock, Target};
use stagecraft_pack::Definitions;
use stagecraft_runtime::Command;
use stagecraft_store::{Durability, OpenOptions, SledStore, Store};

/// One measured figure: every repeat's value, in `unit`.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// `B1` … `B6`, or `base` for a baseline.
    pub(crate) bench: &'static str,
    /// `stagecraft`, or the baseline's name.
    pub(crate) subject: String,
    /// What was measured, in a few words.
    pub(crate) what: String,
    pub(crate) unit: &'static str,
    pub(crate) values: Vec<f64>,
    pub(crate) higher_is_better: bool,
    /// `D0`, `D1`, `D2` or `-`.
    pub(crate) durability: &'static str,
    /// The size of the run, in words.
    pub(crate) size: String,
    /// Anything else worth keeping (counts, percentiles).
    pub(crate) extra: Value,
}

impl Figure {
    /// The result line the driver collects (with the process's peak RSS so far).
    pub(crate) fn line(&self) -> String {
        json!({
            "bench": self.bench,
            "subject": self.subject,
            "what": self.what,
            "unit": self.unit,
            "values": self.values,
            "higher_is_better": self.higher_is_better,
            "durability": self.durability,
            "size": self.size,
            "rss_kib": peak_rss_kib(),
            "extra": self.extra,
        })
        .to_string()
    }

    pub(crate) fn print(&self) {
        println!("{}", self.line());
    }
}

/// The median, minimum and maximum of some values.
pub(crate) fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median =
        if n % 2 == 1 { sorted[n / 2] } else { f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]) };
    (median, sorted[0], sorted[n - 1])
}

/// The value at a quantile (0..=1) of sorted values.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The peak resident set size of this process (VmHWM), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|line| line.starts_with("VmHWM:")).and_then(|line| {
                line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
}

/// The repository's root (where `flows/` and `schemas/` are).
pub(crate) fn root(given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_default()
    })
}

/// The shipped packs with the demo company's org (people, managers, roles).
pub(crate) fn shipped(root: &Path) -> anyhow::Result<Definitions> {
    load(&[root.join("flows"), root.join("schemas"), root.join("examples/demo/company.org.yaml")])
}

/// The pack of workload B4 (`crates/bench/pack`).
pub(crate) fn bench_pack(root: &Path) -> anyhow::Result<Definitions> {
    load(&[root.join("crates/bench/pack")])
}

fn load(paths: &[PathBuf]) -> anyhow::Result<Definitions> {
    match stagecraft_pack::load(paths) {
        Ok((definitions, _)) => Ok(definitions),
        Err(report) => Err(anyhow!("the packs do not load: {report:?}")),
    }
}

/// 2026-11-02 10:00 in China (a Monday, a working day), in Unix milliseconds.
pub(crate) const MONDAY_10AM: i64 = 1_793_584_800_000;

/// A store in a fresh folder under `dir`.
pub(crate) fn store(
    dir: &Path,
    name: &str,
    durability: Durability,
) -> anyhow::Result<Arc<SledStore>> {
    let path = dir.join(name);
    let store = SledStore::open_with(&path, &OpenOptions { durability })
        .with_context(|| format!("opening a store in {}", path.display()))?;
    Ok(Arc::new(store))
}

/// An engine over a store with a manual clock.
pub(crate) fn engine(
    store: Arc<SledStore>,
    definitions: Definitions,
    clock: Arc<ManualClock>,
) -> Engine {
    let store: Arc<dyn Store> = store;
    Engine::new(store, definitions, clock, 7)
}

/// Creates a record of `form` as `actor`; returns its id.
pub(crate) fn create(
    engine: &Engine,
    actor: &str,
    form: &str,
    fields: Value,
) -> Result<String, EngineError> {
    let fields: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
    let executed = engine.execute(
        Some(actor),
        Target::New,
        Command::Create { form: form.into(), fields, owner: None },
        None,
    )?;
    Ok(executed.record.id)
}

/// A customer owned by `actor`, for opportunities to link to.
pub(crate) fn customer(engine: &Engine, actor: &str, n: usize) -> anyhow::Result<String> {
    Ok(create(
        engine,
        actor,
        "customer",
        json!({"name": format!("基准客户 {n} 有限公司"), "region": "east", "level": "a"}),
    )?)
}

/// The fields of a new opportunity (amount above ¥500,000, so the split-deal alert's
/// rule answers at its first comparison).
pub(crate) fn opportunity(customer: &str, n: usize) -> Value {
    json!({
        "name": format!("基准商机 {n}"),
        "customer": customer,
        "amount": 880_000 + n % 1000,
        "expected_close_date": "2026-12-20",
    })
}

/// Seconds since `start`.
pub(crate) fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
