//! The demo company: an org file loaded with the packs, and a list of commands
//! (`records.jsonl`) that creates customers and deals in several stages through the
//! engine, as the people of the org. Run once, on the first start of a data folder;
//! every person gets the password [`DEMO_PASSWORD`]. Nothing here knows about sales:
//! the company lives in the data files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use stagecraft_engine::{Engine, EngineError, Target};
use stagecraft_model::Id;
use stagecraft_runtime::{Command, Org};
use stagecraft_store::Commit;

use crate::auth::{credential_write, has_users, hash_password};
use crate::config::PasswordCost;
use crate::error::ServerError;

/// The org file of a demo folder.
pub(crate) const ORG_FILE: &str = "company.org.yaml";
/// The commands of a demo folder.
const RECORDS_FILE: &str = "records.jsonl";
/// The password of every demo login.
pub const DEMO_PASSWORD: &str = "stagecraft";

/// The demo company as the server started with it.
#[derive(Debug)]
pub struct Demo {
    /// Whether its people and records were created on this start.
    pub created: bool,
    /// How many records the demo commands created (0 when created before).
    pub records: usize,
    /// Everyone who can sign in.
    pub logins: Vec<DemoLogin>,
}

/// One demo login.
#[derive(Debug)]
pub struct DemoLogin {
    /// The username.
    pub user: String,
    /// The person's name.
    pub name: String,
    /// Their roles.
    pub roles: Vec<String>,
}

impl fmt::Display for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.created {
            writeln!(
                f,
                "demo company created: {} people, {} records",
                self.logins.len(),
                self.records
            )?;
        }
        writeln!(f, "demo logins (password for everyone: {DEMO_PASSWORD}):")?;
        // Columns as wide as their longest entry (ids and roles are ASCII).
        let users = self.logins.iter().map(|login| login.user.len()).max().unwrap_or(0);
        let roles = self.logins.iter().map(|login| login.roles.join(", ").len()).max().unwrap_or(0);
        for login in &self.logins {
            let role = login.roles.join(", ");
            writeln!(f, "  {:<users$} {:<roles$} {}", login.user, role, login.name)?;
        }
        Ok(())
    }
}

/// One line of `records.jsonl`: a command, as one of the org's people.
#[derive(Debug, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    /// Create a record; `ref` names it for later lines (`"@name"`).
    Create {
        #[serde(rename = "as")]
        actor: String,
        #[serde(rename = "ref")]
        name: Option<String>,
        form: String,
        fields: Map<String, Value>,
    },
    /// Change fields of a record.
    Update {
        #[serde(rename = "as")]
        actor: String,
        record: String,
        fields: Map<String, Value>,
    },
    /// Move a record to another stage.
    Transition {
        #[serde(rename = "as")]
        actor: String,
        record: String,
        to: String,
    },
    /// Give a record of a pool form back to its pool (it has no owner afterwards).
    Release {
        #[serde(rename = "as")]
        actor: String,
        record: String,
    },
    /// Decide an approval.
    Decide {
        #[serde(rename = "as")]
        actor: String,
        record: String,
        approval: String,
        approve: bool,
        reason: Option<String>,
    },
    /// Import a CSV file of history from another system (a file of the demo folder,
    /// with its mapping file), all or nothing, as on the import page.
    Import {
        #[serde(rename = "as")]
        actor: String,
        file: String,
        mapping: String,
    },
}

/// Creates the demo company's people and records unless the data folder has users
/// already, and lists the logins.
pub(crate) fn open(
    engine: &Engine,
    folder: &Path,
    cost: PasswordCost,
) -> Result<Demo, ServerError> {
    let (users, logins) = {
        let org = engine.org();
        let org = org.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let logins: Vec<DemoLogin> = org
            .users()
            .map(|user| DemoLogin {
                user: user.id.to_string(),
                name: user.name.clone(),
                roles: org.roles_of(user.id.as_str()),
            })
            .collect();
        (logins.iter().map(|login| login.user.clone()).collect::<Vec<_>>(), logins)
    };
    if has_users(engine.store().as_ref())? {
        return Ok(Demo { created: false, records: 0, logins });
    }
    let records = run_commands(engine, &folder.join(RECORDS_FILE))?;
    // The passwords last: a start interrupted before this point runs the commands
    // again, and their idempotency keys keep them from running twice.
    let mut commit = Commit::at(engine.now());
    for user in &users {
        commit.records.push(credential_write(user, &hash_password(DEMO_PASSWORD, cost)?));
    }
    engine.store().commit(commit)?;
    Ok(Demo { created: true, records, logins })
}

