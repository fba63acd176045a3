//! `mtkit seal`: make an installed master target a template.

use super::Global;
use crate::provision::executor::{self, Mode};
use crate::template::{self, seal};
use std::io::Write;
use std::path::PathBuf;

/// Make an installed master target a VM template (the last step of a template build)
///
/// Removes what makes the machine one machine: SSH host keys, the persistent-net udev
/// rules, the NIC's HWADDR/UUID and static address (DHCP until first boot), the writer's
/// server key and certificate (and its CA unless [template] shared-ca), /etc/machine-id,
/// logs, shell history, yum caches, the random seed and DHCP leases; installs and enables
/// the one-shot first-boot service (`mtkit firstboot`). Planned like apply: --dry-run shows
/// the diffs, a second run changes nothing. Refuses (exit 2, nothing changed) when the
/// writer has target disks or journal files, or the retention volume is mounted.
#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// The system is mounted here (an image, a test fixture)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Show the plan as diffs; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// JSON output (what changed, notes, refusals overridden)
    #[arg(long)]
    pub json: bool,
    /// Seal even though the writer has target disks or journal files, or the retention
    /// volume is mounted (they are left as they are)
    #[arg(long)]
    pub force: bool,
}

/// What `seal --json` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "kebab-case")]
struct Report<'a> {
    changed: &'a [executor::Done],
    notes: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    diff: &'a str,
    /// Refusals that --force overrode.
    forced: &'a [String],
    dry_run: bool,
}

impl SealArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        super::check_root(&self.root)?;
        let loaded = super::firstboot::load_config(g, &self.root)?;
        let config = &loaded.config;
        let refusals = seal::refusals(&self.root, config)?;
        if !refusals.is_empty() && !self.force {
            return Err(crate::error::bad_input(format!(
                "not sealing {}: {} (nothing changed; --force seals anyway and leaves them)",
                self.root.display(),
                refusals.join("; ")
            )));
        }
        for r in &refusals {
            tracing::warn!("--force: {r}");
        }
        let plan = seal::plan(&self.root, config)?;
        let mode = Mode {
            what: "seal",
            log: template::SEAL_LOG,
            record: false,
        };
        let out = executor::run(&self.root, plan, self.dry_run, mode)?;
        for n in &out.notes {
            tracing::warn!("{n}");
        }
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let r = Report {
                changed: &out.changed,
                notes: &out.notes,
                diff: &out.diff,
                forced: &refusals,
                dry_run: self.dry_run,
            };
            serde_json::to_writer_pretty(&mut stdout, &r)?;
            writeln!(stdout)?;
            return Ok(());
        }
        if out.changed.is_empty() {
            writeln!(stdout, "nothing to change: already sealed")?;
            return Ok(());
        }
        if self.dry_run {
            write!(stdout, "{}", out.diff)?;
        }
        let verb = if self.dry_run { "would" } else { "did" };
        for d in &out.changed {
            writeln!(
                stdout,
                "{verb} {} {} ({})",
                d.action,
                d.path.display(),
                d.area
            )?;
        }
        if !self.dry_run {
            writeln!(
                stdout,
                "sealed: power off now and make the template; each clone runs mtkit firstboot at its first boot"
            )?;
        }
        Ok(())
    }
}
