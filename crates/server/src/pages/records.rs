//! Record pages: the generated form for a new record, a record with its stage, key
//! actions, exits, approvals and history, the edit form, and the posts that move a
//! record and decide its approvals. Every record is reached through
//! [`visible`](crate::api::records::visible); every change goes through
//! `Engine::execute` after the same link checks as the JSON API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use stagecraft_engine::{EngineError, Target};
use stagecraft_model::{FlowFile, Id};
use stagecraft_pack::{CompiledForm, Definitions};
use stagecraft_runtime::{
    ApprovalStatus, Command, Event, FieldProblem, Reason, Record, Refusal, create_problems,
};
use stagecraft_store::RecordId;

use super::fields::{self, Choice, Ctx, Fill, LinkTitles, Person, Raw, local_time, name_of};
use super::home::{form_title, record_title, stage_title, visible_records};
use super::{Lang, Page, PageError, PageLang, Posted, Signed, blocking, checked_post, see_other};
use crate::api::files::{self, store_upload};
use crate::api::records::{Access, known_form, link_problems, new_record_problems, visible};
use crate::state::AppState;

/// How many records a link field offers to pick from.
const LINK_CHOICES: usize = 500;

/// What building a form or a record page needs, read once per request.
struct Prepared {
    definitions: Arc<Definitions>,
    form: CompiledForm,
    links: BTreeMap<String, Vec<Choice>>,
    people: Vec<Person>,
    files: BTreeMap<String, String>,
}

impl Prepared {
    /// Blocking: reads the records each link field offers.
    fn load(state: &AppState, user: &str, form: &str) -> Result<Prepared, PageError> {
        known_form(state, form).map_err(|_| PageError::not_found())?;
        let definitions = state.engine().definitions();
        let compiled =
            definitions.forms.get(&Id::from(form)).cloned().ok_or_else(PageError::not_found)?;
        let mut links = BTreeMap::new();
        for linked in fields::link_forms(&compiled.schema) {
            let (records, _) = visible_records(state, user, &linked, LINK_CHOICES);
            let choices = records
                .iter()
                .map(|record| Choice {
                    id: record.id.clone(),
                    label: record_title(&definitions, record),
                })
                .collect();
            links.insert(linked, choices);
        }
        let people = state.with_org(|org| {
            use stagecraft_runtime::Org;
            org.users()
                .map(|person| Person {
                    id: person.id.to_string(),
                    name: person.name.clone(),
                    roles: org.roles_of(person.id.as_str()),
                })
                .collect()
        });
        Ok(Prepared { definitions, form: compiled, links, people, files: BTreeMap::new() })
    }

    fn ctx(&self, lang: Lang) -> Ctx<'_> {
        Ctx {
            lang,
            root: &self.form.schema,
            links: &self.links,
            people: &self.people,
            files: &self.files,
        }
    }

    /// Learns the names of files the record or the post names, those the caller may
    /// see. Blocking.
    fn name_files(
        &mut self,
        state: &AppState,
        user: &str,
        fields: &Map<String, Value>,
        raw: Option<&Raw>,
    ) {
        let ids = fields::file_ids(&self.ctx(Lang::Zh), fields, raw);
        for id in ids {
            if let Ok(Some(file)) = files::file_info(state, &id) {
                if files::may_see(state, user, &file).unwrap_or(false) {
                    self.files.insert(id, file.name);
                }
            }
        }
    }

    fn person(&self, id: &str) -> String {
        self.people
            .iter()
            .find(|person| person.id == id)
            .map(|person| person.name.clone())
            .unwrap_or_else(|| id.to_owned())
    }
}

fn message(lang: Lang, zh: &str, en: &str) -> String {
    lang.pick(zh, en).to_owned()
}

/// Adds problems whose field has none yet.
fn merge(problems: &mut Vec<FieldProblem>, more: Vec<FieldProblem>) {
    for problem in more {
        if !problems.iter().any(|known| known.pointer == problem.pointer) {
            problems.push(problem);
        }
    }
}

fn reason_text(lang: Lang, reason: &Reason) -> String {
    match lang {
        Lang::Zh => reason.message_zh.clone(),
        Lang::En => reason.message_en.clone(),
    }
}

fn record_href(record: &Record) -> String {
    format!("/ui/records/{}/{}", record.form, record.id)
}

// ----- the form ------------------------------------------------------------------------------

