//! One name in one open folder: the `*at` calls every read and write under a root ends in
//! (and that `files` uses for paths the user gave): regular files only, bounded reads,
//! atomic writes through O_EXCL temp files, backups, listing and removing trees.

use super::{is, kind_name};
use crate::error::bad_input;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, fchown, fsync, unlinkat};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Opens `name` in `dir` for reading without following it, refusing anything but a regular
/// file (checked before opening, so a FIFO is never opened and a device never touched), and
/// reads at most `max` bytes. `None` when it does not exist.
pub(crate) fn read_regular_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
    max: u64,
) -> Result<Option<(Vec<u8>, u32)>> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", shown.display())),
    };
    if !is(&st, SFlag::S_IFREG) {
        return Err(bad_input(format!(
            "{} is {}: only a regular file is read here",
            shown.display(),
            kind_name(st.st_mode)
        )));
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", shown.display()))?;
    // Replaced between the two calls: read nothing that is not what was checked.
    let now = fstat(&fd).with_context(|| format!("reading {}", shown.display()))?;
    if !is(&now, SFlag::S_IFREG) || now.st_ino != st.st_ino || now.st_dev != st.st_dev {
        return Err(bad_input(format!(
            "{} changed while it was opened",
            shown.display()
        )));
    }
    let bytes = read_bounded(std::fs::File::from(fd), shown, max)?;
    Ok(Some((bytes, now.st_mode & 0o7777)))
}

/// Reads to the end, refusing more than `max` bytes (the size is never taken from metadata:
/// /proc files say 0 and a growing file would lie).
pub(crate) fn read_bounded(f: impl Read, shown: &Path, max: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", shown.display()))?;
    if bytes.len() as u64 > max {
        return Err(bad_input(format!(
            "{} is larger than {} MiB: not a file mtkit reads",
            shown.display(),
            max >> 20
        )));
    }
    Ok(bytes)
}

/// Writes `bytes` as `name` in `dir`: a temp file made with O_EXCL|O_NOFOLLOW under a random
/// name, fsync, rename over `name` (a link there is replaced, never followed), fsync of the
/// folder. With `keep`, an existing regular file's mode and owner are kept, else `mode` is
/// used (and the caller owns the file).
pub(crate) fn write_atomic_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
    bytes: &[u8],
    mode: u32,
    keep: bool,
) -> Result<()> {
    let old = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .filter(|st| keep && is(st, SFlag::S_IFREG));
    let mode = old.map(|st| st.st_mode & 0o7777).unwrap_or(mode);
    let (tmp, fd) = create_temp(dir, name, shown)?;
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes)
            .with_context(|| format!("writing {}", shown.display()))?;
        if let Some(st) = old {
            // Root replacing a user's file (a .vmx) leaves it theirs; EPERM otherwise is fine.
            let _ = fchown(&f, Some(st.st_uid.into()), Some(st.st_gid.into()));
        }
        fchmod(&f, Mode::from_bits_truncate(mode))
            .with_context(|| format!("setting the mode of {}", shown.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", shown.display()))?;
        renameat(dir, tmp.as_os_str(), dir, name)
            .with_context(|| format!("renaming a temp file to {}", shown.display()))?;
        // The rename is durable once the folder is; some filesystems refuse to sync one.
        let _ = fsync(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    result
}

/// A new file `.<name>.<random>.mtkit-tmp` in `dir`, made with O_CREAT|O_EXCL|O_NOFOLLOW:
/// nothing planted there in advance (a link to /etc/shadow) can be opened instead.
pub(super) fn create_temp(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
) -> Result<(OsString, OwnedFd)> {
    for _ in 0..100 {
        let tmp = temp_name(name);
        match openat(
            dir,
            tmp.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating a temp file beside {}", shown.display()));
            }
        }
    }
    anyhow::bail!("no free temp file name beside {}", shown.display())
}

pub(super) fn temp_name(name: &OsStr) -> OsString {
    let mut tmp = OsString::from(".");
    // Long names are cut so the temp name stays under NAME_MAX (255).
    let b = name.as_bytes();
    tmp.push(OsStr::from_bytes(&b[..b.len().min(200)]));
    tmp.push(format!(".{:016x}.mtkit-tmp", rand::random::<u64>()));
    tmp
}

/// Copies the regular file `name` in `dir` to `<name>.mtkit-bak` (or `.mtkit-bak.N`, the
/// first free one) made with O_EXCL|O_NOFOLLOW, mode kept; returns the backup's name.
pub(crate) fn backup_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<OsString> {
    let (bytes, mode) = read_regular_at(dir, name, shown, u64::MAX >> 1)?
        .with_context(|| format!("{} does not exist: nothing to back up", shown.display()))?;
    for n in 0..10_000u32 {
        let mut bak = name.to_os_string();
        bak.push(".mtkit-bak");
        if n > 0 {
            bak.push(format!(".{n}"));
        }
        let fd = match openat(
            dir,
            bak.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("backing up {}", shown.display()));
            }
        };
        let mut f = std::fs::File::from(fd);
        let r = f
            .write_all(&bytes)
            .and_then(|_| fchmod(&f, Mode::from_bits_truncate(mode)).map_err(std::io::Error::from))
            .and_then(|_| f.sync_all());
        if let Err(e) = r {
            let _ = unlinkat(dir, bak.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e).with_context(|| format!("backing up {}", shown.display()));
        }
        let _ = fsync(dir);
        return Ok(bak);
    }
    anyhow::bail!("no free backup name beside {}", shown.display())
}

/// Opens a folder for the `*_at` calls (following links: a path the user gave).
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening folder {}", path.display()))
}

pub(super) fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The names in the open folder `fd`, without `.` and `..`.
pub(super) fn names_at(fd: OwnedFd, shown: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in nix::dir::Dir::from_fd(fd).with_context(|| format!("reading {}", shown.display()))? {
        let e = e.with_context(|| format!("reading {}", shown.display()))?;
        let n = OsStr::from_bytes(e.file_name().to_bytes());
        if n != "." && n != ".." {
            names.push(n.to_os_string());
        }
    }
    Ok(names)
}

/// [`Root::files`] below the open folder `fd` (at `rel`): every entry is looked at without
/// following it, and sub-folders are opened with O_NOFOLLOW.
pub(super) fn files_at(
    fd: OwnedFd,
    rel: &Path,
    shown: &Path,
    recursive: bool,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = fd.try_clone()?;
    for n in names_at(fd, shown)? {
        let here = shown.join(&n);
        let st = match fstatat(dir.as_fd(), n.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", here.display())),
        };
        if is(&st, SFlag::S_IFREG) {
            out.push(rel.join(&n));
        } else if recursive && is(&st, SFlag::S_IFDIR) {
            let sub = match openat(dir.as_fd(), n.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                // Gone, or swapped for a link since the fstatat: not listed.
                Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", here.display())),
            };
            files_at(sub, &rel.join(&n), &here, recursive, out)?;
        }
    }
    Ok(())
}

pub(super) fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<()> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", shown.display())),
    };
    if !is(&st, SFlag::S_IFDIR) {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .with_context(|| format!("removing {}", shown.display()));
    }
    let fd = openat(dir, name, dir_flags(), Mode::empty())
        .with_context(|| format!("opening {}", shown.display()))?;
    let sub = fd.try_clone()?;
    for n in names_at(fd, shown)? {
        remove_tree_at(sub.as_fd(), &n, &shown.join(&n))?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
        .with_context(|| format!("removing {}", shown.display()))
}
