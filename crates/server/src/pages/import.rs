//! The import page: choose a form and upload a CSV file, map its columns onto the
//! form's fields (pre-filled from the headers) and the other system's stage names
//! onto the flow's stages, check it (a dry run with every problem by row and
//! column), then apply it all at once and follow the job's progress on a page that
//! reloads itself (a `Refresh` header: no script). The work is the JSON API's
//! (`crate::api::import`): the same checks, the same jobs, the same rule of who may
//! import (roles that see every record).
//!
//! An uploaded file waits in memory between the steps (a draft, for its uploader
//! only), until the server stops or newer drafts push it out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::http::header::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use stagecraft_import::{Mapping, Progress, Report, Source, Table, distinct_values, read_table};
use stagecraft_model::Id;
use stagecraft_pack::Definitions;

use super::home::{form_title, record_title};
use super::i18n::words;
use super::{
    Lang, Page, PageError, PageLang, Posted, Signed, blocking, checked_post, encode_component,
    see_other,
};
use crate::api::import::{Finished, find_job, may_import, start_job};
use crate::state::AppState;

/// The page's own words: key, Chinese, English.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "数据导入", "Import"),
    (
        "intro",
        "从其他系统的 CSV 文件导入记录，保留原有的创建日期、阶段和结果。先检查，全部无误后一次性写入；有任何一行出错则什么也不写。",
        "Import records from another system's CSV file, keeping their own creation dates, stages and outcomes. Check first; everything is written at once when no row has a problem, and nothing otherwise.",
    ),
    ("form", "导入为", "Import as"),
    ("file", "CSV 文件（UTF-8）", "CSV file (UTF-8)"),
    ("upload", "上传并设置对应关系", "Upload and map the columns"),
    ("mapping", "列与字段的对应", "Columns and fields"),
    ("mapping_help", "已按表头自动匹配，请核对。", "Matched by the headers; please check."),
    ("not_imported", "— 不导入 —", "— not imported —"),
    ("history", "历史信息", "History"),
    ("owner", "负责人（用户名、姓名或邮箱）", "Owner (user id, name or e-mail)"),
    ("created", "创建日期", "Created on"),
    ("stage", "阶段", "Stage"),
    ("outcome", "结果", "Outcome"),
    ("closed", "结束日期", "Closed on"),
    ("stage_dates", "进入各阶段的日期", "Dates each stage was reached"),
    ("stage_names", "阶段名称对照", "Stage names"),
    (
        "stage_names_help",
        "文件中的阶段名称对应流程的哪个阶段（更改阶段列后请重新检查）。",
        "Which stage of the flow each name in the file means (check again after changing the stage column).",
    ),
    ("automatic", "自动（按阶段编号或名称）", "Automatic (by stage id or title)"),
    ("check", "检查（不写入）", "Check (writes nothing)"),
    ("apply", "全部导入", "Import everything"),
    ("report", "检查结果", "Check result"),
    ("rows", "行数", "Rows"),
    ("valid_rows", "无误的行", "Rows without problems"),
    ("clean", "全部无误，可以导入。", "No problems: ready to import."),
    (
        "not_clean",
        "有问题的行需先在文件中改正，或调整对应关系后重新检查。",
        "Correct the rows with problems in the file, or change the mapping and check again.",
    ),
    ("row", "行", "Row"),
    ("column", "列", "Column"),
    ("value", "内容", "Value"),
    ("problem", "问题", "Problem"),
    ("more_problems", "条问题未列出", "more problems not listed"),
    ("progress", "导入进度", "Import progress"),
    ("running", "正在导入，页面会自动刷新……", "Importing; the page refreshes by itself…"),
    ("checked", "已检查", "Checked"),
    ("written", "已写入", "Written"),
    ("done", "导入完成", "Import finished"),
    ("refused", "文件有问题，未写入任何记录", "The file has problems; nothing was written"),
    ("failed", "导入失败，未写入任何记录", "The import failed; nothing was written"),
    ("imported", "已导入记录", "Imported records"),
    ("more_records", "条记录未列出", "more records not listed"),
    ("again", "再导入一个文件", "Import another file"),
    ("reload", "刷新", "Reload"),
    ("file_name", "文件", "File"),
    ("org_title", "组织架构导入", "Organisation import"),
    (
        "org_intro",
        "人员（用户名、姓名、邮箱、手机、部门、上级、角色）和部门（编号、名称、英文名称、上级部门、负责人）的 CSV 文件合并到公司的组织架构文件中。",
        "CSV files of people (id, name, e-mail, phone, department, manager, roles) and departments (id, name, English name, parent, head) merged into the company's org file.",
    ),
    ("people", "人员文件", "People file"),
    ("departments", "部门文件", "Departments file"),
    ("org_check", "检查（不写入）", "Check (writes nothing)"),
    ("org_apply", "写入组织架构", "Write the org"),
    ("added_people", "新增人员", "People added"),
    ("changed_people", "变更人员", "People changed"),
    ("added_departments", "新增部门", "Departments added"),
    ("changed_departments", "变更部门", "Departments changed"),
    ("org_written", "组织架构已更新并重新加载。", "The org file was written and reloaded."),
    (
        "org_not_written",
        "未写入：以下是将发生的变化。",
        "Nothing written: this is what would change.",
    ),
    (
        "org_refused",
        "文件有问题，组织架构未改变。",
        "The files have problems; the org was not changed.",
    ),
    ("nothing", "无", "none"),
];

