//! Importing the organisation: CSV files of people and departments merged into the
//! company's org file (`*.org.yaml`). The org comes from files, so the result is a
//! new org file (the caller writes it where the server reads it; the server's pack
//! watcher reloads it), checked before it is written, with the people and
//! departments it adds and changes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use stagecraft_model::{Department, Id, LocalizedText, OrgFile, Text, User};
use stagecraft_pack::Definitions;

use crate::mapping::same;
use crate::rows::{RowProblem, Table, problem, read_table};

/// The usual headers of each column of the people file.
const PERSON_COLUMNS: &[(&str, &[&str])] = &[
    ("id", &["id", "user", "user id", "login", "用户名", "账号", "工号"]),
    ("name", &["name", "姓名", "名字"]),
    ("email", &["email", "e-mail", "mail", "邮箱", "电子邮件"]),
    ("phone", &["phone", "mobile", "手机", "电话", "手机号"]),
    ("department", &["department", "dept", "部门"]),
    ("manager", &["manager", "reports to", "上级", "直属上级", "经理"]),
    ("roles", &["roles", "role", "角色"]),
];

/// The usual headers of each column of the departments file.
const DEPARTMENT_COLUMNS: &[(&str, &[&str])] = &[
    ("id", &["id", "编号", "部门编号", "代码"]),
    ("name", &["name", "title", "名称", "部门名称", "部门"]),
    ("name_en", &["name_en", "english name", "英文名称"]),
    ("parent", &["parent", "上级部门", "所属部门"]),
    ("head", &["head", "负责人", "部门负责人"]),
];

/// What an org import would change, and the new org file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrgImport {
    /// People added, by id.
    pub added_people: Vec<String>,
    /// People whose entry changed, by id.
    pub changed_people: Vec<String>,
    /// Departments added, by id.
    pub added_departments: Vec<String>,
    /// Departments whose entry changed, by id.
    pub changed_departments: Vec<String>,
    /// Every problem, by file and row; the file is written only without any.
    pub problems: Vec<OrgProblem>,
    /// The merged org file as YAML (empty when there are problems).
    pub yaml: String,
}

/// A problem of one of the org files.
#[derive(Clone, Debug, Serialize)]
pub struct OrgProblem {
    /// `people` or `departments`.
    pub file: String,
    /// The problem, at its row and column.
    #[serde(flatten)]
    pub problem: RowProblem,
}