/// A form for a new record or an edit.
struct FormPage<'a> {
    raw: &'a Raw,
    problems: &'a [FieldProblem],
    fresh: bool,
    add_row: Option<&'a str>,
    /// The record being edited, and the version the edit is made against.
    editing: Option<(&'a Record, u64)>,
}

fn form_page(
    status: StatusCode,
    lang: PageLang,
    signed: &Signed,
    prepared: &Prepared,
    page: FormPage<'_>,
) -> Page {
    let l = lang.lang;
    let ctx = prepared.ctx(l);
    let form = &prepared.form;
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for problem in page.problems {
        let text = match l {
            Lang::Zh => problem.message_zh.clone(),
            Lang::En => problem.message_en.clone(),
        };
        errors.entry(name_of(&problem.pointer)).or_default().push(text);
    }
    let fill = Fill {
        raw: page.raw,
        errors: &errors,
        fresh: page.fresh,
        add_row: page.add_row,
        existing: page.editing.map(|(record, _)| &record.fields),
    };
    let (sections, names) = fields::form_view(&ctx, &form.meta, &fill);
    let general: Vec<String> = errors
        .iter()
        .filter(|(name, _)| !names.contains(*name))
        .flat_map(|(_, messages)| messages.clone())
        .collect();
    let title = form_title(&prepared.definitions, form.id.as_str(), l);
    let description = form.meta.description.as_ref().map(|text| l.text(text)).unwrap_or_default();
    let data = match page.editing {
        None => json!({
            "title": format!("{}{}", l.pick("新建", "New "), title),
            "heading": format!("{}{}", l.pick("新建", "New "), title),
            "description": description,
            "action": format!("/ui/records/{}", form.id),
            "record_href": "",
            "record_title": "",
            "has_version": false,
            "version": 0,
            "submit": l.pick("保存", "Save"),
            "cancel_href": "/ui",
        }),
        Some((record, version)) => {
            let name = record_title(&prepared.definitions, record);
            json!({
                "title": format!("{}{}", l.pick("编辑 ", "Edit "), name),
                "heading": format!("{}{}：{}", l.pick("编辑", "Edit "), title, name),
                "description": "",
                "action": format!("{}/edit", record_href(record)),
                "record_href": record_href(record),
                "record_title": name,
                "has_version": true,
                "version": version,
                "submit": l.pick("保存修改", "Save changes"),
                "cancel_href": record_href(record),
            })
        }
    };
    let mut data = data;
    if let Value::Object(map) = &mut data {
        map.insert("errors".into(), json!(!page.problems.is_empty()));
        map.insert("general".into(), json!(general));
        map.insert("sections".into(), json!(sections));
    }
    let switch = match page.editing {
        None => format!("/ui/records/{}/new", form.id),
        Some((record, _)) => format!("{}/edit", record_href(record)),
    };
    Page::render(status, "form", lang, Some(signed), &switch, data)
}

pub(crate) async fn new_form(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(form): Path<String>,
    uri: Uri,
) -> Response {
    let user = signed.user.clone();
    let loaded = blocking(move || Prepared::load(&state, &user, &form)).await;
    let prepared = match loaded {
        Ok(prepared) => prepared,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    let raw = fields::raw_of_query(&prepared.ctx(lang.lang), &super::query_pairs(&uri));
    let page = FormPage { raw: &raw, problems: &[], fresh: true, add_row: None, editing: None };
    form_page(StatusCode::OK, lang, &signed, &prepared, page).into_response()
}

/// One buffered file as the single chunk of a stream, for [`store_upload`].
struct OneChunk(Option<axum::body::Bytes>);

impl futures_core::Stream for OneChunk {
    type Item = Result<axum::body::Bytes, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.take().map(Ok))
    }
}

