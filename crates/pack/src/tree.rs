//! Parsing YAML and JSON into one shape: a `serde_json::Value` plus the byte range
//! of every node and key, addressed by JSON pointer. Everything after parsing (format
//! validation, reference checks) works on that shape and can still point at the
//! exact line and column of a mistake.
//!
//! YAML is read with `saphyr-parser`'s event stream, which keeps positions. The
//! builder below enforces the limits pack files need: one document, string keys,
//! no duplicate keys, bounded nesting, and a bounded alias expansion (alias bombs).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};
use stagecraft_model::{Code, Diagnostic};

use crate::source::SourceFile;

/// The deepest nesting accepted. Pack files need a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// The most nodes alias expansion may produce in one file.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// Where a node sits in the file.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeSpan {
    /// The node's value.
    pub value: Range<usize>,
    /// The key that names the node, when it is a mapping value.
    pub key: Option<Range<usize>>,
}

/// A parsed file: its value, and the place of every node.
#[derive(Clone, Debug)]
pub(crate) struct Document {
    /// The content.
    pub value: Value,
    spans: HashMap<String, NodeSpan>,
    /// How each string was written, to place errors inside embedded scripts. Keyed by
    /// pointer.
    scalar_styles: HashMap<String, ScalarInfo>,
}

/// How a string scalar was written, to map positions inside it back to the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScalarInfo {
    /// The style.
    pub style: ScalarKind,
}

/// The ways a string can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    /// Unquoted, or inside a JSON file.
    Plain,
    /// In single or double quotes.
    Quoted,
    /// A `|` or `>` block.
    Block,
}

impl Document {
    /// The span of the node at a pointer, or of its nearest ancestor that has one
    /// (nodes copied from an alias are placed at the alias).
    pub(crate) fn span(&self, pointer: &str) -> NodeSpan {
        let mut pointer = pointer;
        loop {
            if let Some(span) = self.spans.get(pointer) {
                return span.clone();
            }
            match pointer.rfind('/') {
                Some(index) => pointer = &pointer[..index],
                None => return NodeSpan::default(),
            }
        }
    }

    /// The range of a node's value.
    pub(crate) fn value_range(&self, pointer: &str) -> Range<usize> {
        self.span(pointer).value
    }

    /// The range of the key naming a node, or of the value when it has no key.
    pub(crate) fn key_range(&self, pointer: &str) -> Range<usize> {
        let span = self.span(pointer);
        span.key.unwrap_or(span.value)
    }

    /// How the string at a pointer was written.
    pub(crate) fn scalar_info(&self, pointer: &str) -> Option<ScalarInfo> {
        self.scalar_styles.get(pointer).copied()
    }
}

/// Escapes one JSON pointer segment.
pub(crate) fn pointer_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains(['~', '/']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

enum Frame {
    Sequence {
        pointer: String,
        start: usize,
        anchor: usize,
        items: Vec<Value>,
        nodes: usize,
    },
    Mapping {
        pointer: String,
        start: usize,
        anchor: usize,
        entries: Map<String, Value>,
        key_ranges: HashMap<String, Range<usize>>,
        pending_key: Option<(String, Range<usize>)>,
        nodes: usize,
    },
}

struct YamlBuilder<'a> {
    source: &'a SourceFile,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Value, usize)>,
    expanded_nodes: usize,
    spans: HashMap<String, NodeSpan>,
    scalar_styles: HashMap<String, ScalarInfo>,
    root: Option<Value>,
}

