//! `mtkit apply`: the config's plan, made from the recorded originals with the admin's
//! merged edits, applied path by path after each original is recorded.

use super::change::{put, restore_current, show};
use super::drift::{Clash, cur_as, find_drift, refusal, wanted_of};
use super::outcome::{APPLY, LOG, Outcome, VERSION, log};
use super::pending::{Pending, outstanding};
use super::state::{
    Entry, Known, MARKER, Original, STATE_DIR, State, StateDir, read_marker, record,
};
use crate::config::Config;
use crate::error::bad_input;
use crate::files::Root;
use crate::provision::areas::plan_with;
use crate::provision::diff::{self, Ties};
use crate::provision::plan::{Current, Plan, Reader, Wanted};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
        plan_with(
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
    out.list(&todo, dry_run);
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
    lines.extend(out.edit_lines());
    if lines.is_empty() {
        lines.push(format!("marker updated to {VERSION}"));
    }
    log(&root, APPLY, &lines)?;
    Ok(out)
}

/// The planned text of `p`, or what the upgrade step would restore there.
fn planned<'p>(plan: &'p Plan, p: &Path) -> Option<&'p str> {
    plan.planned_text(p)
}
