//! `mtkit apply`: the master target's custom changes.

use super::Global;
use std::path::PathBuf;

/// Apply the master target's custom changes (multipath, LVM filter, kdump, services, ...)
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
}

impl ApplyArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("apply")
    }
}
