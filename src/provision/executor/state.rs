//! The apply state folder (`var/lib/mtkit/apply/`): per path, what was there before mtkit
//! first changed it and what mtkit last wrote, as copies under `orig/` and `last/`; the
//! version marker. Read as untrusted input: plain relative paths, no link followed.

use crate::error::bad_input;
use crate::files::root::check_rel;
use crate::files::{Links, Root};
use crate::provision::plan::{Current, Wanted};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub const STATE_DIR: &str = "var/lib/mtkit/apply";

pub(super) const STATE_FILE: &str = "state.json";

pub(super) const MARKER: &str = "version";

/// What a path was before mtkit first changed it, or what mtkit last made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Original {
    Missing,
    /// A copy of the file, relative to the state folder (`orig/...` or `last/...`).
    File {
        backup: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Entry {
    pub path: PathBuf,
    pub original: Original,
    /// What mtkit last put there; absent in states of older mtkit versions (then no drift
    /// can be seen until the next change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<Original>,
}

/// The record `--revert` works from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct State {
    pub entries: Vec<Entry>,
    /// Folders apply had to create, to remove on revert when empty.
    pub created_dirs: Vec<PathBuf>,
}

/// The state folder, opened inside the root; inside it no link is ever followed.
pub(super) struct StateDir {
    pub(super) dir: Option<Root>,
}

impl StateDir {
    pub(super) fn open(root: &Root) -> Result<StateDir> {
        Ok(StateDir {
            dir: root.sub(Path::new(STATE_DIR), Links::InRoot)?,
        })
    }

    /// Creates the folder (recording the folders made for it) when it is not there.
    pub(super) fn create(&mut self, root: &Root, created: &mut Vec<PathBuf>) -> Result<&Root> {
        if self.dir.is_none() {
            for d in root.create_dirs(Path::new(STATE_DIR), 0o755)? {
                if !created.contains(&d) {
                    created.push(d);
                }
            }
            self.dir = root.sub(Path::new(STATE_DIR), Links::InRoot)?;
        }
        self.dir.as_ref().context("the apply state folder vanished")
    }

    pub(super) fn read(&self, rel: &Path) -> Result<Option<Vec<u8>>> {
        match &self.dir {
            Some(d) => d.read(rel, Links::Refuse),
            None => Ok(None),
        }
    }

    pub(super) fn write(&mut self, root: &Root, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let mut made = Vec::new();
        let d = self.create(root, &mut made)?;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Inside the state folder a link on the way is refused, not followed.
            let mut at = PathBuf::new();
            for c in parent.components() {
                at.push(c);
                if d.open_dir(&at, Links::Refuse)?.is_none() {
                    d.create_dirs(&at, 0o700)?;
                }
            }
        }
        d.write_atomic(rel, bytes, mode)
    }
}

impl State {
    pub(super) fn load(sd: &StateDir) -> Result<Option<State>> {
        let Some(bytes) = sd.read(Path::new(STATE_FILE))? else {
            return Ok(None);
        };
        let shown = || format!("{STATE_DIR}/{STATE_FILE}");
        let state: State = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {} (the apply state)", shown()))?;
        state.check().map_err(|e| {
            bad_input(format!(
                "{}: {e:#}: the apply state is damaged or forged; nothing was changed",
                shown()
            ))
        })?;
        Ok(Some(state))
    }

    /// The state is input like any file under the root: every path in it must be plain
    /// and relative, outside the state folder, and copies must be in `orig/` or `last/`.
    pub(super) fn check(&self) -> Result<()> {
        for e in &self.entries {
            check_rel(&e.path).with_context(|| format!("entry path {:?}", e.path))?;
            if e.path.starts_with(STATE_DIR) {
                anyhow::bail!("entry path {:?} is inside the state folder", e.path);
            }
            for (o, dir) in [(Some(&e.original), "orig"), (e.written.as_ref(), "last")] {
                if let Some(Original::File { backup, .. }) = o {
                    check_rel(backup).with_context(|| format!("copy {:?}", backup))?;
                    if backup.components().next() != Some(Component::Normal(dir.as_ref())) {
                        anyhow::bail!("copy {:?} is not under {dir}/", backup);
                    }
                }
            }
        }
        for d in &self.created_dirs {
            check_rel(d).with_context(|| format!("created folder {:?}", d))?;
        }
        Ok(())
    }

    pub(super) fn save(&self, root: &Root, sd: &mut StateDir) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("state serializes") + "\n";
        sd.write(root, Path::new(STATE_FILE), text.as_bytes(), 0o600)
    }

    pub(super) fn entry(&self, path: &Path) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    pub(super) fn entry_mut(&mut self, path: &Path) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.path == path)
    }
}

