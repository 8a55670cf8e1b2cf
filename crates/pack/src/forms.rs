//! Forms: JSON Schema 2020-12 documents with `x-` keywords. A form must be a valid
//! schema, compile with the linear-time regex engine and without remote references,
//! be an object of fields whose names rules can use, and carry well-formed `x-`
//! keywords. References to other forms are resolved later, in `check`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jsonschema::{PatternOptions, ValidationError};
use serde_json::Value;
use stagecraft_model::{
    Code, Diagnostic, FIELD_PATTERN, FieldName, FileUpload, FormMeta, Id, Link, UiHints, UserPick,
    Widget,
};

use crate::definitions::{CompiledForm, FieldInfo};
use crate::source::SourceFile;
use crate::structure::{self, Format};
use crate::tree::{Document, pointer_segment};

/// The dialect forms are written in.
pub(crate) const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The `x-` keywords found on one field, with where they are.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldExtensions {
    pub(crate) pointer: String,
    pub(crate) ui: Option<UiHints>,
    pub(crate) link: Option<Link>,
    pub(crate) file: Option<FileUpload>,
    pub(crate) user: Option<UserPick>,
}

/// A form read and compiled, before cross-form references are resolved.
#[derive(Debug)]
pub(crate) struct FormDraft {
    pub(crate) form: CompiledForm,
    /// Every field at any depth that carries `x-` keywords.
    pub(crate) extensions: Vec<FieldExtensions>,
}

/// Compiles a format schema file (`*.schema.json`): it must be a valid JSON Schema.
pub(crate) fn check_format_schema(
    source: &SourceFile,
    document: &Document,
    out: &mut Vec<Diagnostic>,
) {
    check_meta(source, document, out);
}

fn check_meta(source: &SourceFile, document: &Document, out: &mut Vec<Diagnostic>) -> bool {
    let schema = &document.value;
    if let Some(dialect) = schema.get("$schema") {
        if dialect.as_str() != Some(DRAFT_2020_12) {
            out.push(
                Diagnostic::new(
                    Code::InvalidSchema,
                    format!("forms are JSON Schema 2020-12, not {dialect}"),
                )
                .at(Some(source.location(document.value_range("/$schema"))))
                .hint(format!("write \"$schema\": \"{DRAFT_2020_12}\", or leave it out")),
            );
            return false;
        }
    }
    let mut ok = true;
    for (pointer, reference) in references(schema, String::new()) {
        if !reference.starts_with('#') {
            ok = false;
            out.push(
                Diagnostic::new(
                    Code::RemoteRef,
                    format!("`$ref` to `{reference}` leaves the form"),
                )
                .at(Some(source.location(document.value_range(&pointer))))
                .hint("refer only inside the form, e.g. \"#/$defs/address\""),
            );
        }
    }
    let meta = jsonschema::draft202012::meta::validator();
    for error in meta.iter_errors(schema) {
        ok = false;
        out.push(meta_diagnostic(source, document, &error));
    }
    ok
}

fn meta_diagnostic(
    source: &SourceFile,
    document: &Document,
    error: &ValidationError<'_>,
) -> Diagnostic {
    let pointer = error.instance_path().as_str();
    let message = error.masked().to_string();
    let hint = if message.contains("is not valid under any of the schemas")
        && pointer.ends_with("/type")
    {
        "JSON Schema types are string, number, integer, boolean, object, array and null".to_owned()
    } else {
        "see https://json-schema.org/draft/2020-12 for the keyword's form".to_owned()
    };
    let place = if pointer.is_empty() { "the schema".to_owned() } else { format!("`{pointer}`") };
    if pointer.ends_with("/type") {
        return Diagnostic::new(
            Code::InvalidSchema,
            format!("{} is not a JSON Schema type", error.instance()),
        )
        .at(Some(source.location(document.value_range(pointer))))
        .hint(hint);
    }
    Diagnostic::new(
        Code::InvalidSchema,
        format!("{place} is not valid JSON Schema: {}", lowercase(&message)),
    )
    .at(Some(source.location(document.value_range(pointer))))
    .hint(hint)
}

fn references(value: &Value, pointer: String) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![(value, pointer)];
    while let Some((value, pointer)) = pending.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_pointer = format!("{pointer}/{}", pointer_segment(key));
                    if (key == "$ref" || key == "$dynamicRef") && child.is_string() {
                        found.push((child_pointer, child.as_str().unwrap_or_default().to_owned()));
                    } else {
                        pending.push((child, child_pointer));
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    pending.push((child, format!("{pointer}/{index}")));
                }
            }
            _ => {}
        }
    }
    found
}

