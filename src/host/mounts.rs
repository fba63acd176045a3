//! Mounted filesystems of a root (`proc/mounts` under it) and their sizes: statvfs on the
//! live system, the block device's size from `sys/class/block` under a fixture root.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub options: String,
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
            })
        })
        .collect()
}

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

/// The mounts of `root` (empty when it has no proc/mounts).
pub fn read(root: &Path) -> Vec<Mount> {
    std::fs::read_to_string(root.join("proc/mounts"))
        .map(|t| parse(&t))
        .unwrap_or_default()
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
    let mut name = Path::new(&m.device)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    // /dev/mapper/<name> is a dm-N device: find it by its dm name.
    if m.device.starts_with("/dev/mapper/") {
        name = crate::host::blockdev::dm_devices(root)
            .into_iter()
            .find(|d| d.name == name)?
            .kernel;
    }
    let sectors: u64 =
        std::fs::read_to_string(root.join("sys/class/block").join(name).join("size"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
    Some((sectors * 512, None))
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
}
