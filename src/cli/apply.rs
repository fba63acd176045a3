//! `mtkit apply`: the master target's custom changes.

use super::Global;
use crate::provision::{self, executor};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Apply the master target's custom changes (multipath, LVM filter, kdump, services,
/// network, /etc/hosts, firewall, the writer service)
///
/// Every change is planned first, written atomically, and recorded under
/// /var/lib/mtkit/apply so that --revert puts back exactly what was there. Running it
/// again changes nothing.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The system is mounted here (a kickstart chroot, an image)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Show the plan as diffs; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Put back everything an earlier apply changed
    #[arg(long)]
    pub revert: bool,
    /// JSON output (what changed, notes)
    #[arg(long)]
    pub json: bool,
    /// Apply even though `[disks] os-disk` is not a disk of this system, and replace files
    /// edited since the last apply in ways mtkit cannot merge (each kept as FILE.mtkit-bak)
    #[arg(long)]
    pub force: bool,
}

impl ApplyArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        super::check_root(&self.root)?;
        // A dry run ends with the error the real run would give, after showing the plan,
        // so a pipeline can use it as a gate.
        let mut refused: Option<anyhow::Error> = None;
        let outcome = if self.revert {
            let mut outcome = executor::revert(&self.root, self.dry_run, self.force)?;
            let (tls, notes) = provision::tls::revert(&self.root, self.dry_run)?;
            outcome.changed.extend(tls);
            outcome.notes.extend(notes);
            outcome
        } else {
            let loaded = g.load_config()?;
            if let Err(e) = check_os_disk(&self.root, &loaded.config.disks.os_disk) {
                match (self.dry_run, self.force) {
                    (_, true) => tracing::warn!("{e}"),
                    (false, false) => return Err(e),
                    (true, false) => refused = Some(e),
                }
            }
            let mut outcome =
                executor::apply(&self.root, &loaded.config, self.dry_run, self.force)?;
            // The writer's own CA: made once, outside the revertible plan (not when the run
            // is refused: the error above came first).
            let tls = provision::tls::apply(&self.root, &loaded.config, self.dry_run)?;
            outcome.changed.extend(tls);
            outcome
        };
        if let Some(msg) = &outcome.refused {
            refused.get_or_insert_with(|| crate::error::bad_input(msg.clone()));
        }
        for n in &outcome.notes {
            tracing::warn!("{n}");
        }
        for p in &outcome.kept_edits {
            tracing::info!(
                "{}: edited since the last apply; the edits are kept",
                p.display()
            );
        }
        for b in &outcome.backups {
            tracing::warn!("--force: the edited version is kept as {}", b.display());
        }
        print(&self, &outcome)?;
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn print(args: &ApplyArgs, outcome: &executor::Outcome) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, outcome)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(old) = &outcome.upgraded_from {
        writeln!(
            out,
            "upgrading changes applied by mtkit {old} to {}",
            executor::VERSION
        )?;
    }
    if outcome.changed.is_empty() {
        let what = if args.revert {
            "nothing to revert"
        } else {
            "nothing to change"
        };
        writeln!(out, "{what}")?;
        return Ok(());
    }
    if args.dry_run {
        write!(out, "{}", outcome.diff)?;
    }
    let verb = if args.dry_run { "would" } else { "did" };
    for d in &outcome.changed {
        writeln!(out, "{verb} {} {} ({})", d.action, d.path.display(), d.area)?;
    }
    Ok(())
}

/// On a running system (a `sys/block` under `root`), `os-disk` must be one of its disks:
/// the LVM filter apply writes accepts only that disk, so a wrong name would hide this
/// machine's own volume groups at the next boot (an admin on the wrong host, a VM whose
/// disk is vda). Images and chroots without sysfs are not checked.
/// A SCSI ID or /dev/disk link must name exactly one disk (host::scsi's resolver): the
/// multipath blacklist and the LVM filter are written for that disk.
fn check_os_disk(root: &Path, os_disk: &str) -> anyhow::Result<()> {
    let block = root.join("sys/block");
    let Ok(entries) = std::fs::read_dir(&block) else {
        return Ok(());
    };
    let name = match crate::host::diskref::OsDisk::read(root, os_disk) {
        Ok(os) => os.name,
        Err(e) => {
            return Err(crate::error::bad_input(format!(
                "[disks] os-disk = \"{os_disk}\": {e}; nothing was changed: {}",
                crate::host::diskref::os_disk_remedy(&e)
            )));
        }
    };
    if block.join(&name).exists() {
        return Ok(());
    }
    let mut disks: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "dm-", "sr", "zram", "md"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    disks.sort();
    Err(crate::error::bad_input(format!(
        "[disks] os-disk = \"{os_disk}\" is not a disk of this system (its disks: {}): \
         apply's LVM filter would accept only {os_disk} and hide the volumes on the real OS disk; \
         set [disks] os-disk to the disk the system is installed on, or pass --force",
        if disks.is_empty() {
            "none".to_string()
        } else {
            disks.join(", ")
        }
    )))
}