/// Checks and compiles one form. Returns `None` when it cannot be used.
pub(crate) fn compile(
    source: &SourceFile,
    document: &Document,
    default_id: &str,
    pack: Option<String>,
    out: &mut Vec<Diagnostic>,
) -> Option<FormDraft> {
    let schema = &document.value;
    if !check_meta(source, document, out) {
        return None;
    }
    let validator = match jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_pattern_options(PatternOptions::regex())
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(validator) => validator,
        Err(error) => {
            let pointer = error.schema_path().as_str().to_owned();
            let pointer = if document.value.pointer(&pointer).is_some() {
                pointer
            } else {
                error.instance_path().as_str().to_owned()
            };
            let message = if error.to_string().contains("\"regex\"") {
                format!("the pattern {} cannot be used", error.instance())
            } else {
                lowercase(&error.masked().to_string())
            };
            let hint = if message.contains("regex") || message.contains("pattern") {
                "patterns use a linear-time engine: look-around and back-references are not available"
            } else {
                "check `$ref` targets and `pattern` expressions"
            };
            out.push(
                Diagnostic::new(
                    Code::SchemaCompile,
                    format!("the form cannot be compiled: {message}"),
                )
                .at(Some(source.location(document.value_range(&pointer))))
                .hint(hint),
            );
            return None;
        }
    };

    let root_is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    let Some(properties) =
        schema.get("properties").and_then(Value::as_object).filter(|_| root_is_object)
    else {
        out.push(
            Diagnostic::new(
                Code::FormShape,
                "a form's root must be \"type\": \"object\" with \"properties\"",
            )
            .at(Some(source.location(document.value_range(if schema.get("type").is_some() {
                "/type"
            } else {
                ""
            }))))
            .hint("put the fields under \"properties\" and add \"type\": \"object\""),
        );
        return None;
    };

    let extension_problems = structure::validate(source, document, Format::FormExtensions);
    let extensions_ok = extension_problems.is_empty();
    out.extend(extension_problems);

    let field_pattern = regex_lite(FIELD_PATTERN);
    let mut fields = BTreeMap::new();
    let mut ok = extensions_ok;
    for (name, field) in properties {
        let pointer = format!("/properties/{}", pointer_segment(name));
        if !field_pattern(name) {
            ok = false;
            out.push(
                Diagnostic::new(
                    Code::FormShape,
                    format!("field name `{name}` cannot be used in rules"),
                )
                .at(Some(source.location(document.key_range(&pointer))))
                .hint(
                    "field names use lowercase letters, digits and `_`, e.g. `expected_close_date`",
                ),
            );
            continue;
        }
        let types = match field.get("type") {
            Some(Value::String(kind)) => vec![kind.clone()],
            Some(Value::Array(kinds)) => {
                kinds.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        };
        let ui: Option<UiHints> =
            field.get("x-ui").and_then(|value| serde_json::from_value(value.clone()).ok());
        fields.insert(
            FieldName(name.clone()),
            FieldInfo {
                types,
                link: field
                    .get("x-link")
                    .and_then(|value| serde_json::from_value::<Link>(value.clone()).ok())
                    .map(|link| link.form),
                // A file field holds one file, or a list of files (`items` with `x-file`).
                file: field.get("x-file").is_some()
                    || field.get("items").is_some_and(|items| items.get("x-file").is_some()),
                user: field.get("x-user").is_some(),
                indexed: false,
                label: ui.and_then(|ui| ui.label),
            },
        );
    }
    if !ok {
        return None;
    }

    let meta: FormMeta = schema
        .get("x-form")
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .unwrap_or_default();
    let id = meta.id.clone().unwrap_or_else(|| Id(default_id.to_owned()));
    if meta.id.is_none() && !regex_lite(stagecraft_model::ID_PATTERN)(default_id) {
        out.push(
            Diagnostic::new(Code::MalformedValue, format!("the file name `{default_id}` is not a valid form id"))
                .at(Some(source.start_location()))
                .hint("rename the file (lowercase letters, digits, `_`, `-`) or set \"x-form\": {\"id\": …}"),
        );
        return None;
    }
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names.iter().filter_map(Value::as_str).map(|name| FieldName(name.to_owned())).collect()
        })
        .unwrap_or_default();
    let mut extensions = Vec::new();
    collect_extensions(schema, String::new(), &mut extensions);
    let mut form = CompiledForm {
        id,
        pack,
        meta,
        schema: schema.clone(),
        validator: Arc::new(validator),
        fields,
        required,
    };
    for index in &form.meta.indexes {
        if let Some(field) = form.fields.get_mut(index) {
            field.indexed = true;
        }
    }
    check_local_references(source, document, &form, &extensions, out);
    Some(FormDraft { form, extensions })
}

