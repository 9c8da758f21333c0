//! `POST /graphql`: the HTTP side of the GraphQL endpoint.
//!
//! The handler authenticates before any GraphQL work, so a wrong key is a plain 401. It
//! then reads the body, which must be JSON (see [`read_json_body`]), runs the document
//! against [`super::schema`] and chooses the HTTP status from the first error, because the
//! SDK acts on the status:
//! - It retries 429, 5xx and some 4xx with backoff, which is right for a failing database.
//! - It gives up at once on 400, 401, 403, 404 and 422, and on 409 except for
//!   `UpsertBucket`. `wandb.init` then raises `CommError` with the error message (seen with
//!   SDK 0.31.0). A 200 with errors also fails, but prefixes the message with a position.
//!
//! Every error body has the GraphQL shape `{"errors":[{"message","extensions":{"code"}}],
//! "data":null}`, so the message reaches the user and programs can read the stable code.

use async_graphql::{ServerError, Variables};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use herald_core::error::quote_value;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::authenticate_headers;
use super::body::read_json_body;
use super::schema::{RequestScope, WandbSchema};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The detail shown for a failure of Herald itself; the cause goes to the log only.
const INTERNAL_DETAIL: &str = "Herald failed to handle the request; see its log";

/// A GraphQL request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphQlBody {
    query: String,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    operation_name: Option<String>,
}

/// Runs one GraphQL request.
pub async fn handle_graphql(
    State(state): State<AppState>,
    Extension(schema): Extension<WandbSchema>,
    request: Request,
) -> Response {
    match execute(&state, &schema, request).await {
        Ok(response) => response,
        Err(error) => error_response(error),
    }
}

async fn execute(state: &AppState, schema: &WandbSchema, request: Request) -> ApiResult<Response> {
    let caller = authenticate_headers(state, request.headers()).await?;
    let body = read_json_body(state, request).await?;
    let request = parse_request(&body)?;

    let operation = request.operation_name.clone();
    let user_id = caller.user.id;
    let request = request.data(RequestScope { state: state.clone(), caller });
    let response = schema.execute(request).await;

    tracing::debug!(operation = ?operation, user.id = %user_id, errors = response.errors.len(), "GraphQL request");
    Ok(render_response(response))
}

fn parse_request(body: &[u8]) -> ApiResult<async_graphql::Request> {
    let body: GraphQlBody = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "the GraphQL request is not valid: {error}; send a JSON object with a `query` string and optional \
             `variables` and `operationName`"
        ))
    })?;

    check_nesting(&body.query)?;
    let mut request = async_graphql::Request::new(body.query);
    match body.variables {
        None | Some(Value::Null) => {}
        Some(variables @ Value::Object(_)) => request = request.variables(Variables::from_json(variables)),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_graphql",
                format!(
                    "the GraphQL `variables` must be a JSON object such as {{\"name\": \"run1\"}}, got {}",
                    quote_value(&other)
                ),
            ));
        }
    }
    // Some Python documents come with `operationName: ""`. Each body contains one operation,
    // so an empty name means that one.
    if let Some(name) = body.operation_name.filter(|name| !name.is_empty()) {
        request = request.operation_name(name);
    }
    Ok(request)
}

/// The deepest nesting of brackets, braces and parentheses that a query may have. The SDK's
/// documents nest about 10 deep. The GraphQL parser recurses once per level of a nested
/// argument value, so a few thousand levels in a 4 KB query would overflow its stack and
/// abort the whole process; the check runs before the parser sees the text.
const MAX_QUERY_NESTING: usize = 64;

/// Rejects a query whose `{`, `[` or `(` nest deeper than [`MAX_QUERY_NESTING`], counting
/// outside strings and comments.
fn check_nesting(query: &str) -> ApiResult<()> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'#' => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'"' if bytes[index..].starts_with(b"\"\"\"") => {
                index += 3;
                while index < bytes.len() && !bytes[index..].starts_with(b"\"\"\"") {
                    index += if bytes[index..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                index += 2;
            }
            b'"' => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_QUERY_NESTING {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_graphql",
                        format!("the GraphQL query nests deeper than {MAX_QUERY_NESTING} levels; flatten it"),
                    ));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    Ok(())
}

