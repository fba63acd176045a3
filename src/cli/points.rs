//! `mtkit points`: the recovery points of the groups.

use super::Global;
use crate::writer::control::{Request, request_or_offline};
use crate::writer::service::GroupPoints;

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
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let cfg = g.load_config()?.config;
        let req = Request::Points { group: self.group };
        let v = request_or_offline(&cfg, &req, &mut |_, _| {})?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let groups: Vec<GroupPoints> = serde_json::from_value(v)?;
        println!(
            "{:<16} {:>8}  {:<27} {:<5} LABEL",
            "GROUP", "ID", "TIME", "KIND"
        );
        for gp in groups {
            for p in gp.points {
                println!(
                    "{:<16} {:>8}  {:<27} {:<5} {}{}",
                    gp.group,
                    p.id,
                    p.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    p.kind,
                    p.label,
                    p.lost
                        .as_ref()
                        .map_or(String::new(), |why| format!("  [{why}]"))
                );
            }
        }
        Ok(())
    }
}
