//! Block devices of a root from its sysfs: device numbers, sizes, partitions, and the
//! device-mapper devices (LVM volumes, multipath maps) stacked on them.

use std::path::{Path, PathBuf};

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    pub major: u64,
    pub minor: u64,
}

impl DevNum {
    /// From a `st_rdev` / `st_dev`.
    pub fn of(rdev: u64) -> DevNum {
        DevNum {
            major: libc::major(rdev) as u64,
            minor: libc::minor(rdev) as u64,
        }
    }

    /// From sysfs's and mountinfo's `major:minor`.
    pub fn parse(s: &str) -> Option<DevNum> {
        let (a, b) = s.trim().split_once(':')?;
        Some(DevNum {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }

    /// The device's sysfs folder under `root` (`sys/dev/block/M:m`, links resolved).
    pub fn sysfs(self, root: &Path) -> Option<PathBuf> {
        root.join(format!("sys/dev/block/{self}"))
            .canonicalize()
            .ok()
    }
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// The sysfs folder of a device named as mount tables and configs name it (`/dev/sdb1`,
/// `/dev/mapper/<dm name>`), found by name alone: a fixture root has no device nodes.
pub fn sysfs_by_name(root: &Path, device: &str) -> Option<PathBuf> {
    let name = device.strip_prefix("/dev/")?;
    let kernel = match name.strip_prefix("mapper/") {
        Some(dm) => dm_devices(root).into_iter().find(|d| d.name == dm)?.kernel,
        None => name.to_string(),
    };
    root.join("sys/class/block")
        .join(kernel)
        .canonicalize()
        .ok()
}

/// The `dev` number a sysfs block folder shows.
pub fn devnum_at(sysfs: &Path) -> Option<DevNum> {
    DevNum::parse(&read_trim(&sysfs.join("dev"))?)
}

/// The `size` a sysfs block folder shows (512-byte sectors), in bytes.
pub fn size_at(sysfs: &Path) -> Option<u64> {
    read_trim(&sysfs.join("size"))?
        .parse::<u64>()
        .ok()
        .map(|s| s * 512)
}

fn read_trim(p: &Path) -> Option<String> {
    crate::files::read_text(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Size of a whole disk (`sys/block/<name>/size`, in 512-byte sectors) in bytes.
pub fn disk_size(root: &Path, name: &str) -> Option<u64> {
    size_at(&root.join("sys/block").join(name))
}

/// The partitions of a disk ("sda1", "sda2").
pub fn partitions(root: &Path, disk: &str) -> Vec<String> {
    names(&root.join("sys/block").join(disk))
        .into_iter()
        .filter(|n| n.starts_with(disk) && n.len() > disk.len())
        .collect()
}

/// A device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDevice {
    /// "dm-0"
    pub kernel: String,
    /// dm name ("VolGroup-lv_root", "36000c29...")
    pub name: String,
    /// dm uuid: `LVM-...` for LVM, `mpath-<wwid>` for multipath
    pub uuid: String,
    /// The devices under it ("sdb", "sda2")
    pub slaves: Vec<String>,
}

impl DmDevice {
    pub fn is_lvm(&self) -> bool {
        self.uuid.starts_with("LVM-")
    }
    /// The WWID a multipath map stands for.
    pub fn mpath_wwid(&self) -> Option<&str> {
        self.uuid.strip_prefix("mpath-")
    }
}

/// Every dm-* device under `root`.
pub fn dm_devices(root: &Path) -> Vec<DmDevice> {
    names(&root.join("sys/block"))
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
        .map(|k| {
            let d = root.join("sys/block").join(&k);
            DmDevice {
                name: read_trim(&d.join("dm/name")).unwrap_or_default(),
                uuid: read_trim(&d.join("dm/uuid")).unwrap_or_default(),
                slaves: names(&d.join("slaves")),
                kernel: k,
            }
        })
        .collect()
}

/// dm devices built directly on `disk` or one of its partitions.
pub fn holders_of<'a>(root: &Path, dms: &'a [DmDevice], disk: &str) -> Vec<&'a DmDevice> {
    let mut parts = partitions(root, disk);
    parts.push(disk.to_string());
    dms.iter()
        .filter(|d| d.slaves.iter().any(|s| parts.contains(s)))
        .collect()
}
