//! `[network]`: the appliance's interface, its address (static or DHCP), name servers and
//! time servers.

use super::address::{is_hostname, is_ipv4};
use super::locate::{Checker, element, path, q};
use crate::config::BootProto;
use crate::config::Config;
use std::net::Ipv4Addr;

/// An interface name, addresses only with bootproto = "static" (and then an ip, and a
/// gateway inside its network), name and time servers that parse.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let n = &c.network;
    let valid_ifname = !n.device.is_empty()
        && n.device.len() <= 15
        && n.device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid_ifname {
        ck.report(
            &path(&["network", "device"]),
            q(&n.device),
            "not a network interface name: up to 15 letters, digits, '.', '_' or '-', e.g. \"eth0\"",
        );
    }
    let is_static = n.bootproto == BootProto::Static;
    // DHCP is the default: an address given without bootproto = "static" would be
    // silently unused. (A malformed one gets its own message below.)
    if !is_static {
        let unused: Vec<(&str, String)> = [
            ("ip", is_ipv4(&n.ip).then(|| q(&n.ip))),
            ("gateway", is_ipv4(&n.gateway).then(|| q(&n.gateway))),
            (
                "dns",
                (!n.dns.is_empty() && n.dns.iter().all(|d| is_ipv4(d))).then(|| {
                    format!(
                        "[{}]",
                        n.dns.iter().map(|d| q(d)).collect::<Vec<_>>().join(", ")
                    )
                }),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        for (key, shown) in unused {
            ck.report(
                &path(&["network", key]),
                shown,
                "not used with bootproto = \"dhcp\" (the default): set bootproto = \"static\" \
                 to use it, or remove it",
            );
        }
    }
    // A warning, not an error: the machine is reachable, only named localhost.localdomain
    // (and a firstboot config ISO may give an address alone).
    if is_static && c.appliance.hostname.is_empty() {
        ck.warn(
            &path(&["appliance", "hostname"]),
            "\"\"",
            "with bootproto = \"static\" nothing names the machine (\"\" takes the name DHCP \
             gives): it will be localhost.localdomain; set one, e.g. \"mt01.dr.example.com\"",
        );
    }
    if n.ip.is_empty() {
        if is_static {
            ck.report(
                &path(&["network", "ip"]),
                "\"\"",
                "bootproto = \"static\" needs an IPv4 address, e.g. \"192.0.2.10\" (or use bootproto = \"dhcp\")",
            );
        }
    } else if !is_ipv4(&n.ip) {
        ck.report(
            &path(&["network", "ip"]),
            q(&n.ip),
            "not an IPv4 address: write four numbers 0-255, e.g. \"192.0.2.10\"",
        );
    }
    if n.prefix > 32 {
        ck.report(&path(&["network", "prefix"]), n.prefix, "must be 0..=32");
    }
    if !n.gateway.is_empty() {
        if !is_ipv4(&n.gateway) {
            ck.report(
                &path(&["network", "gateway"]),
                q(&n.gateway),
                "not an IPv4 address, e.g. \"192.0.2.1\"",
            );
        } else if let (true, Ok(ip), Ok(gw)) = (
            is_static && n.prefix <= 32,
            n.ip.parse::<Ipv4Addr>(),
            n.gateway.parse::<Ipv4Addr>(),
        ) && !in_network(gw, ip, n.prefix)
        {
            ck.report(
                &path(&["network", "gateway"]),
                q(&n.gateway),
                format!(
                    "outside the network {}/{} of ip = {}: use an address inside it, or fix ip/prefix",
                    Ipv4Addr::from(
                        u32::from(ip) & (u32::MAX.checked_shl(32 - u32::from(n.prefix)).unwrap_or(0))
                    ),
                    n.prefix,
                    q(&n.ip)
                ),
            );
        }
    }
    for (i, d) in n.dns.iter().enumerate() {
        if !is_ipv4(d) {
            ck.report(
                &element(&["network", "dns"], i),
                q(d),
                "name servers are IPv4 addresses, e.g. \"192.0.2.53\"",
            );
        }
    }
    for (i, s) in n.ntp.iter().enumerate() {
        if !is_ipv4(s) && !is_hostname(s) {
            ck.report(
                &element(&["network", "ntp"], i),
                q(s),
                "not a host name or IPv4 address, e.g. \"0.centos.pool.ntp.org\"",
            );
        }
    }
}

fn in_network(addr: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    u32::from(addr) & mask == u32::from(net) & mask
}