/// Checks what a form can check alone: its own field and section names, widgets.
fn check_local_references(
    source: &SourceFile,
    document: &Document,
    form: &CompiledForm,
    extensions: &[FieldExtensions],
    out: &mut Vec<Diagnostic>,
) {
    let known = |name: &FieldName| name.as_str() == "owner" || form.fields.contains_key(name);
    let field_names = || form.fields.keys().map(FieldName::as_str);
    let unknown_field =
        |out: &mut Vec<Diagnostic>, list: &str, position: usize, name: &FieldName| {
            let pointer = format!("/x-form/{list}/{position}");
            let hint = match structure::closest(name.as_str(), field_names()) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None => "name a top-level field of this form".to_owned(),
            };
            out.push(
                Diagnostic::new(
                    Code::UnknownField,
                    format!("`x-form.{list}` names `{name}`, which is not a field of this form"),
                )
                .at(Some(source.location(document.value_range(&pointer))))
                .hint(hint),
            );
        };
    for (position, name) in form.meta.indexes.iter().enumerate() {
        if !known(name) {
            unknown_field(out, "indexes", position, name);
        }
    }
    for (position, name) in form.meta.touches.iter().enumerate() {
        if !known(name) {
            unknown_field(out, "touches", position, name);
        } else if form.fields.get(name).is_some_and(|field| field.link.is_none()) {
            out.push(
                Diagnostic::new(
                    Code::UnknownField,
                    format!("`x-form.touches` names `{name}`, which is not a link field"),
                )
                .at(Some(
                    source.location(document.value_range(&format!("/x-form/touches/{position}"))),
                ))
                .hint(link_fields_hint(form)),
            );
        }
    }
    if let Some(title_field) = &form.meta.title_field {
        if !known(title_field) {
            out.push(
                Diagnostic::new(Code::UnknownField, format!("`x-form.title_field` names `{title_field}`, which is not a field of this form"))
                    .at(Some(source.location(document.value_range("/x-form/title_field")))),
            );
        }
    }
    if let Some(feedback) = &form.meta.feedback {
        for (key, name) in [("status", &feedback.status), ("reply", &feedback.reply)] {
            if !form.fields.contains_key(name) {
                let hint = match structure::closest(name.as_str(), field_names()) {
                    Some(candidate) => format!("did you mean `{candidate}`?"),
                    None => "name a top-level field of this form".to_owned(),
                };
                out.push(
                    Diagnostic::new(
                        Code::UnknownField,
                        format!("`x-form.feedback.{key}` names `{name}`, which is not a field of this form"),
                    )
                    .at(Some(source.location(document.value_range(&format!("/x-form/feedback/{key}")))))
                    .hint(hint),
                );
            }
        }
    }
    let mut sections = BTreeMap::new();
    for (position, section) in form.meta.sections.iter().enumerate() {
        let pointer = format!("/x-form/sections/{position}/id");
        if let Some(first) = sections.insert(section.id.clone(), pointer.clone()) {
            out.push(
                Diagnostic::new(
                    Code::DuplicateId,
                    format!("section `{}` is declared twice", section.id),
                )
                .at(Some(source.location(document.value_range(&pointer))))
                .related(
                    "first declared here",
                    Some(source.location(document.value_range(&first))),
                ),
            );
        }
    }
    for extension in extensions {
        let Some(ui) = &extension.ui else { continue };
        if let Some(section) = &ui.section {
            if !sections.contains_key(section) {
                let names: BTreeSet<&str> = sections.keys().map(Id::as_str).collect();
                let hint = match structure::closest(section.as_str(), names.iter().copied()) {
                    Some(candidate) => format!("did you mean `{candidate}`?"),
                    None => "declare it in \"x-form\": {\"sections\": [...]}".to_owned(),
                };
                out.push(
                    Diagnostic::new(
                        Code::UnknownSection,
                        format!("section `{section}` is not declared in `x-form.sections`"),
                    )
                    .at(Some(source.location(
                        document.value_range(&format!("{}/x-ui/section", extension.pointer)),
                    )))
                    .hint(hint),
                );
            }
        }
        if let Some(widget) = ui.widget {
            let field = document.value.pointer(&extension.pointer);
            if let Some(problem) = widget_problem(widget, field, extension) {
                out.push(
                    Diagnostic::new(Code::WidgetMismatch, problem)
                        .at(Some(source.location(document.value_range(&format!("{}/x-ui/widget", extension.pointer)))))
                        .hint("change the widget or the field's type; the page will use the default input"),
                );
            }
        }
    }
}