/// Merges the people and departments files into `current`: an entry with a known
/// id is updated by the columns the file has, a new id is added. Departments,
/// managers and heads may be named by id or by name; roles must be declared by a
/// loaded pack.
pub fn import_org(
    definitions: &Definitions,
    current: &OrgFile,
    people: Option<&[u8]>,
    departments: Option<&[u8]>,
) -> OrgImport {
    let mut result = OrgImport::default();
    let mut org = current.clone();
    let mut report = |file: &str, found: RowProblem| {
        result.problems.push(OrgProblem { file: file.to_owned(), problem: found })
    };
    let departments_table = match departments.map(read_table).transpose() {
        Ok(table) => table,
        Err(found) => {
            report("departments", found);
            None
        }
    };
    let people_table = match people.map(read_table).transpose() {
        Ok(table) => table,
        Err(found) => {
            report("people", found);
            None
        }
    };
    let before = org.clone();
    // Departments first (ids and names), then people, then the links of both, so a
    // file may name a department or a manager that comes later.
    let mut department_links = Vec::new();
    if let Some(table) = &departments_table {
        let columns = columns(table, DEPARTMENT_COLUMNS);
        for (line, cells) in &table.rows {
            let cell = |key: &str| cell(&columns, cells, key);
            let Some(id) = cell("id") else {
                report(
                    "departments",
                    problem(
                        *line,
                        None,
                        Some("id"),
                        None,
                        "缺少部门编号",
                        "the department id is missing",
                    ),
                );
                continue;
            };
            let title = match (cell("name"), cell("name_en")) {
                (Some(zh), Some(en)) => Some(Text::Localized(LocalizedText {
                    zh_cn: Some(zh.to_owned()),
                    en: Some(en.to_owned()),
                })),
                (Some(name), None) | (None, Some(name)) => Some(Text::Plain(name.to_owned())),
                (None, None) => None,
            };
            match org.departments.iter_mut().find(|d| d.id.as_str() == id) {
                Some(department) => {
                    if let Some(title) = title {
                        department.title = title;
                    }
                }
                None => org.departments.push(Department {
                    id: Id::from(id),
                    title: title.unwrap_or_else(|| Text::Plain(id.to_owned())),
                    parent: None,
                    head: None,
                }),
            }
            department_links.push((
                *line,
                id.to_owned(),
                cell("parent").map(str::to_owned),
                cell("head").map(str::to_owned),
                columns.clone(),
            ));
        }
    }
    let mut person_links = Vec::new();
    if let Some(table) = &people_table {
        let columns = columns(table, PERSON_COLUMNS);
        for (line, cells) in &table.rows {
            let cell = |key: &str| cell(&columns, cells, key);
            let Some(id) = cell("id") else {
                report(
                    "people",
                    problem(*line, None, Some("id"), None, "缺少用户名", "the user id is missing"),
                );
                continue;
            };
            let index = match org.users.iter().position(|u| u.id.as_str() == id) {
                Some(index) => index,
                None => {
                    org.users.push(User {
                        id: Id::from(id),
                        name: id.to_owned(),
                        email: None,
                        phone: None,
                        department: None,
                        manager: None,
                        roles: Vec::new(),
                        locale: None,
                    });
                    org.users.len() - 1
                }
            };
            let user = &mut org.users[index];
            if let Some(name) = cell("name") {
                user.name = name.to_owned();
            }
            if let Some(email) = cell("email") {
                user.email = Some(email.to_owned());
            }
            if let Some(phone) = cell("phone") {
                user.phone = Some(phone.to_owned());
            }
            if let Some(roles) = cell("roles") {
                user.roles = roles
                    .split([';', '；', ',', '，', '、', '|', ' '])
                    .map(str::trim)
                    .filter(|role| !role.is_empty())
                    .map(Id::from)
                    .collect();
                for role in &user.roles {
                    if !definitions.roles.contains_key(role) {
                        let known: Vec<&str> = definitions.roles.keys().map(Id::as_str).collect();
                        report(
                            "people",
                            problem(
                                *line,
                                column_name(table, &columns, "roles"),
                                Some("roles"),
                                Some(role.as_str()),
                                format!("没有角色「{role}」（可选：{}）", known.join("、")),
                                format!("there is no role `{role}` ({})", known.join(", ")),
                            ),
                        );
                    }
                }
            }
            person_links.push((
                *line,
                id.to_owned(),
                cell("department").map(str::to_owned),
                cell("manager").map(str::to_owned),
                columns.clone(),
            ));
        }
    }
    // Links, by id or by name.
    let department_id = |org: &OrgFile, text: &str| -> Option<Id> {
        org.departments
            .iter()
            .find(|d| d.id.as_str() == text)
            .or_else(|| {
                org.departments
                    .iter()
                    .find(|d| same(d.title.get("zh-CN"), text) || same(d.title.get("en"), text))
            })
            .map(|d| d.id.clone())
    };
    let person_id = |org: &OrgFile, text: &str| -> Option<Id> {
        org.users
            .iter()
            .find(|u| u.id.as_str() == text)
            .or_else(|| {
                let named: Vec<&User> = org.users.iter().filter(|u| u.name == text).collect();
                (named.len() == 1).then(|| named[0])
            })
            .map(|u| u.id.clone())
    };
    if let Some(table) = &departments_table {
        for (line, id, parent, head, columns) in &department_links {
            let parent_id = parent.as_deref().map(|p| (p, department_id(&org, p)));
            let head_id = head.as_deref().map(|h| (h, person_id(&org, h)));
            if let Some((text, None)) = parent_id {
                report(
                    "departments",
                    problem(
                        *line,
                        column_name(table, columns, "parent"),
                        Some("parent"),
                        Some(text),
                        format!("没有部门「{text}」"),
                        format!("there is no department “{text}”"),
                    ),
                );
            }
            if let Some((text, None)) = head_id {
                report(
                    "departments",
                    problem(
                        *line,
                        column_name(table, columns, "head"),
                        Some("head"),
                        Some(text),
                        format!("组织中没有「{text}」"),
                        format!("nobody in the org is “{text}”"),
                    ),
                );
            }
            if let Some(department) = org.departments.iter_mut().find(|d| d.id.as_str() == id) {
                if let Some((_, Some(parent))) = parent_id {
                    department.parent = Some(parent);
                }
                if let Some((_, Some(head))) = head_id {
                    department.head = Some(head);
                }
            }
        }
    }
    if let Some(table) = &people_table {
        for (line, id, department, manager, columns) in &person_links {
            let department_id = department.as_deref().map(|d| (d, department_id(&org, d)));
            let manager_id = manager.as_deref().map(|m| (m, person_id(&org, m)));
            if let Some((text, None)) = department_id {
                report(
                    "people",
                    problem(
                        *line,
                        column_name(table, columns, "department"),
                        Some("department"),
                        Some(text),
                        format!("没有部门「{text}」"),
                        format!("there is no department “{text}”"),
                    ),
                );
            }
            if let Some((text, None)) = manager_id {
                report(
                    "people",
                    problem(
                        *line,
                        column_name(table, columns, "manager"),
                        Some("manager"),
                        Some(text),
                        format!("组织中没有「{text}」"),
                        format!("nobody in the org is “{text}”"),
                    ),
                );
            }
            if let Some(user) = org.users.iter_mut().find(|u| u.id.as_str() == id) {
                if let Some((_, Some(department))) = department_id {
                    user.department = Some(department);
                }
                if let Some((_, Some(manager))) = manager_id {
                    user.manager = Some(manager);
                }
            }
        }
    }
    for cycle in manager_cycles(&org) {
        report(
            "people",
            problem(
                1,
                None,
                Some("manager"),
                Some(&cycle),
                format!("上级关系形成了循环：{cycle}"),
                format!("the reporting lines go round in a circle: {cycle}"),
            ),
        );
    }
    for user in &org.users {
        match before.users.iter().find(|old| old.id == user.id) {
            None => result.added_people.push(user.id.to_string()),
            Some(old) if serde_json::to_value(old).ok() != serde_json::to_value(user).ok() => {
                result.changed_people.push(user.id.to_string())
            }
            Some(_) => {}
        }
    }
    for department in &org.departments {
        match before.departments.iter().find(|old| old.id == department.id) {
            None => result.added_departments.push(department.id.to_string()),
            Some(old)
                if serde_json::to_value(old).ok() != serde_json::to_value(department).ok() =>
            {
                result.changed_departments.push(department.id.to_string())
            }
            Some(_) => {}
        }
    }
    if result.problems.is_empty() {
        let value = serde_json::to_value(&org).unwrap_or(Value::Null);
        result.yaml =
            format!("# The organisation, written by `stagecraft import-org`.\n{}", yaml(&value, 0));
    }
    result
}

