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
    /// Not offered: init reads no config. This hidden local option takes the place of the
    /// global --config (clap skips a global whose id a subcommand has) so that init's help
    /// does not list it and a given one is refused rather than ignored.
    #[arg(
        long = "config",
        short = 'c',
        id = "config",
        hide = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

impl InitArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        // The global's value reaches this one too, MTKIT_CONFIG's included: a config set
        // for every command in the environment is not a mistake made here.
        let from_env = std::env::var_os("MTKIT_CONFIG").map(PathBuf::from);
        if let Some(c) = self
            .config
            .as_ref()
            .filter(|c| Some(*c) != from_env.as_ref())
        {
            return Err(bad_input(format!(
                "init writes a starter config and reads none: drop --config {} (write the starter with --out FILE)",
                c.display()
            )));
        }
        let out = self.out.unwrap_or_else(|| PathBuf::from("-"));
        if out != Path::new("-") && out.is_dir() {
            return Err(bad_input(format!(
                "{} is a folder: give a file name, e.g. --out {}",
                out.display(),
                out.join("appliance.toml").display()
            )));
        }
        if out != Path::new("-") {
            crate::files::check_new_output(&out, self.force)?;
        }
        super::kickstart::write_output(&out, STARTER)?;
        if out != Path::new("-") {
            tracing::info!(path = %out.display(), "starter appliance.toml written");
        }
        Ok(())
    }
}
