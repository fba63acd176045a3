//! `mtkit build`, the main job: from a loaded config, ks.cfg, the resolved
//! appliance.toml, the install media and SUMMARY.txt in one folder (and a Packer
//! template on request), with a serializable [`Report`] of what was written.

mod summary;

pub use summary::{Media, RootLogin, summary};

use crate::config::Loaded;
use crate::kickstart::{self, RenderOptions};
use crate::media::build::{self as media_build, Built, Job, Kickstart};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// What to build (the options of `mtkit build`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The output folder.
    pub out: PathBuf,
    /// An install ISO to remaster; else `[media] source-iso`, else a kickstart ISO.
    pub source_iso: Option<PathBuf>,
    /// The mtkit binary the media carry; `None` for the static build when it exists.
    pub binary: Option<PathBuf>,
    /// Build even when a check says the appliance would not work (warned about).
    pub force: bool,
    /// No ISO.
    pub no_media: bool,
    /// Also the Packer template.
    pub packer: bool,
}

/// One file `build` wrote, for the summary and `--json`.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub what: &'static str,
}

/// What `build` wrote: `mtkit build --json`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub out: PathBuf,
    pub files: Vec<Written>,
    pub root: RootLogin,
    /// The kickstart ISO sits in the second drive; the remastered ISO boots the
    /// kickstart by default, its entry carrying ks=cdrom:/ks.cfg.
    pub boot_argument: &'static str,
    pub media: Option<Built>,
}

