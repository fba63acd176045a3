//! Applies a [`Plan`]: shows it as diffs, writes each path atomically, and records what was
//! there before in a state folder so that `--revert` restores it byte for byte.
//!
//! The state lives in `<root>/var/lib/mtkit/apply/`: `state.json` (one entry per path mtkit
//! ever changed, with what it was before the *first* change and what mtkit last wrote),
//! `orig/` and `last/` (copies of those files) and `version` (the marker: the mtkit version
//! that applied last). Because only the first change of a path is recorded, a newer mtkit
//! applying over an older one still reverts to the pre-mtkit system.
//!
//! **Drift.** A file that is not what mtkit last wrote was edited by someone since. Its
//! edits are merged into the recorded original (a three-way merge: last written, original,
//! now), the plan is made again from that, and the admin's lines survive next to mtkit's.
//! When the edit touches lines mtkit wrote, or mtkit owns the whole file, or the new plan
//! would drop the admin's lines, the run refuses with the diff (exit 2, nothing changed);
//! `--force` keeps the admin's version as `<file>.mtkit-bak` and writes mtkit's. `--revert`
//! keeps the admin's edits the same way and never drops an edited file without a backup.
//!
//! Everything goes through [`Root`]: no link in the system can take a read or write outside
//! `--root`, and the state is untrusted input (paths must be plain and relative, the saved
//! copies are never followed as links).

use super::diff::{self, Ties};
use super::{Change, Current, Plan, Reader, Wanted};
use crate::config::Config;
use crate::error::bad_input;
use crate::files::root::check_rel;
use crate::files::{Links, Root};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub const STATE_DIR: &str = "var/lib/mtkit/apply";
pub const LOG: &str = "var/log/mtkit-apply.log";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const STATE_FILE: &str = "state.json";
const MARKER: &str = "version";

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
struct StateDir {
    dir: Option<Root>,
}

impl StateDir {
    fn open(root: &Root) -> Result<StateDir> {
        Ok(StateDir {
            dir: root.sub(Path::new(STATE_DIR), Links::InRoot)?,
        })
    }

