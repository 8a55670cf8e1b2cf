//! `stagecraft-bench`: the workloads B1–B6 of the targets and their baselines, each
//! printing result lines (JSON) that `report` turns into one table. `benches/run`
//! builds it, installs the peers, runs everything and prints the table.

mod common;
mod cpu;
mod durable;
mod http;
mod report;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use stagecraft_store::Durability;

use crate::common::Figure;

#[derive(Parser, Debug)]
#[command(name = "stagecraft-bench", about = "The benchmarks B1–B6 and their baselines")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Size {
    /// The documented run: about ten minutes on two cores with the peers.
    Full,
    /// A CI smoke run: every workload at a small size, in seconds.
    Quick,
    /// Tiny sizes, for the crate's own test in a debug build.
    Smoke,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// How big a run.
    #[arg(long, value_enum, default_value = "full")]
    size: Size,
    /// The repository (where `flows/` and `schemas/` are); defaults to this source tree.
    #[arg(long)]
    root: Option<PathBuf>,
    /// A folder for the stores the workloads create (emptied first).
    #[arg(long, default_value = "target/bench/work")]
    dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// B1: form validation.
    B1(Common),
    /// B2: compiled rules in the sandbox.
    B2(Common),
    /// B3: HTTP form submission through the server (D2, 64 connections).
    B3(Common),
    /// B4: durable gated stage transitions.
    B4(Common),
    /// B5: a scheduled alert scan, 5% matching.
    B5(Common),
    /// B6: SLA timers due in one window.
    B6(Common),
    /// Baselines: an axum hello-world, raw sled inserts, an fsync probe.
    Baselines(Common),
    /// Every workload, each in a process of its own (so that peak memory is its own);
    /// appends the result lines to `--out`.
    All {
        #[command(flatten)]
        common: Common,
        /// The results file (JSON lines).
        #[arg(long, default_value = "target/bench/results.jsonl")]
        out: PathBuf,
    },
    /// Prints the table of a results file.
    Report {
        /// The results file (JSON lines).
        file: PathBuf,
    },
}

/// The sizes of each kind of run.
struct Sizes {
    cpu_iterations: usize,
    cpu_repeats: usize,
    http_seconds: f64,
    http_repeats: usize,
    connections: usize,
    fsyncs: usize,
    sled_inserts: usize,
    sled_flushed: usize,
    b4_records: usize,
    b4_concurrent_records: usize,
    b4_repeats: usize,
    b5_records: usize,
    b6_timers: usize,
}

fn sizes(size: Size) -> Sizes {
    match size {
        Size::Full => Sizes {
            cpu_iterations: 200_000,
            cpu_repeats: 5,
            http_seconds: 5.0,
            http_repeats: 3,
            connections: 64,
            fsyncs: 2000,
            sled_inserts: 100_000,
            sled_flushed: 5000,
            b4_records: 2000,
            b4_concurrent_records: 4000,
            b4_repeats: 3,
            b5_records: 100_000,
            b6_timers: 20_000,
        },
        Size::Quick => Sizes {
            cpu_iterations: 20_000,
            cpu_repeats: 3,
            http_seconds: 1.0,
            http_repeats: 2,
            connections: 64,
            fsyncs: 300,
            sled_inserts: 10_000,
            sled_flushed: 500,
            b4_records: 200,
            b4_concurrent_records: 400,
            b4_repeats: 2,
            b5_records: 4000,
            b6_timers: 2000,
        },
        Size::Smoke => Sizes {
            cpu_iterations: 200,
            cpu_repeats: 2,
            http_seconds: 0.2,
            http_repeats: 1,
            connections: 4,
            fsyncs: 10,
            sled_inserts: 100,
            sled_flushed: 10,
            b4_records: 4,
            b4_concurrent_records: 4,
            b4_repeats: 1,
            b5_records: 40,
            b6_timers: 10,
        },
    }
}

fn workdir(common: &Common, name: &str) -> anyhow::Result<PathBuf> {
    let dir = common.dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn run(name: &str, common: &Common) -> anyhow::Result<Vec<Figure>> {
    let s = sizes(common.size);
    let root = common::root(common.root.as_deref());
    let dir = workdir(common, name)?;
    let figures = match name {
        "b1" => cpu::b1(&root, s.cpu_iterations, s.cpu_repeats)?,
        "b2" => cpu::b2(&root, s.cpu_iterations, s.cpu_repeats)?,
        "b3" => http::b3(&root, &dir, s.connections, s.http_seconds, s.http_repeats)?,
        "b4" => {
            let mut figures =
                durable::b4(&root, &dir, s.b4_records, 1, Durability::Flush, s.b4_repeats)?;
            figures.extend(durable::b4(
                &root,
                &dir,
                s.b4_concurrent_records,
                8,
                Durability::Flush,
                s.b4_repeats,
            )?);
            figures.extend(durable::b4(
                &root,
                &dir,
                s.b4_records,
                1,
                Durability::None,
                s.b4_repeats,
            )?);
            figures
        }
        "b5" => durable::b5(&root, &dir, s.b5_records)?,
        "b6" => durable::b6(&root, &dir, s.b6_timers)?,
        "baselines" => {
            let mut figures = http::hello(s.connections, s.http_seconds, s.http_repeats)?;
            figures.extend(durable::fsync_probe(&dir, s.fsyncs, 3)?);
            figures.extend(durable::sled_raw(&dir, s.sled_inserts, s.sled_flushed, 3)?);
            figures
        }
        other => bail!("no workload {other}"),
    };
    std::fs::remove_dir_all(&dir).ok();
    Ok(figures)
}

const WORKLOADS: [&str; 7] = ["baselines", "b1", "b2", "b3", "b4", "b5", "b6"];

fn all(common: &Common, out: &Path) -> anyhow::Result<()> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
    let exe = std::env::current_exe()?;
    let size = format!("{:?}", common.size).to_lowercase();
    for name in WORKLOADS {
        let start = Instant::now();
        eprintln!("== {name}");
        let mut args = vec![name.to_owned(), "--size".into(), size.clone(), "--dir".into()];
        args.push(common.dir.display().to_string());
        if let Some(root) = &common.root {
            args.extend(["--root".into(), root.display().to_string()]);
        }
        let mut child = Process::new(&exe).args(&args).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            writeln!(file, "{line}")?;
            eprintln!("   {line}");
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("workload {name} failed ({status})");
        }
        eprintln!("   ({name}: {:.1} s)", start.elapsed().as_secs_f64());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (name, common) = match &cli.command {
        Cmd::B1(c) => ("b1", c),
        Cmd::B2(c) => ("b2", c),
        Cmd::B3(c) => ("b3", c),
        Cmd::B4(c) => ("b4", c),
        Cmd::B5(c) => ("b5", c),
        Cmd::B6(c) => ("b6", c),
        Cmd::Baselines(c) => ("baselines", c),
        Cmd::All { common, out } => return all(common, out),
        Cmd::Report { file } => {
            print!("{}", report::table(&std::fs::read_to_string(file)?)?);
            return Ok(());
        }
    };
    for figure in run(name, common)? {
        figure.print();
    }
    Ok(())
}
