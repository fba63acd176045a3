//! `mtkit points`: the recovery points of the groups.

use super::Global;

/// List recovery points (id, time, crash/app, label)
#[derive(Debug, clap::Args)]
pub struct PointsArgs {
    /// Only this consistency group
    #[arg(long, short, value_name = "G")]
    pub group: Option<String>,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

impl PointsArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("points")
    }
}
