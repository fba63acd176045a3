//! `mtkit bookmark`: an app-consistent recovery point.

use super::Global;

/// Make an app-consistent recovery point (after the source quiesced its applications)
#[derive(Debug, clap::Args)]
pub struct BookmarkArgs {
    #[arg(long, short, value_name = "G")]
    pub group: String,
    /// A label to find the point by
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
}

impl BookmarkArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::not_built("bookmark")
    }
}