/// Parses a YAML pack file.
pub(crate) fn parse_yaml(source: &SourceFile) -> Result<Document, Diagnostic> {
    let mut builder = YamlBuilder {
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        expanded_nodes: 0,
        spans: HashMap::new(),
        scalar_styles: HashMap::new(),
        root: None,
    };
    let mut documents = 0;
    for event in Parser::new_from_str(&source.text) {
        let (event, span) = event.map_err(|error| {
            let marker = error.marker();
            let offset = source.offset(marker.line(), marker.col());
            let too_deep = error.info().contains("recursion limit");
            if let Some(open) = unclosed_bracket(&source.text, offset).filter(|_| !too_deep) {
                let bracket = &source.text[open..open + 1];
                let closer = if bracket == "[" { "]" } else { "}" };
                return Diagnostic::new(
                    Code::YamlSyntax,
                    format!("this `{bracket}` is never closed"),
                )
                .at(Some(source.location(open..open + 1)))
                .related("the parser gave up here", Some(source.location(offset..offset)))
                .hint(format!("add the missing `{closer}`"));
            }
            let offset = leading_tab(&source.text, offset).unwrap_or(offset);
            let code = if error.info().contains("recursion limit") {
                Code::TooDeep
            } else {
                Code::YamlSyntax
            };
            Diagnostic::new(code, yaml_message(error.info()))
                .at(Some(source.location(offset..offset)))
                .hint(yaml_hint(error.info(), &source.text, offset))
        })?;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    let offset = builder.offset(&span, true);
                    return Err(Diagnostic::new(
                        Code::UnsupportedYaml,
                        "a pack file holds one YAML document; this is a second one",
                    )
                    .at(Some(source.location(offset..offset + 3)))
                    .hint("remove the `---` line, or split the file in two"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(text, style, anchor, tag.as_deref(), &span)?;
            }
            Event::SequenceStart(anchor, tag) => {
                builder.reject_tag(tag.as_deref(), &span)?;
                let pointer = builder.child_pointer(&span)?;
                builder.push(Frame::Sequence {
                    pointer,
                    start: builder.offset(&span, true),
                    anchor,
                    items: Vec::new(),
                    nodes: 1,
                })?;
            }
            Event::MappingStart(anchor, tag) => {
                builder.reject_tag(tag.as_deref(), &span)?;
                let pointer = builder.child_pointer(&span)?;
                builder.push(Frame::Mapping {
                    pointer,
                    start: builder.offset(&span, true),
                    anchor,
                    entries: Map::new(),
                    key_ranges: HashMap::new(),
                    pending_key: None,
                    nodes: 1,
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.pop(&span)?,
            Event::Alias(anchor) => builder.alias(anchor, &span)?,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    match builder.root {
        Some(value) if !value.is_null() => {
            Ok(Document { value, spans: builder.spans, scalar_styles: builder.scalar_styles })
        }
        _ => Err(Diagnostic::new(Code::EmptyFile, "the file is empty")
            .at(Some(source.start_location()))
            .hint("fill it in, or delete it")),
    }
}

fn yaml_message(info: &str) -> String {
    let info = info.trim_end_matches('.');
    let mut message = info.to_owned();
    if let Some(first) = message.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    message
}

fn yaml_hint(info: &str, text: &str, offset: usize) -> String {
    let line_start = text[..offset.min(text.len())].rfind('\n').map_or(0, |index| index + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    if line.trim_start_matches(' ').starts_with('\t') || info.contains("tab") {
        "YAML does not allow tabs for indentation; use spaces".into()
    } else if info.contains("mapping values are not allowed") || info.contains("':' indicator") {
        "a value cannot hold another `key: value` on the same line; quote the text or move it onto its own line".into()
    } else if info.contains("did not find expected") {
        "keys of one mapping must line up, and list items (`- `) too; check the indentation of this line and the one above".into()
    } else {
        "check the indentation and quoting around this line".into()
    }
}

/// The position of a tab in the indentation of the line holding `offset`, since the
/// parser reports the character after it.
fn leading_tab(text: &str, offset: usize) -> Option<usize> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
    let indentation = text[line_start..].find(|c: char| c != ' ' && c != '\t')?;
    text[line_start..line_start + indentation].find('\t').map(|tab| line_start + tab)
}

/// The innermost `[` or `{` still open at `offset`, if any. A rough scan (it skips
/// comments and quoted texts) used only to explain a syntax error better: an
/// unclosed flow bracket makes the parser fail lines later, far from the mistake.
fn unclosed_bracket(text: &str, offset: usize) -> Option<usize> {
    let mut open: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    let mut previous = '\n';
    let mut chars = text[..offset.min(text.len())].char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' && q == '"' {
                    chars.next();
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '#' if previous.is_whitespace() => {
                    while chars.peek().is_some_and(|(_, c)| *c != '\n') {
                        chars.next();
                    }
                }
                '"' | '\'' if matches!(previous, ' ' | '\n' | '[' | '{' | ',' | ':' | '-') => {
                    quote = Some(c);
                }
                '[' | '{' => open.push(index),
                ']' | '}' => {
                    open.pop();
                }
                _ => {}
            },
        }
        previous = c;
    }
    open.pop()
}

impl YamlBuilder<'_> {
    fn offset(&self, span: &Span, start: bool) -> usize {
        let marker = if start { &span.start } else { &span.end };
        self.source.offset(marker.line(), marker.col())
    }

    fn range(&self, span: &Span) -> Range<usize> {
        self.offset(span, true)..self.offset(span, false)
    }

    fn error(&self, code: Code, message: impl Into<String>, span: &Span) -> Diagnostic {
        Diagnostic::new(code, message).at(Some(self.source.location(self.range(span))))
    }

    /// The pointer of the node that starts now, from the frame it goes into.
    fn child_pointer(&self, span: &Span) -> Result<String, Diagnostic> {
        match self.stack.last() {
            None => Ok(String::new()),
            Some(Frame::Sequence { pointer, items, .. }) => {
                Ok(format!("{pointer}/{}", items.len()))
            }
            Some(Frame::Mapping { pointer, pending_key: Some((key, _)), .. }) => {
                Ok(format!("{pointer}/{}", pointer_segment(key)))
            }
            Some(Frame::Mapping { pending_key: None, .. }) => Err(self
                .error(
                    Code::UnsupportedYaml,
                    "keys must be plain text, not lists or mappings",
                    span,
                )
                .hint("write the key as text; complex keys (`? `) are not supported")),
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            let start = match &frame {
                Frame::Sequence { start, .. } | Frame::Mapping { start, .. } => *start,
            };
            return Err(Diagnostic::new(
                Code::TooDeep,
                format!("values are nested more than {MAX_DEPTH} levels deep"),
            )
            .at(Some(self.source.location(start..start + 1)))
            .hint("pack files need only a few levels; the file is probably generated or damaged"));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn reject_tag(&self, tag: Option<&Tag>, span: &Span) -> Result<(), Diagnostic> {
        match tag {
            None => Ok(()),
            Some(tag) if tag.handle == "!!" && matches!(tag.suffix.as_str(), "map" | "seq") => {
                Ok(())
            }
            Some(tag) => Err(self
                .error(
                    Code::UnsupportedYaml,
                    format!("the tag `{}{}` is not supported", tag.handle, tag.suffix),
                    span,
                )
                .hint("remove the tag; pack files use plain YAML values")),
        }
    }

    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: &Span,
    ) -> Result<(), Diagnostic> {
        let range = self.range(span);
        // A scalar in key position names the next value.
        if let Some(Frame::Mapping { pending_key, key_ranges, entries, .. }) = self.stack.last_mut()
        {
            if pending_key.is_none() {
                let key = text.into_owned();
                if let Some(first) = key_ranges.get(&key) {
                    let first = first.clone();
                    return Err(Diagnostic::new(
                        Code::DuplicateKey,
                        format!("the key `{key}` appears twice"),
                    )
                    .at(Some(self.source.location(range)))
                    .related("first used here", Some(self.source.location(first)))
                    .hint("remove one of them; only one value can be meant"));
                }
                let _ = entries;
                key_ranges.insert(key.clone(), range.clone());
                *pending_key = Some((key, range));
                return Ok(());
            }
        }
        let pointer = self.child_pointer(span)?;
        let value = self.resolve_scalar(&text, style, tag, span)?;
        if value.is_string() {
            let kind = match style {
                ScalarStyle::Plain => ScalarKind::Plain,
                ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => ScalarKind::Quoted,
                ScalarStyle::Literal | ScalarStyle::Folded => ScalarKind::Block,
            };
            self.scalar_styles.insert(pointer.clone(), ScalarInfo { style: kind });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), 1));
        }
        self.attach(pointer, value, range, 1);
        Ok(())
    }

    fn resolve_scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        span: &Span,
    ) -> Result<Value, Diagnostic> {
        if let Some(tag) = tag {
            if !is_core(tag) {
                return Err(self
                    .error(
                        Code::UnsupportedYaml,
                        format!("the tag `{}{}` is not supported", tag.handle, tag.suffix),
                        span,
                    )
                    .hint("remove the tag; pack files use plain YAML values"));
            }
            return match tag.suffix.as_str() {
                "str" => Ok(Value::String(text.to_owned())),
                "null" => Ok(Value::Null),
                "bool" | "int" | "float" => Ok(plain_scalar(text)),
                other => Err(self
                    .error(
                        Code::UnsupportedYaml,
                        format!("the tag `!!{other}` is not supported"),
                        span,
                    )
                    .hint("remove the tag; pack files use plain YAML values")),
            };
        }
        Ok(match style {
            ScalarStyle::Plain => plain_scalar(text),
            _ => Value::String(text.to_owned()),
        })
    }

    fn alias(&mut self, anchor: usize, span: &Span) -> Result<(), Diagnostic> {
        if let Some(Frame::Mapping { pending_key: None, .. }) = self.stack.last() {
            return Err(self
                .error(Code::UnsupportedYaml, "an alias cannot be used as a key", span)
                .hint("write the key as text"));
        }
        let pointer = self.child_pointer(span)?;
        let Some((value, nodes)) = self.anchors.get(&anchor).cloned() else {
            return Err(self.error(
                Code::YamlSyntax,
                "this alias refers to an unknown anchor",
                span,
            ));
        };
        self.expanded_nodes = self.expanded_nodes.saturating_add(nodes);
        if self.expanded_nodes > MAX_ALIAS_NODES {
            return Err(self
                .error(
                    Code::AliasBomb,
                    format!("aliases in this file expand to more than {MAX_ALIAS_NODES} values"),
                    span,
                )
                .hint("write the repeated values out, or nest fewer aliases inside each other"));
        }
        let range = self.range(span);
        self.attach(pointer, value, range, nodes);
        Ok(())
    }

    fn pop(&mut self, span: &Span) -> Result<(), Diagnostic> {
        let end = self.offset(span, false);
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (pointer, start, anchor, value, nodes) = match frame {
            Frame::Sequence { pointer, start, anchor, items, nodes } => {
                (pointer, start, anchor, Value::Array(items), nodes)
            }
            Frame::Mapping { pointer, start, anchor, entries, nodes, .. } => {
                (pointer, start, anchor, Value::Object(entries), nodes)
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        self.attach(pointer, value, start..end.max(start), nodes);
        Ok(())
    }

    /// Puts a finished node into its parent (or makes it the root) and records its span.
    fn attach(&mut self, pointer: String, value: Value, range: Range<usize>, nodes: usize) {
        let mut key_range = None;
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, nodes: parent_nodes, .. }) => {
                items.push(value);
                *parent_nodes += nodes;
            }
            Some(Frame::Mapping { entries, pending_key, nodes: parent_nodes, .. }) => {
                if let Some((key, range)) = pending_key.take() {
                    entries.insert(key, value);
                    key_range = Some(range);
                }
                *parent_nodes += nodes;
            }
        }
        self.spans.insert(pointer, NodeSpan { value: range, key: key_range });
    }
}

