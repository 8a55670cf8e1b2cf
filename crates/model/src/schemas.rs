//! The JSON Schemas of the pack formats, generated from the raw types. They are
//! committed under `schemas/format/v1/` (by `stagecraft schema`) so editors can
//! autocomplete and validate pack files, and `stagecraft-pack` validates files
//! against the very same schemas before anything else looks at them.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use crate::calendar::CalendarFile;
use crate::flow::FlowFile;
use crate::form::{FileUpload, FormMeta, Link, UiHints, UserPick};
use crate::manifest::PackManifest;
use crate::org::OrgFile;
use crate::rules::RulesFile;

/// The pack format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// One generated schema and the file name it is committed under.
#[derive(Clone, Debug)]
pub struct FormatSchema {
    /// File name under `schemas/format/v1/`, e.g. `flow.schema.json`.
    pub file_name: &'static str,
    /// The schema.
    pub schema: Value,
}

fn schema_of<T: JsonSchema>(file_name: &'static str, title: &str) -> FormatSchema {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema: Schema = generator.into_root_schema_for::<T>();
    schema.insert(
        "$id".into(),
        json!(format!("https://stagecraft.dev/schemas/format/v1/{file_name}")),
    );
    schema.insert("title".into(), json!(title));
    FormatSchema { file_name, schema: schema.to_value() }
}

/// The schema of the `x-` keywords in form files. A form is a JSON Schema; this
/// schema checks only the extension keywords, at the root and on every field.
fn form_extensions_schema() -> FormatSchema {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let form_meta = generator.subschema_for::<FormMeta>();
    let ui = generator.subschema_for::<UiHints>();
    let link = generator.subschema_for::<Link>();
    let file = generator.subschema_for::<FileUpload>();
    let user = generator.subschema_for::<UserPick>();
    let mut defs = serde_json::Map::new();
    for (name, schema) in generator.take_definitions(true) {
        defs.insert(name, schema);
    }
    let fields = json!({
        "type": "object",
        "additionalProperties": { "$ref": "#/$defs/Field" }
    });
    defs.insert(
        "Field".into(),
        json!({
            "description": "A field of a form: any JSON Schema, plus the x- keywords.",
            "type": ["object", "boolean"],
            "properties": {
                "x-ui": ui,
                "x-link": link,
                "x-file": file,
                "x-user": user,
                "properties": fields,
                "items": { "$ref": "#/$defs/Field" },
                "prefixItems": { "type": "array", "items": { "$ref": "#/$defs/Field" } }
            }
        }),
    );
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stagecraft.dev/schemas/format/v1/form.schema.json",
        "title": "Stagecraft form (JSON Schema 2020-12 with x- keywords)",
        "type": "object",
        "properties": {
            "x-form": form_meta,
            "properties": fields,
        },
        "$defs": defs,
    });
    FormatSchema { file_name: "form.schema.json", schema }
}

/// Every format schema, in a stable order.
pub fn format_schemas() -> Vec<FormatSchema> {
    vec![
        schema_of::<PackManifest>("pack.schema.json", "Stagecraft pack manifest (pack.yaml)"),
        schema_of::<FlowFile>("flow.schema.json", "Stagecraft flow (*.flow.yaml)"),
        schema_of::<RulesFile>("rules.schema.json", "Stagecraft rules (*.rules.yaml)"),
        schema_of::<CalendarFile>(
            "calendar.schema.json",
            "Stagecraft business calendar (*.calendar.yaml)",
        ),
        schema_of::<OrgFile>("org.schema.json", "Stagecraft organisation (*.org.yaml)"),
        form_extensions_schema(),
    ]
}
