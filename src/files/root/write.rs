//! Changing what is under the root: atomic writes, new files, links, folders, appends,
//! removals and backups, never through a final symlink.

use super::at::{backup_at, create_temp, dir_flags, remove_tree_at, temp_name, write_atomic_at};
use super::{Links, Root, check_rel, is, kind_name};
use crate::error::bad_input;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, fsync, linkat, symlinkat, unlinkat};
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

impl Root {
    /// Replaces `rel` with `bytes` atomically (see [`write_atomic_at`]); its folder must exist.
    pub fn write_atomic(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        write_atomic_at(dir.as_fd(), &name, &shown, bytes, mode, true)
    }

    /// [`Root::write_atomic`] with exactly `mode`, whatever the file there had (keys must
    /// stay private even when someone widened the old one's mode).
    pub fn replace(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        write_atomic_at(dir.as_fd(), &name, &shown, bytes, mode, false)
    }

    /// Makes the file `rel` with `bytes` and exactly `mode` unless something is there
    /// already: `false` then, and nothing changed. The file is whole when it appears: a
    /// synced temp file linked into place (link(2) never replaces: the O_EXCL of a whole
    /// file).
    pub fn create_new(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        let (tmp, fd) = create_temp(dir.as_fd(), &name, &shown)?;
        let mut f = std::fs::File::from(fd);
        let linked = fchmod(&f, Mode::from_bits_truncate(mode))
            .map_err(std::io::Error::from)
            .and_then(|_| f.write_all(bytes))
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", shown.display()))
            .map(|_| {
                linkat(
                    dir.as_fd(),
                    tmp.as_os_str(),
                    dir.as_fd(),
                    name.as_os_str(),
                    AtFlags::empty(),
                )
            });
        let _ = unlinkat(dir.as_fd(), tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        match linked? {
            Ok(()) => {
                let _ = fsync(dir.as_fd());
                Ok(true)
            }
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("creating {}", shown.display())),
        }
    }

    /// Makes `rel` a symlink to `target`, atomically (a temp link renamed over it).
    pub fn symlink(&self, rel: &Path, target: &Path) -> Result<()> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        for _ in 0..100 {
            let tmp = temp_name(&name);
            match symlinkat(target, dir.as_fd(), tmp.as_os_str()) {
                Ok(()) => {
                    return renameat(dir.as_fd(), tmp.as_os_str(), dir.as_fd(), name.as_os_str())
                        .map_err(|e| {
                            let _ =
                                unlinkat(dir.as_fd(), tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                            anyhow::Error::new(e)
                                .context(format!("creating link {}", shown.display()))
                        });
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating link {}", shown.display()));
                }
            }
        }
        anyhow::bail!("no free temp name beside {}", shown.display())
    }

    /// Removes the file or link `rel` (never what a link points at); false when it was not
    /// there.
    pub fn remove(&self, rel: &Path) -> Result<bool> {
        let Some((dir, name, shown)) = self.parent(rel, Links::InRoot)? else {
            return Ok(false);
        };
        match unlinkat(dir.as_fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                let _ = fsync(dir.as_fd());
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", shown.display())),
        }
    }

    /// Removes the empty folder `rel`; false when it is missing or not empty.
    pub fn remove_dir(&self, rel: &Path) -> Result<bool> {
        let Some((dir, name, _)) = self.parent(rel, Links::InRoot)? else {
            return Ok(false);
        };
        let removed = unlinkat(dir.as_fd(), name.as_os_str(), UnlinkatFlags::RemoveDir).is_ok();
        if removed {
            let _ = fsync(dir.as_fd());
        }
        Ok(removed)
    }

    /// Removes the folder `rel` with everything in it, links removed and never followed.
    pub fn remove_tree(&self, rel: &Path) -> Result<()> {
        let Some((dir, name, shown)) = self.parent(rel, Links::Refuse)? else {
            return Ok(());
        };
        remove_tree_at(dir.as_fd(), &name, &shown)
    }

