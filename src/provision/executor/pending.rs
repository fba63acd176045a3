//! What a plan would still change under a root: its changes not in place, and the paths an
//! earlier apply changed that the plan no longer manages (back to their originals).

use super::state::{Known, State, StateDir};
use crate::files::Root;
use crate::provision::plan::{Change, Current, Plan, Wanted};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

pub(super) fn outstanding(
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
