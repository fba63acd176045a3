//! VM template pipelines: `seal` an installed master target into a template, `firstboot`
//! gives each clone its own identity, and `packer` writes a vsphere-iso template.
//!
//! Seal and firstboot are planned like `apply` and run through its executor (without its
//! revert record): every change shows as a diff with `--dry-run`, a second run changes
//! nothing, and every path is resolved inside `--root` ([`crate::files::Root`]: links in
//! its folders are followed as the system under the root sees them, never out of it).

pub mod firstboot;
pub mod medium;
pub mod packer;
pub mod seal;
pub mod service;
pub mod tls;

use crate::config::Config;
use crate::files::{Links, Root};
use crate::provision::network::{SCRIPTS, set_key};
use crate::provision::{Plan, executor};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The appliance.toml installed on the machine (relative to its root).
pub const CONFIG: &str = "etc/mtkit/appliance.toml";
/// Seal's mark: the system is a template whose clones have not had their first boot.
pub const SEAL_MARK: &str = "var/lib/mtkit/seal";
/// Where the executor logs what seal and firstboot changed.
pub const SEAL_LOG: &str = "var/log/mtkit-seal.log";
pub const FIRSTBOOT_LOG: &str = "var/log/mtkit-firstboot.log";

/// The TLS folder the writer uses when `[writer.tls]` does not say (see docs/nbd-server.md).
pub const DEFAULT_TLS_DIR: &str = "/etc/mtkit/tls";

/// The writer's TLS files, as paths of the system (absolute, not under root yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `clients/` of `mtkit writer certs` (client keys issued from this CA)
    pub clients: PathBuf,
}

impl TlsPaths {
    /// From `[writer.tls]`: its `dir`, or the files named one by one (the CA key beside the
    /// CA certificate), else the default folder.
    pub fn of(config: &Config) -> TlsPaths {
        let t = config.writer.tls.clone().unwrap_or_default();
        let dir = t.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_TLS_DIR));
        let ca_cert = t.ca.unwrap_or_else(|| dir.join("ca-cert.pem"));
        let ca_key = crate::files::parent_dir(&ca_cert).join("ca-key.pem");
        TlsPaths {
            server_cert: t.cert.unwrap_or_else(|| dir.join("server-cert.pem")),
            server_key: t.key.unwrap_or_else(|| dir.join("server-key.pem")),
            clients: dir.join("clients"),
            ca_cert,
            ca_key,
        }
    }
}

/// The MT NIC's ifcfg file (relative to the root), when the system has network-scripts.
pub fn ifcfg(root: &Root, config: &Config) -> Result<Option<PathBuf>> {
    if !root.is_dir(Path::new(SCRIPTS), Links::InRoot)? {
        return Ok(None);
    }
    let rel = format!("{SCRIPTS}/ifcfg-{}", config.network.device);
    Ok(Some(root.resolve(rel)?))
}

/// Keys of an ifcfg file that tie it to one machine's NIC.
const NIC_KEYS: [&str; 3] = ["HWADDR", "MACADDR", "UUID"];

/// True for the keys of a static address (`IPADDR`, `IPADDR0`, `DNS2`, ...).
fn is_address_key(key: &str) -> bool {
    let stem = key.trim_end_matches(|c: char| c.is_ascii_digit());
    ["IPADDR", "PREFIX", "NETMASK", "GATEWAY", "DNS"].contains(&stem)
}

/// `text` without the lines assigning a key for which `drop` is true.
fn drop_keys(text: &str, drop: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let key = line.trim_start().split_once('=').map(|(k, _)| k.trim());
        if key.is_some_and(&drop) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The address an ifcfg file should give the NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Dhcp,
    Static {
        ip: std::net::Ipv4Addr,
        prefix: u8,
        gateway: Option<std::net::Ipv4Addr>,
        dns: Vec<std::net::Ipv4Addr>,
    },
}

