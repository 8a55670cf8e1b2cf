//! `GET /api/insights`: the dashboard's figures as JSON, for the period, team and
//! person asked, within what the caller may see. The dashboard page (`/dashboard`)
//! computes the same [`Dashboard`] through [`dashboard_for`].
//!
//! Who sees what follows the record rules of `access.rs`: a holder of a `sees: all`
//! role sees everyone's figures; anyone else sees their own and those of the people
//! who report to them or work in a department they head. A team or person outside
//! that is refused (403), never silently widened.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use stagecraft_insights::dataset::{Dataset, Filter};
use stagecraft_insights::figures::{FlowReport, flow_reports};
use stagecraft_insights::period::{DAY_MS, Period, date_text};
use stagecraft_insights::targets::{CoverageRow, People, coverage};
use stagecraft_model::{Id, RoleSees};
use stagecraft_pack::Definitions;
use stagecraft_runtime::{Directory, Org};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, query};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

pub(crate) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router.routes(routes!(insights))
}

/// What the dashboard was asked for.
#[derive(Clone, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DashboardQuery {
    /// A month (`2026-11`), a quarter (`2026-Q4`) or a year (`2026`); default: the
    /// current quarter.
    pub(crate) period: Option<String>,
    /// A department id: only its people (its sub-departments included).
    pub(crate) team: Option<String>,
    /// A user id: only that person.
    pub(crate) rep: Option<String>,
    /// The language of the names: `zh-CN` (default) or `en`.
    pub(crate) lang: Option<String>,
}

impl DashboardQuery {
    /// Reads `period`, `team` and `rep`; empty values count as absent. Other
    /// parameters are refused when `strict`, else ignored (pages carry `lang`).
    pub(crate) fn parse(raw: Option<&str>, strict: bool) -> Result<Self, Problem> {
        let mut asked = DashboardQuery::default();
        for (name, value) in query::pairs(raw)? {
            let value = Some(value.trim().to_owned()).filter(|value| !value.is_empty());
            match name.as_str() {
                "period" => asked.period = value,
                "team" => asked.team = value,
                "rep" => asked.rep = value,
                "lang" => match value.as_deref() {
                    None | Some("zh-CN" | "en") => asked.lang = value,
                    Some(other) if strict => {
                        return Err(Problem::bad_request(format!(
                            "`lang` is `zh-CN` or `en`, not `{other}`"
                        )));
                    }
                    Some(_) => {}
                },
                other if strict => {
                    return Err(Problem::bad_request(format!(
                        "unknown query parameter `{other}`: use `period`, `team`, `rep` or `lang`"
                    )));
                }
                _ => {}
            }
        }
        Ok(asked)
    }
}

/// The figures of one period for the people asked.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Dashboard {
    /// The period (`2026-Q4`).
    pub(crate) period: String,
    /// Its first day (local date of the flows' calendar).
    pub(crate) first_day: String,
    /// Its last day.
    pub(crate) last_day: String,
    /// The team the figures are limited to, if any.
    pub(crate) team: Option<String>,
    /// The person the figures are limited to, if any.
    pub(crate) rep: Option<String>,
    /// Whether the caller sees everyone's figures.
    pub(crate) sees_all: bool,
    /// Per flow: funnel, weekly conversion, conversions, win rates, cycle time,
    /// SLA breaches, alerts.
    pub(crate) flows: Vec<FlowReport>,
    /// Targets of the period with their pipeline coverage and attainment.
    pub(crate) coverage: Vec<CoverageRow>,
}

/// The people a user may see figures of: `None` for everyone (a `sees: all` role),
/// else themselves, the people who report to them, and the members of the
/// departments they head (with sub-departments).
pub(crate) fn people_seen(
    definitions: &Definitions,
    org: &Directory,
    people: &People,
    user: &str,
) -> Option<BTreeSet<String>> {
    let sees_all = org.roles_of(user).iter().any(|role| {
        definitions
            .roles
            .get(&Id::from(role.as_str()))
            .is_some_and(|declared| declared.sees == Some(RoleSees::All))
    });
    if sees_all {
        return None;
    }
    let mut seen: BTreeSet<String> = org.reports_of(user).into_iter().collect();
    seen.insert(user.to_owned());
    for department in org.departments() {
        if department.head.as_ref().is_some_and(|head| head.as_str() == user) {
            if let Some(members) = people.members.get(department.id.as_str()) {
                seen.extend(members.iter().cloned());
            }
        }
    }
    Some(seen)
}

/// Why a dashboard cannot be shown as asked.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A parameter is not understood (400).
    Bad { zh: String, en: String },
    /// The team or person is outside what the caller may see (403).
    Outside { zh: String, en: String },
    /// The store failed.
    Failed(Problem),
}

impl Refusal {
    fn bad(zh: String, en: String) -> Self {
        Refusal::Bad { zh, en }
    }

    /// The answer of the JSON API.
    pub(crate) fn problem(self) -> Problem {
        match self {
            Refusal::Bad { en, .. } => Problem::bad_request(en),
            Refusal::Outside { en, .. } => Problem::forbidden(en),
            Refusal::Failed(problem) => problem,
        }
    }
}

