//! The HTTP side of the client subcommands: one REST API call per method, with errors that
//! tell the user what to change.

use std::time::Duration;

use anyhow::{Context, bail, format_err};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::ClientOptions;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A REST API client that authenticates with one API key.
pub struct ApiClient {
    base: Url,
    api_key: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// Creates a client from `--url`/`HERALD_URL` and `--api-key`/`HERALD_API_KEY`.
    pub fn new(options: &ClientOptions) -> anyhow::Result<Self> {
        let base = Url::parse(&options.url).map_err(|error| {
            format_err!(
                "invalid server URL {:?} from --url or HERALD_URL: {error}; use a URL such as http://127.0.0.1:8080",
                options.url
            )
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            bail!("invalid server URL {:?} from --url or HERALD_URL; use an http:// or https:// URL", options.url);
        }

        let api_key = match options.api_key.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => key.to_owned(),
            _ => bail!("no API key; set HERALD_API_KEY or pass --api-key"),
        };

        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("failed to create the HTTP client")?;
        Ok(Self { base, api_key, http })
    }

    /// Builds the URL of an API path from its segments, which are percent-encoded one by
    /// one, so names with spaces or other reserved characters reach the server intact.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends GET and returns the JSON body.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Value> {
        self.send(Method::GET, self.url(segments, query), None).await
    }

    /// Sends POST with an optional JSON body and returns the JSON body.
    pub async fn post(&self, segments: &[&str], body: Option<&Value>) -> anyhow::Result<Value> {
        self.send(Method::POST, self.url(segments, &[]), body).await
    }

    /// Sends PUT with a JSON body and returns the JSON body.
    pub async fn put(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, self.url(segments, &[]), Some(body)).await
    }

    /// Sends DELETE.
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<()> {
        self.send(Method::DELETE, self.url(segments, &[]), None).await.map(drop)
    }

    /// Sends a request and returns its JSON body, or `Value::Null` for an empty one. A
    /// non-2xx status fails with the server's `detail`.
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, url).bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request.json(body);
        }

        let response = request.send().await.map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        let text = response.text().await.map_err(|error| self.transport_error(&error))?;

        if !status.is_success() {
            return Err(server_error(status, &text));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("Herald at {} returned a body that is not JSON", self.base))
    }

    /// Describes a request that got no HTTP response.
    fn transport_error(&self, error: &reqwest::Error) -> anyhow::Error {
        // The message of reqwest's error is only "error sending request", while the innermost
        // cause ("Connection refused", a DNS failure) is what the user can act on.
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        if error.is_timeout() {
            return format_err!("the request to Herald at {} timed out: {cause}", self.base);
        }
        format_err!(
            "failed to connect to Herald at {}: {cause}; start the server with `herald serve`, or set HERALD_URL \
             (or --url) to its address",
            self.base
        )
    }
}

/// Builds the error for a non-2xx response from the API's error body.
fn server_error(status: StatusCode, text: &str) -> anyhow::Error {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let detail = body.as_ref().and_then(|body| body["detail"].as_str());
    let code = body.as_ref().and_then(|body| body["code"].as_str()).unwrap_or("unknown");
    let Some(detail) = detail else {
        let shown: String = text.chars().take(200).collect();
        return format_err!("Herald returned HTTP {status}: {shown}");
    };
    if status == StatusCode::UNAUTHORIZED {
        return format_err!("{detail} (HTTP 401 {code}); check HERALD_API_KEY or --api-key");
    }
    format_err!("{detail} (HTTP {} {code})", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> ApiClient {
        ApiClient::new(&ClientOptions { url: url.into(), api_key: Some("k".repeat(40)) }).unwrap()
    }

    #[test]
    fn url_segments_are_percent_encoded() {
        let url = client("http://127.0.0.1:8080").url(&["teams", "ml", "integrations", "ci hook/2"], &[]);
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/api/v1/teams/ml/integrations/ci%20hook%2F2");
    }

    #[test]
    fn base_path_and_query_are_kept() {
        let url = client("https://example.com/herald/").url(&["automations"], &[("project", "ml/demo x")]);
        assert_eq!(url.as_str(), "https://example.com/herald/api/v1/automations?project=ml%2Fdemo+x");
    }

    #[test]
    fn missing_key_names_the_variable() {
        let options = ClientOptions { url: "http://127.0.0.1:8080".into(), api_key: None };
        let error = ApiClient::new(&options).err().expect("an error").to_string();
        assert!(error.contains("HERALD_API_KEY"), "{error}");
    }

    #[test]
    fn server_errors_show_the_detail() {
        let error = server_error(StatusCode::CONFLICT, r#"{"code": "in_use", "detail": "secret is used"}"#);
        assert_eq!(error.to_string(), "secret is used (HTTP 409 in_use)");
        let plain = server_error(StatusCode::BAD_GATEWAY, "upstream down");
        assert_eq!(plain.to_string(), "Herald returned HTTP 502 Bad Gateway: upstream down");
    }
}
