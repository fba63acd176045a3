//! One change at one path: making it what is wanted, putting back what was there, and
//! naming and showing the change (a unified diff for text).

use crate::files::Root;
use crate::provision::diff;
use crate::provision::plan::{Current, Wanted};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Makes `rel` what `wanted` says: files atomically, links by rename over the old name.
pub(super) fn put(
    root: &Root,
    rel: &Path,
    wanted: &Wanted,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
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
pub(super) fn restore_current(root: &Root, rel: &Path, cur: &Current) -> Result<()> {
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

pub(super) fn action_name(cur: &Current, wanted: &Wanted) -> &'static str {
    match (cur, wanted) {
        (_, Wanted::Absent) => "remove",
        (Current::Missing, Wanted::File { .. }) => "create",
        (Current::Missing, Wanted::Symlink { .. }) => "link",
        (_, Wanted::Symlink { .. }) => "relink",
        (_, Wanted::File { .. }) => "edit",
    }
}

/// The change as a unified diff (files) or a one-line description (links, removals).
pub(super) fn show(rel: &Path, cur: &Current, wanted: &Wanted) -> String {
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
