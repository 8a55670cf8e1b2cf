//! `GET /audit[?from=&to=]`: the process-health audit (流程审计, R18) for managers and
//! roles that see every record: signs that people go around the process (records
//! entered after the fact, stages skipped by administrators, approvals overridden,
//! records pushed through several stages within minutes) and rigid stages where most
//! records stall, each finding linked to its record, with the thresholds the packs
//! declare (`audit:` of each flow). Every table downloads as CSV
//! (`/audit/<table>.csv?from=&to=`, UTF-8 with a byte order mark).
//!
//! `GET /dashboard/adoption`: system use per person and ISO week (entry rate, stage
//! updates in time, data completeness, weekly compliance), the points ledger and the
//! month's 透明度之星 (R10, R11), from the flows' `adoption:` blocks. A person sees their
//! own rows, a manager their team's, a `sees: all` role everyone's; the star is the
//! whole company's.
//!
//! A manager's team is the people who report to them (directly or through others) and
//! the members of the departments they head; the audit covers their records only.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Datelike, Duration as Span, NaiveDate};
use serde_json::{Value, json};
use stagecraft_insights::adoption::{self, Count, FlowRules};
use stagecraft_insights::audit::{self, OverrideKind, People, Period, Thresholds};
use stagecraft_insights::csv::Table;
use stagecraft_insights::dataset::{Dataset, Filter, History};
use stagecraft_model::{Id, RoleSees};
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Directory, Org};

use super::fields::{china, local_time};
use super::i18n::words;
use super::{Lang, Page, PageError, PageLang, Signed, blocking, encode_component, query_pairs};
use crate::state::AppState;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "流程审计", "Process-health audit"),
    (
        "intro",
        "找出绕过流程的迹象（事后补录、管理员跳过阶段、推翻审批、几分钟内连推多个阶段）和僵化的环节（多数记录停滞的阶段）。阈值由流程包声明。",
        "Signs that people go around the process (data entered after the fact, stages skipped by administrators, approvals overridden, records pushed through several stages within minutes) and rigid steps (stages where most records stall). The packs declare the thresholds.",
    ),
    ("from", "开始日期", "From"),
    ("to", "结束日期", "To"),
    ("show", "查看", "Show"),
    ("csv", "下载 CSV", "Download CSV"),
    ("none", "本期间没有发现。", "Nothing found in this period."),
    ("scope_all", "您可以查看全公司的记录。", "You see every record."),
    ("scope_team", "您看到的是本人及团队成员的记录。", "You see your own and your team's records."),
    ("adoption_link", "系统使用与积分", "System use and points"),
    ("audit_link", "流程审计", "Process-health audit"),
    ("thresholds", "审计阈值", "Thresholds"),
    (
        "thresholds_help",
        "各流程的 audit 块声明的阈值（未声明的用默认值）。",
        "The thresholds each flow's audit block declares (defaults where it declares none).",
    ),
    ("late", "事后补录", "Entered after the fact"),
    (
        "late_help",
        "创建时间比实际发生时间晚超过阈值的记录（导入的记录不计）。",
        "Records created longer after the real event than the threshold allows (imported records are not counted).",
    ),
    ("skips", "管理员跳过阶段", "Stages skipped by administrators"),
    (
        "skips_help",
        "管理员角色替他人推进记录并越过未经历的阶段。",
        "An administrator moved someone else's record past stages it never went through.",
    ),
    ("overrides", "审批被推翻", "Approvals overridden"),
    (
        "overrides_help",
        "由非审批人作出的决定，或审批被驳回后未重新通过就推进。",
        "Decisions by someone the approval was not asked of, or moves on after a rejection without a new approval.",
    ),
    ("rushes", "几分钟内连推多个阶段", "Pushed through within minutes"),
    (
        "rushes_help",
        "短时间内被连续推进多个阶段的记录。",
        "Records moved through several stages in a short time.",
    ),
    ("stages", "僵化环节", "Rigid steps"),
    (
        "stages_help",
        "期内进入各阶段的记录中停滞的比例（停滞预警、SLA 超时或停留超过窗口）；超过阈值标为僵化。",
        "Of the records that entered each stage in the period, the share that stalled (a stall alert, an SLA breach or a stay beyond the window); above the threshold the stage is rigid.",
    ),
    ("flow", "流程", "Flow"),
    ("record", "记录", "Record"),
    ("owner", "负责人", "Owner"),
    ("created_by", "录入人", "Entered by"),
    ("created_at", "录入时间", "Entered at"),
    ("days_late", "晚录天数", "Days late"),
    ("by", "操作人", "By"),
    ("from_stage", "原阶段", "From stage"),
    ("to_stage", "目标阶段", "To stage"),
    ("skipped", "被跳过的阶段", "Stages skipped"),
    ("at", "时间", "At"),
    ("approval", "审批", "Approval"),
    ("kind", "情形", "What happened"),
    ("not_an_approver", "非审批人作出决定", "Decided by someone not asked"),
    ("moved_after_rejection", "驳回后未重新审批即推进", "Moved on after a rejection"),
    ("moves", "经过的阶段", "Stages entered"),
    ("minutes", "用时（分钟）", "Minutes"),
    ("stage", "阶段", "Stage"),
    ("entered", "进入记录数", "Records entered"),
    ("stalled", "停滞记录数", "Records stalled"),
    ("share", "停滞比例", "Share stalled"),
    ("rigid", "僵化", "Rigid"),
    ("stalled_records", "停滞的记录", "Stalled records"),
    ("yes", "是", "yes"),
    ("no", "否", "no"),
    ("late_entry", "事后补录阈值（天）", "Late after (days)"),
    ("rush", "连推判定", "Rush"),
    ("stall_alerts", "停滞预警", "Stall alerts"),
    ("stall_after", "停滞窗口（天）", "Stall window (days)"),
    ("rigid_share", "僵化比例", "Rigid above"),
    ("rigid_min", "最少记录数", "Fewest records"),
    ("rush_value", "{n} 次推进 / {m} 分钟内", "{n} moves within {m} minutes"),
    (
        "refused",
        "流程审计仅供经理和可查看全部记录的角色使用。",
        "The process-health audit is for managers and roles that see every record.",
    ),
];

