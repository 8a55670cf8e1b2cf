//! `stagecraft check` as users run it: the real binary, real files, exit codes and
//! what it prints, including for hostile or damaged input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stagecraft(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run stagecraft")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json_report(args: &[&str], cwd: &Path) -> (i32, serde_json::Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let output = stagecraft(&all, cwd);
    let value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", text(&output)));
    (output.status.code().unwrap_or(-1), value)
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .map(|list| list.iter().filter_map(|d| d["code"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A folder with a minimal valid pack to break in one place.
fn scratch_pack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let pack = dir.path().join("p");
    std::fs::create_dir_all(&pack).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        "stagecraft: 1\nname: scratch\nversion: 1.0.0\ntitle: {zh-CN: 草稿, en: Scratch}\n",
    )
    .expect("write");
    std::fs::write(
        pack.join("item.json"),
        r#"{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}"#,
    )
    .expect("write");
    std::fs::write(
        pack.join("item.flow.yaml"),
        "id: items\nform: item\ntitle: 条目\nstages:\n  - {id: open, title: 打开}\n  - {id: done, title: 完成, outcome: done}\ntransitions:\n  - {from: open, to: done}\n",
    )
    .expect("write");
    dir
}

#[test]
fn everything_shipped_checks_clean() {
    let output = stagecraft(&["check", "flows", "schemas", "examples"], &repo());
    assert!(output.status.success(), "shipped packs must check clean:\n{}", text(&output));
    assert!(text(&output).contains("no problems"), "{}", text(&output));
}

#[test]
fn a_clean_scratch_pack_exits_zero() {
    let dir = scratch_pack();
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["errors"], 0);
    assert_eq!(report["packs"][0]["name"], "scratch");
}

/// Copies the shipped packs and breaks the sales pipeline in one place.
fn broken_shipped(find: &str, replace: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    for folder in ["flows", "schemas"] {
        copy_dir(&repo().join(folder), &dir.path().join(folder));
    }
    let flow = dir.path().join("flows/sales/pipeline.flow.yaml");
    let original = std::fs::read_to_string(&flow).expect("the shipped sales pipeline");
    assert!(original.contains(find), "the shipped pipeline no longer contains {find:?}");
    std::fs::write(&flow, original.replacen(find, replace, 1)).expect("write");
    let output = stagecraft(&["check", "flows", "schemas"], dir.path());
    assert_eq!(
        output.status.code(),
        Some(1),
        "breaking the pipeline must fail the check:\n{}",
        text(&output)
    );
    (dir, text(&output))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The 1-based line of the first occurrence of `needle` in the broken file.
fn line_of(dir: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(dir.join("flows/sales/pipeline.flow.yaml")).expect("read");
    text.lines().position(|line| line.contains(needle)).expect("needle") + 1
}

#[test]
fn a_bad_key_in_a_shipped_flow_is_placed() {
    let (dir, out) = broken_shipped("\nstages:", "\nstagse_typo: 1\nstages:");
    let line = line_of(dir.path(), "stagse_typo");
    assert!(out.contains(&format!("flows/sales/pipeline.flow.yaml:{line}:1")), "{out}");
    assert!(out.contains("error[SC0101]"), "{out}");
}

#[test]
fn an_unclosed_bracket_in_a_shipped_flow_is_placed() {
    let (_dir, out) = broken_shipped("\nstages:\n", "\nstages: [\n");
    assert!(out.contains("error[SC0005]"), "{out}");
    assert!(out.contains("flows/sales/pipeline.flow.yaml:"), "{out}");
}

#[test]
fn a_transition_to_an_unknown_stage_is_placed() {
    let (dir, out) = broken_shipped("to: won", "to: wonn");
    let line = line_of(dir.path(), "to: wonn");
    assert!(out.contains(&format!("flows/sales/pipeline.flow.yaml:{line}:")), "{out}");
    assert!(out.contains("unknown stage `wonn`") && out.contains("did you mean `won`?"), "{out}");
}

#[test]
fn a_rule_that_does_not_compile_is_placed() {
    let (dir, out) = broken_shipped("check: ", "check: record.amount >>> 1 || ");
    let line = line_of(dir.path(), ">>> 1");
    assert!(out.contains(&format!("flows/sales/pipeline.flow.yaml:{line}:")), "{out}");
    assert!(out.contains("error[SC0501]"), "{out}");
}

#[test]
fn human_output_shows_the_line_and_a_caret() {
    let dir = scratch_pack();
    let flow = dir.path().join("p/item.flow.yaml");
    let original = std::fs::read_to_string(&flow).expect("read");
    std::fs::write(&flow, original.replace("title: 条目", "titel: 条目")).expect("write");
    let output = stagecraft(&["check", "p"], dir.path());
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("p/item.flow.yaml:3:1"), "{out}");
    assert!(out.contains("3 │ titel: 条目"), "{out}");
    assert!(out.contains("  │ ^^^^^"), "{out}");
    assert!(out.contains("hint: did you mean `title`?"), "{out}");
    assert!(out.contains("missing key `title`"), "{out}");
    assert!(out.contains("2 errors"), "{out}");
}

