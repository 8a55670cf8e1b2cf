//! The caller's open tasks.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use stagecraft_runtime::Org;
use stagecraft_store::StoredTask;

use super::blocking;
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// The caller's open tasks.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TaskList {
    /// Soonest due first; tasks without a due date last.
    tasks: Vec<StoredTask>,
}

/// The open tasks of the caller and of the roles they hold.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks",
    responses(
        (status = 200, description = "The open tasks", body = TaskList),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TaskList>, Problem> {
    blocking(move || Ok(Json(TaskList { tasks: open_tasks(&state, &caller.user)? }))).await
}

/// The open tasks of `user` and of the roles they hold, soonest due first (tasks
/// without a due date last). Blocking.
pub(crate) fn open_tasks(state: &AppState, user: &str) -> Result<Vec<StoredTask>, Problem> {
    let roles = state.with_org(|org| org.roles_of(user));
    let store = state.engine().store();
    let mut open: Vec<StoredTask> = Vec::new();
    let assignees =
        std::iter::once(user.to_owned()).chain(roles.iter().map(|role| format!("role:{role}")));
    for assignee in assignees {
        open.extend(store.open_tasks_of(&assignee).map_err(|error| Problem::failure(&error))?);
    }
    open.sort_by(|a, b| {
        (a.due_ms.is_none(), a.due_ms, &a.id).cmp(&(b.due_ms.is_none(), b.due_ms, &b.id))
    });
    Ok(open)
}
