//! `GET /dashboard[?period=&team=&rep=]`: the performance dashboard (业绩仪表盘). For
//! the period (default: the current quarter) and the people asked, within what the
//! person may see (see `api::insights`): each target's pipeline coverage and
//! attainment, and per flow the stage funnel of the records created in the period,
//! its stage-to-stage conversion week by week, the flow's named conversions, win
//! rates overall and by size, the cycle time, SLA breaches and alerts.
//!
//! Charts are SVG drawn on the server (`/dashboard/charts/<name>.svg?<filters>`,
//! shown as images; no script), and every table downloads as CSV
//! (`/dashboard/<table>.csv?<filters>`, UTF-8 with a byte order mark for Excel).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use stagecraft_insights::csv::Table;
use stagecraft_insights::figures::FlowReport;
use stagecraft_insights::period::Period;
use stagecraft_insights::svg::{self, Bar, Series};
use stagecraft_insights::targets::CoverageRow;

use super::board::format_amount;
use super::i18n::words;
use super::{Lang, Page, PageError, PageLang, Signed, blocking, encode_component};
use crate::api::insights::{
    Dashboard, DashboardQuery, Refusal, dashboard_for, people_seen, utc_offset,
};
use crate::state::AppState;

/// The page's own words.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "业绩仪表盘", "Performance dashboard"),
    ("period", "期间", "Period"),
    ("team", "团队", "Team"),
    ("rep", "人员", "Person"),
    ("everyone", "全部", "Everyone"),
    ("show", "查看", "Show"),
    ("scope_all", "您可以查看全公司的数据。", "You see the whole company's figures."),
    ("scope_some", "您看到的是本人及下属的数据。", "You see your own figures and your team's."),
    ("coverage", "目标覆盖率", "Coverage of targets"),
    ("no_targets", "本期间没有您可查看的目标。", "No targets you may see for this period."),
    ("csv", "下载 CSV", "Download CSV"),
    ("who", "对象", "Who"),
    ("kind", "类型", "Kind"),
    ("kind_user", "个人", "Person"),
    ("kind_department", "部门", "Department"),
    ("flow", "流程", "Flow"),
    ("target", "目标", "Target"),
    ("pipeline", "预计期内成交（未结）", "Open, expected in period"),
    ("coverage_col", "覆盖率", "Coverage"),
    ("achieved", "期内已成交", "Achieved in period"),
    ("attainment", "达成率", "Attainment"),
    ("funnel", "阶段漏斗（期内新进入的记录）", "Stage funnel (records that entered in the period)"),
    ("stage", "阶段", "Stage"),
    ("reached", "到达", "Reached"),
    ("to_next", "转入下一阶段", "On to the next stage"),
    ("weekly", "阶段转化率（按进入周）", "Stage conversion by week of entry"),
    ("week", "周（周一）", "Week (Monday)"),
    ("entered", "新进入", "Entered"),
    (
        "stability",
        "转化稳定性（各周转化率的最低与最高）",
        "Stability (lowest and highest weekly rate)",
    ),
    ("pair", "阶段转化", "Stage to stage"),
    ("weeks", "有数据的周", "Weeks with a rate"),
    ("lowest", "最低", "Lowest"),
    ("highest", "最高", "Highest"),
    ("spread", "波动", "Spread"),
    ("conversions", "转化率", "Conversions"),
    ("conversion", "转化", "Conversion"),
    ("converted", "已转化", "Converted"),
    ("rate", "比率", "Rate"),
    ("wins", "赢单率", "Win rate"),
    ("class", "分类", "Class"),
    ("all", "全部", "All"),
    ("large", "大单（≥ {}）", "Large (≥ {})"),
    ("other", "其他", "Others"),
    ("success", "成功", "Success"),
    ("failure", "失败", "Failure"),
    ("summary", "概况", "Summary"),
    ("measure", "指标", "Measure"),
    ("value", "数值", "Value"),
    ("cohort", "期内新进入", "Entered in period"),
    ("ended", "期内结束", "Ended in period"),
    ("success_amount", "期内成功金额", "Amount of successes in period"),
    ("cycle", "平均周期（天）", "Average cycle (days)"),
    ("cycle_records", "计入周期的记录", "Records in the cycle time"),
    ("breaches", "SLA 超时", "SLA breaches"),
    ("alerts", "预警", "Alerts"),
    ("alert", "预警", "Alert"),
    ("count", "次数", "Count"),
    ("none", "本期间没有。", "None in this period."),
    ("funnel_chart", "阶段漏斗", "Stage funnel"),
    ("weekly_chart", "每周阶段转化率", "Weekly stage conversion"),
    ("more", "更多分析", "More analyses"),
    ("adoption_link", "系统使用与积分", "Adoption and points"),
    ("audit_link", "流程健康审计", "Process-health audit"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/charts/{file}", get(chart))
        .route("/dashboard/{file}", get(download))
}

