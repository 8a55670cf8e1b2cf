//! Scheduled reports (R21): at each tick of a report's cron schedule, its figures are
//! computed from the records of its flow and written to the outbox, together with the
//! time of the run, in one commit — so each tick makes one report, also across
//! restarts (a tick missed while the server was down runs once after it). The worker
//! then delivers it like any notification: in the inbox and as HTML e-mail, the
//! figures as a table under the template's text.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use serde_json::{Map, Value, json};
use stagecraft_engine::Engine;
use stagecraft_model::{Party, Report};
use stagecraft_runtime::{Directory, Org};
use stagecraft_store::{Commit, Page, RecordId, RecordWrite};

use crate::render::escape_html;
use crate::worker::NotifyError;

/// The internal record holding when each report last ran.
const LAST_RUNS: &str = "_notify/reports";

/// A record counts as stalled after this long in one stage.
const STALLED_AFTER_MS: i64 = 7 * 86_400_000;

/// Writes the reports whose schedule ticked since their last run; returns how many.
pub fn run_due(engine: &Engine) -> Result<usize, NotifyError> {
    let definitions = engine.definitions();
    if definitions.reports.is_empty() {
        return Ok(0);
    }
    let store = engine.store();
    let now = engine.now();
    let stored = store.record(&RecordId::new(LAST_RUNS))?;
    let mut last: Map<String, Value> =
        stored.as_ref().and_then(|s| s.value.as_object().cloned()).unwrap_or_default();
    let mut commit = Commit::at(now);
    let mut written = 0;
    for report in &definitions.reports {
        let Ok(schedule) = stagecraft_pack::parse_schedule(&report.schedule) else { continue };
        let offset = report
            .calendar
            .as_ref()
            .and_then(|id| definitions.calendars.get(id))
            .map_or(8 * 60, |calendar| calendar.utc_offset_minutes);
        let Some(zone) = chrono::FixedOffset::east_opt(offset * 60) else { continue };
        let Some(since) = last.get(report.id.as_str()).and_then(Value::as_i64) else {
            // First start: count from now, without a backlog.
            last.insert(report.id.to_string(), json!(now));
            continue;
        };
        let Some(start) = chrono::DateTime::from_timestamp_millis(since) else { continue };
        let ticked = schedule
            .after(&start.with_timezone(&zone))
            .next()
            .is_some_and(|tick| tick.timestamp_millis() <= now);
        if !ticked {
            continue;
        }
        last.insert(report.id.to_string(), json!(now));
        let to = {
            let org = engine.org();
            let org = org.read().unwrap_or_else(PoisonError::into_inner);
            receivers(&org, &report.to)
        };
        let figures = figures(engine, report, now)?;
        commit.outbox.push(json!({
            "record": null,
            "to": to,
            "template": report.template,
            "channels": ["inbox", "email"],
            "cause": format!("report:{}", report.id),
            "report": figures,
            "at": now,
        }));
        written += 1;
    }
    let value = Value::Object(last);
    if stored.as_ref().map(|s| &s.value) != Some(&value) {
        commit.records.push(match stored {
            Some(stored) => RecordWrite::update(LAST_RUNS, "_notify", stored.version, value),
            None => RecordWrite::create(LAST_RUNS, "_notify", value),
        });
        match store.commit(commit) {
            Ok(_) => {}
            // Someone else ran them meanwhile.
            Err(stagecraft_store::StoreError::Conflict { .. }) => return Ok(0),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(written)
}

/// The users a report goes to: named users, role holders and department heads (a
/// report is about no record, so parties that read a record's fields name nobody).
fn receivers(org: &Directory, parties: &[Party]) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    for party in parties {
        let found = match party {
            Party::User(id) => vec![id.to_string()],
            Party::Role(role) => org.role_members(role.as_str()),
            Party::HeadOf(department) => org.head(department.as_str()).into_iter().collect(),
            _ => Vec::new(),
        };
        for user in found {
            if !users.contains(&user) {
                users.push(user);
            }
        }
    }
    users
}

/// The figures of a report: records of its flow by stage (count and amount), new,
/// won and lost in the period, stalled records (over 7 days in one stage), overdue
/// tasks, and the largest new records.
pub fn figures(engine: &Engine, report: &Report, now: i64) -> Result<Value, NotifyError> {
    let definitions = engine.definitions();
    let period_ms = report
        .period
        .as_ref()
        .and_then(|p| p.minutes())
        .map_or(7 * 86_400_000, |minutes| minutes as i64 * 60_000);
    let since = now - period_ms;
    let flow = report.flow.as_ref().and_then(|id| definitions.flows.get(id));
    let mut by_stage: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let (mut open, mut created, mut won, mut lost, mut stalled, mut overdue) = (0, 0, 0, 0, 0, 0);
    let mut largest: Vec<(f64, String, String)> = Vec::new();
    if let Some(flow) = flow {
        let mut page = Page::first(500);
        loop {
            let ids = engine.store().records_of_form(flow.form.as_str(), page.clone())?;
            for id in &ids {
                let Ok(Some(record)) = engine.record(id.as_str()) else { continue };
                let Some(state) = record.flow.as_ref().filter(|s| s.flow == flow.id) else {
                    continue;
                };
                let amount = record.fields.get("amount").and_then(Value::as_f64).unwrap_or(0.0);
                if record.created_at >= since {
                    created += 1;
                    let name = record
                        .fields
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(&record.id)
                        .to_owned();
                    largest.push((amount, name, record.id.clone()));
                }
                match &state.outcome {
                    Some(outcome) => {
                        if state.stage_entered_at >= since {
                            if outcome.as_str().contains("lost") {
                                lost += 1;
                            } else {
                                won += 1;
                            }
                        }
                    }
                    None => {
                        open += 1;
                        let entry = by_stage.entry(state.stage.to_string()).or_default();
                        entry.0 += 1;
                        entry.1 += amount;
                        if now - state.stage_entered_at > STALLED_AFTER_MS {
                            stalled += 1;
                        }
                    }
                }
                overdue +=
                    record.tasks.values().filter(|t| t.due.is_some_and(|due| due < now)).count();
            }
            match ids.last() {
                Some(last) if ids.len() == page.limit => {
                    page = Page::after(last.clone(), page.limit)
                }
                _ => break,
            }
        }
    }
    largest.sort_by(|a, b| b.0.total_cmp(&a.0));
    largest.truncate(5);
    let stages: Vec<Value> = flow
        .map(|flow| {
            flow.stages
                .iter()
                .filter_map(|stage| {
                    let (count, amount) = by_stage.get(stage.id.as_str())?;
                    Some(json!({
                        "stage": stage.id,
                        "title": {"zh-CN": stage.title.get("zh-CN"), "en": stage.title.get("en")},
                        "count": count,
                        "amount": amount,
                    }))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "id": report.id,
        "title": {"zh-CN": report.title.get("zh-CN"), "en": report.title.get("en")},
        "since": since,
        "until": now,
        "open": open,
        "by_stage": stages,
        "created": created,
        "won": won,
        "lost": lost,
        "stalled": stalled,
        "overdue_tasks": overdue,
        "largest_new": largest.iter().map(|(amount, name, id)| json!({"id": id, "name": name, "amount": amount})).collect::<Vec<_>>(),
    }))
}

/// Adds the figures as an HTML table before the end of the e-mail's body. Every
/// value is escaped.
pub fn append_figures(html: &str, report: &Value, locale: &str) -> String {
    let en = locale == "en";
    let label = |zh: &str, english: &str| if en { english.to_owned() } else { zh.to_owned() };
    let number = |key: &str| report.get(key).and_then(Value::as_i64).unwrap_or(0);
    let mut table = String::from(
        "<table style=\"border-collapse: collapse\" border=\"1\" cellpadding=\"4\">\n",
    );
    table.push_str(&format!(
        "<tr><th>{}</th><th>{}</th><th>{}</th></tr>\n",
        label("阶段", "Stage"),
        label("数量", "Count"),
        label("金额（元）", "Amount (CNY)")
    ));
    for stage in report.get("by_stage").and_then(Value::as_array).into_iter().flatten() {
        let title = stage
            .get("title")
            .and_then(|t| t.get(if en { "en" } else { "zh-CN" }))
            .and_then(Value::as_str)
            .unwrap_or_default();
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td></tr>\n",
            escape_html(title),
            stage.get("count").and_then(Value::as_i64).unwrap_or(0),
            stage.get("amount").and_then(Value::as_f64).unwrap_or(0.0)
        ));
    }
    table.push_str("</table>\n<ul>\n");
    for (zh, english, key) in [
        ("进行中", "Open", "open"),
        ("本期新增", "New in the period", "created"),
        ("本期赢单", "Won in the period", "won"),
        ("本期丢单", "Lost in the period", "lost"),
        ("停滞超过 7 天", "Stalled over 7 days", "stalled"),
        ("逾期待办", "Overdue tasks", "overdue_tasks"),
    ] {
        table.push_str(&format!("<li>{}：{}</li>\n", label(zh, english), number(key)));
    }
    table.push_str("</ul>\n");
    let largest: Vec<&Value> =
        report.get("largest_new").and_then(Value::as_array).into_iter().flatten().collect();
    if !largest.is_empty() {
        table.push_str(&format!(
            "<p>{}</p>\n<ol>\n",
            label("本期新增金额最大的记录", "Largest new records")
        ));
        for item in largest {
            table.push_str(&format!(
                "<li>{} — {:.0}</li>\n",
                escape_html(item.get("name").and_then(Value::as_str).unwrap_or_default()),
                item.get("amount").and_then(Value::as_f64).unwrap_or(0.0)
            ));
        }
        table.push_str("</ol>\n");
    }
    match html.rfind("</body>") {
        Some(at) => format!("{}{}{}", &html[..at], table, &html[at..]),
        None => format!("{html}{table}"),
    }
}