#[test]
fn a_missing_path_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, report) = json_report(&["no-such-folder"], dir.path());
    assert_eq!(code, 1);
    assert_eq!(codes(&report), ["SC0001"]);
}

#[test]
fn invalid_utf8_is_placed_at_the_bad_byte() {
    let dir = scratch_pack();
    std::fs::write(dir.path().join("p/bad.flow.yaml"), b"id: x\ntitle: \xd6\xd0\xce\xc4\n")
        .expect("write");
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 1);
    let diagnostic = &report["diagnostics"][0];
    assert_eq!(diagnostic["code"], "SC0004", "{report:#}");
    assert_eq!((diagnostic["line"].as_u64(), diagnostic["column"].as_u64()), (Some(2), Some(8)));
}

#[test]
fn a_fifty_megabyte_file_is_refused_without_reading_it() {
    let dir = scratch_pack();
    let file = std::fs::File::create(dir.path().join("p/huge.flow.yaml")).expect("create");
    file.set_len(50 * 1024 * 1024).expect("size");
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 1);
    assert_eq!(codes(&report), ["SC0003"], "{report:#}");
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    let dir = scratch_pack();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (index, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let previous = if index == 0 {
            "a".to_owned()
        } else {
            ["b", "c", "d", "e", "f", "g", "h"][index - 1].to_owned()
        };
        bomb.push_str(&format!("{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"));
    }
    std::fs::write(dir.path().join("p/bomb.rules.yaml"), bomb).expect("write");
    let started = std::time::Instant::now();
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 1);
    assert_eq!(codes(&report), ["SC0007"], "{report:#}");
    // Not a timing claim: a bomb that was expanded would take minutes and gigabytes.
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let dir = scratch_pack();
    let depth = 100_000;
    std::fs::write(
        dir.path().join("p/deep.json"),
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("p/deep.rules.yaml"),
        format!("gates: {}{}", "[".repeat(depth), "]".repeat(depth)),
    )
    .expect("write");
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 1);
    assert_eq!(codes(&report), ["SC0009", "SC0009"], "{report:#}");
}

#[test]
fn rule_mistakes_are_found_at_check_time() {
    let dir = scratch_pack();
    std::fs::write(
        dir.path().join("p/item.rules.yaml"),
        "gates:\n  - id: syntax\n    script: \"record.name ==\"\n  - id: variable\n    script: \"recrod.name != ()\"\n  - id: function\n    script: \"timestamp() > 0\"\n",
    )
    .expect("write");
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 1);
    assert_eq!(codes(&report), ["SC0501", "SC0502", "SC0503"], "{report:#}");
    assert_eq!(report["diagnostics"][1]["hint"], "did you mean `record`?");
}

#[test]
fn a_form_that_is_not_json_schema_is_explained() {
    let dir = scratch_pack();
    std::fs::write(
        dir.path().join("p/item.json"),
        "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"name\": {\"type\": \"text\"}\n  }\n}\n",
    )
    .expect("write");
    let (code, report) = json_report(&["p"], dir.path());
    assert_eq!(code, 1);
    let first = &report["diagnostics"][0];
    assert_eq!(first["code"], "SC0401", "{report:#}");
    assert_eq!(first["line"], 4, "{report:#}");
}

#[test]
fn usage_errors_exit_two() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = stagecraft(&["check", "--no-such-flag"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[test]
fn explain_prints_a_code_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = stagecraft(&["explain", "sc0101"], dir.path());
    assert!(output.status.success());
    assert!(text(&output).contains("SC0101 (error): unknown key"), "{}", text(&output));
    let output = stagecraft(&["explain", "SC9999"], dir.path());
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn checking_one_file_checks_its_whole_pack() {
    let dir = scratch_pack();
    let output = stagecraft(&["check", "p/item.flow.yaml"], dir.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("in 1 pack"), "{}", text(&output));
}
