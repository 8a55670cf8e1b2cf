//! The kill -9 harness: a writer process commits and acknowledges, this process kills
//! it at a random moment, reopens the store and checks that every acknowledged commit
//! survived and that no commit survived in part.
//!
//! Usage: `stagecraft-crash [--rounds N] [--seed S] [--threads T] [--max-delay-ms M]
//! [--full-every K] [--dir PATH]`. The last line printed is
//! `rounds=N acknowledged=A lost=L torn=T`; the exit code is 0 only when nothing was
//! lost or torn.
//!
//! Each round the writer commits from several threads. A creation commits a record,
//! one or two events, index entries, a task, a timer, an outbox row and an
//! idempotency key; an update (of a record the same thread created in the same round)
//! commits a new version with other index entries, an event, a closed task, a removed
//! timer, a delivered outbox row and a new one. After `commit` returns the writer
//! prints `ack <record-id> <version>`. The data directory is kept across rounds, so
//! later rounds recover stores that were killed before, including kills during
//! startup and while opening.
//!
//! After each kill: every acknowledged record (of every round so far) must be there at
//! its acknowledged version or later, or it counts as lost. Every record the round
//! wrote must have every row of its commits, and no row may be there without its
//! record, or it counts as torn; so must the events and outbox rows the round added,
//! and the event log must continue without a gap. A kill can only cut commits of the
//! round it ends, so those checks look at that round; every `--full-every` rounds and
//! after the last one they cover every round again, together with `verify`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use stagecraft_store::{
    Commit, IdempotencyClaim, IndexValue, NewEvent, NewTask, NewTimer, OutboxId, Page, RecordId,
    RecordWrite, SledStore, Store, StoreError, StoredRecord, TaskChange, TaskId, TimerChange,
    TimerId,
};

const FORM: &str = "crash";
const USAGE: &str = "usage: stagecraft-crash [--rounds N] [--seed S] [--threads T] \
                     [--max-delay-ms M] [--full-every K] [--dir PATH]";
/// A thread's record numbers have gaps where it updated instead of creating; this
/// many missing numbers in a row mean the thread wrote no further records.
const PROBE_PAST: u64 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("writer") => writer(&args[1..]),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => parent(&args),
    };
    result.unwrap_or_else(|message| {
        eprintln!("stagecraft-crash: {message}");
        ExitCode::from(2)
    })
}

/// splitmix64: small, seedable and good enough to pick delays and shapes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// The records of one round: `<batch>-w<thread>-<n>`.
fn record_id(batch: &str, thread: u64, n: u64) -> String {
    format!("{batch}-w{thread}-{n:06}")
}

fn phase(batch: &str, step: u64) -> IndexValue {
    IndexValue::Text(format!("{batch}/{step}"))
}

fn assignee(thread: u64) -> String {
    format!("worker-{thread}")
}

// ---------------------------------------------------------------------------------
// The writer.

#[derive(Debug, Default)]
struct WriterArgs {
    dir: PathBuf,
    batch: String,
    threads: u64,
    seed: u64,
}

