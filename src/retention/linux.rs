//! Facts about a Linux block device, read through a host root: sysfs (size, holders,
//! partitions), the mount table and swaps (host::mounts), a blkid low-level probe, and an
//! exclusive open (O_EXCL) to see whether something holds it.
//!
//! On the running system (host `/`) every fact is collected. Under a fixture or image root
//! there are no device nodes: the device is found by name in its sysfs, its filesystem is
//! taken from the mount table, and the probe and O_EXCL open are listed as not checked
//! rather than guessed.

use super::rules::VolumeFacts;
use crate::config::Config;
use crate::external::BLKID;
pub use crate::host::blockdev::DevNum;
pub use crate::host::under;
use crate::host::{blockdev, mounts, scsi};
use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The device under `host` (`/` normally): its node, sysfs folder and numbers.
#[derive(Debug, Clone)]
pub struct Device {
    /// The node as given (`/dev/loop3`, `/dev/mapper/3600...`).
    pub path: PathBuf,
    /// The node under host, symlinks resolved.
    pub node: PathBuf,
    pub num: DevNum,
    pub sysfs: PathBuf,
    /// Kernel name (`loop3`, `sdb`, `dm-4`).
    pub kname: String,
    /// The whole disk's kernel name when this is a partition.
    pub parent: Option<String>,
    /// Partitions of this disk: kernel name and number.
    pub partitions: Vec<(String, DevNum)>,
    /// `mpath-<wwid>` device-mapper multipath map.
    pub multipath: bool,
}

impl Device {
    /// Finds `path` under `host` by its device node; `Ok(None)` when it does not exist.
    pub fn find(host: &Path, path: &Path) -> Result<Option<Device>> {
        let at = under(host, path);
        let node = match fs::canonicalize(&at) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("resolving {}", at.display())),
        };
        let meta = fs::metadata(&node).with_context(|| format!("reading {}", node.display()))?;
        if !meta.file_type().is_block_device() {
            let t = meta.file_type();
            let what = if t.is_file() {
                "a regular file"
            } else if t.is_dir() {
                "a folder"
            } else if t.is_char_device() {
                "a character device"
            } else {
                "a special file"
            };
            return Err(crate::error::bad_input(format!(
                "{} is {what}, not a block device (give a disk such as /dev/sdb or /dev/mapper/<SCSI ID>)",
                path.display()
            )));
        }
        let num = DevNum::of(meta.rdev());
        let sysfs = num.sysfs(host).with_context(|| {
            format!(
                "resolving {}",
                host.join(format!("sys/dev/block/{num}")).display()
            )
        })?;
        Ok(Some(Device::at(path, node, num, sysfs)))
    }

    /// Finds `path` (`/dev/sdb`, `/dev/mapper/<name>`) in the sysfs under `host` by name
    /// alone, for a root without device nodes; `None` when sysfs has no such device.
    pub fn by_name(host: &Path, path: &Path) -> Option<Device> {
        let sysfs = blockdev::sysfs_by_name(host, &path.to_string_lossy())?;
        let num = blockdev::devnum_at(&sysfs)?;
        Some(Device::at(path, under(host, path), num, sysfs))
    }

    fn at(path: &Path, node: PathBuf, num: DevNum, sysfs: PathBuf) -> Device {
        let kname = sysfs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = sysfs
            .join("partition")
            .exists()
            .then(|| sysfs.parent().and_then(|p| p.file_name()))
            .flatten()
            .map(|n| n.to_string_lossy().into_owned());
        let mut partitions = Vec::new();
        if let Ok(rd) = fs::read_dir(&sysfs) {
            for e in rd.flatten() {
                let p = e.path();
                if p.join("partition").exists()
                    && let Some(n) = blockdev::devnum_at(&p)
                {
                    partitions.push((e.file_name().to_string_lossy().into_owned(), n));
                }
            }
        }
        partitions.sort();
        let multipath = crate::files::read_text(sysfs.join("dm/uuid"))
            .map(|u| u.starts_with("mpath-"))
            .unwrap_or(false);
        Device {
            path: path.to_path_buf(),
            node,
            num,
            sysfs,
            kname,
            parent,
            partitions,
            multipath,
        }
    }

    /// This device and its partitions.
    pub fn nums(&self) -> Vec<DevNum> {
        let mut v = vec![self.num];
        v.extend(self.partitions.iter().map(|p| p.1));
        v
    }

    pub fn size(&self) -> u64 {
        blockdev::size_at(&self.sysfs).unwrap_or(0)
    }

    /// Kernel devices stacked on it or on a partition (`holders/`).
    pub fn holders(&self) -> Vec<String> {
        self.list_of("holders")
    }

    /// The whole disks under it: itself (or its parent disk), or a dm device's `slaves/`.
    pub fn disks(&self) -> Vec<String> {
        let slaves = self.list_of("slaves");
        if slaves.is_empty() {
            return vec![self.parent.clone().unwrap_or_else(|| self.kname.clone())];
        }
        // A slave may be a partition (an LVM PV on sda2): name its disk.
        let mut out: Vec<String> = slaves
            .iter()
            .filter_map(|s| fs::canonicalize(self.sysfs.join("slaves").join(s)).ok())
            .filter_map(|p| {
                let disk = if p.join("partition").exists() {
                    p.parent()?.to_path_buf()
                } else {
                    p
                };
                Some(disk.file_name()?.to_string_lossy().into_owned())
            })
            .collect();
        out.dedup();
        out
    }

    fn list_of(&self, sub: &str) -> Vec<String> {
        let mut dirs = vec![self.sysfs.join(sub)];
        dirs.extend(
            self.partitions
                .iter()
                .map(|(n, _)| self.sysfs.join(n).join(sub)),
        );
        let mut out = Vec::new();
        for d in dirs {
            if let Ok(rd) = fs::read_dir(d) {
                out.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        out.sort();
        out
    }
}

/// What a blkid low-level probe (`-p`, no cache, no udev) finds on the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub fs_type: Option<String>,
    pub version: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub pttype: Option<String>,
}

