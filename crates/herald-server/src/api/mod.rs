//! The REST API v1, served under `/api/v1`.
//!
//! Each resource has one module with its handlers, its `<Resource>In` and `<Resource>Out`
//! types and a `routes()` function at the bottom. Every route is added through
//! [`ApiRoutes`], which records the method and path it serves, so a test can compare the
//! served routes with the OpenAPI document and catch a route added without documentation.
//!
//! Permissions: viewers read, members also create projects and edit automations, team
//! admins also manage members, secrets and integrations, and organization admins may do
//! everything. A caller who is not a member of an entity gets 403.

mod access;
mod automations;
mod body;
mod executions;
mod integrations;
pub mod openapi;
mod projects;
mod secrets;
mod teams;
mod users;

use std::fmt;

use axum::Router;
use axum::extract::OriginalUri;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, on};

use crate::error::ApiError;
use crate::state::AppState;

/// The path prefix under which [`routes`] is nested.
pub const PREFIX: &str = "/api/v1";

/// The HTTP methods the API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl Verb {
    /// Returns the upper-case method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    fn method_filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One route that the API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServedRoute {
    /// The method.
    pub verb: Verb,
    /// The path template relative to [`PREFIX`], such as `/teams/{team}`.
    pub path: &'static str,
}

impl fmt::Display for ServedRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {PREFIX}{}", self.verb, self.path)
    }
}

/// A router that records each route it serves.
pub struct ApiRoutes {
    router: Router<AppState>,
    served: Vec<ServedRoute>,
}

impl ApiRoutes {
    fn new() -> Self {
        Self { router: Router::new(), served: Vec::new() }
    }

    /// Serves `handler` for `verb` on `path`. Axum merges the methods of one path and
    /// panics when a method is added twice, so a duplicate fails at start-up.
    fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, on(verb.method_filter(), handler));
        self.served.push(ServedRoute { verb, path });
        self
    }

    fn merge(mut self, other: ApiRoutes) -> Self {
        self.router = self.router.merge(other.router);
        self.served.extend(other.served);
        self
    }
}

/// Builds every route of the API, with its record.
fn table() -> ApiRoutes {
    ApiRoutes::new()
        .add(Verb::Get, "/openapi.json", openapi::openapi_json)
        .merge(users::routes())
        .merge(teams::routes())
        .merge(projects::routes())
        .merge(secrets::routes())
        .merge(integrations::routes())
        .merge(automations::routes())
        .merge(executions::routes())
}

/// Builds the routes under `/api/v1`. Unknown paths and methods get the API's JSON error body.
pub fn routes() -> Router<AppState> {
    table().router.fallback(unknown_route).method_not_allowed_fallback(method_not_allowed)
}

/// Lists every route that [`routes`] serves, sorted by path and method.
pub fn served_routes() -> Vec<ServedRoute> {
    let mut served = table().served;
    served.sort_by_key(|route| (route.path, route.verb));
    served
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no API route matches {:?}; the routes are listed in {PREFIX}/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}; the routes are listed in {PREFIX}/openapi.json", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_routes_are_unique() {
        let served = served_routes();
        let mut unique = served.clone();
        unique.dedup();
        assert_eq!(served.len(), unique.len(), "a route is recorded twice");
    }

    #[test]
    fn undocumented_route_is_reported() {
        async fn undocumented() {}
        let extended = table().add(Verb::Post, "/undocumented", undocumented);

        let problems = openapi::compare_with_document(&extended.served, openapi::document());

        assert_eq!(problems, vec!["POST /api/v1/undocumented is served but not documented".to_owned()]);
    }
}
