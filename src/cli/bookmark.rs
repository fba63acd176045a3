//! `mtkit bookmark`: an app-consistent recovery point.

use super::Global;
use crate::writer::control::{Request, request_or_offline};
use crate::writer::group::Point;

/// Make an app-consistent recovery point (after the source quiesced its applications)
#[derive(Debug, clap::Args)]
pub struct BookmarkArgs {
    /// The consistency group to mark (every disk of the group shares the point)
    #[arg(long, short, value_name = "G")]
    pub group: String,
    /// A label to find the point by
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
}

impl BookmarkArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let label = self.label.unwrap_or_default();
        // Refused here too, before the service or the journal is touched: exit 2.
        crate::writer::service::check_label(&label)?;
        let cfg = g.load_config()?.config;
        let req = Request::Bookmark {
            group: self.group.clone(),
            label,
        };
        let p: Point = serde_json::from_value(request_or_offline(&cfg, &req, &mut |_, _| {})?)?;
        println!(
            "group {}: app-consistent point {} at {}",
            self.group, p.id, p.time
        );
        Ok(())
    }
}