/// Each key's column, by the usual headers.
fn columns(table: &Table, known: &[(&str, &[&str])]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for (key, names) in known {
        if let Some(index) =
            table.headers.iter().position(|header| names.iter().any(|name| same(header, name)))
        {
            found.insert((*key).to_owned(), index);
        }
    }
    found
}

fn cell<'c>(columns: &BTreeMap<String, usize>, cells: &'c [String], key: &str) -> Option<&'c str> {
    let index = *columns.get(key)?;
    cells.get(index).map(|cell| cell.trim()).filter(|cell| !cell.is_empty())
}

fn column_name<'t>(
    table: &'t Table,
    columns: &BTreeMap<String, usize>,
    key: &str,
) -> Option<&'t str> {
    columns.get(key).and_then(|index| table.headers.get(*index)).map(String::as_str)
}

/// Reporting lines that go round in a circle, each as `a → b → a`.
fn manager_cycles(org: &OrgFile) -> Vec<String> {
    let manager: BTreeMap<&str, &str> = org
        .users
        .iter()
        .filter_map(|u| u.manager.as_ref().map(|m| (u.id.as_str(), m.as_str())))
        .collect();
    let mut reported = BTreeSet::new();
    let mut cycles = Vec::new();
    for start in manager.keys() {
        let mut path = vec![*start];
        let mut current = *start;
        while let Some(next) = manager.get(current) {
            if let Some(at) = path.iter().position(|p| p == next) {
                let circle: BTreeSet<&str> = path[at..].iter().copied().collect();
                if reported.insert(circle) {
                    let mut shown: Vec<&str> = path[at..].to_vec();
                    shown.push(next);
                    cycles.push(shown.join(" → "));
                }
                break;
            }
            path.push(next);
            current = next;
        }
    }
    cycles
}

