//! `mtkit doctor`: every prerequisite of the master target, with a remedy.

use super::Global;
use crate::doctor::{Finding, any_failed, checks};
use std::path::PathBuf;

/// Check every prerequisite of the master target
///
/// OS release, CPU/memory/OS disk sizing, programs, SCSI IDs, LVM on the OS disk,
/// multipath, the retention volume, the NIC and /etc/hosts, the configuration server,
/// room for kdump, the writer service. Exit 1 when any check fails.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The system is mounted here (a fixture root skips the network check); without
    /// --config, DIR/etc/mtkit/appliance.toml is used when it exists
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// JSON output
    #[arg(long)]
    pub json: bool,
    /// Skip checks that need the network (the configuration server, which otherwise waits
    /// at most 3 s for its name and an answer)
    #[arg(long)]
    pub offline: bool,
}

impl DoctorArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        super::check_root(&self.root)?;
        let in_root = self.root.join("etc/mtkit/appliance.toml");
        let loaded =
            if g.config.is_none() && self.root != std::path::Path::new("/") && in_root.is_file() {
                crate::config::Config::load(Some(&in_root))?
            } else {
                g.load_config()?
            };
        let cx = checks::Context {
            root: &self.root,
            config: &loaded.config,
            offline: self.offline,
        };
        let started = std::time::Instant::now();
        let findings = checks::run_all(&cx);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "doctor done"
        );
        if self.json {
            println!("{}", serde_json::to_string_pretty(&findings)?);
        } else {
            let rows: Vec<Vec<String>> = findings.iter().map(Finding::row).collect();
            print!(
                "{}",
                super::table::render(&["CHECK", "STATUS", "FOUND", "REMEDY"], &rows)
            );
        }
        if any_failed(&findings) {
            return Err(crate::error::ChecksFailed.into());
        }
        Ok(())
    }
}
