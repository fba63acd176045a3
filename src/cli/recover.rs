//! `mtkit recover`: roll a group back to a recovery point, in place.

use super::Global;

/// Roll every disk of a group back to a recovery point (changeable until commit)
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    #[arg(long, short, value_name = "G")]
    pub group: String,
    /// latest, latest-app, a time (RFC 3339) or a point id
    #[arg(long, value_name = "POINT")]
    pub to: String,
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

impl RecoverArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("recover")
    }
}
