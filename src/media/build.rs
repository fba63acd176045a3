//! The media step of `mtkit iso` and `mtkit build`: the payload from a config, then a
//! kickstart ISO or a remastered install ISO, and what was made as one serializable
//! [`Built`] (the `--json` of both commands) with its human summary.

use super::{Payload, Progress, RemasterOptions, RemasterReport};
use crate::config::Loaded;
use crate::kickstart::{self, RenderOptions};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The file names `mtkit build` gives the media in its output folder.
pub const INSTALL_ISO: &str = "mt-install.iso";
pub const KICKSTART_ISO: &str = "mt-ks.iso";

/// Where the kickstart on the media comes from.
pub enum Kickstart {
    /// Rendered from the config with the default options.
    Render,
    /// A file the user wrote (`--ks`).
    File(PathBuf),
    /// Text already rendered (`mtkit build` writes the same text beside the media).
    Text(String),
}

/// What to make: a remastered `source` when there is one, else a kickstart ISO.
pub struct Job<'a> {
    pub loaded: &'a Loaded,
    pub kickstart: Kickstart,
    /// The CentOS 6 install ISO (or its device) to remaster, never modified.
    pub source: Option<PathBuf>,
    pub output: PathBuf,
    /// The binary to carry; `None` for [`default_binary`].
    pub binary: Option<PathBuf>,
    /// Embed a binary that cannot run on CentOS 6 anyway, with a warning.
    pub allow_incompatible: bool,
    /// The option that allows it, named in the refusal.
    pub allow_flag: &'static str,
}

/// What the media step made: `mtkit iso --json`, and `media` in `mtkit build --json`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Built {
    #[serde(flatten)]
    pub kind: Kind,
    pub output: PathBuf,
    pub binary: PathBuf,
    pub binary_linkage: String,
    pub offline_repo: Option<PathBuf>,
    /// The kernel argument that starts the kickstart: typed at the boot prompt for the
    /// kickstart ISO, carried by the default entry of the remastered one.
    pub boot_argument: &'static str,
}

/// The kind of medium, with what only that kind has.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case"
)]
pub enum Kind {
    Kickstart {
        volume_label: String,
    },
    Remaster {
        source: PathBuf,
        report: RemasterReport,
    },
}

/// The install ISO `mtkit build` remasters: the one given, else `[media] source-iso`.
pub fn source_iso(loaded: &Loaded, given: Option<&Path>) -> Option<PathBuf> {
    let configured = &loaded.config.media.source_iso;
    given
        .map(Path::to_path_buf)
        .or_else(|| (!configured.is_empty()).then(|| loaded.beside(configured)))
}

/// Makes the medium. The source is judged first (a wrong one is said before anything
/// else), then the kickstart, then the binary; the output appears only when complete.
pub fn make(job: Job) -> Result<Built> {
    let config = &job.loaded.config;
    if let Some(s) = &job.source {
        super::remaster::read_volume_header(s)?;
    }
    let ks_cfg = match job.kickstart {
        Kickstart::Render => kickstart::render(config, &RenderOptions::default())?,
        Kickstart::File(p) => crate::files::read_text(&p).map_err(|e| {
            crate::error::bad_input(format!("cannot read the kickstart {}: {e}", p.display()))
        })?,
        Kickstart::Text(t) => t,
    };
    let binary = job.binary.unwrap_or_else(default_binary);
    let verdict = super::check_binary(&binary, job.allow_incompatible, job.allow_flag)?;
    let repo = &config.packages.offline_repo;
    let (repo_required, repo_wanted) = kickstart::offline_repo_packages(config);
    let payload = Payload {
        ks_cfg,
        appliance_toml: config.resolved_toml(),
        binary,
        offline_repo: (!repo.is_empty()).then(|| job.loaded.beside(repo)),
        repo_required,
        repo_wanted,
    };
    let (kind, boot_argument) = match job.source {
        Some(source) => {
            let report = super::remaster(
                &source,
                &payload,
                &job.output,
                &RemasterOptions {
                    progress: &Progress::log("remastered ISO"),
                    mbr_template: None,
                },
            )?;
            (Kind::Remaster { source, report }, super::boot_arg())
        }
        None => {
            let label = &config.media.volume_label;
            super::kickstart_iso(
                &payload,
                label,
                &job.output,
                &Progress::log("kickstart ISO"),
            )?;
            let kind = Kind::Kickstart {
                volume_label: label.clone(),
            };
            (kind, super::boot_arg_second_drive())
        }
    };
    Ok(Built {
        kind,
        output: job.output,
        binary: payload.binary,
        binary_linkage: verdict.describe(),
        offline_repo: payload.offline_repo,
        boot_argument,
    })
}

