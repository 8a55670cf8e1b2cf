//! The `stagecraft` command. It only wires: parsing arguments, calling the library
//! crates, printing their answers and choosing the exit code.

mod import;
mod render;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use stagecraft_model::Code;

/// Stagecraft: forms, flows and rules from files, checked and run.
#[derive(Debug, Parser)]
#[command(name = "stagecraft", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check packs and pack files, reporting every problem at once.
    ///
    /// Exits 0 when there are no errors (warnings allowed), 1 when there are errors.
    Check {
        /// Files or folders to check. Folders are searched for packs (`pack.yaml`) and
        /// pack files. Default: `flows` and `schemas` in the current folder.
        paths: Vec<PathBuf>,
        /// Output format: `human` (with source lines) or `json` (for editors and CI).
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Write the JSON Schemas of the pack formats, for editors and validation.
    Schema {
        /// Folder to write into.
        #[arg(long, default_value = "schemas/format/v1")]
        out: PathBuf,
        /// Only compare with the files there; exit 1 when they are stale.
        #[arg(long)]
        check: bool,
    },
    /// Write a backup of a data folder to a portable file (and its uploaded files to a
    /// folder beside it, `<out>.files`).
    Backup {
        /// The data folder.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new, empty data folder (with the uploaded files of
    /// `<from>.files`, when there are any).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The data folder to create.
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Import a CSV file from another system as records of a form, with their own
    /// history (see docs/import.md). Every row is checked first; the records are
    /// written all at once, or none when a row has a problem. Stop the server first.
    Import {
        /// The form the rows become records of.
        #[arg(long)]
        form: String,
        /// The mapping (JSON or YAML); what it leaves out is found from the headers.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Only check, and print every problem with its row and column.
        #[arg(long)]
        dry_run: bool,
        /// The data folder.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The packs (and org file, to find owners by name) the server runs with.
        #[arg(long, num_args = 1.., default_values = ["flows", "schemas"])]
        packs: Vec<PathBuf>,
        /// The user recorded as having imported (and owner of rows without one).
        #[arg(long)]
        by: Option<String>,
        /// The CSV file (UTF-8).
        file: PathBuf,
    },
    /// Merge CSV files of people and departments into the company's org file and
    /// write it in place, after the pack checker accepts it (see docs/import.md).
    ImportOrg {
        /// The org file (`*.org.yaml`) to merge into and write.
        #[arg(long)]
        org: PathBuf,
        /// The people: id, name, e-mail, phone, department, manager, roles.
        #[arg(long)]
        people: Option<PathBuf>,
        /// The departments: id, name, English name, parent, head.
        #[arg(long)]
        departments: Option<PathBuf>,
        /// Only show who would be added and changed, and the problems.
        #[arg(long)]
        dry_run: bool,
        /// The packs the org's roles come from.
        #[arg(long, num_args = 1.., default_values = ["flows", "schemas"])]
        packs: Vec<PathBuf>,
    },
    /// Check that every projection and every record can be rebuilt from the stored
    /// data and the event log. Exits 1 when something differs.
    Verify {
        /// The data folder.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The packs the data was written with.
        #[arg(long, num_args = 1.., default_values = ["flows", "schemas"])]
        packs: Vec<PathBuf>,
    },
    /// Run the server: the JSON API over the packs and a data folder.
    ///
    /// Stops cleanly on Ctrl-C or SIGTERM. Exits 1 when the packs have errors or the
    /// server cannot start.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// The data folder (created when missing).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The packs to load.
        #[arg(long, num_args = 1.., default_values = ["flows", "schemas"])]
        packs: Vec<PathBuf>,
        /// Load the demo company; on the first start of the data folder, create its
        /// people (password `stagecraft`) and some customers and deals.
        #[arg(long)]
        demo: bool,
        /// The folder of the demo company.
        #[arg(long, default_value = "examples/demo", requires = "demo")]
        demo_dir: PathBuf,
        /// `system`, or `manual`: time stands still until an admin moves it with
        /// `POST /api/admin/clock` (for demos and trying out SLAs).
        #[arg(long, value_enum, default_value_t = ClockArg::System)]
        clock: ClockArg,
        /// The notification settings (channels, secrets as `${ENV}`); default
        /// `<data>/notify.yaml` when it exists (see docs/notifications.md).
        #[arg(long)]
        notify: Option<PathBuf>,
    },
    /// Explain a diagnostic code, e.g. `stagecraft explain SC0101`.
    Explain {
        /// The code; without one, every code is listed.
        code: Option<String>,
        /// Print the list as the Markdown page `docs/diagnostics.md`.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClockArg {
    System,
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { paths, format, deny_warnings } => check(paths, format, deny_warnings),
        Command::Schema { out, check } => schema(&out, check),
        Command::Explain { code, markdown } => explain(code.as_deref(), markdown),
        Command::Backup { data, out } => backup(&data, &out),
        Command::Restore { from, data } => restore(&from, &data),
        Command::Verify { data, packs } => verify(&data, &packs),
        Command::ImportOrg { org, people, departments, dry_run, packs } => {
            import::run_org(import::OrgArgs { org, people, departments, dry_run, packs })
        }
        Command::Import { form, mapping, dry_run, data, packs, by, file } => {
            import::run(import::ImportArgs { form, mapping, file, dry_run, data, packs, by })
        }
        Command::Serve { addr, data, packs, demo, demo_dir, clock, notify } => {
            let config = stagecraft_server::Config {
                addr,
                data,
                packs,
                demo: demo.then_some(demo_dir),
                clock: match clock {
                    ClockArg::System => stagecraft_server::ClockChoice::System,
                    ClockArg::Manual => stagecraft_server::ClockChoice::Manual,
                },
                password_cost: stagecraft_server::PasswordCost::Standard,
                notify,
            };
            serve(&config)
        }
    }
}