/// A JSON value as block YAML; strings are written as JSON strings, which YAML reads
/// as double-quoted scalars, so no text can change meaning.
fn yaml(value: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let key = plain_key(key);
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n{}", yaml(item, indent + 2)))
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n{}", yaml(item, indent + 2)))
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(item))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        let block = yaml(item, indent + 2);
                        out.push_str(&format!("{pad}- {}", block.trim_start()));
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}-\n{}", yaml(item, indent + 2)))
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

fn plain_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// Why an org file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteOrgError {
    /// The packs with the new file do not pass the checks; nothing changed.
    #[error("the new org file does not pass the pack checks; nothing was written")]
    Checks(Box<stagecraft_pack::Report>),
    /// The file system refused.
    #[error("{0}")]
    Io(String),
}

/// Writes `yaml` as the org file `org` after the pack checker accepts the packs with
/// it, keeping the file before as `<org>.bak` (a name the loader ignores). When `org`
/// lies beside the `packs` folders, the check runs on a scratch copy first and
/// nothing is written on errors; when it lies inside one of them (a copy would clash
/// with it), the file is written, checked, and put back as it was on errors.
pub fn write_org_file(
    packs: &[std::path::PathBuf],
    org: &std::path::Path,
    yaml: &str,
) -> Result<std::path::PathBuf, WriteOrgError> {
    let io = |what: &str, error: std::io::Error| WriteOrgError::Io(format!("{what}: {error}"));
    let inside = packs.iter().any(|path| path != org && org.starts_with(path));
    let others: Vec<std::path::PathBuf> =
        packs.iter().filter(|path| path.as_path() != org).cloned().collect();
    if !inside {
        let scratch = std::env::temp_dir().join(format!(
            "stagecraft-org-check-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&scratch).map_err(|e| io("making a scratch folder", e))?;
        let candidate = scratch.join(org.file_name().unwrap_or_default());
        std::fs::write(&candidate, yaml).map_err(|e| io("writing a scratch copy", e))?;
        let mut paths = others.clone();
        paths.push(candidate);
        let report = stagecraft_pack::check(&paths);
        // The scratch copy only served the check; a leftover changes nothing.
        let _ = std::fs::remove_dir_all(&scratch);
        if report.has_errors() {
            return Err(WriteOrgError::Checks(Box::new(report)));
        }
    }
    let backup = std::path::PathBuf::from(format!("{}.bak", org.display()));
    std::fs::copy(org, &backup).map_err(|e| io("keeping the org file", e))?;
    std::fs::write(org, yaml).map_err(|e| io("writing the org file", e))?;
    if inside {
        let mut paths = others;
        paths.push(org.to_owned());
        let report = stagecraft_pack::check(&paths);
        if report.has_errors() {
            std::fs::copy(&backup, org).map_err(|e| io("putting the org file back", e))?;
            return Err(WriteOrgError::Checks(Box::new(report)));
        }
    }
    Ok(backup)
}

/// The org file among the pack paths (a file, or one inside a folder), when there is
/// exactly one.
pub fn find_org_file(packs: &[std::path::PathBuf]) -> Result<std::path::PathBuf, usize> {
    fn walk(path: &std::path::Path, depth: usize, found: &mut Vec<std::path::PathBuf>) {
        if path.is_file() {
            if stagecraft_pack::classify(path) == Some(stagecraft_pack::FileKind::Org) {
                found.push(path.to_owned());
            }
        } else if path.is_dir() && depth < 16 {
            let Ok(entries) = std::fs::read_dir(path) else { return };
            let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            entries.sort();
            for entry in entries {
                walk(&entry, depth + 1, found);
            }
        }
    }
    let mut found = Vec::new();
    for path in packs {
        walk(path, 0, &mut found);
    }
    found.dedup();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(other.len()),
    }
}

/// Reads an org file.
pub fn read_org_file(path: &std::path::Path) -> Result<OrgFile, String> {
    let source = stagecraft_pack::SourceFile::read(path).map_err(|d| d.message)?;
    let file = stagecraft_pack::YamlFile::parse(source).map_err(|d| d.message)?;
    serde_json::from_value(file.value).map_err(|error| format!("{}: {error}", path.display()))
}
