//! `[configuration-server]`: the server the master target works with (doctor connects to it).

use super::address::{is_hostname, is_ipv4};
use super::locate::{Checker, path, q};
use crate::config::Config;

/// A host name or IPv4 address, and a port.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let cs = &c.configuration_server;
    if !is_ipv4(&cs.address) && !is_hostname(&cs.address) {
        ck.report(
            &path(&["configuration-server", "address"]),
            q(&cs.address),
            "not a host name or IPv4 address, e.g. \"192.0.2.5\" or \"cs.example.local\"",
        );
    }
    if cs.port == 0 {
        ck.report(
            &path(&["configuration-server", "port"]),
            0,
            "must be 1..=65535 (the configuration server listens on 443)",
        );
    }
}
