//! SUMMARY.txt: what `build` made and what to do next. Deterministic for a config.

use crate::config::{AutoSize, Config, partitions};
use crate::kickstart;
use std::fmt::Write as _;
use std::path::Path;

/// How root logs in on the built machine (never the password itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootLogin {
    Locked,
    Hash,
    PasswordFile,
}

/// The writer section of the summary: how clients connect, how they get a certificate.
fn writer_summary(config: &Config) -> String {
    use crate::writer::certs::{self, ServerIdentity};
    use crate::writer::preflight::{TlsPlan, tls_plan};
    let w = &config.writer;
    let mut s = String::new();
    let _ = writeln!(s, "Writer service (NBD on {}):", w.listen);
    match tls_plan(w) {
        Ok(TlsPlan::Own) => {
            let id = ServerIdentity::of(config, None);
            let mut names = id.hostnames.clone();
            names.extend(id.ips.iter().map(|ip| ip.to_string()));
            let _ = writeln!(
                s,
                "  Forced TLS with client certificates. `mtkit apply` at the install (or the"
            );
            let _ = writeln!(
                s,
                "  service's first start) makes the appliance's own CA and server certificate in"
            );
            let _ = if names.is_empty() {
                // Host name and address from DHCP: the certificate takes the machine's.
                writeln!(
                    s,
                    "  {} (for the machine's host name and addresses).",
                    certs::DEFAULT_DIR
                )
            } else {
                writeln!(
                    s,
                    "  {} (for {} and the machine's host name).",
                    certs::DEFAULT_DIR,
                    names.join(", ")
                )
            };
            let _ = writeln!(
                s,
                "  For each replication source, run on the appliance: `{}`",
                certs::ISSUE_CLIENT
            );
            let _ = writeln!(
                s,
                "  and give the source {}/clients/NAME/ (qemu: --object",
                certs::DEFAULT_DIR
            );
            let _ = writeln!(
                s,
                "  tls-creds-x509,dir=...,endpoint=client; libnbd: ?tls-certificates=...)."
            );
        }
        Ok(plan) => {
            let _ = writeln!(s, "  {}.", plan.describe(config));
        }
        Err(e) => {
            let _ = writeln!(s, "  {e}");
        }
    }
    if w.disk.is_empty() {
        let _ = writeln!(
            s,
            "  No [[writer.disk]] yet: add one per target disk with its scsi-id, as"
        );
        let _ = writeln!(s, "  `mtkit scsi-ids` prints it on the appliance.");
    } else {
        let by_id = w.disk.iter().filter(|d| !d.scsi_id.is_empty()).count();
        let _ = writeln!(
            s,
            "  {} target disk(s), {by_id} found by SCSI ID at every start.",
            w.disk.len()
        );
    }
    s.push('\n');
    s
}

fn size_note(size: AutoSize) -> &'static str {
    match size {
        AutoSize::Auto => " (auto)",
        AutoSize::Fixed(_) => "",
    }
}

/// The install medium `build` made, for the summary's install steps.
pub struct Media {
    /// Its file name in the output folder.
    pub file: Option<String>,
    /// What to type at the boot prompt; `None` when the image boots the kickstart by itself.
    pub boot_argument: Option<&'static str>,
}

