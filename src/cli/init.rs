//! `mtkit init`: a commented starter appliance.toml.

use super::Global;
use crate::error::bad_input;
use std::path::{Path, PathBuf};

/// The commented starter; it parses back to the embedded defaults (a test checks).
pub const STARTER: &str = include_str!("../../templates/appliance.toml");

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
        let out = self.out.unwrap_or_else(|| PathBuf::from("-"));
        if out != Path::new("-") && out.is_dir() {
            return Err(bad_input(format!(
                "{} is a folder: give a file name, e.g. --out {}",
                out.display(),
                out.join("appliance.toml").display()
            )));
        }
        if out != Path::new("-") && out.exists() && !self.force {
            return Err(bad_input(format!(
                "{} exists: pass --force to overwrite it, or choose another --out",
                out.display()
            )));
        }
        super::kickstart::write_output(&out, STARTER)?;
        if out != Path::new("-") {
            tracing::info!(path = %out.display(), "starter appliance.toml written");
        }
        Ok(())
    }
}
