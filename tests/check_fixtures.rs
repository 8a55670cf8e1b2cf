//! Fixture packs: every folder under `tests/fixtures/good` must check clean, and
//! every folder under `tests/fixtures/broken` holds one kind of mistake whose
//! diagnostics are kept as a snapshot (`tests/snapshots/`). A change in any message,
//! code or position shows up as a snapshot diff.
//!
//! To accept new or changed snapshots: `cargo insta review` (or run the tests with
//! `INSTA_UPDATE=always`), then read the diff before committing.

use std::path::{Path, PathBuf};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(kind);
    // Messages name files by the path given to the checker, tidied; give it a tidy
    // one so that snapshots hold paths relative to the fixture.
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|error| panic!("reading {}: {error}", root.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// One line per diagnostic, with paths relative to the fixture folder.
fn render(dir: &Path) -> (String, usize) {
    let report = stagecraft_pack::check(&[dir.to_path_buf()]);
    let prefix = format!("{}/", dir.display());
    let mut out = String::new();
    for diagnostic in &report.diagnostics {
        let mut line = diagnostic.to_string().replace(&prefix, "");
        for related in &diagnostic.related {
            line.push_str(&format!(
                "\n    {}: {}:{}:{}",
                related.message,
                related.location.file.replace(&prefix, ""),
                related.location.line,
                related.location.column
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    (out, report.error_count())
}

#[test]
fn good_fixtures_check_clean() {
    let dirs = fixtures("good");
    assert!(dirs.len() >= 3, "expected at least 3 good fixtures, found {}", dirs.len());
    for dir in dirs {
        let (text, _) = render(&dir);
        assert!(text.is_empty(), "{} should check clean, got:\n{text}", dir.display());
    }
}

#[test]
fn broken_fixtures_match_their_snapshots() {
    let dirs = fixtures("broken");
    assert!(dirs.len() >= 30, "expected at least 30 broken fixtures, found {}", dirs.len());
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for dir in dirs {
        let name = dir.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let (text, errors) = render(&dir);
        assert!(
            errors > 0 || name.starts_with("warn-"),
            "{name}: a broken fixture must produce an error"
        );
        assert!(!text.is_empty(), "{name}: a broken fixture must produce a diagnostic");
        settings.set_description(format!("stagecraft check tests/fixtures/broken/{name}"));
        settings.bind(|| insta::assert_snapshot!(name, text));
    }
}
