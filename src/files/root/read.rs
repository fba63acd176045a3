//! What is under the root, read without leaving it: files, folders, listings, links.

use super::at::{dir_flags, files_at, names_at, read_regular_at};
use super::walk::Walked;
use super::{Links, MAX_READ, Node, Root, is, kind_name};
use crate::error::bad_input;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

impl Root {
    /// Whether anything is at `rel` (a final link counts, and is not followed).
    pub fn exists(&self, rel: &Path) -> Result<bool> {
        Ok(self.lstat(rel)?.is_some())
    }

    /// Whether `rel` is a regular file (a final link is not one).
    pub fn is_file(&self, rel: &Path) -> Result<bool> {
        Ok(self.lstat(rel)?.is_some_and(|st| is(&st, SFlag::S_IFREG)))
    }

    fn lstat(&self, rel: &Path) -> Result<Option<FileStat>> {
        let Some((dir, name, shown)) = self.parent(rel, Links::InRoot)? else {
            return Ok(None);
        };
        match fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", shown.display())),
        }
    }

    /// The text of `rel` when it is a regular file, at most [`MAX_READ`] bytes; `None` when
    /// it is missing or anything else: a final link is not followed, a FIFO never opened.
    pub fn file_text(&self, rel: &Path) -> Result<Option<String>> {
        match self.node(rel, Links::InRoot)? {
            Node::File { bytes, .. } => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| bad_input(format!("{} is not UTF-8 text", self.show(rel).display()))),
            _ => Ok(None),
        }
    }

    /// The regular files under the folder `path` (resolved as [`Root::resolve`] does),
    /// relative to the root, sorted; with `recursive`, of its sub-folders too. Links are
    /// neither followed nor listed (a link in var/log is not a log of this system), and a
    /// `path` that is itself a link lists nothing. Empty when the folder is missing.
    pub fn files(&self, path: impl AsRef<Path>, recursive: bool) -> Result<Vec<PathBuf>> {
        let rel = self.resolve(path)?;
        let Some((dir, name, shown)) = self.parent(&rel, Links::InRoot)? else {
            return Ok(Vec::new());
        };
        let fd = match openat(dir.as_fd(), name.as_os_str(), dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("opening {}", shown.display())),
        };
        let mut out = Vec::new();
        files_at(fd, &rel, &shown, recursive, &mut out)?;
        out.sort();
        Ok(out)
    }

    /// The regular file at `rel` (a final link followed inside the root), at most
    /// [`MAX_READ`] bytes; `None` when it does not exist. A FIFO, device or folder there is
    /// bad input: it is never opened.
    pub fn read(&self, rel: &Path, links: Links) -> Result<Option<Vec<u8>>> {
        match self.walk(rel, links, true)? {
            Walked::Missing { .. } => Ok(None),
            Walked::Dir { shown, .. } => Err(bad_input(format!(
                "{} is a folder, not a file",
                shown.display()
            ))),
            Walked::In { dir, name, shown } => {
                Ok(read_regular_at(dir.as_fd(), &name, &shown, MAX_READ)?.map(|(b, _)| b))
            }
        }
    }

    /// [`Root::read`] as UTF-8 text (bad input when it is not).
    pub fn read_text(&self, rel: &Path, links: Links) -> Result<Option<String>> {
        match self.read(rel, links)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| bad_input(format!("{} is not UTF-8 text", self.show(rel).display()))),
        }
    }

    /// What is at `rel` itself: a final link is reported, not followed.
    pub fn node(&self, rel: &Path, links: Links) -> Result<Node> {
        let Some((dir, name, shown)) = self.parent(rel, links)? else {
            return Ok(Node::Missing);
        };
        let st = match fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(Node::Missing),
            Err(e) => return Err(e).with_context(|| format!("reading {}", shown.display())),
        };
        if is(&st, SFlag::S_IFLNK) {
            let t = readlinkat(dir.as_fd(), name.as_os_str())
                .with_context(|| format!("reading link {}", shown.display()))?;
            return Ok(Node::Symlink { target: t.into() });
        }
        if is(&st, SFlag::S_IFDIR) {
            return Ok(Node::Dir);
        }
        if !is(&st, SFlag::S_IFREG) {
            return Ok(Node::Other(kind_name(st.st_mode)));
        }
        match read_regular_at(dir.as_fd(), &name, &shown, MAX_READ)? {
            Some((bytes, mode)) => Ok(Node::File { bytes, mode }),
            None => Ok(Node::Missing),
        }
    }

    /// True when `rel` resolves to an existing folder.
    pub fn is_dir(&self, rel: &Path, links: Links) -> Result<bool> {
        Ok(self.open_dir(rel, links)?.is_some())
    }

    /// `rel` as an open folder (links followed inside the root), `None` when missing.
    pub fn open_dir(&self, rel: &Path, links: Links) -> Result<Option<OwnedFd>> {
        match self.walk(rel, links, true)? {
            Walked::Missing { .. } => Ok(None),
            Walked::Dir { fd, .. } => Ok(Some(fd)),
            Walked::In { dir, name, shown } => {
                match openat(dir.as_fd(), name.as_os_str(), dir_flags(), Mode::empty()) {
                    Ok(fd) => Ok(Some(fd)),
                    Err(Errno::ENOENT) => Ok(None),
                    Err(Errno::ENOTDIR | Errno::ELOOP) => {
                        Err(bad_input(format!("{} is not a folder", shown.display())))
                    }
                    Err(e) => Err(e).with_context(|| format!("opening {}", shown.display())),
                }
            }
        }
    }

    /// The names in the folder `rel`, sorted; `None` when it does not exist.
    pub fn list(&self, rel: &Path, links: Links) -> Result<Option<Vec<OsString>>> {
        let Some(fd) = self.open_dir(rel, links)? else {
            return Ok(None);
        };
        let mut names = names_at(fd, &self.show(rel))?;
        names.sort();
        Ok(Some(names))
    }

    /// Bad input when a component of `rel` that exists is a symbolic link (a missing tail
    /// is fine): for paths that must be exactly what they say before anything is changed.
    pub fn check_no_links(&self, rel: &Path) -> Result<()> {
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            prefix.push(c);
            match self.node(&prefix, Links::Refuse)? {
                Node::Missing => return Ok(()),
                Node::Symlink { target } => {
                    return Err(bad_input(format!(
                        "{} is a symbolic link (to {}): not followed under --root {}; \
                         give the real path",
                        self.show(&prefix).display(),
                        target.display(),
                        self.path.display()
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
