//! `mtkit recover`: roll a group back to a recovery point, in place.

use super::Global;
use crate::writer::control::{Request, request_or_offline};
use crate::writer::recover::PointSpec;

/// Roll every disk of a group back to a recovery point (changeable until commit)
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The consistency group to roll back (all its disks, to one point)
    #[arg(long, short, value_name = "G")]
    pub group: String,
    /// latest, latest-app, a time (RFC 3339) or a point id
    #[arg(long, value_name = "POINT")]
    pub to: String,
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

impl RecoverArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let cfg = g.load_config()?.config;
        // Validate before anything talks to the service.
        let to = self
            .to
            .parse::<PointSpec>()
            .map_err(|e| crate::error::bad_input(e.to_string()))?;
        let req = Request::Recover {
            group: self.group.clone(),
            to,
            dry_run: self.dry_run,
        };
        let mut last = 0;
        let mut progress = |done: u64, total: u64| {
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            if pct >= last + 5 || done == total {
                last = pct;
                eprintln!("recover {}: {pct}% ({done}/{total} blocks)", self.group);
            }
        };
        let v = request_or_offline(&cfg, &req, &mut progress)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let r: serde_json::Value = v;
        let point = &r["point"];
        let verb = if self.dry_run { "would roll" } else { "rolled" };
        println!(
            "group {}: {verb} {} block(s) ({} bytes) to point {} ({} {}){}",
            self.group,
            r["blocks"],
            r["bytes"],
            point["id"],
            point["kind"].as_str().unwrap_or(""),
            point["time"].as_str().unwrap_or(""),
            if self.dry_run {
                ""
            } else {
                "; writes refused until `mtkit commit`"
            }
        );
        Ok(())
    }
}