/// A rate as a percentage, `—` when there is none.
fn percent(rate: Option<f64>) -> String {
    // `+ 0.0` turns a negative zero into zero.
    rate.map(|rate| format!("{:.1}%", rate * 100.0 + 0.0)).unwrap_or_else(|| "—".to_owned())
}

/// The words of the page as a lookup.
struct Words(Value);

impl Words {
    fn new(l: Lang) -> Self {
        Words(words(l, WORDS))
    }

    fn get(&self, key: &str) -> String {
        self.0.get(key).and_then(Value::as_str).unwrap_or(key).to_owned()
    }
}

fn coverage_table(rows: &[CoverageRow], flows: &[FlowReport], w: &Words) -> Table {
    let flow_title = |id: &str| {
        flows.iter().find(|flow| flow.flow == id).map_or_else(|| id.to_owned(), |f| f.title.clone())
    };
    Table {
        name: "coverage".into(),
        title: w.get("coverage"),
        header: [
            "who",
            "kind",
            "flow",
            "target",
            "pipeline",
            "coverage_col",
            "achieved",
            "attainment",
        ]
        .map(|key| w.get(key))
        .to_vec(),
        rows: rows
            .iter()
            .map(|row| {
                vec![
                    row.name.clone(),
                    w.get(&format!("kind_{}", row.kind)),
                    flow_title(&row.flow),
                    format_amount(row.target),
                    format_amount(row.pipeline),
                    percent(row.coverage),
                    format_amount(row.achieved),
                    percent(row.attainment),
                ]
            })
            .collect(),
    }
}

