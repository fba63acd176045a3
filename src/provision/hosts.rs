//! `/etc/hosts`: the appliance's host name resolves to its MT address.
//!
//! With `bootproto = "dhcp"` the address is not known in advance and can change, so nothing
//! is added: the name must resolve through DNS (a note says so).

use crate::config::{BootProto, Network};

pub const PATH: &str = "etc/hosts";

/// New hosts text, or `None`. The host name (and its short form) is taken off any line
/// mapping another address, then one `<ip> <fqdn> <short>` line is added.
pub fn plan(current: Option<&str>, hostname: &str, net: &Network) -> Option<String> {
    if net.bootproto == BootProto::Dhcp || net.ip.is_empty() || hostname.is_empty() {
        return None;
    }
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names: Vec<&str> = if short == hostname {
        vec![hostname]
    } else {
        vec![hostname, short]
    };
    let want = format!("{}\t{}", net.ip, names.join(" "));
    let current = current.unwrap_or("");
    let mut out = String::new();
    let mut have = false;
    for line in current.lines() {
        let (code, comment) = match line.find('#') {
            Some(i) => (&line[..i], &line[i..]),
            None => (line, ""),
        };
        let mut fields = code.split_whitespace();
        let Some(addr) = fields.next() else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let aliases: Vec<&str> = fields.collect();
        if addr == net.ip && names.iter().all(|n| aliases.contains(n)) && !have {
            have = true;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // The resolver takes the first line naming the host: left on another address
        // (the installer's 127.0.0.1 line, say), the name would shadow ours.
        if !aliases.iter().any(|a| names.contains(a)) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let kept: Vec<&str> = aliases.into_iter().filter(|a| !names.contains(a)).collect();
        if !kept.is_empty() {
            out.push_str(&format!("{addr}\t{}", kept.join(" ")));
            if !comment.is_empty() {
                out.push(' ');
                out.push_str(comment);
            }
            out.push('\n');
        }
    }
    if !have {
        out.push_str(&want);
        out.push('\n');
    }
    (out != current).then_some(out)
}

/// What the plan says when it cannot map the name.
pub fn note(net: &Network) -> Option<String> {
    (net.bootproto == BootProto::Dhcp).then(|| {
        "bootproto is dhcp: the host name is not added to /etc/hosts (make it resolve through DNS)".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The static network these tests were written for (the default is DHCP).
    fn static_net() -> Network {
        Network {
            bootproto: crate::config::BootProto::Static,
            ip: "192.0.2.10".into(),
            gateway: "192.0.2.1".into(),
            dns: vec!["192.0.2.53".into()],
            ..Network::default()
        }
    }

    const STOCK: &str = "127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n";

    #[test]
    fn adds_the_mt_address_once() {
        let new = plan(Some(STOCK), "mt01.example.local", &static_net()).unwrap();
        assert_eq!(new, format!("{STOCK}192.0.2.10\tmt01.example.local mt01\n"));
        assert_eq!(plan(Some(&new), "mt01.example.local", &static_net()), None);
    }

    #[test]
    fn name_moves_off_other_addresses() {
        let cur = "127.0.0.1 localhost mt01.example.local mt01\n10.0.0.9 mt01.example.local\n";
        let new = plan(Some(cur), "mt01.example.local", &static_net()).unwrap();
        assert_eq!(
            new,
            "127.0.0.1\tlocalhost\n192.0.2.10\tmt01.example.local mt01\n"
        );
    }

    #[test]
    fn dhcp_changes_nothing() {
        let net = Network {
            bootproto: BootProto::Dhcp,
            ..Network::default()
        };
        assert_eq!(plan(Some(STOCK), "mt01", &net), None);
        assert!(note(&net).is_some());
    }
}
