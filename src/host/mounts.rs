//! Mounted filesystems and active swap of a root (`proc/self/mountinfo`, else `proc/mounts`;
//! `proc/swaps`) and filesystem sizes: statvfs on the live system, the block device's size
//! from sysfs under a fixture root. The one reader of these files for every module.
//!
//! The mount tables are parsed by procfs-core, which reads any text (so `--root` works),
//! line by line so that one line it cannot read does not lose the others. It leaves `\040`
//! (a blank, which a retention mountpoint may hold) undecoded, and mountinfo's paths not
//! decoded at all: [`unescape`] decodes what is left on top.

use super::blockdev::{self, DevNum};
use anyhow::{Context, Result};
use procfs_core::process::MountInfo;
use procfs_core::{FromBufRead, MountEntry};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source as the kernel names it (`/dev/sda2`, `/dev/mapper/x`, `proc`)
    pub device: String,
    pub mountpoint: PathBuf,
    pub fstype: String,
    /// The device number (mountinfo has it; proc/mounts does not)
    pub devnum: Option<DevNum>,
    /// Mount and filesystem options as the kernel shows them (`rw`, `nobarrier`,
    /// `commit=5`): mountinfo's per-mount and super options together.
    pub options: Vec<String>,
}

impl Mount {
    /// Write barriers are off (`nobarrier`, `barrier=0`: ext3/ext4, and xfs before Linux
    /// 4.19, CentOS 6's included): a sync returns before the disk's cache holds the data.
    pub fn barriers_off(&self) -> bool {
        self.options
            .iter()
            .any(|o| o == "nobarrier" || o == "barrier=0")
    }

    /// The mounted block device's number: mountinfo's, else the sysfs entry of its name.
    pub fn devnum(&self, root: &Path) -> Option<DevNum> {
        self.devnum
            .or_else(|| blockdev::devnum_at(&blockdev::sysfs_by_name(root, &self.device)?))
    }
}

/// Parses /proc/self/mountinfo text: `id parent M:m root mountpoint options [tags] - fstype
/// source superoptions`.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| MountInfo::from_line(l).ok())
        .map(|m| Mount {
            // procfs-core reads a source of "none" (or none at all) as None.
            device: unescape(m.mount_source.as_deref().unwrap_or("none")),
            mountpoint: PathBuf::from(unescape(&m.mount_point.to_string_lossy())),
            fstype: m.fs_type,
            devnum: DevNum::parse(&m.majmin),
            options: options(m.mount_options.iter().chain(&m.super_options)),
        })
        .collect()
}

/// Parses /proc/mounts text (octal escapes like `\040` in paths decoded).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| Vec::<MountEntry>::from_buf_read(l.as_bytes()).ok())
        .flatten()
        .map(|m| Mount {
            device: unescape(&m.fs_spec),
            mountpoint: PathBuf::from(unescape(&m.fs_file)),
            fstype: m.fs_vfstype,
            devnum: None,
            options: options(&m.fs_mntops),
        })
        .collect()
}

/// `key` or `key=value` for each option procfs-core parsed.
fn options<'a>(opts: impl IntoIterator<Item = (&'a String, &'a Option<String>)>) -> Vec<String> {
    opts.into_iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect()
}

/// mounts, mountinfo and swaps write space, tab, newline and backslash as `\ooo`: decodes
/// every such escape procfs-core left (it decodes `\011 \012 \134 \043` in proc/mounts,
/// nothing in mountinfo). A name that itself holds a backslash before three octal digits
/// (written `\134ooo`) is decoded once too often; no mountpoint mtkit cares about has one.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts of `root`: mountinfo when there (it has device numbers), else proc/mounts;
/// empty when it has neither.
pub fn read(root: &Path) -> Vec<Mount> {
    if let Ok(t) = crate::files::read_text(root.join("proc/self/mountinfo")) {
        return parse_mountinfo(&t);
    }
    crate::files::read_text(root.join("proc/mounts"))
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Active swap areas of `root` (`proc/swaps`: device or file names as written there).
/// By hand: procfs-core 0.18 has no reader for proc/swaps (procfs has none either).
pub fn swaps(root: &Path) -> Result<Vec<String>> {
    let p = root.join("proc/swaps");
    let text = crate::files::read_text(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(unescape)
        .collect())
}

/// The mount that holds `path` (longest mountpoint prefix; the last one mounted wins).
pub fn containing<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.components().count())
}