impl Built {
    /// What to type at the installer's boot prompt; `None` when the image boots the
    /// kickstart by default.
    pub fn prompt_argument(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Kickstart { .. } => Some(self.boot_argument),
            Kind::Remaster { .. } => None,
        }
    }

    /// One line on what the file is, for a list of files written.
    pub fn what(&self) -> &'static str {
        match self.kind {
            Kind::Kickstart { .. } => "kickstart ISO: ks.cfg, mtkit, appliance.toml",
            Kind::Remaster { .. } => "install ISO: boots the kickstart by default",
        }
    }

    /// How to boot it, for the terminal and SUMMARY.txt.
    pub fn summary(&self) -> String {
        match &self.kind {
            Kind::Kickstart { volume_label } => format!(
                "kickstart ISO: {} (volume {volume_label})\n\
                 boot the CentOS 6.6 install disc and, at its boot prompt (Tab on the menu entry), add:\n  \
                 {} when this ISO is in the second CD drive, or\n  \
                 {} when this ISO is in the first CD drive and the install disc in the second\n\
                 (RHEL 6 anaconda does not find a kickstart by volume label by itself)\n",
                self.output.display(),
                super::boot_arg_second_drive(),
                super::boot_arg(),
            ),
            Kind::Remaster { report: r, .. } => format!(
                "remastered ISO: {} ({}, volume {})\n\
                 boots \"{}\" ({}) by default after 5 s; the original entries are kept\n\
                 boot menus edited: {}\n\
                 {}\n",
                self.output.display(),
                r.release,
                r.volume_id,
                super::layout::boot_menu().title,
                super::boot_arg(),
                r.boot_configs.join(", "),
                if r.isohybrid_added {
                    "isohybrid MBR added: the image can be written to a USB stick as is"
                } else {
                    "isohybrid MBR kept: the image can be written to a USB stick as is"
                }
            ),
        }
    }
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
            let own = super::build_id::own();
            match super::build_id::of_file(&m) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RemasterReport {
        RemasterReport {
            release: "CentOS 6.6 x86_64".into(),
            volume_id: "CentOS_6.6_Final".into(),
            bios_image: "isolinux/isolinux.bin".into(),
            efi_image: Some("images/efiboot.img".into()),
            isohybrid_added: true,
            boot_configs: vec!["/isolinux/isolinux.cfg".into()],
        }
    }

    fn built(kind: Kind, boot_argument: &'static str) -> Built {
        Built {
            kind,
            output: "/out/x.iso".into(),
            binary: "/bin/mtkit".into(),
            binary_linkage: "statically linked: runs on CentOS 6".into(),
            offline_repo: None,
            boot_argument,
        }
    }

    /// One struct, two key sets: what only a kind has is flattened beside the rest.
    #[test]
    fn json_keys_per_kind() {
        let keys = |kind: Kind, arg| {
            let v = serde_json::to_value(built(kind, arg)).unwrap();
            v.as_object().unwrap().keys().cloned().collect::<Vec<_>>()
        };
        let common = [
            "binary",
            "binary-linkage",
            "boot-argument",
            "kind",
            "offline-repo",
            "output",
        ];
        let label = "MTKS".to_string();
        let ks = keys(
            Kind::Kickstart {
                volume_label: label,
            },
            "ks=hd:sr1:/ks.cfg",
        );
        assert_eq!(ks, [&common[..], &["volume-label"]].concat());
        let report = report();
        let re = keys(
            Kind::Remaster {
                source: "/s.iso".into(),
                report,
            },
            "ks=cdrom:/ks.cfg",
        );
        assert_eq!(re, [&common[..], &["report", "source"]].concat());
    }

    #[test]
    fn a_remastered_disc_needs_no_prompt_argument() {
        let re = built(
            Kind::Remaster {
                source: "/s.iso".into(),
                report: report(),
            },
            "ks=cdrom:/ks.cfg",
        );
        assert_eq!(re.prompt_argument(), None);
        assert!(
            re.summary().contains("isohybrid MBR added"),
            "{}",
            re.summary()
        );
        let ks = built(
            Kind::Kickstart {
                volume_label: "MTKS".into(),
            },
            "ks=hd:sr1:/ks.cfg",
        );
        assert_eq!(ks.prompt_argument(), Some("ks=hd:sr1:/ks.cfg"));
    }
}
