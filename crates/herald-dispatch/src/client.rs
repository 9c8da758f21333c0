//! The HTTP client that sends deliveries, and the network guard on its connections.
//!
//! The client follows no redirects, because a redirect could lead to an address the guard
//! rejects, and the receiver must respond at the configured URL. It ignores proxy
//! environment variables, because a proxy would connect on Herald's behalf to addresses the
//! guard never checks. Its resolver returns only addresses that the [`NetworkPolicy`] permits,
//! so the guard judges the address actually connected to, even when DNS returns other
//! addresses at send time than when the integration was saved. reqwest does not call the
//! resolver for IP literals, so [`post`] checks the URL with [`NetworkPolicy::check_url`]
//! first.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, redirect};
use url::Url;

use crate::network::{GuardError, NetworkPolicy};
use crate::settings::DispatchSettings;

/// Maximum number of response-body bytes stored per attempt.
pub const MAX_STORED_RESPONSE_BYTES: usize = 20_000;

/// Maximum number of bytes read beyond [`MAX_STORED_RESPONSE_BYTES`], so that a secret that
/// straddles the cut can still be recognised and redacted whole.
const MAX_EXTRA_READ_BYTES: usize = 4_096;

/// Returns the `User-Agent` of deliveries, `Herald/<version>`.
pub fn user_agent() -> String {
    format!("Herald/{}", env!("CARGO_PKG_VERSION"))
}

/// Builds the delivery client: rustls, no redirects, no proxy, the guarded resolver, and
/// the timeouts from `settings`.
pub fn build_client(settings: &DispatchSettings, network: &NetworkPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .user_agent(user_agent())
        .dns_resolver(Arc::new(GuardedResolver::new(network.clone())))
        .build()
}

/// A DNS resolver that returns only the addresses a [`NetworkPolicy`] permits.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: NetworkPolicy,
}

/// A host name that yields no address a delivery may connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed.
    #[error("failed to resolve {host}: {source}; check the host name in the integration's URL and the server's DNS")]
    Lookup {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The name resolves only to addresses the policy rejects.
    #[error("{host} resolves only to rejected addresses: {rejection}")]
    Rejected {
        /// The host name.
        host: String,
        /// The rejection of the first address.
        rejection: GuardError,
    },
    /// The lookup succeeded but returned no address.
    #[error("{host} resolves to no address; check the host name in the integration's URL and its DNS records")]
    NoAddress {
        /// The host name.
        host: String,
    },
}

impl GuardedResolver {
    /// Creates a resolver that applies `policy`.
    pub fn new(policy: NetworkPolicy) -> Self {
        Self { policy }
    }

    /// Resolves `host` with the system resolver and keeps the permitted addresses.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|source| ResolveError::Lookup { host: host.to_owned(), source })?
            .collect();
        let Some(first) = found.first() else {
            return Err(ResolveError::NoAddress { host: host.to_owned() });
        };

