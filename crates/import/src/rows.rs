//! Reading the file row by row into records with their history, and every problem
//! with its row (as numbered in the file, the header being line 1), column and field.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use chrono::FixedOffset;
use serde::Serialize;
use serde_json::{Map, Value};
use stagecraft_engine::ImportedRecord;
use stagecraft_model::{FieldName, FlowFile, Id};
use stagecraft_pack::{CompiledForm, Definitions};
use stagecraft_runtime::{Directory, ImportedEnd, ImportedStage, create_problems};
use stagecraft_store::{IndexValue, Page, RecordId};

use crate::Progress;
use crate::convert::{Unreadable, convert, date_time};
use crate::mapping::{Mapping, field_schema, flow_of, same};

/// One problem of the file, at its row and column.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowProblem {
    /// The line of the file where the row starts (the header is line 1); 1 for a
    /// problem of the mapping or the header.
    pub row: u64,
    /// The column (its header), when one is concerned.
    pub column: Option<String>,
    /// The form field, when one is concerned.
    pub field: Option<String>,
    /// The cell's text.
    pub value: Option<String>,
    /// The problem, in Chinese.
    pub message_zh: String,
    /// The problem, in English.
    pub message_en: String,
}

/// The file as read: the header and each row's cells with its line.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// The column headers, in order.
    pub headers: Vec<String>,
    /// Each row's line in the file and cells.
    pub rows: Vec<(u64, Vec<String>)>,
}

/// Reads a CSV file (UTF-8, with or without a byte-order mark; commas; quotes as
/// usual), or says why it cannot.
pub fn read_table(csv: &[u8]) -> Result<Table, RowProblem> {
    let csv = csv.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv);
    if std::str::from_utf8(csv).is_err() {
        return Err(problem(
            1,
            None,
            None,
            None,
            "文件不是 UTF-8 编码：请在表格软件中另存为“CSV UTF-8”",
            "the file is not UTF-8: save it as “CSV UTF-8” in the spreadsheet program",
        ));
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(csv);
    let unreadable = |error: csv::Error| {
        let line = error.position().map_or(1, |position| position.line());
        problem(
            line,
            None,
            None,
            None,
            format!("CSV 格式错误：{error}"),
            format!("the CSV is malformed: {error}"),
        )
    };
    let headers: Vec<String> =
        reader.headers().map_err(unreadable)?.iter().map(|h| h.trim().to_owned()).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(unreadable)?;
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let line = record.position().map_or(0, |position| position.line());
        rows.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(Table { headers, rows })
}

pub(crate) fn problem(
    row: u64,
    column: Option<&str>,
    field: Option<&str>,
    value: Option<&str>,
    zh: impl Into<String>,
    en: impl Into<String>,
) -> RowProblem {
    RowProblem {
        row,
        column: column.map(str::to_owned),
        field: field.map(str::to_owned),
        value: value.map(str::to_owned),
        message_zh: zh.into(),
        message_en: en.into(),
    }
}

/// What the rows become: records (one per row without problems) and problems.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) records: Vec<ImportedRecord>,
    pub(crate) problems: Vec<RowProblem>,
}

/// Everything a row is read with.
pub(crate) struct Reader<'a> {
    pub(crate) definitions: &'a Definitions,
    pub(crate) org: &'a Directory,
    pub(crate) store: &'a dyn stagecraft_store::Store,
    pub(crate) mapping: &'a Mapping,
    pub(crate) actor: Option<&'a str>,
    pub(crate) now: i64,
}

/// A column the mapping names, by position.
struct Columns {
    fields: Vec<(String, usize, String)>,
    owner: Option<usize>,
    created: Option<usize>,
    stage: Option<usize>,
    outcome: Option<usize>,
    closed: Option<usize>,
    stage_dates: Vec<(Id, usize)>,
}

