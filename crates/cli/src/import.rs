//! `stagecraft import`: a CSV file from another system into a data folder, checked
//! row by row first and written all at once (or, with `--dry-run`, only checked).
//! The server must not be running on the same data folder (the store is locked).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stagecraft_import::{ImportError, Mapping, Progress, Report, Source};

/// What `stagecraft import` was asked.
#[derive(Debug)]
pub(crate) struct ImportArgs {
    pub(crate) form: String,
    pub(crate) mapping: Option<PathBuf>,
    pub(crate) file: PathBuf,
    pub(crate) dry_run: bool,
    pub(crate) data: PathBuf,
    pub(crate) packs: Vec<PathBuf>,
    pub(crate) by: Option<String>,
}

/// Runs the import; exits 1 when rows have problems (nothing is written then).
pub(crate) fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let csv =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mapping = mapping(&args)?;
    let definitions = match stagecraft_pack::load(&args.packs) {
        Ok((definitions, _)) => definitions,
        Err(report) => {
            crate::render::human(&report).context("writing the report")?;
            anyhow::bail!("the packs have errors; fix them first");
        }
    };
    let store = Arc::new(crate::open_existing(&args.data)?);
    let engine = stagecraft_engine::Engine::new(
        store,
        definitions,
        Arc::new(stagecraft_engine::SystemClock),
        0,
    );
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let progress = Progress::default();
    let source = Source { actor: args.by.as_deref(), name: &name };
    let started = std::time::Instant::now();
    let outcome = std::thread::scope(|scope| {
        let work = scope.spawn(|| {
            if args.dry_run {
                Ok(Ok(stagecraft_import::dry_run(&engine, source, &mapping, &csv, &progress)))
            } else {
                stagecraft_import::apply(&engine, source, &mapping, &csv, &progress)
                    .map(|applied| Err(applied.ids.len()))
            }
        });
        let mut last = std::time::Instant::now();
        while !work.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= Duration::from_secs(1) {
                let (checked, _, total) = progress.snapshot();
                eprintln!("checked {checked} of {total} rows");
                last = std::time::Instant::now();
            }
        }
        work.join()
    });
    let outcome = outcome.map_err(|_| anyhow::anyhow!("the import stopped unexpectedly"))?;
    let elapsed = started.elapsed();
    match outcome {
        Ok(Ok(report)) => {
            print_problems(&report);
            eprintln!("checked {} rows in {elapsed:.1?}", report.rows);
            println!(
                "dry run: {} of {} rows can be imported; nothing was written",
                report.valid_rows, report.rows
            );
            Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Ok(Err(written)) => {
            println!("imported {written} records of form `{}` in {elapsed:.1?}", mapping.form);
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Problems(report)) => {
            print_problems(&report);
            println!(
                "{} problems in {} of {} rows; nothing was written",
                report.problems.len(),
                report.rows - report.valid_rows,
                report.rows
            );
            Ok(ExitCode::from(1))
        }
        Err(ImportError::Engine(error)) => {
            Err(anyhow::Error::new(error).context("writing the records; nothing was written"))
        }
    }
}

/// The mapping file's mapping for the form, or an empty one (found from the headers).
fn mapping(args: &ImportArgs) -> anyhow::Result<Mapping> {
    let Some(path) = &args.mapping else {
        return Ok(Mapping { form: args.form.clone(), ..Mapping::default() });
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut mapping =
        Mapping::parse(&display(path), &text).map_err(|error| anyhow::anyhow!(error))?;
    if mapping.form.is_empty() {
        mapping.form = args.form.clone();
    }
    anyhow::ensure!(
        mapping.form == args.form,
        "the mapping is for form `{}`, not `{}`",
        mapping.form,
        args.form
    );
    Ok(mapping)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn print_problems(report: &Report) {
    for problem in &report.problems {
        let column = problem.column.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
        let value = problem.value.as_deref().map(|v| format!(" “{v}”")).unwrap_or_default();
        println!(
            "row {}{column}{value}: {} / {}",
            problem.row, problem.message_zh, problem.message_en
        );
    }
}

/// What `stagecraft import-org` was asked.
#[derive(Debug)]
pub(crate) struct OrgArgs {
    pub(crate) org: PathBuf,
    pub(crate) people: Option<PathBuf>,
    pub(crate) departments: Option<PathBuf>,
    pub(crate) dry_run: bool,
    pub(crate) packs: Vec<PathBuf>,
}

/// Merges people and departments files into the org file and writes it in place (the
/// file before is kept beside it as `<file>.bak`), after the pack checker accepts the
/// packs with the new file; a running server's pack watcher then reloads it.
pub(crate) fn run_org(args: OrgArgs) -> anyhow::Result<ExitCode> {
    let read = |path: &Option<PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        path.as_ref()
            .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
            .transpose()
    };
    let (people, departments) = (read(&args.people)?, read(&args.departments)?);
    anyhow::ensure!(
        people.is_some() || departments.is_some(),
        "give a people file (--people) or a departments file (--departments), or both"
    );
    let current =
        stagecraft_import::read_org_file(&args.org).map_err(|error| anyhow::anyhow!(error))?;
    let mut paths = args.packs.clone();
    if !paths.iter().any(|path| args.org.starts_with(path)) {
        paths.push(args.org.clone());
    }
    let definitions = match stagecraft_pack::load(&paths) {
        Ok((definitions, _)) => definitions,
        Err(report) => {
            crate::render::human(&report).context("writing the report")?;
            anyhow::bail!("the packs have errors; fix them first");
        }
    };
    let result = stagecraft_import::import_org(
        &definitions,
        &current,
        people.as_deref(),
        departments.as_deref(),
    );
    for problem in &result.problems {
        let found = &problem.problem;
        let column = found.column.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
        let value = found.value.as_deref().map(|v| format!(" “{v}”")).unwrap_or_default();
        println!(
            "{} row {}{column}{value}: {} / {}",
            problem.file, found.row, found.message_zh, found.message_en
        );
    }
    println!("people added: {}", result.added_people.join(", "));
    println!("people changed: {}", result.changed_people.join(", "));
    println!("departments added: {}", result.added_departments.join(", "));
    println!("departments changed: {}", result.changed_departments.join(", "));
    if !result.problems.is_empty() {
        println!("{} problems; the org file was not changed", result.problems.len());
        return Ok(ExitCode::from(1));
    }
    if args.dry_run {
        println!("dry run: the org file was not changed");
        return Ok(ExitCode::SUCCESS);
    }
    let backup = match stagecraft_import::write_org_file(&args.packs, &args.org, &result.yaml) {
        Ok(backup) => backup,
        Err(stagecraft_import::WriteOrgError::Checks(report)) => {
            crate::render::human(&report).context("writing the report")?;
            anyhow::bail!(
                "the new org file does not pass the checks; the org file was not changed"
            );
        }
        Err(error) => return Err(anyhow::anyhow!(error)),
    };
    println!("wrote {} (the file before is {})", args.org.display(), backup.display());
    Ok(ExitCode::SUCCESS)
}