        let permitted: Vec<SocketAddr> =
            found.iter().copied().filter(|address| self.policy.permits(address.ip())).collect();
        if permitted.is_empty() {
            let rejection = match self.policy.check_address(first.ip()) {
                Err(rejection) => rejection,
                Ok(()) => GuardError::AddressNotAllowed { address: first.ip(), suggestion: first.ip().to_string() },
            };
            return Err(ResolveError::Rejected { host: host.to_owned(), rejection });
        }
        if permitted.len() < found.len() {
            tracing::debug!(host, permitted = permitted.len(), found = found.len(), "dropped rejected addresses");
        }
        Ok(permitted)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver.resolve_host(name.as_str()).await?;
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// A response to a delivery, with the start of its body.
#[derive(Clone, Debug)]
pub struct ReceivedResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Retry-After` header, if it is valid text.
    pub retry_after: Option<String>,
    /// The `Location` header of a redirect, if it is valid text.
    pub location: Option<String>,
    /// The start of the body: at most [`MAX_STORED_RESPONSE_BYTES`] plus a little more, so
    /// that redaction can see a secret that straddles the cut.
    pub body: Vec<u8>,
    /// Whether the body went on beyond [`ReceivedResponse::body`], or could not be read
    /// to its end.
    pub body_truncated: bool,
}

/// A delivery that got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The URL is invalid or names a rejected address, so nothing was sent.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The host name resolves only to rejected addresses, so nothing was sent.
    #[error("{0}")]
    Rejected(String),
    /// The host name could not be resolved, or resolves to no address, so nothing was sent.
    #[error("{0}")]
    Dns(String),
    /// No response within the attempt timeout.
    #[error("timed out after {0:?} without a complete response; the receiver must respond within the attempt timeout")]
    Timeout(Duration),
    /// The connection could not be established.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The request failed after connecting.
    #[error("request failed: {0}")]
    Request(String),
}

impl SendError {
    /// Returns a stable name of the error's kind, for logs: `invalid_url`, `network_policy`
    /// (a literal address or every resolved address is rejected), `dns` (the lookup failed or
    /// found no address), `timeout`, `connect` or `request`.
    pub fn class(&self) -> &'static str {
        match self {
            SendError::Guard(GuardError::InvalidUrl { .. }) => "invalid_url",
            SendError::Guard(GuardError::AddressNotAllowed { .. }) | SendError::Rejected(_) => "network_policy",
            SendError::Dns(_) => "dns",
            SendError::Timeout(_) => "timeout",
            SendError::Connect(_) => "connect",
            SendError::Request(_) => "request",
        }
    }
}

/// POSTs `body` to `url` and reads the start of the response.
///
/// The URL is checked against `network` first. The whole exchange, including reading the
/// body, must finish within `timeout`, so a receiver that sends its response slowly cannot hold
/// an attempt longer than that.
pub async fn post(
    client: &reqwest::Client,
    network: &NetworkPolicy,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<ReceivedResponse, SendError> {
    let url: Url = network.check_url(url)?;
    let exchange = async {
        let response =
            client.post(url).headers(headers).body(body).send().await.map_err(|error| classify(error, timeout))?;
        Ok(read_response(response).await)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Timeout(timeout)),
    }
}

async fn read_response(mut response: reqwest::Response) -> ReceivedResponse {
    let header_text = |name| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let status = response.status();
    let retry_after = header_text(RETRY_AFTER);
    let location = header_text(LOCATION);

    let read_limit = MAX_STORED_RESPONSE_BYTES + MAX_EXTRA_READ_BYTES;
    let mut body = Vec::new();
    let mut body_truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() >= read_limit {
                    body.truncate(read_limit);
                    body_truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                // The status decides the outcome, and the body is informational, so a body
                // that breaks off keeps what arrived.
                tracing::debug!(error = %error.without_url(), "response body ended early");
                body_truncated = true;
                break;
            }
        }
    }
    ReceivedResponse { status, retry_after, location, body, body_truncated }
}

/// Sorts a reqwest error into a [`SendError`], with a message built from its causes and
/// without the URL. A connect timeout counts as a connection failure, because the
/// receiver's host was not reached.
fn classify(error: reqwest::Error, timeout: Duration) -> SendError {
    let mut cause: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(current) = cause {
        if let Some(resolve_error) = current.downcast_ref::<ResolveError>() {
            return match resolve_error {
                ResolveError::Rejected { .. } => SendError::Rejected(resolve_error.to_string()),
                ResolveError::Lookup { .. } | ResolveError::NoAddress { .. } => {
                    SendError::Dns(resolve_error.to_string())
                }
            };
        }
        cause = current.source();
    }

    if error.is_connect() {
        return SendError::Connect(causes(&error.without_url()));
    }
    if error.is_timeout() {
        return SendError::Timeout(timeout);
    }
    SendError::Request(causes(&error.without_url()))
}

/// Joins an error's message with those of its causes, skipping repeats.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cause = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn loopback_policy() -> NetworkPolicy {
        NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8").unwrap())
    }

    #[tokio::test]
    async fn resolver_rejects_loopback_by_default() {
        let resolver = GuardedResolver::new(NetworkPolicy::default());
        let error = resolver.resolve_host("localhost").await.unwrap_err();
        let ResolveError::Rejected { host, rejection: GuardError::AddressNotAllowed { address, .. } } = &error else {
            panic!("expected a rejection, got {error}");
        };
        assert_eq!(host, "localhost");
        assert!(address.is_loopback(), "{address}");
        assert!(error.to_string().contains("HERALD_DELIVERY_ALLOWED_NETWORKS"), "{error}");
    }

    #[tokio::test]
    async fn resolver_keeps_only_permitted_addresses() {
        let resolver = GuardedResolver::new(loopback_policy());
        let addresses = resolver.resolve_host("localhost").await.unwrap();
        assert!(!addresses.is_empty());
        for address in addresses {
            assert!(matches!(address.ip(), IpAddr::V4(v4) if v4.is_loopback()), "{address}");
        }
    }

    #[tokio::test]
    async fn literal_address_is_checked_before_sending() {
        let client = build_client(&DispatchSettings::default(), &NetworkPolicy::default()).unwrap();
        let error = post(
            &client,
            &NetworkPolicy::default(),
            "http://127.0.0.1:9/hook",
            HeaderMap::new(),
            b"{}".to_vec(),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(error.class(), "network_policy");
        assert!(error.to_string().contains("127.0.0.1"), "{error}");
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // Bind and drop a listener so that its port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let policy = loopback_policy();
        let client = build_client(&DispatchSettings::default(), &policy).unwrap();
        let url = format!("http://127.0.0.1:{port}/hook");
        let error =
            post(&client, &policy, &url, HeaderMap::new(), b"{}".to_vec(), Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(error.class(), "connect", "{error}");
        assert!(!error.to_string().contains(&url), "the message repeats the URL: {error}");
    }

    /// A resolver that resolves every name as `localhost`, through a [`GuardedResolver`].
    #[derive(Clone)]
    struct LocalhostResolver(GuardedResolver);

    impl Resolve for LocalhostResolver {
        fn resolve(&self, _name: Name) -> Resolving {
            let resolver = self.0.clone();
            Box::pin(async move {
                let addresses: Addrs = Box::new(resolver.resolve_host("localhost").await?.into_iter());
                Ok(addresses)
            })
        }
    }

    /// A resolver whose every lookup fails, as when the DNS server answers NXDOMAIN.
    struct FailingResolver;

    impl Resolve for FailingResolver {
        fn resolve(&self, name: Name) -> Resolving {
            let error =
                ResolveError::Lookup { host: name.as_str().to_owned(), source: io::Error::other("no such host") };
            Box::pin(async move { Err(error.into()) })
        }
    }

    async fn post_with_resolver(resolver: impl Resolve + 'static, url: &str) -> Result<ReceivedResponse, SendError> {
        let client = reqwest::Client::builder().no_proxy().dns_resolver(Arc::new(resolver)).build().unwrap();
        post(&client, &NetworkPolicy::default(), url, HeaderMap::new(), b"{}".to_vec(), Duration::from_secs(2)).await
    }

    #[tokio::test]
    async fn dns_failure_is_not_a_policy_refusal() {
        let error = post_with_resolver(FailingResolver, "http://receiver.test:9/hook").await.unwrap_err();
        assert!(matches!(error, SendError::Dns(_)), "{error:?}");
        assert_eq!(error.class(), "dns");
        let message = error.to_string();
        assert!(message.contains("failed to resolve receiver.test"), "{message}");
        assert!(message.contains("no such host"), "{message}");
    }

    #[tokio::test]
    async fn name_resolving_to_rejected_address_is_policy_refusal() {
        let resolver = LocalhostResolver(GuardedResolver::new(NetworkPolicy::default()));
        let error = post_with_resolver(resolver, "http://receiver.test:9/hook").await.unwrap_err();
        assert!(matches!(error, SendError::Rejected(_)), "{error:?}");
        assert_eq!(error.class(), "network_policy");
        assert!(error.to_string().contains("HERALD_DELIVERY_ALLOWED_NETWORKS"), "{error}");
    }

    #[tokio::test]
    async fn resolver_rejects_special_purpose_ipv6() {
        let resolver = GuardedResolver::new(NetworkPolicy::default());
        for host in ["::ffff:0:7f00:1", "64:ff9b:1::a00:1", "3fff::1"] {
            let error = resolver.resolve_host(host).await.unwrap_err();
            assert!(matches!(error, ResolveError::Rejected { .. }), "{host}: {error}");
        }
    }

    #[tokio::test]
    async fn special_purpose_ipv6_literal_is_not_sent() {
        let client = build_client(&DispatchSettings::default(), &NetworkPolicy::default()).unwrap();
        for url in ["http://[::ffff:0:7f00:1]:9/", "http://[64:ff9b:1::a00:1]/", "http://[3fff::1]/"] {
            let error =
                post(&client, &NetworkPolicy::default(), url, HeaderMap::new(), Vec::new(), Duration::from_secs(1))
                    .await
                    .unwrap_err();
            assert_eq!(error.class(), "network_policy", "{url}: {error}");
        }
    }

    #[tokio::test]
    async fn port_zero_is_not_sent() {
        let policy = loopback_policy();
        let client = build_client(&DispatchSettings::default(), &policy).unwrap();
        let error =
            post(&client, &policy, "http://127.0.0.1:0/hook", HeaderMap::new(), Vec::new(), Duration::from_secs(1))
                .await
                .unwrap_err();
        assert_eq!(error.class(), "invalid_url", "{error}");
        assert!(error.to_string().contains("port 0"), "{error}");
    }

    #[test]
    fn user_agent_names_herald_and_version() {
        assert_eq!(user_agent(), format!("Herald/{}", env!("CARGO_PKG_VERSION")));
    }
}