/// The most problems a page lists (the counts say how many there are).
const SHOWN_PROBLEMS: usize = 200;
/// The most imported records a result page links to.
const SHOWN_RECORDS: usize = 50;
/// The most distinct stage names offered for mapping.
const STAGE_NAMES: usize = 50;
/// The most bytes of uploaded files kept waiting between steps.
const DRAFT_BYTES: usize = 200 * 1024 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    let upload_limit =
        DefaultBodyLimit::max(crate::api::files::MAX_UPLOAD_BYTES + crate::api::MAX_BODY_BYTES);
    Router::new()
        .route("/import", get(start))
        .route("/import/upload", post(upload).layer(upload_limit))
        .route("/import/drafts/{draft}", get(draft_page))
        .route("/import/drafts/{draft}/check", post(check))
        .route("/import/drafts/{draft}/apply", post(apply))
        .route("/import/jobs/{id}", get(job_page))
        .route(
            "/import/org",
            post(org).layer(DefaultBodyLimit::max(
                crate::api::files::MAX_UPLOAD_BYTES + crate::api::MAX_BODY_BYTES,
            )),
        )
}

// ----- drafts: an uploaded file between the steps ------------------------------------

/// An uploaded file waiting to be mapped, checked and applied.
#[derive(Debug)]
struct Draft {
    id: String,
    user: String,
    form: String,
    file_name: String,
    csv: Vec<u8>,
    table: Table,
    /// The mapping as last posted (`None`: the one the headers suggest).
    mapping: Mutex<Option<Mapping>>,
    /// Whether the last check of that mapping found no problem.
    clean: Mutex<bool>,
}

fn drafts() -> &'static Mutex<VecDeque<Arc<Draft>>> {
    static DRAFTS: OnceLock<Mutex<VecDeque<Arc<Draft>>>> = OnceLock::new();
    DRAFTS.get_or_init(|| Mutex::new(VecDeque::new()))
}

fn keep(draft: Arc<Draft>) {
    let Ok(mut drafts) = drafts().lock() else { return };
    drafts.push_back(draft);
    while drafts.len() > 1 && drafts.iter().map(|d| d.csv.len()).sum::<usize>() > DRAFT_BYTES {
        drafts.pop_front();
    }
}

fn find_draft(id: &str, user: &str) -> Option<Arc<Draft>> {
    let drafts = drafts().lock().ok()?;
    drafts.iter().find(|draft| draft.id == id && draft.user == user).cloned()
}

fn new_id(state: &AppState) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:x}-{}", state.engine().now(), NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Draft {
    fn mapping(&self, definitions: &Definitions) -> Mapping {
        let given = self.mapping.lock().ok().and_then(|mapping| mapping.clone());
        let given =
            given.unwrap_or_else(|| Mapping { form: self.form.clone(), ..Mapping::default() });
        given.with_defaults(definitions, &self.table.headers)
    }
}

