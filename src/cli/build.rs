//! `mtkit build`: the main job, kickstart + media + summary into one folder.

use super::Global;
use crate::config::partitions;
use crate::config::{AutoSize, Config};
use crate::kickstart::{self, RenderOptions};
use crate::media::build::{self, Job, Kickstart};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The main job: write ks.cfg, the resolved appliance.toml, install media and a summary
///
/// Refuses (exit 2, nothing written) an appliance nobody could use: no way to log in (no
/// root password, no SSH key), a static network in a documentation range, or an embedded
/// binary that cannot run on CentOS 6. `--force` builds it anyway, with warnings.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Output folder (its ks.cfg, appliance.toml, SUMMARY.txt and ISO are replaced)
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// A CentOS 6 install ISO (or its device, e.g. /dev/sr0) to remaster; else only the kickstart ISO is made
    #[arg(long, value_name = "ISO")]
    pub source_iso: Option<PathBuf>,
    /// Print what was written as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// The mtkit binary the media carry [default: the static musl build when it exists]
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Build even when a check says the appliance would not work (no way to log in, an
    /// example network, a binary that cannot run on CentOS 6); each is logged as a warning
    #[arg(long)]
    pub force: bool,
    /// Kept for old scripts: refusing a binary that cannot run on CentOS 6 is the default
    #[arg(long, hide = true)]
    pub strict: bool,
    /// Only ks.cfg, appliance.toml and the summary: no ISO
    #[arg(long, conflicts_with = "source_iso")]
    pub no_media: bool,
    /// Also write mtkit.pkr.hcl, a Packer template for the vsphere-iso builder (with the
    /// remastered ISO, or packer-cd/ for its cd_files); see docs/templates.md
    #[arg(long)]
    pub packer: bool,
}

/// How root logs in on the built machine (never the password itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootLogin {
    Locked,
    Hash,
    PasswordFile,
}

/// One file `build` wrote, for the summary and `--json`.
#[derive(Debug, serde::Serialize)]
struct Written {
    path: PathBuf,
    what: &'static str,
}

