//! `mtkit init`: a commented starter appliance.toml.

use super::Global;
use std::path::PathBuf;

/// Write a commented starter appliance.toml (it parses back to the embedded defaults)
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write it; `-` or nothing prints to stdout
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

impl InitArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("init")
    }
}
