//! Writing files safely: build in memory, write a temp file, fsync, rename; keep backups.

pub mod root;

pub use root::{Links, Node, Root};

use anyhow::{Context, Result};
use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically (temp file made with O_EXCL|O_NOFOLLOW in the
/// same folder, fsync, rename, fsync of the folder). The mode of an existing file is kept,
/// else `mode` is used. A link at `path` is replaced, not followed: resolve it first when
/// the file it points at is meant (`vmx patch` does).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    // Same folder, so the rename stays on one filesystem and is atomic.
    let dir = root::open_dir(parent_dir(path))?;
    root::write_atomic_at(dir.as_fd(), name, path, contents, mode, true)
}

/// Reads a file the user named (`--config`, `root-password-file`, a .vmx): only a regular
/// file, checked before it is opened so that a FIFO cannot hang the command and a device
/// is never read, and at most `max` bytes. The error is `InvalidInput` for anything else.
pub fn read_input(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        let kind = root::kind_name(meta.mode());
        let what = if meta.file_type().is_fifo() || meta.file_type().is_char_device() {
            format!("{kind}: give a regular file (a FIFO or device would be read without end)")
        } else {
            format!("{kind}, not a regular file")
        };
        return Err(Error::new(ErrorKind::InvalidInput, what));
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let now = f.metadata()?;
    if !now.is_file() || now.ino() != meta.ino() || now.dev() != meta.dev() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "changed while it was opened",
        ));
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {} KiB: not a file mtkit reads", max >> 10),
        ));
    }
    Ok(bytes)
}

/// [`read_input`] as UTF-8 text, at most [`root::MAX_READ`] bytes: for facts read through a
/// root (`/proc`, `/sys`, `etc/` of a fixture or image), where a FIFO must not hang the
/// command. Errors are `io::Error`s as `fs::read_to_string` gives them, so callers that
/// treat an unreadable file as missing keep doing so.
pub fn read_text(path: impl AsRef<Path>) -> std::io::Result<String> {
    String::from_utf8(read_input(path.as_ref(), root::MAX_READ)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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

/// Creates the folder `dir` and its missing parents with mode 0700 whatever the umask (the
/// mode given to mkdir is masked by it, so each new folder is set again after), and syncs
/// each new entry into its parent: for folders that hold old disk contents (the writer's
/// journal), which no other user may read.
pub fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(up) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dirs(up)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    fs::File::open(parent_dir(dir))?.sync_all()
}

/// The folder `path` is in; `.` for a bare file name (whose `parent()` is empty).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Copies `path` to `path.mtkit-bak` (or `.mtkit-bak.N` when that exists) and returns it.
/// The backup is created with O_EXCL|O_NOFOLLOW, so a link planted at the backup's name is
/// never written through; `path` itself is not followed either (resolve it first).
pub fn backup(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let dir = root::open_dir(parent_dir(path))?;
    let bak = root::backup_at(dir.as_fd(), name, path)?;
    Ok(path.with_file_name(bak))
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
    fn inputs_must_be_regular_files_of_bounded_size() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for p in [fifo.as_path(), Path::new("/dev/zero"), d.path()] {
            let e = read_input(p, 1 << 20).unwrap_err();
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::InvalidInput,
                "{}",
                p.display()
            );
        }
        let big = d.path().join("big");
        fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(
            read_input(&big, 1024)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
        assert_eq!(read_input(&big, 2048).unwrap().len(), 2048);
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
