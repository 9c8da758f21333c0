//! The OpenAPI 3.1 document of the REST API, generated with utoipa from the handlers'
//! annotations and the request and response types.
//!
//! [`compare_with_document`] checks the document against the routes that are served, so a
//! route added without documentation (or documentation left behind by a removed route)
//! fails a test.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::content::Content;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, ToSchema};

use super::{PREFIX, ServedRoute, automations, executions, integrations, projects, secrets, teams, users};
use crate::error::ErrorBody;

/// The security scheme for `Authorization: Bearer <key>`. The `security` attribute of
/// [`ApiDoc`] repeats the name, because attributes take literals only.
const BEARER: &str = "bearer";
/// The security scheme for HTTP Basic with user `api` and the key as password.
const BASIC: &str = "basic";
/// The shared response for a missing or wrong API key.
const UNAUTHORIZED: &str = "Unauthorized";
/// The shared response for a failure of Herald itself.
const INTERNAL: &str = "InternalError";
/// The shared response for a body without a JSON content type.
const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
/// The shared response for a body over the server's size limit.
const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Herald REST API",
        description = "Teams, projects, secrets, integrations, automations and their executions. \
                       Every operation except this document needs an API key, sent as \
                       `Authorization: Bearer <key>` or as HTTP Basic with user `api`. \
                       Errors answer `{\"code\", \"detail\", \"field\"?}`."
    ),
    paths(
        openapi_json,
        users::viewer, users::list, users::create,
        teams::create, teams::list, teams::get, teams::list_members, teams::put_member, teams::delete_member,
        projects::create, projects::list, projects::get,
        secrets::put, secrets::list, secrets::delete,
        integrations::create, integrations::list, integrations::get, integrations::delete,
        automations::create, automations::list, automations::get, automations::update,
        automations::enable, automations::disable, automations::delete,
        executions::list, executions::get,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SharedComponents, &PrefixPaths),
    security(("bearer" = []), ("basic" = [])),
    tags(
        (name = "meta", description = "This document"),
        (name = "users", description = "The caller and the organization's users"),
        (name = "teams", description = "Teams and their members"),
        (name = "projects", description = "Projects of users and teams"),
        (name = "secrets", description = "Write-only team secrets"),
        (name = "integrations", description = "Webhook integrations of teams"),
        (name = "automations", description = "Automations: an event in a project and the action it triggers"),
        (name = "executions", description = "The history of automation firings and their delivery attempts"),
    ),
)]
struct ApiDoc;

/// Returns the API's OpenAPI document.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(<ApiDoc as utoipa::OpenApi>::openapi);
    &DOCUMENT
}

/// Returns this OpenAPI document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "meta", operation_id = "get_openapi_document",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")),
)]
pub async fn openapi_json() -> impl IntoResponse {
    static JSON: LazyLock<String> = LazyLock::new(|| document().to_json().unwrap_or_else(|_| "{}".to_owned()));
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

/// Compares the served routes with the document's operations and describes every
/// mismatch, sorted. An empty list means that both sides agree.
pub fn compare_with_document(served: &[ServedRoute], document: &OpenApi) -> Vec<String> {
    let served: BTreeSet<String> = served.iter().map(ToString::to_string).collect();
    let documented = documented_routes(document);

    let undocumented = served.difference(&documented).map(|route| format!("{route} is served but not documented"));
    let unserved = documented.difference(&served).map(|route| format!("{route} is documented but not served"));
    undocumented.chain(unserved).collect()
}

/// Lists the document's operations as `METHOD /path`.
pub fn documented_routes(document: &OpenApi) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in &document.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ];
        for (method, operation) in operations {
            if operation.is_some() {
                routes.insert(format!("{method} {path}"));
            }
        }
    }
    routes
}

/// Adds the security schemes and the responses that operations share: 401 for a missing or
/// wrong key, 413 and 415 for bodies that are too large or not JSON, and 500 for a failure
/// of Herald itself.
struct SharedComponents;

impl Modify for SharedComponents {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API key as a bearer token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("User `api`, the API key as password, as the wandb SDK sends it"))
                    .build(),
            ),
        );
        components.responses.insert(UNAUTHORIZED.to_owned(), error_response("The API key is missing or wrong"));
        components.responses.insert(INTERNAL.to_owned(), error_response("Herald failed; the cause is in its log"));
        components.responses.insert(
            UNSUPPORTED_MEDIA_TYPE.to_owned(),
            error_response("The body is not sent with `Content-Type: application/json`"),
        );
        components
            .responses
            .insert(PAYLOAD_TOO_LARGE.to_owned(), error_response("The body is larger than the server accepts"));

        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                add_shared_responses(operation);
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let schema = Ref::from_schema_name("ErrorBody");
    ResponseBuilder::new().description(description).content("application/json", Content::new(Some(schema))).into()
}

fn add_shared_responses(operation: &mut Operation) {
    // An operation that lists an empty security requirement needs no key, so it never
    // responds with 401.
    let is_public =
        operation.security.as_ref().is_some_and(|requirements| requirements.contains(&SecurityRequirement::default()));
    let responses = &mut operation.responses.responses;
    if !is_public {
        responses.insert("401".to_owned(), RefOr::Ref(Ref::from_response_name(UNAUTHORIZED)));
    }
    if operation.request_body.is_some() {
        responses.insert("413".to_owned(), RefOr::Ref(Ref::from_response_name(PAYLOAD_TOO_LARGE)));
        responses.insert("415".to_owned(), RefOr::Ref(Ref::from_response_name(UNSUPPORTED_MEDIA_TYPE)));
    }
    responses.insert("500".to_owned(), RefOr::Ref(Ref::from_response_name(INTERNAL)));
}

/// Puts [`PREFIX`] in front of every path. The handlers' annotations name the paths as
/// the router does, relative to the prefix it is nested under.
struct PrefixPaths;

impl Modify for PrefixPaths {
    fn modify(&self, openapi: &mut OpenApi) {
        let paths = std::mem::take(&mut openapi.paths.paths);
        openapi.paths.paths = paths.into_iter().map(|(path, item)| (format!("{PREFIX}{path}"), item)).collect();
    }
}

/// A role in a team.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Reads everything in the team.
    Viewer,
    /// Also creates projects and edits automations.
    Member,
    /// Also manages members, secrets and integrations.
    Admin,
}

/// The state of an execution.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStateName {
    /// Waiting for its next attempt.
    Pending,
    /// A dispatcher is sending it now.
    Delivering,
    /// Delivered, or an action that needs no delivery.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// Matched but did not act, for example inside the cooldown.
    Skipped,
}
