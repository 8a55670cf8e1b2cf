//! TODO(workbench): the `pool` endpoints.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub(crate) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
}