/// The adoption page's words.
const ADOPTION_WORDS: &[(&str, &str, &str)] = &[
    ("title", "系统使用与积分", "System use and points"),
    (
        "intro",
        "按人按周统计：商机按时录入率、阶段按时更新率、数据完整度和周达标；连续两周达标得积分；每月数据最完整的人当选“透明度之星”。规则由流程包的 adoption 声明。",
        "Per person and week: records entered in time, stage updates in time, data completeness and weekly compliance; two compliant weeks in a row earn points; each month the person with the most complete data is the transparency star. The packs' adoption blocks set the rules.",
    ),
    ("star", "本月透明度之星", "This month's transparency star"),
    ("last_star", "上月透明度之星", "Last month's transparency star"),
    ("no_star", "暂无。", "Not yet."),
    ("completeness", "数据完整度", "Completeness"),
    ("weeks", "每周达标情况（最近 8 周）", "Weekly compliance (last 8 weeks)"),
    ("person", "人员", "Person"),
    ("week", "周", "Week"),
    ("flow", "流程", "Flow"),
    ("entries", "按时录入", "Entered in time"),
    ("updates", "按时更新", "Updated in time"),
    ("compliant", "本周达标", "Compliant"),
    ("yes", "是", "yes"),
    ("no", "否", "no"),
    ("ongoing", "进行中", "in progress"),
    ("nothing", "—", "—"),
    ("ledger", "积分明细", "Points ledger"),
    ("points", "积分", "Points"),
    ("why", "依据（连续两周达标）", "Why (two compliant weeks in a row)"),
    ("totals", "积分合计", "Points in total"),
    ("none", "暂无记录。", "Nothing yet."),
    ("scope_own", "您看到的是本人的数据。", "You see your own figures."),
    ("scope_team", "您看到的是本人及团队成员的数据。", "You see your own and your team's figures."),
    ("scope_all", "您可以查看全公司的数据。", "You see everyone's figures."),
    ("rules", "达标规则", "Rules"),
    (
        "rule_text",
        "{flow}：录入时限 {enter} 天，阶段更新时限 {update} 天；达标要求按时录入 ≥ {entry}、按时更新 ≥ {timely}、完整度 ≥ {complete}；连续两周达标得 {points} 分。",
        "{flow}: entered within {enter} days, stages updated within {update} days; compliant with ≥ {entry} entered in time, ≥ {timely} updated in time and ≥ {complete} complete; two compliant weeks in a row earn {points} points.",
    ),
    (
        "rule_text_any_entry",
        "{flow}：不检查录入时限，阶段更新时限 {update} 天；达标要求按时更新 ≥ {timely}、完整度 ≥ {complete}；连续两周达标得 {points} 分。",
        "{flow}: no entry deadline, stages updated within {update} days; compliant with ≥ {timely} updated in time and ≥ {complete} complete; two compliant weeks in a row earn {points} points.",
    ),
    ("audit_link", "流程审计", "Process-health audit"),
];

