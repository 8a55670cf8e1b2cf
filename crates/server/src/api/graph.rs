//! TODO(workbench): the `graph` endpoints.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub(crate) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
}