/// Builds into `opts.out`. A refused config, source ISO or binary leaves it as it was.
pub fn run(loaded: &Loaded, opts: &Options) -> Result<Report> {
    let config = &loaded.config;
    // A config whose writer would not start makes an appliance without its service.
    crate::writer::preflight::check(config)?;

    if opts.out.exists() && !opts.out.is_dir() {
        return Err(crate::error::bad_input(format!(
            "--out {} exists and is not a folder: give a folder for ks.cfg, appliance.toml and the media",
            opts.out.display()
        )));
    }
    // An appliance nobody can reach or log into is refused before anything is made.
    let blockers = crate::config::reach::blockers(config);
    if !blockers.is_empty() && !opts.force {
        return Err(crate::error::bad_input(format!(
            "refusing to build an appliance that could not be used (nothing was written):\n{}\n\
                 (pass --force to build it anyway)",
            blockers
                .iter()
                .map(|b| format!("  - {b}"))
                .collect::<Vec<_>>()
                .join("\n")
        )));
    }
    for b in &blockers {
        tracing::warn!("building anyway (--force): {b}");
    }
    for d in crate::config::reach::doubts(config) {
        tracing::warn!("{d}");
    }
    if let Some(why) = kickstart::needs_network(config) {
        tracing::warn!("the install needs network access: {why}");
    }

    // Everything is made in memory first: a bad config or password file leaves
    // --out untouched.
    let root_hash = kickstart::resolve_root_hash(config)?;
    let root = match (&root_hash, &config.appliance.root_password_file) {
        (None, _) => RootLogin::Locked,
        (Some(_), Some(_)) if config.appliance.root_password_hash.is_empty() => {
            RootLogin::PasswordFile
        }
        (Some(_), _) => RootLogin::Hash,
    };
    let render = RenderOptions {
        root_password_hash: root_hash,
    };
    let ks = kickstart::render(config, &render)?;
    let resolved = config.resolved_toml();

    // The Packer CD carries the binary without media: checked here, before writing.
    if opts.packer && opts.no_media {
        let binary = opts
            .binary
            .clone()
            .unwrap_or_else(media_build::default_binary);
        crate::media::check_binary(&binary, opts.force, "--force")?;
    }
    let created = !opts.out.exists();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    // The media come first: a refused source ISO or binary leaves --out as it was.
    let media = if opts.no_media {
        None
    } else {
        let source = media_build::source_iso(loaded, opts.source_iso.as_deref());
        let name = match source {
            Some(_) => media_build::INSTALL_ISO,
            None => media_build::KICKSTART_ISO,
        };
        let built = media_build::make(Job {
            loaded,
            kickstart: Kickstart::Text(ks.clone()),
            source,
            output: opts.out.join(name),
            binary: opts.binary.clone(),
            allow_incompatible: opts.force,
            allow_flag: "--force",
        });
        if built.is_err() && created {
            let _ = std::fs::remove_dir(&opts.out);
        }
        Some(built?)
    };
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str, mode: u32, what: &'static str| {
        let path = opts.out.join(name);
        crate::files::write_atomic(&path, text.as_bytes(), mode)?;
        written.push(Written { path, what });
        anyhow::Ok(())
    };
    put("ks.cfg", &ks, 0o644, "kickstart (RHEL 6 anaconda)")?;
    // 0600: it may carry root's password hash.
    put(
        "appliance.toml",
        &resolved,
        0o600,
        "resolved config, installed as /etc/mtkit/appliance.toml",
    )?;

    let made = media.as_ref().map(|m| Media {
        file: m
            .output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        boot_argument: m.prompt_argument(),
    });
    let mut summary = summary(config, &opts.out, root, made.as_ref());
    if let Some(m) = &media {
        summary.push_str("\nMedia:\n");
        summary.push_str(&m.summary());
    }
    put("SUMMARY.txt", &summary, 0o644, "what to do next")?;
    if opts.packer {
        use crate::template::packer::{self, Install};
        let install = match &media {
            Some(m) if m.prompt_argument().is_none() => Install::Remastered {
                file: m
                    .output
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: packer::sha256_file(&m.output)?,
            },
            _ => {
                let binary = opts
                    .binary
                    .clone()
                    .unwrap_or_else(media_build::default_binary);
                // Checked (and refused) before anything was written, see above.
                let bytes = std::fs::read(&binary)
                    .with_context(|| format!("reading {}", binary.display()))?;
                let cd = opts.out.join(packer::CD_DIR);
                std::fs::create_dir_all(cd.join("mtkit"))
                    .with_context(|| format!("creating {}", cd.display()))?;
                let files: [(&str, &[u8], u32); 3] = [
                    ("ks.cfg", ks.as_bytes(), 0o644),
                    ("mtkit/appliance.toml", resolved.as_bytes(), 0o600),
                    ("mtkit/mtkit", &bytes, 0o755),
                ];
                for (name, data, mode) in files {
                    crate::files::write_atomic(&cd.join(name), data, mode)?;
                }
                Install::KickstartCd
            }
        };
        for w in packer::warnings(config, &install) {
            tracing::warn!("{w}");
        }
        let text = packer::render(config, &install)?;
        put(
            packer::FILE,
            &text,
            0o644,
            "Packer template (vsphere-iso builder)",
        )?;
        if matches!(install, Install::KickstartCd) {
            written.push(Written {
                path: opts.out.join(packer::CD_DIR),
                what: "the Packer template's cd_files: ks.cfg, mtkit/",
            });
        }
    }
    if let Some(m) = &media {
        written.push(Written {
            path: m.output.clone(),
            what: m.what(),
        });
    }

    // An ISO left by an earlier build of the other kind still carries the old
    // kickstart: say so rather than let it be booted by mistake.
    for stale in [media_build::KICKSTART_ISO, media_build::INSTALL_ISO] {
        let p = opts.out.join(stale);
        if p.exists() && !written.iter().any(|w| w.path == p) {
            tracing::warn!(
                "{} is left from an earlier build and was not rewritten: it may carry an old kickstart; remove it",
                p.display()
            );
        }
    }
    let boot_argument = media
        .as_ref()
        .map_or(crate::media::boot_arg(), |m| m.boot_argument);
    Ok(Report {
        out: opts.out.clone(),
        files: written,
        root,
        boot_argument,
        media,
    })
}
