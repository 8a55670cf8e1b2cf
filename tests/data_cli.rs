//! `stagecraft backup`, `restore` and `verify` on a data folder written by the engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::json;
use stagecraft_engine::{Engine, ManualClock, Target};
use stagecraft_model::Id;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stagecraft(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A data folder with a customer and a deal in it.
fn data(dir: &Path) {
    let (definitions, _) = stagecraft_pack::load(&[repo().join("flows"), repo().join("schemas")])
        .unwrap_or_else(|report| panic!("{:#?}", report.diagnostics));
    let store = Arc::new(stagecraft_store::SledStore::open(dir.join("data")).expect("store"));
    let engine = Engine::new(store, definitions, Arc::new(ManualClock::new(1_793_584_800_000)), 1);
    let create = |form: &str, fields: serde_json::Value| {
        engine
            .execute(
                Some("rep01"),
                Target::New,
                stagecraft_runtime::Command::Create {
                    form: Id::from(form),
                    fields: fields.as_object().cloned().unwrap_or_default(),
                    owner: None,
                },
                None,
            )
            .expect("created")
            .record
    };
    let customer = create("customer", json!({"name": "华东精密机械"}));
    create(
        "opportunity",
        json!({"name": "x", "customer": customer.id, "amount": 1, "expected_close_date": "2026-12-31"}),
    );
}

#[test]
fn a_backup_restores_into_data_that_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    data(dir.path());
    let packs = [repo().join("flows"), repo().join("schemas")];
    let packs: Vec<&str> = packs.iter().map(|p| p.to_str().expect("utf-8 path")).collect();

    let mut args = vec!["verify", "--data", "data", "--packs"];
    args.extend(&packs);
    let output = stagecraft(&args, dir.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("verified 2 records"), "{}", text(&output));

    let output = stagecraft(&["backup", "--data", "data", "--out", "backup.jsonl"], dir.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("2 records"), "{}", text(&output));
    let output = stagecraft(&["backup", "--data", "data", "--out", "backup.jsonl"], dir.path());
    assert!(!output.status.success(), "a backup never overwrites a file");

    let output =
        stagecraft(&["restore", "--from", "backup.jsonl", "--data", "restored"], dir.path());
    assert!(output.status.success(), "{}", text(&output));
    let mut args = vec!["verify", "--data", "restored", "--packs"];
    args.extend(&packs);
    let output = stagecraft(&args, dir.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("verified 2 records"), "{}", text(&output));

    let output =
        stagecraft(&["restore", "--from", "backup.jsonl", "--data", "restored"], dir.path());
    assert!(!output.status.success(), "restoring over existing data is refused: {}", text(&output));
}

#[test]
fn a_missing_data_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = stagecraft(&["backup", "--data", "nowhere", "--out", "b.jsonl"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("there is no data folder at nowhere"), "{}", text(&output));
}

#[test]
fn uploaded_files_travel_with_a_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    data(dir.path());
    let files = dir.path().join("data").join(stagecraft_server::FILES_FOLDER);
    std::fs::create_dir_all(&files).expect("files folder");
    let id = "0123456789abcdef0123456789abcdef";
    std::fs::write(files.join(id), b"%PDF-1.7\n%%EOF\n").expect("a stored file");
    std::fs::write(files.join(format!(".{id}.part")), b"%PDF").expect("a file being written");

    let output = stagecraft(&["backup", "--data", "data", "--out", "backup.jsonl"], dir.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("copied 1 uploaded files to backup.jsonl.files"),
        "{}",
        text(&output)
    );
    let copied: Vec<String> = std::fs::read_dir(dir.path().join("backup.jsonl.files"))
        .expect("the files of the backup")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(copied, [id], "half-written files are left out");

    let output =
        stagecraft(&["restore", "--from", "backup.jsonl", "--data", "restored"], dir.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("restored 1 uploaded files"), "{}", text(&output));
    let restored = dir.path().join("restored").join(stagecraft_server::FILES_FOLDER).join(id);
    assert_eq!(std::fs::read(restored).expect("restored file"), b"%PDF-1.7\n%%EOF\n");

    // A backup never overwrites the files of another.
    std::fs::remove_file(dir.path().join("backup.jsonl")).expect("remove");
    let output = stagecraft(&["backup", "--data", "data", "--out", "backup.jsonl"], dir.path());
    assert!(!output.status.success());
    assert!(text(&output).contains("backup.jsonl.files exists already"), "{}", text(&output));
}
