//! `mtkit scsi-ids`: every SCSI disk and its ID, as udev's scsi_id gives it.

use super::Global;
use std::path::PathBuf;

/// List SCSI disks and their IDs (as `scsi_id --whitelisted --replace-whitespace`)
#[derive(Debug, clap::Args)]
pub struct ScsiIdsArgs {
    /// The system is mounted here (reads DIR/sys, DIR/run/udev)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

impl ScsiIdsArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("scsi-ids")
    }
}
