//! Onboarding: `GET /welcome`, a walkthrough generated from the packs and the
//! person's roles (their roles, what they can create, their flows' stages with each
//! stage's guidance, where the workbench's pages are), shown once by itself on the
//! first visit of the workbench and from the menu afterwards; `POST /welcome` ends it.
//! Also the "what to do next" box of every record page: the stage's guidance, the
//! key actions still to do with theirs, and each exit's open gate reasons, in order.
//!
//! Whether a person has seen the walkthrough is an internal record
//! `_welcome/<user>` (like the notification preferences), so it survives restarts
//! and travels with backups.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use stagecraft_model::{FlowFile, Stage};
use stagecraft_pack::Definitions;
use stagecraft_runtime::FlowState;
use stagecraft_store::{Commit, RecordId, RecordWrite, StoreError};

use super::home::{creatable_forms, form_title, visible_records};
use super::i18n::words;
use super::{Lang, Page, PageError, PageLang, Posted, Signed, blocking, checked_post, see_other};
use crate::state::AppState;

/// The internal form of the "walkthrough seen" marks.
const WELCOME_FORM: &str = "_welcome";

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "新手引导", "Getting started"),
    (
        "intro",
        "欢迎使用！下面几步带您了解系统里与您有关的部分，随时可以从菜单“新手引导”再次打开。",
        "Welcome! These steps show the parts of the system that concern you; open them again any time from the menu.",
    ),
    ("roles", "您的角色", "Your roles"),
    ("no_roles", "您还没有分配角色，请联系管理员。", "You have no role yet; ask an administrator."),
    ("create", "您可以新建的记录", "What you can create"),
    ("flows", "您参与的流程", "Your flows"),
    (
        "flows_intro",
        "每条记录按阶段推进；每个阶段都写明了该做什么，关键动作完成、审批通过后才能进入下一阶段。",
        "Records move stage by stage; each stage says what to do, and a record moves on only when its key actions are done and its approvals given.",
    ),
    ("actions", "关键动作", "Key actions"),
    ("where", "常用页面", "Where things are"),
    (
        "todos",
        "我的待办：分配给您的所有任务，已超时的排在最前。",
        "My to-dos: every task assigned to you, overdue first.",
    ),
    (
        "pool",
        "客户池：无人跟进的客户，可以领取。",
        "Customer pool: customers nobody follows, to claim.",
    ),
    (
        "board",
        "商机看板：按阶段查看记录，直接推进。",
        "Pipeline board: records by stage, moved on from there.",
    ),
    ("dashboard", "业绩仪表盘：目标、完成情况和趋势。", "Dashboard: targets, results and trends."),
    ("inbox", "收件箱：提醒和通知。", "Inbox: reminders and notifications."),
    (
        "record_next",
        "在每条记录的页面顶部，“下一步做什么”会告诉您当前阶段要完成的事情。",
        "At the top of every record page, “What to do next” tells you what the current stage needs.",
    ),
    ("done", "我知道了，开始使用", "Got it, let's start"),
    ("skip", "跳过", "Skip"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/welcome", get(welcome).post(finish))
}

fn mark_id(user: &str) -> RecordId {
    RecordId::new(format!("{WELCOME_FORM}/{user}"))
}

