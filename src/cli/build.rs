//! `mtkit build`: the main job, kickstart + media + summary into one folder.

use super::Global;
use std::path::PathBuf;

/// The main job: write ks.cfg, the resolved appliance.toml, install media and a summary
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Output folder
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// A CentOS 6 install ISO to remaster (else only the kickstart ISO is made)
    #[arg(long, value_name = "ISO")]
    pub source_iso: Option<PathBuf>,
}

impl BuildArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("build")
    }
}
