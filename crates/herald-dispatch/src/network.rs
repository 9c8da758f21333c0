//! The outbound network guard.
//!
//! Deliveries go only to public addresses unless the operator allows more networks with
//! `HERALD_DELIVERY_ALLOWED_NETWORKS`. The guard checks the address actually connected to:
//! IP literals in URLs are checked before sending, and host names are checked after DNS
//! resolution by the dispatcher's resolver, which returns only permitted addresses. This
//! closes the gap where a name resolves to a public address when saved and to a private one
//! when used (DNS rebinding).
//!
//! "Public" means globally reachable, as the IANA IPv4 and IPv6 Special-Purpose Address
//! Registries (RFC 6890 and its updates) define it. An IPv4 address is public unless it is in:
//!
//! - 0.0.0.0/8 ("this network"), 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16 (private),
//!   100.64.0.0/10 (shared address space, CGNAT), 127.0.0.0/8 (loopback), 169.254.0.0/16
//!   (link-local, which contains cloud metadata services such as 169.254.169.254);
//! - 192.0.0.0/24 (IETF protocol assignments), 192.0.2.0/24, 198.51.100.0/24 and
//!   203.0.113.0/24 (documentation), 192.88.99.0/24 (the deprecated 6to4 relay anycast),
//!   198.18.0.0/15 (benchmarking);
//! - 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved) and 255.255.255.255 (broadcast).
//!
//! The registry lists 192.0.0.9 and 192.0.0.10 (PCP and TURN anycast) as globally reachable,
//! but the guard rejects all of 192.0.0.0/24, because no webhook receiver is served there.
//!
//! IPv6 addresses that embed an IPv4 address are judged by the IPv4 address: IPv4-mapped
//! `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96`, IPv4-compatible `::/96` (deprecated),
//! the well-known NAT64 prefix `64:ff9b::/96` and 6to4 `2002::/16`. Any other IPv6 address is
//! public only if it is in global unicast `2000::/3` and not in:
//!
//! - `2001::/23` (IETF protocol assignments, which include Teredo `2001::/32` and
//!   benchmarking `2001:2::/48`). The globally reachable blocks in it, such as AMT
//!   `2001:3::/32` and AS112 `2001:4:112::/48`, are rejected too, because no webhook receiver
//!   is served there either;
//! - `2001:db8::/32` and `3fff::/20` (documentation).
//!
//! Requiring `2000::/3` rejects everything that IANA has not allocated for global unicast,
//! including the unspecified address `::`, loopback `::1`, the discard-only prefix `100::/64`,
//! the dummy prefix `100:0:0:1::/64`, the local-use NAT64 prefix `64:ff9b:1::/48`, SRv6
//! segment identifiers `5f00::/16`, unique local `fc00::/7`, link-local `fe80::/10`,
//! site-local `fec0::/10` (deprecated) and multicast `ff00::/8`.
//!
//! NOTE: these lists follow the registries as they stood in 2025 and are not updated at run
//! time. A block that IANA adds later outside `2000::/3` is rejected already, but one inside
//! `2000::/3` or in IPv4 is accepted until it is added here.
//!
//! A URL must also name a port that a receiver can listen on, so port 0 is rejected.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// The addresses that deliveries may connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    allowed: Vec<IpNet>,
}

/// A URL or address that the policy rejects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The URL does not parse or is not http(s).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The rejected URL.
        url: String,
        /// The reason for the rejection.
        reason: String,
    },
    /// The address is not public and no allowed network contains it.
    #[error(
        "address {address} is not a public address; deliveries to it are refused unless \
         HERALD_DELIVERY_ALLOWED_NETWORKS contains it (for example {suggestion})"
    )]
    AddressNotAllowed {
        /// The refused address.
        address: IpAddr,
        /// A network that would allow it.
        suggestion: String,
    },
}

