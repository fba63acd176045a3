//! `mtkit retention check|prepare`: the retention volume rules.

use super::Global;
use crate::error::{ChecksFailed, bad_input};
use crate::retention::linux::{self, Scope};
use crate::retention::prepare::{self, Fs, Options};
use crate::retention::rules::{self, Requirements};
use crate::retention::{check, space, windows};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Check or prepare the retention volume
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub command: RetentionCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Check a device (or the configured one) against the retention rules
    ///
    /// Exit 0 when every rule passes, 1 when one fails. On a mounted retention volume,
    /// also compares free space with what the policy needs.
    Check {
        /// Block device, or nothing for `[retention] device` (`auto`: the device mounted at
        /// the retention mountpoint)
        #[arg(value_name = "DEVICE", conflicts_with = "windows")]
        device: Option<PathBuf>,
        /// Check Windows R: from facts collected by scripts/Get-RetentionFacts.ps1
        #[arg(long, value_name = "FACTS.json")]
        windows: Option<PathBuf>,
        /// The system is mounted here
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Format, mount and register a device as the retention volume
    ///
    /// Refuses (exit 2, nothing changed) a device that breaks a rule. A device already
    /// prepared is left as it is; only missing steps are done.
    Prepare {
        /// Block device to format, e.g. /dev/sdb or `/dev/mapper/<SCSI ID>`
        #[arg(value_name = "DEVICE")]
        device: PathBuf,
        /// Filesystem to create [default: `[retention] filesystem`]
        #[arg(long, value_name = "ext4|xfs")]
        fs: Option<String>,
        /// Where to mount it [default: `[retention] mountpoint`]
        #[arg(long, value_name = "DIR")]
        mountpoint: Option<PathBuf>,
        /// The system is mounted here (fstab is edited there)
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Format even when the device holds a partition table or a filesystem
        #[arg(long)]
        force: bool,
        /// Unmount another volume mounted at the mountpoint and replace another device's
        /// fstab line for it (without this, either refuses: exit 2, nothing changed)
        #[arg(long)]
        replace: bool,
        /// Say what would be formatted, mounted and written; change nothing (the exit code
        /// is the real run's)
        #[arg(long)]
        dry_run: bool,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
}

/// Where the running kernel's /sys, /proc and /dev are.
const HOST: &str = "/";

impl RetentionArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let config = g.load_config()?.config;
        match self.command {
            RetentionCommand::Check {
                device,
                windows: Some(facts),
                json,
                ..
            } => {
                let _ = device;
                let v = windows::load(&facts)?;
                let f = windows::facts(&v, 'R');
                let req = Requirements {
                    min_size: config.retention.min_size.bytes(),
                    mountpoint: None,
                    force: false,
                };
                let mut verdict = rules::evaluate(&f, &req);
                let needed = space::needed(&config, 0);
                let space = f.free.map(|free| space::Space {
                    capacity: f.size,
                    free,
                    journal_used: 0,
                    targets_total: 0,
                    needed,
                    ok: free >= needed,
                });
                check::add_space(&mut verdict, space.as_ref());
                report(
                    check::Report {
                        verdict,
                        space,
                        needed,
                        not_checked: Vec::new(),
                        facts: f,
                    },
                    json,
                )
            }
            RetentionCommand::Check {
                device, root, json, ..
            } => {
                let cx = Scope {
                    host: Path::new(HOST),
                    root: &root,
                    config: &config,
                };
                let device = match device {
                    Some(d) => from_cwd(d)?,
                    None => configured_device(&cx)?,
                };
                report(check::check(&cx, &device)?, json)
            }
            RetentionCommand::Prepare {
                device,
                fs,
                mountpoint,
                root,
                force,
                replace,
                dry_run,
                json,
            } => {
                let fs = Fs::parse(fs.as_deref().unwrap_or(&config.retention.filesystem))?;
                let mut retention = config.retention.clone();
                if let Some(m) = mountpoint {
                    if !m.is_absolute() {
                        return Err(crate::error::bad_input(format!(
                            "--mountpoint {}: must be an absolute path such as /mnt/retention",
                            m.display()
                        )));
                    }
                    if let Err(e) = crate::files::root::rel_of(&m) {
                        return Err(crate::error::bad_input(format!(
                            "--mountpoint {}: {e:#}",
                            m.display()
                        )));
                    }
                    if m.as_os_str()
                        .as_encoded_bytes()
                        .iter()
                        .any(|b| b.is_ascii_control())
                    {
                        return Err(crate::error::bad_input(format!(
                            "--mountpoint {:?}: control characters are not allowed in a path",
                            m
                        )));
                    }
                    retention.mountpoint = m;
                }
                let opts = Options {
                    fs,
                    journal_dir: config.writer.journal_dir(&retention),
                    mountpoint: retention.mountpoint,
                    force,
                    replace,
                    dry_run,
                };
                let cx = Scope {
                    host: Path::new(HOST),
                    root: &root,
                    config: &config,
                };
                let device = from_cwd(device)?;
                let done = prepare::prepare(&cx, &device, &opts)?;
                let mut out = std::io::stdout().lock();
                if json {
                    serde_json::to_writer_pretty(&mut out, &done)?;
                    writeln!(out)?;
                } else if done.steps.is_empty() && dry_run {
                    writeln!(
                        out,
                        "{}: already prepared, nothing would change",
                        device.display()
                    )?;
                } else if done.steps.is_empty() {
                    writeln!(
                        out,
                        "{}: already prepared, nothing to change",
                        device.display()
                    )?;
                } else {
                    for s in &done.steps {
                        writeln!(out, "{s}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

fn report(r: check::Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        let v = &r.verdict;
        let what = if v.ok { "eligible as" } else { "cannot be" };
        // `R:` is shown as `R: ...`, a device as `/dev/sdb: ...`.
        let sep = if v.volume.ends_with(':') { "" } else { ":" };
        writeln!(out, "{}{sep} {what} the retention volume", v.volume)?;
        for f in &v.findings {
            let mark = if f.ok { "ok  " } else { "FAIL" };
            writeln!(out, "  {mark} {:<19} {}", f.rule, f.detail)?;
        }
        for n in &r.not_checked {
            writeln!(out, "  skip not checked here: {n}")?;
        }
    }
    if r.verdict.ok {
        Ok(())
    } else {
        Err(ChecksFailed.into())
    }
}

/// A DEVICE given on the command line is a path like any other: a relative one is taken
/// from the current folder (the retention code reads every path under the host's `/`).
fn from_cwd(device: PathBuf) -> anyhow::Result<PathBuf> {
    if device.is_absolute() {
        return Ok(device);
    }
    std::path::absolute(&device).map_err(|e| bad_input(format!("DEVICE {}: {e}", device.display())))
}

/// `[retention] device`: a path, a SCSI ID (`/dev/mapper/<ID>`), or `auto` (what is
/// mounted at the retention mountpoint).
fn configured_device(cx: &Scope) -> anyhow::Result<PathBuf> {
    let d = cx.config.retention.device.as_str();
    if d.starts_with('/') {
        return Ok(PathBuf::from(d));
    }
    if d != "auto" && !d.is_empty() {
        return Ok(PathBuf::from("/dev/mapper").join(d));
    }
    let mountpoint = &cx.config.retention.mountpoint;
    linux::mounted_at(cx, mountpoint).ok_or_else(|| {
        bad_input(format!(
            "nothing is mounted at {} and [retention] device is \"auto\": give the DEVICE to check",
            cx.seen_from_host(mountpoint).display()
        ))
    })
}
