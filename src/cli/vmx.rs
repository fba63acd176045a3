//! `mtkit vmx check|patch`: disk.EnableUUID, snapshots and controllers in VMware .vmx files.

use super::Global;
use std::path::PathBuf;

/// Check or patch VMware .vmx files
#[derive(Debug, clap::Args)]
pub struct VmxArgs {
    #[command(subcommand)]
    pub command: VmxCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum VmxCommand {
    /// Check disk.EnableUUID, snapshots, controllers and cloned uuid.bios
    Check {
        /// .vmx files (uuid.bios is compared across them)
        #[arg(required = true, value_name = "FILE.vmx")]
        files: Vec<PathBuf>,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Set disk.EnableUUID = "TRUE" (VM powered off; a backup is kept)
    Patch {
        #[arg(value_name = "FILE.vmx")]
        file: PathBuf,
    },
}

impl VmxArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("vmx")
    }
}
