//! Generated files are committed and must match what the code generates: the JSON
//! Schemas of the pack formats (for editors) and the page of diagnostic codes.

use std::path::Path;
use std::process::Command;

#[test]
fn format_schemas_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/format/v1");
    for schema in stagecraft_model::format_schemas() {
        let path = dir.join(schema.file_name);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}; run `stagecraft schema`", path.display()));
        let mut generated = serde_json::to_string_pretty(&schema.schema).expect("serialize");
        generated.push('\n');
        assert!(committed == generated, "{} is stale; run `stagecraft schema`", path.display());
    }
}

#[test]
fn diagnostics_page_is_up_to_date() {
    let output = Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .args(["explain", "--markdown"])
        .output()
        .expect("run stagecraft");
    assert!(output.status.success());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagnostics.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.as_bytes() == output.stdout.as_slice(),
        "docs/diagnostics.md is stale; run `stagecraft explain --markdown > docs/diagnostics.md`"
    );
}

#[test]
fn format_schemas_are_valid_json_schema() {
    for schema in stagecraft_model::format_schemas() {
        assert!(
            jsonschema::draft202012::meta::is_valid(&schema.schema),
            "{} is not a valid JSON Schema",
            schema.file_name
        );
    }
}