// ----- the steps ---------------------------------------------------------------------

fn forbidden() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        "只有可查看全部记录的角色（如管理员、销售总监）可以导入数据。",
        "Only roles that see every record (such as the administrator or the sales director) may import.",
    )
}

fn base(lang: Lang, step: &str) -> Value {
    json!({
        "title": lang.pick("数据导入", "Import"),
        "w": words(lang, WORDS),
        "step": step,
        "forms": [],
        "error": null,
        "draft": null,
        "job": null,
        "org": null,
    })
}

/// Step 1: choose the form and the file.
async fn start(State(state): State<AppState>, lang: PageLang, signed: Signed) -> Response {
    if !may_import(&state, &signed.user) {
        return forbidden().page(lang, Some(&signed)).into_response();
    }
    choose_page(&state, lang, &signed, StatusCode::OK, None).into_response()
}

fn choose_page(
    state: &AppState,
    lang: PageLang,
    signed: &Signed,
    status: StatusCode,
    error: Option<(String, String)>,
) -> Page {
    let l = lang.lang;
    let definitions = state.engine().definitions();
    let forms: Vec<Value> = definitions
        .forms
        .keys()
        .map(|form| json!({"id": form.as_str(), "title": form_title(&definitions, form.as_str(), l)}))
        .collect();
    let mut data = base(l, "choose");
    data["forms"] = Value::Array(forms);
    data["error"] =
        error.map_or(Value::Null, |(zh, en)| Value::String(l.pick(&zh, &en).to_owned()));
    Page::render(status, "import", lang, Some(signed), "/import", data)
}

/// Step 2: the file arrives; it waits as a draft and the mapping page shows.
async fn upload(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    if !may_import(&state, &signed.user) {
        return forbidden().page(lang, Some(&signed)).into_response();
    }
    let form = posted.get("form").unwrap_or_default().to_owned();
    let refuse = |zh: &str, en: &str| {
        choose_page(
            &state,
            lang,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((zh.into(), en.into())),
        )
        .into_response()
    };
    if !state.engine().definitions().forms.contains_key(&Id::from(form.as_str())) {
        return refuse("请选择要导入的表单。", "Choose the form to import into.");
    }
    let Some(file) = posted.uploads.iter().find(|upload| upload.field == "file") else {
        return refuse("请选择 CSV 文件。", "Choose a CSV file.");
    };
    let table = match read_table(&file.bytes) {
        Ok(table) => table,
        Err(problem) => return refuse(&problem.message_zh, &problem.message_en),
    };
    if table.rows.is_empty() {
        return refuse("文件中没有数据行。", "The file has no rows below its header.");
    }
    let draft = Arc::new(Draft {
        id: new_id(&state),
        user: signed.user.clone(),
        form,
        file_name: file.file_name.clone(),
        csv: file.bytes.to_vec(),
        table,
        mapping: Mutex::new(None),
        clean: Mutex::new(false),
    });
    let href = draft_href(&draft.id);
    keep(draft);
    see_other(&href)
}

fn draft_href(id: &str) -> String {
    format!("/import/drafts/{}", encode_component(id))
}

/// The mapping page of a draft (with no report yet).
async fn draft_page(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(draft) = find_draft(&id, &signed.user) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let definitions = state.engine().definitions();
    let mapping = draft.mapping(&definitions);
    mapping_page(&definitions, lang, &signed, &draft, &mapping, None, StatusCode::OK)
        .into_response()
}

