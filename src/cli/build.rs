//! `mtkit build`: the main job, kickstart + media + summary into one folder.

use super::Global;
use crate::build::{self, Options, RootLogin};
use std::path::PathBuf;

/// The main job: write ks.cfg, the resolved appliance.toml, install media and a summary
///
/// Refuses (exit 2, nothing written) an appliance nobody could use: no way to log in (no
/// root password, no SSH key), a static network in a documentation range, or an embedded
/// binary that cannot run on CentOS 6. `--force` builds it anyway, with warnings.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Output folder (its ks.cfg, appliance.toml, SUMMARY.txt and ISO are replaced)
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// A CentOS 6 install ISO (or its device, e.g. /dev/sr0) to remaster; else only the kickstart ISO is made
    #[arg(long, value_name = "ISO")]
    pub source_iso: Option<PathBuf>,
    /// Print what was written as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// The mtkit binary the media carry [default: the static musl build when it exists]
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Build even when a check says the appliance would not work (no way to log in, an
    /// example network, a binary that cannot run on CentOS 6); each is logged as a warning
    #[arg(long)]
    pub force: bool,
    /// Kept for old scripts: refusing a binary that cannot run on CentOS 6 is the default
    #[arg(long, hide = true)]
    pub strict: bool,
    /// Only ks.cfg, appliance.toml and the summary: no ISO
    #[arg(long, conflicts_with = "source_iso")]
    pub no_media: bool,
    /// Also write mtkit.pkr.hcl, a Packer template for the vsphere-iso builder (with the
    /// remastered ISO, or packer-cd/ for its cd_files); see docs/templates.md
    #[arg(long)]
    pub packer: bool,
}

impl BuildArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let loaded = g.load_config()?;
        let config = &loaded.config;
        let report = build::run(
            &loaded,
            &Options {
                out: self.out.clone(),
                source_iso: self.source_iso,
                binary: self.binary,
                force: self.force,
                no_media: self.no_media,
                packer: self.packer,
            },
        )?;
        if self.json {
            // Through a Value: its keys print sorted, as they always have.
            let v = serde_json::to_value(&report)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for w in &report.files {
                println!("{:<28} {}", w.path.display(), w.what);
            }
            match &report.media {
                Some(m) => print!("{}", m.summary()),
                None => println!("boot argument: {}", crate::media::boot_arg()),
            }
            if report.root == RootLogin::Locked && !config.access.has_ssh_keys() {
                println!(
                    "root is locked: see {} to set a password",
                    self.out.join("SUMMARY.txt").display()
                );
            }
        }
        Ok(())
    }
}
