//! A webhook receiver on 127.0.0.1 that records every request and responds as scripted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tokio::task::JoinHandle;

/// How the receiver responds to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Respond with this status and the body "ok".
    Status(u16),
    /// Respond with this status and a `Retry-After` header.
    RetryAfter { status: u16, value: String },
    /// Respond with 301 and this `Location`.
    Redirect(String),
    /// Accept the request and never respond.
    Hang,
    /// Wait, then respond with 200.
    Delay(Duration),
    /// Respond with this status, a body that repeats every request header and the body, and a
    /// `Location` that repeats the `Authorization` header.
    Echo(u16),
    /// Respond with this status and a body that repeats the `Authorization` header in other
    /// encodings, one per line: standard base64, URL-safe base64 without padding, Python's
    /// `json.dumps` and `application/x-www-form-urlencoded`.
    EchoEncoded(u16),
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: SystemTime,
}

impl Received {
    /// Returns a header as text, failing the test when it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("request has no {name} header"))
            .to_str()
            .expect("header is text")
    }
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
}

/// A running receiver. Dropping it stops accepting connections.
pub struct Receiver {
    /// The URL deliveries go to, `http://127.0.0.1:<port>/hook`.
    pub url: String,
    /// The address, `127.0.0.1:<port>`.
    pub address: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver that responds to every request with `default` unless scripted.
    pub async fn start(default: Reply) -> Self {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let address = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver runs");
        });
        Self { url: format!("http://{address}/hook"), address, shared, task }
    }

    /// Sets the replies to the next requests, in order; later requests get the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Changes the reply to requests beyond the script.
    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = reply;
    }

    /// Returns every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Returns how many requests arrived.
    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request = Received { path: uri.path().to_owned(), headers, body, at: SystemTime::now() };
    let reply = {
        let scripted = shared.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| shared.default.lock().unwrap().clone())
    };
    shared.received.lock().unwrap().push(request.clone());

    match reply {
        Reply::Status(status) => (status_code(status), "ok").into_response(),
        Reply::RetryAfter { status, value } => {
            (status_code(status), [(header::RETRY_AFTER, value)], "slow down").into_response()
        }
        Reply::Redirect(location) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, location)]).into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::Delay(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "ok").into_response()
        }
        Reply::Echo(status) => echo(status, &request),
        Reply::EchoEncoded(status) => (status_code(status), echo_encoded(&request)).into_response(),
    }
}

fn echo(status: u16, request: &Received) -> Response {
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into()))
        .collect();
    let echoed = serde_json::json!({"headers": headers, "body": String::from_utf8_lossy(&request.body)});
    let authorization = request.headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).unwrap_or("");
    let location = format!("/elsewhere?auth={authorization}");
    (status_code(status), [(header::LOCATION, location)], echoed.to_string()).into_response()
}

fn echo_encoded(request: &Received) -> String {
    let authorization = request.headers.get(header::AUTHORIZATION).map_or(&[][..], |value| value.as_bytes());
    let text = String::from_utf8_lossy(authorization);
    format!(
        "base64={}\nbase64url={}\njson=\"{}\"\nform={}\n",
        STANDARD.encode(authorization),
        URL_SAFE_NO_PAD.encode(authorization),
        python_json(&text),
        form_urlencoded(authorization),
    )
}

/// Encodes a string as the content of a JSON string the way Python 3's `json.dumps` does by
/// default: short escapes for `"`, `\` and tab (the only control character a header can
/// carry), and `\uXXXX` with lower-case hex digits outside printable ASCII, with surrogate
/// pairs beyond U+FFFF.
fn python_json(text: &str) -> String {
    let mut encoded = String::new();
    for character in text.chars() {
        match character {
            '"' => encoded.push_str("\\\""),
            '\\' => encoded.push_str("\\\\"),
            '\t' => encoded.push_str("\\t"),
            ' '..='~' => encoded.push(character),
            _ => {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    encoded.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    encoded
}

/// Encodes bytes as HTML forms do: unreserved bytes literal, `+` for a space and `%XX` for the
/// rest.
fn form_urlencoded(bytes: &[u8]) -> String {
    let mut encoded = String::new();
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => encoded.push(char::from(byte)),
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).expect("valid status")
}