fn link_fields_hint(form: &CompiledForm) -> String {
    let links: Vec<String> = form
        .fields
        .iter()
        .filter(|(_, field)| field.link.is_some())
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if links.is_empty() {
        "this form has no link fields; a field needs \"x-link\" to be listed here".to_owned()
    } else {
        format!("the link fields of this form are {}", links.join(", "))
    }
}

fn widget_problem(
    widget: Widget,
    field: Option<&Value>,
    extension: &FieldExtensions,
) -> Option<String> {
    let field = field?;
    let types: Vec<&str> = match field.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let has = |kind: &str| types.contains(&kind);
    let numeric = has("number") || has("integer");
    let fits = match widget {
        Widget::Number | Widget::Money => numeric,
        Widget::Switch => has("boolean"),
        Widget::Rows | Widget::Checkboxes => has("array"),
        Widget::Select | Widget::Radio => {
            field.get("enum").is_some() || field.get("oneOf").is_some()
        }
        Widget::Link => extension.link.is_some(),
        Widget::User => extension.user.is_some(),
        Widget::File => extension.file.is_some(),
        Widget::Text
        | Widget::Textarea
        | Widget::Email
        | Widget::Phone
        | Widget::Date
        | Widget::Datetime => has("string"),
    };
    (!fits).then(|| {
        let widget = serde_json::to_value(widget)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("the widget `{widget}` does not fit a field of type {}", types.join("/"))
    })
}

/// Finds every field (at any depth: nested objects, repeatable rows, `$defs`) that
/// carries `x-` keywords.
fn collect_extensions(schema: &Value, pointer: String, out: &mut Vec<FieldExtensions>) {
    let mut pending = vec![(schema, pointer)];
    while let Some((node, pointer)) = pending.pop() {
        let Value::Object(map) = node else { continue };
        if !pointer.is_empty() && map.keys().any(|key| key.starts_with("x-")) {
            out.push(FieldExtensions {
                pointer: pointer.clone(),
                ui: map.get("x-ui").and_then(|value| serde_json::from_value(value.clone()).ok()),
                link: map
                    .get("x-link")
                    .and_then(|value| serde_json::from_value(value.clone()).ok()),
                file: map
                    .get("x-file")
                    .and_then(|value| serde_json::from_value(value.clone()).ok()),
                user: map
                    .get("x-user")
                    .and_then(|value| serde_json::from_value(value.clone()).ok()),
            });
        }
        for keyword in ["properties", "$defs"] {
            if let Some(Value::Object(children)) = map.get(keyword) {
                for (name, child) in children {
                    pending.push((child, format!("{pointer}/{keyword}/{}", pointer_segment(name))));
                }
            }
        }
        if let Some(items) = map.get("items") {
            pending.push((items, format!("{pointer}/items")));
        }
        if let Some(Value::Array(items)) = map.get("prefixItems") {
            for (index, item) in items.iter().enumerate() {
                pending.push((item, format!("{pointer}/prefixItems/{index}")));
            }
        }
    }
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer));
}

/// A matcher for our simple id patterns without pulling in a regex engine: the
/// patterns are `^[first-class][rest-class]{0,63}$`.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool + use<> {
    let allow_dash = pattern.contains("0-9_-");
    let first_underscore = pattern.starts_with("^[a-z_]");
    move |text: &str| {
        let mut chars = text.chars();
        let Some(first) = chars.next() else { return false };
        let first_ok = first.is_ascii_lowercase() || (first_underscore && first == '_');
        first_ok
            && text.len() <= 64
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_dash && c == '-')
            })
    }
}

fn lowercase(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