/// The tables of one flow, in the order the page shows them.
fn flow_tables(report: &FlowReport, w: &Words) -> Vec<Table> {
    let id = &report.flow;
    let mut tables = vec![Table {
        name: format!("funnel-{id}"),
        title: w.get("funnel"),
        header: vec![w.get("stage"), w.get("reached"), w.get("to_next")],
        rows: report
            .funnel
            .iter()
            .map(|step| vec![step.title.clone(), step.reached.to_string(), percent(step.to_next)])
            .collect(),
    }];
    let pairs: Vec<String> = report
        .funnel
        .windows(2)
        .map(|pair| format!("{} → {}", pair[0].title, pair[1].title))
        .collect();
    tables.push(Table {
        name: format!("weekly-{id}"),
        title: w.get("weekly"),
        header: [w.get("week"), w.get("entered")].into_iter().chain(pairs).collect(),
        rows: report
            .weekly
            .iter()
            .map(|week| {
                [week.week.clone(), week.entered.to_string()]
                    .into_iter()
                    .chain(week.rates.iter().map(|rate| percent(*rate)))
                    .collect()
            })
            .collect(),
    });
    tables.push(Table {
        name: format!("stability-{id}"),
        title: w.get("stability"),
        header: ["pair", "weeks", "lowest", "highest", "spread"].map(|key| w.get(key)).to_vec(),
        rows: report
            .stability
            .iter()
            .map(|row| {
                vec![
                    row.title.clone(),
                    row.weeks.to_string(),
                    percent(row.lowest),
                    percent(row.highest),
                    percent(row.spread),
                ]
            })
            .collect(),
    });
    if !report.conversions.is_empty() {
        tables.push(Table {
            name: format!("conversions-{id}"),
            title: w.get("conversions"),
            header: ["conversion", "entered", "converted", "rate"].map(|key| w.get(key)).to_vec(),
            rows: report
                .conversions
                .iter()
                .map(|c| {
                    vec![
                        c.title.clone(),
                        c.entered.to_string(),
                        c.converted.to_string(),
                        percent(c.rate),
                    ]
                })
                .collect(),
        });
    }
    let outcomes = &report.outcomes;
    let mut wins = vec![vec![
        w.get("all"),
        outcomes.success.to_string(),
        outcomes.failure.to_string(),
        percent(outcomes.win_rate),
    ]];
    for row in &report.by_size {
        let class = match row.size.as_str() {
            "large" => w.get("large").replace("{}", &format_amount(row.threshold)),
            _ => w.get("other"),
        };
        wins.push(vec![
            class,
            row.success.to_string(),
            row.failure.to_string(),
            percent(row.win_rate),
        ]);
    }
    tables.push(Table {
        name: format!("wins-{id}"),
        title: w.get("wins"),
        header: ["class", "success", "failure", "rate"].map(|key| w.get(key)).to_vec(),
        rows: wins,
    });
    let mut summary = vec![
        vec![w.get("cohort"), report.cohort.to_string()],
        vec![w.get("ended"), outcomes.ended.to_string()],
    ];
    if let Some(amount) = outcomes.success_amount {
        summary.push(vec![w.get("success_amount"), format_amount(amount)]);
    }
    if let Some(cycle) = &report.cycle {
        let days =
            cycle.average_days.map(|days| format!("{days:.1}")).unwrap_or_else(|| "—".into());
        summary.push(vec![w.get("cycle"), days]);
        summary.push(vec![w.get("cycle_records"), cycle.records.to_string()]);
    }
    let total = |counts: &[stagecraft_insights::figures::Count]| {
        counts.iter().map(|count| count.count).sum::<usize>().to_string()
    };
    summary.push(vec![w.get("breaches"), total(&report.breaches)]);
    summary.push(vec![w.get("alerts"), total(&report.alerts)]);
    tables.push(Table {
        name: format!("summary-{id}"),
        title: w.get("summary"),
        header: vec![w.get("measure"), w.get("value")],
        rows: summary,
    });
    for (name, counts, column) in
        [("breaches", &report.breaches, "stage"), ("alerts", &report.alerts, "alert")]
    {
        tables.push(Table {
            name: format!("{name}-{id}"),
            title: w.get(name),
            header: vec![w.get(column), w.get("count")],
            rows: counts
                .iter()
                .map(|count| vec![count.title.clone(), count.count.to_string()])
                .collect(),
        });
    }
    tables
}

/// Every table of a dashboard: coverage first, then each flow's.
fn all_tables(dashboard: &Dashboard, w: &Words) -> Vec<Table> {
    std::iter::once(coverage_table(&dashboard.coverage, &dashboard.flows, w))
        .chain(dashboard.flows.iter().flat_map(|report| flow_tables(report, w)))
        .collect()
}

