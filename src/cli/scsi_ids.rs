//! `mtkit scsi-ids`: every SCSI disk and its ID, as udev's scsi_id gives it.

use super::Global;
use crate::host::scsi::{self, IdStatus, ScsiDisk};
use std::path::PathBuf;

/// List SCSI disks and their IDs (as `scsi_id --whitelisted --replace-whitespace`)
///
/// Exit 1 when a disk has no ID or shares its ID with another disk; a weak ID (vendor-specific
/// designator or serial number only) is a warning.
#[derive(Debug, clap::Args)]
pub struct ScsiIdsArgs {
    /// The system is mounted here (reads DIR/sys, DIR/run/udev)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    disk: &'a ScsiDisk,
    status: IdStatus,
    #[serde(skip_serializing_if = "str::is_empty")]
    remedy: &'static str,
}

impl ScsiIdsArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        super::check_root(&self.root)?;
        let disks = scsi::list_disks(&self.root)?;
        let statuses = scsi::id_statuses(&disks);
        let rows: Vec<Row> = disks
            .iter()
            .zip(&statuses)
            .map(|(disk, &status)| Row {
                disk,
                status,
                remedy: status.remedy(),
            })
            .collect();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            print!("{}", table(&rows));
        }
        if disks.is_empty() {
            tracing::warn!(root = %self.root.display(), "no SCSI disks found");
        }
        for r in &rows {
            let id = r.disk.id.as_deref().unwrap_or("-");
            match r.status {
                IdStatus::Ok => {}
                IdStatus::Weak => tracing::warn!("{} ({id}): weak ID: {}", r.disk.name, r.remedy),
                _ => tracing::error!("{} ({id}): {:?} ID: {}", r.disk.name, r.status, r.remedy),
            }
            if let (Some(ours), Some(udev)) = (
                r.disk.id.as_deref(),
                r.disk.udev.as_ref().and_then(|u| u.id_serial.as_deref()),
            ) && ours != udev
            {
                tracing::warn!("{}: udev's database says ID_SERIAL={udev}", r.disk.name);
            }
        }
        if statuses.iter().any(|s| s.is_failure()) {
            return Err(crate::error::ChecksFailed.into());
        }
        Ok(())
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn table(rows: &[Row]) -> String {
    let head = [
        "H:C:T:L", "DEV", "VENDOR", "MODEL", "REV", "SIZE", "SERIAL", "ID", "SOURCE", "STATUS",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let d = r.disk;
            vec![
                d.hctl.clone(),
                d.name.clone(),
                d.vendor.clone(),
                d.model.clone(),
                d.rev.clone(),
                human(d.size_bytes),
                d.serial.clone().unwrap_or_else(|| "-".into()),
                d.id.clone().unwrap_or_else(|| "-".into()),
                d.id_source.label(),
                format!("{:?}", r.status).to_lowercase(),
            ]
        })
        .collect();
    super::table::render(&head, &cells)
}
