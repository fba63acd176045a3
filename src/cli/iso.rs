//! `mtkit iso kickstart|remaster`: install media.

use super::Global;
use crate::config::Loaded;
use crate::kickstart::{self, RenderOptions};
use crate::media::{self, Payload, Progress, RemasterOptions, elf::Binary};
use anyhow::Context;
use std::path::{Path, PathBuf};

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
        match self.command {
            IsoCommand::Kickstart {
                output,
                force,
                embed,
            } => {
                crate::files::check_new_output(&output, force)?;
                let (payload, binary) = payload(&loaded, &embed)?;
                let label = &loaded.config.media.volume_label;
                media::kickstart_iso(&payload, label, &output, &Progress::log("kickstart ISO"))?;
                let summary = serde_json::json!({
                    "kind": "kickstart",
                    "output": output,
                    "volume-label": label,
                    "binary": payload.binary,
                    "binary-linkage": binary.describe(),
                    "offline-repo": payload.offline_repo,
                    "boot-argument": media::BOOT_ARG_SECOND_DRIVE,
                });
                print_summary(&embed, &summary, &kickstart_summary(&output, label))
            }
            IsoCommand::Remaster {
                source,
                output,
                force,
                embed,
            } => {
                crate::files::check_new_output(&output, force)?;
                // The source first: a wrong one is said before anything else is judged.
                media::remaster::read_volume_header(&source)?;
                let (payload, binary) = payload(&loaded, &embed)?;
                let report = media::remaster(
                    &source,
                    &payload,
                    &output,
                    &RemasterOptions {
                        progress: &Progress::log("remastered ISO"),
                        mbr_template: None,
                    },
                )?;
                let summary = serde_json::json!({
                    "kind": "remaster",
                    "output": output,
                    "source": source,
                    "report": report,
                    "binary": payload.binary,
                    "binary-linkage": binary.describe(),
                    "offline-repo": payload.offline_repo,
                    "boot-argument": media::BOOT_ARG,
                });
                print_summary(&embed, &summary, &remaster_summary(&output, &report))
            }
        }
    }
}

/// The boot instructions for the kickstart ISO, for the summary.
pub fn kickstart_summary(output: &Path, label: &str) -> String {
    format!(
        "kickstart ISO: {} (volume {label})\n\
         boot the CentOS 6.6 install disc and, at its boot prompt (Tab on the menu entry), add:\n  \
         {} when this ISO is in the second CD drive, or\n  \
         {} when this ISO is in the first CD drive and the install disc in the second\n\
         (RHEL 6 anaconda does not find a kickstart by volume label by itself)\n",
        output.display(),
        media::BOOT_ARG_SECOND_DRIVE,
        media::BOOT_ARG,
    )
}

/// What the remastered ISO does at boot, for the summary.
pub fn remaster_summary(output: &Path, r: &media::RemasterReport) -> String {
    format!(
        "remastered ISO: {} ({}, volume {})\n\
         boots \"{}\" ({}) by default after 5 s; the original entries are kept\n\
         boot menus edited: {}\n\
         {}\n",
        output.display(),
        r.release,
        r.volume_id,
        media::bootcfg::ENTRY_TITLE,
        media::BOOT_ARG,
        r.boot_configs.join(", "),
        if r.isohybrid_added {
            "isohybrid MBR added: the image can be written to a USB stick as is"
        } else {
            "isohybrid MBR kept: the image can be written to a USB stick as is"
        }
    )
}

fn print_summary(embed: &EmbedArgs, json: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    if embed.json {
        println!(
            "{}",
            serde_json::to_string_pretty(json).context("encoding JSON")?
        );
    } else {
        print!("{text}");
    }
    Ok(())
}

/// The payload from the config: rendered (or given) kickstart, resolved appliance.toml,
/// the checked binary, the offline repo.
pub fn payload(loaded: &Loaded, embed: &EmbedArgs) -> anyhow::Result<(Payload, Binary)> {
    let config = &loaded.config;
    let ks_cfg = match &embed.ks {
        Some(p) => crate::files::read_text(p).map_err(|e| {
            crate::error::bad_input(format!("cannot read the kickstart {}: {e}", p.display()))
        })?,
        None => kickstart::render(config, &RenderOptions::default())?,
    };
    let binary = embed.binary.clone().unwrap_or_else(default_binary);
    let verdict = media::check_binary(
        &binary,
        embed.allow_incompatible_binary,
        "--allow-incompatible-binary",
    )?;
    let repo = &config.packages.offline_repo;
    let (repo_required, repo_wanted) = kickstart::offline_repo_packages(config);
    let payload = Payload {
        ks_cfg,
        appliance_toml: config.resolved_toml(),
        binary,
        offline_repo: (!repo.is_empty()).then(|| beside_config(loaded, repo)),
        repo_required,
        repo_wanted,
    };
    Ok((payload, verdict))
}

