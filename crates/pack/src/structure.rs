//! Structural checks: a parsed file against the JSON Schema of its format (the same
//! schema editors use). Every violation becomes a diagnostic at the exact key or
//! value, with a hint; all violations are reported, not only the first.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use stagecraft_model::{Code, Diagnostic, FormatSchema, format_schemas};

use crate::source::SourceFile;
use crate::tree::{Document, pointer_segment};

/// The file kinds that have a format schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// `pack.yaml`.
    Manifest,
    /// `*.flow.yaml`.
    Flow,
    /// `*.rules.yaml`.
    Rules,
    /// `*.calendar.yaml`.
    Calendar,
    /// `*.org.yaml`.
    Org,
    /// The `x-` keywords of a form.
    FormExtensions,
}

impl Format {
    fn file_name(self) -> &'static str {
        match self {
            Format::Manifest => "pack.schema.json",
            Format::Flow => "flow.schema.json",
            Format::Rules => "rules.schema.json",
            Format::Calendar => "calendar.schema.json",
            Format::Org => "org.schema.json",
            Format::FormExtensions => "form.schema.json",
        }
    }
}

struct Compiled {
    schemas: Vec<FormatSchema>,
    validators: Vec<Validator>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schemas = format_schemas();
        let validators = schemas
            .iter()
            .map(|format| {
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&format.schema)
                    // The format schemas are generated from our own types and checked
                    // by tests; failing here is a build defect, not a user mistake.
                    .unwrap_or_else(|error| {
                        panic!("format schema {} is invalid: {error}", format.file_name)
                    })
            })
            .collect();
        Compiled { schemas, validators }
    })
}

fn lookup(format: Format) -> (&'static Value, &'static Validator) {
    let compiled = compiled();
    let index = compiled
        .schemas
        .iter()
        .position(|schema| schema.file_name == format.file_name())
        .unwrap_or_default();
    (&compiled.schemas[index].schema, &compiled.validators[index])
}

/// Validates a document against its format and reports every violation.
pub(crate) fn validate(
    source: &SourceFile,
    document: &Document,
    format: Format,
) -> Vec<Diagnostic> {
    let (schema, validator) = lookup(format);
    let errors: Vec<ValidationError<'static>> =
        validator.iter_errors(&document.value).map(ValidationError::to_owned).collect();
    let mut diagnostics = Vec::new();
    let mut seen = BTreeSet::new();
    for error in &errors {
        report(source, document, schema, error, &mut diagnostics);
    }
    // Several branches of one error may describe the same place; keep each once.
    diagnostics.retain(|diagnostic| {
        let key = (
            diagnostic.location.as_ref().map(|location| location.start),
            diagnostic.code,
            diagnostic.message.clone(),
        );
        seen.insert(key)
    });
    diagnostics
}

/// Whether a value fits its format.
pub(crate) fn is_valid(value: &Value, format: Format) -> bool {
    lookup(format).1.is_valid(value)
}

/// A copy of the value without the keys its format does not know.
pub(crate) fn without_unknown_keys(value: &Value, format: Format) -> Value {
    let (_, validator) = lookup(format);
    let mut value = value.clone();
    // Removing a key never creates a new unknown one; a few rounds reach nested ones
    // hidden behind `oneOf` branches.
    for _ in 0..8 {
        let removals: Vec<(String, Vec<String>)> =
            validator.iter_errors(&value).flat_map(|error| unknown_keys(&error)).collect();
        if removals.is_empty() {
            break;
        }
        for (pointer, keys) in removals {
            if let Some(Value::Object(map)) = value.pointer_mut(&pointer) {
                for key in keys {
                    map.remove(&key);
                }
            }
        }
    }
    value
}

fn unknown_keys(error: &ValidationError<'_>) -> Vec<(String, Vec<String>)> {
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            vec![(error.instance_path().as_str().to_owned(), unexpected.clone())]
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            best_branch(context).into_iter().flatten().flat_map(unknown_keys).collect()
        }
        _ => Vec::new(),
    }
}