/// Step 3: check the posted mapping (a dry run) and show the report under it.
async fn check(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(id): Path<String>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let Some(draft) = find_draft(&id, &signed.user) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    if !may_import(&state, &signed.user) {
        return forbidden().page(lang, Some(&signed)).into_response();
    }
    let definitions = state.engine().definitions();
    let given = mapping_from(&posted, &draft);
    if let Ok(mut slot) = draft.mapping.lock() {
        *slot = Some(given.clone());
    }
    let (running, user, checked) = (state.clone(), signed.user.clone(), draft.clone());
    let report = blocking(move || {
        let source = Source { actor: Some(&user), name: &checked.file_name };
        Ok(stagecraft_import::dry_run(
            running.engine(),
            source,
            &given,
            &checked.csv,
            &Progress::default(),
        ))
    })
    .await;
    let report = match report {
        Ok(report) => report,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    if let Ok(mut clean) = draft.clean.lock() {
        *clean = report.is_clean();
    }
    let status = if report.is_clean() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    mapping_page(&definitions, lang, &signed, &draft, &report.mapping, Some(&report), status)
        .into_response()
}

/// Step 4: apply the last checked mapping as a job, and follow it.
async fn apply(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(id): Path<String>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    // Only the CSRF token is read: the mapping applied is the one last checked.
    if let Err(refused) = checked_post(posted, &signed, lang) {
        return refused;
    }
    let Some(draft) = find_draft(&id, &signed.user) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    if !may_import(&state, &signed.user) {
        return forbidden().page(lang, Some(&signed)).into_response();
    }
    let mapping = draft.mapping(&state.engine().definitions());
    let job = start_job(&state, &signed.user, mapping, draft.csv.clone(), draft.file_name.clone());
    see_other(&format!("/import/jobs/{}", encode_component(&job.id)))
}

/// Step 5: the job's progress; reloads itself every second while it runs.
async fn job_page(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let l = lang.lang;
    let Some(job) = find_job(&id, &signed.user) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let status = job.status();
    let (checked, written, total) = job.progress.snapshot();
    let running = !job.is_finished();
    let href = format!("/import/jobs/{}", encode_component(&id));
    let form = job.form.clone();
    let ids = status.ids.clone();
    let report = match &*job.finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        Some(Finished::Refused(report)) => Some(report.clone()),
        _ => None,
    };
    let (failed, refused, done) = match status.state.as_str() {
        "failed" => (true, false, false),
        "refused" => (false, true, false),
        "done" => (false, false, true),
        _ => (false, false, false),
    };
    let error = status.error.clone();
    let reading = state.clone();
    let records = blocking(move || {
        let definitions = reading.engine().definitions();
        Ok(ids
            .iter()
            .take(SHOWN_RECORDS)
            .filter_map(|id| reading.engine().record(id).ok().flatten())
            .map(|record| {
                json!({
                    "title": record_title(&definitions, &record),
                    "href": format!("/ui/records/{}/{}", encode_component(record.form.as_str()), encode_component(&record.id)),
                })
            })
            .collect::<Vec<_>>())
    })
    .await
    .unwrap_or_default();
    let percent = ((checked + written) * 50).checked_div(total).unwrap_or_default();
    let mut data = base(l, "job");
    data["title"] = Value::String(job_title(l, running, done).to_owned());
    data["job"] = json!({
        "href": href,
        "running": running,
        "done": done,
        "refused": refused,
        "failed": failed,
        "error": error,
        "form": form_title(&state.engine().definitions(), &form, l),
        "total": total,
        "checked": checked,
        "written": written,
        "percent": percent,
        "records": records,
        "more_records": written.saturating_sub(SHOWN_RECORDS),
        "report": report.as_ref().map(|report| report_view(report, l)),
    });
    let page = Page::render(StatusCode::OK, "import", lang, Some(&signed), &href, data);
    let mut response = page.into_response();
    if running {
        // A page that reloads itself while the job runs: no script, so the page's
        // content security policy stays as strict as everywhere else.
        response.headers_mut().insert("refresh", HeaderValue::from_static("1"));
    }
    response
}

fn job_title(l: Lang, running: bool, done: bool) -> &'static str {
    match (running, done) {
        (true, _) => l.pick("导入进度", "Import progress"),
        (false, true) => l.pick("导入完成", "Import finished"),
        (false, false) => l.pick("导入未完成", "Import not done"),
    }
}

// ----- the mapping form ----------------------------------------------------------------