/// The charts of one flow: the funnel and, when it has weeks, the weekly conversion.
fn flow_chart(report: &FlowReport, kind: &str, w: &Words) -> Option<String> {
    match kind {
        "funnel" => {
            let bars: Vec<Bar> = report
                .funnel
                .iter()
                .map(|step| Bar {
                    label: step.title.clone(),
                    value: step.reached as f64,
                    note: match step.to_next {
                        Some(rate) => format!("{} · → {}", step.reached, percent(Some(rate))),
                        None => step.reached.to_string(),
                    },
                })
                .collect();
            Some(svg::bars(&format!("{} · {}", report.title, w.get("funnel_chart")), &bars))
        }
        "weekly" => {
            let points: Vec<String> = report
                .weekly
                .iter()
                .map(|week| week.week.get(5..).unwrap_or_default().to_owned())
                .collect();
            let series: Vec<Series> = report
                .funnel
                .windows(2)
                .enumerate()
                .map(|(index, pair)| Series {
                    name: format!("{} → {}", pair[0].title, pair[1].title),
                    values: report
                        .weekly
                        .iter()
                        .map(|week| week.rates.get(index).copied().flatten())
                        .collect(),
                })
                .collect();
            Some(svg::lines(
                &format!("{} · {}", report.title, w.get("weekly_chart")),
                &points,
                &series,
            ))
        }
        _ => None,
    }
}

/// The query string that asks for the same figures.
fn filters_query(dashboard: &Dashboard) -> String {
    let mut query = format!("period={}", encode_component(&dashboard.period));
    if let Some(team) = &dashboard.team {
        query.push_str(&format!("&team={}", encode_component(team)));
    }
    if let Some(rep) = &dashboard.rep {
        query.push_str(&format!("&rep={}", encode_component(rep)));
    }
    query
}

/// The choices of the filter form: recent months and quarters, the teams whose
/// people the person may all see, and those people.
fn filter_choices(state: &AppState, user: &str, dashboard: &Dashboard, l: Lang) -> Value {
    let definitions = state.engine().definitions();
    let offset = utc_offset(&definitions);
    let now = state.engine().now();
    // The next month and quarter first (coverage looks ahead), then the current
    // ones and those before.
    let mut periods: Vec<String> = Vec::new();
    for quarters in [false, true] {
        let of = |at: i64| {
            if quarters { Period::quarter_of(at, offset) } else { Period::month_of(at, offset) }
        };
        let Some(current) = of(now) else { continue };
        let mut list: Vec<String> = of(current.end).map(|next| next.label).into_iter().collect();
        let mut period = Some(current);
        for _ in 0..if quarters { 4 } else { 6 } {
            let Some(this) = period else { break };
            period = of(this.start - 1);
            list.push(this.label);
        }
        periods.extend(list);
    }
    if !periods.contains(&dashboard.period) {
        periods.push(dashboard.period.clone());
    }
    let option = |value: &str, label: String, selected: bool| json!({"value": value, "label": label, "selected": selected});
    let (teams, reps) = state.with_org(|org| {
        let people =
            stagecraft_insights::targets::People::build(org.users(), org.departments(), l.code());
        let seen = people_seen(&definitions, org, &people, user);
        let visible = |id: &str| seen.as_ref().is_none_or(|seen| seen.contains(id));
        let teams: Vec<Value> = org
            .departments()
            .filter(|department| {
                people.members.get(department.id.as_str()).is_some_and(|members| {
                    !members.is_empty() && members.iter().all(|member| visible(member))
                })
            })
            .map(|department| {
                let id = department.id.as_str();
                option(id, l.text(&department.title), dashboard.team.as_deref() == Some(id))
            })
            .collect();
        let reps: Vec<Value> = org
            .users()
            .filter(|person| visible(person.id.as_str()))
            .map(|person| {
                let id = person.id.as_str();
                option(id, person.name.clone(), dashboard.rep.as_deref() == Some(id))
            })
            .collect();
        (teams, reps)
    });
    json!({
        "periods": periods
            .iter()
            .map(|label| option(label, label.clone(), *label == dashboard.period))
            .collect::<Vec<_>>(),
        "teams": teams,
        "reps": reps,
    })
}

fn table_json(table: &Table, query: &str, w: &Words) -> Value {
    json!({
        "name": table.name,
        "title": table.title,
        "header": table.header,
        "rows": table.rows,
        "empty": table.rows.is_empty(),
        "csv": format!("/dashboard/{}.csv?{query}", table.name),
        "csv_label": w.get("csv"),
    })
}

