//! The outbound network guard.
//!
//! Deliveries go only to public addresses unless the operator allows more networks with
//! `HERALD_DELIVERY_ALLOWED_NETWORKS`. The guard checks the address actually connected to:
//! IP literals in URLs are checked before sending, and host names are checked after DNS
//! resolution by the dispatcher's resolver, which returns only permitted addresses. This
//! closes the gap where a name resolves to a public address when saved and to a private one
//! when used (DNS rebinding).
//!
//! "Public" excludes loopback, private (RFC 1918), shared (CGNAT), link-local (which holds
//! cloud metadata services such as 169.254.169.254), unspecified, broadcast, multicast,
//! documentation, benchmarking and reserved ranges, and their IPv6 counterparts. IPv4
//! addresses embedded in IPv6 (mapped, compatible, NAT64 and 6to4) are judged by the IPv4
//! address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// Which addresses deliveries may connect to.
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
        /// Why it was rejected.
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

    /// Checks what can be checked of a delivery URL without DNS: it must be http or https
    /// with a host, and a literal IP address (in any form the URL standard accepts, such as
    /// `http://2130706433/`) or `localhost` must be permitted. Host names are checked again
    /// after resolution, at send time.
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
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let segments = v6.segments();
    // IPv4-compatible (::a.b.c.d, deprecated), excluding :: and ::1.
    if segments[..6].iter().all(|segment| *segment == 0) && segments[6] != 0 {
        return IpAddr::V4(Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32));
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32));
    }
    // 6to4 (2002::/16) carries the IPv4 address in the next 32 bits.
    if segments[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from(((segments[1] as u32) << 16) | segments[2] as u32));
    }
    address
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
    let segments = address.segments();
    let blocked = address.is_unspecified()
        || address.is_loopback()
        || (segments[0] & 0xfe00) == 0xfc00                // unique local fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80                // link-local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0                // site-local (deprecated) fec0::/10
        || (segments[0] & 0xff00) == 0xff00                // multicast
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (segments[0] == 0x2001 && segments[1] < 0x0200); // IETF protocol assignments 2001::/23
    !blocked
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
    fn global_addresses_are_public() {
        for address in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "172.32.0.1", "100.128.0.1"] {
            assert!(is_public(ip(address)), "{address} should be public");
        }
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
}