/// The static musl build in the same target folder as the running executable (what
/// scripts/build makes), else the running executable itself. The static build is checked
/// to come from the same sources as this mtkit (their build ids, not file dates: both are
/// made by one command, in either order).
pub fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("mtkit"));
    // .../target/{debug,release}/mtkit → .../target/x86_64-unknown-linux-musl/release/mtkit
    let musl = exe
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("x86_64-unknown-linux-musl/release/mtkit"));
    match musl {
        Some(m) if m.is_file() && m != exe => {
            let own = media::build_id::own();
            match media::build_id::of_file(&m) {
                Ok(Some(id)) if id == own => {
                    tracing::debug!(binary = %m.display(), build = own, "static build matches")
                }
                Ok(found) => tracing::warn!(
                    binary = %m.display(),
                    "the static build comes from other sources than this mtkit ({}, this one is build {own}): rebuild it with scripts/build, or pass --binary",
                    found.map_or("it has no build id".to_string(), |id| format!("it is build {id}"))
                ),
                Err(e) => tracing::warn!("{e:#}"),
            }
            m
        }
        _ => exe,
    }
}

/// What the media step of `mtkit build` made.
pub struct BuiltMedia {
    pub path: PathBuf,
    pub what: &'static str,
    /// What to type at the installer's boot prompt (none: the image boots it by default).
    pub boot_argument: Option<&'static str>,
    /// The paragraph for SUMMARY.txt: how to boot it.
    pub summary: String,
    pub json: serde_json::Value,
}

/// The media step of `mtkit build`: remaster `source` into `out/mt-install.iso` when given
/// (else `[media] source-iso`), otherwise make `out/mt-ks.iso`. `ks_cfg` and `resolved`
/// are the texts build writes beside them.
pub fn build_media(
    loaded: &Loaded,
    ks_cfg: &str,
    resolved: &str,
    out: &Path,
    source: Option<&Path>,
    binary: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<BuiltMedia> {
    let config = &loaded.config;
    let configured = (!config.media.source_iso.is_empty())
        .then(|| beside_config(loaded, &config.media.source_iso));
    let source = source.map(Path::to_path_buf).or(configured);
    // The source first: a wrong one is said before the binary is judged.
    if let Some(s) = &source {
        media::remaster::read_volume_header(s)?;
    }
    let binary = binary.unwrap_or_else(default_binary);
    let verdict = media::check_binary(&binary, force, "--force")?;
    let repo = &config.packages.offline_repo;
    let (repo_required, repo_wanted) = crate::kickstart::offline_repo_packages(config);
    let payload = Payload {
        ks_cfg: ks_cfg.to_string(),
        appliance_toml: resolved.to_string(),
        binary,
        offline_repo: (!repo.is_empty()).then(|| beside_config(loaded, repo)),
        repo_required,
        repo_wanted,
    };
    let verdict = verdict.describe();
    match source {
        Some(source) => {
            let path = out.join("mt-install.iso");
            let report = media::remaster(
                &source,
                &payload,
                &path,
                &RemasterOptions {
                    progress: &Progress::log("remastered ISO"),
                    mbr_template: None,
                },
            )?;
            Ok(BuiltMedia {
                summary: remaster_summary(&path, &report),
                // The keys of `mtkit iso remaster --json`.
                json: serde_json::json!({
                    "kind": "remaster", "output": path, "source": source, "report": report,
                    "binary": payload.binary, "binary-linkage": verdict,
                    "offline-repo": payload.offline_repo,
                    "boot-argument": media::BOOT_ARG,
                }),
                path,
                what: "install ISO: boots the kickstart by default",
                boot_argument: None,
            })
        }
        None => {
            let path = out.join("mt-ks.iso");
            let label = &config.media.volume_label;
            media::kickstart_iso(&payload, label, &path, &Progress::log("kickstart ISO"))?;
            Ok(BuiltMedia {
                summary: kickstart_summary(&path, label),
                // The keys of `mtkit iso kickstart --json`.
                json: serde_json::json!({
                    "kind": "kickstart", "output": path, "volume-label": label,
                    "binary": payload.binary, "binary-linkage": verdict,
                    "offline-repo": payload.offline_repo,
                    "boot-argument": media::BOOT_ARG_SECOND_DRIVE,
                }),
                path,
                what: "kickstart ISO: ks.cfg, mtkit, appliance.toml",
                boot_argument: Some(media::BOOT_ARG_SECOND_DRIVE),
            })
        }
    }
}

/// A path from the config: a relative one is next to the config file (like
/// `root-password-file`), wherever mtkit runs from.
pub fn beside_config(loaded: &Loaded, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    match loaded.path.as_deref().and_then(Path::parent) {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    }
}
