//! `mtkit commit`: make the recovered point the new baseline.

use super::Global;
use crate::writer::control::{Request, request_or_offline};
use crate::writer::group::Point;

/// Make the recovered point the new baseline and let replication resume
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// The consistency group whose recovered point becomes the baseline
    #[arg(long, short, value_name = "G")]
    pub group: String,
}

impl CommitArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let cfg = g.load_config()?.config;
        let req = Request::Commit {
            group: self.group.clone(),
        };
        let p: Point = serde_json::from_value(request_or_offline(&cfg, &req, &mut |_, _| {})?)?;
        println!(
            "group {}: point {} ({}) is the new baseline; replication may resume",
            self.group, p.id, p.time
        );
        Ok(())
    }
}