/// Runs the commands of a `records.jsonl` file; returns how many records they created.
fn run_commands(engine: &Engine, path: &Path) -> Result<usize, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ServerError::DemoFile { path: path.to_path_buf(), source })?;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut created = 0;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let fail = |reason: String| ServerError::DemoData {
            path: path.to_path_buf(),
            line: line_number,
            reason,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let step: Step = serde_json::from_str(line).map_err(|error| fail(error.to_string()))?;
        let key = format!("demo/{line_number}");
        let step = match step {
            Step::Import { actor, file, mapping } => {
                let folder = path.parent().unwrap_or(Path::new("."));
                created +=
                    import_history(engine, folder, &key, &actor, &file, &mapping).map_err(fail)?;
                continue;
            }
            step => step,
        };
        let (actor, target, command, name) = match step {
            Step::Create { actor, name, form, fields } => {
                let fields = resolve_fields(fields, &names).map_err(fail)?;
                let command =
                    Command::Create { form: Id::from(form.as_str()), fields, owner: None };
                (actor, Target::New, command, name)
            }
            Step::Update { actor, record, fields } => {
                let id = resolve(&record, &names).map_err(fail)?;
                let fields = resolve_fields(fields, &names).map_err(fail)?;
                let version = engine
                    .record(&id)?
                    .map(|record| record.version)
                    .ok_or_else(|| fail(format!("there is no record {record}")))?;
                let command = Command::Update { expected_version: version, fields };
                (actor, Target::Existing(id), command, None)
            }
            Step::Transition { actor, record, to } => {
                let id = resolve(&record, &names).map_err(fail)?;
                let command = Command::Transition { to: Id::from(to.as_str()) };
                (actor, Target::Existing(id), command, None)
            }
            Step::Release { actor, record } => {
                let id = resolve(&record, &names).map_err(fail)?;
                (actor, Target::Existing(id), Command::Release, None)
            }
            Step::Decide { actor, record, approval, approve, reason } => {
                let id = resolve(&record, &names).map_err(fail)?;
                let command =
                    Command::Decide { approval: Id::from(approval.as_str()), approve, reason };
                (actor, Target::Existing(id), command, None)
            }
            Step::Import { .. } => continue,
        };
        let is_create = matches!(target, Target::New);
        let id = match engine.execute(Some(&actor), target, command, Some(&key)) {
            Ok(executed) => executed.record.id,
            // Done on an earlier, interrupted start.
            Err(EngineError::Duplicate(id)) => id,
            Err(EngineError::Refused(refusal)) => return Err(fail(refusal.to_string())),
            Err(error) => return Err(error.into()),
        };
        if is_create {
            created += 1;
        }
        if let Some(name) = name {
            names.insert(name, id);
        }
    }
    Ok(created)
}

/// Imports one history file of the demo folder; returns how many records it wrote.
/// The import and a claim of the step's key are two commits: a start interrupted
/// between them would import the file again (the window is one commit wide).
fn import_history(
    engine: &Engine,
    folder: &Path,
    key: &str,
    actor: &str,
    file: &str,
    mapping: &str,
) -> Result<usize, String> {
    if engine.store().idempotent(key).map_err(|error| error.to_string())?.is_some() {
        return Ok(0);
    }
    let read = |name: &str| {
        std::fs::read(folder.join(name)).map_err(|error| format!("cannot read {name}: {error}"))
    };
    let csv = read(file)?;
    let mapping_text =
        String::from_utf8(read(mapping)?).map_err(|_| format!("{mapping} is not UTF-8 text"))?;
    let mapping = stagecraft_import::Mapping::parse(mapping, &mapping_text)?;
    let source = stagecraft_import::Source { actor: Some(actor), name: file };
    let progress = stagecraft_import::Progress::default();
    let applied = match stagecraft_import::apply(engine, source, &mapping, &csv, &progress) {
        Ok(applied) => applied,
        Err(stagecraft_import::ImportError::Problems(report)) => {
            let problems: Vec<String> = report
                .problems
                .iter()
                .take(5)
                .map(|problem| {
                    format!(
                        "{file} line {}{}: {}",
                        problem.row,
                        problem
                            .column
                            .as_deref()
                            .map(|c| format!(", column {c}"))
                            .unwrap_or_default(),
                        problem.message_en
                    )
                })
                .collect();
            return Err(problems.join("; "));
        }
        Err(error) => return Err(format!("{file}: {error}")),
    };
    if let Some(first) = applied.ids.first() {
        let mut claim = Commit::at(engine.now());
        claim.idempotency = Some(stagecraft_store::IdempotencyClaim {
            key: key.to_owned(),
            record: stagecraft_store::RecordId::new(first.clone()),
        });
        engine.store().commit(claim).map_err(|error| error.to_string())?;
    }
    Ok(applied.ids.len())
}

/// `"@name"` is the id of the record created as `name`; other text stays as it is.
fn resolve(text: &str, names: &BTreeMap<String, String>) -> Result<String, String> {
    match text.strip_prefix('@') {
        Some(name) => names
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`@{name}` names no record created above")),
        None => Ok(text.to_owned()),
    }
}

fn resolve_fields(
    fields: Map<String, Value>,
    names: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, String> {
    fields
        .into_iter()
        .map(|(field, value)| match value {
            Value::String(text) => Ok((field, Value::String(resolve(&text, names)?))),
            other => Ok((field, other)),
        })
        .collect()
}