    /// Creates the missing folders of `rel` (mode 0755, or `mode` for the last); returns
    /// the ones it made, outermost first, as paths relative to the root.
    pub fn create_dirs(&self, rel: &Path, mode: u32) -> Result<Vec<PathBuf>> {
        self.create_dirs_with(rel, mode, Links::InRoot)
    }

    /// [`Root::create_dirs`], with links on the way resolved or refused.
    pub fn create_dirs_with(&self, rel: &Path, mode: u32, links: Links) -> Result<Vec<PathBuf>> {
        check_rel(rel)?;
        let mut made = Vec::new();
        let mut prefix = PathBuf::new();
        let n = rel.components().count();
        for (i, c) in rel.components().enumerate() {
            prefix.push(c);
            if self.open_dir(&prefix, links)?.is_some() {
                continue;
            }
            let Some((dir, name, shown)) = self.parent(&prefix, links)? else {
                anyhow::bail!("the folder of {} vanished", self.show(&prefix).display());
            };
            let m = if i + 1 == n { mode } else { 0o755 };
            match mkdirat(dir.as_fd(), name.as_os_str(), Mode::from_bits_truncate(m)) {
                Ok(()) => {
                    // mkdir applied the umask: the mode asked for, exactly.
                    let fd = openat(dir.as_fd(), name.as_os_str(), dir_flags(), Mode::empty())
                        .with_context(|| format!("opening {}", shown.display()))?;
                    fchmod(&fd, Mode::from_bits_truncate(m))
                        .with_context(|| format!("setting the mode of {}", shown.display()))?;
                    let _ = fsync(dir.as_fd());
                    made.push(prefix.clone());
                }
                Err(Errno::EEXIST) => {
                    // A link or file: open_dir above said it is not a folder.
                    return Err(bad_input(format!("{} is not a folder", shown.display())));
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", shown.display())),
            }
        }
        Ok(made)
    }

    /// Appends `bytes` to the regular file `rel` (created with `mode`); a link or FIFO
    /// there is bad input.
    pub fn append(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        self.check_file_or_missing(&dir, &name, &shown)?;
        let fd = openat(
            dir.as_fd(),
            name.as_os_str(),
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .with_context(|| format!("opening {}", shown.display()))?;
        let st = fstat(&fd).with_context(|| format!("reading {}", shown.display()))?;
        if !is(&st, SFlag::S_IFREG) {
            return Err(bad_input(format!(
                "{} is {}, not a regular file",
                shown.display(),
                kind_name(st.st_mode)
            )));
        }
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes)
            .with_context(|| format!("writing {}", shown.display()))
    }

    /// Bad input unless `rel` is a regular file or missing (checked before a run changes
    /// anything, for files written later in it, like the log).
    pub fn check_writable_file(&self, rel: &Path) -> Result<()> {
        match self.parent(rel, Links::InRoot)? {
            Some((dir, name, shown)) => self.check_file_or_missing(&dir, &name, &shown),
            None => Ok(()),
        }
    }

    fn check_file_or_missing(&self, dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<()> {
        match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if !is(&st, SFlag::S_IFREG) => Err(bad_input(format!(
                "{} is {}, not a regular file: mtkit does not write through it",
                shown.display(),
                kind_name(st.st_mode)
            ))),
            _ => Ok(()),
        }
    }

    /// Sets the mode of the regular file `rel` (not through a link).
    pub fn chmod(&self, rel: &Path, mode: u32) -> Result<()> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        let fd = openat(
            dir.as_fd(),
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", shown.display()))?;
        fchmod(&fd, Mode::from_bits_truncate(mode))
            .with_context(|| format!("setting the mode of {}", shown.display()))
    }

    /// Copies the regular file `rel` beside itself as `<name>.mtkit-bak[.N]`; returns the
    /// backup's path relative to the root.
    pub fn backup(&self, rel: &Path) -> Result<PathBuf> {
        let (dir, name, shown) = self.existing_parent(rel)?;
        let bak = backup_at(dir.as_fd(), &name, &shown)?;
        Ok(rel.with_file_name(bak))
    }
}
