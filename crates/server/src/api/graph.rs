//! `GET /api/graph`: a relationship graph (客户关系图谱) a pack declares, as JSON — the
//! records the caller may see with their links, purchases, dormancy and cross-sell
//! chances, and where the page draws them. The same answer as the page's
//! `/graph.json`, for programs.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::blocking;
use crate::auth::Caller;
use crate::graph::{self, GraphError, GraphView, Scope};
use crate::pages::Lang;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

pub(crate) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router.routes(routes!(graph_of))
}

/// Which graph, whose records, in which language.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GraphQuery {
    /// The graph id (default: the first one the packs declare).
    graph: Option<String>,
    /// Only records owned by this person.
    rep: Option<String>,
    /// Only records owned by this person or anyone who reports to them.
    team: Option<String>,
    /// Only records owned by people of this department or a department under it.
    department: Option<String>,
    /// `zh-CN` (default) or `en`, for titles and sentences.
    lang: Option<String>,
}

/// A relationship graph: the centre records the caller may see (within `rep`,
/// `team` or `department`), the records linked to them, their parent records, what each bought,
/// whether it is dormant and which products are worth offering, with why.
#[utoipa::path(get, path = "/api/graph", tag = "records",
    params(GraphQuery),
    responses(
        (status = 200, description = "The graph", body = GraphView),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No pack declares such a graph", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn graph_of(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<GraphQuery>,
) -> Result<Json<GraphView>, Problem> {
    let lang = match query.lang.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    };
    let scope = Scope {
        rep: query.rep.filter(|rep| !rep.is_empty()),
        team: query.team.filter(|team| !team.is_empty()),
        department: query.department.filter(|department| !department.is_empty()),
    };
    blocking(move || {
        graph::build(&state, &caller.user, query.graph.as_deref(), scope, lang)
            .map(Json)
            .map_err(|GraphError::Unknown| Problem::not_found("no pack declares such a graph"))
    })
    .await
}