/// Renders a GraphQL response. The first error decides the status, and `data` is null
/// whenever the status is not 200, as in W&B's error responses.
fn render_response(response: async_graphql::Response) -> Response {
    let mut status = StatusCode::OK;
    let mut errors = Vec::with_capacity(response.errors.len());
    for error in response.errors {
        let (error_status, rendered) = render_error(error);
        if status == StatusCode::OK {
            status = error_status;
        }
        errors.push(rendered);
    }

    let data = match status {
        StatusCode::OK => response.data.into_json().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let body = match errors.is_empty() {
        true => json!({ "data": data }),
        false => json!({ "errors": errors, "data": data }),
    };
    (status, Json(body)).into_response()
}

/// Returns the status an error calls for, and the error with its message and code set.
///
/// - An [`ApiError`] from a resolver keeps its status, detail and code.
/// - Any other error from a resolver is a bug in Herald. Its text may name internals, so
///   it is logged and replaced.
/// - An error without a source comes from parsing or validating the document or its
///   variables, which is the client's mistake.
fn render_error(mut error: ServerError) -> (StatusCode, Value) {
    let (status, code, message) = match (error.source::<ApiError>(), &error.source) {
        (Some(api_error), _) => (api_error.status, api_error.code, Some(api_error.detail.clone())),
        (None, Some(_)) => {
            tracing::error!(error = %error.message, path = ?error.path, "GraphQL resolver failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal", Some(INTERNAL_DETAIL.to_owned()))
        }
        (None, None) => (StatusCode::BAD_REQUEST, "invalid_graphql", None),
    };
    if let Some(message) = message {
        error.message = message;
    }

    error.extensions.get_or_insert_with(Default::default).set("code", code);
    let rendered = serde_json::to_value(&error).unwrap_or_else(|_| json!({ "message": INTERNAL_DETAIL }));
    (status, rendered)
}

/// Renders an error that stopped the request before GraphQL ran, such as a wrong key, in the
/// GraphQL shape.
///
/// The status and headers come from [`ApiError`]'s own response, so a 401 carries the same
/// `Bearer` challenge as the REST API. A `Basic` challenge would make a browser prompt for
/// the key and then send it with forged cross-site requests too.
fn error_response(error: ApiError) -> Response {
    let body = json!({
        "errors": [{ "message": error.detail, "extensions": { "code": error.code } }],
        "data": null,
    });
    let mut response = error.into_response();
    *response.body_mut() = Body::from(body.to_string());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_operation_name_is_ignored() {
        let request = parse_request(br#"{"query":"{ viewer { id } }","operationName":""}"#).unwrap();
        assert_eq!(request.operation_name, None);
        let request = parse_request(br#"{"query":"query A { viewer { id } }","operationName":"A"}"#).unwrap();
        assert_eq!(request.operation_name.as_deref(), Some("A"));
    }

    #[test]
    fn deep_argument_nesting_is_rejected() {
        let deep = format!("query {{ viewer(x: {}1{}) {{ id }} }}", "[".repeat(2_000), "]".repeat(2_000));
        let body = serde_json::to_vec(&json!({ "query": deep })).unwrap();
        let error = parse_request(&body).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "invalid_graphql");

        let object = format!("query {{ viewer(x: {}1{}) {{ id }} }}", "{a:".repeat(1_500), "}".repeat(1_500));
        let body = serde_json::to_vec(&json!({ "query": object })).unwrap();
        assert!(parse_request(&body).is_err());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "# {}\nquery {{ viewer(a: \"{}\", b: \"\"\"{}\"\"\") {{ id }} }}",
            "[".repeat(100),
            "{".repeat(100),
            "(".repeat(100)
        );
        assert!(check_nesting(&text).is_ok());
        assert!(check_nesting(&format!("{}{}", "{".repeat(64), "}".repeat(64))).is_ok());
        assert!(check_nesting(&"{".repeat(65)).is_err());
    }

    #[test]
    fn body_without_query_is_rejected() {
        let error = parse_request(br#"{"variables":{}}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.detail.contains("query"), "{}", error.detail);
    }

    #[test]
    fn variables_must_be_an_object() {
        for variables in ["[1]", "\"x\"", "3", "true"] {
            let body = format!(r#"{{"query":"{{ viewer {{ id }} }}","variables":{variables}}}"#);
            let error = parse_request(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{variables}");
            assert_eq!(error.code, "invalid_graphql", "{variables}");
            assert!(error.detail.contains(variables), "{}", error.detail);
        }
        for variables in ["null", "{}", r#"{"a":1}"#] {
            let body = format!(r#"{{"query":"{{ viewer {{ id }} }}","variables":{variables}}}"#);
            assert!(parse_request(body.as_bytes()).is_ok(), "{variables}");
        }
    }

    #[test]
    fn resolver_api_error_keeps_status_and_code() {
        let source: async_graphql::Error = ApiError::forbidden("you are not a member of \"ml\"").into();
        let (status, rendered) = render_error(source.into_server_error(async_graphql::Pos::default()));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(rendered["message"], "you are not a member of \"ml\"");
        assert_eq!(rendered["extensions"]["code"], "forbidden");
    }

    #[test]
    fn unknown_resolver_error_is_hidden() {
        let source: async_graphql::Error = std::io::Error::other("disk /var/secret failed").into();
        let (status, rendered) = render_error(source.into_server_error(async_graphql::Pos::default()));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(rendered["message"], INTERNAL_DETAIL);
    }
}
