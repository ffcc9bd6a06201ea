//! The OpenAPI 3.1 document served at `/_auth/api/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` attributes and the types in [`super::views`]. The error answers every
//! operation can give (400, 401, 403, 404, 405, 413, 415, 422, 429, 503) are added here once.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, OpenApi};

use super::api::{access, passkeys, users};
use super::views;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "User management: users, roles, sessions, credits and the activity log. \
            Authenticate with `Authorization: Bearer <token>` (`gatehouse token create`) or the \
            browser session cookie; cookie-authenticated writes need the `X-CSRF-Token` header \
            (from `GET /_auth/api/csrf`). Errors are `{\"error\", \"message\", \"fields\"}`."
    ),
    paths(
        users::list_users,
        users::create_user,
        users::get_user,
        users::patch_user,
        users::delete_user,
        users::restore_user,
        users::unlock_user,
        users::reset_twofa,
        access::list_roles,
        access::grant_role,
        access::revoke_role,
        access::list_sessions,
        access::end_all_sessions,
        access::end_session,
        access::adjust_credits,
        access::user_activity,
        access::activity,
        passkeys::list_passkeys,
        passkeys::remove_passkey,
    ),
    components(schemas(views::ErrorBody, views::TierName)),
    modifiers(&Common),
    tags(
        (name = "users"), (name = "roles"), (name = "sessions"), (name = "credits"),
        (name = "activity"), (name = "passkeys"),
    )
)]
pub struct ApiDoc;

/// Adds the security schemes and the error responses shared by every operation.
struct Common;

const COMMON_ERRORS: [(&str, &str); 10] = [
    ("400", "Malformed request body"),
    ("401", "Missing, unknown, expired or revoked credentials"),
    (
        "403",
        "Not allowed, or a cookie-authenticated write without a valid X-CSRF-Token",
    ),
    ("404", "No such resource"),
    ("405", "Method not allowed"),
    ("413", "Request body too large"),
    ("415", "The body is not application/json"),
    (
        "422",
        "Unknown, forbidden or invalid fields or parameters (named in `fields`)",
    ),
    ("429", "Too many failed authentication attempts"),
    ("503", "The account database is unavailable"),
];

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("gatehouse_session"))),
        );
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ];
            for op in ops.into_iter().flatten() {
                for (status, description) in COMMON_ERRORS {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(error_response(description)));
                }
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The document as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"internal\",\"message\":\"{e}\"}}"))
}
