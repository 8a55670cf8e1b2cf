//! The `stagecraft` command. It only wires: parsing arguments, calling the library
//! crates, printing their answers and choosing the exit code.

mod render;

use std::io::Write;
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