/// Stores the files of a post (after its CSRF token was checked) through the upload
/// API's one way in, and puts their ids in `raw` under their fields (a new file
/// replaces the field's files). A file that is refused is a problem at its field.
async fn store_uploads(
    state: &AppState,
    user: &str,
    form: &str,
    uploads: Vec<super::Upload>,
    raw: &mut Raw,
) -> Vec<FieldProblem> {
    let definitions = state.engine().definitions();
    let Some(compiled) = definitions.forms.get(&Id::from(form)) else { return Vec::new() };
    let (links, files) = (BTreeMap::new(), BTreeMap::new());
    let ctx =
        Ctx { lang: Lang::Zh, root: &compiled.schema, links: &links, people: &[], files: &files };
    let mut problems = Vec::new();
    let mut replaced = std::collections::BTreeSet::new();
    for upload in uploads {
        let Some(multiple) = fields::file_field(&ctx, &upload.field) else { continue };
        let stored = store_upload(
            state,
            user,
            Some(upload.file_name.as_str()),
            Some(upload.content_type.as_str()),
            OneChunk(Some(upload.bytes)),
        )
        .await;
        match stored {
            Ok(file) => {
                let ids = raw.entry(upload.field.clone()).or_default();
                if replaced.insert(upload.field.clone()) || !multiple {
                    ids.clear();
                }
                ids.push(file.id);
            }
            Err(problem) => {
                let (zh, en) = match problem.into_response().status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ("文件太大了", "the file is too large"),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                        "不支持此类型的文件，或文件内容与类型不符",
                        "this kind of file is not accepted, or its content does not match its type",
                    ),
                    StatusCode::BAD_REQUEST => {
                        ("文件为空或无法读取", "the file is empty or cannot be read")
                    }
                    _ => (
                        "文件未能保存，请稍后再试",
                        "the file could not be stored; try again later",
                    ),
                };
                problems.push(FieldProblem {
                    pointer: fields::pointer_of(&upload.field),
                    message_zh: format!("{zh}（{}）", upload.file_name),
                    message_en: format!("{en} ({})", upload.file_name),
                });
            }
        }
    }
    problems
}

pub(crate) async fn create(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(form): Path<String>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let user = signed.user.clone();
    let signed_for_page = signed.clone();
    let add_row = posted.get("_add_row").map(str::to_owned);
    let mut raw = fields::raw_of_post(&posted.values);
    let upload_problems = store_uploads(&state, &user, &form, posted.uploads, &mut raw).await;
    let done = blocking(move || {
        let mut prepared = Prepared::load(&state, &user, &form)?;
        prepared.name_files(&state, &user, &Map::new(), Some(&raw));
        let l = lang.lang;
        if let Some(add_row) = add_row.as_deref() {
            let page = FormPage {
                raw: &raw,
                problems: &[],
                fresh: false,
                add_row: Some(add_row),
                editing: None,
            };
            return Ok(
                form_page(StatusCode::OK, lang, &signed_for_page, &prepared, page).into_response()
            );
        }
        let (record_fields, converted) = fields::fields_of(&prepared.ctx(l), &raw, None);
        let mut problems = upload_problems;
        merge(&mut problems, converted);
        merge(&mut problems, new_record_problems(&state, &user, &form, &record_fields));
        if !problems.is_empty() {
            let definitions = state.engine().definitions();
            merge(
                &mut problems,
                create_problems(&definitions, &Id::from(form.as_str()), &record_fields),
            );
        }
        let refused = |problems: Vec<FieldProblem>, status| {
            let page = FormPage {
                raw: &raw,
                problems: &problems,
                fresh: false,
                add_row: None,
                editing: None,
            };
            Ok(form_page(status, lang, &signed_for_page, &prepared, page).into_response())
        };
        if !problems.is_empty() {
            return refused(problems, StatusCode::UNPROCESSABLE_ENTITY);
        }
        let command =
            Command::Create { form: Id::from(form.as_str()), fields: record_fields, owner: None };
        match state.engine().execute(Some(&user), Target::New, command, None) {
            Ok(executed) => Ok(see_other(&record_href(&executed.record))),
            Err(EngineError::Refused(Refusal::Invalid(problems))) => {
                refused(problems, StatusCode::UNPROCESSABLE_ENTITY)
            }
            // A linked record whose key actions are out of order says why, above the form.
            Err(EngineError::Refused(Refusal::Gated(reasons))) => {
                let problems = reasons
                    .into_iter()
                    .map(|reason| FieldProblem {
                        pointer: "/".into(),
                        message_zh: reason.message_zh,
                        message_en: reason.message_en,
                    })
                    .collect();
                refused(problems, StatusCode::CONFLICT)
            }
            Err(error) => Err(PageError::from_problem(error.into())),
        }
    })
    .await;
    done.unwrap_or_else(|error| error.page(lang, Some(&signed)).into_response())
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    let user = signed.user.clone();
    let signed_for_page = signed.clone();
    let done = blocking(move || {
        let record = visible(&state, &user, &form, &id, Access::Write)?;
        let prepared = Prepared::load(&state, &user, &form)?;
        let raw = fields::raw_of(&prepared.ctx(lang.lang), &record.fields);
        let page = FormPage {
            raw: &raw,
            problems: &[],
            fresh: true,
            add_row: None,
            editing: Some((&record, record.version)),
        };
        Ok(form_page(StatusCode::OK, lang, &signed_for_page, &prepared, page).into_response())
    })
    .await;
    done.unwrap_or_else(|error| error.page(lang, Some(&signed)).into_response())
}