/// The audit tables, in page order.
const TABLES: &[&str] = &["thresholds", "late", "skips", "overrides", "rushes", "stages"];
/// The days the audit covers unless asked otherwise.
const DEFAULT_DAYS: i64 = 90;
/// The weeks the adoption page shows.
const SHOWN_WEEKS: i64 = 8;
const DAY_MS: i64 = 24 * 3600 * 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(page))
        .route("/audit/{file}", get(download))
        .route("/dashboard/adoption", get(adoption_page))
}

// ----- who sees what ------------------------------------------------------------------

/// Whose records a person may audit or see figures of.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    /// Everyone's (a role that sees every record).
    All,
    /// Their own and their team's (a manager or department head).
    Team(BTreeSet<String>),
    /// Their own only.
    Own(String),
}

/// Whether `user` may read the audit (a manager, a department head or a role that
/// sees everything): the menu offers it only to them.
pub(crate) fn may_audit(state: &AppState, user: &str) -> bool {
    let definitions = state.engine().definitions();
    state.with_org(|org| !matches!(Scope::of(&definitions, org, user), Scope::Own(_)))
}

impl Scope {
    fn of(definitions: &Definitions, org: &Directory, user: &str) -> Scope {
        let sees_all = org.roles_of(user).iter().any(|role| {
            definitions
                .roles
                .get(&Id::from(role.as_str()))
                .is_some_and(|declared| declared.sees == Some(RoleSees::All))
        });
        if sees_all {
            return Scope::All;
        }
        let mut team: BTreeSet<String> = org.reports_of(user).into_iter().collect();
        team.extend(members_of_departments_headed(org, user));
        team.remove(user);
        if team.is_empty() {
            return Scope::Own(user.to_owned());
        }
        team.insert(user.to_owned());
        Scope::Team(team)
    }

    /// The people whose records count (`None`: everyone).
    fn owners(&self) -> Option<BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Team(team) => Some(team.clone()),
            Scope::Own(user) => Some(BTreeSet::from([user.clone()])),
        }
    }

    fn includes(&self, person: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Team(team) => team.contains(person),
            Scope::Own(user) => user == person,
        }
    }
}

/// The members of the departments `user` heads, with their sub-departments.
fn members_of_departments_headed(org: &Directory, user: &str) -> BTreeSet<String> {
    let mut departments: BTreeSet<String> = org
        .departments()
        .filter(|department| department.head.as_ref().is_some_and(|head| head.as_str() == user))
        .map(|department| department.id.to_string())
        .collect();
    // Add sub-departments until nothing changes (bounded by the number of departments).
    for _ in 0..=org.departments().count() {
        let before = departments.len();
        let children: Vec<String> = org
            .departments()
            .filter(|department| {
                department
                    .parent
                    .as_ref()
                    .is_some_and(|parent| departments.contains(parent.as_str()))
            })
            .map(|department| department.id.to_string())
            .collect();
        departments.extend(children);
        if departments.len() == before {
            break;
        }
    }
    org.users()
        .filter(|person| {
            person.department.as_ref().is_some_and(|id| departments.contains(id.as_str()))
        })
        .map(|person| person.id.to_string())
        .collect()
}