fn report(
    source: &SourceFile,
    document: &Document,
    schema: &Value,
    error: &ValidationError<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let pointer = error.instance_path().as_str().to_owned();
    let at_value = || Some(source.location(document.value_range(&pointer)));
    let place = describe_place(&pointer);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let known = known_properties(schema, error.schema_path().as_str());
            for key in unexpected {
                let child = format!("{pointer}/{}", pointer_segment(key));
                let location = Some(source.location(document.key_range(&child)));
                let stray_text = error.instance().get(key).is_some_and(Value::is_null);
                let hint = match closest(key, known.iter().map(String::as_str)) {
                    Some(candidate) => format!("did you mean `{candidate}`?"),
                    None if stray_text => {
                        "a text with a comma or colon inside `{...}` must be quoted: `title: \"a, b\"`"
                            .to_owned()
                    }
                    None if known.is_empty() => "remove it".to_owned(),
                    None => format!("known keys here: {}", join_ticked(&known)),
                };
                out.push(
                    Diagnostic::new(Code::UnknownKey, format!("unknown key `{key}` {place}"))
                        .at(location)
                        .hint(hint),
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            let span = document.span(&pointer);
            // Point at the key that names the incomplete mapping, or its first line.
            let range = span.key.unwrap_or(span.value.start..span.value.start);
            out.push(
                Diagnostic::new(Code::MissingKey, format!("missing key `{key}` {place}"))
                    .at(Some(source.location(range)))
                    .hint(format!("add `{key}:`; see the reference for an example")),
            );
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(kind) => type_word(&kind.to_string()),
                TypeKind::Multiple(kinds) => kinds
                    .iter()
                    .map(|kind| type_word(&kind.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let found = value_word(error.instance());
            let hint = if expected.contains("list") && !found.contains("list") {
                "write a list: `[item]`, or one `- item` per line".to_owned()
            } else if expected.contains("mapping") {
                "write `key: value` pairs, indented under this key".to_owned()
            } else if expected.contains("number") && found.contains("text") {
                "write the number without quotes".to_owned()
            } else if expected == "a text"
                && !matches!(&**error.instance(), Value::Object(_) | Value::Array(_))
            {
                format!("put the value in quotes: `\"{}\"`", error.instance())
            } else {
                format!("write {expected} here")
            };
            out.push(
                Diagnostic::new(
                    Code::WrongType,
                    format!("expected {expected} {place}, found {found}"),
                )
                .at(at_value())
                .hint(hint),
            );
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|options| {
                    options.iter().filter_map(|option| option.as_str().map(str::to_owned)).collect()
                })
                .unwrap_or_default();
            out.push(not_allowed(error.instance(), &options, &place).at(at_value()));
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(
                Diagnostic::new(
                    Code::NotAllowedValue,
                    format!("expected `{expected_value}` {place}, found `{}`", error.instance()),
                )
                .at(at_value()),
            );
        }
        ValidationErrorKind::Pattern { pattern } => {
            let found = error.instance().as_str().unwrap_or_default();
            let (what, hint) = pattern_hint(pattern);
            let code = if pattern == stagecraft_model::DURATION_PATTERN {
                Code::InvalidDuration
            } else if what == "a valid date" || what == "a valid span of hours" {
                Code::InvalidDate
            } else {
                Code::MalformedValue
            };
            out.push(
                Diagnostic::new(code, format!("`{found}` is not {what} {place}"))
                    .at(at_value())
                    .hint(hint),
            );
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let branches = schema_at(schema, error.schema_path().as_str());
            if let Some(options) = branches.and_then(|branches| word_options(schema, branches)) {
                out.push(not_allowed(error.instance(), &options, &place).at(at_value()));
                return;
            }
            let chosen = best_branch(context).or_else(|| {
                branches.and_then(|branches| {
                    same_type_branch(schema, branches, error.instance(), context)
                })
            });
            match chosen {
                Some(branch) => {
                    for inner in branch {
                        report(source, document, schema, inner, out);
                    }
                }
                None => {
                    let shapes = accepted_shapes(schema, error.schema_path().as_str());
                    let found = value_word(error.instance());
                    let mut diagnostic = Diagnostic::new(
                        Code::NoShapeMatches,
                        format!("{found} does not match any accepted form {place}"),
                    )
                    .at(at_value());
                    let tags =
                        branches.map(|branches| single_keys(schema, branches)).unwrap_or_default();
                    let written = match &**error.instance() {
                        Value::Object(map) if map.len() == 1 => map.keys().next().cloned(),
                        _ => None,
                    };
                    let suggestion = written
                        .as_deref()
                        .and_then(|key| closest(key, tags.iter().map(String::as_str)));
                    if let (Some(written), Some(suggestion)) = (&written, suggestion) {
                        diagnostic = diagnostic.hint(format!(
                            "`{written}` is not one of the accepted keys here; did you mean `{suggestion}`?"
                        ));
                    } else if !shapes.is_empty() {
                        diagnostic =
                            diagnostic.hint(format!("write one of: {}", shapes.join(", ")));
                    }
                    out.push(diagnostic);
                }
            }
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => out.push(
            Diagnostic::new(
                Code::OutOfRange,
                format!(
                    "{} is below the smallest value allowed {place}, {limit}",
                    error.instance()
                ),
            )
            .at(at_value())
            .hint(format!("write a value of at least {limit}")),
        ),
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => out.push(
            Diagnostic::new(
                Code::OutOfRange,
                format!("{} is above the largest value allowed {place}, {limit}", error.instance()),
            )
            .at(at_value())
            .hint(format!("write a value of at most {limit}")),
        ),
        ValidationErrorKind::MinItems { limit } => out.push(
            Diagnostic::new(Code::OutOfRange, format!("{place} needs at least {limit} item(s)"))
                .at(at_value())
                .hint("add an entry, or remove the key"),
        ),
        ValidationErrorKind::MinProperties { .. } => out.push(
            Diagnostic::new(Code::OutOfRange, format!("the mapping {place} is empty"))
                .at(at_value())
                .hint("fill it in, or remove the key"),
        ),
        _ => out.push(
            Diagnostic::new(
                Code::OutOfRange,
                format!("{} {place}", lowercase(&error.masked().to_string())),
            )
            .at(at_value()),
        ),
    }
}

/// The message for a word that is not one of the allowed words.
fn not_allowed(instance: &Value, options: &[String], place: &str) -> Diagnostic {
    let found = instance.as_str().map(str::to_owned).unwrap_or_else(|| instance.to_string());
    let hint = match closest(&found, options.iter().map(String::as_str)) {
        Some(candidate) => format!("did you mean `{candidate}`?"),
        None => format!("use one of: {}", join_ticked(options)),
    };
    Diagnostic::new(
        Code::NotAllowedValue,
        format!("`{found}` is not allowed {place}; expected one of {}", join_ticked(options)),
    )
    .hint(hint)
}

/// When every branch is a fixed word (`const`), the branches are really an `enum`.
fn word_options(root: &Value, branches: &Value) -> Option<Vec<String>> {
    let branches = branches.as_array()?;
    let mut words = Vec::new();
    for branch in branches {
        let branch = resolve(root, branch);
        if let Some(word) = branch.get("const").and_then(Value::as_str) {
            words.push(word.to_owned());
        } else if let Some(options) = branch.get("enum").and_then(Value::as_array) {
            words.extend(options.iter().filter_map(Value::as_str).map(str::to_owned));
        } else {
            return None;
        }
    }
    (!words.is_empty()).then_some(words)
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            reference.strip_prefix('#').and_then(|pointer| root.pointer(pointer)).unwrap_or(schema)
        }
        None => schema,
    }
}

