//! `mtkit iso kickstart|remaster`: install media.

use super::Global;
use crate::media::build::{self, Job, Kickstart};
use anyhow::Context;
use std::path::PathBuf;

/// Build install media
#[derive(Debug, clap::Args)]
pub struct IsoArgs {
    #[command(subcommand)]
    pub command: IsoCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum IsoCommand {
    /// A small ISO holding ks.cfg, appliance.toml and the mtkit binary
    ///
    /// Boot the CentOS 6.6 install disc with this ISO in a second CD drive and type
    /// `ks=hd:sr1:/ks.cfg` at the boot prompt (RHEL 6 anaconda does not look for a
    /// kickstart by volume label).
    Kickstart {
        /// The ISO to write
        #[arg(long, short, value_name = "FILE.iso")]
        output: PathBuf,
        /// Replace the output file if it exists
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// A CentOS 6 install ISO with the kickstart added and booted by default
    ///
    /// Adds "Install mtkit master target" (ks=cdrom:/ks.cfg) as the default BIOS and EFI
    /// boot entry with a 5 s timeout, keeps the other entries, the volume ID and the boot
    /// records, and makes the image bootable from a USB stick (isohybrid).
    Remaster {
        /// The CentOS/RHEL 6 install ISO to start from, a file or a device such as /dev/sr0
        /// (never modified)
        #[arg(long, value_name = "ISO")]
        source: PathBuf,
        /// The ISO to write
        #[arg(long, short, value_name = "FILE.iso")]
        output: PathBuf,
        /// Replace the output file if it exists
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        embed: EmbedArgs,
    },
}

/// What goes on the media besides the config.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedArgs {
    /// The mtkit binary to carry [default: the static musl build beside this one's target
    /// folder when it exists, else this executable]
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Embed the binary even when its ELF says it cannot run on CentOS 6 (a glibc newer
    /// than 2.12, or a kernel newer than 2.6.32); such a binary is refused by default
    #[arg(long)]
    pub allow_incompatible_binary: bool,
    /// Kept for old scripts: refusing such a binary is the default
    #[arg(long, hide = true)]
    pub strict: bool,
    /// Use this kickstart instead of rendering one from the config
    #[arg(long, value_name = "FILE")]
    pub ks: Option<PathBuf>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

impl IsoArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let loaded = g.load_config()?;
        let (source, output, force, embed) = match self.command {
            IsoCommand::Kickstart {
                output,
                force,
                embed,
            } => (None, output, force, embed),
            IsoCommand::Remaster {
                source,
                output,
                force,
                embed,
            } => (Some(source), output, force, embed),
        };
        crate::files::check_new_output(&output, force)?;
        let built = build::make(Job {
            loaded: &loaded,
            kickstart: embed.ks.map_or(Kickstart::Render, Kickstart::File),
            source,
            output,
            binary: embed.binary,
            allow_incompatible: embed.allow_incompatible_binary,
            allow_flag: "--allow-incompatible-binary",
        })?;
        if embed.json {
            // Through a Value: its keys print sorted, as they always have.
            let json = serde_json::to_value(&built).context("encoding JSON")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json).context("encoding JSON")?
            );
        } else {
            print!("{}", built.summary());
        }
        Ok(())
    }
}