/// Whether a tag is one of YAML's own (`!!str`, `!!int`, …).
fn is_core(tag: &Tag) -> bool {
    tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:"
}

/// Resolves an unquoted scalar with the YAML 1.2 core schema.
fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(number) = text.parse::<i64>() {
            return Value::Number(number.into());
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(number) = i64::from_str_radix(hex, 16) {
            return Value::Number(number.into());
        }
    }
    if let Some(octal) = text.strip_prefix("0o") {
        if let Ok(number) = i64::from_str_radix(octal, 8) {
            return Value::Number(number.into());
        }
    }
    let looks_numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(number);
        }
    }
    Value::String(text.to_owned())
}

/// The deepest bracket nesting in a JSON text, ignoring strings. Checked before
/// parsing so that a hostile file cannot overflow the parser's stack.
fn json_depth(text: &str) -> (usize, usize) {
    let (mut depth, mut deepest, mut deepest_at) = (0usize, 0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for (index, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    deepest_at = index;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (deepest, deepest_at)
}

/// Parses a JSON file (a form). Strict JSON: no comments, no trailing commas.
pub(crate) fn parse_json(source: &SourceFile) -> Result<Document, Diagnostic> {
    if source.text.trim().is_empty() {
        return Err(Diagnostic::new(Code::EmptyFile, "the file is empty")
            .at(Some(source.start_location()))
            .hint("fill it in, or delete it"));
    }
    let (depth, deepest_at) = json_depth(&source.text);
    if depth > MAX_DEPTH {
        return Err(Diagnostic::new(
            Code::TooDeep,
            format!("values are nested more than {MAX_DEPTH} levels deep"),
        )
        .at(Some(source.location(deepest_at..deepest_at + 1)))
        .hint("pack files need only a few levels; the file is probably generated or damaged"));
    }
    let options = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let parsed = jsonc_parser::parse_to_ast(&source.text, &Default::default(), &options).map_err(
        |error| {
            let range = error.range();
            let message = yaml_message(&error.kind().to_string());
            let hint = if message.contains("trailing comma") {
                "remove the comma after the last entry"
            } else if message.contains("comment") {
                "JSON has no comments; put notes in a \"description\""
            } else if message.contains("single quote") || message.contains("single-quote") {
                "JSON strings use double quotes"
            } else {
                "check for a missing comma, quote or bracket near this point"
            };
            Diagnostic::new(Code::JsonSyntax, message)
                .at(Some(source.location(range.start..range.end)))
                .hint(hint)
        },
    )?;
    let Some(root) = parsed.value else {
        return Err(Diagnostic::new(Code::EmptyFile, "the file is empty")
            .at(Some(source.start_location()))
            .hint("fill it in, or delete it"));
    };
    let mut document =
        Document { value: Value::Null, spans: HashMap::new(), scalar_styles: HashMap::new() };
    document.value = convert_json(source, &root, String::new(), None, &mut document)?;
    Ok(document)
}

fn convert_json(
    source: &SourceFile,
    node: &jsonc_parser::ast::Value<'_>,
    pointer: String,
    key: Option<Range<usize>>,
    document: &mut Document,
) -> Result<Value, Diagnostic> {
    use jsonc_parser::ast::Value as Ast;
    use jsonc_parser::common::Ranged;
    let range = node.range();
    let value = match node {
        Ast::NullKeyword(_) => Value::Null,
        Ast::BooleanLit(boolean) => Value::Bool(boolean.value),
        Ast::StringLit(string) => {
            document
                .scalar_styles
                .insert(pointer.clone(), ScalarInfo { style: ScalarKind::Quoted });
            Value::String(string.value.to_string())
        }
        Ast::NumberLit(number) => serde_json::from_str::<Number>(number.value)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(number.value.to_owned())),
        Ast::Array(array) => {
            let mut items = Vec::with_capacity(array.elements.len());
            for (index, element) in array.elements.iter().enumerate() {
                items.push(convert_json(
                    source,
                    element,
                    format!("{pointer}/{index}"),
                    None,
                    document,
                )?);
            }
            Value::Array(items)
        }
        Ast::Object(object) => {
            let mut entries = Map::new();
            let mut seen: HashMap<String, Range<usize>> = HashMap::new();
            for property in &object.properties {
                let name_range = property.name.range();
                let name_range = name_range.start..name_range.end;
                let name = property.name.clone().into_string();
                if let Some(first) = seen.get(&name) {
                    return Err(Diagnostic::new(
                        Code::DuplicateKey,
                        format!("the key \"{name}\" appears twice"),
                    )
                    .at(Some(source.location(name_range)))
                    .related("first used here", Some(source.location(first.clone())))
                    .hint("remove one of them; only one value can be meant"));
                }
                seen.insert(name.clone(), name_range.clone());
                let child = format!("{pointer}/{}", pointer_segment(&name));
                let value =
                    convert_json(source, &property.value, child, Some(name_range), document)?;
                entries.insert(name, value);
            }
            Value::Object(entries)
        }
    };
    document.spans.insert(pointer, NodeSpan { value: range.start..range.end, key });
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Document, Diagnostic> {
        parse_yaml(&SourceFile::new("t.yaml", "t.yaml", text.to_owned()))
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let document = yaml(
            "a: 1\nb: -2.5\nc: true\nd: ~\ne: 2026-10-01\nf: '3'\ng: 0x1F\nh: yes\ni: 1e3\nj: .5x\n",
        )
        .expect("parses");
        let value = &document.value;
        assert_eq!(value["a"], 1);
        assert_eq!(value["b"], -2.5);
        assert_eq!(value["c"], true);
        assert!(value["d"].is_null());
        // Dates and YAML 1.1 booleans stay text.
        assert_eq!(value["e"], "2026-10-01");
        assert_eq!(value["f"], "3");
        assert_eq!(value["g"], 31);
        assert_eq!(value["h"], "yes");
        assert_eq!(value["i"], 1000.0);
        assert_eq!(value["j"], ".5x");
    }

    #[test]
    fn every_node_and_key_is_placed() {
        let text = "stages:\n  - id: lead\n    title: 线索\n";
        let source = SourceFile::new("t.yaml", "t.yaml", text.to_owned());
        let document = parse_yaml(&source).expect("parses");
        let title = source.location(document.value_range("/stages/0/title"));
        assert_eq!((title.line, title.column), (3, 12));
        let key = source.location(document.key_range("/stages/0/title"));
        assert_eq!((key.line, key.column, key.end_column), (3, 5, 10));
        // A pointer that has no node of its own falls back to the nearest ancestor.
        assert_eq!(document.value_range("/stages/0/missing"), document.value_range("/stages/0"));
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let error = yaml("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(error.code, Code::DuplicateKey);
        assert_eq!(error.location.as_ref().map(|l| l.line), Some(3));
        assert_eq!(error.related[0].location.line, 1);
    }

    #[test]
    fn aliases_expand_within_a_budget() {
        let document = yaml("base: &b {x: 1}\nuse: *b\n").expect("small aliases are fine");
        assert_eq!(document.value["use"]["x"], 1);
        let mut bomb = String::from("a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        for level in 1..8 {
            let previous = level - 1;
            let items = vec![format!("*a{previous}"); 10].join(", ");
            bomb.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        assert_eq!(yaml(&bomb).expect_err("bomb").code, Code::AliasBomb);
    }

    #[test]
    fn one_document_string_keys_and_no_custom_tags() {
        assert_eq!(yaml("a: 1\n---\nb: 2\n").expect_err("two").code, Code::UnsupportedYaml);
        assert_eq!(yaml("? [a, b]\n: 1\n").expect_err("complex key").code, Code::UnsupportedYaml);
        assert_eq!(yaml("a: !secret x\n").expect_err("tag").code, Code::UnsupportedYaml);
        assert_eq!(yaml("a: !!str 12\n").expect("core tag").value["a"], "12");
        assert_eq!(yaml("# only a comment\n").expect_err("empty").code, Code::EmptyFile);
    }

    #[test]
    fn syntax_errors_are_placed_with_a_hint() {
        let error = yaml("a:\n\tb: 1\n").expect_err("tab");
        assert_eq!(error.code, Code::YamlSyntax);
        assert_eq!(error.location.as_ref().map(|l| l.line), Some(2));
        assert!(error.hint.unwrap_or_default().contains("tabs"));
    }

    #[test]
    fn json_is_strict_and_placed() {
        let source = SourceFile::new("f.json", "f.json", "{\n  \"a\": [1, 2,]\n}".to_owned());
        let error = parse_json(&source).expect_err("trailing comma");
        assert_eq!(error.code, Code::JsonSyntax);
        assert_eq!(error.location.as_ref().map(|l| l.line), Some(2));
        let source = SourceFile::new("f.json", "f.json", "{\"a\": 1, \"a\": 2}".to_owned());
        assert_eq!(parse_json(&source).expect_err("duplicate").code, Code::DuplicateKey);
        let source =
            SourceFile::new("f.json", "f.json", "{\"标题\": {\"b\": \"中文\"}}".to_owned());
        let document = parse_json(&source).expect("parses");
        let location = source.location(document.value_range("/标题/b"));
        assert_eq!((location.line, location.column), (1, 14));
    }
}
