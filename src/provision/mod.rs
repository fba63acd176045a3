//! The custom changes of a master target (`mtkit apply`): planned, idempotent, reversible edits.
//!
//! Each area has a pure planner (what is there + config → the wanted end state of some
//! paths); [`plan`] gathers them into one [`Plan`], and [`executor`] applies it atomically,
//! keeping what was there before so that `--revert` restores it byte for byte.

pub mod diff;
pub mod executor;
pub mod firewall;
pub mod hosts;
pub mod kdump;
pub mod lvm;
pub mod multipath;
pub mod network;
pub mod services;
pub mod tls;
pub mod writer_service;

use crate::config::Config;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// What a path should end up as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A regular file with this text (its mode when it has to be created).
    File { text: String, mode: u32 },
    /// A symbolic link pointing at `target` (a SysV rc link, a systemd enablement link).
    Symlink { target: PathBuf },
    /// Nothing at this path (a SysV link of the other kind, a stale link).
    Absent,
}

/// One change of the plan: `path` is relative to the root (`etc/multipath.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub area: &'static str,
    pub path: PathBuf,
    pub wanted: Wanted,
}

/// Everything `apply` would change, and what it could not do (a package missing, ...).
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
}

impl Plan {
    /// Records a planner's answer for a file it read as `input`: new text, or `None` for
    /// "the input is right". The executor skips paths already as wanted.
    pub fn edit(
        &mut self,
        area: &'static str,
        path: &str,
        input: Option<&str>,
        new: Option<String>,
        mode: u32,
    ) {
        let wanted = match (new, input) {
            (Some(text), _) => Wanted::File { text, mode },
            (None, Some(text)) => Wanted::File {
                text: text.to_string(),
                mode,
            },
            (None, None) => Wanted::Absent,
        };
        self.want(area, path, wanted);
    }

    /// Edits a file a package ships when it is there; else notes what is missing.
    fn edit_shipped(
        &mut self,
        r: &Reader,
        area: &'static str,
        path: &str,
        mode: u32,
        planner: impl Fn(&str) -> Option<String>,
        missing: &str,
    ) -> Result<()> {
        match r.text(path)? {
            Some(cur) => self.edit(area, path, Some(&cur), planner(&cur), mode),
            None => self.notes.push(format!("{path} missing: {missing}")),
        }
        Ok(())
    }

    pub fn want(&mut self, area: &'static str, path: impl Into<PathBuf>, wanted: Wanted) {
        self.changes.push(Change {
            area,
            path: path.into(),
            wanted,
        });
    }

    /// True when some planner looked after `path` in this plan.
    pub fn manages(&self, path: &Path) -> bool {
        self.changes.iter().any(|c| c.path == path)
    }

    /// The text `path` will have after this plan, when the plan writes it.
    pub fn planned_text(&self, path: &Path) -> Option<&str> {
        self.changes.iter().find_map(|c| match &c.wanted {
            Wanted::File { text, .. } if c.path == path => Some(text.as_str()),
            _ => None,
        })
    }
}

/// What is at a path now, read without following a final symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Missing,
    File { bytes: Vec<u8>, mode: u32 },
    Symlink { target: PathBuf },
}

impl Current {
    pub fn read(path: &Path) -> Result<Current> {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Current::Missing),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if meta.file_type().is_symlink() {
            let target =
                fs::read_link(path).with_context(|| format!("reading {}", path.display()))?;
            return Ok(Current::Symlink { target });
        }
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Current::File {
            bytes,
            mode: meta.permissions().mode() & 0o7777,
        })
    }

    /// True when this is already what `wanted` asks for.
    pub fn satisfies(&self, wanted: &Wanted) -> bool {
        match (self, wanted) {
            (Current::Missing, Wanted::Absent) => true,
            (Current::File { bytes, .. }, Wanted::File { text, .. }) => bytes == text.as_bytes(),
            (Current::Symlink { target: a }, Wanted::Symlink { target: b }) => a == b,
            _ => false,
        }
    }
}

/// What planners read: the system under root, except that a file an earlier apply changed
/// is read as it was before mtkit (from the apply state). Plans are thus always computed
/// from the original system, so a newer mtkit replaces the older one's edits instead of
/// stacking on them, and a config change (a new writer port) leaves no stale lines.
#[derive(Debug)]
pub struct Reader {
    pub root: PathBuf,
    originals: BTreeMap<PathBuf, Option<String>>,
    /// Every path an earlier apply changed (links included).
    pub recorded: Vec<PathBuf>,
}

impl Reader {
    pub fn new(root: &Path) -> Result<Reader> {
        Ok(Reader {
            root: root.to_path_buf(),
            originals: executor::original_texts(root)?,
            recorded: executor::recorded_paths(root)?,
        })
    }

    /// The text of `rel` (original when recorded); `None` when it does not exist.
    pub fn text(&self, rel: &str) -> Result<Option<String>> {
        if let Some(o) = self.originals.get(Path::new(rel)) {
            return Ok(o.clone());
        }
        let p = self.root.join(rel);
        match fs::read_to_string(&p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
}

/// How the system under root starts its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitSystem {
    SysV,
    Systemd,
}

impl InitSystem {
    /// systemd when its binary is there (CentOS 7+, Debian); else SysV with chkconfig links.
    pub fn detect(root: &Path) -> InitSystem {
        let systemd = ["usr/lib/systemd/systemd", "lib/systemd/systemd"]
            .iter()
            .any(|p| root.join(p).exists());
        if systemd {
            InitSystem::Systemd
        } else {
            InitSystem::SysV
        }
    }
}

/// The whole plan for the system under `root`: every planner, reading only.
pub fn plan(root: &Path, config: &Config) -> Result<Plan> {
    let mut plan = Plan::default();
    let init = InitSystem::detect(root);
    let r = Reader::new(root)?;

    let os_disk = multipath::OsDiskId::read(root, &config.disks.os_disk);
    let cur = r.text(multipath::PATH)?;
    let new = multipath::plan(cur.as_deref(), &os_disk);
    plan.edit("multipath", multipath::PATH, cur.as_deref(), new, 0o600);

    let os = &config.disks.os_disk;
    let lvm_plan = |t: &str| lvm::plan(t, os);
    plan.edit_shipped(
        &r,
        "lvm",
        lvm::PATH,
        0o644,
        lvm_plan,
        "lvm2 not installed, no LVM filter set",
    )?;
    let missing = "install kexec-tools for kdump";
    plan.edit_shipped(&r, "kdump", kdump::CONF, 0o644, kdump::plan_conf, missing)?;
    let missing = "not grub legacy, add crashkernel=auto to the kernel command line by hand";
    plan.edit_shipped(&r, "kdump", kdump::GRUB, 0o600, kdump::plan_grub, missing)?;
    network::plan(&r, &config.network, &mut plan)?;
    let cur = r.text(hosts::PATH)?;
    let new = hosts::plan(cur.as_deref(), &config.appliance.hostname, &config.network);
    plan.edit("hosts", hosts::PATH, cur.as_deref(), new, 0o644);
    if let Some(note) = hosts::note(&config.network) {
        plan.notes.push(note);
    }
    firewall::plan(&r, init, config, &mut plan)?;
    writer_service::plan(&r, init, config, &mut plan)?;
    services::plan(&r, init, &mut plan)?;
    Ok(plan)
}
