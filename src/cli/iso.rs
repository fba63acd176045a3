//! `mtkit iso kickstart|remaster`: install media.

use super::Global;
use std::path::PathBuf;

/// Build install media
#[derive(Debug, clap::Args)]
pub struct IsoArgs {
    #[command(subcommand)]
    pub command: IsoCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum IsoCommand {
    /// A small ISO holding ks.cfg, appliance.toml and the mtkit binary
    Kickstart {
        /// The ISO to write
        #[arg(long, short, value_name = "FILE.iso")]
        output: PathBuf,
    },
    /// A CentOS 6 install ISO with the kickstart added and booted by default
    Remaster {
        /// The CentOS/RHEL 6 install ISO to start from (never modified)
        #[arg(long, value_name = "ISO")]
        source: PathBuf,
        /// The ISO to write
        #[arg(long, short, value_name = "FILE.iso")]
        output: PathBuf,
    },
}

impl IsoArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("iso")
    }
}