/// People's names and roles, from the org.
struct Names {
    names: BTreeMap<String, String>,
}

impl Names {
    fn of(org: &Directory) -> Names {
        Names {
            names: org.users().map(|person| (person.id.to_string(), person.name.clone())).collect(),
        }
    }

    fn name(&self, user: &str) -> String {
        self.names.get(user).cloned().unwrap_or_else(|| user.to_owned())
    }
}

// ----- the audit page -------------------------------------------------------------------

/// The period asked for: dates in China time, `to` included.
#[derive(Clone, Debug)]
struct Asked {
    from: NaiveDate,
    to: NaiveDate,
}

impl Asked {
    /// Reads `from` and `to` (`YYYY-MM-DD`); the default is the last 90 days.
    fn parse(uri: &Uri, now: i64) -> Result<Asked, PageError> {
        let today = DateTime::from_timestamp_millis(now)
            .map(|at| at.with_timezone(&china()).date_naive())
            .unwrap_or_default();
        let pairs = query_pairs(uri);
        let date = |key: &str, default: NaiveDate| -> Result<NaiveDate, PageError> {
            match pairs.iter().rev().find(|(name, _)| name == key).map(|(_, v)| v.trim()) {
                None | Some("") => Ok(default),
                Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        format!("日期 `{key}={text}` 无法识别：请写成 2026-11-30 的形式"),
                        format!(
                            "the date `{key}={text}` is not understood: write it as 2026-11-30"
                        ),
                    )
                }),
            }
        };
        let to = date("to", today)?;
        let from = date("from", to - Span::days(DEFAULT_DAYS - 1))?;
        if from > to {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!("开始日期 {from} 晚于结束日期 {to}"),
                format!("the start {from} is after the end {to}"),
            ));
        }
        Ok(Asked { from, to })
    }

    fn period(&self, now: i64) -> Period {
        Period { from: day_start(self.from), to: day_start(self.to + Span::days(1)), now }
    }

    fn query(&self) -> String {
        format!("from={}&to={}", self.from, self.to)
    }
}

/// Midnight of a day in China, in milliseconds.
fn day_start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .and_then(|time| time.and_local_timezone(china()).single())
        .map(|time| time.timestamp_millis())
        .unwrap_or_default()
}

/// One cell of a table: a text, maybe a link, maybe more links.
fn cell(text: impl Into<String>) -> Value {
    json!({"text": text.into(), "href": "", "links": []})
}

fn link(text: impl Into<String>, href: String) -> Value {
    json!({"text": text.into(), "href": href, "links": []})
}

fn links(items: Vec<(String, String)>) -> Value {
    let text: Vec<&str> = items.iter().map(|(text, _)| text.as_str()).collect();
    let text = text.join(" ");
    let links: Vec<Value> =
        items.into_iter().map(|(text, href)| json!({"text": text, "href": href})).collect();
    json!({"text": text, "href": "", "links": links})
}

/// A table of the page: its cells for the page and its texts for the CSV file.
struct Section {
    name: &'static str,
    title: String,
    help: String,
    header: Vec<String>,
    rows: Vec<(Vec<Value>, bool)>,
}

impl Section {
    fn to_table(&self) -> Table {
        Table {
            name: self.name.to_owned(),
            title: self.title.clone(),
            header: self.header.clone(),
            rows: self
                .rows
                .iter()
                .map(|(cells, _)| {
                    cells
                        .iter()
                        .map(|cell| cell["text"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .collect(),
        }
    }

    fn to_json(&self, csv: String) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|(cells, flagged)| json!({"cells": cells, "flagged": flagged}))
            .collect();
        json!({
            "name": self.name,
            "title": self.title,
            "help": self.help,
            "header": self.header,
            "rows": rows,
            "count": self.rows.len(),
            "csv": csv,
        })
    }
}

/// What the words and the definitions give every table.
struct Labels<'a> {
    definitions: &'a Definitions,
    names: &'a Names,
    lang: Lang,
    w: Value,
}

impl Labels<'_> {
    fn word(&self, key: &str) -> String {
        self.w[key].as_str().unwrap_or(key).to_owned()
    }

