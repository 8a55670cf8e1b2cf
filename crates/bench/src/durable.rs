//! The durable workloads — B4 transitions, B5 scans, B6 timers — and the storage
//! baselines (an fsync probe, raw sled inserts).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use stagecraft_engine::{Engine, ManualClock, Target};
use stagecraft_runtime::Command;
use stagecraft_store::{Durability, SledStore, Store};

use crate::common::{
    Figure, MONDAY_10AM, bench_pack, create, customer, engine, opportunity, quantile, seconds,
    shipped, store,
};

const DAY_MS: i64 = 86_400_000;

/// The single-writer fsync probe: append 4 KiB and `fdatasync`, one at a time.
pub(crate) fn fsync_probe(dir: &Path, count: usize, repeats: usize) -> anyhow::Result<Vec<Figure>> {
    let path = dir.join("fsync-probe");
    let mut values = Vec::new();
    for _ in 0..repeats {
        let mut file = std::fs::File::create(&path)?;
        let block = vec![7u8; 4096];
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            file.write_all(&block)?;
            let start = Instant::now();
            file.sync_data()?;
            latencies.push(start.elapsed().as_secs_f64() * 1e6);
        }
        latencies.sort_by(f64::total_cmp);
        values.push(quantile(&latencies, 0.5));
    }
    std::fs::remove_file(&path)?;
    Ok(vec![Figure {
        bench: "base",
        subject: "fsync probe".into(),
        what: "append 4 KiB + fdatasync, median latency".into(),
        unit: "µs",
        values,
        higher_is_better: false,
        durability: "D2",
        size: format!("{count} syncs × {repeats}"),
        extra: json!({}),
    }])
}

/// Raw sled: inserts of 512-byte values, without flushing (D0: sled writes its log
/// in the background) and with a flush after each insert (D2, one writer).
pub(crate) fn sled_raw(
    dir: &Path,
    count: usize,
    flushed: usize,
    repeats: usize,
) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for (flush, n) in [(false, count), (true, flushed)] {
        let mut values = Vec::new();
        for repeat in 0..repeats {
            let path = dir.join(format!("sled-raw-{flush}-{repeat}"));
            let db = sled::Config::new().path(&path).open()?;
            let value = vec![42u8; 512];
            let start = Instant::now();
            for i in 0..n as u64 {
                db.insert(i.to_be_bytes(), value.as_slice())?;
                if flush {
                    db.flush()?;
                }
            }
            values.push(n as f64 / seconds(start));
            drop(db);
            std::fs::remove_dir_all(&path)?;
        }
        figures.push(Figure {
            bench: "base",
            subject: if flush { "sled insert + flush".into() } else { "sled insert".into() },
            what: "inserts of 512 B, one writer".into(),
            unit: "ops/s",
            values,
            higher_is_better: true,
            durability: if flush { "D2" } else { "D0" },
            size: format!("{n} inserts × {repeats}"),
            extra: json!({}),
        });
    }
    Ok(figures)
}

/// The fields of a B4 deal: every gate of the bench flow holds.
fn deal(n: usize) -> Value {
    json!({"name": format!("deal {n}"), "amount": 880_000 + n, "contact": "王经理",
           "discount": 0.1, "signed_at": "2026-11-02"})
}

const STAGES: [&str; 5] = ["qualified", "proposal", "negotiation", "contract", "won"];

/// Creates a deal and moves it through the five gated transitions.
fn walk(engine: &Engine, n: usize) -> anyhow::Result<()> {
    let id = create(engine, "bench", "bench_deal", deal(n))?;
    for stage in STAGES {
        engine.execute(
            Some("bench"),
            Target::Existing(id.clone()),
            Command::Transition { to: stage.into() },
            None,
        )?;
    }
    Ok(())
}

