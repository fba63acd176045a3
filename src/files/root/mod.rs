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

use crate::error::bad_input;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, fchown, fsync, linkat, symlinkat, unlinkat};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The most a text file under a root may hold (lvm.conf is ~40 KiB, a config with 300k
/// package names ~4 MiB): a device or a huge file there is refused, not read into memory.
pub const MAX_READ: u64 = 64 << 20;

/// The kernel's limit on symlinks followed in one lookup (`MAXSYMLINKS`, 40 since 2.6.18).
const MAX_LINKS: u32 = 40;

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

/// Where a walk ended: the folder holding the final name (or the folder itself).
enum Walked {
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
fn create_temp(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<(OsString, OwnedFd)> {
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

fn temp_name(name: &OsStr) -> OsString {
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

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
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

    /// Walks `rel` from the root. The final component is followed only with `follow_last`
    /// (and only when it is a link); [`Walked::Missing`] when a folder on the way does not
    /// exist.
    fn walk(&self, rel: &Path, links: Links, follow_last: bool) -> Result<Walked> {
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
    fn parent(&self, rel: &Path, links: Links) -> Result<Option<(OwnedFd, OsString, PathBuf)>> {
        match self.walk(rel, links, false)? {
            Walked::In { dir, name, shown } => Ok(Some((dir, name, shown))),
            Walked::Dir { shown, .. } => Err(bad_input(format!(
                "{} names a folder, not a file",
                shown.display()
            ))),
            Walked::Missing { .. } => Ok(None),
        }
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

    fn existing_parent(&self, rel: &Path) -> Result<(OwnedFd, OsString, PathBuf)> {
        self.parent(rel, Links::InRoot)?
            .with_context(|| format!("the folder of {} does not exist", self.show(rel).display()))
    }
}

/// The names in the open folder `fd`, without `.` and `..`.
fn names_at(fd: OwnedFd, shown: &Path) -> Result<Vec<OsString>> {
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
fn files_at(
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

fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        let outside = d.path().join("outside");
        fs::create_dir_all(root.join("etc/real")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "host secret\n").unwrap();
        fs::write(root.join("etc/real/f"), "inside\n").unwrap();
        (d, root, outside)
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let (_d, root, outside) = tree();
        // absolute, relative with too many `..`, and to the host's own folder
        symlink("/etc/real", root.join("etc/abs")).unwrap();
        symlink("../../../../etc/real", root.join("etc/rel")).unwrap();
        symlink(&outside, root.join("etc/out")).unwrap();
        symlink(outside.join("secret"), root.join("etc/file")).unwrap();
        let r = Root::open(&root).unwrap();
        let text = |p: &str| r.read_text(Path::new(p), Links::InRoot).unwrap();
        assert_eq!(text("etc/abs/f").as_deref(), Some("inside\n"));
        assert_eq!(text("etc/rel/f").as_deref(), Some("inside\n"));
        assert_eq!(
            text("etc/out/secret"),
            None,
            "the host folder is not reached"
        );
        assert_eq!(text("etc/file"), None);
        // a write through the folder link lands inside the root
        r.write_atomic(Path::new("etc/abs/new"), b"x", 0o644)
            .unwrap();
        assert_eq!(fs::read(root.join("etc/real/new")).unwrap(), b"x");
        let e = r.read(Path::new("etc/abs/f"), Links::Refuse).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
    }

    #[test]
    fn writes_replace_a_final_link_and_never_follow_it() {
        let (_d, root, outside) = tree();
        symlink(outside.join("secret"), root.join("etc/hosts")).unwrap();
        // a planted temp name of the old scheme changes nothing either
        symlink(outside.join("secret"), root.join("etc/.hosts.mtkit-tmp")).unwrap();
        let r = Root::open(&root).unwrap();
        r.write_atomic(Path::new("etc/hosts"), b"mine\n", 0o644)
            .unwrap();
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"host secret\n");
        assert_eq!(fs::read(root.join("etc/hosts")).unwrap(), b"mine\n");
        assert!(
            !fs::symlink_metadata(root.join("etc/hosts"))
                .unwrap()
                .is_symlink()
        );
        symlink(outside.join("secret"), root.join("etc/log")).unwrap();
        let e = r.append(Path::new("etc/log"), b"x", 0o644).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{e}");
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"host secret\n");
        assert!(r.remove(Path::new("etc/log")).unwrap());
        assert!(outside.join("secret").exists());
    }

    #[test]
    fn fifos_and_bad_paths_are_refused_without_blocking() {
        let (_d, root, _) = tree();
        nix::unistd::mkfifo(&root.join("etc/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let r = Root::open(&root).unwrap();
        let e = r.read(Path::new("etc/fifo"), Links::InRoot).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(e.to_string().contains("is a FIFO"), "{e}");
        assert_eq!(
            r.node(Path::new("etc/fifo"), Links::InRoot).unwrap(),
            Node::Other("a FIFO")
        );
        for bad in ["/etc/x", "../x", "etc/../../x", "./x", ""] {
            let e = r.read(Path::new(bad), Links::InRoot).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{bad}");
        }
        assert!(rel_of(Path::new("/../x")).is_err());
        assert_eq!(
            rel_of(Path::new("/mnt/retention")).unwrap(),
            Path::new("mnt/retention")
        );
    }

    #[test]
    fn paths_resolve_as_the_system_under_the_root_sees_them() {
        let (_d, root, outside) = tree();
        fs::create_dir_all(root.join("etc/rc.d/init.d")).unwrap();
        symlink("rc.d/init.d", root.join("etc/init.d")).unwrap();
        // An absolute link and a climbing one both stay under the root.
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../..", root.join("etc/rc.d/up")).unwrap();
        symlink(&outside, root.join("etc/out")).unwrap();
        let r = Root::open(&root).unwrap();
        let res = |p: &str| r.resolve(p).unwrap();
        assert_eq!(res("/etc/init.d/sshd"), Path::new("etc/rc.d/init.d/sshd"));
        assert_eq!(res("abs/init.d/x"), Path::new("etc/rc.d/init.d/x"));
        assert_eq!(res("etc/rc.d/up/etc/hosts"), Path::new("etc/hosts"));
        // The host folder a link names is a folder of the root, here missing.
        let out = outside.strip_prefix("/").unwrap();
        assert_eq!(res("etc/out/secret"), out.join("secret"));
        // The final link is the object itself, not followed; a missing folder ends it.
        assert_eq!(res("etc/init.d"), Path::new("etc/init.d"));
        assert_eq!(res("no/such/x"), Path::new("no/such/x"));
        // `..` in a path given (not in a link) is refused, not resolved.
        assert!(r.resolve("../../x").is_err());
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let e = r.resolve("a/x").unwrap_err();
        assert!(e.to_string().contains("too many levels"), "{e}");
        assert!(r.is_file(Path::new("etc/real/f")).unwrap());
        assert!(!r.is_file(Path::new("etc/init.d")).unwrap());
        assert!(r.exists(Path::new("etc/init.d")).unwrap());
        assert!(!r.exists(Path::new("etc/nope")).unwrap());
        assert_eq!(r.file_text(Path::new("etc/init.d")).unwrap(), None);
        assert_eq!(
            r.file_text(Path::new("abs/real/f")).unwrap().as_deref(),
            Some("inside\n")
        );
    }

    #[test]
    fn files_lists_regular_files_and_never_follows_links() {
        let (_d, root, outside) = tree();
        fs::create_dir_all(root.join("var/log/audit")).unwrap();
        fs::write(root.join("var/log/messages"), "x").unwrap();
        fs::write(root.join("var/log/audit/audit.log"), "x").unwrap();
        symlink(&outside, root.join("var/log/out")).unwrap();
        symlink(outside.join("secret"), root.join("var/log/s")).unwrap();
        nix::unistd::mkfifo(&root.join("var/log/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        symlink("/var/log", root.join("logs")).unwrap();
        let r = Root::open(&root).unwrap();
        assert_eq!(
            r.files("/var/log", true).unwrap(),
            [
                PathBuf::from("var/log/audit/audit.log"),
                PathBuf::from("var/log/messages")
            ]
        );
        assert_eq!(r.files("var/log", false).unwrap().len(), 1);
        assert!(
            r.files("logs", true).unwrap().is_empty(),
            "a link lists nothing"
        );
        assert!(r.files("var/nothing", true).unwrap().is_empty());
    }

    #[test]
    fn create_new_never_replaces_and_replace_sets_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, root, outside) = tree();
        let r = Root::open(&root).unwrap();
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
        assert!(r.create_new(Path::new("etc/key"), b"one", 0o600).unwrap());
        assert_eq!(mode("etc/key"), 0o600);
        assert!(!r.create_new(Path::new("etc/key"), b"two", 0o600).unwrap());
        assert_eq!(fs::read(root.join("etc/key")).unwrap(), b"one");
        // A planted link is not written through either.
        symlink(outside.join("k"), root.join("etc/planted")).unwrap();
        assert!(!r.create_new(Path::new("etc/planted"), b"x", 0o600).unwrap());
        assert!(!outside.join("k").exists());
        fs::set_permissions(root.join("etc/key"), fs::Permissions::from_mode(0o644)).unwrap();
        r.replace(Path::new("etc/key"), b"three", 0o600).unwrap();
        assert_eq!(mode("etc/key"), 0o600);
        r.write_atomic(Path::new("etc/real/f"), b"kept", 0o600)
            .unwrap();
        assert_eq!(mode("etc/real/f"), 0o644, "write_atomic keeps the mode");
        let names = fs::read_dir(root.join("etc")).unwrap().count();
        assert_eq!(names, 3, "no temp files left");
    }

    #[test]
    fn dirs_lists_trees_and_backups() {
        let (_d, root, outside) = tree();
        let r = Root::open(&root).unwrap();
        let made = r.create_dirs(Path::new("var/lib/mtkit"), 0o700).unwrap();
        assert_eq!(
            made,
            [
                PathBuf::from("var"),
                PathBuf::from("var/lib"),
                PathBuf::from("var/lib/mtkit")
            ]
        );
        assert!(
            r.create_dirs(Path::new("var/lib/mtkit"), 0o700)
                .unwrap()
                .is_empty()
        );
        r.write_atomic(Path::new("var/lib/mtkit/a"), b"1", 0o600)
            .unwrap();
        symlink(&outside, root.join("var/lib/mtkit/link")).unwrap();
        assert_eq!(
            r.list(Path::new("var/lib/mtkit"), Links::InRoot)
                .unwrap()
                .unwrap(),
            [OsString::from("a"), OsString::from("link")]
        );
        r.remove_tree(Path::new("var/lib/mtkit")).unwrap();
        assert!(!root.join("var/lib/mtkit").exists());
        assert!(outside.join("secret").exists(), "a link is not followed");
        fs::write(root.join("etc/fstab"), "a\n").unwrap();
        assert_eq!(
            r.backup(Path::new("etc/fstab")).unwrap(),
            Path::new("etc/fstab.mtkit-bak")
        );
        assert_eq!(
            r.backup(Path::new("etc/fstab")).unwrap(),
            Path::new("etc/fstab.mtkit-bak.1")
        );
    }
}