    fn header(&self, keys: &[&str]) -> Vec<String> {
        keys.iter().map(|key| self.word(key)).collect()
    }

    fn flow(&self, flow: &Id) -> String {
        self.definitions
            .flows
            .get(flow)
            .map(|file| self.lang.text(&file.title))
            .unwrap_or_else(|| flow.to_string())
    }

    fn stage(&self, flow: &Id, stage: &Id) -> String {
        self.definitions
            .flows
            .get(flow)
            .and_then(|file| file.stages.iter().find(|s| &s.id == stage))
            .map(|found| self.lang.text(&found.title))
            .unwrap_or_else(|| stage.to_string())
    }

    fn approval(&self, flow: &Id, approval: &str) -> String {
        self.definitions
            .flows
            .get(flow)
            .and_then(|file| {
                file.stages.iter().flat_map(|s| &s.approvals).find(|a| a.id.as_str() == approval)
            })
            .map(|found| self.lang.text(&found.title))
            .unwrap_or_else(|| approval.to_owned())
    }

    fn person(&self, user: Option<&str>) -> String {
        user.map(|user| self.names.name(user)).unwrap_or_default()
    }

    fn yes_no(&self, yes: bool) -> String {
        self.word(if yes { "yes" } else { "no" })
    }
}

/// A record's link cell: its title, to its page.
fn record_cell(definitions: &Definitions, records: &BTreeMap<&str, &History>, id: &str) -> Value {
    let (title, form) = match records.get(id) {
        Some(record) => (history_title(definitions, record), record.form.to_string()),
        None => (id.to_owned(), String::new()),
    };
    link(title, format!("/ui/records/{}/{}", encode_component(&form), encode_component(id)))
}

