//! `disk.EnableUUID = "TRUE"` into a powered-off VM's .vmx: planned in memory, written once
//! atomically with a backup, nothing touched when it is already set.

use super::check::VmxFile;
use anyhow::Result;
use std::path::PathBuf;

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
/// the .vmx from memory and the change would not reach the disks anyway).
pub fn patch(f: &VmxFile) -> Result<Outcome> {
    let lck = f.lock_dir();
    if lck.is_dir() {
        anyhow::bail!(
            "{} exists: the VM is powered on (or was not shut down cleanly). Power it off, \
             then run mtkit vmx patch again; if it is off, the lock is stale: remove the folder",
            lck.display()
        );
    }
    let Some(bytes) = plan(f) else {
        return Ok(Outcome::AlreadySet);
    };
    let backup = crate::files::backup(&f.path)?;
    crate::files::write_atomic(&f.path, &bytes, 0o644)?;
    Ok(Outcome::Patched { backup })
}
