//! `mtkit apply --revert`: every recorded path back to what it was before mtkit (with the
//! admin's merged edits), then the state removed.

use super::change::{action_name, put, show};
use super::drift::{find_drift, refusal};
use super::outcome::{APPLY, Done, LOG, Mode, Outcome, log};
use super::state::{Known, STATE_DIR, State, StateDir};
use crate::error::bad_input;
use crate::files::Root;
use crate::provision::plan::{Current, Wanted};
use anyhow::Result;
use std::path::Path;

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
    lines.extend(out.edit_lines());
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