pub(crate) async fn update(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path((form, id)): Path<(String, String)>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let user = signed.user.clone();
    let signed_for_page = signed.clone();
    let add_row = posted.get("_add_row").map(str::to_owned);
    let version = posted.get("_version").and_then(|version| version.trim().parse::<u64>().ok());
    // Files are stored only for a record the caller may change.
    let checking = (state.clone(), user.clone(), form.clone(), id.clone());
    let allowed = blocking(move || {
        let (state, user, form, id) = checking;
        visible(&state, &user, &form, &id, Access::Write).map(|_| ()).map_err(PageError::from)
    })
    .await;
    if let Err(error) = allowed {
        return error.page(lang, Some(&signed)).into_response();
    }
    let mut raw = fields::raw_of_post(&posted.values);
    let upload_problems = store_uploads(&state, &user, &form, posted.uploads, &mut raw).await;
    let done = blocking(move || {
        let l = lang.lang;
        let record = visible(&state, &user, &form, &id, Access::Write)?;
        let mut prepared = Prepared::load(&state, &user, &form)?;
        prepared.name_files(&state, &user, &record.fields, Some(&raw));
        let page = |problems: &[FieldProblem], version: u64, add_row: Option<&str>, status| {
            let page = FormPage {
                raw: &raw,
                problems,
                fresh: false,
                add_row,
                editing: Some((&record, version)),
            };
            Ok(form_page(status, lang, &signed_for_page, &prepared, page).into_response())
        };
        if let Some(add_row) = add_row.as_deref() {
            return page(&[], version.unwrap_or(record.version), Some(add_row), StatusCode::OK);
        }
        let Some(version) = version else {
            let problem = FieldProblem {
                pointer: "/".into(),
                message_zh: "表单缺少版本号，请重新打开编辑页面。".into(),
                message_en: "the form has no version; open the edit page again".into(),
            };
            return page(&[problem], record.version, None, StatusCode::UNPROCESSABLE_ENTITY);
        };
        let (changes, converted) = fields::fields_of(&prepared.ctx(l), &raw, Some(&record.fields));
        let mut problems = upload_problems;
        merge(&mut problems, converted);
        merge(&mut problems, link_problems(&state, &user, &form, &changes));
        if !problems.is_empty() {
            return page(&problems, version, None, StatusCode::UNPROCESSABLE_ENTITY);
        }
        if changes.is_empty() {
            return Ok(see_other(&record_href(&record)));
        }
        let command = Command::Update { expected_version: version, fields: changes };
        match state.engine().execute(Some(&user), Target::Existing(id.clone()), command, None) {
            Ok(executed) => Ok(see_other(&record_href(&executed.record))),
            Err(EngineError::Refused(Refusal::Invalid(problems))) => {
                page(&problems, version, None, StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(EngineError::Refused(Refusal::Stale { .. })) | Err(EngineError::Conflict) => {
                // Keep what was typed, against the version there is now: saving again
                // is then a conscious choice.
                let actual =
                    state.engine().record(&id).ok().flatten().map_or(version, |now| now.version);
                let problem = FieldProblem {
                    pointer: "/".into(),
                    message_zh: "保存前记录已被他人修改。请核对下方内容后再次保存（将覆盖对方的修改），或取消后查看最新内容。".into(),
                    message_en: "Someone changed the record before you saved. Check the values below and save again (this overwrites their change), or cancel to see the latest version.".into(),
                };
                page(&[problem], actual, None, StatusCode::CONFLICT)
            }
            Err(error) => Err(PageError::from_problem(error.into())),
        }
    })
    .await;
    done.unwrap_or_else(|error| error.page(lang, Some(&signed)).into_response())
}

// ----- the record -------------------------------------------------------------------------------

pub(crate) async fn show(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    record_response(state, lang, signed, form, id, StatusCode::OK, Vec::new()).await
}

/// The record page, with notices above it (why a move or a decision was refused).
async fn record_response(
    state: AppState,
    lang: PageLang,
    signed: Signed,
    form: String,
    id: String,
    status: StatusCode,
    notices: Vec<String>,
) -> Response {
    let user = signed.user.clone();
    let built = blocking(move || {
        let record = visible(&state, &user, &form, &id, Access::Read)?;
        record_data(&state, &user, lang.lang, &record, notices)
    })
    .await;
    match built {
        Ok((data, switch)) => {
            Page::render(status, "record", lang, Some(&signed), &switch, data).into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// Everything the record template shows. Blocking.
fn record_data(
    state: &AppState,
    user: &str,
    l: Lang,
    record: &Record,
    notices: Vec<String>,
) -> Result<(Value, String), PageError> {
    let mut prepared = Prepared::load(state, user, record.form.as_str())?;
    prepared.name_files(state, user, &record.fields, None);
    let definitions = state.engine().definitions_for(record);
    let ctx = prepared.ctx(l);
    let href = record_href(record);

    // Linked records: their titles and pages, for those the caller may see.
    let mut links = LinkTitles::new();
    for (form, linked) in fields::linked_ids(&ctx, &record.fields) {
        if let Ok(target) = visible(state, user, &form, &linked, Access::Read) {
            links.insert(linked, (record_title(&definitions, &target), record_href(&target)));
        }
    }

    let flow: Option<&FlowFile> =
        record.flow.as_ref().and_then(|state| definitions.flows.get(&state.flow));
    let stage_def = record
        .flow
        .as_ref()
        .and_then(|state| flow.and_then(|flow| flow.stages.iter().find(|s| s.id == state.stage)));

    let mut actions = Vec::new();
    let mut approvals = Vec::new();
    let mut exits = Vec::new();
    if let (Some(flow_state), Some(stage)) = (record.flow.as_ref(), stage_def) {
        for action in &stage.actions {
            let done_at = flow_state.actions.get(&action.id);
            let state_text = match (done_at, action.optional) {
                (Some(at), _) => format!("{} {}", l.pick("已完成", "done"), local_time(*at)),
                (None, true) => l.pick("可选", "optional").to_owned(),
                (None, false) => l.pick("未完成", "not done").to_owned(),
            };
            // A key action done by filling in another form links to it, pre-filled.
            let (new_href, new_label) = match (&action.form, done_at) {
                (Some(action_form), None) => {
                    let field = definitions.forms.get(action_form).and_then(|compiled| {
                        fields::link_field_to(&compiled.schema, record.form.as_str())
                    });
                    let query =
                        field.map(|field| format!("?{field}={}", record.id)).unwrap_or_default();
                    (
                        format!("/ui/records/{action_form}/new{query}"),
                        format!(
                            "{}{}",
                            l.pick("填写", "Fill in "),
                            form_title(&definitions, action_form.as_str(), l)
                        ),
                    )
                }
                _ => (String::new(), String::new()),
            };
            actions.push(json!({
                "title": l.text(&action.title),
                "done": done_at.is_some(),
                "state": state_text,
                "guidance": action.guidance.as_ref().map(|text| l.text(text)).unwrap_or_default(),
                "new_href": new_href,
                "new_label": new_label,
            }));
        }
        for (approval_id, approval) in &flow_state.approvals {
            let title = stage
                .approvals
                .iter()
                .find(|def| &def.id == approval_id)
                .map(|def| l.text(&def.title))
                .unwrap_or_else(|| approval_id.to_string());
            let status = match approval.status {
                ApprovalStatus::Pending => l.pick("待审批", "pending"),
                ApprovalStatus::Approved => l.pick("已通过", "approved"),
                ApprovalStatus::Rejected => l.pick("已驳回", "rejected"),
            };
            let approvers: Vec<String> = approval
                .approvers
                .iter()
                .flatten()
                .map(|approver| prepared.person(approver))
                .collect();
            let decisions: Vec<String> = approval
                .decisions
                .iter()
                .map(|decision| {
                    let verdict = if decision.approve {
                        l.pick("通过", "approved")
                    } else {
                        l.pick("驳回", "rejected")
                    };
                    let reason = decision
                        .reason
                        .as_deref()
                        .map(|reason| format!("{}{reason}", l.pick("：", ": ")))
                        .unwrap_or_default();
                    format!(
                        "{} · {} {}{}",
                        local_time(decision.at),
                        prepared.person(&decision.user),
                        verdict,
                        reason
                    )
                })
                .collect();
            let can_decide = approval.status == ApprovalStatus::Pending
                && approval.approvers.iter().flatten().any(|approver| approver == user)
                && !approval.decisions.iter().any(|decision| decision.user == user);
            approvals.push(json!({
                "id": approval_id.to_string(),
                "title": title,
                "status": status,
                "approvers": approvers.join(l.pick("、", ", ")),
                "decisions": decisions,
                "can_decide": can_decide,
                "action": format!("{href}/approvals/{approval_id}"),
            }));
        }
        for exit in state
            .engine()
            .exits(Some(user), record)
            .map_err(|e| PageError::from_problem(e.into()))?
        {
            exits.push(json!({
                "to": exit.to.to_string(),
                "title": l.text(&exit.title),
                "open": exit.reasons.is_empty(),
                "reasons": exit.reasons.iter().map(|reason| reason_text(l, reason)).collect::<Vec<_>>(),
            }));
        }
    }

    let stage = match (record.flow.as_ref(), stage_def) {
        (Some(flow_state), Some(stage)) => json!({
            "title": l.text(&stage.title),
            "status": stage.status.as_ref().map(|text| l.text(text)).unwrap_or_default(),
            "guidance": stage.guidance.as_ref().map(|text| l.text(text)).unwrap_or_default(),
            "ended": flow_state.outcome.is_some(),
        }),
        (Some(_), None) => json!({
            "title": stage_title(&definitions, record, l),
            "status": "",
            "guidance": "",
            "ended": false,
        }),
        _ => Value::Null,
    };

    let tasks: Vec<Value> = record
        .tasks
        .values()
        .map(|task| {
            let who = match (&task.assignee, &task.role) {
                (Some(assignee), _) => prepared.person(assignee),
                (None, Some(role)) => definitions
                    .roles
                    .get(role)
                    .map(|decl| l.text(&decl.title))
                    .unwrap_or_else(|| role.to_string()),
                (None, None) => String::new(),
            };
            json!({
                "title": l.text(&task.title),
                "who": who,
                "due": task.due.map(local_time).unwrap_or_default(),
            })
        })
        .collect();

    let events = state
        .engine()
        .store()
        .events_of(&RecordId::new(record.id.clone()))
        .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))?;
    let history: Vec<Value> = events
        .iter()
        .rev()
        .map(|stored| {
            let text = serde_json::from_value::<Event>(stored.data.clone())
                .map(|event| {
                    let person = |user: &str| prepared.person(user);
                    describe(l, &definitions, flow, &prepared.form.schema, &person, &event)
                })
                .unwrap_or_else(|_| stored.kind.clone());
            json!({"at": local_time(stored.at_ms), "text": text})
        })
        .collect();

    let next = super::onboarding::next_steps(l, stage_def, record.flow.as_ref(), &exits);
    let overview = super::customer::overview_href(&definitions, record);
    let owner =
        record.owner.as_deref().map(|owner| prepared.person(owner)).unwrap_or_else(|| "—".into());
    let name = record_title(&definitions, record);
    let form_name = form_title(&definitions, record.form.as_str(), l);
    let data = json!({
        "title": format!("{form_name}：{name}"),
        "heading": format!("{form_name}：{name}"),
        "form_title": form_name,
        "owner": owner,
        "created": local_time(record.created_at),
        "version": record.version,
        "notice_title": l.pick("操作未完成：", "That did not go through:"),
        "notices": notices,
        "has_stage": !stage.is_null(),
        "stage": stage,
        "actions": actions,
        "exits": exits,
        "approvals": approvals,
        "transition_action": format!("{href}/transitions"),
        "edit_href": format!("{href}/edit"),
        "fields": fields::display(&ctx, &record.fields, &links),
        "tasks": tasks,
        "history": history,
        "next": next,
        "overview_href": overview,
        "overview_label": l.pick("全景视图", "360° view"),
    });
    Ok((data, href))
}

/// One event of a record's history, in words: `schema` is the record's form (for
/// field labels), `flow` its flow, `person` names a user. The record page and the
/// overview's timeline both tell events this way.
pub(crate) fn describe(
    l: Lang,
    definitions: &Definitions,
    flow: Option<&FlowFile>,
    schema: &Value,
    person: &dyn Fn(&str) -> String,
    event: &Event,
) -> String {
    let stage_name = |id: &Id| {
        flow.and_then(|flow| flow.stages.iter().find(|stage| &stage.id == id))
            .map(|stage| l.text(&stage.title))
            .unwrap_or_else(|| id.to_string())
    };
    let approval_name = |id: &Id| {
        flow.and_then(|flow| {
            flow.stages
                .iter()
                .flat_map(|stage| &stage.approvals)
                .find(|approval| &approval.id == id)
        })
        .map(|approval| l.text(&approval.title))
        .unwrap_or_else(|| id.to_string())
    };
    let people = |users: &[String]| {
        users.iter().map(|user| person(user)).collect::<Vec<_>>().join(l.pick("、", ", "))
    };
    let labels = |fields: &Map<String, Value>| {
        fields
            .keys()
            .map(|field| fields::field_label(l, schema, field))
            .collect::<Vec<_>>()
            .join(l.pick("、", ", "))
    };
    match event {
        Event::Created { owner, .. } => match owner {
            Some(owner) => {
                format!("{}{}", l.pick("创建，负责人：", "Created; owner: "), person(owner))
            }
            None => l.pick("创建", "Created").to_owned(),
        },
        Event::FieldsChanged { after, .. } => {
            format!("{}{}", l.pick("修改了：", "Changed: "), labels(after))
        }
        Event::FlowStarted { flow: flow_id, .. } => {
            let name = definitions
                .flows
                .get(flow_id)
                .map(|flow| l.text(&flow.title))
                .unwrap_or_else(|| flow_id.to_string());
            format!("{}{name}", l.pick("开始流程：", "Flow started: "))
        }
        Event::StageChanged { from, to, .. } => match from {
            Some(from) => {
                format!("{}{} → {}", l.pick("阶段：", "Stage: "), stage_name(from), stage_name(to))
            }
            None => format!("{}{}", l.pick("进入阶段：", "Entered stage: "), stage_name(to)),
        },
        Event::ActionDone { action } => {
            let title = flow
                .and_then(|flow| {
                    flow.stages.iter().flat_map(|stage| &stage.actions).find(|a| &a.id == action)
                })
                .map(|action| l.text(&action.title))
                .unwrap_or_else(|| action.to_string());
            format!("{}{title}", l.pick("完成关键动作：", "Key action done: "))
        }
        Event::ApprovalRequested { approval, approvers } => format!(
            "{}{}（{}）",
            l.pick("请求审批：", "Approval requested: "),
            approval_name(approval),
            people(approvers)
        ),
        Event::ApprovalAutoApproved { approval, audited } => format!(
            "{}{}{}",
            l.pick("自动通过：", "Approved automatically: "),
            approval_name(approval),
            if *audited {
                l.pick("（已抽中事后审查）", " (sampled for audit)")
            } else {
                ""
            }
        ),
        Event::ApprovalDecided { approval, user, approve, reason, .. } => format!(
            "{} {}{}{}",
            person(user),
            if *approve {
                l.pick("通过了", "approved ")
            } else {
                l.pick("驳回了", "rejected ")
            },
            approval_name(approval),
            reason.as_deref().map(|reason| format!(" — {reason}")).unwrap_or_default()
        ),
        Event::FlowEnded { outcome, .. } => {
            format!("{}{outcome}", l.pick("流程结束：", "Flow ended: "))
        }
        Event::SubflowStarted { flow: flow_id, .. } => {
            let name = definitions
                .flows
                .get(flow_id)
                .map(|flow| l.text(&flow.title))
                .unwrap_or_else(|| flow_id.to_string());
            format!("{}{name}", l.pick("启动子流程：", "Sub-flow started: "))
        }
        Event::SubflowEnded { outcome, .. } => {
            format!("{}{outcome}", l.pick("子流程结束：", "Sub-flow ended: "))
        }
        Event::AdvanceRefused { to, reasons } => format!(
            "{}{}：{}",
            l.pick("未能自动进入", "Could not move on to "),
            stage_name(to),
            reasons.iter().map(|reason| reason_text(l, reason)).collect::<Vec<_>>().join("; ")
        ),
        Event::SlaBreached { stage, approval } => match approval {
            Some(approval) => {
                format!("{}{}", l.pick("审批超时：", "Approval overdue: "), approval_name(approval))
            }
            None => format!("{}{}", l.pick("阶段超时：", "Stage overdue: "), stage_name(stage)),
        },
        Event::Escalated { step, notified, reassigned_to, .. } => {
            let mut text = format!(
                "{}{}{}",
                l.pick("升级第 ", "Escalation step "),
                step + 1,
                l.pick(" 步", "")
            );
            if !notified.is_empty() {
                text.push_str(&format!(
                    "{}{}",
                    l.pick("，通知：", "; notified: "),
                    people(notified)
                ));
            }
            if let Some(to) = reassigned_to {
                text.push_str(&format!("{}{}", l.pick("，转交：", "; handed to: "), person(to)));
            }
            text
        }
        Event::AlertRaised { alert } => {
            let title = definitions
                .alerts
                .iter()
                .find(|candidate| &candidate.id == alert)
                .map(|alert| l.text(&alert.title))
                .unwrap_or_else(|| alert.to_string());
            format!("{}{title}", l.pick("提醒：", "Alert: "))
        }
        Event::Touched { .. } => {
            l.pick("关联记录有新动态", "Activity on a linked record").to_owned()
        }
        Event::Imported { source, created_at, .. } => format!(
            "{}{source}{}{}{}",
            l.pick("从其他系统导入：", "Imported from: "),
            l.pick("（原始创建时间 ", " (created there "),
            local_time(*created_at),
            l.pick("）", ")"),
        ),
        Event::OwnerChanged { to, why, .. } => match (why, to) {
            (stagecraft_runtime::OwnerChange::Claimed, Some(to)) => {
                format!("{} {}", person(to), l.pick("从客户池认领", "claimed it from the pool"))
            }
            (stagecraft_runtime::OwnerChange::ReturnedIdle, _) => {
                l.pick("长期无跟进，退回客户池", "Idle too long: back to the pool").to_owned()
            }
            _ => l.pick("释放回客户池", "Released to the pool").to_owned(),
        },
    }
}

// ----- moves and decisions ---------------------------------------------------------------------

/// Runs a command on a visible record; a refusal shows the record page with why.
async fn act(
    state: AppState,
    lang: PageLang,
    signed: Signed,
    form: String,
    id: String,
    command: Command,
    back: Option<String>,
) -> Response {
    let user = signed.user.clone();
    let running = state.clone();
    let (form_for_run, id_for_run) = (form.clone(), id.clone());
    let outcome = blocking(move || {
        let record = visible(&running, &user, &form_for_run, &id_for_run, Access::Write)?;
        Ok(running.engine().execute(Some(&user), Target::Existing(record.id), command, None))
    })
    .await;
    let l = lang.lang;
    let (status, notices) = match outcome {
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
        Ok(Ok(executed)) => {
            return see_other(&back.unwrap_or_else(|| record_href(&executed.record)));
        }
        Ok(Err(EngineError::Refused(Refusal::Gated(reasons)))) => {
            (StatusCode::CONFLICT, reasons.iter().map(|reason| reason_text(l, reason)).collect())
        }
        Ok(Err(EngineError::Refused(Refusal::Invalid(problems)))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            problems
                .iter()
                .map(|problem| match l {
                    Lang::Zh => problem.message_zh.clone(),
                    Lang::En => problem.message_en.clone(),
                })
                .collect(),
        ),
        Ok(Err(EngineError::Refused(Refusal::Forbidden(detail)))) => (
            StatusCode::FORBIDDEN,
            vec![format!("{} {detail}", message(l, "您无权进行此操作。", "You may not do this."))],
        ),
        Ok(Err(EngineError::Refused(Refusal::NotApplicable(detail)))) => (
            StatusCode::CONFLICT,
            vec![format!(
                "{} {detail}",
                message(
                    l,
                    "此操作不适用于记录的当前状态。",
                    "This does not apply to the record as it is now."
                )
            )],
        ),
        Ok(Err(EngineError::Refused(Refusal::Stale { .. }))) | Ok(Err(EngineError::Conflict)) => (
            StatusCode::CONFLICT,
            vec![message(
                l,
                "记录刚被他人修改，请查看最新内容后重试。",
                "The record just changed; look at the latest version and try again.",
            )],
        ),
        Ok(Err(error)) => {
            return PageError::from_problem(error.into()).page(lang, Some(&signed)).into_response();
        }
    };
    record_response(state, lang, signed, form, id, status, notices).await
}

pub(crate) async fn transition(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path((form, id)): Path<(String, String)>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let to = posted.get("to").unwrap_or_default().trim().to_owned();
    // A move posted from another page (the board) goes back there, if it is one of ours.
    let back =
        posted.get("back").filter(|back| !back.is_empty()).map(|back| super::safe_next(Some(back)));
    let command = Command::Transition { to: Id::from(to.as_str()) };
    act(state, lang, signed, form, id, command, back).await
}

pub(crate) async fn decide(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path((form, id, approval)): Path<(String, String, String)>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let approve = posted.get("decision") == Some("approve");
    let reason =
        posted.get("reason").map(str::trim).filter(|reason| !reason.is_empty()).map(str::to_owned);
    let command = Command::Decide { approval: Id::from(approval.as_str()), approve, reason };
    act(state, lang, signed, form, id, command, None).await
}
