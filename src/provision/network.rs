//! The MT NIC: kept away from NetworkManager and brought up at boot (its `ifcfg-<device>`).

use super::{Plan, Reader};
use crate::config::{BootProto, Network};
use anyhow::Result;

pub const SCRIPTS: &str = "etc/sysconfig/network-scripts";

/// Adds the ifcfg change to `plan` (or a note when the system has no network-scripts).
pub fn plan(r: &Reader, net: &Network, plan: &mut Plan) -> Result<()> {
    if !r.is_dir(SCRIPTS)? {
        plan.notes.push(format!(
            "no {SCRIPTS}: set {} unmanaged by NetworkManager by hand",
            net.device
        ));
        return Ok(());
    }
    let rel = format!("{SCRIPTS}/ifcfg-{}", net.device);
    let cur = r.text(&rel)?;
    let new = plan_ifcfg(cur.as_deref(), net);
    plan.edit("network", &rel, cur.as_deref(), new, 0o644);
    Ok(())
}

/// New ifcfg text with `NM_CONTROLLED=no` and `ONBOOT=yes`, or `None`. A missing file is
/// created from the `[network]` section.
pub fn plan_ifcfg(current: Option<&str>, net: &Network) -> Option<String> {
    let Some(current) = current else {
        let mut t = format!(
            "DEVICE={}\nTYPE=Ethernet\nONBOOT=yes\nNM_CONTROLLED=no\n",
            net.device
        );
        match net.bootproto {
            BootProto::Dhcp => t.push_str("BOOTPROTO=dhcp\n"),
            BootProto::Static => {
                t.push_str(&format!(
                    "BOOTPROTO=none\nIPADDR={}\nPREFIX={}\n",
                    net.ip, net.prefix
                ));
                if !net.gateway.is_empty() {
                    t.push_str(&format!("GATEWAY={}\n", net.gateway));
                }
            }
        }
        return Some(t);
    };
    // CentOS 6 writes ONBOOT=no for a NIC not brought up in the installer: the MT would
    // boot without its network, and the writer would listen on nothing.
    let mut text = current.to_string();
    for (key, value) in [("ONBOOT", "yes"), ("NM_CONTROLLED", "no")] {
        text = set_key(&text, key, value);
    }
    (text != current).then_some(text)
}

/// The value of `KEY` in a shell-variable file (the last assignment, quotes removed;
/// commented lines skipped), as the ifcfg scripts read it.
pub fn get_key(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .rfind(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_string())
}

/// `KEY=value` set in a shell-variable file: an existing assignment is replaced in place
/// (quotes dropped), else one is appended.
pub fn set_key(text: &str, key: &str, value: &str) -> String {
    let want = format!("{key}={value}");
    let mut found = false;
    let mut out = String::with_capacity(text.len() + want.len() + 1);
    for line in text.lines() {
        let is_key = line
            .trim_start()
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key);
        if is_key {
            if !found {
                out.push_str(&want);
                out.push('\n');
            }
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&want);
        out.push('\n');
    }
    out
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

    #[test]
    fn stock_minimal_ifcfg_gets_onboot_and_nm_off() {
        let cur = "DEVICE=eth0\nHWADDR=00:0C:29:AA:BB:CC\nTYPE=Ethernet\nONBOOT=no\nNM_CONTROLLED=yes\nBOOTPROTO=dhcp\n";
        let new = plan_ifcfg(Some(cur), &static_net()).unwrap();
        assert_eq!(
            new,
            "DEVICE=eth0\nHWADDR=00:0C:29:AA:BB:CC\nTYPE=Ethernet\nONBOOT=yes\nNM_CONTROLLED=no\nBOOTPROTO=dhcp\n"
        );
        assert_eq!(plan_ifcfg(Some(&new), &static_net()), None);
    }

    #[test]
    fn get_key_reads_what_set_key_writes() {
        let t = "# ONBOOT=yes\nONBOOT=\"no\"\nNAME='System eth0'\n";
        assert_eq!(get_key(t, "ONBOOT").as_deref(), Some("no"));
        assert_eq!(get_key(t, "NAME").as_deref(), Some("System eth0"));
        assert_eq!(
            get_key(&set_key(t, "ONBOOT", "yes"), "ONBOOT").as_deref(),
            Some("yes")
        );
        assert_eq!(get_key(t, "NM_CONTROLLED"), None);
    }

    #[test]
    fn quoted_and_missing_keys() {
        let new = plan_ifcfg(Some("DEVICE=eth1\nONBOOT=\"no\"\n"), &static_net()).unwrap();
        assert_eq!(new, "DEVICE=eth1\nONBOOT=yes\nNM_CONTROLLED=no\n");
    }

    #[test]
    fn missing_file_is_written_from_config() {
        let t = plan_ifcfg(None, &static_net()).unwrap();
        assert!(
            t.contains("IPADDR=192.0.2.10\nPREFIX=24\nGATEWAY=192.0.2.1\n"),
            "{t}"
        );
        assert!(t.contains("NM_CONTROLLED=no\n"));
    }
}
