//! `mtkit vmx check|patch`: disk.EnableUUID, snapshots and controllers in VMware .vmx files.

use super::Global;
use crate::doctor::Finding;
use crate::vmx::check::{self, VmxFile};
use crate::vmx::patch::{self, Outcome};
use std::path::PathBuf;

/// Check or patch VMware .vmx files
#[derive(Debug, clap::Args)]
pub struct VmxArgs {
    #[command(subcommand)]
    pub command: VmxCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum VmxCommand {
    /// Check disk.EnableUUID, snapshots, controllers and cloned uuid.bios (exit 1 on a failure)
    Check {
        /// .vmx files (uuid.bios is compared across them)
        #[arg(required = true, value_name = "FILE.vmx")]
        files: Vec<PathBuf>,
        /// JSON output
        #[arg(long)]
        json: bool,
        /// Check as a VM template: no uuid.action = "keep", no static MAC, only the OS disk,
        /// no ISO connected, besides disk.EnableUUID, LSI Logic and no snapshots
        #[arg(long)]
        template: bool,
    },
    /// Set disk.EnableUUID = "TRUE" (VM powered off; a backup is kept)
    ///
    /// Refuses (exit 1) while the VM's FILE.vmx.lck folder exists. Running it again
    /// changes nothing.
    Patch {
        /// The VM's .vmx file, edited in place (the original is kept as FILE.vmx.mtkit-bak)
        #[arg(value_name = "FILE.vmx")]
        file: PathBuf,
    },
}

#[derive(serde::Serialize)]
struct Report<'a> {
    file: String,
    findings: &'a [Finding],
}

impl VmxArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        match self.command {
            VmxCommand::Check {
                files,
                json,
                template,
            } => check_files(&files, json, template),
            VmxCommand::Patch { file } => {
                let f = VmxFile::read(&file)?;
                match patch::patch(&f)? {
                    Outcome::AlreadySet => {
                        println!(
                            "{}: disk.EnableUUID already set, nothing changed",
                            file.display()
                        )
                    }
                    Outcome::Patched { backup } => println!(
                        "{}: disk.EnableUUID = \"TRUE\" set (backup: {}); power the VM on for \
                         the disks to expose their UUIDs",
                        shown(&file, &f.real),
                        backup.display()
                    ),
                }
                Ok(())
            }
        }
    }
}

/// The file as named, with the file it links to when that is another.
fn shown(named: &std::path::Path, real: &std::path::Path) -> String {
    match std::fs::symlink_metadata(named) {
        Ok(m) if m.file_type().is_symlink() => {
            format!("{} (the link's file {})", named.display(), real.display())
        }
        _ => named.display().to_string(),
    }
}

fn check_files(paths: &[PathBuf], json: bool, template: bool) -> anyhow::Result<()> {
    let files = paths
        .iter()
        .map(|p| VmxFile::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let results: Vec<(String, Vec<Finding>)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let others: Vec<&VmxFile> = files
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| o)
                .collect();
            let findings = if template {
                check::check_template(f)
            } else {
                check::check(f, &others)
            };
            (f.path.display().to_string(), findings)
        })
        .collect();
    if json {
        let reports: Vec<Report> = results
            .iter()
            .map(|(file, findings)| Report {
                file: file.clone(),
                findings,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .flat_map(|(file, fs)| {
                fs.iter().map(move |f| {
                    let mut row = vec![file.clone()];
                    row.extend(f.row());
                    row
                })
            })
            .collect();
        print!(
            "{}",
            super::table::render(&["FILE", "CHECK", "STATUS", "FOUND", "REMEDY"], &rows)
        );
    }
    if results.iter().any(|(_, f)| crate::doctor::any_failed(f)) {
        return Err(crate::error::ChecksFailed.into());
    }
    Ok(())
}
