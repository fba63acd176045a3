//! `disk.EnableUUID = "TRUE"` into a powered-off VM's .vmx: planned in memory, written once
//! atomically with a backup, nothing touched when it is already set.

use super::check::VmxFile;
use crate::files::root;
use anyhow::{Context, Result};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// What patching did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The value was already TRUE (any case): the file was not opened for writing.
    AlreadySet,
    /// The file was replaced; the old bytes are in `backup`.
    Patched { backup: PathBuf },
}

/// The new file bytes, or `None` when disk.EnableUUID is already TRUE.
pub fn plan(f: &VmxFile) -> Option<Vec<u8>> {
    if f.vmx
        .get("disk.EnableUUID")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return None;
    }
    let mut v = f.vmx.clone();
    v.set("disk.EnableUUID", "TRUE");
    Some(v.to_bytes())
}

/// Patches the file unless the VM holds its lock folder (it is running: ESXi would rewrite
/// the .vmx from memory and the change would not reach the disks anyway). The real file is
/// edited (a symlink to it stays a symlink); the backup and the temp file are created with
/// O_EXCL|O_NOFOLLOW beside it, so a link planted in a folder another user can write is
/// never written through.
pub fn patch(f: &VmxFile) -> Result<Outcome> {
    for lck in [f.lock_dir(), lock_beside(&f.path)] {
        if lck.is_dir() {
            anyhow::bail!(
                "{} exists: the VM is powered on (or was not shut down cleanly). Power it off, \
                 then run mtkit vmx patch again; if it is off, the lock is stale: remove the folder",
                lck.display()
            );
        }
    }
    let Some(bytes) = plan(f) else {
        return Ok(Outcome::AlreadySet);
    };
    let name = f.real.file_name().context("the .vmx has no file name")?;
    let dir = root::open_dir(crate::files::parent_dir(&f.real))?;
    // Unchanged since it was read: an edit in between (ESXi, another admin) is not lost.
    let now =
        root::read_regular_at(dir.as_fd(), name, &f.real, super::check::MAX_VMX)?.map(|(b, _)| b);
    if now.as_deref() != Some(f.vmx.to_bytes().as_slice()) {
        anyhow::bail!(
            "{} changed while mtkit read it: run mtkit vmx patch again",
            f.real.display()
        );
    }
    let bak = root::backup_at(dir.as_fd(), name, &f.real)?;
    root::write_atomic_at(dir.as_fd(), name, &f.real, &bytes, 0o644, true)?;
    Ok(Outcome::Patched {
        backup: f.real.with_file_name(bak),
    })
}

fn lock_beside(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(".lck");
    PathBuf::from(s)
}
