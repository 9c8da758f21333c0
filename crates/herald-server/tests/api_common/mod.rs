//! A small REST API client for the `api_*` tests. It keeps every response body it
//! receives, so a test can scan all of them for a secret value at the end.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A client that authenticates with one API key.
#[derive(Clone)]
pub struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    transcript: Arc<Mutex<Vec<String>>>,
}

/// A response: its status and its body parsed as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl ApiResponse {
    /// Returns the error code of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Returns the field of an error body.
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }

    /// Returns the detail of an error body.
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }

    /// Returns the `items` of a list body.
    pub fn items(&self) -> &Vec<Value> {
        self.body["items"].as_array().expect("a list body with items")
    }
}

impl Api {
    /// Creates a client for the server at `base` (without `/api/v1`) and the given key.
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: format!("{base}/api/v1"),
            key: Some(key.to_owned()),
            http: reqwest::Client::new(),
            transcript: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Returns a client with another key (or none) that shares this client's transcript.
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self { key: key.map(str::to_owned), ..self.clone() }
    }

    /// Returns every response body received so far by this client and its copies.
    pub fn transcript(&self) -> Vec<String> {
        self.transcript.lock().expect("transcript lock").clone()
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> ApiResponse {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(request).await
    }

    /// Adds the key, sends the request, records the body and parses it.
    async fn finish(&self, mut request: reqwest::RequestBuilder) -> ApiResponse {
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("response body");
        self.transcript.lock().expect("transcript lock").push(text.clone());
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("a JSON body") };
        ApiResponse { status, body }
    }

    /// Sends GET.
    pub async fn get(&self, path: &str) -> ApiResponse {
        self.send(Method::GET, path, None).await
    }

    /// Sends POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> ApiResponse {
        self.send(Method::POST, path, Some(&body)).await
    }

    /// Sends POST without a body.
    pub async fn post_empty(&self, path: &str) -> ApiResponse {
        self.send(Method::POST, path, None).await
    }

    /// Sends PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> ApiResponse {
        self.send(Method::PUT, path, Some(&body)).await
    }

    /// Sends DELETE.
    pub async fn delete(&self, path: &str) -> ApiResponse {
        self.send(Method::DELETE, path, None).await
    }

    /// Sends a raw body with the given content type.
    pub async fn send_raw(&self, method: Method, path: &str, content_type: &str, body: &str) -> ApiResponse {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        self.finish(request).await
    }
}

/// Asserts a status and returns the response, printing the body on failure.
#[track_caller]
pub fn expect(response: ApiResponse, status: u16) -> ApiResponse {
    assert_eq!(response.status.as_u16(), status, "unexpected status; body: {}", response.body);
    response
}