/// When no branch stands out by depth, the branch that expects the value's own type
/// (a mapping where a mapping is one of the accepted forms) says most about it.
fn same_type_branch<'a>(
    root: &Value,
    branches: &Value,
    instance: &Value,
    context: &'a [Vec<ValidationError<'static>>],
) -> Option<&'a Vec<ValidationError<'static>>> {
    let kind = match instance {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        _ => return None,
    };
    let branches = branches.as_array()?;
    let matching: Vec<usize> = branches
        .iter()
        .enumerate()
        .filter(|(_, branch)| accepts(root, branch, kind, 0))
        .map(|(index, _)| index)
        .collect();
    match matching.as_slice() {
        [index] => context.get(*index).filter(|errors| !errors.is_empty()),
        _ => None,
    }
}

/// The keys of alternatives written as one-key maps (`{role: …}`, `{user: …}`).
fn single_keys(root: &Value, branches: &Value) -> Vec<String> {
    branches
        .as_array()
        .map(|branches| {
            branches
                .iter()
                .filter_map(|branch| {
                    let required = resolve(root, branch).get("required")?.as_array()?;
                    match required.as_slice() {
                        [only] => only.as_str().map(str::to_owned),
                        _ => None,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a schema (following `$ref`s and alternatives) accepts values of a JSON type.
fn accepts(root: &Value, schema: &Value, kind: &str, depth: usize) -> bool {
    let schema = resolve(root, schema);
    if depth > 8 {
        return false;
    }
    if schema.get("type").and_then(Value::as_str) == Some(kind)
        || (kind == "object" && schema.get("properties").is_some())
    {
        return true;
    }
    ["anyOf", "oneOf"].iter().any(|keyword| {
        schema
            .get(*keyword)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|item| accepts(root, item, kind, depth + 1)))
    })
}

/// Of the branches of a `oneOf`/`anyOf`, the one the author most likely meant: the one
/// whose errors lie deepest inside the value (a one-key map such as `{role: …}`
/// whose inner value is wrong), as long as some branch goes deeper than the others.
fn best_branch<'a>(
    context: &'a [Vec<ValidationError<'static>>],
) -> Option<&'a Vec<ValidationError<'static>>> {
    let depth = |errors: &Vec<ValidationError<'static>>| {
        errors
            .iter()
            .map(|error| error.instance_path().as_str().matches('/').count())
            .min()
            .unwrap_or(0)
    };
    let depths: Vec<usize> = context.iter().map(depth).collect();
    let deepest = *depths.iter().max()?;
    let shallowest = *depths.iter().min()?;
    if deepest == shallowest {
        return None;
    }
    context
        .iter()
        .zip(&depths)
        .filter(|(_, depth)| **depth == deepest)
        .map(|(branch, _)| branch)
        .min_by_key(|branch| branch.len())
}

/// Resolves a schema path (`/properties/stages/items/$ref/...`) within our own
/// generated schemas, following local `$ref`s.
fn schema_at<'a>(root: &'a Value, schema_path: &str) -> Option<&'a Value> {
    let mut node = root;
    for segment in schema_path.split('/').skip(1) {
        if segment == "$ref" {
            let reference = node.get("$ref")?.as_str()?;
            node = root.pointer(reference.strip_prefix('#')?)?;
            continue;
        }
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) => map.get(&segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn known_properties(root: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
    schema_at(root, parent)
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

fn accepted_shapes(root: &Value, schema_path: &str) -> Vec<String> {
    let Some(Value::Array(branches)) = schema_at(root, schema_path) else {
        return Vec::new();
    };
    branches
        .iter()
        .map(|branch| {
            let branch = match branch.get("$ref").and_then(Value::as_str) {
                Some(reference) => reference
                    .strip_prefix('#')
                    .and_then(|pointer| root.pointer(pointer))
                    .unwrap_or(branch),
                None => branch,
            };
            if let Some(Value::Array(required)) = branch.get("required") {
                if required.len() == 1 {
                    return format!("`{{{}: …}}`", required[0].as_str().unwrap_or_default());
                }
                if branch.get("properties").is_some() {
                    return "a mapping".to_owned();
                }
            }
            if let Some(Value::Array(options)) = branch.get("enum") {
                return options
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|option| format!("`{option}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
            }
            match branch.get("type").and_then(Value::as_str) {
                Some("string") => "a text".to_owned(),
                Some("object") => "a mapping".to_owned(),
                Some(other) => type_word(other),
                None => "a value".to_owned(),
            }
        })
        .collect()
}

/// "in `stages[2].actions[0]`", from a JSON pointer.
fn describe_place(pointer: &str) -> String {
    if pointer.is_empty() {
        return "at the top level".to_owned();
    }
    let mut place = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            place.push_str(&format!("[{segment}]"));
        } else {
            if !place.is_empty() {
                place.push('.');
            }
            place.push_str(&segment);
        }
    }
    format!("in `{place}`")
}

fn pattern_hint(pattern: &str) -> (&'static str, &'static str) {
    use stagecraft_model::{DURATION_PATTERN, FIELD_PATTERN, ID_PATTERN};
    if pattern == ID_PATTERN {
        (
            "a valid id",
            "ids use lowercase letters, digits, `_` and `-`, and start with a letter (e.g. `first_contact`)",
        )
    } else if pattern == FIELD_PATTERN {
        (
            "a valid field name",
            "field names use lowercase letters, digits and `_` (e.g. `expected_close_date`)",
        )
    } else if pattern == DURATION_PATTERN {
        ("a valid duration", "write a number and a unit: `30m`, `48h`, `7d` or `2w`")
    } else if pattern.contains("[0-9]{4}-") {
        ("a valid date", "write dates as `YYYY-MM-DD`, e.g. `2026-10-01`")
    } else if pattern.contains(":[0-5][0-9]-") {
        ("a valid span of hours", "write working hours as `HH:MM-HH:MM`, e.g. `09:00-12:00`")
    } else if pattern.starts_with("^[+-]") {
        ("a valid UTC offset", "write the offset as `+08:00`")
    } else if pattern.contains("KB|MB") {
        ("a valid size", "write a size like `500KB` or `20MB`")
    } else if pattern.contains("[A-Z]{3}") {
        ("a currency code", "write a three-letter currency code such as `CNY`")
    } else {
        ("in the expected form", "see the reference for the expected form")
    }
}

fn type_word(kind: &str) -> String {
    match kind {
        "array" => "a list".to_owned(),
        "object" => "a mapping".to_owned(),
        "string" => "a text".to_owned(),
        "integer" => "a whole number".to_owned(),
        "number" => "a number".to_owned(),
        "boolean" => "true or false".to_owned(),
        "null" => "nothing".to_owned(),
        other => other.to_owned(),
    }
}

fn value_word(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(boolean) => format!("`{boolean}`"),
        Value::Number(number) => format!("the number `{number}`"),
        Value::String(text) => {
            let short: String = text.chars().take(40).collect();
            format!("the text `{short}`")
        }
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn join_ticked(items: &[String]) -> String {
    items.iter().map(|item| format!("`{item}`")).collect::<Vec<_>>().join(", ")
}

fn lowercase(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The candidate nearest to a misspelt word, if it is near enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.chars().count() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}
