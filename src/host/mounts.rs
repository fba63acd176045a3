//! Mounted filesystems and active swap of a root (`proc/self/mountinfo`, else `proc/mounts`;
//! `proc/swaps`) and filesystem sizes: statvfs on the live system, the block device's size
//! from sysfs under a fixture root. The one reader of these files for every module.
//!
//! Parsed here rather than with the procfs crate: procfs 0.18 leaves `\040` (a blank) in
//! mount points undecoded (mountinfo) or unhandled (mounts), and the retention mountpoint may
//! hold one.

use super::blockdev::{self, DevNum};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source as the kernel names it (`/dev/sda2`, `/dev/mapper/x`, `proc`)
    pub device: String,
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub options: String,
    /// The device number (mountinfo has it; proc/mounts does not)
    pub devnum: Option<DevNum>,
}

impl Mount {
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
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let a: Vec<&str> = left.split(' ').collect();
            let b: Vec<&str> = right.split(' ').collect();
            (a.len() >= 6 && b.len() >= 2).then(|| Mount {
                device: unescape(b[1]),
                mountpoint: PathBuf::from(unescape(a[4])),
                fstype: b[0].to_string(),
                options: a[5].to_string(),
                devnum: DevNum::parse(a[2]),
            })
        })
        .collect()
}

/// Parses /proc/mounts text (octal escapes like `\040` in paths decoded).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| Mount {
                device: unescape(f[0]),
                mountpoint: PathBuf::from(unescape(f[1])),
                fstype: f[2].to_string(),
                options: f[3].to_string(),
                devnum: None,
            })
        })
        .collect()
}

/// mounts, mountinfo and swaps write space, tab, newline and backslash as `\ooo`.
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
}
