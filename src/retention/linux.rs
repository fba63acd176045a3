//! Facts about a Linux block device, read through a host root: sysfs (size, holders,
//! partitions), /proc/self/mountinfo, /proc/swaps, a blkid low-level probe, and an
//! exclusive open (O_EXCL) to see whether something holds it.

use super::rules::VolumeFacts;
use crate::config::Config;
use crate::external::BLKID;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DevNum {
    pub major: u64,
    pub minor: u64,
}

impl DevNum {
    fn of(rdev: u64) -> DevNum {
        DevNum {
            major: libc::major(rdev) as u64,
            minor: libc::minor(rdev) as u64,
        }
    }

    fn parse(s: &str) -> Option<DevNum> {
        let (a, b) = s.trim().split_once(':')?;
        Some(DevNum {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

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

/// `host` joined with an absolute path.
pub fn under(host: &Path, p: &Path) -> PathBuf {
    host.join(p.strip_prefix("/").unwrap_or(p))
}

impl Device {
    /// Finds `path` under `host`; `Ok(None)` when it does not exist.
    pub fn find(host: &Path, path: &Path) -> Result<Option<Device>> {
        let at = under(host, path);
        let node = match fs::canonicalize(&at) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("resolving {}", at.display())),
        };
        let meta = fs::metadata(&node).with_context(|| format!("reading {}", node.display()))?;
        if !meta.file_type().is_block_device() {
            return Err(crate::error::bad_input(format!(
                "{} is not a block device (give a disk such as /dev/sdb or /dev/mapper/<SCSI ID>)",
                path.display()
            )));
        }
        let num = DevNum::of(meta.rdev());
        let link = host.join(format!("sys/dev/block/{num}"));
        let sysfs =
            fs::canonicalize(&link).with_context(|| format!("resolving {}", link.display()))?;
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
                    && let Some(n) = fs::read_to_string(p.join("dev"))
                        .ok()
                        .and_then(|t| DevNum::parse(&t))
                {
                    partitions.push((e.file_name().to_string_lossy().into_owned(), n));
                }
            }
        }
        partitions.sort();
        let multipath = fs::read_to_string(sysfs.join("dm/uuid"))
            .map(|u| u.starts_with("mpath-"))
            .unwrap_or(false);
        Ok(Some(Device {
            path: path.to_path_buf(),
            node,
            num,
            sysfs,
            kname,
            parent,
            partitions,
            multipath,
        }))
    }

    /// This device and its partitions.
    pub fn nums(&self) -> Vec<DevNum> {
        let mut v = vec![self.num];
        v.extend(self.partitions.iter().map(|p| p.1));
        v
    }

    pub fn size(&self) -> u64 {
        fs::read_to_string(self.sysfs.join("size"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|s| s * 512)
            .unwrap_or(0)
    }

    /// Kernel devices stacked on it or on a partition (`holders/`).
    pub fn holders(&self) -> Vec<String> {
        let mut dirs = vec![self.sysfs.join("holders")];
        dirs.extend(
            self.partitions
                .iter()
                .map(|(n, _)| self.sysfs.join(n).join("holders")),
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

/// Mount points by device number, from `<host>/proc/self/mountinfo`.
pub fn mounts(host: &Path) -> Result<BTreeMap<DevNum, Vec<PathBuf>>> {
    let p = host.join("proc/self/mountinfo");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(parse_mountinfo(&text))
}

pub fn parse_mountinfo(text: &str) -> BTreeMap<DevNum, Vec<PathBuf>> {
    let mut out: BTreeMap<DevNum, Vec<PathBuf>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 5 {
            continue;
        }
        if let Some(n) = DevNum::parse(f[2]) {
            out.entry(n)
                .or_default()
                .push(PathBuf::from(unescape(f[4])));
        }
    }
    out
}

/// mountinfo and swaps write space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Active swap device numbers, from `<host>/proc/swaps`.
pub fn swaps(host: &Path) -> Result<Vec<DevNum>> {
    let p = host.join("proc/swaps");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let path = under(host, Path::new(&unescape(name)));
        if let Ok(m) = fs::metadata(&path)
            && m.file_type().is_block_device()
        {
            out.push(DevNum::of(m.rdev()));
        }
    }
    Ok(out)
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
    /// Where /sys, /proc and /dev are (`/`).
    pub host: &'a Path,
    /// The system being configured (`--root`): its mtkit install and working files.
    pub root: &'a Path,
    pub config: &'a Config,
}

/// Collects every fact the rules need about `path`.
pub fn collect(cx: &Scope, path: &Path) -> Result<(VolumeFacts, Option<Device>)> {
    let mut f = VolumeFacts {
        name: path.display().to_string(),
        allowed_fs: vec!["ext4", "xfs"],
        ..VolumeFacts::default()
    };
    let Some(dev) = Device::find(cx.host, path)? else {
        return Ok((f, None));
    };
    f.exists = true;
    f.size = dev.size();
    let nums = dev.nums();
    let mounts = mounts(cx.host)?;
    for n in &nums {
        if let Some(m) = mounts.get(n) {
            f.mounts.extend(m.iter().cloned());
        }
    }
    f.active_swap = swaps(cx.host)?.iter().any(|s| nums.contains(s));
    f.holders = dev.holders();
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

    let disk = dev.parent.as_deref().unwrap_or(&dev.kname);
    let os = &cx.config.disks.os_disk;
    if disk == os {
        f.os_disk = Some(format!("is the OS disk {os} ([disks] os-disk)"));
    } else if let Ok(m) = fs::metadata(cx.root)
        && nums.contains(&DevNum::of(m.dev()))
    {
        f.os_disk = Some(format!(
            "holds the root filesystem of {}",
            cx.root.display()
        ));
    }
    // The cache volume: the filesystem of the mtkit binary, its config and working files.
    let mut install = vec![std::env::current_exe().unwrap_or_default()];
    install.extend(
        ["usr/local/sbin/mtkit", "etc/mtkit", "var/lib/mtkit"]
            .iter()
            .map(|p| cx.root.join(p)),
    );
    for p in install {
        if let Ok(m) = fs::metadata(&p)
            && nums.contains(&DevNum::of(m.dev()))
        {
            f.install_volume = Some(format!(
                "holds {} (the mtkit install: cache volume)",
                p.display()
            ));
            break;
        }
    }
    for d in &cx.config.writer.disk {
        let same_path = d.path == dev.path;
        let same_dev = fs::metadata(under(cx.host, &d.path))
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .is_some_and(|m| nums.contains(&DevNum::of(m.rdev())));
        if same_path || same_dev {
            f.writer_target = Some(d.name.clone());
        }
    }
    Ok((f, Some(dev)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_by_device_number_with_escapes() {
        let t = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n40 22 7:3 / /mnt/my\\040vol rw - ext4 /dev/loop3 rw\n41 22 7:3 / /srv rw - ext4 /dev/loop3 rw\n";
        let m = parse_mountinfo(t);
        let loop3 = DevNum { major: 7, minor: 3 };
        assert_eq!(
            m[&loop3],
            [PathBuf::from("/mnt/my vol"), PathBuf::from("/srv")]
        );
        assert_eq!(m[&DevNum { major: 8, minor: 1 }], [PathBuf::from("/")]);
    }

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

    #[test]
    fn a_regular_file_is_bad_input() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dev")).unwrap();
        std::fs::write(d.path().join("dev/sdb"), "").unwrap();
        let e = Device::find(d.path(), Path::new("/dev/sdb")).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
    }
}