fn page_data(state: &AppState, user: &str, dashboard: &Dashboard, l: Lang) -> Value {
    let w = Words::new(l);
    let query = filters_query(dashboard);
    let flows: Vec<Value> = dashboard
        .flows
        .iter()
        .map(|report| {
            let charts: Vec<Value> = ["funnel", "weekly"]
                .iter()
                .map(|kind| {
                    json!({
                        "src": format!("/dashboard/charts/{kind}-{}.svg?{query}", report.flow),
                        "alt": w.get(&format!("{kind}_chart")),
                    })
                })
                .collect();
            json!({
                "id": report.flow,
                "title": report.title,
                "charts": charts,
                "tables": flow_tables(report, &w)
                    .iter()
                    .map(|table| table_json(table, &query, &w))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "title": w.get("title"),
        "w": w.0,
        "period": dashboard.period,
        "first_day": dashboard.first_day,
        "last_day": dashboard.last_day,
        "scope": if dashboard.sees_all { w.get("scope_all") } else { w.get("scope_some") },
        "choices": filter_choices(state, user, dashboard, l),
        "coverage": table_json(&coverage_table(&dashboard.coverage, &dashboard.flows, &w), &query, &w),
        "flows": flows,
    })
}

/// A refusal as a page.
fn refusal_page(refusal: Refusal) -> PageError {
    match refusal {
        Refusal::Bad { zh, en } => PageError::new(StatusCode::BAD_REQUEST, zh, en),
        Refusal::Outside { zh, en } => PageError::new(StatusCode::FORBIDDEN, zh, en),
        Refusal::Failed(problem) => PageError::from_problem(problem),
    }
}

/// The dashboard for the request's filters, or the page that says why not.
async fn dashboard(
    state: &AppState,
    signed: &Signed,
    uri: &Uri,
    l: Lang,
) -> Result<Dashboard, PageError> {
    let asked = DashboardQuery::parse(uri.query(), false).map_err(PageError::from_problem)?;
    let state = state.clone();
    let user = signed.user.clone();
    blocking(move || dashboard_for(&state, &user, &asked, l.code()).map_err(refusal_page)).await
}

async fn page(State(state): State<AppState>, lang: PageLang, signed: Signed, uri: Uri) -> Response {
    let l = lang.lang;
    match dashboard(&state, &signed, &uri, l).await {
        Ok(dashboard) => {
            let switch = format!("/dashboard?{}", filters_query(&dashboard));
            let data = page_data(&state, &signed.user, &dashboard, l);
            Page::render(StatusCode::OK, "dashboard", lang, Some(&signed), &switch, data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// `GET /dashboard/<table>.csv`.
async fn download(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(file): Path<String>,
    uri: Uri,
) -> Response {
    let Some(name) = file.strip_suffix(".csv") else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let l = lang.lang;
    let dashboard = match dashboard(&state, &signed, &uri, l).await {
        Ok(dashboard) => dashboard,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    let w = Words::new(l);
    let Some(table) = all_tables(&dashboard, &w).into_iter().find(|table| table.name == name)
    else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let disposition = format!("attachment; filename=\"{}-{}.csv\"", table.name, dashboard.period);
    let mut response = table.to_csv().into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /dashboard/charts/<kind>-<flow>.svg`.
async fn chart(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(file): Path<String>,
    uri: Uri,
) -> Response {
    let Some((kind, flow)) = file.strip_suffix(".svg").and_then(|name| name.split_once('-')) else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let l = lang.lang;
    let dashboard = match dashboard(&state, &signed, &uri, l).await {
        Ok(dashboard) => dashboard,
        Err(error) => return error.page(lang, Some(&signed)).into_response(),
    };
    let w = Words::new(l);
    let drawn = dashboard
        .flows
        .iter()
        .find(|report| report.flow == flow)
        .and_then(|report| flow_chart(report, kind, &w));
    let Some(svg) = drawn else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let mut response = svg.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn rates_are_percentages() {
        assert_eq!(percent(Some(0.756)), "75.6%");
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(-0.0)), "0.0%");
    }
}
