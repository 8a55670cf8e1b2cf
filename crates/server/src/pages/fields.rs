//! Generated forms: from a form's JSON Schema (with its `x-ui`, `x-link`, `x-file` and
//! `x-user` hints) to inputs; from what a browser posts back to the JSON the schema
//! expects; and from stored values to text people read.
//!
//! Inputs are named after where their value goes: `name`, `address.city` (a nested
//! object), `contacts[0].phone` (a row of an array). Everything posted is text, so
//! numbers, booleans, dates and times are converted here by the schema's types, and an
//! empty input means "no value" (absent on a new record, cleared on an edit).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Map, Value};
use stagecraft_model::{FormMeta, Text, UiHints, Widget};
use stagecraft_runtime::FieldProblem;

use super::Lang;

/// Raw input values by input name, as posted (or as an existing record would post).
pub(crate) type Raw = BTreeMap<String, Vec<String>>;

/// China has one time zone without daylight saving time: UTC+8 (Asia/Shanghai).
const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("+08:00 is a valid offset"),
};

pub(crate) fn china() -> FixedOffset {
    CHINA
}

/// Unix milliseconds as `2026-11-30 10:00` in China.
pub(crate) fn local_time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|at| at.with_timezone(&china()).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A record the form can link to.
#[derive(Clone, Debug)]
pub(crate) struct Choice {
    /// The record id.
    pub(crate) id: String,
    /// Its title (the form's title field), else its id.
    pub(crate) label: String,
}

/// A person who can be picked in a user field.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) roles: Vec<String>,
}

/// What building inputs and reading them needs besides the schema.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) lang: Lang,
    /// The form's whole schema, for local `$ref`s.
    pub(crate) root: &'a Value,
    /// Records each linked form offers (only those the caller may see).
    pub(crate) links: &'a BTreeMap<String, Vec<Choice>>,
    /// The people of the organisation.
    pub(crate) people: &'a [Person],
    /// Names of uploaded files the caller may see, by file id.
    pub(crate) files: &'a BTreeMap<String, String>,
}

// ----- the schema, node by node ---------------------------------------------------------------

/// How a field is entered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Text,
    Textarea,
    Number { integer: bool },
    Money,
    Date,
    DateTime,
    Email,
    Phone,
    Url,
    Choice { radio: bool },
    Checkbox,
    Checkboxes,
    File { multiple: bool },
    Link(String),
    User(Option<String>),
    Rows,
    Group,
}

/// Follows local `$ref`s (`#/$defs/…`), a bounded number of times.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else { break };
        let Some(pointer) = reference.strip_prefix('#') else { break };
        match root.pointer(pointer) {
            Some(target) => node = target,
            None => break,
        }
    }
    node
}

fn ui_of(node: &Value) -> UiHints {
    node.get("x-ui").and_then(|ui| serde_json::from_value(ui.clone()).ok()).unwrap_or_default()
}

fn types_of(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn enum_of(node: &Value) -> Option<&Vec<Value>> {
    node.get("enum").and_then(Value::as_array)
}

/// The input a field gets: the `x-` keywords first, then `x-ui.widget`, then the type.
pub(crate) fn kind_of(root: &Value, node: &Value) -> Kind {
    let node = resolve(root, node);
    let ui = ui_of(node);
    let types = types_of(node);
    let has = |kind: &str| types.contains(&kind);
    if node.get("x-file").is_some() {
        return Kind::File { multiple: false };
    }
    if let Some(form) = node.pointer("/x-link/form").and_then(Value::as_str) {
        return Kind::Link(form.to_owned());
    }
    if node.get("x-user").is_some() {
        let role = node.pointer("/x-user/role").and_then(Value::as_str).map(str::to_owned);
        return Kind::User(role);
    }
    if has("array") {
        let items = node.get("items").map(|items| resolve(root, items));
        if items.is_some_and(|items| items.get("x-file").is_some()) {
            return Kind::File { multiple: true };
        }
        if ui.widget == Some(Widget::Checkboxes)
            || items.is_some_and(|items| enum_of(items).is_some())
        {
            return Kind::Checkboxes;
        }
        return Kind::Rows;
    }
    if has("object") || (types.is_empty() && node.get("properties").is_some()) {
        return Kind::Group;
    }
    if let Some(values) = enum_of(node) {
        let radio = match ui.widget {
            Some(Widget::Radio) => true,
            Some(Widget::Select) => false,
            _ => values.len() <= 4,
        };
        return Kind::Choice { radio };
    }
    if has("boolean") {
        return Kind::Checkbox;
    }
    if has("integer") || has("number") {
        return if ui.widget == Some(Widget::Money) {
            Kind::Money
        } else {
            Kind::Number { integer: has("integer") && !has("number") }
        };
    }
    let format = node.get("format").and_then(Value::as_str).unwrap_or_default();
    match (ui.widget, format) {
        (Some(Widget::Textarea), _) => Kind::Textarea,
        (Some(Widget::Phone), _) => Kind::Phone,
        (Some(Widget::Email), _) | (_, "email") => Kind::Email,
        (Some(Widget::Datetime), _) | (_, "date-time") => Kind::DateTime,
        (Some(Widget::Date), _) | (_, "date") => Kind::Date,
        (_, "uri") => Kind::Url,
        _ => Kind::Text,
    }
}

/// The properties of an object node, in page order: `x-ui.order` first (smaller
/// first), then as written.
fn properties<'a>(root: &'a Value, node: &'a Value) -> Vec<(&'a String, &'a Value)> {
    let node = resolve(root, node);
    let mut fields: Vec<(&String, &Value)> = node
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.iter().collect())
        .unwrap_or_default();
    fields.sort_by_key(|(_, field)| ui_of(resolve(root, field)).order.unwrap_or(i32::MAX));
    fields
}

