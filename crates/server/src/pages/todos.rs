//! `GET /todos`: every open task of the signed-in person (theirs and their roles'
//! queues), across flows, overdue first, each with its SLA clock (read from the
//! engine's clock, so a manual clock moves it too), the record it is about and one
//! link to where it is done: the form that completes it, pre-filled to link back, or
//! the record's approval.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Record, Task, TaskKind};

use super::fields::{self, local_time};
use super::home::{form_title, record_title, stage_title};
use super::i18n::words;
use super::{Lang, Page, PageLang, Signed, blocking};
use crate::api::records::{Access, visible};
use crate::api::tasks::open_tasks;
use crate::state::AppState;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "我的待办", "My to-dos"),
    (
        "intro",
        "所有流程中分配给您或您所在角色的待办事项，已超时的排在最前。",
        "Everything assigned to you or to a role you hold, across flows; overdue first.",
    ),
    ("overdue", "已超时", "Overdue"),
    ("no_due", "无截止时间", "No deadline"),
    ("about", "关于", "About"),
    ("count", "项待办", "open tasks"),
    ("kind_action", "关键动作", "Key action"),
    ("kind_approval", "审批", "Approval"),
    ("kind_audit", "事后审查", "Audit"),
    ("kind_stage", "任务", "Task"),
    ("kind_alert", "预警", "Alert"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/todos", get(list))
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A span of time in its two largest units: `1 天 3 小时`, `2 h 15 min`, `5 min`.
pub(crate) fn span(l: Lang, ms: i64) -> String {
    let ms = ms.abs();
    let (days, hours, minutes) = (ms / DAY_MS, ms % DAY_MS / HOUR_MS, ms % HOUR_MS / MINUTE_MS);
    let unit = |n: i64, zh: &str, one: &str, many: &str| match l {
        Lang::Zh => format!("{n} {zh}"),
        Lang::En => format!("{n} {}", if n == 1 { one } else { many }),
    };
    let parts: Vec<String> = if days > 0 {
        let mut parts = vec![unit(days, "天", "day", "days")];
        if hours > 0 {
            parts.push(unit(hours, "小时", "h", "h"));
        }
        parts
    } else if hours > 0 {
        let mut parts = vec![unit(hours, "小时", "h", "h")];
        if minutes > 0 {
            parts.push(unit(minutes, "分钟", "min", "min"));
        }
        parts
    } else {
        vec![unit(minutes.max(1), "分钟", "min", "min")]
    };
    parts.join(" ")
}

/// The SLA clock of a deadline seen at `now`: `overdue by …` or `due in …`.
pub(crate) fn sla_clock(l: Lang, due: i64, now: i64) -> (bool, String) {
    if due < now {
        (true, format!("{}{}", l.pick("已超时 ", "overdue by "), span(l, now - due)))
    } else {
        (false, format!("{}{}", l.pick("剩余 ", "due in "), span(l, due - now)))
    }
}

/// A person's name, else the id.
pub(crate) fn person_name(state: &AppState, user: &str) -> String {
    state.with_org(|org| {
        org.user(user).map(|person| person.name.clone()).unwrap_or_else(|| user.to_owned())
    })
}

/// Where a task is done, and how the link reads: a form that completes it (a new
/// record pre-filled to link back to the task's record), else the record's approval,
/// else the record.
fn task_target(
    l: Lang,
    definitions: &Definitions,
    task: &Task,
    record: &Record,
) -> (String, String) {
    let record_href = format!("/ui/records/{}/{}", record.form, record.id);
    if let Some(form) = task.form.as_ref().filter(|form| definitions.forms.contains_key(*form)) {
        let link = definitions
            .forms
            .get(form)
            .and_then(|compiled| fields::link_field_to(&compiled.schema, record.form.as_str()));
        let query = link
            .map(|field| {
                format!(
                    "?{}={}",
                    super::encode_component(&field),
                    super::encode_component(&record.id)
                )
            })
            .unwrap_or_default();
        return (
            format!("/ui/records/{form}/new{query}"),
            format!("{}{}", l.pick("填写", "Fill in "), form_title(definitions, form.as_str(), l)),
        );
    }
    match &task.kind {
        TaskKind::Approval { approval } | TaskKind::Audit { approval } => {
            (format!("{record_href}#approval-{approval}"), l.pick("去审批", "Decide").to_owned())
        }
        TaskKind::Action { .. } => {
            (format!("{record_href}#actions"), l.pick("去完成", "Do it").to_owned())
        }
        TaskKind::Stage | TaskKind::Alert { .. } => {
            (record_href, l.pick("查看记录", "Open the record").to_owned())
        }
    }
}

fn kind_word(kind: &TaskKind) -> &'static str {
    match kind {
        TaskKind::Action { .. } => "kind_action",
        TaskKind::Approval { .. } => "kind_approval",
        TaskKind::Audit { .. } => "kind_audit",
        TaskKind::Stage => "kind_stage",
        TaskKind::Alert { .. } => "kind_alert",
    }
}

