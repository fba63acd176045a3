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
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
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

    /// The device's sysfs folder under `root` (`sys/dev/block/M:m`, links resolved; a tree
    /// without `sys/dev`, as some captures are, is searched through `sys/class/block`).
    pub fn sysfs(self, root: &Path) -> Option<PathBuf> {
        if let Ok(p) = root.join(format!("sys/dev/block/{self}")).canonicalize() {
            return Some(p);
        }
        let class = root.join("sys/class/block");
        names(&class)
            .into_iter()
            .filter_map(|n| class.join(n).canonicalize().ok())
            .find(|p| devnum_at(p) == Some(self))
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

/// Whether the device of sysfs folder `sysfs` keeps completed writes in a volatile cache
/// until a flush (its `queue/write_cache` says `write back`; a partition answers for its
/// disk). `Some(false)`: `write through`, a write is on stable storage when it completes
/// (VMware's virtual disks: the guest kernel logs "Assuming drive cache: write through").
/// `None` when sysfs does not say.
pub fn volatile_cache_at(sysfs: &Path) -> Option<bool> {
    let disk = if sysfs.join("partition").exists() {
        sysfs.parent()?
    } else {
        sysfs
    };
    match read_trim(&disk.join("queue/write_cache"))?.as_str() {
        "write back" => Some(true),
        "write through" => Some(false),
        _ => None,
    }
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

/// One bottom device a block device's data lies on: a whole disk or a partition of one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Piece {
    /// Kernel name ("sdb", "sdb1").
    pub name: String,
    /// Its whole disk's kernel name ("sdb" for both).
    pub disk: String,
}

/// The disks and partitions under the block device whose sysfs folder is `sysfs`,
/// following device-mapper and md `slaves/` down: an LVM volume on sda2 gives sda2, a
/// multipath map its paths, a partition map of a multipath map the map's paths.
pub fn footprint(root: &Path, sysfs: &Path) -> Vec<Piece> {
    let mut out = Vec::new();
    footprint_into(root, sysfs, 0, &mut out);
    out.sort();
    out.dedup();
    out
}

fn footprint_into(root: &Path, sysfs: &Path, depth: u32, out: &mut Vec<Piece>) {
    let slaves = names(&sysfs.join("slaves"));
    // Stacks are a few levels deep; the bound only guards against a looping fixture.
    if !slaves.is_empty() && depth < 16 {
        for s in slaves {
            let found = ["sys/class/block", "sys/block"]
                .iter()
                .find_map(|d| root.join(d).join(&s).canonicalize().ok())
                .or_else(|| sysfs.join("slaves").join(&s).canonicalize().ok());
            if let Some(p) = found {
                footprint_into(root, &p, depth + 1, out);
            }
        }
        return;
    }
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name_of(sysfs) else {
        return;
    };
    let disk = if sysfs.join("partition").exists() {
        sysfs
            .parent()
            .and_then(name_of)
            .unwrap_or_else(|| name.clone())
    } else {
        name.clone()
    };
    out.push(Piece { name, disk });
}

/// True when two footprints share storage: a common device, or a disk and one of its
/// partitions. Two partitions of one disk do not overlap.
pub fn overlaps(a: &[Piece], b: &[Piece]) -> bool {
    a.iter().any(|x| {
        b.iter()
            .any(|y| x.name == y.name || x.name == y.disk || x.disk == y.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roots/healthy")
    }

    #[test]
    fn a_partition_answers_for_its_disks_write_cache_and_an_unknown_mode_is_none() {
        let t = tempfile::tempdir().unwrap();
        let disk = t.path().join("sdb");
        std::fs::create_dir_all(disk.join("queue")).unwrap();
        std::fs::create_dir_all(disk.join("sdb1")).unwrap();
        std::fs::write(disk.join("sdb1/partition"), "1\n").unwrap();
        let cache = |mode: &str| {
            std::fs::write(disk.join("queue/write_cache"), mode).unwrap();
            (
                volatile_cache_at(&disk),
                volatile_cache_at(&disk.join("sdb1")),
            )
        };
        assert_eq!(cache("write back\n"), (Some(true), Some(true)));
        assert_eq!(cache("write through\n"), (Some(false), Some(false)));
        assert_eq!(cache("something new\n"), (None, None));
        std::fs::remove_file(disk.join("queue/write_cache")).unwrap();
        assert_eq!(volatile_cache_at(&disk.join("sdb1")), None);
    }

    #[test]
    fn footprints_follow_maps_down_to_disks_and_partitions() {
        let root = healthy();
        let fp = |name: &str| footprint(&root, &sysfs_by_name(&root, name).unwrap());
        let piece = |n: &str, d: &str| Piece {
            name: n.into(),
            disk: d.into(),
        };
        // A multipath map lies on its path; a partition on its disk.
        let map = fp("/dev/mapper/36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90");
        assert_eq!(map, [piece("sdb", "sdb")]);
        assert_eq!(fp("/dev/sda2"), [piece("sda2", "sda")]);
        assert!(overlaps(&map, &fp("/dev/sdb")));
        assert!(!overlaps(&map, &fp("/dev/sdc")));
        assert!(overlaps(&fp("/dev/sda"), &fp("/dev/sda2")));
        assert!(overlaps(&fp("/dev/sda2"), &fp("/dev/sda")));
        assert!(!overlaps(&fp("/dev/sda1"), &fp("/dev/sda2")));
    }
}