fn required_of(root: &Value, node: &Value) -> BTreeSet<String> {
    resolve(root, node)
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn label(lang: Lang, ui: &UiHints, fallback: &str) -> String {
    ui.label.as_ref().map(|text| lang.text(text)).unwrap_or_else(|| fallback.to_owned())
}

fn text_or_empty(lang: Lang, text: Option<&Text>) -> String {
    text.map(|text| lang.text(text)).unwrap_or_default()
}

/// The forms a schema links to (`x-link`), at any depth.
pub(crate) fn link_forms(schema: &Value) -> BTreeSet<String> {
    let mut forms = BTreeSet::new();
    let mut pending = vec![schema];
    while let Some(node) = pending.pop() {
        match node {
            Value::Object(map) => {
                if let Some(form) = map.get("x-link").and_then(|link| link.get("form")) {
                    if let Some(form) = form.as_str() {
                        forms.insert(form.to_owned());
                    }
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    forms
}

/// The first top-level field of a schema that links to `form`.
pub(crate) fn link_field_to(schema: &Value, form: &str) -> Option<String> {
    properties(schema, schema)
        .into_iter()
        .find(|(_, node)| kind_of(schema, node) == Kind::Link(form.to_owned()))
        .map(|(name, _)| name.clone())
}

/// The label of a top-level field.
pub(crate) fn field_label(lang: Lang, schema: &Value, field: &str) -> String {
    schema
        .pointer(&format!("/properties/{}", field.replace('~', "~0").replace('/', "~1")))
        .map(|node| label(lang, &ui_of(resolve(schema, node)), field))
        .unwrap_or_else(|| field.to_owned())
}

// ----- input names and JSON pointers ----------------------------------------------------------

/// `contacts[0].phone` → `/contacts/0/phone`.
pub(crate) fn pointer_of(name: &str) -> String {
    let mut pointer = String::new();
    for part in name.split('.') {
        let (field, indexes) = part.split_once('[').unwrap_or((part, ""));
        pointer.push('/');
        pointer.push_str(&field.replace('~', "~0").replace('/', "~1"));
        for index in indexes.split('[').filter(|index| !index.is_empty()) {
            pointer.push('/');
            pointer.push_str(index.trim_end_matches(']'));
        }
    }
    pointer
}

/// `/contacts/0/phone` → `contacts[0].phone` (field names never start with a digit).
pub(crate) fn name_of(pointer: &str) -> String {
    let mut name = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|byte| byte.is_ascii_digit()) {
            name.push_str(&format!("[{segment}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(&segment);
        }
    }
    name
}

fn html_id(name: &str) -> String {
    let mut id = String::from("f-");
    for c in name.chars() {
        id.push(if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' });
    }
    id
}

/// The row indexes posted for an array input (`name[3]…`), sorted.
fn row_indexes(raw: &Raw, name: &str) -> Vec<usize> {
    let prefix = format!("{name}[");
    let mut indexes: BTreeSet<usize> = BTreeSet::new();
    for key in
        raw.range(prefix.clone()..).map(|(key, _)| key).take_while(|key| key.starts_with(&prefix))
    {
        let rest = &key[prefix.len()..];
        if let Some(index) = rest.split(']').next().and_then(|index| index.parse().ok()) {
            // Bounded, so that a posted `name[999999999]` cannot make a huge page.
            if index < 1000 {
                indexes.insert(index);
            }
        }
    }
    indexes.into_iter().collect()
}

// ----- inputs -----------------------------------------------------------------------------------

/// One input (or group of inputs) of a generated form, as the `field` template takes
/// it. Every key is always there: the templates run in strict mode.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct FieldView {
    name: String,
    id: String,
    /// `input`, `textarea`, `select`, `radio`, `checkbox`, `checkboxes`, `file`, `rows`,
    /// `group`.
    kind: &'static str,
    label: String,
    help: String,
    placeholder: String,
    required: bool,
    readonly: bool,
    editable: bool,
    labelled: bool,
    errors: Vec<String>,
    input_type: &'static str,
    step: &'static str,
    inputmode: &'static str,
    value: String,
    checked: bool,
    options: Vec<OptionView>,
    datalist: String,
    rows: Vec<RowView>,
    children: Vec<FieldView>,
    add_label: String,
    choose_label: String,
    accept: String,
    multiple: bool,
    current: String,
    currency: String,
    /// Hidden inputs that keep files uploaded before (a form that came back with
    /// problems does not make people choose their files again).
    kept: Vec<OptionView>,
}

#[derive(Clone, Debug, Serialize)]
struct OptionView {
    id: String,
    name: String,
    value: String,
    label: String,
    selected: bool,
}

#[derive(Clone, Debug, Serialize)]
struct RowView {
    label: String,
    fields: Vec<FieldView>,
}

/// A section of a generated form.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SectionView {
    title: String,
    help: String,
    collapsed: bool,
    open: bool,
    fields: Vec<FieldView>,
}

/// What a form is built from besides the schema.
#[derive(Debug)]
pub(crate) struct Fill<'a> {
    /// The values to show.
    pub(crate) raw: &'a Raw,
    /// Messages by input name, in the page's language.
    pub(crate) errors: &'a BTreeMap<String, Vec<String>>,
    /// Whether the values come from a record (or nothing) rather than a post: then
    /// every list of rows gets one empty row to fill in.
    pub(crate) fresh: bool,
    /// The list a posted "add row" asked to grow.
    pub(crate) add_row: Option<&'a str>,
    /// The stored values, to name the files a record has.
    pub(crate) existing: Option<&'a Map<String, Value>>,
}

/// The inputs of a form, grouped in its sections; also every input name built, so
/// that messages for other names can be shown above the form.
pub(crate) fn form_view(
    ctx: &Ctx<'_>,
    meta: &FormMeta,
    fill: &Fill<'_>,
) -> (Vec<SectionView>, BTreeSet<String>) {
    let lang = ctx.lang;
    let required = required_of(ctx.root, ctx.root);
    let mut names = BTreeSet::new();
    let mut unsectioned: Vec<FieldView> = Vec::new();
    let mut sectioned: BTreeMap<String, Vec<FieldView>> = BTreeMap::new();
    for (name, node) in properties(ctx.root, ctx.root) {
        let ui = ui_of(resolve(ctx.root, node));
        if ui.hidden {
            continue;
        }
        let view = field_view(ctx, fill, node, name, name, required.contains(name), &mut names);
        match ui.section.filter(|section| meta.sections.iter().any(|s| &s.id == section)) {
            Some(section) => sectioned.entry(section.to_string()).or_default().push(view),
            None => unsectioned.push(view),
        }
    }
    let mut sections = Vec::new();
    if !unsectioned.is_empty() {
        sections.push(SectionView {
            title: String::new(),
            help: String::new(),
            collapsed: false,
            open: true,
            fields: unsectioned,
        });
    }
    for section in &meta.sections {
        let Some(fields) = sectioned.remove(section.id.as_str()) else { continue };
        // A folded section opens when it holds a value or a problem.
        let open = fields.iter().any(|field| !field.errors.is_empty() || has_value(field));
        sections.push(SectionView {
            title: lang.text(&section.title),
            help: text_or_empty(lang, section.help.as_ref()),
            collapsed: section.collapsed,
            open,
            fields,
        });
    }
    (sections, names)
}

fn has_value(field: &FieldView) -> bool {
    !field.value.is_empty()
        || field.checked
        || field.options.iter().any(|option| option.selected)
        || field.children.iter().any(has_value)
        || field.rows.iter().any(|row| row.fields.iter().any(has_value))
}

fn field_view(
    ctx: &Ctx<'_>,
    fill: &Fill<'_>,
    node: &Value,
    name: &str,
    fallback_label: &str,
    required: bool,
    names: &mut BTreeSet<String>,
) -> FieldView {
    let lang = ctx.lang;
    let node = resolve(ctx.root, node);
    let ui = ui_of(node);
    let kind = kind_of(ctx.root, node);
    names.insert(name.to_owned());
    let first = |name: &str| {
        fill.raw.get(name).and_then(|values| values.last()).cloned().unwrap_or_default()
    };
    let mut view = FieldView {
        name: name.to_owned(),
        id: html_id(name),
        label: label(lang, &ui, fallback_label),
        help: text_or_empty(lang, ui.help.as_ref()),
        placeholder: text_or_empty(lang, ui.placeholder.as_ref()),
        required,
        readonly: ui.readonly,
        errors: fill.errors.get(name).cloned().unwrap_or_default(),
        choose_label: lang.pick("请选择", "Choose…").to_owned(),
        add_label: lang.pick("添加一行", "Add a row").to_owned(),
        ..FieldView::default()
    };
    let options_of = |values: &[Value], selected: &dyn Fn(&str) -> bool| -> Vec<OptionView> {
        values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let value = scalar_text(value);
                let label = ui
                    .options
                    .get(index)
                    .map(|text| lang.text(text))
                    .unwrap_or_else(|| value.clone());
                OptionView {
                    id: format!("{}-{index}", html_id(name)),
                    name: name.to_owned(),
                    selected: selected(&value),
                    value,
                    label,
                }
            })
            .collect()
    };
    match &kind {
        Kind::Group => {
            view.kind = "group";
            let required = required_of(ctx.root, node);
            for (child, child_node) in properties(ctx.root, node) {
                if ui_of(resolve(ctx.root, child_node)).hidden {
                    continue;
                }
                let child_name = format!("{name}.{child}");
                view.children.push(field_view(
                    ctx,
                    fill,
                    child_node,
                    &child_name,
                    child,
                    required.contains(child),
                    names,
                ));
            }
        }
        Kind::Rows => {
            view.kind = "rows";
            let items = node.get("items").map(|items| resolve(ctx.root, items));
            let mut count = row_indexes(fill.raw, name).last().map_or(0, |last| last + 1);
            if fill.fresh {
                count += 1;
            }
            if fill.add_row == Some(name) {
                count += 1;
            }
            let max_items = node.get("maxItems").and_then(Value::as_u64).unwrap_or(100) as usize;
            let count = count.clamp(1, max_items.max(1) + 1);
            for index in 0..count {
                let row_name = format!("{name}[{index}]");
                let fields = match items {
                    Some(items) if kind_of(ctx.root, items) == Kind::Group => {
                        let required = required_of(ctx.root, items);
                        properties(ctx.root, items)
                            .into_iter()
                            .filter(|(_, child)| !ui_of(resolve(ctx.root, child)).hidden)
                            .map(|(child, child_node)| {
                                field_view(
                                    ctx,
                                    fill,
                                    child_node,
                                    &format!("{row_name}.{child}"),
                                    child,
                                    required.contains(child),
                                    names,
                                )
                            })
                            .collect()
                    }
                    Some(items) => {
                        let mut item = field_view(ctx, fill, items, &row_name, "", false, names);
                        item.label = format!("{} {}", view.label, index + 1);
                        vec![item]
                    }
                    None => Vec::new(),
                };
                view.rows.push(RowView { label: format!("#{}", index + 1), fields });
            }
        }
        Kind::Choice { radio } => {
            view.kind = if *radio { "radio" } else { "select" };
            let chosen = first(name);
            let values = enum_of(node).cloned().unwrap_or_default();
            view.options = options_of(&values, &|value| value == chosen);
            view.value = chosen;
        }
        Kind::Checkboxes => {
            view.kind = "checkboxes";
            let chosen: Vec<String> = fill.raw.get(name).cloned().unwrap_or_default();
            let items = node.get("items").map(|items| resolve(ctx.root, items));
            let values = items.and_then(enum_of).cloned().unwrap_or_default();
            view.options = options_of(&values, &|value| chosen.iter().any(|c| c == value));
        }
        Kind::Checkbox => {
            view.kind = "checkbox";
            view.checked =
                fill.raw.get(name).is_some_and(|values| values.iter().any(|v| v == "true"));
        }
        Kind::User(role) => {
            view.kind = "select";
            let chosen = first(name);
            view.options = ctx
                .people
                .iter()
                .filter(|person| role.as_ref().is_none_or(|role| person.roles.contains(role)))
                .map(|person| OptionView {
                    id: format!("{}-{}", html_id(name), person.id),
                    name: name.to_owned(),
                    value: person.id.clone(),
                    label: format!("{}（{}）", person.name, person.id),
                    selected: person.id == chosen,
                })
                .collect();
            view.value = chosen;
        }
        Kind::Link(form) => {
            view.kind = "input";
            view.input_type = "text";
            view.datalist = format!("{}-choices", html_id(name));
            let value = first(name);
            view.options = ctx
                .links
                .get(form)
                .map(|choices| {
                    choices
                        .iter()
                        .map(|choice| OptionView {
                            id: String::new(),
                            name: name.to_owned(),
                            value: choice.id.clone(),
                            label: choice.label.clone(),
                            selected: choice.id == value,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if view.placeholder.is_empty() {
                view.placeholder = lang
                    .pick("输入名称搜索，或粘贴编号", "Type a name to search, or paste an id")
                    .to_owned();
            }
            // Show which record a stored id names.
            if let Some(choice) =
                ctx.links.get(form).and_then(|choices| choices.iter().find(|c| c.id == value))
            {
                view.current = choice.label.clone();
            }
            view.value = value;
        }
        Kind::File { multiple } => {
            view.kind = "file";
            view.multiple = *multiple;
            view.accept = node
                .pointer("/x-file/accept")
                .or_else(|| node.pointer("/items/x-file/accept"))
                .and_then(Value::as_array)
                .map(|types| types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            let kept: Vec<String> = fill
                .raw
                .get(name)
                .map(|ids| ids.iter().filter(|id| !id.trim().is_empty()).cloned().collect())
                .unwrap_or_default();
            let stored: Vec<String> = match fill.existing.and_then(|existing| existing.get(name)) {
                Some(Value::String(id)) => vec![id.clone()],
                Some(Value::Array(ids)) => ids.iter().map(scalar_text).collect(),
                _ => Vec::new(),
            };
            let shown = if kept.is_empty() { &stored } else { &kept };
            let names: Vec<String> = shown
                .iter()
                .map(|id| ctx.files.get(id).cloned().unwrap_or_else(|| id.clone()))
                .collect();
            if !names.is_empty() {
                view.current = format!(
                    "{}{}",
                    if kept.is_empty() {
                        lang.pick("已有文件：", "Current file: ")
                    } else {
                        lang.pick("已上传：", "Uploaded: ")
                    },
                    names.join(", ")
                );
            }
            view.kept = kept
                .into_iter()
                .map(|id| OptionView {
                    id: String::new(),
                    name: name.to_owned(),
                    label: String::new(),
                    selected: true,
                    value: id,
                })
                .collect();
        }
        Kind::Textarea => {
            view.kind = "textarea";
            view.value = first(name);
        }
        scalar => {
            view.kind = "input";
            view.value = first(name);
            let (input_type, step, inputmode) = match scalar {
                Kind::Number { integer: true } => ("number", "1", "numeric"),
                Kind::Number { integer: false } => ("number", "any", "decimal"),
                // Money as text, so that `1,200,000` can be typed and is understood.
                Kind::Money => ("text", "", "decimal"),
                Kind::Date => ("date", "", ""),
                Kind::DateTime => ("datetime-local", "", ""),
                Kind::Email => ("email", "", "email"),
                Kind::Phone => ("tel", "", "tel"),
                Kind::Url => ("url", "", "url"),
                _ => ("text", "", ""),
            };
            view.input_type = input_type;
            view.step = step;
            view.inputmode = inputmode;
            if *scalar == Kind::Money {
                view.currency = currency_symbol(ui.currency.as_deref()).to_owned();
            }
        }
    }
    view.labelled = matches!(view.kind, "input" | "textarea" | "select" | "file");
    view.editable = !view.readonly;
    if view.readonly {
        // A read-only field shows its value in words, not its code.
        view.value = match view.kind {
            "select" | "radio" => view
                .options
                .iter()
                .find(|option| option.selected)
                .map(|option| option.label.clone())
                .unwrap_or_else(|| view.value.clone()),
            _ if !view.current.is_empty() && view.kind == "input" => view.current.clone(),
            _ => view.value.clone(),
        };
        view.labelled = true;
        view.kind = "input";
        view.current = String::new();
    }
    view
}

fn currency_symbol(code: Option<&str>) -> &str {
    match code.unwrap_or("CNY") {
        "CNY" => "¥",
        "USD" => "$",
        "EUR" => "€",
        other => other,
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn file_names(value: &Value) -> String {
    match value {
        Value::Array(files) => files.iter().map(file_names).collect::<Vec<_>>().join(", "),
        Value::Object(file) => file
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| Value::Object(file.clone()).to_string()),
        Value::String(name) => name.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ----- stored JSON → input values ----------------------------------------------------------------

/// The input values an existing record's fields would post (dates and times in China's
/// time), so that the same code builds the form for a new record, an edit and a post
/// that came back with problems.
pub(crate) fn raw_of(ctx: &Ctx<'_>, fields: &Map<String, Value>) -> Raw {
    let mut raw = Raw::new();
    for (name, node) in properties(ctx.root, ctx.root) {
        if let Some(value) = fields.get(name.as_str()) {
            flatten(ctx, node, name, value, &mut raw);
        }
    }
    raw
}

fn flatten(ctx: &Ctx<'_>, node: &Value, name: &str, value: &Value, raw: &mut Raw) {
    let node = resolve(ctx.root, node);
    match (kind_of(ctx.root, node), value) {
        (_, Value::Null) | (Kind::File { .. }, _) => {}
        (Kind::Group, Value::Object(map)) => {
            for (child, child_node) in properties(ctx.root, node) {
                if let Some(value) = map.get(child.as_str()) {
                    flatten(ctx, child_node, &format!("{name}.{child}"), value, raw);
                }
            }
        }
        (Kind::Rows, Value::Array(items)) => {
            let Some(items_node) = node.get("items") else { return };
            for (index, item) in items.iter().enumerate() {
                flatten(ctx, items_node, &format!("{name}[{index}]"), item, raw);
            }
        }
        (Kind::Checkboxes, Value::Array(items)) => {
            raw.insert(name.to_owned(), items.iter().map(scalar_text).collect());
        }
        (Kind::DateTime, Value::String(text)) => {
            let local = DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&china()).format("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_else(|_| text.clone());
            raw.insert(name.to_owned(), vec![local]);
        }
        (_, value) => {
            raw.insert(name.to_owned(), vec![scalar_text(value)]);
        }
    }
}

/// Input values from a query string (`?customer=…` fills in a link on a new record),
/// for top-level fields only.
pub(crate) fn raw_of_query(ctx: &Ctx<'_>, pairs: &[(String, String)]) -> Raw {
    let mut raw = Raw::new();
    for (name, _) in properties(ctx.root, ctx.root) {
        let values: Vec<String> =
            pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect();
        if !values.is_empty() {
            raw.insert(name.clone(), values);
        }
    }
    raw
}

/// Posted values by input name; names starting with `_` are the form's own.
pub(crate) fn raw_of_post(values: &[(String, String)]) -> Raw {
    let mut raw = Raw::new();
    for (name, value) in values {
        if !name.starts_with('_') {
            raw.entry(name.clone()).or_default().push(value.clone());
        }
    }
    raw
}

// ----- input values → JSON -------------------------------------------------------------------

/// Reads a form's posted values into the fields of a record. With `existing` (an
/// edit), only changed fields are returned, and emptied ones as `null`; a file field
/// without a new file keeps its files. Read-only and hidden fields are left out.
/// Values that cannot be converted are problems at their field.
pub(crate) fn fields_of(
    ctx: &Ctx<'_>,
    raw: &Raw,
    existing: Option<&Map<String, Value>>,
) -> (Map<String, Value>, Vec<FieldProblem>) {
    let mut fields = Map::new();
    let mut problems = Vec::new();
    for (name, node) in properties(ctx.root, ctx.root) {
        let resolved = resolve(ctx.root, node);
        let ui = ui_of(resolved);
        if ui.readonly || ui.hidden {
            continue;
        }
        let value = read(ctx, node, name, raw, &mut problems);
        match existing {
            None => {
                if let Some(value) = value {
                    fields.insert(name.clone(), value);
                }
            }
            Some(existing) => {
                let before = existing.get(name.as_str()).filter(|value| !value.is_null());
                let is_file = matches!(kind_of(ctx.root, resolved), Kind::File { .. });
                match (value, before) {
                    (None, _) if is_file => {}
                    (Some(value), before) if before != Some(&value) => {
                        fields.insert(name.clone(), value);
                    }
                    (None, Some(_)) => {
                        fields.insert(name.clone(), Value::Null);
                    }
                    _ => {}
                }
            }
        }
    }
    (fields, problems)
}

fn problem(name: &str, zh: &str, en: &str) -> FieldProblem {
    FieldProblem { pointer: pointer_of(name), message_zh: zh.to_owned(), message_en: en.to_owned() }
}

fn read(
    ctx: &Ctx<'_>,
    node: &Value,
    name: &str,
    raw: &Raw,
    problems: &mut Vec<FieldProblem>,
) -> Option<Value> {
    let node = resolve(ctx.root, node);
    let kind = kind_of(ctx.root, node);
    let last = raw.get(name).and_then(|values| values.last()).map(String::as_str);
    let text = last.map(str::trim).filter(|text| !text.is_empty());
    match kind {
        Kind::Group => {
            let mut map = Map::new();
            for (child, child_node) in properties(ctx.root, node) {
                if let Some(value) =
                    read(ctx, child_node, &format!("{name}.{child}"), raw, problems)
                {
                    map.insert(child.clone(), value);
                }
            }
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Kind::Rows => {
            let items_node = node.get("items")?;
            let items: Vec<Value> = row_indexes(raw, name)
                .into_iter()
                .filter_map(|index| {
                    read(ctx, items_node, &format!("{name}[{index}]"), raw, problems)
                })
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Kind::Checkboxes => {
            let items = node.get("items").map(|items| resolve(ctx.root, items));
            let values = items.and_then(enum_of).cloned().unwrap_or_default();
            let chosen: Vec<Value> = raw
                .get(name)
                .map(|posted| {
                    values
                        .iter()
                        .filter(|value| posted.iter().any(|p| *p == scalar_text(value)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (!chosen.is_empty()).then_some(Value::Array(chosen))
        }
        Kind::Checkbox => {
            let posted = raw.get(name)?;
            Some(Value::Bool(posted.iter().any(|value| value == "true")))
        }
        Kind::Choice { .. } => {
            let text = text?;
            // The enum's own value, with its JSON type (a score is the number 3).
            Some(
                enum_of(node)
                    .and_then(|values| values.iter().find(|value| scalar_text(value) == text))
                    .cloned()
                    .unwrap_or_else(|| Value::String(text.to_owned())),
            )
        }
        Kind::Number { integer } => number(text?, integer, name, problems),
        Kind::Money => {
            let cleaned: String = text?
                .chars()
                .filter(|c| !matches!(c, ',' | '，' | ' ' | '\u{a0}' | '¥' | '￥'))
                .collect();
            number(&cleaned, false, name, problems)
        }
        Kind::Date => {
            let text = text?;
            if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() {
                problems.push(problem(
                    name,
                    "请填写有效日期，例如 2026-11-30",
                    "enter a valid date, e.g. 2026-11-30",
                ));
            }
            Some(Value::String(text.to_owned()))
        }
        Kind::DateTime => {
            let text = text?;
            match local_datetime(text) {
                Some(at) => Some(Value::String(at)),
                None => {
                    problems.push(problem(
                        name,
                        "请填写有效的日期和时间，例如 2026-11-30 10:00",
                        "enter a valid date and time, e.g. 2026-11-30 10:00",
                    ));
                    Some(Value::String(text.to_owned()))
                }
            }
        }
        Kind::Link(form) => {
            let text = text?;
            let choices = ctx.links.get(&form);
            let known = choices.is_some_and(|choices| choices.iter().any(|c| c.id == text));
            if known {
                return Some(Value::String(text.to_owned()));
            }
            // A name typed in full names the one record with that title.
            let named: Vec<&Choice> = choices
                .map(|choices| choices.iter().filter(|c| c.label == text).collect())
                .unwrap_or_default();
            match named.as_slice() {
                [only] => Some(Value::String(only.id.clone())),
                _ => Some(Value::String(text.to_owned())),
            }
        }
        Kind::Textarea => {
            let text = last?;
            (!text.trim().is_empty()).then(|| Value::String(text.replace("\r\n", "\n")))
        }
        // File ids: from the upload that came with the post, or kept from an earlier one.
        Kind::File { multiple } => {
            let ids: Vec<Value> = raw
                .get(name)?
                .iter()
                .map(|id| id.trim())
                .filter(|id| !id.is_empty())
                .map(|id| Value::String(id.to_owned()))
                .collect();
            if multiple {
                (!ids.is_empty()).then_some(Value::Array(ids))
            } else {
                ids.last().cloned()
            }
        }
        Kind::Text | Kind::Email | Kind::Phone | Kind::Url | Kind::User(_) => {
            text.map(|text| Value::String(text.to_owned()))
        }
    }
}

fn number(
    text: &str,
    integer: bool,
    name: &str,
    problems: &mut Vec<FieldProblem>,
) -> Option<Value> {
    if integer {
        match text.parse::<i64>() {
            Ok(value) => Some(Value::from(value)),
            Err(_) => {
                problems.push(problem(name, "请填写整数", "enter a whole number"));
                Some(Value::String(text.to_owned()))
            }
        }
    } else {
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => {
                // Whole amounts stay integers in the JSON (1200000, not 1200000.0).
                if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
                    Some(Value::from(value as i64))
                } else {
                    serde_json::Number::from_f64(value).map(Value::Number)
                }
            }
            _ => {
                problems.push(problem(name, "请填写数字", "enter a number"));
                Some(Value::String(text.to_owned()))
            }
        }
    }
}

/// `2026-11-30T10:00` (a `datetime-local` input, China's time) or an RFC 3339 time →
/// RFC 3339 with `+08:00`.
fn local_datetime(text: &str) -> Option<String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&china()).to_rfc3339());
    }
    let text = text.replace(' ', "T");
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
        .and_then(|naive| naive.and_local_timezone(china()).single())
        .map(|at| at.to_rfc3339())
}

// ----- stored values → words -------------------------------------------------------------------

/// A field of a record as people read it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DisplayView {
    name: String,
    label: String,
    text: String,
    href: String,
    lines: Vec<String>,
}

/// Linked records the caller may see, by id: title and page.
pub(crate) type LinkTitles = BTreeMap<String, (String, String)>;

/// The ids a record's link fields hold, with their forms.
pub(crate) fn linked_ids(ctx: &Ctx<'_>, fields: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, node) in properties(ctx.root, ctx.root) {
        if let Some(value) = fields.get(name.as_str()) {
            collect_links(ctx, node, value, &mut out);
        }
    }
    out
}

fn collect_links(ctx: &Ctx<'_>, node: &Value, value: &Value, out: &mut Vec<(String, String)>) {
    let node = resolve(ctx.root, node);
    match (kind_of(ctx.root, node), value) {
        (Kind::Link(form), Value::String(id)) => out.push((form, id.clone())),
        (Kind::Rows, Value::Array(items)) => {
            if let Some(items_node) = node.get("items") {
                for item in items {
                    collect_links(ctx, items_node, item, out);
                }
            }
        }
        (Kind::Group, Value::Object(map)) => {
            for (child, child_node) in properties(ctx.root, node) {
                if let Some(value) = map.get(child.as_str()) {
                    collect_links(ctx, child_node, value, out);
                }
            }
        }
        _ => {}
    }
}

/// The file ids a record's (or a post's) file fields hold.
pub(crate) fn file_ids(
    ctx: &Ctx<'_>,
    fields: &Map<String, Value>,
    raw: Option<&Raw>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, node) in properties(ctx.root, ctx.root) {
        if !matches!(kind_of(ctx.root, node), Kind::File { .. }) {
            continue;
        }
        match fields.get(name.as_str()) {
            Some(Value::String(id)) => ids.push(id.clone()),
            Some(Value::Array(items)) => ids.extend(items.iter().map(scalar_text)),
            _ => {}
        }
        if let Some(posted) = raw.and_then(|raw| raw.get(name.as_str())) {
            ids.extend(posted.iter().filter(|id| !id.trim().is_empty()).cloned());
        }
    }
    ids
}

/// Whether a top-level field holds files, and how many.
pub(crate) fn file_field(ctx: &Ctx<'_>, field: &str) -> Option<bool> {
    let node = ctx
        .root
        .pointer(&format!("/properties/{}", field.replace('~', "~0").replace('/', "~1")))?;
    match kind_of(ctx.root, node) {
        Kind::File { multiple } if !ui_of(resolve(ctx.root, node)).readonly => Some(multiple),
        _ => None,
    }
}

/// Every shown field of a record, in page order, as words.
pub(crate) fn display(
    ctx: &Ctx<'_>,
    fields: &Map<String, Value>,
    links: &LinkTitles,
) -> Vec<DisplayView> {
    let mut out = Vec::new();
    for (name, node) in properties(ctx.root, ctx.root) {
        let resolved = resolve(ctx.root, node);
        let ui = ui_of(resolved);
        if ui.hidden {
            continue;
        }
        let value = fields.get(name.as_str()).unwrap_or(&Value::Null);
        let (text, href) = words(ctx, resolved, value, links);
        let lines = match (kind_of(ctx.root, resolved), value) {
            (Kind::Rows | Kind::Group, Value::Array(_) | Value::Object(_)) => {
                lines(ctx, resolved, value, links)
            }
            _ => Vec::new(),
        };
        let text = if lines.is_empty() { text } else { String::new() };
        out.push(DisplayView {
            name: name.clone(),
            label: label(ctx.lang, &ui, name),
            text,
            href,
            lines,
        });
    }
    out
}

fn lines(ctx: &Ctx<'_>, node: &Value, value: &Value, links: &LinkTitles) -> Vec<String> {
    match value {
        Value::Array(items) => {
            let items_node = node.get("items").map(|items| resolve(ctx.root, items));
            items
                .iter()
                .map(|item| match items_node {
                    Some(items_node) => match item {
                        Value::Object(_) => lines(ctx, items_node, item, links).join("；"),
                        _ => words(ctx, items_node, item, links).0,
                    },
                    None => scalar_text(item),
                })
                .collect()
        }
        Value::Object(map) => properties(ctx.root, node)
            .into_iter()
            .filter_map(|(child, child_node)| {
                let value = map.get(child.as_str())?;
                let child_node = resolve(ctx.root, child_node);
                let ui = ui_of(child_node);
                let text = match value {
                    Value::Array(_) | Value::Object(_) => {
                        lines(ctx, child_node, value, links).join(", ")
                    }
                    _ => words(ctx, child_node, value, links).0,
                };
                Some(format!("{}: {text}", label(ctx.lang, &ui, child)))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A value in words, and the page it links to (for links to records).
fn words(ctx: &Ctx<'_>, node: &Value, value: &Value, links: &LinkTitles) -> (String, String) {
    let lang = ctx.lang;
    if value.is_null() {
        return ("—".to_owned(), String::new());
    }
    let ui = ui_of(node);
    match (kind_of(ctx.root, node), value) {
        (Kind::Choice { .. }, value) => {
            let index = enum_of(node).and_then(|values| values.iter().position(|v| v == value));
            let text = index
                .and_then(|index| ui.options.get(index))
                .map(|text| lang.text(text))
                .unwrap_or_else(|| scalar_text(value));
            (text, String::new())
        }
        (Kind::Checkboxes, Value::Array(items)) => {
            let items_node = node.get("items").map(|items| resolve(ctx.root, items));
            let words: Vec<String> = items
                .iter()
                .map(|item| match items_node {
                    Some(items_node) => words(ctx, items_node, item, links).0,
                    None => scalar_text(item),
                })
                .collect();
            (words.join(lang.pick("、", ", ")), String::new())
        }
        (Kind::Checkbox, Value::Bool(yes)) => (
            if *yes { lang.pick("是", "Yes") } else { lang.pick("否", "No") }.to_owned(),
            String::new(),
        ),
        (Kind::Money, Value::Number(number)) => {
            (format!("{}{}", currency_symbol(ui.currency.as_deref()), money(number)), String::new())
        }
        (Kind::DateTime, Value::String(text)) => (
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&china()).format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|_| text.clone()),
            String::new(),
        ),
        (Kind::Link(_), Value::String(id)) => match links.get(id) {
            Some((title, href)) => (title.clone(), href.clone()),
            None => (id.clone(), String::new()),
        },
        (Kind::User(_), Value::String(id)) => (
            ctx.people
                .iter()
                .find(|person| &person.id == id)
                .map(|person| person.name.clone())
                .unwrap_or_else(|| id.clone()),
            String::new(),
        ),
        (Kind::File { multiple: false }, Value::String(id)) => match ctx.files.get(id) {
            Some(name) => (name.clone(), format!("/api/files/{id}")),
            None => (id.clone(), String::new()),
        },
        (Kind::File { .. }, Value::Array(ids)) => (
            ids.iter()
                .map(|id| {
                    let id = scalar_text(id);
                    ctx.files.get(&id).cloned().unwrap_or(id)
                })
                .collect::<Vec<_>>()
                .join(", "),
            String::new(),
        ),
        (Kind::File { .. }, value) => (file_names(value), String::new()),
        (_, Value::Array(items)) => {
            (items.iter().map(scalar_text).collect::<Vec<_>>().join(", "), String::new())
        }
        (_, value) => (scalar_text(value), String::new()),
    }
}

/// `1234567.5` → `1,234,567.50`.
fn money(number: &serde_json::Number) -> String {
    let value = number.as_f64().unwrap_or_default();
    let cents = (value * 100.0).round() as i128;
    let (sign, cents) = if cents < 0 { ("-", -cents) } else { ("", cents) };
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}.{:02}", cents % 100)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "x-ui": {"label": {"zh-CN": "名称", "en": "Name"}, "order": 1}},
                "amount": {"type": "number", "x-ui": {"widget": "money", "order": 2}},
                "score": {"type": "integer", "enum": [1, 2, 3]},
                "vip": {"type": "boolean"},
                "met_at": {"type": "string", "format": "date-time"},
                "on": {"type": "string", "format": "date"},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}},
                "contacts": {"type": "array", "items": {"type": "object", "properties": {
                    "who": {"type": "string"}, "phone": {"type": "string", "x-ui": {"widget": "phone"}}}}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "fixed": {"type": "string", "x-ui": {"readonly": true}}
            }
        })
    }

    fn raw(pairs: &[(&str, &str)]) -> Raw {
        raw_of_post(
            &pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn posted_text_becomes_the_json_the_schema_expects() {
        let schema = schema();
        let links = BTreeMap::new();
        let files = BTreeMap::new();
        let ctx = Ctx { lang: Lang::Zh, root: &schema, links: &links, people: &[], files: &files };
        let posted = raw(&[
            ("_csrf", "x"),
            ("name", "  华东机械  "),
            ("amount", "1,200,000"),
            ("score", "3"),
            ("vip", "false"),
            ("vip", "true"),
            ("met_at", "2026-11-30T10:00"),
            ("on", ""),
            ("address.city", "上海"),
            ("contacts[0].who", "王工"),
            ("contacts[0].phone", "138"),
            ("contacts[1].who", ""),
            ("contacts[1].phone", ""),
            ("tags[0]", "老客户"),
            ("tags[1]", ""),
            ("fixed", "ignored"),
        ]);
        let (fields, problems) = fields_of(&ctx, &posted, None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            Value::Object(fields),
            json!({
                "name": "华东机械",
                "amount": 1200000,
                "score": 3,
                "vip": true,
                "met_at": "2026-11-30T10:00:00+08:00",
                "address": {"city": "上海"},
                "contacts": [{"who": "王工", "phone": "138"}],
                "tags": ["老客户"]
            })
        );
    }

    #[test]
    fn values_that_cannot_be_converted_are_problems_at_their_input() {
        let schema = schema();
        let links = BTreeMap::new();
        let files = BTreeMap::new();
        let ctx = Ctx { lang: Lang::En, root: &schema, links: &links, people: &[], files: &files };
        let posted = raw(&[("amount", "lots"), ("on", "30/11/2026"), ("contacts[2].phone", "x")]);
        let (_, problems) = fields_of(&ctx, &posted, None);
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/amount", "/on"]);
        assert_eq!(name_of("/contacts/2/phone"), "contacts[2].phone");
        assert_eq!(pointer_of("contacts[2].phone"), "/contacts/2/phone");
        assert_eq!(name_of(&pointer_of("address.city")), "address.city");
    }

    #[test]
    fn an_edit_sends_changes_and_clears_emptied_fields() {
        let schema = schema();
        let links = BTreeMap::new();
        let files = BTreeMap::new();
        let ctx = Ctx { lang: Lang::Zh, root: &schema, links: &links, people: &[], files: &files };
        let existing = json!({"name": "A", "amount": 5, "tags": ["x"], "fixed": "kept"});
        let existing = existing.as_object().expect("object");
        let mut posted = raw_of(&ctx, existing);
        assert_eq!(posted.get("tags[0]"), Some(&vec!["x".to_owned()]));
        posted.insert("amount".into(), vec![String::new()]);
        posted.insert("name".into(), vec!["B".into()]);
        let (fields, problems) = fields_of(&ctx, &posted, Some(existing));
        assert!(problems.is_empty());
        assert_eq!(Value::Object(fields), json!({"name": "B", "amount": null}));
    }

    #[test]
    fn rows_get_an_empty_row_and_grow_on_request() {
        let schema = schema();
        let links = BTreeMap::new();
        let files = BTreeMap::new();
        let ctx = Ctx { lang: Lang::Zh, root: &schema, links: &links, people: &[], files: &files };
        let meta = FormMeta::default();
        let errors = BTreeMap::new();
        let posted = raw(&[("contacts[0].who", "王工")]);
        let fill =
            |fresh, add_row| Fill { raw: &posted, errors: &errors, fresh, add_row, existing: None };
        let rows = |sections: Vec<SectionView>| {
            sections[0].fields.iter().find(|f| f.name == "contacts").map(|f| f.rows.len())
        };
        assert_eq!(rows(form_view(&ctx, &meta, &fill(true, None)).0), Some(2));
        assert_eq!(rows(form_view(&ctx, &meta, &fill(false, None)).0), Some(1));
        assert_eq!(rows(form_view(&ctx, &meta, &fill(false, Some("contacts"))).0), Some(2));
    }

    #[test]
    fn money_and_times_read_as_people_write_them() {
        assert_eq!(money(&serde_json::Number::from(1_234_567)), "1,234,567.00");
        assert_eq!(money(&serde_json::Number::from(12)), "12.00");
        assert_eq!(
            local_datetime("2026-11-30T10:00").as_deref(),
            Some("2026-11-30T10:00:00+08:00")
        );
        assert_eq!(
            local_datetime("2026-11-30T02:00:00Z").as_deref(),
            Some("2026-11-30T10:00:00+08:00")
        );
        assert_eq!(local_datetime("tomorrow"), None);
        // 2026-11-30 02:00 UTC is 10:00 in Shanghai.
        assert_eq!(local_time(1_796_004_000_000), "2026-11-30 10:00");
    }
}
