//! Drift: a recorded path that is no longer what mtkit last wrote. Edits that leave
//! mtkit's lines alone are merged into the original (three-way); the rest are clashes, which
//! refuse the run unless `--force`.

use super::change::show;
use super::state::{Known, State};
use crate::files::Root;
use crate::provision::diff::{self, Ties};
use crate::provision::plan::{Current, Wanted};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A path edited since mtkit last wrote it, in a way mtkit cannot merge.
#[derive(Debug, Clone)]
pub(super) struct Clash {
    pub(super) path: PathBuf,
    pub(super) why: String,
    /// The edit as a diff: what mtkit wrote → what is there now.
    pub(super) diff: String,
}

pub(super) fn refusal(clashes: &[Clash], what: &str) -> String {
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

/// Compares what is at each recorded path with what mtkit last wrote. An edited text file
/// whose edits do not touch mtkit's lines gets its edits merged into the original
/// (`absorbed`); anything else is a clash.
pub(super) fn find_drift(
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

pub(super) fn cur_as(w: &Wanted) -> Current {
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

pub(super) fn wanted_of(c: &Current) -> Wanted {
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