/// B4: `records` deals × 5 gated transitions through the engine, each command one
/// commit; `writers` threads share the records.
pub(crate) fn b4(
    root: &Path,
    dir: &Path,
    records: usize,
    writers: usize,
    durability: Durability,
    repeats: usize,
) -> anyhow::Result<Vec<Figure>> {
    let mut values = Vec::new();
    let mut flushes = Vec::new();
    for repeat in 0..repeats {
        let name = format!("b4-{writers}-{repeat}");
        let store = store(dir, &name, durability)?;
        let engine =
            engine(store.clone(), bench_pack(root)?, Arc::new(ManualClock::new(MONDAY_10AM)));
        let start = Instant::now();
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let engine = &engine;
                    scope.spawn(move || -> anyhow::Result<()> {
                        for n in (w..records).step_by(writers) {
                            walk(engine, n)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
            }
            Ok(())
        })?;
        let elapsed = seconds(start);
        values.push((records * 5) as f64 / elapsed);
        flushes.push(store.stats().flushes);
        // Every deal reached `won`.
        let won = engine
            .store()
            .records_of_form("bench_deal", stagecraft_store::Page::first(records + 1))?
            .len();
        if won != records {
            bail!("B4: {won} deals stored, {records} expected");
        }
        drop(engine);
        drop(store);
        std::fs::remove_dir_all(dir.join(&name))?;
    }
    let label = match durability {
        Durability::Flush => "D2",
        Durability::None => "D0",
    };
    Ok(vec![Figure {
        bench: "B4",
        subject: if writers == 1 {
            format!("stagecraft {label}")
        } else {
            format!("stagecraft {label}, {writers} writers")
        },
        what: "gated transitions (create + 5 transitions per deal, timed together)".into(),
        unit: "transitions/s",
        values,
        higher_is_better: true,
        durability: label,
        size: format!("{records} deals × 5 transitions × {repeats}"),
        extra: json!({"flushes": flushes, "writers": writers}),
    }])
}

/// Customers for the opportunities of B5 and B6, owned by reps of the demo company.
fn customers(engine: &Engine) -> anyhow::Result<Vec<String>> {
    (0..8).map(|n| customer(engine, "rep01", n)).collect()
}

/// Fills a store at D0 (setup is not what is measured), flushes it and opens it again
/// at D2 with a new engine on `clock`.
fn setup(
    root: &Path,
    dir: &Path,
    name: &str,
    clock: &Arc<ManualClock>,
    fill: impl FnOnce(&Engine, &Arc<ManualClock>) -> anyhow::Result<()>,
) -> anyhow::Result<(Arc<SledStore>, Engine, f64)> {
    let start = Instant::now();
    {
        let store = store(dir, name, Durability::None)?;
        let engine = engine(store.clone(), shipped(root)?, clock.clone());
        fill(&engine, clock)?;
        store.flush()?;
    }
    let took = seconds(start);
    let store = store(dir, name, Durability::Flush)?;
    let engine = engine(store.clone(), shipped(root)?, clock.clone());
    Ok((store, engine, took))
}