/// A record's name: its form's title field, else its id.
fn history_title(definitions: &Definitions, record: &History) -> String {
    definitions
        .forms
        .get(&record.form)
        .and_then(|form| form.meta.title_field.as_ref())
        .and_then(|field| record.fields.get(field.as_str()))
        .and_then(|value| match value {
            Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| record.id.clone())
}

fn days(ms: i64) -> String {
    let days = ms as f64 / DAY_MS as f64;
    if (days - days.round()).abs() < 0.01 {
        format!("{}", days.round())
    } else {
        format!("{days:.1}")
    }
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// Every table of the audit.
fn audit_sections(
    labels: &Labels<'_>,
    dataset: &Dataset,
    thresholds: &[Thresholds],
    report: &audit::Report,
) -> Vec<Section> {
    let definitions = labels.definitions;
    let records: BTreeMap<&str, &History> =
        dataset.records.iter().map(|record| (record.id.as_str(), record)).collect();
    let record = |id: &str| record_cell(definitions, &records, id);
    let section = |name: &'static str, header: &[&str], rows: Vec<(Vec<Value>, bool)>| Section {
        name,
        title: labels.word(name),
        help: labels.word(&format!("{name}_help")),
        header: labels.header(header),
        rows,
    };
    let thresholds_rows = thresholds
        .iter()
        .map(|limits| {
            let rush = labels
                .word("rush_value")
                .replace("{n}", &limits.rush_moves.to_string())
                .replace("{m}", &(limits.rush_within_ms / 60_000).to_string());
            let windows: BTreeSet<String> =
                limits.stall_after_ms.values().map(|ms| days(*ms)).collect();
            let alerts: Vec<&str> = limits.stall_alerts.iter().map(String::as_str).collect();
            let cells = vec![
                cell(labels.flow(&limits.flow)),
                cell(days(limits.late_entry_ms)),
                cell(rush),
                cell(alerts.join(", ")),
                cell(windows.into_iter().collect::<Vec<_>>().join(" / ")),
                cell(percent(limits.rigid_share)),
                cell(limits.rigid_min_records.to_string()),
            ];
            (cells, false)
        })
        .collect();
    let late = report
        .late
        .iter()
        .map(|late| {
            let cells = vec![
                record(&late.record.id),
                cell(labels.flow(&late.record.flow)),
                cell(labels.person(late.record.owner.as_deref())),
                cell(labels.person(late.created_by.as_deref())),
                cell(local_time(late.created_at)),
                cell(late.days_late.to_string()),
            ];
            (cells, true)
        })
        .collect();
    let skips = report
        .skips
        .iter()
        .map(|skip| {
            let flow = &skip.record.flow;
            let skipped: Vec<String> = skip.skipped.iter().map(|s| labels.stage(flow, s)).collect();
            let cells = vec![
                record(&skip.record.id),
                cell(labels.flow(flow)),
                cell(labels.person(skip.record.owner.as_deref())),
                cell(labels.person(Some(&skip.by))),
                cell(labels.stage(flow, &skip.from)),
                cell(labels.stage(flow, &skip.to)),
                cell(skipped.join("、")),
                cell(local_time(skip.at)),
            ];
            (cells, true)
        })
        .collect();
    let overrides = report
        .overrides
        .iter()
        .map(|found| {
            let kind = match found.kind {
                OverrideKind::NotAnApprover => "not_an_approver",
                OverrideKind::MovedAfterRejection => "moved_after_rejection",
            };
            let cells = vec![
                record(&found.record.id),
                cell(labels.flow(&found.record.flow)),
                cell(labels.approval(&found.record.flow, &found.approval)),
                cell(labels.word(kind)),
                cell(labels.person(found.by.as_deref())),
                cell(local_time(found.at)),
            ];
            (cells, true)
        })
        .collect();
    let rushes = report
        .rushes
        .iter()
        .map(|rush| {
            let flow = &rush.record.flow;
            let stages: Vec<String> = rush.stages.iter().map(|s| labels.stage(flow, s)).collect();
            let by: Vec<String> = rush.by.iter().map(|user| labels.person(Some(user))).collect();
            let cells = vec![
                record(&rush.record.id),
                cell(labels.flow(flow)),
                cell(by.join("、")),
                cell(stages.join(" → ")),
                cell(rush.minutes.to_string()),
                cell(local_time(rush.at)),
            ];
            (cells, true)
        })
        .collect();
    let stages = report
        .stages
        .iter()
        .map(|row| {
            let stalled: Vec<(String, String)> = row
                .stalled
                .iter()
                .map(|id| {
                    let found = record(id);
                    (
                        found["text"].as_str().unwrap_or(id).to_owned(),
                        found["href"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let cells = vec![
                cell(labels.flow(&row.flow)),
                cell(labels.stage(&row.flow, &row.stage)),
                cell(row.entered.to_string()),
                cell(row.stalled.len().to_string()),
                cell(percent(row.share())),
                cell(labels.yes_no(row.rigid)),
                links(stalled),
            ];
            (cells, row.rigid)
        })
        .collect();
    vec![
        section(
            "thresholds",
            &[
                "flow",
                "late_entry",
                "rush",
                "stall_alerts",
                "stall_after",
                "rigid_share",
                "rigid_min",
            ],
            thresholds_rows,
        ),
        section(
            "late",
            &["record", "flow", "owner", "created_by", "created_at", "days_late"],
            late,
        ),
        section(
            "skips",
            &["record", "flow", "owner", "by", "from_stage", "to_stage", "skipped", "at"],
            skips,
        ),
        section("overrides", &["record", "flow", "approval", "kind", "by", "at"], overrides),
        section("rushes", &["record", "flow", "by", "moves", "minutes", "at"], rushes),
        section(
            "stages",
            &["flow", "stage", "entered", "stalled", "share", "rigid", "stalled_records"],
            stages,
        ),
    ]
}

/// The audit of what `user` may see over the asked period, or why not. Blocking.
fn build_audit(
    state: &AppState,
    user: &str,
    uri: &Uri,
    lang: Lang,
) -> Result<(Asked, Scope, Vec<Section>), PageError> {
    let definitions = state.engine().definitions();
    let now = state.engine().now();
    let asked = Asked::parse(uri, now)?;
    let (scope, names, people) = state.with_org(|org| {
        let scope = Scope::of(&definitions, org, user);
        let mut people = People::with_roles_of(&definitions);
        for person in org.users() {
            people.roles.insert(person.id.to_string(), person.roles.iter().cloned().collect());
        }
        (scope, Names::of(org), people)
    });
    if matches!(scope, Scope::Own(_)) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            words(Lang::Zh, WORDS)["refused"].as_str().unwrap_or_default(),
            words(Lang::En, WORDS)["refused"].as_str().unwrap_or_default(),
        ));
    }
    let filter = Filter { owners: scope.owners(), flows: None };
    let dataset = Dataset::load(state.engine().store().as_ref(), &definitions, &filter)
        .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))?;
    let thresholds = Thresholds::from_definitions(&definitions);
    let report = audit::audit(&dataset, &thresholds, &people, asked.period(now));
    let labels = Labels { definitions: &definitions, names: &names, lang, w: words(lang, WORDS) };
    let sections = audit_sections(&labels, &dataset, &thresholds, &report);
    Ok((asked, scope, sections))
}

