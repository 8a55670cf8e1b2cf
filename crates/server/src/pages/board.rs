//! `GET /board[?flow=<id>]`: the records of a flow that the person may see, as cards
//! in one column per open stage, with the amount the flow's `measures.amount` names,
//! the days in the stage and warning flags (an alert raised in the stage, a breached
//! SLA, an open alert or audit task), and the exits the person may take, posted to
//! the record page's transition handler (which checks the gates again and comes back
//! here). Closed exits show why. Terminal stages are counts with their records.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use stagecraft_model::FlowFile;
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Record, TaskKind, TimerKind};
use stagecraft_store::{RecordId, TimerId};

use super::home::{form_title, record_title, visible_records};
use super::i18n::words;
use super::todos::person_name;
use super::{Lang, Page, PageError, PageLang, Signed, blocking, encode_component, query_pairs};
use crate::api::records::{Access, visible};
use crate::state::AppState;

/// How many records of a flow the board looks at.
const CARDS: usize = 300;
const DAY_MS: i64 = 86_400_000;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "商机看板", "Pipeline board"),
    ("flows", "流程", "Flows"),
    ("no_flows", "您还没有可查看的流程记录。", "There are no flow records you may see yet."),
    ("owner", "负责人", "Owner"),
    ("days", "天", "days"),
    ("in_stage", "本阶段已", "in stage for"),
    ("count", "条", "records"),
    ("total", "合计", "total"),
    ("sla", "已超时", "SLA breached"),
    ("review", "待审查", "For review"),
    ("ended", "已结束", "Ended"),
    ("empty_column", "暂无", "None"),
    ("overview", "全景", "360° view"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/board", get(board))
}

/// The flows that have stages, people's own first (flows a record starts by being
/// created), in the packs' order otherwise.
fn board_flows(definitions: &Definitions) -> Vec<&FlowFile> {
    let mut flows: Vec<&FlowFile> =
        definitions.flows.values().filter(|flow| !flow.stages.is_empty()).collect();
    flows.sort_by_key(|flow| flow.start_on_create == Some(false));
    flows
}

/// The field that holds a record's amount, as the flow's `measures` names it.
fn amount_field(flow: &FlowFile) -> Option<String> {
    flow.measures.as_ref().and_then(|measures| measures.amount.as_ref()).map(|f| f.0.clone())
}

fn amount_of(record: &Record, field: Option<&str>) -> Option<f64> {
    field.and_then(|field| record.fields.get(field)).and_then(Value::as_f64)
}

/// `1234567.5` as `1,234,567.50`; whole numbers without decimals.
pub(crate) fn format_amount(amount: f64) -> String {
    let negative = amount < 0.0;
    let cents = (amount.abs() * 100.0).round() as u128;
    let (whole, fraction) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if negative { "-" } else { "" };
    if fraction == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{fraction:02}")
    }
}

/// The warning flags of a record in its current stage: each alert raised in it (by
/// its title), a breached SLA, an open alert or audit task.
fn flags(state: &AppState, definitions: &Definitions, record: &Record, l: Lang) -> Vec<Value> {
    let Some(flow) = record.flow.as_ref() else { return Vec::new() };
    let w = words(l, WORDS);
    let word = |key: &str| w.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut out = Vec::new();
    for (alert, mark) in &record.alerts {
        if mark.stage.as_ref() == Some(&flow.stage) && mark.at >= flow.stage_entered_at {
            let title = definitions
                .alerts
                .iter()
                .find(|candidate| &candidate.id == alert)
                .map(|alert| l.text(&alert.title))
                .unwrap_or_else(|| alert.to_string());
            out.push(json!({"class": "stalled", "text": title, "detail": ""}));
        }
    }
    let breached = state
        .engine()
        .store()
        .events_of(&RecordId::new(record.id.clone()))
        .unwrap_or_default()
        .iter()
        .any(|event| {
            event.kind == "sla_breached"
                && event.at_ms >= flow.stage_entered_at
                && event.data.get("stage").and_then(Value::as_str) == Some(flow.stage.as_str())
        });
    if breached || sla_past_due(state, record) {
        out.push(json!({"class": "sla", "text": word("sla"), "detail": ""}));
    }
    let review: Vec<String> = record
        .tasks
        .values()
        .filter(|task| matches!(task.kind, TaskKind::Alert { .. } | TaskKind::Audit { .. }))
        .map(|task| l.text(&task.title))
        .collect();
    if !review.is_empty() {
        out.push(json!({"class": "review", "text": word("review"), "detail": review.join("; ")}));
    }
    out
}

