//! How a config names a machine on the network, for the sections that do (`[appliance]`,
//! `[network]`, `[configuration-server]`): a DNS host name or an IPv4 address.

use std::net::Ipv4Addr;

/// A DNS name (RFC 1123): dot-separated labels of 1-63 letters, digits and inner hyphens,
/// at most 253 characters in all (RFC 1035's 255 octets on the wire, less the length
/// bytes). For names mtkit only resolves (NTP servers, the configuration server).
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Four numbers 0-255, as `std` parses them (no leading zeros, no shorthand).
pub(super) fn is_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}