impl NetworkPolicy {
    /// Creates a policy that also allows `allowed` networks.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Parses a comma-separated list of networks in CIDR form. A bare address stands for
    /// that one address. Empty items are ignored.
    pub fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>().or_else(|_| item.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                    format!("invalid network {item:?}; use CIDR notation such as 127.0.0.0/8 or 10.0.0.0/8")
                })
            })
            .collect()
    }

    /// Returns the networks allowed beyond public addresses.
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Returns true if and only if a delivery may connect to `address`.
    pub fn permits(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        is_public(address) || self.allowed.iter().any(|network| network.contains(&address))
    }

    /// Checks `address` and explains a refusal.
    pub fn check_address(&self, address: IpAddr) -> Result<(), GuardError> {
        if self.permits(address) {
            return Ok(());
        }
        let suggestion = match canonical(address) {
            IpAddr::V4(v4) => format!("{}/32", v4),
            IpAddr::V6(v6) => format!("{}/128", v6),
        };
        Err(GuardError::AddressNotAllowed { address, suggestion })
    }

    /// Checks what can be checked of a delivery URL without DNS. The URL must be http or
    /// https, with a host and a port other than 0. A literal IP address (in any form the URL
    /// standard accepts, such as `http://2130706433/`) or `localhost` must be permitted. Host
    /// names are checked again after resolution, at send time.
    pub fn check_url(&self, text: &str) -> Result<Url, GuardError> {
        let invalid = |reason: &str| GuardError::InvalidUrl { url: text.to_owned(), reason: reason.to_owned() };
        let url = Url::parse(text).map_err(|error| invalid(&format!("{error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("use an http:// or https:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the URL are not allowed; put a token in an access-token secret instead",
            ));
        }
        match url.host() {
            None => return Err(invalid("the URL has no host")),
            Some(Host::Ipv4(v4)) => self.check_address(IpAddr::V4(v4))?,
            Some(Host::Ipv6(v6)) => self.check_address(IpAddr::V6(v6))?,
            Some(Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if domain == "localhost" || domain.ends_with(".localhost") {
                    self.check_address(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
                }
            }
        }
        if url.port() == Some(0) {
            // No receiver can listen on port 0, because binding to it picks a free port
            // instead, so every attempt would fail with a misleading connection error.
            return Err(invalid("port 0 is not a port a receiver can listen on; use the receiver's port, such as 443"));
        }
        Ok(url)
    }
}

impl fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allowed.is_empty() {
            return f.write_str("public addresses only");
        }
        let networks: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
        write!(f, "public addresses and {}", networks.join(", "))
    }
}

/// Returns the IPv4 address an IPv6 address carries, if it is of a form that embeds one,
/// and the address itself otherwise.
pub fn canonical(address: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = address else {
        return address;
    };
    match embedded_ipv4(v6) {
        Some(v4) => IpAddr::V4(v4),
        None => address,
    }
}

/// Returns the IPv4 address carried by an IPv4-mapped, IPv4-translated, IPv4-compatible,
/// NAT64 (well-known prefix) or 6to4 address.
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = address.segments();
    let low32 = Ipv4Addr::from((u32::from(segments[6]) << 16) | u32::from(segments[7]));
    match segments[..6] {
        // IPv4-mapped ::ffff:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff] => Some(low32),
        // IPv4-translated ::ffff:0:a.b.c.d (RFC 2765, SIIT).
        [0, 0, 0, 0, 0xffff, 0] => Some(low32),
        // IPv4-compatible ::a.b.c.d (deprecated), excluding :: and ::1, which are IPv6's own
        // unspecified and loopback addresses and are rejected as such.
        [0, 0, 0, 0, 0, 0] if segments[6] != 0 => Some(low32),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0] => Some(low32),
        // 6to4 (2002::/16) carries the IPv4 address in the next 32 bits.
        [0x2002, high, low, ..] => Some(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))),
        _ => None,
    }
}