/// The ifcfg text with no tie to a NIC (HWADDR, MACADDR, UUID) and the address `addr`
/// (`None` keeps the address lines as they are).
pub fn ifcfg_text(text: &str, addr: Option<&Address>) -> String {
    let Some(addr) = addr else {
        return drop_keys(text, |k| NIC_KEYS.contains(&k));
    };
    let mut t = drop_keys(text, |k| NIC_KEYS.contains(&k) || is_address_key(k));
    match addr {
        Address::Dhcp => t = set_key(&t, "BOOTPROTO", "dhcp"),
        Address::Static {
            ip,
            prefix,
            gateway,
            dns,
        } => {
            t = set_key(&t, "BOOTPROTO", "none");
            t.push_str(&format!("IPADDR={ip}\nPREFIX={prefix}\n"));
            if let Some(g) = gateway {
                t.push_str(&format!("GATEWAY={g}\n"));
            }
            for (i, d) in dns.iter().enumerate() {
                t.push_str(&format!("DNS{}={d}\n", i + 1));
            }
        }
    }
    t
}

/// Plans `edit` on the file `rel` and on apply's copy of it as it was before mtkit, when
/// apply recorded one (see [`executor::original_backup`]). Missing files are left alone.
pub fn edit_with_original(
    root: &Root,
    plan: &mut Plan,
    area: &'static str,
    rel: &Path,
    edit: impl Fn(&str) -> String,
) -> Result<()> {
    let mut paths = vec![rel.to_path_buf()];
    if let Some(orig) = executor::original_backup(root.path(), rel)? {
        paths.push(root.resolve(orig)?);
    }
    // And apply's copy of what it last wrote there: else the edit reads as an admin's
    // (drift) at the next apply.
    if let Some(last) = executor::written_backup(root.path(), rel)? {
        paths.push(root.resolve(last)?);
    }
    for p in paths {
        if let Some(cur) = root.file_text(&p)? {
            let new = edit(&cur);
            plan.edit(area, &p.to_string_lossy(), Some(&cur), Some(new), 0o644);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFCFG: &str = "DEVICE=eth0\nHWADDR=00:50:56:9E:4D:21\nTYPE=Ethernet\nUUID=2f6f\nONBOOT=yes\nBOOTPROTO=none\nIPADDR=192.0.2.10\nPREFIX=24\nGATEWAY=192.0.2.1\nDNS1=192.0.2.53\nNAME=\"System eth0\"\n";

    #[test]
    fn sealed_ifcfg_has_no_nic_tie_and_dhcp() {
        let t = ifcfg_text(IFCFG, Some(&Address::Dhcp));
        assert_eq!(
            t,
            "DEVICE=eth0\nTYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=dhcp\nNAME=\"System eth0\"\n"
        );
        assert_eq!(ifcfg_text(&t, Some(&Address::Dhcp)), t, "idempotent");
        assert_eq!(
            ifcfg_text(IFCFG, None),
            IFCFG
                .replace("HWADDR=00:50:56:9E:4D:21\n", "")
                .replace("UUID=2f6f\n", "")
        );
    }

    #[test]
    fn static_address_replaces_the_old_one() {
        let a = Address::Static {
            ip: "198.51.100.7".parse().unwrap(),
            prefix: 25,
            gateway: Some("198.51.100.1".parse().unwrap()),
            dns: vec![
                "198.51.100.53".parse().unwrap(),
                "198.51.100.54".parse().unwrap(),
            ],
        };
        let t = ifcfg_text(IFCFG, Some(&a));
        assert_eq!(
            t,
            "DEVICE=eth0\nTYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=none\nNAME=\"System eth0\"\n\
             IPADDR=198.51.100.7\nPREFIX=25\nGATEWAY=198.51.100.1\nDNS1=198.51.100.53\nDNS2=198.51.100.54\n"
        );
        assert_eq!(ifcfg_text(&t, Some(&a)), t);
    }

    #[test]
    fn tls_paths_follow_the_config() {
        let mut c = Config::default();
        let p = TlsPaths::of(&c);
        assert_eq!(p.server_key, Path::new("/etc/mtkit/tls/server-key.pem"));
        assert_eq!(p.ca_key, Path::new("/etc/mtkit/tls/ca-key.pem"));
        c.writer.tls = Some(crate::config::WriterTls {
            cert: Some("/srv/tls/mt.crt".into()),
            key: Some("/srv/tls/mt.key".into()),
            ca: Some("/srv/ca/ca.pem".into()),
            dir: None,
        });
        let p = TlsPaths::of(&c);
        assert_eq!(p.server_cert, Path::new("/srv/tls/mt.crt"));
        assert_eq!(p.ca_key, Path::new("/srv/ca/ca-key.pem"));
    }
}
