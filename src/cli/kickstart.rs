//! `mtkit kickstart`: render ks.cfg for the CentOS 6.6 minimal master target.

use super::Global;
use std::path::PathBuf;

/// Render the CentOS 6.6 master-target kickstart
#[derive(Debug, clap::Args)]
pub struct KickstartArgs {
    /// Where to write it; `-` prints to stdout
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
}

impl KickstartArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("kickstart")
    }
}