fn check(
    paths: Vec<PathBuf>,
    format: OutputFormat,
    deny_warnings: bool,
) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        let defaults: Vec<PathBuf> =
            ["flows", "schemas"].iter().map(PathBuf::from).filter(|path| path.exists()).collect();
        if defaults.is_empty() { vec![PathBuf::from(".")] } else { defaults }
    } else {
        paths
    };
    let report = stagecraft_pack::check(&paths);
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            let json = render::json(&report);
            serde_json::to_writer_pretty(&mut stdout, &json).context("writing the report")?;
            writeln!(stdout)?;
        }
        OutputFormat::Human => {
            drop(stdout);
            render::human(&report).context("writing the report")?;
        }
    }
    let failed = report.has_errors() || (deny_warnings && report.warning_count() > 0);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn schema(out: &Path, check_only: bool) -> anyhow::Result<ExitCode> {
    let mut stale = Vec::new();
    for schema in stagecraft_model::format_schemas() {
        let path = out.join(schema.file_name);
        let mut text = serde_json::to_string_pretty(&schema.schema)?;
        text.push('\n');
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(text.as_str()) {
            continue;
        }
        if check_only {
            stale.push(path);
            continue;
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if check_only && !stale.is_empty() {
        for path in &stale {
            eprintln!("stale: {}", path.display());
        }
        eprintln!("run `stagecraft schema` to bring them up to date");
        return Ok(ExitCode::from(1));
    }
    if check_only {
        println!("format schemas in {} are up to date", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn open_existing(data: &Path) -> anyhow::Result<stagecraft_store::SledStore> {
    anyhow::ensure!(data.is_dir(), "there is no data folder at {}", data.display());
    stagecraft_store::SledStore::open(data)
        .with_context(|| format!("opening the data in {}", data.display()))
}

fn backup(data: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    use stagecraft_store::Store;
    let store = open_existing(data)?;
    anyhow::ensure!(!out.exists(), "{} exists already; choose another file", out.display());
    let uploads = stagecraft_server::uploads_beside(out);
    anyhow::ensure!(!uploads.exists(), "{} exists already; choose another file", uploads.display());
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let summary = store.export(&mut writer).context("writing the backup")?;
    writer.flush().context("writing the backup")?;
    println!(
        "wrote {}: {} records, {} events, {} tasks, {} timers, {} notifications",
        out.display(),
        summary.records,
        summary.events,
        summary.tasks,
        summary.timers,
        summary.outbox
    );
    // Uploaded files live beside the store; they are copied after the export, so that
    // every file the backup describes is there.
    let copied =
        stagecraft_server::copy_uploads(&data.join(stagecraft_server::FILES_FOLDER), &uploads)
            .with_context(|| format!("copying the uploaded files to {}", uploads.display()))?;
    if copied > 0 {
        println!("copied {copied} uploaded files to {}", uploads.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(from: &Path, data: &Path) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let (_, summary) = stagecraft_store::SledStore::import(
        data,
        &stagecraft_store::OpenOptions::default(),
        std::io::BufReader::new(file),
    )
    .with_context(|| format!("restoring into {}", data.display()))?;
    println!(
        "restored {} records, {} events, {} tasks, {} timers, {} notifications into {}",
        summary.records,
        summary.events,
        summary.tasks,
        summary.timers,
        summary.outbox,
        data.display()
    );
    let uploads = stagecraft_server::uploads_beside(from);
    let copied =
        stagecraft_server::copy_uploads(&uploads, &data.join(stagecraft_server::FILES_FOLDER))
            .with_context(|| format!("copying the uploaded files from {}", uploads.display()))?;
    if copied > 0 {
        println!("restored {copied} uploaded files from {}", uploads.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(data: &Path, packs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let definitions = match stagecraft_pack::load(packs) {
        Ok((definitions, _)) => definitions,
        Err(report) => {
            render::human(&report).context("writing the report")?;
            anyhow::bail!("the packs have errors; fix them first");
        }
    };
    let store = std::sync::Arc::new(open_existing(data)?);
    let engine = stagecraft_engine::Engine::new(
        store,
        definitions,
        std::sync::Arc::new(stagecraft_engine::SystemClock),
        0,
    );
    let verification = engine.verify().context("verifying")?;
    for problem in verification.store_problems.iter().chain(&verification.record_problems) {
        println!("{problem}");
    }
    if verification.is_clean() {
        println!("verified {} records: projections and histories match", verification.records);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} problems in {} records",
            verification.store_problems.len() + verification.record_problems.len(),
            verification.records
        );
        Ok(ExitCode::from(1))
    }
}

fn serve(config: &stagecraft_server::Config) -> anyhow::Result<ExitCode> {
    let server = match stagecraft_server::Server::open(config) {
        Ok(server) => server,
        Err(stagecraft_server::ServerError::Packs(report)) => {
            render::human(&report).context("writing the report")?;
            return Ok(ExitCode::from(1));
        }
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    let startup = server.startup();
    if let Some(demo) = &startup.demo {
        print!("{demo}");
    }
    println!(
        "stagecraft listening on http://{} (packs: {}, data: {})",
        server.addr(),
        startup.packs,
        startup.data.display()
    );
    println!("{}", server.notifications());
    if let Err(error) = server.run() {
        eprintln!("error: {error}");
        return Ok(ExitCode::from(1));
    }
    println!("stagecraft stopped");
    Ok(ExitCode::SUCCESS)
}

fn explain(code: Option<&str>, markdown: bool) -> anyhow::Result<ExitCode> {
    if markdown {
        print!("{}", render::diagnostics_page());
        return Ok(ExitCode::SUCCESS);
    }
    match code {
        Some(text) => match Code::parse(text) {
            Some(code) => {
                println!(
                    "{code} ({}): {}\n\n{}",
                    code.severity(),
                    code.title(),
                    code.explanation()
                );
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("error: unknown code `{text}`; `stagecraft explain` lists them all");
                Ok(ExitCode::from(2))
            }
        },
        None => {
            for code in Code::ALL {
                println!("{code}  {:<7}  {}", code.severity().to_string(), code.title());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
