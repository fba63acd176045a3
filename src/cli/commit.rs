//! `mtkit commit`: make the recovered point the new baseline.

use super::Global;

/// Make the recovered point the new baseline and let replication resume
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    #[arg(long, short, value_name = "G")]
    pub group: String,
}

impl CommitArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("commit")
    }
}