impl BuildArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let loaded = g.load_config()?;
        let config = &loaded.config;
        // A config whose writer would not start makes an appliance without its service.
        crate::writer::preflight::check(config)?;

        if self.out.exists() && !self.out.is_dir() {
            return Err(crate::error::bad_input(format!(
                "--out {} exists and is not a folder: give a folder for ks.cfg, appliance.toml and the media",
                self.out.display()
            )));
        }
        // An appliance nobody can reach or log into is refused before anything is made.
        let blockers = crate::config::reach::blockers(config);
        if !blockers.is_empty() && !self.force {
            return Err(crate::error::bad_input(format!(
                "refusing to build an appliance that could not be used (nothing was written):\n{}\n\
                 (pass --force to build it anyway)",
                blockers
                    .iter()
                    .map(|b| format!("  - {b}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )));
        }
        for b in &blockers {
            tracing::warn!("building anyway (--force): {b}");
        }
        for d in crate::config::reach::doubts(config) {
            tracing::warn!("{d}");
        }
        if let Some(why) = kickstart::needs_network(config) {
            tracing::warn!("the install needs network access: {why}");
        }

        // Everything is made in memory first: a bad config or password file leaves
        // --out untouched.
        let root_hash = kickstart::resolve_root_hash(config)?;
        let root = match (&root_hash, &config.appliance.root_password_file) {
            (None, _) => RootLogin::Locked,
            (Some(_), Some(_)) if config.appliance.root_password_hash.is_empty() => {
                RootLogin::PasswordFile
            }
            (Some(_), _) => RootLogin::Hash,
        };
        let opts = RenderOptions {
            root_password_hash: root_hash,
        };
        let ks = kickstart::render(config, &opts)?;
        let resolved = config.resolved_toml();

        // The Packer CD carries the binary without media: checked here, before writing.
        if self.packer && self.no_media {
            let binary = self.binary.clone().unwrap_or_else(build::default_binary);
            crate::media::check_binary(&binary, self.force, "--force")?;
        }
        let created = !self.out.exists();
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        // The media come first: a refused source ISO or binary leaves --out as it was.
        let media = if self.no_media {
            None
        } else {
            let source = build::source_iso(&loaded, self.source_iso.as_deref());
            let name = match source {
                Some(_) => build::INSTALL_ISO,
                None => build::KICKSTART_ISO,
            };
            let built = build::make(Job {
                loaded: &loaded,
                kickstart: Kickstart::Text(ks.clone()),
                source,
                output: self.out.join(name),
                binary: self.binary.clone(),
                allow_incompatible: self.force,
                allow_flag: "--force",
            });
            if built.is_err() && created {
                let _ = std::fs::remove_dir(&self.out);
            }
            Some(built?)
        };
        let mut written = Vec::new();
        let mut put = |name: &str, text: &str, mode: u32, what: &'static str| {
            let path = self.out.join(name);
            crate::files::write_atomic(&path, text.as_bytes(), mode)?;
            written.push(Written { path, what });
            anyhow::Ok(())
        };
        put("ks.cfg", &ks, 0o644, "kickstart (RHEL 6 anaconda)")?;
        // 0600: it may carry root's password hash.
        put(
            "appliance.toml",
            &resolved,
            0o600,
            "resolved config, installed as /etc/mtkit/appliance.toml",
        )?;

        let made = media.as_ref().map(|m| Media {
            file: m
                .output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            boot_argument: m.prompt_argument(),
        });
        let mut summary = summary(config, &self.out, root, made.as_ref());
        if let Some(m) = &media {
            summary.push_str("\nMedia:\n");
            summary.push_str(&m.summary());
        }
        put("SUMMARY.txt", &summary, 0o644, "what to do next")?;
        if self.packer {
            use crate::template::packer::{self, Install};
            let install = match &media {
                Some(m) if m.prompt_argument().is_none() => Install::Remastered {
                    file: m
                        .output
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    sha256: packer::sha256_file(&m.output)?,
                },
                _ => {
                    let binary = self.binary.clone().unwrap_or_else(build::default_binary);
                    // Checked (and refused) before anything was written, see above.
                    let bytes = std::fs::read(&binary)
                        .with_context(|| format!("reading {}", binary.display()))?;
                    let cd = self.out.join(packer::CD_DIR);
                    std::fs::create_dir_all(cd.join("mtkit"))
                        .with_context(|| format!("creating {}", cd.display()))?;
                    let files: [(&str, &[u8], u32); 3] = [
                        ("ks.cfg", ks.as_bytes(), 0o644),
                        ("mtkit/appliance.toml", resolved.as_bytes(), 0o600),
                        ("mtkit/mtkit", &bytes, 0o755),
                    ];
                    for (name, data, mode) in files {
                        crate::files::write_atomic(&cd.join(name), data, mode)?;
                    }
                    Install::KickstartCd
                }
            };
            for w in packer::warnings(config, &install) {
                tracing::warn!("{w}");
            }
            let text = packer::render(config, &install)?;
            put(
                packer::FILE,
                &text,
                0o644,
                "Packer template (vsphere-iso builder)",
            )?;
            if matches!(install, Install::KickstartCd) {
                written.push(Written {
                    path: self.out.join(packer::CD_DIR),
                    what: "the Packer template's cd_files: ks.cfg, mtkit/",
                });
            }
        }
        if let Some(m) = &media {
            written.push(Written {
                path: m.output.clone(),
                what: m.what(),
            });
        }

        // An ISO left by an earlier build of the other kind still carries the old
        // kickstart: say so rather than let it be booted by mistake.
        for stale in [build::KICKSTART_ISO, build::INSTALL_ISO] {
            let p = self.out.join(stale);
            if p.exists() && !written.iter().any(|w| w.path == p) {
                tracing::warn!(
                    "{} is left from an earlier build and was not rewritten: it may carry an old kickstart; remove it",
                    p.display()
                );
            }
        }
        if self.json {
            let v = serde_json::json!({
                "out": self.out,
                "files": written,
                "root": root,
                // The kickstart ISO sits in the second drive; the remastered ISO boots the
                // kickstart by default, its entry carrying ks=cdrom:/ks.cfg.
                "boot-argument": media
                    .as_ref()
                    .map_or(crate::media::boot_arg(), |m| m.boot_argument),
                "media": media,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for w in &written {
                println!("{:<28} {}", w.path.display(), w.what);
            }
            match &media {
                Some(m) => print!("{}", m.summary()),
                None => println!("boot argument: {}", crate::media::boot_arg()),
            }
            if root == RootLogin::Locked && !config.access.has_ssh_keys() {
                println!(
                    "root is locked: see {} to set a password",
                    self.out.join("SUMMARY.txt").display()
                );
            }
        }
        Ok(())
    }
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
