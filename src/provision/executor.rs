//! Applies a [`Plan`]: shows it as diffs, writes each path atomically, and records what was
//! there before in a state folder so that `--revert` restores it byte for byte.
//!
//! The state lives in `<root>/var/lib/mtkit/apply/`: `state.json` (one entry per path mtkit
//! ever changed, with what it was before the *first* change), `orig/` (copies of the
//! original files) and `version` (the marker: the mtkit version that applied last). Because
//! only the first change of a path is recorded, a newer mtkit applying over an older one
//! still reverts to the pre-mtkit system.

use super::{Change, Current, Plan, Wanted, diff};
use crate::files::write_atomic;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const STATE_DIR: &str = "var/lib/mtkit/apply";
pub const LOG: &str = "var/log/mtkit-apply.log";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a path was before mtkit first changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Original {
    Missing,
    File { backup: PathBuf, mode: u32 },
    Symlink { target: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Entry {
    pub path: PathBuf,
    pub original: Original,
}

/// The record `--revert` works from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct State {
    pub entries: Vec<Entry>,
    /// Folders apply had to create, to remove on revert when empty.
    pub created_dirs: Vec<PathBuf>,
}

impl State {
    fn load(root: &Path) -> Result<Option<State>> {
        let p = root.join(STATE_DIR).join("state.json");
        match fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .with_context(|| format!("parsing {} (the apply state)", p.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    fn save(&self, root: &Path) -> Result<()> {
        let p = root.join(STATE_DIR).join("state.json");
        let text = serde_json::to_string_pretty(self).expect("state serializes") + "\n";
        write_atomic(&p, text.as_bytes(), 0o600)
    }

    fn entry(&self, path: &Path) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

/// One line of what apply or revert did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub area: String,
    pub path: PathBuf,
    pub action: &'static str,
}

/// The result of a run: what changed, what was shown, what could not be done.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Outcome {
    pub changed: Vec<Done>,
    pub notes: Vec<String>,
    /// Unified diffs (dry run only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The mtkit version found in the marker before this run, when different.
    pub upgraded_from: Option<String>,
}

/// How a run of the executor is recorded: `apply` keeps what it replaces so that `--revert`
/// can put it back; `seal` and `firstboot` must not (a copy of a sealed-away SSH host key
/// in the apply state would defeat the seal), and log to their own file.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// The verb in the log lines (`apply`, `seal`, ...).
    pub what: &'static str,
    /// The log file under root the run appends to.
    pub log: &'static str,
    /// Record originals and the version marker in the apply state (revertible).
    pub record: bool,
}

/// `mtkit apply`: revertible, logged to [`LOG`].
pub const APPLY: Mode = Mode {
    what: "apply",
    log: LOG,
    record: true,
};

/// Applies `plan` under `root` (or only describes it with `dry_run`).
pub fn apply(root: &Path, plan: Plan, dry_run: bool) -> Result<Outcome> {
    run(root, plan, dry_run, APPLY)
}

/// Applies `plan` under `root` as `mode` says (or only describes it with `dry_run`). Without
/// recording, nothing of the apply state is read or written: the plan is taken as it is,
/// and a failure part way still puts back what this run changed.
pub fn run(root: &Path, plan: Plan, dry_run: bool, mode: Mode) -> Result<Outcome> {
    if !mode.record {
        return run_unrecorded(root, plan, dry_run, mode);
    }
    let mut state = State::load(root)?.unwrap_or_default();
    let marker = read_marker(root)?;
    let Pending { todo, notes } = outstanding(root, plan, &state)?;
    let mut out = Outcome {
        notes,
        upgraded_from: marker.clone().filter(|v| v != VERSION),
        ..Outcome::default()
    };
    for (c, cur) in &todo {
        out.changed.push(Done {
            area: c.area.into(),
            path: c.path.clone(),
            action: action_name(cur, &c.wanted),
        });
        if dry_run {
            out.diff.push_str(&show(&c.path, cur, &c.wanted));
        }
    }
    let marker_stale = marker.as_deref() != Some(VERSION);
    if dry_run || (todo.is_empty() && (!marker_stale || state.entries.is_empty())) {
        return Ok(out);
    }

    let first_apply = state.entries.is_empty();
    // The state folder's parents are recorded like any folder apply creates.
    make_parents(
        root,
        &Path::new(STATE_DIR).join("orig/x"),
        &mut state.created_dirs,
    )?;
    let mut undo: Vec<(PathBuf, Current)> = Vec::new();
    let result = (|| -> Result<()> {
        for (c, cur) in &todo {
            if state.entry(&c.path).is_none() {
                let original = record_original(root, &c.path, cur)?;
                state.entries.push(Entry {
                    path: c.path.clone(),
                    original,
                });
            }
            // The record is durable before the file changes, so a crash can still revert.
            state.save(root)?;
            undo.push((c.path.clone(), cur.clone()));
            put(root, &c.path, &c.wanted, &mut state.created_dirs)?;
        }
        state.save(root)?;
        write_atomic(
            &root.join(STATE_DIR).join("version"),
            format!("{VERSION}\n").as_bytes(),
            0o644,
        )
    })();
    if let Err(e) = result {
        // Put back what this run changed so the system is not left half-applied.
        for (path, cur) in undo.iter().rev() {
            if let Err(u) = restore_current(root, path, cur) {
                tracing::error!("could not undo {}: {u:#}", path.display());
            }
        }
        if first_apply {
            // Nothing of mtkit remains: drop the state too, with the folders made for it.
            let _ = fs::remove_dir_all(root.join(STATE_DIR));
            for d in state.created_dirs.iter().rev() {
                let _ = fs::remove_dir(root.join(d));
            }
        } else {
            let _ = state.save(root);
        }
        return Err(e);
    }
    let mut lines: Vec<String> = out
        .changed
        .iter()
        .map(|d| format!("{} {} ({})", d.action, d.path.display(), d.area))
        .collect();
    if lines.is_empty() {
        lines.push(format!("marker updated to {VERSION}"));
    }
    log(root, mode, &lines)?;
    Ok(out)
}

fn run_unrecorded(root: &Path, plan: Plan, dry_run: bool, mode: Mode) -> Result<Outcome> {
    let Pending { todo, notes } = outstanding(root, plan, &State::default())?;
    let mut out = Outcome {
        notes,
        ..Outcome::default()
    };
    for (c, cur) in &todo {
        out.changed.push(Done {
            area: c.area.into(),
            path: c.path.clone(),
            action: action_name(cur, &c.wanted),
        });
        if dry_run {
            out.diff.push_str(&show(&c.path, cur, &c.wanted));
        }
    }
    if dry_run || todo.is_empty() {
        return Ok(out);
    }
    let mut undo: Vec<(PathBuf, Current)> = Vec::new();
    let mut created = Vec::new();
    let result = (|| -> Result<()> {
        for (c, cur) in &todo {
            undo.push((c.path.clone(), cur.clone()));
            put(root, &c.path, &c.wanted, &mut created)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (path, cur) in undo.iter().rev() {
            if let Err(u) = restore_current(root, path, cur) {
                tracing::error!("could not undo {}: {u:#}", path.display());
            }
        }
        for d in created.iter().rev() {
            let _ = fs::remove_dir(root.join(d));
        }
        return Err(e);
    }
    let lines: Vec<String> = out
        .changed
        .iter()
        .map(|d| format!("{} {} ({})", d.action, d.path.display(), d.area))
        .collect();
    log(root, mode, &lines)?;
    Ok(out)
}

/// What `apply` would still do: each change not in place, with what is there now.
#[derive(Debug)]
pub struct Pending {
    pub todo: Vec<(Change, Current)>,
    pub notes: Vec<String>,
}

/// The changes of `plan` not in place yet under `root` (`mtkit doctor` reports them).
pub fn pending(root: &Path, plan: Plan) -> Result<Pending> {
    let state = State::load(root)?.unwrap_or_default();
    outstanding(root, plan, &state)
}

fn outstanding(root: &Path, mut plan: Plan, state: &State) -> Result<Pending> {
    // Paths an earlier (older) apply changed that this plan no longer manages go back to
    // what they were before mtkit.
    for e in &state.entries {
        if !plan.manages(&e.path) {
            let wanted = original_as_wanted(root, &e.original)?;
            plan.changes.push(Change {
                area: "upgrade",
                path: e.path.clone(),
                wanted,
            });
        }
    }
    let mut todo = Vec::new();
    for c in plan.changes {
        let cur = Current::read(&root.join(&c.path))?;
        if !cur.satisfies(&c.wanted) {
            todo.push((c, cur));
        }
    }
    Ok(Pending {
        todo,
        notes: plan.notes,
    })
}

/// Puts back every path recorded by earlier applies, and removes the state.
pub fn revert(root: &Path, dry_run: bool) -> Result<Outcome> {
    let Some(state) = State::load(root)? else {
        return Ok(Outcome::default());
    };
    let mut out = Outcome::default();
    let mut todo = Vec::new();
    for e in state.entries.iter().rev() {
        let wanted = original_as_wanted(root, &e.original)?;
        let cur = Current::read(&root.join(&e.path))?;
        let restored = match (&e.original, &cur) {
            // Compare modes too: a revert must give back the file exactly.
            (Original::File { mode, .. }, Current::File { mode: m, .. }) => {
                cur.satisfies(&wanted) && mode == m
            }
            _ => cur.satisfies(&wanted),
        };
        if !restored {
            out.changed.push(Done {
                area: "revert".into(),
                path: e.path.clone(),
                action: action_name(&cur, &wanted),
            });
            if dry_run {
                out.diff.push_str(&show(&e.path, &cur, &wanted));
            }
            todo.push((e, wanted));
        }
    }
    if dry_run {
        return Ok(out);
    }
    for (e, wanted) in &todo {
        put(root, &e.path, wanted, &mut Vec::new())?;
        if let Original::File { mode, .. } = e.original {
            let p = root.join(&e.path);
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting mode of {}", p.display()))?;
        }
    }
    let dir = root.join(STATE_DIR);
    fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    for d in state.created_dirs.iter().rev() {
        // Only empty folders go: anything else put there since is not ours to delete.
        let _ = fs::remove_dir(root.join(d));
    }
    let mut lines: Vec<String> = out
        .changed
        .iter()
        .map(|d| format!("{} {}", d.action, d.path.display()))
        .collect();
    lines.push("apply state removed".into());
    log(
        root,
        Mode {
            what: "revert",
            ..APPLY
        },
        &lines,
    )?;
    Ok(out)
}

fn read_marker(root: &Path) -> Result<Option<String>> {
    let p = root.join(STATE_DIR).join("version");
    match fs::read_to_string(&p) {
        Ok(t) => Ok(Some(t.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

fn record_original(root: &Path, rel: &Path, cur: &Current) -> Result<Original> {
    Ok(match cur {
        Current::Missing => Original::Missing,
        Current::Symlink { target } => Original::Symlink {
            target: target.clone(),
        },
        Current::File { bytes, mode } => {
            let backup = Path::new("orig").join(rel);
            let dst = root.join(STATE_DIR).join(&backup);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            write_atomic(&dst, bytes, 0o600)?;
            Original::File {
                backup,
                mode: *mode,
            }
        }
    })
}

fn original_as_wanted(root: &Path, o: &Original) -> Result<Wanted> {
    Ok(match o {
        Original::Missing => Wanted::Absent,
        Original::Symlink { target } => Wanted::Symlink {
            target: target.clone(),
        },
        Original::File { backup, mode } => {
            let p = root.join(STATE_DIR).join(backup);
            let bytes = fs::read(&p)
                .with_context(|| format!("reading backup {} (apply state)", p.display()))?;
            let Ok(text) = String::from_utf8(bytes) else {
                bail!("backup {} is not text", p.display());
            };
            Wanted::File { text, mode: *mode }
        }
    })
}

/// Makes `rel` what `wanted` says: files atomically, links by rename over the old name.
fn put(root: &Path, rel: &Path, wanted: &Wanted, created: &mut Vec<PathBuf>) -> Result<()> {
    let p = root.join(rel);
    if !matches!(wanted, Wanted::Absent) {
        make_parents(root, rel, created)?;
    }
    match wanted {
        Wanted::File { text, mode } => {
            if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
            write_atomic(&p, text.as_bytes(), *mode)
        }
        Wanted::Symlink { target } => {
            let name = p.file_name().context("link without a name")?;
            let tmp = p.with_file_name(format!(".{}.mtkit-tmp", name.to_string_lossy()));
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(target, &tmp)
                .with_context(|| format!("creating link {}", tmp.display()))?;
            fs::rename(&tmp, &p).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                anyhow::Error::new(e).context(format!("creating link {}", p.display()))
            })
        }
        Wanted::Absent => match fs::remove_file(&p) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", p.display()))
            }
            _ => Ok(()),
        },
    }
}

fn restore_current(root: &Path, rel: &Path, cur: &Current) -> Result<()> {
    // Bytes as they were: a binary file (a wtmp a seal removed) must come back unchanged.
    if let Current::File { bytes, mode } = cur {
        let p = root.join(rel);
        make_parents(root, rel, &mut Vec::new())?;
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        return write_atomic(&p, bytes, *mode);
    }
    let wanted = match cur {
        Current::Missing => Wanted::Absent,
        Current::Symlink { target } => Wanted::Symlink {
            target: target.clone(),
        },
        Current::File { bytes, mode } => Wanted::File {
            text: String::from_utf8_lossy(bytes).into_owned(),
            mode: *mode,
        },
    };
    put(root, rel, &wanted, &mut Vec::new())
}

fn make_parents(root: &Path, rel: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut dir = rel.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if root.join(d).exists() {
            break;
        }
        missing.push(d.to_path_buf());
        dir = d.parent();
    }
    for d in missing.into_iter().rev() {
        let p = root.join(&d);
        fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
        if !created.contains(&d) {
            created.push(d);
        }
    }
    Ok(())
}

fn action_name(cur: &Current, wanted: &Wanted) -> &'static str {
    match (cur, wanted) {
        (_, Wanted::Absent) => "remove",
        (Current::Missing, Wanted::File { .. }) => "create",
        (Current::Missing, Wanted::Symlink { .. }) => "link",
        (_, Wanted::Symlink { .. }) => "relink",
        (_, Wanted::File { .. }) => "edit",
    }
}

/// The change as a unified diff (files) or a one-line description (links, removals).
fn show(rel: &Path, cur: &Current, wanted: &Wanted) -> String {
    let shown = rel.display();
    let describe = |c: &Current| match c {
        Current::Missing => "nothing".to_string(),
        Current::Symlink { target } => format!("link to {}", target.display()),
        Current::File { .. } => "a file".to_string(),
    };
    match (cur, wanted) {
        // Logs like wtmp are binary: a line diff of them says nothing.
        (Current::File { bytes, .. }, _) if std::str::from_utf8(bytes).is_err() => match wanted {
            Wanted::Absent => format!("remove {shown} (was {} bytes, binary)\n", bytes.len()),
            _ => format!("write {shown} (was {} bytes, binary)\n", bytes.len()),
        },
        (Current::File { bytes, .. }, Wanted::File { text, .. }) => diff::unified(
            &String::from_utf8_lossy(bytes),
            text,
            &format!("a/{shown}"),
            &format!("b/{shown}"),
        ),
        (Current::Missing, Wanted::File { text, .. }) => {
            diff::unified("", text, "/dev/null", &format!("b/{shown}"))
        }
        (c, Wanted::Symlink { target }) => {
            format!(
                "link {shown} -> {} (was {})\n",
                target.display(),
                describe(c)
            )
        }
        (c, Wanted::Absent) => format!("remove {shown} (was {})\n", describe(c)),
        (c, Wanted::File { .. }) => format!("write {shown} (was {})\n", describe(c)),
    }
}

fn log(root: &Path, mode: Mode, lines: &[String]) -> Result<()> {
    let what = mode.what;
    let p = root.join(mode.log);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut text = String::new();
    for l in lines {
        text.push_str(&format!("{stamp} mtkit {VERSION} {what}: {l}\n"));
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", p.display()))
}

/// The pre-mtkit text of every file an earlier apply recorded (`None`: it did not exist).
/// Symlinks are left out: planners read links from the system as it is.
pub fn original_texts(root: &Path) -> Result<std::collections::BTreeMap<PathBuf, Option<String>>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(state) = State::load(root)? else {
        return Ok(out);
    };
    for e in &state.entries {
        match original_as_wanted(root, &e.original)? {
            Wanted::File { text, .. } => {
                out.insert(e.path.clone(), Some(text));
            }
            Wanted::Absent => {
                out.insert(e.path.clone(), None);
            }
            Wanted::Symlink { .. } => {}
        }
    }
    Ok(out)
}

/// Where apply keeps its copy of `rel` as it was before mtkit (relative to the root), when
/// an earlier apply recorded it as a file. Seal and firstboot edit that copy too: apply
/// plans from it, so a machine-specific line left there would come back at the next apply.
pub fn original_backup(root: &Path, rel: &Path) -> Result<Option<PathBuf>> {
    let Some(state) = State::load(root)? else {
        return Ok(None);
    };
    Ok(state.entry(rel).and_then(|e| match &e.original {
        Original::File { backup, .. } => Some(Path::new(STATE_DIR).join(backup)),
        _ => None,
    }))
}

/// Every path an earlier apply recorded.
pub fn recorded_paths(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(State::load(root)?
        .map(|s| s.entries.into_iter().map(|e| e.path).collect())
        .unwrap_or_default())
}
