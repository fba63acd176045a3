//! `mtkit doctor`: every prerequisite of the master target, with a remedy.

use super::Global;
use std::path::PathBuf;

/// Check every prerequisite of the master target
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The system is mounted here
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

impl DoctorArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("doctor")
    }
}