/// The human summary: what was built and what to do next. Deterministic for a config.
pub fn summary(config: &Config, out: &Path, root: RootLogin, media: Option<&Media>) -> String {
    let a = &config.appliance;
    let d = &config.disks;
    let mut s = String::new();
    let name = if a.hostname.is_empty() {
        "(host name from DHCP)"
    } else {
        &a.hostname
    };
    let _ = writeln!(s, "mtkit build: master target {name}\n");
    let _ = writeln!(s, "Files in {}:", out.display());
    let _ = writeln!(s, "  ks.cfg          kickstart for CentOS 6.6 minimal");
    let _ = writeln!(
        s,
        "  appliance.toml  the resolved config; the install copies it to /etc/mtkit/appliance.toml"
    );
    let _ = writeln!(s, "  SUMMARY.txt     this file");
    if let Some(file) = media.and_then(|m| m.file.as_deref()) {
        let _ = writeln!(s, "  {file:<15} the install medium (see Media below)");
    }
    s.push('\n');

    let _ = writeln!(s, "The machine:");
    let _ = writeln!(
        s,
        "  VM with {} vCPUs, {} RAM, OS disk {} of at least {}; set disk.EnableUUID = \"TRUE\"",
        a.cpus, a.memory, d.os_disk, d.os_disk_size
    );
    let _ = writeln!(
        s,
        "  (`mtkit vmx check FILE.vmx`, `mtkit vmx patch FILE.vmx`)."
    );
    let parts = partitions::partitions(config)
        .iter()
        .map(|p| {
            let note = match p.mountpoint {
                "swap" => size_note(d.swap_size),
                "/var/crash" => size_note(d.var_crash_size),
                _ => "",
            };
            format!(
                "{} {}{note}",
                p.mountpoint,
                crate::config::Size::from_mib(p.size_mib)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(s, "  Layout on {}: {parts}.", d.os_disk);
    let _ = writeln!(
        s,
        "  Only {} is touched; every other disk is left alone.\n",
        d.os_disk
    );

    let n = &config.network;
    let _ = writeln!(s, "Network:");
    match n.bootproto {
        crate::config::BootProto::Dhcp => {
            let _ = writeln!(
                s,
                "  {} by DHCP: the address{} come from your DHCP server; find the VM's",
                n.device,
                if a.hostname.is_empty() {
                    " and the host name"
                } else {
                    ""
                }
            );
            let _ = writeln!(s, "  address in vSphere or in the DHCP server's leases.\n");
        }
        crate::config::BootProto::Static => {
            let gw = if n.gateway.is_empty() {
                "no gateway".to_string()
            } else {
                format!("gateway {}", n.gateway)
            };
            let dns = if n.dns.is_empty() {
                "no DNS".to_string()
            } else {
                format!("DNS {}", n.dns.join(", "))
            };
            let _ = writeln!(
                s,
                "  {} static {}/{}, {gw}, {dns}.\n",
                n.device, n.ip, n.prefix
            );
        }
    }

    let _ = writeln!(s, "Install:");
    let label = &config.media.volume_label;
    match media {
        Some(Media {
            file,
            boot_argument: None,
        }) => {
            let file = file.as_deref().unwrap_or("the remastered ISO");
            let _ = writeln!(
                s,
                "  1. Boot the VM from {file} (CD drive, or written to a USB stick)."
            );
            let _ = writeln!(
                s,
                "  2. It starts the kickstart install by default after 5 s: nothing to type."
            );
        }
        Some(Media {
            file,
            boot_argument: Some(arg),
        }) => {
            let file = file.as_deref().unwrap_or("the kickstart ISO");
            let _ = writeln!(
                s,
                "  1. Attach {file} (volume label {label}) as a second CD drive, the CentOS 6.6"
            );
            let _ = writeln!(s, "     install ISO as the first.");
            let _ = writeln!(
                s,
                "  2. Boot the install ISO; at the boot prompt press Tab and add:"
            );
            let _ = writeln!(s, "         {arg}");
            let _ = writeln!(
                s,
                "     ({} when {file} is in the first drive and the install disc in the second).",
                crate::media::boot_arg()
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  1. Put ks.cfg on a medium: `mtkit iso kickstart` (volume label {label}) or"
            );
            let _ = writeln!(
                s,
                "     `mtkit iso remaster` (an install ISO that boots the kickstart by default)."
            );
            let _ = writeln!(
                s,
                "  2. Boot the CentOS 6.6 install ISO; at the boot prompt press Tab and add:"
            );
            let _ = writeln!(s, "         {}", crate::media::boot_arg());
            let _ = writeln!(
                s,
                "     (RHEL 6 anaconda does not look for a kickstart by volume label; with the"
            );
            let _ = writeln!(
                s,
                "     kickstart on a disk or USB stick use ks=hd:<device>:/ks.cfg, e.g. ks=hd:sdb1:/ks.cfg)."
            );
        }
    }
    let _ = writeln!(
        s,
        "  3. After the reboot: logs in /root/mtkit-post.log and /root/mtkit-post-nochroot.log;"
    );
    let _ = writeln!(s, "     run `mtkit doctor` on the machine.");
    match kickstart::needs_network(config) {
        Some(why) => {
            let _ = writeln!(s, "  The install needs network access: {why}.\n");
        }
        None => {
            let _ = writeln!(
                s,
                "  The install needs no network: everything is on the media.\n"
            );
        }
    }

    let keys = config.access.keys().unwrap_or_default();
    let _ = writeln!(s, "SSH keys:");
    if keys.is_empty() {
        let _ = writeln!(
            s,
            "  none: set [access] ssh-authorized-keys or ssh-authorized-keys-file to log in by key.\n"
        );
    } else {
        let _ = writeln!(
            s,
            "  root logs in over SSH (ssh root@ADDRESS) with {} key(s):",
            keys.len()
        );
        for k in &keys {
            let comment = if k.comment.is_empty() {
                "(no comment)"
            } else {
                &k.comment
            };
            let _ = writeln!(s, "  - {} {comment}", k.kind);
        }
        s.push('\n');
    }

    s.push_str(&writer_summary(config));

    let _ = writeln!(s, "Root password:");
    match root {
        RootLogin::Hash => {
            let _ = writeln!(s, "  set from [appliance] root-password-hash.");
        }
        RootLogin::PasswordFile => {
            let _ = writeln!(
                s,
                "  hashed from [appliance] root-password-file (SHA-512 crypt, random salt);"
            );
            let _ = writeln!(
                s,
                "  the password is not stored in appliance.toml, only its hash in ks.cfg."
            );
        }
        RootLogin::Locked => {
            let _ = writeln!(
                s,
                "  none configured: root's password is LOCKED on the installed machine{}.",
                if keys.is_empty() {
                    ""
                } else {
                    " (SSH keys still work)"
                }
            );
            let _ = writeln!(s, "  To set one, either");
            let _ = writeln!(
                s,
                "  - put a hash in [appliance] root-password-hash: `openssl passwd -6`, or"
            );
            let _ = writeln!(
                s,
                "    python3 -c 'import crypt,getpass; print(crypt.crypt(getpass.getpass(), crypt.mksalt(crypt.METHOD_SHA512)))'"
            );
            let _ = writeln!(
                s,
                "  - or name a file holding the password in [appliance] root-password-file;"
            );
            let _ = writeln!(
                s,
                "  then run `mtkit build` again (`mtkit init` writes a starter config)."
            );
        }
    }
    s
}