fn parse_writer(args: &[String]) -> Result<WriterArgs, String> {
    let mut parsed = WriterArgs { threads: 1, ..WriterArgs::default() };
    let mut args = args.iter();
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        let number = || value.parse::<u64>().map_err(|_| format!("writer: {flag} needs a number"));
        match flag.as_str() {
            "--dir" => parsed.dir = PathBuf::from(value),
            "--batch" => parsed.batch = value.clone(),
            "--threads" => parsed.threads = number()?,
            "--seed" => parsed.seed = number()?,
            other => return Err(format!("writer: unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

fn writer(args: &[String]) -> Result<ExitCode, String> {
    let args = parse_writer(args)?;
    let store =
        SledStore::open(&args.dir).map_err(|error| format!("writer cannot open: {error}"))?;
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for thread in 0..args.threads {
            let (store, failed, batch) = (&store, &failed, args.batch.as_str());
            let seed = args.seed ^ thread.wrapping_mul(0x5851_F42D_4C95_7F2D);
            scope.spawn(move || {
                if let Err(message) = write_forever(store, batch, thread, seed) {
                    eprintln!("stagecraft-crash writer: {message}");
                    failed.store(true, Ordering::SeqCst);
                }
            });
        }
    });
    // The threads only stop on an error: the parent normally kills the writer first.
    Ok(if failed.load(Ordering::SeqCst) { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

struct Created {
    id: String,
    events: u64,
    outbox: OutboxId,
}

fn write_forever(store: &SledStore, batch: &str, thread: u64, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let mut created: Vec<Created> = Vec::new();
    for n in 0.. {
        let update = rng.below(3) == 0 && !created.is_empty();
        let (id, version) = if update {
            let record = created.remove(0);
            store
                .commit(update_commit(batch, &record))
                .map_err(|error| format!("update of {} failed: {error}", record.id))?;
            (record.id, 2)
        } else {
            let id = record_id(batch, thread, n);
            let events = 1 + rng.below(2);
            let receipt = store
                .commit(create_commit(batch, &id, thread, events))
                .map_err(|error| format!("creation of {id} failed: {error}"))?;
            let outbox = *receipt
                .outbox
                .first()
                .ok_or_else(|| format!("creation of {id} added no outbox row"))?;
            created.push(Created { id: id.clone(), events, outbox });
            (id, 1)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack {id} {version}")
            .and_then(|()| out.flush())
            .map_err(|error| format!("cannot acknowledge: {error}"))?;
    }
    Ok(())
}

fn create_commit(batch: &str, id: &str, thread: u64, events: u64) -> Commit {
    let at_ms = now_ms();
    Commit {
        at_ms,
        records: vec![
            RecordWrite::create(id, FORM, json!({"step": 1, "events": events}))
                .indexed("key", id)
                .indexed("phase", phase(batch, 1)),
        ],
        events: (0..events)
            .map(|event| NewEvent::new(id, "created", json!({"event": event})))
            .collect(),
        tasks: vec![TaskChange::Upsert(NewTask {
            id: format!("task-{id}").into(),
            assignee: assignee(thread),
            due_ms: Some(at_ms + 60_000),
            data: json!({"record": id}),
        })],
        timers: vec![TimerChange::Add(NewTimer {
            id: format!("timer-{id}").into(),
            due_ms: at_ms + 3_600_000,
            data: json!({"record": id}),
        })],
        outbox: vec![json!({"record": id, "step": 1})],
        idempotency: Some(IdempotencyClaim { key: format!("create-{id}"), record: id.into() }),
        ..Commit::default()
    }
}

fn update_commit(batch: &str, record: &Created) -> Commit {
    let id = record.id.as_str();
    let value = json!({"step": 2, "events": record.events + 1, "first_outbox": record.outbox.0});
    Commit {
        at_ms: now_ms(),
        records: vec![
            RecordWrite::update(id, FORM, 1, value)
                .indexed("key", id)
                .indexed("phase", phase(batch, 2)),
        ],
        events: vec![NewEvent::new(id, "advanced", json!({}))],
        tasks: vec![TaskChange::Close(format!("task-{id}").into())],
        timers: vec![TimerChange::Remove(format!("timer-{id}").into())],
        outbox: vec![json!({"record": id, "step": 2})],
        delivered: vec![record.outbox],
        ..Commit::default()
    }
}

// ---------------------------------------------------------------------------------
// The parent.

#[derive(Debug)]
struct Options {
    rounds: u64,
    seed: u64,
    threads: u64,
    max_delay_ms: u64,
    full_every: u64,
    dir: Option<PathBuf>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        rounds: 200,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64),
        threads: 4,
        max_delay_ms: 300,
        full_every: 25,
        dir: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        let number = |text: &String| {
            text.parse::<u64>().map_err(|_| format!("{flag} needs a number, not {text:?}"))
        };
        match flag.as_str() {
            "--rounds" => options.rounds = number(value()?)?,
            "--seed" => options.seed = number(value()?)?,
            "--threads" => options.threads = number(value()?)?.max(1),
            "--max-delay-ms" => options.max_delay_ms = number(value()?)?,
            "--full-every" => options.full_every = number(value()?)?.max(1),
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn parent(args: &[String]) -> Result<ExitCode, String> {
    let options = parse_options(args)?;
    let started = Instant::now();
    println!(
        "seed={} rounds={} threads={} max-delay-ms={}",
        options.seed, options.rounds, options.threads, options.max_delay_ms
    );
    let (dir, remove_after) = match &options.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "stagecraft-crash-{}-{}",
                options.seed,
                std::process::id()
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let store_dir = dir.join("store");
    println!("data={}", store_dir.display());
    let exe = std::env::current_exe().map_err(|error| format!("cannot find myself: {error}"))?;
    // Records of this run are told apart from those of earlier runs on the same
    // directory by the run's start time.
    let run = format!("{:x}", now_ms());

    let mut rng = Rng(options.seed);
    let mut checker = Checker::new(options.threads);
    let mut acknowledged = 0;
    let mut lost = BTreeSet::new();
    let mut torn = BTreeSet::new();
    let mut broken = false;
    let mut rounds_run = 0;
    let mut batches = Vec::new();
    for round in 1..=options.rounds {
        rounds_run = round;
        let batch = format!("{run}-r{round:04}");
        batches.push(batch.clone());
        // One round in five is killed within 5 ms: before or while the store opens.
        let delay_ms =
            if rng.below(5) == 0 { rng.below(6) } else { rng.below(options.max_delay_ms + 1) };
        let writer = Writer {
            exe: &exe,
            store_dir: &store_dir,
            batch: &batch,
            threads: options.threads,
            seed: rng.next(),
        };
        let outcome = writer.run(delay_ms)?;
        acknowledged += outcome.acks.len() as u64;
        checker.acknowledged(&outcome.acks);
        if let Some(status) = &outcome.died_by_itself {
            println!("round {round}: the writer stopped by itself ({status})");
            broken = true;
        }

        let full = round % options.full_every == 0 || round == options.rounds || broken;
        let checking = Instant::now();
        let checked_batches =
            if full { &batches[..] } else { std::slice::from_ref(&batches[batches.len() - 1]) };
        match checker.check(&store_dir, checked_batches, full) {
            Ok(report) => {
                println!(
                    "round {round}/{}: killed after {delay_ms} ms, {} acks, {} records written \
                     this round, {} events in the log, checked{} in {} ms",
                    options.rounds,
                    outcome.acks.len(),
                    report.round_records,
                    report.events,
                    if full { " everything" } else { "" },
                    checking.elapsed().as_millis()
                );
                for (id, reason) in report.lost {
                    println!("  lost {id}: {reason}");
                    lost.insert(id);
                }
                for (id, reason) in report.torn {
                    println!("  torn {id}: {reason}");
                    torn.insert(id);
                }
            }
            Err(error) => {
                println!("round {round}: the store cannot be checked: {error}");
                // Nothing can be read back: every acknowledged record is lost.
                lost.extend(checker.acked.keys().cloned());
                broken = true;
            }
        }
        if broken {
            break;
        }
    }
    let clean = lost.is_empty() && torn.is_empty() && !broken;
    if clean && remove_after {
        // Best effort: a leftover directory in the temporary folder does no harm.
        let _ = std::fs::remove_dir_all(&dir);
    } else if !clean {
        println!("kept the data in {}", dir.display());
    }
    println!("elapsed={:.1}s", started.elapsed().as_secs_f64());
    println!(
        "rounds={rounds_run} acknowledged={acknowledged} lost={} torn={}",
        lost.len(),
        torn.len()
    );
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

struct Writer<'a> {
    exe: &'a Path,
    store_dir: &'a Path,
    batch: &'a str,
    threads: u64,
    seed: u64,
}

struct Outcome {
    acks: Vec<(String, u64)>,
    died_by_itself: Option<String>,
}

impl Writer<'_> {
    /// Starts the writer, kills it after `delay_ms` and collects its acknowledgements.
    fn run(&self, delay_ms: u64) -> Result<Outcome, String> {
        let mut child: Child = Command::new(self.exe)
            .arg("writer")
            .arg("--dir")
            .arg(self.store_dir)
            .args(["--batch", self.batch])
            .args(["--threads", &self.threads.to_string()])
            .args(["--seed", &self.seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start the writer: {error}"))?;
        let stdout = child.stdout.take().ok_or_else(|| "the writer has no stdout".to_owned())?;
        let reader = std::thread::spawn(move || read_acks(stdout));
        std::thread::sleep(Duration::from_millis(delay_ms));
        let died_by_itself = match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        };
        // `kill` sends SIGKILL on Unix: no destructor, no flush, no goodbye.
        let _ = child.kill();
        child.wait().map_err(|error| format!("cannot reap the writer: {error}"))?;
        let acks = reader.join().map_err(|_| "the ack reader panicked".to_owned())??;
        Ok(Outcome { acks, died_by_itself })
    }
}

/// Complete `ack <id> <version>` lines; a line cut short by the kill is ignored.
fn read_acks(stdout: std::process::ChildStdout) -> Result<Vec<(String, u64)>, String> {
    let mut reader = BufReader::new(stdout);
    let mut acks = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|error| format!("cannot read the writer's output: {error}"))?;
        if read == 0 {
            return Ok(acks);
        }
        let Some(complete) = line.strip_suffix(b"\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(complete);
        let mut words = text.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("ack"), Some(id), Some(version), None) => {
                let version = version.parse().map_err(|_| format!("malformed ack {text:?}"))?;
                acks.push((id.to_owned(), version));
            }
            _ => return Err(format!("unexpected writer output {text:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------
// The checks.

#[derive(Debug, Default)]
struct Report {
    round_records: usize,
    events: u64,
    lost: Vec<(String, String)>,
    torn: Vec<(String, String)>,
}

impl Report {
    fn torn(&mut self, id: impl Into<String>, reason: impl Into<String>) {
        self.torn.push((id.into(), reason.into()));
    }
}

/// One outbox row, as far as the checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OutboxSeen {
    step: u64,
    delivered: bool,
}

#[derive(Debug)]
struct Checker {
    threads: u64,
    /// The highest acknowledged version of every record, over all rounds.
    acked: HashMap<String, u64>,
    /// The first event sequence and outbox id the next round-only check starts at.
    next_sequence: u64,
    next_outbox: u64,
}

impl Checker {
    fn new(threads: u64) -> Self {
        Self { threads, acked: HashMap::new(), next_sequence: 1, next_outbox: 1 }
    }

    fn acknowledged(&mut self, acks: &[(String, u64)]) {
        for (id, version) in acks {
            let highest = self.acked.entry(id.clone()).or_insert(0);
            *highest = (*highest).max(*version);
        }
    }

    /// Opens the store (recovering it) and checks the rounds of `batches`; with
    /// `full`, also every event, every outbox row and `verify`.
    fn check(&mut self, dir: &Path, batches: &[String], full: bool) -> Result<Report, String> {
        let store = SledStore::open(dir).map_err(|error| error.to_string())?;
        let mut report = Report::default();
        self.check_lost(&store, &mut report)?;

        let first_outbox = if full { 1 } else { self.next_outbox };
        let (outbox, next_outbox) = outbox_rows(&store, first_outbox)?;
        let mut present = HashSet::new();
        for batch in batches {
            let found = self.check_batch(&store, batch, &outbox, &mut report)?;
            report.round_records = found.len();
            present.extend(found);
        }
        for record in outbox.keys() {
            if present.contains(record) {
                continue;
            }
            let found = store.record(&record.as_str().into()).map_err(|error| error.to_string())?;
            if found.is_none() {
                report.torn(record.clone(), "an outbox row without its record");
            }
        }

        let first_sequence = if full { 1 } else { self.next_sequence };
        report.events = check_log(&store, first_sequence, &mut report)?;
        if full {
            let verified = store.verify().map_err(|error| error.to_string())?;
            for problem in verified.problems {
                report.torn("verify", problem.to_string());
            }
        }
        self.next_sequence = report.events + 1;
        self.next_outbox = next_outbox;
        Ok(report)
    }

    fn check_lost(&self, store: &SledStore, report: &mut Report) -> Result<(), String> {
        for (id, version) in &self.acked {
            let record = store.record(&id.as_str().into()).map_err(|error| error.to_string())?;
            match record {
                None => report.lost.push((id.clone(), "the record is missing".to_owned())),
                Some(record) if record.version < *version => report.lost.push((
                    id.clone(),
                    format!(
                        "version {version} was acknowledged, version {} is stored",
                        record.version
                    ),
                )),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Checks the records one round wrote; returns their ids.
    fn check_batch(
        &self,
        store: &SledStore,
        batch: &str,
        outbox: &HashMap<String, Vec<OutboxSeen>>,
        report: &mut Report,
    ) -> Result<HashSet<String>, String> {
        let listed = |step| -> Result<HashSet<String>, String> {
            let ids = store
                .records_by_index(FORM, "phase", &phase(batch, step), Page::first(usize::MAX))
                .map_err(|error| error.to_string())?;
            Ok(ids.into_iter().map(|id| id.to_string()).collect())
        };
        let phases = [listed(1)?, listed(2)?];
        let mut present = HashSet::new();
        for thread in 0..self.threads {
            let mut missing_in_a_row = 0;
            let mut n = 0;
            while missing_in_a_row < PROBE_PAST {
                let id = record_id(batch, thread, n);
                n += 1;
                let record =
                    store.record(&id.as_str().into()).map_err(|error| error.to_string())?;
                let problems = match record {
                    Some(record) => {
                        missing_in_a_row = 0;
                        let problems =
                            record_problems(store, &id, thread, &record, &phases, outbox)?;
                        present.insert(id.clone());
                        problems
                    }
                    None => {
                        missing_in_a_row += 1;
                        orphan_problems(store, &id)?
                    }
                };
                if !problems.is_empty() {
                    report.torn(id, problems.join("; "));
                }
            }
        }
        for id in phases.iter().flatten() {
            if !present.contains(id) {
                report.torn(id.clone(), "an index entry without its record");
            }
        }
        Ok(present)
    }
}

/// Outbox rows from `first` on, by record; and the id after the last row.
fn outbox_rows(
    store: &SledStore,
    first: u64,
) -> Result<(HashMap<String, Vec<OutboxSeen>>, u64), String> {
    let mut rows: HashMap<String, Vec<OutboxSeen>> = HashMap::new();
    let mut id = first;
    while let Some(row) = store.outbox_row(OutboxId(id)).map_err(|error| error.to_string())? {
        let record = row.data["record"].as_str().unwrap_or_default().to_owned();
        rows.entry(record).or_default().push(OutboxSeen {
            step: row.data["step"].as_u64().unwrap_or_default(),
            delivered: row.delivered_at_ms.is_some(),
        });
        id += 1;
    }
    Ok((rows, id))
}

/// Everything a present record's commits wrote must be there, and nothing of a
/// later step.
fn record_problems(
    store: &SledStore,
    id: &str,
    thread: u64,
    record: &StoredRecord,
    phases: &[HashSet<String>; 2],
    outbox: &HashMap<String, Vec<OutboxSeen>>,
) -> Result<Vec<String>, String> {
    let failed = |error: StoreError| error.to_string();
    let mut problems = Vec::new();
    let step = record.value["step"].as_u64().unwrap_or_default();
    if step != record.version || !(1..=2).contains(&step) {
        problems.push(format!("version {} holds step {step}", record.version));
        return Ok(problems);
    }
    let first_step = step == 1;
    let expected_events = record.value["events"].as_u64().unwrap_or_default();
    let events = store.events_of(&id.into()).map_err(failed)?;
    if events.len() as u64 != expected_events {
        problems.push(format!("{} events instead of {expected_events}", events.len()));
    }
    let keyed = store
        .records_by_index(FORM, "key", &IndexValue::from(id), Page::first(2))
        .map_err(failed)?;
    if keyed != [RecordId::from(id)] {
        problems.push("its key index entry is missing".to_owned());
    }
    if phases[0].contains(id) != first_step || phases[1].contains(id) == first_step {
        problems.push(format!("its phase index entry is not step {step}"));
    }
    match store.task(&TaskId::from(format!("task-{id}"))).map_err(failed)? {
        None => problems.push("its task is missing".to_owned()),
        Some(task) if task.open != first_step || task.assignee != assignee(thread) => {
            problems.push(format!("its task is open={} at step {step}", task.open));
        }
        Some(_) => {}
    }
    let timer = store.timer(&TimerId::from(format!("timer-{id}"))).map_err(failed)?;
    if timer.is_some() != first_step {
        problems.push(format!("its timer is there={} at step {step}", timer.is_some()));
    }
    let mut rows = outbox.get(id).cloned().unwrap_or_default();
    rows.sort();
    let expected = if first_step {
        vec![OutboxSeen { step: 1, delivered: false }]
    } else {
        vec![OutboxSeen { step: 1, delivered: true }, OutboxSeen { step: 2, delivered: false }]
    };
    if rows != expected {
        problems.push(format!("its outbox rows are {rows:?} at step {step}"));
    }
    if store.idempotent(&format!("create-{id}")).map_err(failed)? != Some(RecordId::from(id)) {
        problems.push("its idempotency key is missing".to_owned());
    }
    Ok(problems)
}

/// A record that is not there must have left nothing behind.
fn orphan_problems(store: &SledStore, id: &str) -> Result<Vec<String>, String> {
    let failed = |error: StoreError| error.to_string();
    let mut problems = Vec::new();
    if store.task(&TaskId::from(format!("task-{id}"))).map_err(failed)?.is_some() {
        problems.push("its task is there without it".to_owned());
    }
    if store.timer(&TimerId::from(format!("timer-{id}"))).map_err(failed)?.is_some() {
        problems.push("its timer is there without it".to_owned());
    }
    if store.idempotent(&format!("create-{id}")).map_err(failed)?.is_some() {
        problems.push("its idempotency key is there without it".to_owned());
    }
    if !store.events_of(&id.into()).map_err(failed)?.is_empty() {
        problems.push("its events are there without it".to_owned());
    }
    let keyed = store
        .records_by_index(FORM, "key", &IndexValue::from(id), Page::first(1))
        .map_err(failed)?;
    if !keyed.is_empty() {
        problems.push("its index entry is there without it".to_owned());
    }
    Ok(problems)
}

/// The log from `first` on continues without a gap and every event's record exists;
/// returns the last sequence number.
fn check_log(store: &SledStore, first: u64, report: &mut Report) -> Result<u64, String> {
    let failed = |error: StoreError| error.to_string();
    let mut last = first - 1;
    loop {
        let events = store.events_since(last, 10_000).map_err(failed)?;
        if events.is_empty() {
            break;
        }
        for event in events {
            if event.sequence != last + 1 {
                report.torn("event log", format!("sequence {} follows {last}", event.sequence));
            }
            if store.record(&event.record).map_err(failed)?.is_none() {
                report.torn(
                    event.record.to_string(),
                    format!("event {} without its record", event.sequence),
                );
            }
            last = event.sequence;
        }
    }
    let next = store.next_event_sequence().map_err(failed)?;
    if next != last + 1 {
        report.torn("event log", format!("the next sequence is {next} but the log ends at {last}"));
    }
    Ok(last)
}