/// Counts the events of `kind` after `sequence`, by record.
fn events_by_record(
    store: &dyn Store,
    after: u64,
    kind: &str,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    let mut sequence = after;
    loop {
        let events = store.events_since(sequence, 10_000)?;
        let Some(last) = events.last() else { break };
        sequence = last.sequence;
        for event in &events {
            if event.kind == kind {
                *counts.entry(event.record.to_string()).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

/// B5: the daily stalled-deal scan (`alert stalled-deal`, cron `0 9 * * *`) over
/// `total` opportunities of which 5% have been in their stage for 10 days.
pub(crate) fn b5(root: &Path, dir: &Path, total: usize) -> anyhow::Result<Vec<Figure>> {
    let matching = total / 20;
    let clock = Arc::new(ManualClock::new(MONDAY_10AM - 10 * DAY_MS));
    let (store, engine, setup_s) = setup(root, dir, "b5", &clock, |engine, clock| {
        let customers = customers(engine)?;
        for n in 0..total {
            if n == matching {
                clock.set(MONDAY_10AM);
            }
            create(
                engine,
                "rep01",
                "opportunity",
                opportunity(&customers[n % customers.len()], n),
            )?;
        }
        Ok(())
    })?;
    clock.set(MONDAY_10AM);
    // The first run only records when the schedules start.
    engine.run_scheduled_scans()?;
    clock.set(MONDAY_10AM + DAY_MS);
    let sequence = store.next_event_sequence()?.saturating_sub(1);
    let commits = store.stats().commits;
    let start = Instant::now();
    let scanned = engine.run_scheduled_scans()?;
    let took = seconds(start);
    let commits = store.stats().commits - commits;
    let raised = events_by_record(store.as_ref(), sequence, "alert_raised")?;
    let raised_total: usize = raised.values().sum();
    if raised_total != matching {
        bail!("B5: {raised_total} alerts raised, {matching} expected");
    }
    let size = format!("{total} opportunities, {matching} matching (5%), 1 scan");
    Ok(vec![Figure {
        bench: "B5",
        subject: "stagecraft".into(),
        what: "scheduled alert scan, wall time".into(),
        unit: "s",
        values: vec![took],
        higher_is_better: false,
        durability: "D2",
        size,
        extra: json!({
            "records": total, "matching": matching, "scanned": scanned, "commits": commits,
            "alerts": raised_total, "us_per_record": took * 1e6 / total as f64,
            "setup_s": setup_s, "target_s": 1.0,
        }),
    }])
}

/// B6: `total` SLA timers (the lead stage's two working days) due at one instant; the
/// clock jumps to it and the engine fires them. Lateness is read off the store's
/// commit counter, sampled every 2 ms (one commit per fired timer; each SLA fires its
/// own timer and then its escalation ladder's first step, due at once).
pub(crate) fn b6(root: &Path, dir: &Path, total: usize) -> anyhow::Result<Vec<Figure>> {
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let (store, engine, setup_s) = setup(root, dir, "b6", &clock, |engine, _| {
        let customers = customers(engine)?;
        for n in 0..total {
            create(
                engine,
                "rep01",
                "opportunity",
                opportunity(&customers[n % customers.len()], n),
            )?;
        }
        Ok(())
    })?;
    let due = store.timers_due(i64::MAX, 1)?.first().map(|t| t.due_ms).context("no timers")?;
    let window = store.timers_due(due, total + 1)?.len();
    if window != total {
        bail!("B6: {window} timers due at {due}, {total} expected");
    }
    clock.set(due);
    let sequence = store.next_event_sequence()?.saturating_sub(1);
    let base = store.stats().commits;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (fired, samples) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push((seconds(start), store.stats().commits - base));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples.push((seconds(start), store.stats().commits - base));
            samples
        });
        let fired = engine.fire_due_timers();
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
        Ok((fired?, samples))
    })?;
    let took = seconds(start);
    let breached = events_by_record(store.as_ref(), sequence, "sla_breached")?;
    let exactly_once = breached.len() == total && breached.values().all(|n| *n == 1);
    let left = store.timers_due(due, 10)?.len();
    // Each lead SLA fires its timer and then the ladder's first step (after 0m), which
    // is a timer of its own due at the same instant: two per record.
    if fired < total || !exactly_once || left != 0 {
        bail!(
            "B6: fired {fired} of {total}, {} records breached ({} more than once), {left} left",
            breached.len(),
            breached.values().filter(|n| **n > 1).count()
        );
    }
    // The time by which a share of the timers had fired.
    let at = |share: f64| {
        let needed = (share * fired as f64).ceil() as u64;
        samples.iter().find(|(_, done)| *done >= needed).map_or(took, |(t, _)| *t)
    };
    let lateness: Vec<f64> = (1..=100).map(|p| at(p as f64 / 100.0)).collect();
    let size = format!("{total} timers due at one instant, 1 run");
    let extra = json!({
        "timers": total, "fired": fired, "commits": samples.last().map_or(0, |s| s.1), "exactly_once": exactly_once,
        "p50_s": quantile(&lateness, 0.49), "p99_s": lateness[98], "max_s": took,
        "per_second": total as f64 / took, "setup_s": setup_s, "target_p99_s": 1.0,
    });
    let figure = |what: &str, value: f64| Figure {
        bench: "B6",
        subject: "stagecraft".into(),
        what: what.into(),
        unit: "s",
        values: vec![value],
        higher_is_better: false,
        durability: "D2",
        size: size.clone(),
        extra: extra.clone(),
    };
    Ok(vec![figure("lateness p99 (all due at once)", lateness[98]), figure("fire all", took)])
}