/// The mapping as the form posted it: `col.<field>`, `owner`, `created`, `stage`,
/// `outcome`, `closed`, `date.<stage>`, and pairs `sname.<n>` / `smap.<n>`. A select
/// left at "not imported" posts an empty value, which keeps the headers' suggestion
/// out.
fn mapping_from(posted: &Posted, draft: &Draft) -> Mapping {
    let mut mapping = Mapping { form: draft.form.clone(), ..Mapping::default() };
    for (name, value) in &posted.values {
        let value = value.trim().to_owned();
        if let Some(field) = name.strip_prefix("col.") {
            mapping.columns.insert(field.to_owned(), value);
        } else if let Some(stage) = name.strip_prefix("date.") {
            mapping.stage_dates.insert(stage.to_owned(), value);
        } else if let Some(index) = name.strip_prefix("smap.") {
            let other = posted.get(&format!("sname.{index}")).unwrap_or_default();
            if !value.is_empty() && !other.is_empty() {
                mapping.stage_names.insert(other.to_owned(), value);
            }
        } else {
            match name.as_str() {
                "owner" => mapping.owner = Some(value),
                "created" => mapping.created = Some(value),
                "stage" => mapping.stage = Some(value),
                "outcome" => mapping.outcome = Some(value),
                "closed" => mapping.closed = Some(value),
                _ => {}
            }
        }
    }
    mapping
}

/// The options of a column select, with `chosen` selected.
fn column_options(table: &Table, chosen: Option<&str>, none: &str) -> Vec<Value> {
    let mut options = vec![json!({"value": "", "label": none, "selected": chosen.is_none()})];
    options.extend(table.headers.iter().map(|header| {
        json!({"value": header, "label": header, "selected": chosen == Some(header.as_str())})
    }));
    options
}