pub fn parse_blkid_export(text: &str) -> Probe {
    let mut p = Probe::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = Some(v.to_string());
        match k {
            "TYPE" => p.fs_type = v.map(|t| t.to_ascii_lowercase()),
            "VERSION" => p.version = v,
            "UUID" => p.uuid = v,
            "LABEL" => p.label = v,
            "PTTYPE" => p.pttype = v,
            _ => {}
        }
    }
    p
}

/// Probes `node` with blkid; exit 2 means "no signature found".
pub fn probe(node: &Path) -> Result<Probe> {
    let o = BLKID.output([
        "-p".as_ref(),
        "-o".as_ref(),
        "export".as_ref(),
        node.as_os_str(),
    ])?;
    match o.status {
        0 => Ok(parse_blkid_export(&o.stdout)),
        2 => Ok(Probe::default()),
        s => anyhow::bail!(
            "blkid -p {} failed (exit {s}): {}",
            node.display(),
            o.stderr.trim()
        ),
    }
}

/// Tries an exclusive open: for a block device O_EXCL (without O_CREAT) fails with EBUSY
/// while it is mounted, a swap, a holder's member, or opened O_EXCL by another program.
pub fn exclusive_open(node: &Path) -> Result<bool> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    match open(
        node,
        OFlag::O_RDONLY | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => {
            drop(fd);
            Ok(true)
        }
        Err(nix::errno::Errno::EBUSY) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("opening {} exclusively", node.display())),
    }
}

/// Context the facts are judged in: the config and the system root.
pub struct Scope<'a> {
    /// Where /sys, /proc and /dev are (`/`, or the same fixture folder as `root`).
    pub host: &'a Path,
    /// The system being configured (`--root`): its mtkit install and working files.
    pub root: &'a Path,
    pub config: &'a Config,
}

