//! Writing files safely: build in memory, write a temp file, fsync, rename; keep backups.

use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically (temp file in the same folder, fsync, rename,
/// fsync of the folder). The mode of an existing file is kept, else `mode` is used.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(mode);
    // Same folder, so the rename stays on one filesystem and is atomic.
    let tmp = dir.join(format!(".{}.mtkit-tmp", name.to_string_lossy()));
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode of {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        // The rename is durable only once the folder is synced. The file itself already
        // is, and some filesystems refuse to sync a folder: not worth failing over.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Checks that `path` can name a file the user asked for (`--out`, `-o`): not a folder,
/// and in a folder that exists. Bad input (exit 2) otherwise, before anything is written.
pub fn check_output(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(crate::error::bad_input(format!(
            "{} is a folder: give a file name to write",
            path.display()
        )));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(crate::error::bad_input(format!(
            "cannot write {}: folder {} does not exist (create it first)",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// The one rule for a file the user names (`-o`, `--out`): [`check_output`], and an
/// existing regular file is replaced only with `force`. A device or FIFO (`/dev/null`) is
/// written into, not replaced, so it needs no `--force`.
pub fn check_new_output(path: &Path, force: bool) -> Result<()> {
    check_output(path)?;
    let taken = match fs::metadata(path) {
        Ok(m) => m.is_file(),
        // A dangling symlink: writing would follow it or replace it.
        Err(_) => fs::symlink_metadata(path).is_ok(),
    };
    if taken && !force {
        return Err(crate::error::bad_input(format!(
            "{} exists: pass --force to overwrite it, or choose another output",
            path.display()
        )));
    }
    Ok(())
}

/// The folder `path` is in; `.` for a bare file name (whose `parent()` is empty).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Copies `path` to `path.mtkit-bak` (or `.mtkit-bak.N` when that exists) and returns it.
pub fn backup(path: &Path) -> Result<PathBuf> {
    let mut target = PathBuf::from(format!("{}.mtkit-bak", path.display()));
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.mtkit-bak.{n}", path.display()));
        n += 1;
    }
    fs::copy(path, &target)
        .with_context(|| format!("backing up {} to {}", path.display(), target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_checks_are_bad_input() {
        let d = tempfile::tempdir().unwrap();
        for p in [d.path().to_path_buf(), d.path().join("no/such/file")] {
            let e = check_output(&p).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{e}");
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        }
        check_output(&d.path().join("new.cfg")).unwrap();
        check_output(Path::new("relative.cfg")).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.conf");
        write_atomic(&p, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "no temp left");
    }

    #[test]
    fn backups_never_overwrite_each_other() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "a").unwrap();
        let b1 = backup(&p).unwrap();
        fs::write(&p, "b").unwrap();
        let b2 = backup(&p).unwrap();
        assert_ne!(b1, b2);
        assert_eq!(fs::read_to_string(b1).unwrap(), "a");
        assert_eq!(fs::read_to_string(b2).unwrap(), "b");
    }
}
