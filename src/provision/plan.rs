//! What `apply` plans with: the wanted end state of each path ([`Plan`] of [`Change`]s),
//! what is there now ([`Current`]), the [`Reader`] planners see the system through, and
//! the system's [`InitSystem`].

use crate::error::bad_input;
use crate::files::{Links, Node, Root};
use anyhow::Result;
use std::collections::BTreeMap;
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
    pub(super) fn edit_shipped(
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
    /// `rel` under `root`: folders on the way resolved inside the root, the path itself not
    /// followed. A folder, FIFO or device where apply manages a file or link is bad input.
    pub fn read(root: &Root, rel: &Path) -> Result<Current> {
        Ok(match root.node(rel, Links::InRoot)? {
            Node::Missing => Current::Missing,
            Node::File { bytes, mode } => Current::File { bytes, mode },
            Node::Symlink { target } => Current::Symlink { target },
            Node::Dir => {
                return Err(bad_input(format!(
                    "{} is a folder where mtkit apply manages a file or link: move it away",
                    root.show(rel).display()
                )));
            }
            Node::Other(kind) => {
                return Err(bad_input(format!(
                    "{} is {} where mtkit apply manages a file or link: move it away",
                    root.show(rel).display(),
                    kind
                )));
            }
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
/// is read as it was before mtkit (from the apply state, with the admin's later edits
/// merged in). Plans are thus always computed from the original system, so a newer mtkit
/// replaces the older one's edits instead of stacking on them, and a config change (a new
/// writer port) leaves no stale lines.
#[derive(Debug)]
pub struct Reader<'a> {
    pub root: &'a Root,
    originals: BTreeMap<PathBuf, Option<String>>,
    /// Every path an earlier apply changed (links included).
    pub recorded: Vec<PathBuf>,
}

impl<'a> Reader<'a> {
    /// A reader with these originals (`None`: the path did not exist before mtkit).
    pub fn with(
        root: &'a Root,
        originals: BTreeMap<PathBuf, Option<String>>,
        recorded: Vec<PathBuf>,
    ) -> Reader<'a> {
        Reader {
            root,
            originals,
            recorded,
        }
    }

    /// The text of `rel` (original when recorded); `None` when it does not exist.
    pub fn text(&self, rel: &str) -> Result<Option<String>> {
        if let Some(o) = self.originals.get(Path::new(rel)) {
            return Ok(o.clone());
        }
        self.root.read_text(Path::new(rel), Links::InRoot)
    }

    /// True when `rel` is a folder of the system.
    pub fn is_dir(&self, rel: &str) -> Result<bool> {
        self.root.is_dir(Path::new(rel), Links::InRoot)
    }

    /// The names in the folder `rel` (empty when it does not exist).
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        Ok(self
            .root
            .list(Path::new(rel), Links::InRoot)?
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }
}

/// How the system under root starts its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitSystem {
    SysV,
    Systemd,
}

impl InitSystem {
    /// [`InitSystem::detect_in`] for the system at `root`.
    pub fn detect(root: &Path) -> InitSystem {
        match Root::open(root) {
            Ok(r) => InitSystem::detect_in(&r),
            Err(_) => InitSystem::SysV,
        }
    }

    /// systemd when its binary is there (CentOS 7+, Debian); else SysV with chkconfig links.
    pub fn detect_in(root: &Root) -> InitSystem {
        let systemd = ["usr/lib/systemd/systemd", "lib/systemd/systemd"]
            .iter()
            .any(|p| {
                !matches!(
                    root.node(Path::new(p), Links::InRoot),
                    Ok(Node::Missing) | Err(_)
                )
            });
        if systemd {
            InitSystem::Systemd
        } else {
            InitSystem::SysV
        }
    }
}