impl Scope<'_> {
    /// The host is the running system: its device nodes can be probed and opened.
    pub fn live(&self) -> bool {
        self.host == Path::new("/")
    }

    /// A path of the system under root as the host's mount table shows it (`/mnt/retention`
    /// with host = root; `/mnt/sysimage/mnt/retention` for a chroot at /mnt/sysimage).
    pub fn seen_from_host(&self, p: &Path) -> PathBuf {
        let rel = self.root.strip_prefix(self.host).unwrap_or(self.root);
        under(&Path::new("/").join(rel), p)
    }

    /// The device number of a device named by path (`/dev/sda2`, `/dev/mapper/x`): the node's
    /// on the running system, else its sysfs entry's.
    pub fn devnum_of(&self, path: &Path) -> Option<DevNum> {
        if self.live() {
            fs::metadata(under(self.host, path))
                .ok()
                .filter(|m| m.file_type().is_block_device())
                .map(|m| DevNum::of(m.rdev()))
        } else {
            blockdev::devnum_at(&blockdev::sysfs_by_name(
                self.host,
                &path.to_string_lossy(),
            )?)
        }
    }

    /// The device number of the filesystem holding `p` (a path under root).
    fn fs_devnum(&self, p: &Path, mounts: &[mounts::Mount]) -> Option<DevNum> {
        if self.live() {
            return fs::metadata(p).ok().map(|m| DevNum::of(m.dev()));
        }
        // A fixture's files sit on the machine's disk: ask its mount table instead.
        p.exists().then_some(())?;
        let rel = Path::new("/").join(p.strip_prefix(self.host).ok()?);
        mounts::containing(mounts, &rel)?.devnum(self.host)
    }
}

/// The device mounted at the retention `mountpoint` of the system (`None`: nothing is).
pub fn mounted_at(cx: &Scope, mountpoint: &Path) -> Option<PathBuf> {
    let target = cx.seen_from_host(mountpoint);
    let all = mounts::read(cx.host);
    let m = all.iter().rev().find(|m| m.mountpoint == target)?;
    // On the running system name it by its kernel name from sysfs (/dev/block/M:m links
    // need udev, which may not run); under a fixture root, as the mount table does.
    if cx.live()
        && let Some(sysfs) = m.devnum(cx.host).and_then(|n| n.sysfs(cx.host))
        && let Some(k) = sysfs.file_name()
    {
        return Some(cx.host.join("dev").join(k));
    }
    Some(PathBuf::from(&m.device))
}

