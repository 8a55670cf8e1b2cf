//! What the OpenAPI document says beyond the routes: the title, the sign-in scheme,
//! the tags, and the problem answer every endpoint may give. The paths come from the
//! `#[utoipa::path]` attribute of each handler, collected as the router is built.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::ProblemDetails;

/// The name of the bearer-token scheme in the document; every operation needs it
/// unless it says `security(())`.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stagecraft",
        description = "Forms, records and flows defined by packs. Sign in with \
            `POST /api/session`, then send `Authorization: Bearer <token>`. Errors are \
            RFC 9457 problem details (`application/problem+json`) with one entry per bad \
            field, in Chinese and English.",
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    components(schemas(ProblemDetails)),
    tags(
        (name = "server", description = "The server itself"),
        (name = "session", description = "Signing in and out"),
        (name = "records", description = "Records of the packs' forms, their flows and history"),
        (name = "tasks", description = "What the caller has to do"),
        (name = "files", description = "Uploaded files, linked to records through their file fields"),
        (name = "definitions", description = "The forms and flows of the loaded packs"),
        (name = "org", description = "The organisation: the caller, the people, the departments"),
        (name = "tokens", description = "API tokens for programs that act for a person"),
        (name = "admin", description = "For administrators"),
    )
)]
pub(crate) struct ApiDoc;

/// Declares the bearer-token sign-in that every `security(("bearer" = []))` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token from `POST /api/session` (the browser sends the same \
                         token as the `stagecraft_session` cookie)",
                    ))
                    .build(),
            ),
        );
    }
}