/// The to-do list, overdue first, then by deadline, then those without one. Blocking.
fn todo_list(state: &AppState, user: &str, l: Lang) -> Result<Vec<Value>, super::PageError> {
    let definitions = state.engine().definitions();
    let now = state.engine().now();
    let w = words(l, WORDS);
    let mut stored = open_tasks(state, user)?;
    // Open tasks come soonest first; the same order puts the overdue ones first.
    stored.sort_by_key(|task| (task.due_ms.is_none(), task.due_ms));
    let mut seen = std::collections::BTreeSet::new();
    let mut items = Vec::new();
    for stored in stored {
        // A task in the person's own queue and a role's queue is listed once.
        if !seen.insert(stored.id.clone()) {
            continue;
        }
        let Ok(task) = serde_json::from_value::<Task>(stored.data.clone()) else { continue };
        let record = state.engine().record(&task.record).ok().flatten().and_then(|record| {
            visible(state, user, record.form.as_str(), &record.id, Access::Read).ok()
        });
        let (overdue, clock) = match stored.due_ms {
            Some(due) => sla_clock(l, due, now),
            None => (false, String::new()),
        };
        let (href, action, about, stage) = match &record {
            Some(record) => {
                let (href, action) = task_target(l, &definitions, &task, record);
                let about = format!(
                    "{}：{}",
                    form_title(&definitions, record.form.as_str(), l),
                    record_title(&definitions, record)
                );
                (href, action, about, stage_title(&definitions, record, l))
            }
            None => (String::new(), String::new(), task.record.clone(), String::new()),
        };
        items.push(json!({
            "id": stored.id.to_string(),
            "title": l.text(&task.title),
            "kind": w.get(kind_word(&task.kind)).cloned().unwrap_or(Value::Null),
            "overdue": overdue,
            "clock": clock,
            "due": stored.due_ms.map(local_time).unwrap_or_default(),
            "href": href,
            "action": action,
            "about": about,
            "record_href": record.as_ref().map(|record| format!("/ui/records/{}/{}", record.form, record.id)).unwrap_or_default(),
            "stage": stage,
        }));
    }
    Ok(items)
}

async fn list(State(state): State<AppState>, lang: PageLang, signed: Signed) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    let built = blocking(move || todo_list(&state, &user, l)).await;
    match built {
        Ok(items) => {
            let w = words(l, WORDS);
            let data = json!({
                "title": w.get("title").cloned().unwrap_or(Value::Null),
                "w": w,
                "count": items.len(),
                "items": items,
            });
            Page::render(StatusCode::OK, "todos", lang, Some(&signed), "/todos", data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_in_their_two_largest_units() {
        let now = 10 * DAY_MS;
        assert_eq!(
            sla_clock(Lang::En, now - 2 * HOUR_MS - 15 * MINUTE_MS, now),
            (true, "overdue by 2 h 15 min".to_owned())
        );
        assert_eq!(
            sla_clock(Lang::En, now + DAY_MS + 3 * HOUR_MS + 5 * MINUTE_MS, now),
            (false, "due in 1 day 3 h".to_owned())
        );
        assert_eq!(sla_clock(Lang::Zh, now + 30 * 1000, now).1, "剩余 1 分钟");
        assert_eq!(sla_clock(Lang::Zh, now - 3 * DAY_MS, now).1, "已超时 3 天");
    }

    #[test]
    fn every_word_has_both_languages_once() {
        let mut keys: Vec<&str> = WORDS.iter().map(|(key, _, _)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), WORDS.len(), "a key is listed twice");
        assert!(WORDS.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
    }
}
