//! Walking a path inside the root: component by component from the root's descriptor with
//! O_NOFOLLOW, a symlink refused or resolved as the chrooted system would (openat2's
//! `RESOLVE_IN_ROOT` by hand), `..` stopping at the root.

use super::at::dir_flags;
use super::{Links, Root, check_rel, is, kind_name, rel_of};
use crate::error::bad_input;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The kernel's limit on symlinks followed in one lookup (`MAXSYMLINKS`, 40 since 2.6.18).
const MAX_LINKS: u32 = 40;

/// Where a walk ended: the folder holding the final name (or the folder itself).
pub(super) enum Walked {
    In {
        dir: OwnedFd,
        name: OsString,
        shown: PathBuf,
    },
    Dir {
        fd: OwnedFd,
        shown: PathBuf,
    },
    /// A folder on the way does not exist: `shown` ends with it, `rest` is what came after
    /// it (link targets included, `..` and all).
    Missing {
        shown: PathBuf,
        rest: VecDeque<OsString>,
    },
}

impl Root {
    /// `path`, a path of the system under the root (`/` in front or not), with the links in
    /// its folders resolved as that system sees them (never leaving the root), relative to
    /// the root. The final component is kept as it is: a link there is the thing to read or
    /// change, not a way elsewhere. Past a folder that does not exist, the rest is kept as
    /// written. For plans, whose paths the executor walks again with its own checks.
    pub fn resolve(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let rel = if path.has_root() {
            rel_of(path)?
        } else {
            path.to_path_buf()
        };
        let (shown, rest) = match self.walk(&rel, Links::InRoot, false)? {
            Walked::In { shown, .. } | Walked::Dir { shown, .. } => (shown, VecDeque::new()),
            Walked::Missing { shown, rest } => (shown, rest),
        };
        let mut out = shown
            .strip_prefix(&self.path)
            .expect("a walk stays under the root")
            .to_path_buf();
        for c in rest {
            if c == ".." {
                out.pop();
            } else if c != "." {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Walks `rel` from the root. The final component is followed only with `follow_last`
    /// (and only when it is a link); [`Walked::Missing`] when a folder on the way does not
    /// exist.
    pub(super) fn walk(&self, rel: &Path, links: Links, follow_last: bool) -> Result<Walked> {
        check_rel(rel)?;
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut queue: VecDeque<OsString> = rel
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut hops = 0;
        let shown = |stack: &[(OwnedFd, OsString)], name: Option<&OsStr>| {
            let mut p = self.path.clone();
            p.extend(stack.iter().map(|(_, n)| n));
            if let Some(n) = name {
                p.push(n);
            }
            p
        };
        loop {
            let Some(c) = queue.pop_front() else {
                // A link ending in `..` or `.`: the walk ends on a folder.
                let fd = match stack.last() {
                    Some((fd, _)) => fd.try_clone()?,
                    None => self.fd.try_clone()?,
                };
                return Ok(Walked::Dir {
                    fd,
                    shown: shown(&stack, None),
                });
            };
            if c == "." {
                continue;
            }
            if c == ".." {
                // Only link targets hold `..` (check_rel refused it in `rel`); at the
                // root it stays at the root, as in a chroot.
                stack.pop();
                continue;
            }
            let last = queue.is_empty();
            let cur = match stack.last() {
                Some((fd, _)) => fd.as_fd(),
                None => self.fd.as_fd(),
            };
            let here = shown(&stack, Some(&c));
            if last && !follow_last {
                return Ok(Walked::In {
                    dir: cur.try_clone_to_owned()?,
                    name: c,
                    shown: here,
                });
            }
            let st = match fstatat(cur, c.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) if last => {
                    return Ok(Walked::In {
                        dir: cur.try_clone_to_owned()?,
                        name: c,
                        shown: here,
                    });
                }
                Err(Errno::ENOENT) => {
                    return Ok(Walked::Missing {
                        shown: here,
                        rest: queue,
                    });
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", here.display())),
            };
            if is(&st, SFlag::S_IFLNK) {
                let target = readlinkat(cur, c.as_os_str())
                    .with_context(|| format!("reading link {}", here.display()))?;
                if links == Links::Refuse {
                    return Err(bad_input(format!(
                        "{} is a symbolic link (to {}): not followed under --root {}; \
                         give the real path",
                        here.display(),
                        Path::new(&target).display(),
                        self.path.display()
                    )));
                }
                hops += 1;
                if hops > MAX_LINKS || target.is_empty() {
                    return Err(bad_input(format!(
                        "{}: too many levels of symbolic links",
                        here.display()
                    )));
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    stack.clear();
                }
                for part in target.components().rev() {
                    match part {
                        Component::RootDir | Component::Prefix(_) => {}
                        other => queue.push_front(other.as_os_str().to_os_string()),
                    }
                }
                continue;
            }
            if last {
                return Ok(Walked::In {
                    dir: cur.try_clone_to_owned()?,
                    name: c,
                    shown: here,
                });
            }
            if !is(&st, SFlag::S_IFDIR) {
                return Err(bad_input(format!(
                    "{} is {}, not a folder",
                    here.display(),
                    kind_name(st.st_mode)
                )));
            }
            // O_NOFOLLOW: swapped for a link since the fstatat, the open fails (ELOOP).
            let fd = openat(cur, c.as_os_str(), dir_flags(), Mode::empty())
                .with_context(|| format!("opening {}", here.display()))?;
            stack.push((fd, c));
        }
    }

    /// The folder holding `rel` and its final name (not followed), or `None` when a
    /// folder on the way is missing.
    pub(super) fn parent(
        &self,
        rel: &Path,
        links: Links,
    ) -> Result<Option<(OwnedFd, OsString, PathBuf)>> {
        match self.walk(rel, links, false)? {
            Walked::In { dir, name, shown } => Ok(Some((dir, name, shown))),
            Walked::Dir { shown, .. } => Err(bad_input(format!(
                "{} names a folder, not a file",
                shown.display()
            ))),
            Walked::Missing { .. } => Ok(None),
        }
    }

    pub(super) fn existing_parent(&self, rel: &Path) -> Result<(OwnedFd, OsString, PathBuf)> {
        self.parent(rel, Links::InRoot)?
            .with_context(|| format!("the folder of {} does not exist", self.show(rel).display()))
    }
}