/// Whether an SLA timer of the record's current stage is past due but has not fired
/// yet (between two maintenance rounds).
fn sla_past_due(state: &AppState, record: &Record) -> bool {
    let Some(flow) = record.flow.as_ref() else { return false };
    let now = state.engine().now();
    record.timers.iter().any(|key| {
        let Ok(Some(timer)) = state.engine().store().timer(&TimerId::new(key.clone())) else {
            return false;
        };
        let kind = timer.data.get("timer").cloned().unwrap_or_default();
        timer.due_ms < now
            && matches!(
                serde_json::from_value::<TimerKind>(kind),
                Ok(TimerKind::SlaExpired { stage, .. }) if stage == flow.stage
            )
    })
}

/// The records a card links to (e.g. its customer), those the person may see, with
/// their overview pages.
fn linked(state: &AppState, user: &str, definitions: &Definitions, record: &Record) -> Vec<Value> {
    let Some(form) = definitions.forms.get(&record.form) else { return Vec::new() };
    let mut out = Vec::new();
    for (field, info) in &form.fields {
        let (Some(linked_form), Some(Value::String(id))) =
            (info.link.as_ref(), record.fields.get(field.0.as_str()))
        else {
            continue;
        };
        if let Ok(target) = visible(state, user, linked_form.as_str(), id, Access::Read) {
            out.push(json!({
                "title": record_title(definitions, &target),
                "href": format!("/customers/{}", encode_component(&target.id)),
            }));
        }
    }
    out
}

/// One card. Blocking.
fn card(
    state: &AppState,
    user: &str,
    definitions: &Definitions,
    record: &Record,
    amount: Option<f64>,
    back: &str,
    l: Lang,
) -> Result<Value, PageError> {
    let now = state.engine().now();
    let entered = record.flow.as_ref().map_or(record.created_at, |flow| flow.stage_entered_at);
    let exits: Vec<Value> = state
        .engine()
        .exits(Some(user), record)
        .map_err(|error| PageError::from_problem(error.into()))?
        .into_iter()
        .map(|exit| {
            let reasons: Vec<String> = exit
                .reasons
                .iter()
                .map(|reason| match l {
                    Lang::Zh => reason.message_zh.clone(),
                    Lang::En => reason.message_en.clone(),
                })
                .collect();
            json!({
                "to": exit.to.to_string(),
                "title": l.text(&exit.title),
                "open": reasons.is_empty(),
                "reasons": reasons,
            })
        })
        .collect();
    Ok(json!({
        "id": record.id,
        "title": record_title(definitions, record),
        "href": format!("/ui/records/{}/{}", record.form, record.id),
        "action": format!("/ui/records/{}/{}/transitions", record.form, record.id),
        "back": back,
        "owner": record.owner.as_deref().map(|owner| person_name(state, owner)).unwrap_or_default(),
        "amount": amount.map(format_amount).unwrap_or_default(),
        "days": ((now - entered).max(0) / DAY_MS),
        "flags": flags(state, definitions, record, l),
        "linked": linked(state, user, definitions, record),
        "exits": exits,
    }))
}