async fn page(State(state): State<AppState>, lang: PageLang, signed: Signed, uri: Uri) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    let built = blocking(move || build_audit(&state, &user, &uri, l)).await;
    let (asked, scope, sections) = match built {
        Ok(built) => built,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    let w = words(l, WORDS);
    let query = asked.query();
    let sections: Vec<Value> = sections
        .iter()
        .map(|section| section.to_json(format!("/audit/{}.csv?{query}", section.name)))
        .collect();
    let scope = match scope {
        Scope::All => &w["scope_all"],
        _ => &w["scope_team"],
    }
    .clone();
    let data = json!({
        "title": w["title"],
        "w": w,
        "from": asked.from.to_string(),
        "to": asked.to.to_string(),
        "scope": scope,
        "sections": sections,
    });
    Page::render(StatusCode::OK, "audit", lang, Some(&signed), &format!("/audit?{query}"), data)
        .into_response()
}

/// `GET /audit/<table>.csv?from=&to=`.
async fn download(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(file): Path<String>,
    uri: Uri,
) -> Response {
    let Some(name) = file.strip_suffix(".csv").filter(|name| TABLES.contains(name)) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let l = lang.lang;
    let user = signed.user.clone();
    let built = blocking(move || build_audit(&state, &user, &uri, l)).await;
    let (asked, _, sections) = match built {
        Ok(built) => built,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    let Some(section) = sections.iter().find(|section| section.name == name) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    csv_response(&section.to_table(), &format!("audit-{name}-{}-{}.csv", asked.from, asked.to))
}

/// A CSV file to download.
fn csv_response(table: &Table, file_name: &str) -> Response {
    let mut response = table.to_csv().into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

// ----- the adoption page ------------------------------------------------------------------

/// A share as `3/4（75%）`, or a dash when there was nothing to count.
fn count_text(count: Count, nothing: &str) -> String {
    match count.share() {
        Some(share) => format!("{}/{} ({})", count.hit, count.total, percent(share)),
        None => nothing.to_owned(),
    }
}

/// The adoption page's data for `user`. Blocking.
fn build_adoption(state: &AppState, user: &str, lang: Lang) -> Result<Value, PageError> {
    let definitions = state.engine().definitions();
    let now = state.engine().now();
    let (scope, names) = state.with_org(|org| (Scope::of(&definitions, org, user), Names::of(org)));
    // Everyone's records: the star is chosen among the whole company.
    let dataset = Dataset::load(state.engine().store().as_ref(), &definitions, &Filter::default())
        .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))?;
    let rules = FlowRules::from_definitions(&definitions);
    let measured = adoption::measure(&dataset, &rules, now);
    let w = words(lang, ADOPTION_WORDS);
    let word = |key: &str| w[key].as_str().unwrap_or(key).to_owned();
    let labels = Labels { definitions: &definitions, names: &names, lang, w: w.clone() };
    let since = adoption::week_start(now) - (SHOWN_WEEKS - 1) * 7 * DAY_MS;
    let mut weeks: Vec<&adoption::WeekRow> = measured
        .weeks
        .iter()
        .filter(|row| row.week_start >= since && scope.includes(&row.person))
        .collect();
    weeks.sort_by(|a, b| {
        (b.week_start, &a.person, &a.flow).cmp(&(a.week_start, &b.person, &b.flow))
    });
    let nothing = word("nothing");
    let week_rows: Vec<Value> = weeks
        .iter()
        .map(|row| {
            let compliant = if row.ended { labels.yes_no(row.compliant) } else { word("ongoing") };
            json!({
                "person": names.name(&row.person),
                "week": row.week,
                "flow": labels.flow(&row.flow),
                "entries": count_text(row.entries, &nothing),
                "updates": count_text(row.updates, &nothing),
                "completeness": count_text(row.completeness, &nothing),
                "compliant": compliant,
                "ok": row.ended && row.compliant,
            })
        })
        .collect();
    let ledger: Vec<Value> = measured
        .ledger
        .iter()
        .rev()
        .filter(|entry| scope.includes(&entry.person))
        .map(|entry| {
            json!({
                "person": names.name(&entry.person),
                "week": entry.week,
                "flow": labels.flow(&entry.flow),
                "points": entry.points,
                "why": entry.why,
            })
        })
        .collect();
    let mut totals: BTreeMap<&str, u32> = BTreeMap::new();
    for entry in measured.ledger.iter().filter(|entry| scope.includes(&entry.person)) {
        *totals.entry(entry.person.as_str()).or_default() += entry.points;
    }
    let totals: Vec<Value> = totals
        .into_iter()
        .map(|(person, points)| json!({"person": names.name(person), "points": points}))
        .collect();
    let star = |at: i64| {
        measured.star_of_month(at).map(|star| {
            json!({
                "month": star.month,
                "person": names.name(&star.person),
                "completeness": count_text(star.completeness, &nothing),
            })
        })
    };
    let last_month = month_start(now) - 1;
    let rules_text: Vec<String> = rules
        .iter()
        .map(|rule| {
            let text = if rule.happened_at.is_some() { "rule_text" } else { "rule_text_any_entry" };
            word(text)
                .replace("{flow}", &labels.flow(&rule.flow))
                .replace("{enter}", &days(rule.enter_within_ms))
                .replace("{update}", &days(rule.update_within_ms))
                .replace("{entry}", &percent(rule.entry_target))
                .replace("{timely}", &percent(rule.timeliness_target))
                .replace("{complete}", &percent(rule.completeness_target))
                .replace("{points}", &rule.points.to_string())
        })
        .collect();
    let scope_text = match scope {
        Scope::All => word("scope_all"),
        Scope::Team(_) => word("scope_team"),
        Scope::Own(_) => word("scope_own"),
    };
    Ok(json!({
        "title": word("title"),
        "w": w,
        "scope": scope_text,
        "star": star(now),
        "last_star": star(last_month),
        "weeks": week_rows,
        "ledger": ledger,
        "totals": totals,
        "rules": rules_text,
    }))
}

/// The first moment of the month holding `at`, in China.
fn month_start(at: i64) -> i64 {
    DateTime::from_timestamp_millis(at)
        .map(|time| time.with_timezone(&china()).date_naive())
        .and_then(|day| day.with_day0(0))
        .map(day_start)
        .unwrap_or(at)
}

async fn adoption_page(State(state): State<AppState>, lang: PageLang, signed: Signed) -> Response {
    let l = lang.lang;
    let user = signed.user.clone();
    match blocking(move || build_adoption(&state, &user, l)).await {
        Ok(data) => Page::render(
            StatusCode::OK,
            "adoption",
            lang,
            Some(&signed),
            "/dashboard/adoption",
            data,
        )
        .into_response(),
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{ADOPTION_WORDS, WORDS};

    #[test]
    fn every_word_has_both_languages_once() {
        for table in [WORDS, ADOPTION_WORDS] {
            let mut keys: Vec<&str> = table.iter().map(|(key, _, _)| *key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), table.len(), "a key is listed twice");
            for (key, zh, en) in table {
                assert!(!zh.is_empty() && !en.is_empty(), "{key}");
            }
        }
    }
}