    /// Creates the folder (recording the folders made for it) when it is not there.
    fn create(&mut self, root: &Root, created: &mut Vec<PathBuf>) -> Result<&Root> {
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

    fn read(&self, rel: &Path) -> Result<Option<Vec<u8>>> {
        match &self.dir {
            Some(d) => d.read(rel, Links::Refuse),
            None => Ok(None),
        }
    }

    fn write(&mut self, root: &Root, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
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
    fn load(sd: &StateDir) -> Result<Option<State>> {
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
    fn check(&self) -> Result<()> {
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

    fn save(&self, root: &Root, sd: &mut StateDir) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("state serializes") + "\n";
        sd.write(root, Path::new(STATE_FILE), text.as_bytes(), 0o600)
    }

    fn entry(&self, path: &Path) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    fn entry_mut(&mut self, path: &Path) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.path == path)
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
    /// Files edited since mtkit wrote them whose edits were kept (merged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_edits: Vec<PathBuf>,
    /// Backups of edited files `--force` replaced (paths relative to the root).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<PathBuf>,
    /// Dry run: why the real run would refuse (it exits 2 with this message).
    #[serde(skip)]
    pub refused: Option<String>,
}

/// A path edited since mtkit last wrote it, in a way mtkit cannot merge.
#[derive(Debug, Clone)]
struct Clash {
    path: PathBuf,
    why: String,
    /// The edit as a diff: what mtkit wrote → what is there now.
    diff: String,
}

fn refusal(clashes: &[Clash], what: &str) -> String {
    let mut msg = format!(
        "{} changed since mtkit apply last wrote {}, and {what} would lose that:",
        match clashes.len() {
            1 => "1 path".to_string(),
            n => format!("{n} paths"),
        },
        if clashes.len() == 1 { "it" } else { "them" }
    );
    for c in clashes {
        msg.push_str(&format!("\n  - {}: {}", c.path.display(), c.why));
    }
    for c in clashes {
        msg.push('\n');
        msg.push_str(c.diff.trim_end());
    }
    msg.push_str(
        "\nmerge the edits by hand, or run again with --force: each edited file is kept as \
         <file>.mtkit-bak beside it\nnothing was changed",
    );
    msg
}

fn as_wanted(sd: &StateDir, o: &Original) -> Result<Wanted> {
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
struct Known {
    originals: BTreeMap<PathBuf, Wanted>,
    written: BTreeMap<PathBuf, Wanted>,
}

impl Known {
    fn read(sd: &StateDir, state: &State) -> Result<Known> {
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
    fn texts(&self, overrides: &BTreeMap<PathBuf, String>) -> Originals {
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

/// Compares what is at each recorded path with what mtkit last wrote. An edited text file
/// whose edits do not touch mtkit's lines gets its edits merged into the original
/// (`absorbed`); anything else is a clash.
fn find_drift(
    root: &Root,
    state: &State,
    known: &Known,
) -> Result<(BTreeMap<PathBuf, String>, Vec<Clash>)> {
    let mut absorbed = BTreeMap::new();
    let mut clashes = Vec::new();
    for e in &state.entries {
        let Some(last) = known.written.get(&e.path) else {
            continue;
        };
        let cur = Current::read(root, &e.path)?;
        if cur.satisfies(last) {
            continue;
        }
        let shown = show(&e.path, &cur_as(last), &wanted_of(&cur));
        let clash = |why: &str| Clash {
            path: e.path.clone(),
            why: why.to_string(),
            diff: shown.clone(),
        };
        match (last, &cur, known.originals.get(&e.path)) {
            (Wanted::File { text: l, .. }, Current::File { bytes, .. }, Some(o)) => {
                let Ok(c) = std::str::from_utf8(bytes) else {
                    clashes.push(clash("is no longer text"));
                    continue;
                };
                let Wanted::File { text: o, .. } = o else {
                    clashes.push(clash(
                        "mtkit wrote the whole file (it did not exist before), and it was edited",
                    ));
                    continue;
                };
                match diff::merge3(l, o, c, Ties::Conflict) {
                    Ok(merged) => {
                        absorbed.insert(e.path.clone(), merged);
                    }
                    Err(at) => clashes.push(clash(&format!(
                        "the edit changes lines mtkit wrote (near line {})",
                        at.line
                    ))),
                }
            }
            (_, Current::Missing, _) => clashes.push(clash("removed since mtkit wrote it")),
            (Wanted::Absent, _, _) => clashes.push(clash("mtkit removed it; it is back")),
            _ => clashes.push(clash("changed since mtkit set it")),
        }
    }
    Ok((absorbed, clashes))
}

fn cur_as(w: &Wanted) -> Current {
    match w {
        Wanted::Absent => Current::Missing,
        Wanted::Symlink { target } => Current::Symlink {
            target: target.clone(),
        },
        Wanted::File { text, mode } => Current::File {
            bytes: text.as_bytes().to_vec(),
            mode: *mode,
        },
    }
}

fn wanted_of(c: &Current) -> Wanted {
    match c {
        Current::Missing => Wanted::Absent,
        Current::Symlink { target } => Wanted::Symlink {
            target: target.clone(),
        },
        Current::File { bytes, mode } => Wanted::File {
            text: String::from_utf8_lossy(bytes).into_owned(),
            mode: *mode,
        },
    }
}

/// The planned text of `p`, or what the upgrade step would restore there.
fn planned<'p>(plan: &'p Plan, p: &Path) -> Option<&'p str> {
    plan.planned_text(p)
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

/// Applies `plan` under `root` without recording it (`seal`, `firstboot`): nothing of the
/// apply state is read or written, the plan is taken as it is, and a failure part way
/// still puts back what this run changed. Recorded runs go through [`apply`], which makes
/// its plan itself (it has to, to merge edits made since the last apply).
pub fn run(root_path: &Path, plan: Plan, dry_run: bool, mode: Mode) -> Result<Outcome> {
    anyhow::ensure!(!mode.record, "a recorded run is `executor::apply`");
    let root = Root::open(root_path)?;
    root.check_writable_file(Path::new(mode.log))?;
    let Pending { todo, notes } = outstanding(&root, plan, &State::default(), &BTreeMap::new())?;
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
            put(&root, &c.path, &c.wanted, &mut created)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (path, cur) in undo.iter().rev() {
            if let Err(u) = restore_current(&root, path, cur) {
                tracing::error!("could not undo {}: {u:#}", path.display());
            }
        }
        for d in created.iter().rev() {
            let _ = root.remove_dir(d);
        }
        return Err(e);
    }
    let lines: Vec<String> = out
        .changed
        .iter()
        .map(|d| format!("{} {} ({})", d.action, d.path.display(), d.area))
        .collect();
    log(&root, mode, &lines)?;
    Ok(out)
}

/// Applies the config's plan under `root` (or only describes it with `dry_run`). Edited
/// files are merged or refused (see the module text); `force` replaces them after a backup.
pub fn apply(root_path: &Path, config: &Config, dry_run: bool, force: bool) -> Result<Outcome> {
    let root = Root::open(root_path)?;
    let mut sd = StateDir::open(&root)?;
    let mut state = State::load(&sd)?.unwrap_or_default();
    // The log is written last: a link or FIFO there is refused before anything changes.
    root.check_writable_file(Path::new(LOG))?;
    let marker = read_marker(&sd)?;
    let known = Known::read(&sd, &state)?;
    let recorded: Vec<PathBuf> = state.entries.iter().map(|e| e.path.clone()).collect();
    let (mut absorbed, mut clashes) = find_drift(&root, &state, &known)?;

    let plan_for = |absorbed: &BTreeMap<PathBuf, String>| {
        super::areas::plan_with(
            &Reader::with(&root, known.texts(absorbed), recorded.clone()),
            config,
        )
    };
    if !absorbed.is_empty() {
        // The admin's edits must survive the new plan: mtkit's change (original → plan)
        // and theirs (original → original + edits) applied together must give the plan
        // made from the edited original. A planner that owns its whole file, or drops
        // the admin's line (the host name on another address), fails this.
        let plain = plan_for(&BTreeMap::new())?;
        let merged = plan_for(&absorbed)?;
        let mut kept = BTreeMap::new();
        for (p, edited) in absorbed {
            let Some(Wanted::File { text: o, .. }) = known.originals.get(&p) else {
                continue;
            };
            let ours = planned(&plain, &p).unwrap_or(o);
            let both = planned(&merged, &p).unwrap_or(&edited);
            let fits = [Ties::AFirst, Ties::BFirst]
                .iter()
                .any(|&t| diff::merge3(o, &edited, ours, t).as_deref() == Ok(both));
            if fits {
                kept.insert(p, edited);
            } else {
                let cur = Current::read(&root, &p)?;
                let last = known.written.get(&p).cloned().unwrap_or(Wanted::Absent);
                clashes.push(Clash {
                    diff: show(&p, &cur_as(&last), &wanted_of(&cur)),
                    path: p,
                    why: "mtkit's new version of the file would drop the edit".into(),
                });
            }
        }
        absorbed = kept;
    }
    let mut out = Outcome {
        upgraded_from: marker.clone().filter(|v| v != VERSION),
        ..Outcome::default()
    };
    let plan = plan_for(&absorbed)?;
    let originals: BTreeMap<PathBuf, Wanted> = known
        .originals
        .iter()
        .map(|(p, w)| {
            let w = match (absorbed.get(p), w) {
                (Some(t), Wanted::File { mode, .. }) => Wanted::File {
                    text: t.clone(),
                    mode: *mode,
                },
                _ => w.clone(),
            };
            (p.clone(), w)
        })
        .collect();
    let Pending { todo, notes } = outstanding(&root, plan, &state, &originals)?;
    // An edit only matters where this run would change the path.
    clashes.retain(|c| todo.iter().any(|(t, _)| t.path == c.path));
    let clashed: Vec<PathBuf> = clashes.iter().map(|c| c.path.clone()).collect();
    if !clashes.is_empty() && !force {
        let msg = refusal(&clashes, "this apply");
        if !dry_run {
            return Err(bad_input(msg));
        }
        out.refused = Some(msg);
    }
    out.notes = notes;
    out.kept_edits = absorbed.keys().cloned().collect();
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
    // Entries of an older state learn what mtkit wrote; absorbed edits become the original.
    let state_stale = state.entries.iter().any(|e| e.written.is_none()) || !absorbed.is_empty();
    if dry_run
        || (todo.is_empty()
            && !state_stale
            && clashed.is_empty()
            && (!marker_stale || state.entries.is_empty()))
    {
        return Ok(out);
    }

    let first_apply = state.entries.is_empty();
    let mut undo: Vec<(PathBuf, Current)> = Vec::new();
    let mut created = std::mem::take(&mut state.created_dirs);
    let result = (|| -> Result<()> {
        sd.create(&root, &mut created)?;
        state.created_dirs = created.clone();
        // --force: the edited versions are kept beside the files they were in.
        for p in &clashed {
            if matches!(Current::read(&root, p)?, Current::File { .. }) {
                out.backups.push(root.backup(p)?);
            }
        }
        for (p, text) in &absorbed {
            let e = state.entry_mut(p).expect("absorbed paths are recorded");
            let mode = match e.original {
                Original::File { mode, .. } => mode,
                _ => 0o644,
            };
            let backup = Path::new("orig").join(p);
            sd.write(&root, &backup, text.as_bytes(), 0o600)?;
            e.original = Original::File { backup, mode };
        }
        for (c, cur) in &todo {
            if state.entry(&c.path).is_none() {
                let original = record(&root, &mut sd, "orig", &c.path, cur)?;
                state.entries.push(Entry {
                    path: c.path.clone(),
                    original,
                    written: None,
                });
            }
            // The record is durable before the file changes, so a crash can still revert.
            state.save(&root, &mut sd)?;
            undo.push((c.path.clone(), cur.clone()));
            let mut made = Vec::new();
            put(&root, &c.path, &c.wanted, &mut made)?;
            for d in made {
                if !state.created_dirs.contains(&d) {
                    state.created_dirs.push(d);
                }
            }
        }
        // What each path is now is what mtkit last wrote.
        for i in 0..state.entries.len() {
            let p = state.entries[i].path.clone();
            let cur = Current::read(&root, &p)?;
            state.entries[i].written = Some(record(&root, &mut sd, "last", &p, &cur)?);
        }
        state.save(&root, &mut sd)?;
        let d = sd.create(&root, &mut Vec::new())?;
        d.write_atomic(Path::new(MARKER), format!("{VERSION}\n").as_bytes(), 0o644)
    })();
    if let Err(e) = result {
        // Put back what this run changed so the system is not left half-applied.
        for (path, cur) in undo.iter().rev() {
            if let Err(u) = restore_current(&root, path, cur) {
                tracing::error!("could not undo {}: {u:#}", path.display());
            }
        }
        if first_apply {
            // Nothing of mtkit remains: drop the state too, with the folders made for it.
            let _ = root.remove_tree(Path::new(STATE_DIR));
            for d in state.created_dirs.iter().rev() {
                let _ = root.remove_dir(d);
            }
        } else {
            let _ = state.save(&root, &mut sd);
        }
        return Err(e);
    }
    let mut lines: Vec<String> = out
        .changed
        .iter()
        .map(|d| format!("{} {} ({})", d.action, d.path.display(), d.area))
        .collect();
    for p in &out.kept_edits {
        lines.push(format!(
            "kept the edits made to {} since the last apply",
            p.display()
        ));
    }
    for b in &out.backups {
        lines.push(format!(
            "--force: the edited version is kept as {}",
            b.display()
        ));
    }
    if lines.is_empty() {
        lines.push(format!("marker updated to {VERSION}"));
    }
    log(&root, APPLY, &lines)?;
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
    let root = Root::open(root)?;
    let sd = StateDir::open(&root)?;
    let state = State::load(&sd)?.unwrap_or_default();
    let known = Known::read(&sd, &state)?;
    outstanding(&root, plan, &state, &known.originals)
}

fn outstanding(
    root: &Root,
    mut plan: Plan,
    state: &State,
    originals: &BTreeMap<PathBuf, Wanted>,
) -> Result<Pending> {
    // Paths an earlier (older) apply changed that this plan no longer manages go back to
    // what they were before mtkit.
    for e in &state.entries {
        if !plan.manages(&e.path)
            && let Some(wanted) = originals.get(&e.path)
        {
            plan.changes.push(Change {
                area: "upgrade",
                path: e.path.clone(),
                wanted: wanted.clone(),
            });
        }
    }
    let mut todo = Vec::new();
    for c in plan.changes {
        let cur = Current::read(root, &c.path)?;
        if !cur.satisfies(&c.wanted) {
            todo.push((c, cur));
        }
    }
    Ok(Pending {
        todo,
        notes: plan.notes,
    })
}

/// Puts back every path recorded by earlier applies, and removes the state. Edits made
/// since the last apply are kept (merged into the original); a path whose edit cannot be
/// kept is refused unless `force`, which backs the edited file up first.
pub fn revert(root_path: &Path, dry_run: bool, force: bool) -> Result<Outcome> {
    let root = Root::open(root_path)?;
    let mut sd = StateDir::open(&root)?;
    let Some(state) = State::load(&sd)? else {
        return Ok(Outcome::default());
    };
    root.check_writable_file(Path::new(LOG))?;
    let known = Known::read(&sd, &state)?;
    let (absorbed, mut clashes) = find_drift(&root, &state, &known)?;
    let mut out = Outcome {
        kept_edits: absorbed.keys().cloned().collect(),
        ..Outcome::default()
    };
    let mut todo = Vec::new();
    for e in state.entries.iter().rev() {
        let mut wanted = known.originals[&e.path].clone();
        if let (Some(text), Wanted::File { mode, .. }) = (absorbed.get(&e.path), &wanted) {
            wanted = Wanted::File {
                text: text.clone(),
                mode: *mode,
            };
        }
        let cur = Current::read(&root, &e.path)?;
        let restored = match (&wanted, &cur) {
            // Compare modes too: a revert must give back the file exactly.
            (Wanted::File { mode, .. }, Current::File { mode: m, .. }) => {
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
            todo.push((e, wanted, cur));
        }
    }
    clashes.retain(|c| todo.iter().any(|(e, _, _)| e.path == c.path));
    if !clashes.is_empty() && !force {
        let msg = refusal(&clashes, "--revert");
        if !dry_run {
            return Err(bad_input(msg));
        }
        out.refused = Some(msg);
    }
    if dry_run {
        return Ok(out);
    }
    for c in &clashes {
        if matches!(Current::read(&root, &c.path)?, Current::File { .. }) {
            out.backups.push(root.backup(&c.path)?);
        }
    }
    for (e, wanted, _) in &todo {
        put(&root, &e.path, wanted, &mut Vec::new())?;
        if let Wanted::File { mode, .. } = wanted {
            root.chmod(&e.path, *mode)?;
        }
    }
    root.remove_tree(Path::new(STATE_DIR))?;
    sd.dir = None;
    for d in state.created_dirs.iter().rev() {
        // Only empty folders go: anything else put there since is not ours to delete.
        let _ = root.remove_dir(d);
    }
    let mut lines: Vec<String> = out
        .changed
        .iter()
        .map(|d| format!("{} {}", d.action, d.path.display()))
        .collect();
    for p in &out.kept_edits {
        lines.push(format!(
            "kept the edits made to {} since the last apply",
            p.display()
        ));
    }
    for b in &out.backups {
        lines.push(format!(
            "--force: the edited version is kept as {}",
            b.display()
        ));
    }
    lines.push("apply state removed".into());
    log(
        &root,
        Mode {
            what: "revert",
            ..APPLY
        },
        &lines,
    )?;
    Ok(out)
}

fn read_marker(sd: &StateDir) -> Result<Option<String>> {
    Ok(sd
        .read(Path::new(MARKER))?
        .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
}

/// Records `cur` (what is at `rel`) in the state: a copy under `<dir>/` for a file.
fn record(
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

/// Makes `rel` what `wanted` says: files atomically, links by rename over the old name.
fn put(root: &Root, rel: &Path, wanted: &Wanted, created: &mut Vec<PathBuf>) -> Result<()> {
    if !matches!(wanted, Wanted::Absent)
        && let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty())
    {
        created.extend(root.create_dirs(parent, 0o755)?);
    }
    match wanted {
        Wanted::File { text, mode } => root.write_atomic(rel, text.as_bytes(), *mode),
        Wanted::Symlink { target } => root.symlink(rel, target),
        Wanted::Absent => root.remove(rel).map(drop),
    }
}

/// Puts `cur` back at `rel` byte for byte (undoing a failed run).
fn restore_current(root: &Root, rel: &Path, cur: &Current) -> Result<()> {
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty())
        && !matches!(cur, Current::Missing)
    {
        root.create_dirs(parent, 0o755)?;
    }
    // Bytes as they were: a binary file (a wtmp a seal removed) comes back unchanged.
    match cur {
        Current::Missing => root.remove(rel).map(drop),
        Current::Symlink { target } => root.symlink(rel, target),
        Current::File { bytes, mode } => {
            root.write_atomic(rel, bytes, *mode)?;
            root.chmod(rel, *mode)
        }
    }
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

fn log(root: &Root, mode: Mode, lines: &[String]) -> Result<()> {
    let p = Path::new(mode.log);
    if let Some(parent) = p.parent() {
        root.create_dirs(parent, 0o755)?;
    }
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut text = String::new();
    for l in lines {
        text.push_str(&format!("{stamp} mtkit {VERSION} {}: {l}\n", mode.what));
    }
    root.append(p, text.as_bytes(), 0o644)
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

fn backup_of(
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
