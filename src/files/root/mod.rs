//! A path inside a root folder (`--root`): the system a kickstart chroot, a mounted image or
//! a clone's disk holds, whose contents are not to be trusted.
//!
//! Every path is walked component by component with `openat(O_NOFOLLOW)` from a descriptor
//! of the root, so no symlink, `..` or rename can take a read or a write out of it. A
//! symlink met on the way is either refused ([`Links::Refuse`]) or resolved as the system
//! itself, chrooted, would see it ([`Links::InRoot`]): an absolute target starts again at
//! the root and `..` stops there. That is openat2's `RESOLVE_IN_ROOT`, done by hand: the
//! master target runs Linux 2.6.32, which has openat but neither openat2 (5.6) nor O_PATH
//! (2.6.39), so this walk is the one path on every kernel rather than a fallback.
//!
//! Files mtkit creates are made with O_EXCL|O_NOFOLLOW under random names and renamed into
//! place; a final component is never followed when it is written, replaced or removed.

mod at;
mod read;
#[cfg(test)]
mod tests;
mod walk;
mod write;

pub(crate) use at::{backup_at, open_dir, read_regular_at, write_atomic_at};

use crate::error::bad_input;
use anyhow::Result;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The most a text file under a root may hold (lvm.conf is ~40 KiB, a config with 300k
/// package names ~4 MiB): a device or a huge file there is refused, not read into memory.
pub const MAX_READ: u64 = 64 << 20;

/// What to do with a symlink met while walking a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Resolve it as the system under the root sees it, never leaving the root.
    InRoot,
    /// Refuse the path (bad input): for paths whose every component must be what it says
    /// (a mountpoint, fstab, the apply state's saved originals).
    Refuse,
}

/// What is at a path, read without following a final symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Missing,
    File {
        bytes: Vec<u8>,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
    },
    Dir,
    /// A FIFO, socket or device: its kind, for messages.
    Other(&'static str),
}

/// A root folder, held open: every path given to it is relative to it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// The kind of a file for messages ("a FIFO").
pub fn kind_name(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a folder",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    (st.st_mode & SFlag::S_IFMT.bits()) == kind.bits()
}

/// Checks that `rel` is a plain relative path: no root, no `..`, no `.`, no NUL. Paths read
/// from state files and config go through this before they touch anything.
pub fn check_rel(rel: &Path) -> Result<()> {
    let ok = !rel.as_os_str().is_empty()
        && !rel.as_os_str().as_bytes().contains(&0)
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "{:?} is not a plain relative path (no leading /, no `..`, no `.`)",
            rel
        )))
    }
}

/// `/mnt/retention` → `mnt/retention`: an absolute path of the system under a root, as a
/// path relative to it. `..` and `.` are refused rather than resolved: `/../x` is a typo
/// or an attempt to leave the root.
pub fn rel_of(abs: &Path) -> Result<PathBuf> {
    let rel = abs.strip_prefix("/").map_err(|_| {
        bad_input(format!(
            "{} is not an absolute path: write it from /, e.g. /mnt/retention",
            abs.display()
        ))
    })?;
    check_rel(rel).map_err(|_| {
        bad_input(format!(
            "{}: `..` and `.` are not allowed in it; write the path plainly, e.g. /mnt/retention",
            abs.display()
        ))
    })?;
    Ok(rel.to_path_buf())
}

impl Root {
    /// Opens the root folder (a link given as the root itself is followed: the user named it).
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            bad_input(format!(
                "--root {}: {} (give the folder the system is mounted at)",
                path.display(),
                e.desc()
            ))
        })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder `rel` as a root of its own (walked from this one, so it is inside it);
    /// `None` when it does not exist.
    pub fn sub(&self, rel: &Path, links: Links) -> Result<Option<Root>> {
        Ok(self.open_dir(rel, links)?.map(|fd| Root {
            fd,
            path: self.path.join(rel),
        }))
    }

    /// A second handle on the same root folder.
    pub fn try_clone(&self) -> Result<Root> {
        Ok(Root {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// `rel` as the host shows it, for messages.
    pub fn show(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// A folder the user named (a TLS folder): links in its path are theirs to make and
    /// are followed; bad input when it is not a folder.
    pub fn open_folder(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOTDIR => bad_input(format!("{} is not a folder", path.display())),
            e => anyhow::Error::new(e).context(format!("opening folder {}", path.display())),
        })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }
}
