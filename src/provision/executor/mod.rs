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

mod apply;
mod change;
mod drift;
mod outcome;
mod pending;
mod revert;
mod state;

pub use apply::apply;
pub use outcome::{APPLY, Done, LOG, Mode, Outcome, VERSION};
pub use pending::{Pending, pending};
pub use revert::revert;
pub use state::{
    Entry, Original, Originals, STATE_DIR, State, original_backup, recorded, written_backup,
};

use crate::files::Root;
use crate::provision::plan::{Current, Plan};
use anyhow::Result;
use change::{put, restore_current};
use outcome::log;
use pending::outstanding;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    out.list(&todo, dry_run);
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