/// The offset from UTC that periods are counted in: the calendar of the first flow
/// that has measures and a calendar (else UTC).
pub(crate) fn utc_offset(definitions: &Definitions) -> i32 {
    definitions
        .flows
        .values()
        .filter(|flow| flow.measures.is_some())
        .find_map(|flow| flow.calendar.as_ref())
        .and_then(|calendar| definitions.calendars.get(calendar))
        .map(|calendar| calendar.utc_offset_minutes)
        .unwrap_or(0)
}

/// The filters once checked: the period and the people whose records count.
pub(crate) struct Resolved {
    /// The period.
    pub(crate) period: Period,
    /// The people counted (`None`: everyone, records without owner included).
    pub(crate) owners: Option<BTreeSet<String>>,
    /// Who the caller may see (`None`: everyone).
    pub(crate) seen: Option<BTreeSet<String>>,
    /// Names and department members.
    pub(crate) people: People,
}

/// Checks the filters against what `user` may see.
pub(crate) fn resolve(
    state: &AppState,
    definitions: &Definitions,
    user: &str,
    asked: &DashboardQuery,
    locale: &str,
) -> Result<Resolved, Refusal> {
    let offset = utc_offset(definitions);
    let period = match &asked.period {
        Some(label) => Period::parse(label, offset).ok_or_else(|| {
            Refusal::bad(
                format!("期间 `{label}` 无法识别：请写月份（2026-11）、季度（2026-Q4）或年份（2026）"),
                format!("period `{label}` is not a month (2026-11), a quarter (2026-Q4) or a year (2026)"),
            )
        })?,
        None => Period::quarter_of(state.engine().now(), offset)
            .ok_or_else(|| Refusal::Failed(Problem::internal()))?,
    };
    let (people, seen, known_user) = state.with_org(|org| {
        let people = People::build(org.users(), org.departments(), locale);
        let seen = people_seen(definitions, org, &people, user);
        let known_user = asked.rep.as_ref().is_none_or(|rep| org.user(rep).is_some());
        (people, seen, known_user)
    });
    let mut owners = seen.clone();
    if let Some(team) = &asked.team {
        let Some(members) = people.members.get(team.as_str()) else {
            return Err(Refusal::bad(
                format!("没有部门 `{team}`"),
                format!("there is no department `{team}`"),
            ));
        };
        let within: BTreeSet<String> = match &owners {
            Some(seen) => members.intersection(seen).cloned().collect(),
            None => members.clone(),
        };
        if within.is_empty() && !members.is_empty() {
            return Err(Refusal::Outside {
                zh: format!("您不能查看部门 `{team}` 的数据"),
                en: format!("you may not see the figures of department `{team}`"),
            });
        }
        owners = Some(within);
    }
    if let Some(rep) = &asked.rep {
        if !known_user {
            return Err(Refusal::bad(
                format!("没有用户 `{rep}`"),
                format!("there is no user `{rep}`"),
            ));
        }
        if seen.as_ref().is_some_and(|seen| !seen.contains(rep)) {
            return Err(Refusal::Outside {
                zh: format!("您不能查看 `{rep}` 的数据"),
                en: format!("you may not see the figures of `{rep}`"),
            });
        }
        let only = BTreeSet::from([rep.clone()]);
        owners = Some(match owners {
            Some(owners) => owners.intersection(&only).cloned().collect(),
            None => only,
        });
    }
    Ok(Resolved { period, owners, seen, people })
}

/// The dashboard `user` asked for. Blocking: it reads the store.
pub(crate) fn dashboard_for(
    state: &AppState,
    user: &str,
    asked: &DashboardQuery,
    locale: &str,
) -> Result<Dashboard, Refusal> {
    let definitions = state.engine().definitions();
    let resolved = resolve(state, &definitions, user, asked, locale)?;
    let filter = Filter { owners: resolved.owners.clone(), flows: None };
    let dataset = Dataset::load(state.engine().store().as_ref(), &definitions, &filter)
        .map_err(|error| Refusal::Failed(Problem::failure(&error)))?;
    let period = &resolved.period;
    let offset = period.utc_offset_minutes;
    Ok(Dashboard {
        period: period.label.clone(),
        first_day: date_text(period.start, offset),
        last_day: date_text(period.end - DAY_MS, offset),
        team: asked.team.clone(),
        rep: asked.rep.clone(),
        sees_all: resolved.seen.is_none(),
        flows: flow_reports(&dataset, &definitions, period, locale),
        coverage: coverage(
            &dataset,
            &definitions,
            &resolved.people,
            resolved.owners.as_ref(),
            period,
        ),
    })
}

/// The dashboard's figures: per flow the stage funnel of the records created in the
/// period with stage-to-stage conversion (overall and week by week), the flow's named
/// conversions, win rates (overall and for large and other amounts), the cycle time,
/// SLA breaches and alerts; and each target of the period with its coverage (open
/// amount expected to end in the period ÷ target) and attainment. Limited to what
/// the caller may see.
#[utoipa::path(get, path = "/api/insights", tag = "insights",
    params(DashboardQuery),
    responses(
        (status = 200, description = "The figures", body = Dashboard),
        (status = 400, description = "A period, team or person that is not understood, or an unknown parameter", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The team or person is outside what the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn insights(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Dashboard>, Problem> {
    let asked = DashboardQuery::parse(raw.as_deref(), true)?;
    blocking(move || {
        let locale = if asked.lang.as_deref() == Some("en") { "en" } else { "zh-CN" };
        dashboard_for(&state, &caller.user, &asked, locale).map(Json).map_err(Refusal::problem)
    })
    .await
}