pub(super) fn as_wanted(sd: &StateDir, o: &Original) -> Result<Wanted> {
    Ok(match o {
        Original::Missing => Wanted::Absent,
        Original::Symlink { target } => Wanted::Symlink {
            target: target.clone(),
        },
        Original::File { backup, mode } => {
            let bytes = sd.read(backup)?.with_context(|| {
                format!(
                    "{STATE_DIR}/{} is missing: the apply state is damaged",
                    backup.display()
                )
            })?;
            let Ok(text) = String::from_utf8(bytes) else {
                anyhow::bail!("{STATE_DIR}/{} is not text", backup.display());
            };
            Wanted::File { text, mode: *mode }
        }
    })
}

/// What `state` knows: every entry's original and last-written state, read from the copies.
pub(super) struct Known {
    pub(super) originals: BTreeMap<PathBuf, Wanted>,
    pub(super) written: BTreeMap<PathBuf, Wanted>,
}

impl Known {
    pub(super) fn read(sd: &StateDir, state: &State) -> Result<Known> {
        let mut k = Known {
            originals: BTreeMap::new(),
            written: BTreeMap::new(),
        };
        for e in &state.entries {
            k.originals
                .insert(e.path.clone(), as_wanted(sd, &e.original)?);
            if let Some(w) = &e.written {
                k.written.insert(e.path.clone(), as_wanted(sd, w)?);
            }
        }
        Ok(k)
    }

    /// The originals as planners read them (links left out: planners read links as they are).
    pub(super) fn texts(&self, overrides: &BTreeMap<PathBuf, String>) -> Originals {
        let mut out = BTreeMap::new();
        for (p, w) in &self.originals {
            match w {
                Wanted::File { text, .. } => {
                    out.insert(p.clone(), Some(text.clone()));
                }
                Wanted::Absent => {
                    out.insert(p.clone(), None);
                }
                Wanted::Symlink { .. } => {}
            }
        }
        for (p, t) in overrides {
            out.insert(p.clone(), Some(t.clone()));
        }
        out
    }
}

/// Pre-mtkit texts by path (`None`: the path did not exist), as planners read them.
pub type Originals = BTreeMap<PathBuf, Option<String>>;

/// The pre-mtkit texts and the recorded paths of an earlier apply, for [`Reader::with`].
pub fn recorded(root: &Root) -> Result<(Originals, Vec<PathBuf>)> {
    let sd = StateDir::open(root)?;
    let Some(state) = State::load(&sd)? else {
        return Ok(Default::default());
    };
    let known = Known::read(&sd, &state)?;
    let paths = state.entries.iter().map(|e| e.path.clone()).collect();
    Ok((known.texts(&BTreeMap::new()), paths))
}

pub(super) fn read_marker(sd: &StateDir) -> Result<Option<String>> {
    Ok(sd
        .read(Path::new(MARKER))?
        .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
}

/// Records `cur` (what is at `rel`) in the state: a copy under `<dir>/` for a file.
pub(super) fn record(
    root: &Root,
    sd: &mut StateDir,
    dir: &str,
    rel: &Path,
    cur: &Current,
) -> Result<Original> {
    Ok(match cur {
        Current::Missing => Original::Missing,
        Current::Symlink { target } => Original::Symlink {
            target: target.clone(),
        },
        Current::File { bytes, mode } => {
            let backup = Path::new(dir).join(rel);
            sd.write(root, &backup, bytes, 0o600)?;
            Original::File {
                backup,
                mode: *mode,
            }
        }
    })
}

/// Where apply keeps its copy of `rel` as it was before mtkit (relative to the root), when
/// an earlier apply recorded it as a file. Seal and firstboot edit that copy too: apply
/// plans from it, so a machine-specific line left there would come back at the next apply.
pub fn original_backup(root: &Path, rel: &Path) -> Result<Option<PathBuf>> {
    backup_of(root, rel, |e| Some(&e.original))
}

/// Where apply keeps its copy of what it last wrote at `rel`. Seal and firstboot edit it
/// along with the file, so that their edit is not taken for an admin's (drift) by the next
/// apply.
pub fn written_backup(root: &Path, rel: &Path) -> Result<Option<PathBuf>> {
    backup_of(root, rel, |e| e.written.as_ref())
}

pub(super) fn backup_of(
    root: &Path,
    rel: &Path,
    pick: impl Fn(&Entry) -> Option<&Original>,
) -> Result<Option<PathBuf>> {
    let root = Root::open(root)?;
    let Some(state) = State::load(&StateDir::open(&root)?)? else {
        return Ok(None);
    };
    Ok(state.entry(rel).and_then(|e| match pick(e) {
        Some(Original::File { backup, .. }) => Some(Path::new(STATE_DIR).join(backup)),
        _ => None,
    }))
}