impl Reader<'_> {
    /// Reads every row; nothing is written.
    pub(crate) fn prepare(&self, table: &Table, progress: &Progress) -> Prepared {
        let mut prepared = Prepared::default();
        progress.total.store(table.rows.len(), Ordering::Relaxed);
        let Some(form) = self.definitions.forms.get(&Id::from(self.mapping.form.as_str())) else {
            prepared.problems.push(problem(
                1,
                None,
                None,
                None,
                format!("没有表单「{}」", self.mapping.form),
                format!("there is no form `{}`", self.mapping.form),
            ));
            return prepared;
        };
        let flow = flow_of(self.definitions, &self.mapping.form);
        let columns = match self.columns(form, flow, &table.headers) {
            Ok(columns) => columns,
            Err(problems) => {
                prepared.problems = problems;
                return prepared;
            }
        };
        let mut links = LinkCache::default();
        let own_keys = self.own_keys(form);
        for (line, cells) in &table.rows {
            let mut row = Row { line: *line, cells, columns: &table.headers, problems: Vec::new() };
            if let Some(record) = self.row(form, flow, &columns, &mut row, &mut links) {
                // Later rows may link to this one by its name.
                for key in &own_keys {
                    if let Some(value) = record.fields.get(key).and_then(Value::as_str) {
                        let known = links.2.entry(value.trim().to_owned()).or_default();
                        if !known.contains(&prepared.records.len()) {
                            known.push(prepared.records.len());
                        }
                    }
                }
                prepared.records.push(record);
            }
            prepared.problems.append(&mut row.problems);
            progress.checked.fetch_add(1, Ordering::Relaxed);
        }
        prepared
    }

    /// The mapping's columns by position, or the mapping's mistakes.
    fn columns(
        &self,
        form: &CompiledForm,
        flow: Option<&FlowFile>,
        headers: &[String],
    ) -> Result<Columns, Vec<RowProblem>> {
        let mut problems = Vec::new();
        let mut position = |column: &str, what: &str| -> Option<usize> {
            let found = headers
                .iter()
                .position(|header| header == column)
                .or_else(|| headers.iter().position(|header| same(header, column)));
            if found.is_none() {
                problems.push(problem(
                    1,
                    Some(column),
                    Some(what),
                    None,
                    format!("文件中没有「{column}」列"),
                    format!("the file has no column “{column}”"),
                ));
            }
            found
        };
        let mut fields = Vec::new();
        for (field, column) in &self.mapping.columns {
            if let Some(index) = position(column, field) {
                fields.push((field.clone(), index, column.clone()));
            }
        }
        let mut optional = |column: &Option<String>, what: &str| {
            column.as_deref().filter(|c| !c.is_empty()).and_then(|c| position(c, what))
        };
        let owner = optional(&self.mapping.owner, "owner");
        let created = optional(&self.mapping.created, "created");
        let stage = optional(&self.mapping.stage, "stage");
        let outcome = optional(&self.mapping.outcome, "outcome");
        let closed = optional(&self.mapping.closed, "closed");
        let mut stage_dates = Vec::new();
        for (stage, column) in &self.mapping.stage_dates {
            if let Some(index) = position(column, stage) {
                stage_dates.push((Id::from(stage.as_str()), index));
            }
        }
        for (field, _, column) in &fields {
            match form.fields.get(&FieldName::from(field.as_str())) {
                None => problems.push(problem(
                    1,
                    Some(column),
                    Some(field),
                    None,
                    format!("表单「{}」没有字段「{field}」", form.id),
                    format!("form `{}` has no field `{field}`", form.id),
                )),
                Some(info) if info.file => problems.push(problem(
                    1,
                    Some(column),
                    Some(field),
                    None,
                    "附件字段不能从 CSV 导入",
                    "file fields cannot be imported from a CSV",
                )),
                Some(_) => {}
            }
        }
        let stage_known =
            |id: &str| flow.is_some_and(|f| f.stages.iter().any(|s| s.id.as_str() == id));
        let named = self.mapping.stage_names.iter().map(|(name, id)| (Some(name.as_str()), id));
        let dated = self.mapping.stage_dates.keys().map(|id| (None, id));
        for (name, id) in named.chain(dated) {
            if !stage_known(id) {
                problems.push(problem(
                    1,
                    name,
                    None,
                    Some(id),
                    format!("流程中没有阶段「{id}」"),
                    format!("the flow has no stage `{id}`"),
                ));
            }
        }
        if flow.is_none() && (stage.is_some() || outcome.is_some()) {
            problems.push(problem(
                1,
                self.mapping.stage.as_deref().or(self.mapping.outcome.as_deref()),
                None,
                None,
                format!("表单「{}」没有流程，不能导入阶段", form.id),
                format!("form `{}` has no flow, so it has no stages to import", form.id),
            ));
        }
        if problems.is_empty() {
            Ok(Columns { fields, owner, created, stage, outcome, closed, stage_dates })
        } else {
            Err(problems)
        }
    }

    /// One row as a record, or `None` (its problems are in `row`).
    fn row(
        &self,
        form: &CompiledForm,
        flow: Option<&FlowFile>,
        columns: &Columns,
        row: &mut Row<'_>,
        links: &mut LinkCache,
    ) -> Option<ImportedRecord> {
        let offset = FixedOffset::east_opt(self.mapping.utc_offset_minutes.unwrap_or(480) * 60)
            .unwrap_or(FixedOffset::east_opt(0)?);
        let mut fields = Map::new();
        let mut links_in_import = Vec::new();
        let mut by_field: HashMap<String, usize> = HashMap::new();
        for (field, index, _) in &columns.fields {
            let Some(text) = row.cell(*index) else { continue };
            by_field.insert(field.clone(), *index);
            let Some(info) = form.fields.get(&FieldName::from(field.as_str())) else { continue };
            let value = if let Some(target) = &info.link {
                match self.link(form, field, target, text, links) {
                    // Not in the store: maybe an earlier row of this file.
                    Err(why) if *target == form.id => match links.2.get(text).map(Vec::as_slice) {
                        Some([one]) => {
                            links_in_import.push((field.clone(), *one));
                            Ok(Value::String(format!("import-row-{one}")))
                        }
                        Some([_, _, ..]) => Err(Unreadable::new(
                            format!("文件中有多行是「{text}」"),
                            format!("several rows of the file are “{text}”"),
                        )),
                        _ => Err(why),
                    },
                    other => other,
                }
            } else if info.user {
                self.person(text).map(Value::String)
            } else {
                let schema = field_schema(form, field).cloned().unwrap_or(Value::Null);
                convert(&schema, text, offset)
            };
            match value {
                Ok(value) => {
                    fields.insert(field.clone(), value);
                }
                Err(why) => row.problem(*index, Some(field), why),
            }
        }
        let owner = match columns.owner.and_then(|index| row.cell(index).map(|text| (index, text)))
        {
            Some((index, text)) => match self.person(text) {
                Ok(owner) => Some(owner),
                Err(why) => {
                    row.problem(index, None, why);
                    None
                }
            },
            // Rows of a pool form without an owner go to the pool; others belong to
            // whoever imports.
            None => self.mapping.default_owner.clone().or_else(|| {
                form.meta.pool.is_none().then(|| self.actor.map(str::to_owned)).flatten()
            }),
        };
        let date = |index: Option<usize>, row: &mut Row<'_>| -> Option<i64> {
            let index = index?;
            let text = row.cell(index)?;
            match date_time(text, offset) {
                Ok(moment) => Some(moment.timestamp_millis()),
                Err(why) => {
                    row.problem(index, None, why);
                    None
                }
            }
        };
        let created_at = date(columns.created, row).unwrap_or(self.now);
        let closed_at = date(columns.closed, row);
        let mut reached: Vec<ImportedStage> = Vec::new();
        for (stage, index) in &columns.stage_dates {
            if let Some(at) = date(Some(*index), row) {
                reached.push(ImportedStage { stage: stage.clone(), at });
            }
        }
        let (stages, ended) = match flow {
            Some(flow) => self.history(flow, columns, row, reached, created_at, closed_at),
            None => (Vec::new(), None),
        };
        for found in create_problems(self.definitions, &form.id, &fields) {
            let field = found.pointer.trim_start_matches('/').split('/').next().unwrap_or_default();
            let index = by_field.get(field).copied();
            // A cell that could not be read is reported once, not again as missing.
            if index.is_some_and(|index| {
                row.problems
                    .iter()
                    .any(|p| p.column.as_deref() == row.columns.get(index).map(String::as_str))
            }) {
                continue;
            }
            row.problems.push(problem(
                row.line,
                index.and_then(|i| row.columns.get(i)).map(String::as_str),
                Some(field).filter(|f| !f.is_empty()),
                index.and_then(|i| row.cells.get(i)).map(String::as_str),
                found.message_zh,
                found.message_en,
            ));
        }
        if !row.problems.is_empty() {
            return None;
        }
        Some(ImportedRecord {
            form: form.id.clone(),
            owner,
            fields,
            created_at,
            stages,
            ended,
            links_in_import,
        })
    }

    /// The stages a row reached and how it ended: the stage and outcome columns
    /// through the stage-name map, the dates of the stage columns.
    fn history(
        &self,
        flow: &FlowFile,
        columns: &Columns,
        row: &mut Row<'_>,
        mut reached: Vec<ImportedStage>,
        created_at: i64,
        closed_at: Option<i64>,
    ) -> (Vec<ImportedStage>, Option<ImportedEnd>) {
        let mut current = None;
        for index in [columns.stage, columns.outcome].into_iter().flatten() {
            let Some(text) = row.cell(index) else { continue };
            match self.stage_named(flow, text, index == columns.outcome.unwrap_or(usize::MAX)) {
                Ok(stage) => current = Some(stage),
                Err(why) => row.problem(index, None, why),
            }
        }
        reached.sort_by_key(|stage| stage.at);
        let current = current.or_else(|| reached.last().map(|last| last.stage.clone()));
        let Some(current) = current else { return (reached, None) };
        let stage = flow.stages.iter().find(|stage| stage.id == current);
        let outcome = stage.and_then(|stage| stage.outcome.clone());
        let entered = reached
            .iter()
            .rev()
            .find(|stage| stage.stage == current)
            .map(|stage| stage.at)
            .or(if outcome.is_some() { closed_at } else { None })
            .or(reached.last().map(|stage| stage.at))
            .unwrap_or(created_at);
        reached.retain(|stage| stage.stage != current);
        reached.push(ImportedStage { stage: current, at: entered });
        let ended =
            outcome.map(|outcome| ImportedEnd { outcome, at: closed_at.unwrap_or(entered) });
        (reached, ended)
    }

    /// The flow's stage a name means: the mapping's stage names first, then stage
    /// ids and titles; for the outcome column, also the terminal stages' outcomes.
    fn stage_named(&self, flow: &FlowFile, text: &str, outcome: bool) -> Result<Id, Unreadable> {
        if let Some(id) = self.mapping.stage_names.get(text).or_else(|| {
            self.mapping.stage_names.iter().find(|(name, _)| same(name, text)).map(|(_, id)| id)
        }) {
            return Ok(Id::from(id.as_str()));
        }
        let found = flow.stages.iter().find(|stage| {
            same(stage.id.as_str(), text)
                || same(stage.title.get("zh-CN"), text)
                || same(stage.title.get("en"), text)
                || (outcome && stage.outcome.as_ref().is_some_and(|o| same(o.as_str(), text)))
        });
        match found {
            Some(stage) => Ok(stage.id.clone()),
            None => {
                let known: Vec<&str> = flow.stages.iter().map(|stage| stage.id.as_str()).collect();
                Err(Unreadable::new(
                    format!("「{text}」不是流程的阶段（{}），请在阶段对照中指定", known.join("、")),
                    format!(
                        "“{text}” is not a stage of the flow ({}); map it in the stage names",
                        known.join(", ")
                    ),
                ))
            }
        }
    }

    /// A person of the org named by user id, name or e-mail (one person only).
    fn person(&self, text: &str) -> Result<String, Unreadable> {
        if let Some(user) = self.org.user(text) {
            return Ok(user.id.to_string());
        }
        let matches: Vec<String> = self
            .org
            .users()
            .filter(|user| {
                user.name == text || user.email.as_deref().is_some_and(|email| same(email, text))
            })
            .map(|user| user.id.to_string())
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Unreadable::new(
                format!("组织中没有「{text}」（用户名、姓名或邮箱）"),
                format!("nobody in the org is “{text}” (user id, name or e-mail)"),
            )),
            _ => Err(Unreadable::new(
                format!("组织中有多人叫「{text}」，请用用户名"),
                format!("several people are called “{text}”; use the user id"),
            )),
        }
    }

    /// The record a link cell names: a record id of the linked form, or the one
    /// record whose key field (indexed) has this value.
    fn link(
        &self,
        form: &CompiledForm,
        field: &str,
        target: &Id,
        text: &str,
        cache: &mut LinkCache,
    ) -> Result<Value, Unreadable> {
        let key = (target.to_string(), text.to_owned());
        if let Some(found) = cache.0.get(&key) {
            return found.clone();
        }
        let found = self.resolve(form, field, target, text, cache);
        cache.0.insert(key, found.clone());
        found
    }

    fn resolve(
        &self,
        form: &CompiledForm,
        field: &str,
        target: &Id,
        text: &str,
        cache: &mut LinkCache,
    ) -> Result<Value, Unreadable> {
        let store_failed = |error: stagecraft_store::StoreError| {
            Unreadable::new(format!("读取失败：{error}"), format!("reading failed: {error}"))
        };
        if let Some(stored) = self.store.record(&RecordId::new(text)).map_err(store_failed)? {
            if stored.form == target.as_str() {
                return Ok(Value::String(text.to_owned()));
            }
        }
        let keys = self.link_keys(form, field, target);
        for key in &keys {
            let ids = self
                .store
                .records_by_index(target.as_str(), key, &IndexValue::from(text), Page::first(2))
                .map_err(store_failed)?;
            match ids.as_slice() {
                [one] => return Ok(Value::String(one.to_string())),
                [] => continue,
                _ => {
                    return Err(Unreadable::new(
                        format!("「{target}」中有多条记录的「{key}」是「{text}」"),
                        format!("several `{target}` records have {key} “{text}”"),
                    ));
                }
            }
        }
        let scanned = self.scan(form, field, target, cache)?;
        match scanned.get(text).map(Vec::as_slice) {
            Some([one]) => return Ok(Value::String(one.clone())),
            Some([_, _, ..]) => {
                return Err(Unreadable::new(
                    format!("「{target}」中有多条记录是「{text}」，请用记录编号"),
                    format!("several `{target}` records are “{text}”; use the record id"),
                ));
            }
            _ => {}
        }
        let mut keys = keys;
        for name in self.search_fields(form, field, target) {
            if !keys.contains(&name) {
                keys.push(name);
            }
        }
        Err(Unreadable::new(
            format!("找不到「{text}」（按 {} 查找「{target}」）", keys.join("、")),
            format!("no `{target}` record is “{text}” (looked up by {})", keys.join(", ")),
        ))
    }

    /// The linked form's records by the value of each of the link's search fields
    /// that is not indexed (the title field first), read once per import: records
    /// are looked up by name even when the name is not indexed.
    fn scan<'c>(
        &self,
        form: &CompiledForm,
        field: &str,
        target: &Id,
        cache: &'c mut LinkCache,
    ) -> Result<&'c HashMap<String, Vec<String>>, Unreadable> {
        let key = format!("{target}/{field}");
        if !cache.1.contains_key(&key) {
            let fields = self.search_fields(form, field, target);
            let mut found: HashMap<String, Vec<String>> = HashMap::new();
            let mut page = Page::first(1000);
            loop {
                let ids =
                    self.store.records_of_form(target.as_str(), page.clone()).map_err(|e| {
                        Unreadable::new(format!("读取失败：{e}"), format!("reading failed: {e}"))
                    })?;
                for id in &ids {
                    let Ok(Some(stored)) = self.store.record(id) else { continue };
                    let Some(values) = stored.value.get("fields") else { continue };
                    for name in &fields {
                        if let Some(value) = values.get(name).and_then(Value::as_str) {
                            let ids = found.entry(value.trim().to_owned()).or_default();
                            if !ids.contains(&id.to_string()) {
                                ids.push(id.to_string());
                            }
                        }
                    }
                }
                match ids.last() {
                    Some(last) if ids.len() == page.limit => {
                        page = Page::after(last.clone(), page.limit)
                    }
                    _ => break,
                }
            }
            cache.1.insert(key.clone(), found);
        }
        cache.1.get(&key).ok_or_else(|| Unreadable::new("读取失败", "reading failed"))
    }

    /// The fields a record of the imported form may be named by in a link of the
    /// same form (a parent company): its title field and those links' search fields.
    fn own_keys(&self, form: &CompiledForm) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for (field, info) in &form.fields {
            if info.link.as_ref() == Some(&form.id) {
                for key in self.search_fields(form, field.as_str(), &form.id) {
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        keys
    }

    /// The linked form's title field and the link's search fields.
    fn search_fields(&self, form: &CompiledForm, field: &str, target: &Id) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        if let Some(title) =
            self.definitions.forms.get(target).and_then(|f| f.meta.title_field.as_ref())
        {
            fields.push(title.as_str().to_owned());
        }
        for name in field_schema(form, field)
            .and_then(|schema| schema.get("x-link"))
            .and_then(|link| link.get("search"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.iter().any(|known| known == name) {
                fields.push(name.to_owned());
            }
        }
        fields
    }

    /// The fields a link cell is looked up by: the mapping's, else the link's search
    /// fields and the linked form's title field, those the linked form indexes.
    fn link_keys(&self, form: &CompiledForm, field: &str, target: &Id) -> Vec<String> {
        if let Some(keys) = self.mapping.link_keys.get(field) {
            return keys.clone();
        }
        let Some(linked) = self.definitions.forms.get(target) else { return Vec::new() };
        let mut candidates: Vec<String> = field_schema(form, field)
            .and_then(|schema| schema.get("x-link"))
            .and_then(|link| link.get("search"))
            .and_then(Value::as_array)
            .map(|search| search.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(title) = &linked.meta.title_field {
            candidates.insert(0, title.as_str().to_owned());
        }
        let mut keys: Vec<String> = Vec::new();
        for candidate in candidates {
            let indexed = linked.meta.indexes.iter().any(|i| i.as_str() == candidate)
                || linked
                    .fields
                    .get(&FieldName::from(candidate.as_str()))
                    .is_some_and(|info| info.indexed);
            if indexed && !keys.contains(&candidate) {
                keys.push(candidate);
            }
        }
        keys
    }
}

/// Link cells already looked up in this file, and the linked forms' records by
/// their names, read once.
#[derive(Default)]
struct LinkCache(
    BTreeMap<(String, String), Result<Value, Unreadable>>,
    HashMap<String, HashMap<String, Vec<String>>>,
    /// Records of this import by their names, for links of the form to itself.
    HashMap<String, Vec<usize>>,
);

/// A row being read.
struct Row<'r> {
    line: u64,
    cells: &'r [String],
    columns: &'r [String],
    problems: Vec<RowProblem>,
}

impl Row<'_> {
    /// The cell's text, or `None` when it is empty.
    fn cell(&self, index: usize) -> Option<&str> {
        self.cells.get(index).map(|cell| cell.trim()).filter(|cell| !cell.is_empty())
    }

    fn problem(&mut self, index: usize, field: Option<&str>, why: Unreadable) {
        self.problems.push(problem(
            self.line,
            self.columns.get(index).map(String::as_str),
            field,
            self.cells.get(index).map(String::as_str),
            why.zh,
            why.en,
        ));
    }
}

/// Distinct non-empty values of a column (for the page's stage-name map), in the
/// order they first appear, at most `limit`.
pub fn distinct_values(table: &Table, column: &str, limit: usize) -> Vec<String> {
    let Some(index) = table.headers.iter().position(|header| header == column) else {
        return Vec::new();
    };
    let mut values: Vec<String> = Vec::new();
    for (_, cells) in &table.rows {
        let Some(value) = cells.get(index).map(|cell| cell.trim()).filter(|c| !c.is_empty()) else {
            continue;
        };
        if !values.iter().any(|known| known == value) {
            values.push(value.to_owned());
            if values.len() >= limit {
                break;
            }
        }
    }
    values
}
