//! `mtkit retention check|prepare`: the retention volume rules.

use super::Global;
use std::path::PathBuf;

/// Check or prepare the retention volume
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub command: RetentionCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Check a device (or the configured one) against the retention rules
    Check {
        /// Block device, or nothing for `[retention] device`
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
    Prepare {
        #[arg(value_name = "DEVICE")]
        device: PathBuf,
        /// Filesystem to create
        #[arg(long, value_name = "ext4|xfs")]
        fs: Option<String>,
        /// Where to mount it [default: [retention] mountpoint]
        #[arg(long, value_name = "DIR")]
        mountpoint: Option<PathBuf>,
        /// The system is mounted here (fstab is edited there)
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Format even when the device holds a partition table or a filesystem
        #[arg(long)]
        force: bool,
    },
}

impl RetentionArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("retention")
    }
}