/// Records that `user` was shown the walkthrough (`shown_at`) or ended it
/// (`done_at`), keeping what was there. Blocking.
fn mark(state: &AppState, user: &str, key: &str) -> Result<(), StoreError> {
    let store = state.engine().store();
    let now = state.engine().now();
    for _ in 0..5 {
        let write = match store.record(&mark_id(user))? {
            Some(stored) => {
                let mut value = stored.value.clone();
                if let Value::Object(map) = &mut value {
                    map.entry(key.to_owned()).or_insert(json!(now));
                }
                RecordWrite::update(mark_id(user), WELCOME_FORM, stored.version, value)
            }
            None => RecordWrite::create(mark_id(user), WELCOME_FORM, json!({ key: now })),
        };
        let mut commit = Commit::at(now);
        commit.records.push(write);
        match store.commit(commit) {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Whether this is the person's first visit of the workbench: then the walkthrough is
/// marked as shown (it is shown once by itself) and the caller sends them to it.
/// Blocking. A store that cannot answer means no walkthrough, never a failed page.
pub(crate) fn first_visit(state: &AppState, user: &str) -> bool {
    match state.engine().store().record(&mark_id(user)) {
        Ok(None) => mark(state, user, "shown_at").is_ok(),
        _ => false,
    }
}

/// Whether a flow concerns a person: they may see records of it, or it names one of
/// their roles (a transition's `roles`, an approver or a task's assignee).
fn concerns(state: &AppState, user: &str, roles: &[String], flow: &FlowFile) -> bool {
    fn names_role(node: &Value, roles: &[String]) -> bool {
        match node {
            Value::Object(map) => map.iter().any(|(key, value)| {
                let named = match (key.as_str(), value) {
                    ("role", Value::String(role)) => roles.contains(role),
                    ("roles", Value::Array(items)) => items.iter().any(|item| {
                        item.as_str().is_some_and(|r| roles.iter().any(|held| held == r))
                    }),
                    _ => false,
                };
                named || names_role(value, roles)
            }),
            Value::Array(items) => items.iter().any(|item| names_role(item, roles)),
            _ => false,
        }
    }
    let definition = serde_json::to_value(flow).unwrap_or(Value::Null);
    names_role(&definition, roles)
        || visible_records(state, user, flow.form.as_str(), 50)
            .0
            .iter()
            .any(|record| record.flow.as_ref().is_some_and(|state| state.flow == flow.id))
}

fn stage_view(l: Lang, stage: &Stage) -> Value {
    json!({
        "title": l.text(&stage.title),
        "guidance": stage.guidance.as_ref().map(|text| l.text(text)).unwrap_or_default(),
        "ended": stage.outcome.is_some(),
        "actions": stage.actions.iter().map(|action| l.text(&action.title)).collect::<Vec<_>>(),
    })
}

/// The walkthrough for a person. Blocking.
fn walkthrough(state: &AppState, user: &str, l: Lang) -> Value {
    let definitions: std::sync::Arc<Definitions> = state.engine().definitions();
    let held: Vec<String> = state.with_org(|org| {
        use stagecraft_runtime::Org;
        org.roles_of(user)
    });
    let roles: Vec<String> = held
        .iter()
        .map(|role| {
            definitions
                .roles
                .get(&stagecraft_model::Id::from(role.as_str()))
                .map(|declared| l.text(&declared.title))
                .unwrap_or_else(|| role.clone())
        })
        .collect();
    let creatable: Vec<Value> = creatable_forms(&definitions)
        .into_iter()
        .map(|form| {
            let description = definitions
                .forms
                .get(&stagecraft_model::Id::from(form.as_str()))
                .and_then(|compiled| compiled.meta.description.as_ref())
                .map(|text| l.text(text))
                .unwrap_or_default();
            json!({
                "href": format!("/ui/records/{form}/new"),
                "title": form_title(&definitions, &form, l),
                "description": description,
            })
        })
        .collect();
    let mine: Vec<&FlowFile> = definitions
        .flows
        .values()
        .filter(|flow| !flow.stages.is_empty() && concerns(state, user, &held, flow))
        .collect();
    // Someone whom no flow concerns yet sees the flows people start themselves.
    let shown: Vec<&FlowFile> = if mine.is_empty() {
        definitions.flows.values().filter(|flow| flow.start_on_create != Some(false)).collect()
    } else {
        mine
    };
    let flows: Vec<Value> = shown
        .iter()
        .map(|flow| {
            json!({
                "id": flow.id.to_string(),
                "title": l.text(&flow.title),
                "description": flow.description.as_ref().map(|text| l.text(text)).unwrap_or_default(),
                "form": form_title(&definitions, flow.form.as_str(), l),
                "stages": flow.stages.iter().map(|stage| stage_view(l, stage)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"roles": roles, "creatable": creatable, "flows": flows})
}

async fn welcome(State(state): State<AppState>, lang: PageLang, signed: Signed) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    let built = blocking(move || Ok(walkthrough(&state, &user, l))).await;
    match built {
        Ok(mut data) => {
            let w = words(l, WORDS);
            if let Value::Object(map) = &mut data {
                map.insert("title".into(), w.get("title").cloned().unwrap_or(Value::Null));
                map.insert("w".into(), w);
            }
            Page::render(StatusCode::OK, "onboarding", lang, Some(&signed), "/welcome", data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// Ends the walkthrough ("done" or "skip"): marked, then the workbench.
async fn finish(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    if let Err(refused) = checked_post(posted, &signed, lang) {
        return refused;
    }
    let user = signed.user.clone();
    let marked = blocking(move || {
        mark(&state, &user, "shown_at")
            .and_then(|()| mark(&state, &user, "done_at"))
            .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))
    })
    .await;
    match marked {
        Ok(()) => see_other("/ui"),
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// The "what to do next" box of a record page: the current stage's guidance, its key
/// actions not done yet (required ones, in the order they may be done: those waiting
/// for nothing first) with their guidance, and the exits with the reasons still in
/// their way (`exits` as the record page lists them: `title`, `open`, `reasons`).
pub(crate) fn next_steps(
    l: Lang,
    stage: Option<&Stage>,
    flow: Option<&FlowState>,
    exits: &[Value],
) -> Value {
    let (Some(stage), Some(flow)) = (stage, flow) else {
        return json!({"show": false, "title": "", "guidance": "", "todo": [], "exits": []});
    };
    if flow.outcome.is_some() {
        return json!({"show": false, "title": "", "guidance": "", "todo": [], "exits": []});
    }
    let pending: Vec<_> = stage
        .actions
        .iter()
        .filter(|action| !action.optional && !flow.actions.contains_key(&action.id))
        .collect();
    let ready = |action: &&stagecraft_model::Action| {
        action.after.iter().all(|before| flow.actions.contains_key(before))
    };
    let todo: Vec<Value> = pending
        .iter()
        .filter(|action| ready(action))
        .chain(pending.iter().filter(|action| !ready(action)))
        .map(|action| {
            json!({
                "title": l.text(&action.title),
                "guidance": action.guidance.as_ref().map(|text| l.text(text)).unwrap_or_default(),
                "ready": ready(action),
            })
        })
        .collect();
    let exits: Vec<Value> = exits
        .iter()
        .map(|exit| {
            json!({
                "title": exit.get("title").cloned().unwrap_or_default(),
                "open": exit.get("open").cloned().unwrap_or(json!(false)),
                "reasons": exit.get("reasons").cloned().unwrap_or(json!([])),
            })
        })
        .collect();
    json!({
        "show": true,
        "title": l.pick("下一步做什么", "What to do next"),
        "guidance": stage.guidance.as_ref().map(|text| l.text(text)).unwrap_or_default(),
        "todo_title": l.pick("还需完成", "Still to do"),
        "todo": todo,
        "waiting": l.pick("（需先完成前面的动作）", " (after the ones above)"),
        "exits_title": l.pick("进入下一阶段", "Moving on"),
        "open_word": l.pick("条件已满足，可以推进", "all conditions met; you can move on"),
        "exits": exits,
    })
}

#[cfg(test)]
mod tests {
    use super::WORDS;

    #[test]
    fn every_word_has_both_languages_once() {
        let mut keys: Vec<&str> = WORDS.iter().map(|(key, _, _)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), WORDS.len(), "a key is listed twice");
        assert!(WORDS.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
    }
}