/// Collects every fact the rules need about `path`.
pub fn collect(cx: &Scope, path: &Path) -> Result<(VolumeFacts, Option<Device>)> {
    let mut f = VolumeFacts {
        name: path.display().to_string(),
        allowed_fs: vec!["ext4", "xfs"],
        ..VolumeFacts::default()
    };
    let dev = if cx.live() {
        Device::find(cx.host, path)?
    } else {
        Device::by_name(cx.host, path)
    };
    let Some(dev) = dev else {
        return Ok((f, None));
    };
    f.exists = true;
    f.size = dev.size();
    let nums = dev.nums();
    let all = mounts::read(cx.host);
    for m in &all {
        let Some(n) = m.devnum(cx.host).filter(|n| nums.contains(n)) else {
            continue;
        };
        f.mounts.push(m.mountpoint.clone());
        // Without a probe, the device's own mount (not a partition's) tells its filesystem.
        if n == dev.num && f.filesystem.is_none() && !cx.live() {
            f.filesystem = Some(m.fstype.to_ascii_lowercase());
        }
    }
    match mounts::swaps(cx.host) {
        Ok(swaps) => {
            f.active_swap = swaps
                .iter()
                .filter_map(|s| cx.devnum_of(Path::new(s)))
                .any(|n| nums.contains(&n))
        }
        Err(e) if !cx.live() => {
            tracing::debug!("{e:#}");
            f.not_checked.push("active swap (no proc/swaps)".into());
        }
        Err(e) => return Err(e),
    }
    f.holders = dev.holders();
    if cx.live() {
        match probe(&dev.node) {
            Ok(p) => {
                f.filesystem = p.fs_type;
                f.fs_version = p.version;
                f.uuid = p.uuid;
                f.label = p.label;
                f.partition_table = p.pttype;
            }
            Err(e) => f.probe_error = Some(format!("{e:#}")),
        }
        f.exclusive_open = Some(exclusive_open(&dev.node)?);
    } else {
        let from = if f.filesystem.is_some() {
            "filesystem type from the mount table"
        } else {
            "filesystem unknown"
        };
        f.not_checked
            .push(format!("signature probe (blkid -p; {from})"));
        f.not_checked.push("exclusive open (O_EXCL)".into());
    }

    // Only a filesystem that could be kept as it is (ext4, xfs) needs judging.
    if let Some(fs_type) = f
        .filesystem
        .clone()
        .filter(|t| f.allowed_fs.contains(&t.as_str()))
    {
        // Under a fixture root the device is at its path there (a small superblock file).
        let node = if cx.live() {
            dev.node.clone()
        } else {
            under(cx.host, &dev.path)
        };
        let j = crate::host::crashsafe::of_device(&fs_type, &node);
        if j.safety == crate::host::crashsafe::Safety::Unknown && !cx.live() {
            f.not_checked
                .push(format!("crash safety of its {fs_type} ({})", j.why));
        } else {
            f.crash_safety = Some(j);
        }
    }

    let scsi = scsi::list_disks(cx.host).unwrap_or_default();
    let configured = &cx.config.disks.os_disk;
    let os = crate::host::diskref::OsDisk::resolve(cx.host, configured, &scsi);
    let root_dev = cx.fs_devnum(cx.root, &all);
    if let Err(e) = &os {
        // Which disk is the OS disk is unknown: no device can be vouched for.
        f.os_disk = Some(format!(
            "cannot be told apart from the OS disk: [disks] os-disk: {e}; set [disks] \
             os-disk to the OS disk's SCSI ID as `mtkit scsi-ids` prints it"
        ));
    } else if let Ok(os) = &os
        && let Some(d) = dev.disks().into_iter().find(|d| os.is_named(d, &scsi))
    {
        f.os_disk = Some(format!(
            "is on the OS disk {d} ([disks] os-disk {configured})"
        ));
    } else if root_dev.is_some_and(|n| nums.contains(&n)) {
        f.os_disk = Some(format!(
            "holds the root filesystem of {}",
            cx.root.display()
        ));
    }
    // The cache volume: the filesystem of the mtkit binary, its config and working files.
    let mut install: Vec<PathBuf> = ["usr/local/sbin/mtkit", "etc/mtkit", "var/lib/mtkit"]
        .iter()
        .map(|p| cx.root.join(p))
        .collect();
    if cx.live() {
        install.insert(0, std::env::current_exe().unwrap_or_default());
    }
    for p in install {
        if cx.fs_devnum(&p, &all).is_some_and(|n| nums.contains(&n)) {
            f.install_volume = Some(format!(
                "holds {} (the mtkit install: cache volume)",
                p.display()
            ));
            break;
        }
    }
    for d in &cx.config.writer.disk {
        let same_dev = cx.devnum_of(&d.path).is_some_and(|n| nums.contains(&n));
        if d.path == dev.path || same_dev {
            f.writer_target = Some(d.name.clone());
        }
    }
    Ok((f, Some(dev)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkid_export_is_parsed() {
        let p = parse_blkid_export(
            "DEVNAME=/dev/loop4\nSEC_TYPE=msdos\nLABEL_FATBOOT=X\nUUID=1234-ABCD\nVERSION=FAT32\nTYPE=vfat\nUSAGE=filesystem\n",
        );
        assert_eq!(p.fs_type.as_deref(), Some("vfat"));
        assert_eq!(p.version.as_deref(), Some("FAT32"));
        assert_eq!(p.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(p.pttype, None);
    }

    #[test]
    fn missing_device_is_reported_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let cx = Scope {
            host: d.path(),
            root: d.path(),
            config: &cfg,
        };
        let (f, dev) = collect(&cx, Path::new("/dev/sdzz")).unwrap();
        assert!(!f.exists && dev.is_none());
    }

    fn fixture_root(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/roots")
            .join(name)
    }

    #[test]
    fn under_a_fixture_root_facts_come_from_sysfs_and_the_mount_table() {
        let root = fixture_root("healthy");
        let cfg = Config::default();
        let cx = Scope {
            host: &root,
            root: &root,
            config: &cfg,
        };
        let dev = mounted_at(&cx, Path::new("/mnt/retention")).unwrap();
        assert_eq!(
            dev,
            Path::new("/dev/mapper/36000c29c3d4e5f60718293a4b5c6d7e8f90a1b2")
        );
        let (f, d) = collect(&cx, &dev).unwrap();
        assert_eq!(d.unwrap().kname, "dm-2");
        assert!(f.exists && f.size == 1536 << 30);
        assert_eq!(f.filesystem.as_deref(), Some("ext4"));
        assert_eq!(f.mounts, [PathBuf::from("/mnt/retention")]);
        assert_eq!((f.exclusive_open, f.os_disk.clone()), (None, None));
        assert_eq!(f.not_checked.len(), 2, "{:?}", f.not_checked);
        // The swap partition of the OS disk: swap, and on the OS disk.
        let (f, _) = collect(&cx, Path::new("/dev/sda6")).unwrap();
        assert!(f.active_swap);
        assert_eq!(
            f.os_disk.as_deref(),
            Some("is on the OS disk sda ([disks] os-disk sda)")
        );
    }

    #[test]
    fn the_os_disk_by_scsi_id_is_found_and_an_unknown_one_vouches_for_nothing() {
        let root = fixture_root("healthy");
        let mut cfg = Config::default();
        cfg.disks.os_disk = "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0".into();
        let cx = Scope {
            host: &root,
            root: &root,
            config: &cfg,
        };
        let (f, _) = collect(&cx, Path::new("/dev/sda6")).unwrap();
        assert_eq!(
            f.os_disk.as_deref(),
            Some(
                "is on the OS disk sda ([disks] os-disk \
                 36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0)"
            )
        );
        let (f, _) = collect(&cx, Path::new("/dev/sdb")).unwrap();
        assert_eq!(f.os_disk, None);
        // An ID no disk has: no device can be told from the OS disk, the retention disk
        // included.
        cfg.disks.os_disk = "36000c29ffff".into();
        let cx = Scope {
            host: &root,
            root: &root,
            config: &cfg,
        };
        let (f, _) = collect(&cx, Path::new("/dev/sdd")).unwrap();
        let why = f.os_disk.unwrap();
        assert!(
            why.starts_with(
                "cannot be told apart from the OS disk: [disks] os-disk: no disk has SCSI ID \
                 36000c29ffff (this system's disks: sda 36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0,"
            ),
            "{why}"
        );
    }

    #[test]
    fn an_lvm_volume_on_the_os_disk_is_on_the_os_disk() {
        let root = fixture_root("os-on-lvm");
        let cfg = Config::default();
        let cx = Scope {
            host: &root,
            root: &root,
            config: &cfg,
        };
        let (f, d) = collect(&cx, Path::new("/dev/mapper/VolGroup-lv_root")).unwrap();
        assert_eq!(d.unwrap().disks(), ["sda"]);
        assert!(f.os_disk.is_some_and(|o| o.contains("OS disk sda")));
        assert_eq!(f.mounts, [PathBuf::from("/")]);
        // A root without proc/swaps: swap is listed as not checked, not assumed off.
        let d = tempfile::tempdir().unwrap();
        crate::external::Tool::new("cp", "coreutils", "coreutils")
            .run([
                std::ffi::OsStr::new("-a"),
                root.as_os_str(),
                d.path().join("r").as_os_str(),
            ])
            .unwrap();
        let copy = d.path().join("r");
        fs::remove_file(copy.join("proc/swaps")).unwrap();
        let cx = Scope {
            host: &copy,
            root: &copy,
            config: &cfg,
        };
        let (f, _) = collect(&cx, Path::new("/dev/sda6")).unwrap();
        assert_eq!(f.not_checked[0], "active swap (no proc/swaps)");
        assert_eq!(f.filesystem, None, "sda6 is not mounted");
    }

    #[test]
    fn a_regular_file_is_bad_input() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dev")).unwrap();
        std::fs::write(d.path().join("dev/sdb"), "").unwrap();
        let e = Device::find(d.path(), Path::new("/dev/sdb")).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
    }
}