fn mapping_page(
    definitions: &Definitions,
    lang: PageLang,
    signed: &Signed,
    draft: &Draft,
    mapping: &Mapping,
    report: Option<&Report>,
    status: StatusCode,
) -> Page {
    let l = lang.lang;
    let none = l.pick("— 不导入 —", "— not imported —");
    let form = definitions.forms.get(&Id::from(draft.form.as_str()));
    let properties = form
        .and_then(|form| form.schema.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: Vec<String> = form
        .map(|form| form.required.iter().map(|field| field.as_str().to_owned()).collect())
        .unwrap_or_default();
    let fields: Vec<Value> = properties
        .iter()
        .filter(|(_, schema)| schema.get("x-file").is_none())
        .map(|(field, schema)| {
            let label = schema
                .get("x-ui")
                .and_then(|ui| ui.get("label"))
                .map(|label| label_text(label, l))
                .unwrap_or_else(|| field.clone());
            json!({
                "id": field,
                "name": format!("col.{field}"),
                "label": label,
                "required": required.contains(field),
                "options": column_options(&draft.table, mapping.columns.get(field).map(String::as_str), none),
            })
        })
        .collect();
    let flow = definitions
        .flows
        .values()
        .find(|flow| flow.form.as_str() == draft.form && flow.start_on_create.unwrap_or(true));
    let special = |name: &str, word: &str, chosen: &Option<String>| {
        json!({
            "name": name,
            "label": words(l, WORDS)[word].clone(),
            "options": column_options(&draft.table, chosen.as_deref(), none),
        })
    };
    let mut history = vec![
        special("owner", "owner", &mapping.owner),
        special("created", "created", &mapping.created),
    ];
    let mut stage_dates = Vec::new();
    let mut stage_names = Vec::new();
    if let Some(flow) = flow {
        history.push(special("stage", "stage", &mapping.stage));
        history.push(special("outcome", "outcome", &mapping.outcome));
        history.push(special("closed", "closed", &mapping.closed));
        for stage in &flow.stages {
            stage_dates.push(json!({
                "name": format!("date.{}", stage.id),
                "label": l.text(&stage.title),
                "options": column_options(&draft.table, mapping.stage_dates.get(stage.id.as_str()).map(String::as_str), none),
            }));
        }
        let mut names: Vec<String> = Vec::new();
        for column in [&mapping.stage, &mapping.outcome].into_iter().flatten() {
            for value in distinct_values(&draft.table, column, STAGE_NAMES) {
                if !names.contains(&value) {
                    names.push(value);
                }
            }
        }
        for (index, name) in names.iter().enumerate() {
            let chosen = mapping.stage_names.get(name);
            let mut options = vec![
                json!({"value": "", "label": l.pick("自动（按阶段编号或名称）", "Automatic (by stage id or title)"), "selected": chosen.is_none()}),
            ];
            options.extend(flow.stages.iter().map(|stage| {
                json!({
                    "value": stage.id.as_str(),
                    "label": l.text(&stage.title),
                    "selected": chosen.map(String::as_str) == Some(stage.id.as_str()),
                })
            }));
            stage_names.push(json!({"index": index, "value": name, "options": options}));
        }
    }
    let clean = report.is_some_and(Report::is_clean);
    let mut data = base(l, "map");
    data["draft"] = json!({
        "id": draft.id,
        "file_name": draft.file_name,
        "form": form_title(definitions, &draft.form, l),
        "rows": draft.table.rows.len(),
        "check_action": format!("{}/check", draft_href(&draft.id)),
        "apply_action": format!("{}/apply", draft_href(&draft.id)),
        "fields": fields,
        "history": history,
        "stage_dates": stage_dates,
        "stage_names": stage_names,
        "report": report.map(|report| report_view(report, l)),
        "clean": clean,
    });
    Page::render(status, "import", lang, Some(signed), &draft_href(&draft.id), data)
}

/// A label (`{zh-CN, en}` or plain text) in the page's language.
fn label_text(label: &Value, l: Lang) -> String {
    match label {
        Value::String(text) => text.clone(),
        Value::Object(texts) => texts
            .get(l.code())
            .or_else(|| texts.values().next())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// A report as the template shows it, in the page's language.
fn report_view(report: &Report, l: Lang) -> Value {
    let problems: Vec<Value> = report
        .problems
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(|problem| {
            json!({
                "row": problem.row,
                "column": problem.column.clone().unwrap_or_default(),
                "value": problem.value.clone().unwrap_or_default(),
                "message": l.pick(&problem.message_zh, &problem.message_en),
            })
        })
        .collect();
    json!({
        "rows": report.rows,
        "valid_rows": report.valid_rows,
        "problems": problems,
        "more": report.problems.len().saturating_sub(SHOWN_PROBLEMS),
        "clean": report.is_clean(),
    })
}

// ----- the organisation --------------------------------------------------------------

/// People and departments files merged into the org file: a check, or the write
/// (`action=apply`), through the API's own function.
async fn org(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let l = lang.lang;
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    if !may_import(&state, &signed.user) {
        return forbidden().page(lang, Some(&signed)).into_response();
    }
    let text = |field: &str| {
        posted
            .uploads
            .iter()
            .find(|upload| upload.field == field)
            .map(|upload| String::from_utf8_lossy(&upload.bytes).into_owned())
    };
    let (people, departments) = (text("people"), text("departments"));
    if people.is_none() && departments.is_none() {
        return choose_page(
            &state,
            lang,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((
                "请选择人员文件或部门文件。".into(),
                "Choose a people file or a departments file.".into(),
            )),
        )
        .into_response();
    }
    let dry = posted.get("action") != Some("apply");
    let running = state.clone();
    let outcome = blocking(move || {
        crate::api::import::run_org_import(&running, people.as_deref(), departments.as_deref(), dry)
            .map_err(PageError::from_problem)
    })
    .await;
    let (status, answer) = match outcome {
        Ok(done) => done,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    let list = |ids: &[String]| {
        Value::String(if ids.is_empty() {
            l.pick("无", "none").to_owned()
        } else {
            ids.join("、")
        })
    };
    let mut data = base(l, "org");
    data["title"] = Value::String(l.pick("组织架构导入", "Organisation import").to_owned());
    data["org"] = json!({
        "written": answer.written,
        "refused": !answer.problems.is_empty(),
        "added_people": list(&answer.added_people),
        "changed_people": list(&answer.changed_people),
        "added_departments": list(&answer.added_departments),
        "changed_departments": list(&answer.changed_departments),
        "problems": answer.problems.iter().map(|problem| json!({
            "file": problem.file,
            "row": problem.row,
            "column": problem.column.clone().unwrap_or_default(),
            "value": problem.value.clone().unwrap_or_default(),
            "message": l.pick(&problem.message_zh, &problem.message_en),
        })).collect::<Vec<_>>(),
    });
    Page::render(status, "import", lang, Some(&signed), "/import", data).into_response()
}