/// The size of a mounted filesystem in bytes and the free bytes when known: statvfs of the
/// mountpoint on the live system; under a fixture root only the device's size from
/// `sys/class/block/<dev>/size` is known (the free space is not).
pub fn size_of(root: &Path, m: &Mount) -> Option<(u64, Option<u64>)> {
    if root == Path::new("/") {
        let st = nix::sys::statvfs::statvfs(&m.mountpoint).ok()?;
        let frag = st.fragment_size() as u64;
        return Some((
            st.blocks() as u64 * frag,
            Some(st.blocks_available() as u64 * frag),
        ));
    }
    let sysfs = match m.devnum {
        Some(n) => n.sysfs(root),
        None => blockdev::sysfs_by_name(root, &m.device),
    };
    Some((blockdev::size_at(&sysfs?)?, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_finds_the_containing_mount() {
        let m = parse(
            "/dev/sda2 / ext4 rw,relatime 0 0\n/dev/sda3 /var/crash ext4 rw 0 0\n\
             /dev/sdc1 /mnt/my\\040retention xfs rw 0 0\n",
        );
        assert_eq!(m[2].mountpoint, Path::new("/mnt/my retention"));
        assert_eq!(
            containing(&m, Path::new("/var/crash")).unwrap().device,
            "/dev/sda3"
        );
        assert_eq!(
            containing(&m, Path::new("/var/log")).unwrap().device,
            "/dev/sda2"
        );
    }

    #[test]
    fn mountinfo_has_device_numbers_and_escapes() {
        let m = parse_mountinfo(
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
             40 22 7:3 / /mnt/my\\040vol rw - ext4 /dev/loop3 rw\n",
        );
        assert_eq!(m[1].mountpoint, Path::new("/mnt/my vol"));
        assert_eq!(m[1].devnum, Some(DevNum { major: 7, minor: 3 }));
        assert_eq!(
            (m[0].device.as_str(), m[0].fstype.as_str()),
            ("/dev/sda1", "ext4")
        );
    }

    /// The kernel writes a blank as `\040` and a tab as `\011` (proc_namespace.c,
    /// mangle()): both tables give the mountpoint back as it is, and a line that is not a
    /// mount does not lose the others.
    #[test]
    fn a_mountpoint_with_a_blank_and_a_tab() {
        let want = Path::new("/mnt/ret vol\tA");
        let m = parse(
            "garbage\n/dev/sdc1 /mnt/ret\\040vol\\011A xfs rw,relatime 0 0\n\
             none /run tmpfs rw 0 0\n",
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].mountpoint, want);
        assert_eq!(
            (m[0].device.as_str(), m[0].fstype.as_str()),
            ("/dev/sdc1", "xfs")
        );
        let m = parse_mountinfo(
            "not a mount\n\
             41 22 8:33 / /mnt/ret\\040vol\\011A rw,relatime shared:9 - xfs /dev/sdc1 rw,attr2\n\
             42 22 0:40 / /run rw - tmpfs none rw\n",
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].mountpoint, want);
        assert_eq!(
            m[0].devnum,
            Some(DevNum {
                major: 8,
                minor: 33
            })
        );
        assert_eq!(m[1].device, "none");
        assert_eq!(
            containing(&m, &want.join("mtkit")).unwrap().device,
            "/dev/sdc1"
        );
    }
}