/// Returns true if and only if the address is globally reachable.
pub fn is_public(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    let blocked = a == 0                                   // "this network" 0.0.0.0/8
        || a == 10                                         // private
        || (a == 100 && (64..128).contains(&b))            // shared address space (CGNAT)
        || a == 127                                        // loopback
        || (a == 169 && b == 254)                          // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))             // private
        || (a == 192 && b == 0 && c == 0)                  // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                  // documentation TEST-NET-1
        || (a == 192 && b == 88 && c == 99)                // 6to4 relay anycast
        || (a == 192 && b == 168)                          // private
        || (a == 198 && (18..20).contains(&b))             // benchmarking
        || (a == 198 && b == 51 && c == 100)               // documentation TEST-NET-2
        || (a == 203 && b == 0 && c == 113)                // documentation TEST-NET-3
        || a >= 224; // multicast, reserved and broadcast
    !blocked
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let [first, second, ..] = address.segments();
    match first {
        // IETF protocol assignments 2001::/23, and documentation 2001:db8::/32.
        0x2001 => second >= 0x0200 && second != 0x0db8,
        // Documentation 3fff::/20.
        0x3fff => second >= 0x1000,
        // Global unicast 2000::/3. IANA has allocated nothing outside it for global use.
        _ => (first & 0xe000) == 0x2000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(address)), "{address} should not be public");
        }
    }

    #[test]
    fn special_purpose_ipv6_ranges_are_not_public() {
        for address in [
            "::ffff:0:7f00:1",    // IPv4-translated 127.0.0.1
            "::ffff:0:a9fe:a9fe", // IPv4-translated 169.254.169.254
            "64:ff9b:1::a00:1",   // local-use NAT64
            "64:ff9b:1:ffff::1",  // local-use NAT64, end of the /48
            "3fff::1",            // documentation
            "3fff:fff::1",        // documentation, end of the /20
            "::2",                // reserved ::/8, not IPv4-compatible
            "100::1",             // discard-only
            "100:0:0:1::1",       // dummy prefix
            "5f00::1",            // SRv6 segment identifiers
            "2001::1",            // Teredo
            "2001:2::1",          // benchmarking
            "fec0::1",            // site-local
            "4000::1",            // outside global unicast 2000::/3
            "e000::1",            // outside global unicast 2000::/3
        ] {
            assert!(!is_public(ip(address)), "{address} should not be public");
        }
    }

    #[test]
    fn global_addresses_are_public() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "::ffff:0:808:808", // IPv4-translated 8.8.8.8
            "64:ff9b::808:808", // NAT64 of 8.8.8.8
            "2002:808:808::1",  // 6to4 of 8.8.8.8
            "172.32.0.1",
            "100.128.0.1",
            "2000::1",
            "3ffe::1",
            "3fff:1000::1", // just past the documentation /20
            "2001:200::1",  // just past 2001::/23
        ] {
            assert!(is_public(ip(address)), "{address} should be public");
        }
    }

    #[test]
    fn translated_address_uses_allowed_ipv4_network() {
        let policy = NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8").unwrap());
        assert!(policy.permits(ip("::ffff:0:7f00:1")));
        let error = NetworkPolicy::default().check_address(ip("::ffff:0:7f00:1")).unwrap_err();
        assert!(error.to_string().contains("127.0.0.1/32"), "{error}");
    }

    #[test]
    fn allowed_networks_extend_the_policy() {
        let policy = NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8, 10.0.0.5").unwrap());
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(policy.permits(ip("10.0.0.5")));
        assert!(!policy.permits(ip("10.0.0.6")));
        assert!(!policy.permits(ip("169.254.169.254")));
    }

    #[test]
    fn invalid_network_names_the_item() {
        let error = NetworkPolicy::parse_networks("127.0.0.0/8,nope").unwrap_err();
        assert!(error.contains("\"nope\""), "{error}");
    }

    #[test]
    fn urls_with_literal_addresses_are_checked() {
        let policy = NetworkPolicy::default();
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://localhost:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:0:7f00:1]/",
            "http://[64:ff9b:1::a00:1]/",
            "http://[3fff::1]/",
        ] {
            assert!(matches!(policy.check_url(url), Err(GuardError::AddressNotAllowed { .. })), "{url}");
        }
        assert!(policy.check_url("https://hooks.example.com/x").is_ok());
        assert!(policy.check_url("https://8.8.8.8/x").is_ok());
    }

    #[test]
    fn urls_must_be_http_with_host_and_no_credentials() {
        let policy = NetworkPolicy::default();
        for url in ["ftp://example.com/", "not a url", "https://user:pw@example.com/", "file:///etc/passwd"] {
            assert!(matches!(policy.check_url(url), Err(GuardError::InvalidUrl { .. })), "{url}");
        }
    }

    #[test]
    fn url_with_port_zero_is_invalid() {
        let policy = NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8").unwrap());
        for url in ["http://example.invalid:0/", "https://8.8.8.8:0/hook", "http://127.0.0.1:0/"] {
            let error = policy.check_url(url).unwrap_err();
            assert!(matches!(error, GuardError::InvalidUrl { .. }), "{url}: {error}");
            assert!(error.to_string().contains("port 0"), "{error}");
        }
        assert!(policy.check_url("http://example.invalid:8080/").is_ok());
    }
}
