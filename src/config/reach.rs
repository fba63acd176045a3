//! Will the appliance a config describes be reachable, and can anyone log in? What `build`
//! refuses (a VM nobody can use) and what it only warns about, with the keys to set.
//!
//! The addresses of RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) exist for
//! documentation and examples: no real network routes them, so a static address there is
//! an example left in, not a choice.

use super::{BootProto, Config};
use std::net::Ipv4Addr;

/// True for an address of an RFC 5737 documentation range.
pub fn is_documentation(ip: Ipv4Addr) -> bool {
    matches!(
        ip.octets(),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
    )
}

fn documentation(s: &str) -> bool {
    s.parse().is_ok_and(is_documentation)
}

/// True when root has a password (a hash, or a file to hash at build time).
pub fn root_has_password(c: &Config) -> bool {
    !c.appliance.root_password_hash.is_empty() || c.appliance.root_password_file.is_some()
}

/// Why an appliance built from `c` could not be used: nobody could log in, or it would
/// sit on an example network. Each message names the keys that fix it.
pub fn blockers(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if !root_has_password(c) && !c.access.has_ssh_keys() {
        out.push(
            "nobody could log in: root has no password and no SSH key is given. Set \
             [access] ssh-authorized-keys-file = \"PATH\" (e.g. a copy of ~/.ssh/id_rsa.pub) \
             or ssh-authorized-keys = [\"ssh-rsa AAAA... you@host\"], or give root a \
             password with [appliance] root-password-hash (openssl passwd -6) or \
             root-password-file"
                .to_string(),
        );
    }
    let n = &c.network;
    if n.bootproto == BootProto::Static {
        let mut example: Vec<String> = Vec::new();
        if documentation(&n.ip) {
            example.push(format!("ip = {:?}", n.ip));
        }
        if documentation(&n.gateway) {
            example.push(format!("gateway = {:?}", n.gateway));
        }
        for d in n.dns.iter().filter(|d| documentation(d)) {
            example.push(format!("dns = {d:?}"));
        }
        if !example.is_empty() {
            out.push(format!(
                "the network is an example: [network] {} {} in a documentation range \
                 (RFC 5737) that no network routes. Set [network] ip, prefix, gateway and \
                 dns for the VM's network, or bootproto = \"dhcp\"",
                example.join(", "),
                if example.len() == 1 { "is" } else { "are" }
            ));
        }
    }
    out
}

/// What works but is likely a leftover example: said as warnings.
pub fn doubts(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let h = &c.appliance.hostname;
    // RFC 2606 / RFC 6761 names reserved for examples and tests.
    let labels: Vec<&str> = h.split('.').collect();
    let reserved = labels.iter().any(|l| l.eq_ignore_ascii_case("example"))
        || labels.last().is_some_and(|l| {
            ["test", "invalid", "localhost"].contains(&l.to_ascii_lowercase().as_str())
        });
    if !h.is_empty() && reserved {
        out.push(format!(
            "[appliance] hostname = {h:?} is an example name (RFC 2606): set the real one, or \
             \"\" to take the name DHCP gives"
        ));
    }
    let cs = &c.configuration_server.address;
    if documentation(cs) {
        out.push(format!(
            "[configuration-server] address = {cs:?} is a documentation address (RFC 5737): \
             doctor's config-server check fails until it names the real server"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_ranges() {
        for a in ["192.0.2.10", "198.51.100.1", "203.0.113.254"] {
            assert!(is_documentation(a.parse().unwrap()), "{a}");
        }
        for a in ["192.0.3.1", "10.0.0.1", "192.168.1.10", "203.0.114.1"] {
            assert!(!is_documentation(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn blockers_name_the_keys() {
        let mut c = Config::default();
        let b = blockers(&c);
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(b[0].contains("[access] ssh-authorized-keys-file"), "{b:?}");
        c.appliance.root_password_hash = format!("$6$salt${}", "a".repeat(86));
        assert!(blockers(&c).is_empty());
        c.network.bootproto = BootProto::Static;
        c.network.ip = "192.0.2.10".into();
        c.network.gateway = "192.0.2.1".into();
        c.network.dns = vec!["10.1.1.53".into()];
        let b = blockers(&c);
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(
            b[0].contains(
                "ip = \"192.0.2.10\", gateway = \"192.0.2.1\" are in a documentation range"
            ) && b[0].contains("bootproto = \"dhcp\""),
            "{b:?}"
        );
        c.network.ip = "10.1.1.10".into();
        c.network.gateway = "10.1.1.1".into();
        assert!(blockers(&c).is_empty());
    }

    #[test]
    fn example_names_are_doubted() {
        let mut c = Config::default();
        c.configuration_server.address = "cs.corp.internal".into();
        c.appliance.hostname = "mt01.example.local".into();
        assert_eq!(doubts(&c).len(), 1);
        c.appliance.hostname = "mt01.dr.corp.com".into();
        assert!(doubts(&c).is_empty());
    }
}