/// Everything the board shows. Blocking.
fn board_data(
    state: &AppState,
    user: &str,
    asked: Option<&str>,
    l: Lang,
) -> Result<Value, PageError> {
    let definitions = state.engine().definitions();
    let flows = board_flows(&definitions);
    let records_of = |flow: &FlowFile| -> Vec<Record> {
        visible_records(state, user, flow.form.as_str(), CARDS)
            .0
            .into_iter()
            .filter(|record| record.flow.as_ref().is_some_and(|state| state.flow == flow.id))
            .collect()
    };
    let (flow, records) = match asked {
        Some(asked) => {
            let flow = flows
                .iter()
                .find(|flow| flow.id.as_str() == asked)
                .ok_or_else(PageError::not_found)?;
            (Some(*flow), records_of(flow))
        }
        None => flows
            .iter()
            .map(|flow| (*flow, records_of(flow)))
            .find(|(_, records)| !records.is_empty())
            .map_or((None, Vec::new()), |(flow, records)| (Some(flow), records)),
    };
    let choices: Vec<Value> = flows
        .iter()
        .map(|choice| {
            json!({
                "title": l.text(&choice.title),
                "href": format!("/board?flow={}", encode_component(choice.id.as_str())),
                "current": flow.is_some_and(|flow| flow.id == choice.id),
            })
        })
        .collect();
    let Some(flow) = flow else {
        return Ok(json!({"flows": choices, "has_flow": false, "columns": [], "ended": []}));
    };
    let back = format!("/board?flow={}", encode_component(flow.id.as_str()));
    let field = amount_field(flow);
    let mut columns = Vec::new();
    let mut ended = Vec::new();
    for stage in &flow.stages {
        let here: Vec<&Record> = records
            .iter()
            .filter(|record| record.flow.as_ref().is_some_and(|state| state.stage == stage.id))
            .collect();
        if stage.outcome.is_some() {
            ended.push(json!({
                "title": l.text(&stage.title),
                "count": here.len(),
                "records": here.iter().map(|record| json!({
                    "title": record_title(&definitions, record),
                    "href": format!("/ui/records/{}/{}", record.form, record.id),
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        let mut cards = Vec::new();
        let mut total = 0.0;
        for record in &here {
            let amount = amount_of(record, field.as_deref());
            total += amount.unwrap_or_default();
            cards.push(card(state, user, &definitions, record, amount, &back, l)?);
        }
        columns.push(json!({
            "id": stage.id.to_string(),
            "title": l.text(&stage.title),
            "count": cards.len(),
            "total": if field.is_some() { format_amount(total) } else { String::new() },
            "cards": cards,
        }));
    }
    Ok(json!({
        "flows": choices,
        "has_flow": true,
        "flow_title": l.text(&flow.title),
        "form_title": form_title(&definitions, flow.form.as_str(), l),
        "amount_label": field
            .as_deref()
            .and_then(|field| definitions.forms.get(&flow.form).map(|form| super::fields::field_label(l, &form.schema, field)))
            .unwrap_or_default(),
        "columns": columns,
        "ended": ended,
    }))
}

async fn board(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    uri: Uri,
) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    let asked = query_pairs(&uri).into_iter().find(|(key, _)| key == "flow").map(|(_, v)| v);
    let switch = match &asked {
        Some(flow) => format!("/board?flow={}", encode_component(flow)),
        None => "/board".to_owned(),
    };
    let built = blocking(move || board_data(&state, &user, asked.as_deref(), l)).await;
    match built {
        Ok(mut data) => {
            let w = words(l, WORDS);
            if let Value::Object(map) = &mut data {
                map.insert("title".into(), w.get("title").cloned().unwrap_or(Value::Null));
                map.insert("w".into(), w);
            }
            Page::render(StatusCode::OK, "board", lang, Some(&signed), &switch, data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{WORDS, format_amount};

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(format_amount(1_200_000.0), "1,200,000");
        assert_eq!(format_amount(350.5), "350.50");
        assert_eq!(format_amount(0.0), "0");
        assert_eq!(format_amount(-1234.0), "-1,234");
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
