//! Which device a `[[writer.disk]]` is, and whether the writer may write it.
//!
//! Kernel names follow SCSI scan order and can swap between boots, so a disk named by its
//! `scsi-id` is found by that ID at every start, and a `path` whose device carries another
//! ID is not served. A target is refused when it (or a partition of it, or what it is
//! built on) is mounted, holds the journal, is the OS disk or the root filesystem, is an
//! active swap, holds the mtkit install, or has something stacked on it; a block device is
//! then held open with O_EXCL while the writer runs, so mkfs or `retention prepare` cannot
//! format it underneath.
//!
//! Facts come from the host code (sysfs, mount table, swaps) under the service's root, so
//! a fixture tree stands in for a machine in tests. `doctor` runs the same checks.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::config::{Config, WriterDisk};
use crate::host::blockdev::{self, DevNum, DmDevice, Piece};
use crate::host::diskref::{self, OsDisk};
use crate::host::scsi::{self, ScsiDisk};
use crate::host::{mounts, under};

/// A `[[writer.disk]]` the writer does not serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Refused {
    pub name: String,
    pub group: String,
    /// The device or file it named or resolved to (empty when nothing was found).
    pub path: String,
    pub reason: String,
}

/// A target that passed the checks.
#[derive(Debug)]
pub struct Target {
    /// As the system names it (`/dev/mapper/36000c29...`, `/dev/sdb`, a file).
    pub path: PathBuf,
    /// The same under the root: what is opened.
    pub node: PathBuf,
    /// A block device (held with O_EXCL by [`Host::claim`]).
    pub block: bool,
    /// The O_EXCL descriptor, once claimed.
    pub claim: Option<File>,
}

/// A checked disk: the target, or (the path it named or resolved to, why it is refused).
pub type Checked = Result<Target, (String, String)>;

/// What a device node under the root is.
enum Node {
    /// A block device (or, under a fixture root, a `/dev` name found in its sysfs), with
    /// its sysfs folder when there is one.
    Device(Option<PathBuf>),
    File,
    Missing,
}

/// The facts of the system the targets are judged against, read once per start.
pub struct Host<'a> {
    root: &'a Path,
    /// The running system: device nodes are real and can be opened.
    live: bool,
    scsi: Vec<ScsiDisk>,
    dms: Vec<DmDevice>,
    os: OsDisk,
    /// What a target must not share storage with, and how to say so.
    guarded: Vec<(Vec<Piece>, String)>,
}

impl<'a> Host<'a> {
    /// Reads the facts under `root` for `cfg`.
    pub fn read(root: &'a Path, cfg: &Config) -> Host<'a> {
        let live = root == Path::new("/");
        let scsi = scsi::list_disks(root).unwrap_or_else(|e| {
            tracing::debug!("reading SCSI disks under {}: {e:#}", root.display());
            Vec::new()
        });
        let os = OsDisk::resolve(root, &cfg.disks.os_disk, &scsi).unwrap_or_else(|e| {
            // doctor and apply say so; here only what the value itself names is guarded.
            tracing::debug!("[disks] os-disk: {e}");
            OsDisk::unresolved(&cfg.disks.os_disk)
        });
        let mut host = Host {
            root,
            live,
            dms: blockdev::dm_devices(root),
            scsi,
            os,
            guarded: Vec::new(),
        };
        let mounts = mounts::read(root);
        let journal = cfg.writer.journal_dir(&cfg.retention);
        if let Some(n) = host.fs_devnum(&journal, &mounts) {
            host.guard(
                n,
                format!(
                    "holds the journal ([writer] journal-dir {} is on it)",
                    journal.display()
                ),
            );
        }
        if let Some(n) = host.fs_devnum(Path::new("/"), &mounts) {
            host.guard(n, "holds the root filesystem (the OS disk)".into());
        }
        let os_sysfs = root.join("sys/block").join(&host.os.name);
        if !host.os.name.is_empty()
            && !host.os.name.contains('/')
            && let Ok(p) = os_sysfs.canonicalize()
        {
            let fp = blockdev::footprint(root, &p);
            host.guarded.push((
                fp,
                if host.os.name == cfg.disks.os_disk {
                    format!("is the OS disk ([disks] os-disk {})", cfg.disks.os_disk)
                } else {
                    format!(
                        "is the OS disk {} ([disks] os-disk {})",
                        host.os.name, cfg.disks.os_disk
                    )
                },
            ));
        }
        let mut install: Vec<PathBuf> = ["/usr/local/sbin/mtkit", "/etc/mtkit", "/var/lib/mtkit"]
            .iter()
            .map(PathBuf::from)
            .collect();
        if live && let Ok(exe) = std::env::current_exe() {
            install.insert(0, exe);
        }
        for p in install {
            if let Some(n) = host.fs_devnum(&p, &mounts) {
                host.guard(
                    n,
                    format!("holds the mtkit install ({} is on it)", p.display()),
                );
            }
        }
        match mounts::swaps(root) {
            Ok(swaps) => {
                for s in swaps {
                    if let Some(sysfs) = host.sysfs_of(Path::new(&s)) {
                        let fp = blockdev::footprint(root, &sysfs);
                        host.guarded.push((fp, format!("is an active swap ({s})")));
                    }
                }
            }
            Err(e) => tracing::debug!("{e:#}"),
        }
        for m in &mounts {
            if let Some(n) = m.devnum(root) {
                host.guard(n, format!("is mounted at {}", m.mountpoint.display()));
            }
        }
        host
    }

    /// Guards the block device `n` (when it is one: sysfs knows it).
    fn guard(&mut self, n: DevNum, why: String) {
        // Major 0: proc, tmpfs, overlay and the like, on no block device.
        if n.major == 0 {
            return;
        }
        if let Some(sysfs) = n.sysfs(self.root) {
            let fp = blockdev::footprint(self.root, &sysfs);
            self.guarded.push((fp, why));
        }
    }

    /// The device of the filesystem holding `p` (a path of the system): its `st_dev` on the
    /// running system (the nearest existing folder), else the fixture's mount table.
    fn fs_devnum(&self, p: &Path, mounts: &[mounts::Mount]) -> Option<DevNum> {
        if self.live {
            let existing = p.ancestors().find_map(|a| std::fs::metadata(a).ok())?;
            return Some(DevNum::of(existing.dev()));
        }
        mounts::containing(mounts, p)?.devnum(self.root)
    }

    /// The sysfs folder of a device named by path: its node's on the running system, else
    /// (a fixture root has no device nodes) its name's.
    fn sysfs_of(&self, path: &Path) -> Option<PathBuf> {
        match self.node(path) {
            Node::Device(sysfs) => sysfs,
            _ => None,
        }
    }

    fn node(&self, path: &Path) -> Node {
        let at = under(self.root, path);
        let by_name = || {
            let named = !self.live && path.starts_with("/dev/");
            named.then(|| blockdev::sysfs_by_name(self.root, &path.to_string_lossy()))
        };
        match std::fs::metadata(&at) {
            Ok(m) if m.file_type().is_block_device() => {
                Node::Device(DevNum::of(m.rdev()).sysfs(self.root))
            }
            Ok(_) => match by_name() {
                Some(Some(s)) => Node::Device(Some(s)),
                _ => Node::File,
            },
            Err(_) => match by_name() {
                Some(Some(s)) => Node::Device(Some(s)),
                _ => Node::Missing,
            },
        }
    }

    /// The SCSI ID of the device at `sysfs`: a SCSI disk's (as scsi_id prints it), or the
    /// WWID a multipath map stands for. A partition has none of its own.
    fn id_at(&self, sysfs: &Path) -> Option<String> {
        let kname = sysfs.file_name()?.to_string_lossy().into_owned();
        if let Some(dm) = self.dms.iter().find(|d| d.kernel == kname) {
            return dm.mpath_wwid().map(str::to_owned);
        }
        self.scsi
            .iter()
            .find(|d| d.name == kname)
            .and_then(|d| d.id.clone())
    }

    /// Where the disk with SCSI ID `id` is: its multipath map, else its one SCSI path.
    fn find_id(&self, id: &str) -> Result<PathBuf, String> {
        if let Some(dm) = self.dms.iter().find(|d| d.mpath_wwid() == Some(id)) {
            let mapper = PathBuf::from("/dev/mapper").join(&dm.name);
            // The mapper name is udev's (or dmsetup's) to make; the kernel's dm-N node is
            // there without them, and names the same map while it exists.
            let kernel = PathBuf::from("/dev").join(&dm.kernel);
            let exists = |p: &Path| std::fs::symlink_metadata(under(self.root, p)).is_ok();
            if self.live && !exists(&mapper) && exists(&kernel) {
                return Ok(kernel);
            }
            return Ok(mapper);
        }
        match diskref::find_by_id(&self.scsi, id) {
            Ok(d) => Ok(PathBuf::from("/dev").join(&d.name)),
            Err(e) if e.matches.is_empty() => Err(e.to_string()),
            Err(e) => Err(format!(
                "{e}: two paths to one disk without multipath, or disks cloned with one ID; \
                 set up multipath, or give the clone new disk UUIDs"
            )),
        }
    }

    /// Resolves and judges a `[[writer.disk]]` (nothing is opened: doctor uses it too).
    pub fn check(&self, d: &WriterDisk) -> Checked {
        let given = (!d.path.as_os_str().is_empty()).then(|| d.path.clone());
        let shown = |p: &Path| p.display().to_string();
        let path = match (&given, d.scsi_id.as_str()) {
            (Some(p), "") => p.clone(),
            (None, id) => self.find_id(id).map_err(|e| (String::new(), e))?,
            (Some(p), id) => {
                let carries = match self.node(p) {
                    Node::Device(Some(sysfs)) => self.id_at(&sysfs),
                    Node::Device(None) => None,
                    Node::File => {
                        return Err((
                            shown(p),
                            format!("is a regular file, which carries no SCSI ID (scsi-id {id})"),
                        ));
                    }
                    Node::Missing => {
                        return Err((shown(p), format!("does not exist (scsi-id {id})")));
                    }
                };
                if carries.as_deref() != Some(id) {
                    let there = match self.find_id(id) {
                        Ok(q) => format!("the disk with that ID is {}", q.display()),
                        Err(e) => e,
                    };
                    return Err((
                        shown(p),
                        format!(
                            "carries SCSI ID {}, not scsi-id {id}: kernel names can change \
                             between boots, and writing it would overwrite another disk ({there})",
                            carries.as_deref().unwrap_or("(none)")
                        ),
                    ));
                }
                p.clone()
            }
        };
        let node = under(self.root, &path);
        let sysfs = match self.node(&path) {
            Node::Device(s) => s,
            Node::File | Node::Missing => {
                return Ok(Target {
                    path,
                    node,
                    block: false,
                    claim: None,
                });
            }
        };
        let block = std::fs::metadata(&node).is_ok_and(|m| m.file_type().is_block_device());
        if let Some(sysfs) = sysfs {
            let reasons = self.refusals(&sysfs);
            if !reasons.is_empty() {
                return Err((shown(&path), reasons.join("; ")));
            }
        }
        Ok(Target {
            path,
            node,
            block,
            claim: None,
        })
    }

    /// Why the device at `sysfs` must not be written (none: it may be).
    fn refusals(&self, sysfs: &Path) -> Vec<String> {
        let fp = blockdev::footprint(self.root, sysfs);
        let mut out: Vec<String> = Vec::new();
        let mut add = |r: String| {
            if !out.contains(&r) {
                out.push(r);
            }
        };
        if let Some(p) = fp.iter().find(|p| self.os.is_named(&p.disk, &self.scsi)) {
            add(format!(
                "is on the OS disk ({} has the ID of [disks] os-disk {})",
                p.disk, self.os.name
            ));
        }
        for (g, why) in &self.guarded {
            if blockdev::overlaps(&fp, g) {
                add(why.clone());
            }
        }
        let holders = holders(sysfs);
        if !holders.is_empty() {
            let named: Vec<String> = holders
                .iter()
                .map(|h| match self.dms.iter().find(|d| &d.kernel == h) {
                    Some(d) if d.mpath_wwid().is_some() => format!(
                        "{h}, its multipath map: give /dev/mapper/{} (or only scsi-id) instead",
                        d.name
                    ),
                    Some(d) => format!("{h} ({})", d.name),
                    None => h.clone(),
                })
                .collect();
            add(format!(
                "has devices stacked on it: {} (remove them first, e.g. kpartx -d or \
                 vgchange -an)",
                named.join(", ")
            ));
        }
        out
    }

    /// Holds a block-device target with O_EXCL for as long as the returned descriptor
    /// lives: mkfs, mount and `retention prepare` then get EBUSY.
    pub fn claim(&self, t: &mut Target) -> Result<(), String> {
        if !t.block {
            return Ok(());
        }
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
            .open(&t.node)
        {
            Ok(f) => {
                t.claim = Some(f);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(
                "is busy: another program holds it (mounted, a swap, a member of LVM, \
                 multipath or md, or opened exclusively by mkfs or another writer)"
                    .into(),
            ),
            Err(e) => Err(format!("cannot be opened: {e}")),
        }
    }
}

/// Kernel devices stacked on the device at `sysfs` or on one of its partitions.
fn holders(sysfs: &Path) -> Vec<String> {
    let mut dirs = vec![sysfs.join("holders")];
    if let Ok(rd) = std::fs::read_dir(sysfs) {
        dirs.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("partition").exists())
                .map(|p| p.join("holders")),
        );
    }
    let mut out: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Checks every `[[writer.disk]]` of `cfg` under `root` (doctor): the disk and its result.
pub fn check_all<'c>(root: &Path, cfg: &'c Config) -> Vec<(&'c WriterDisk, Checked)> {
    let host = Host::read(root, cfg);
    cfg.writer.disk.iter().map(|d| (d, host.check(d))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDB: &str = "36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const SDC: &str = "36000c29b2c3d4e5f60718293a4b5c6d7e8f90a1";
    const SDD: &str = "36000c29c3d4e5f60718293a4b5c6d7e8f90a1b2";
    const SDA: &str = "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn healthy() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roots/healthy")
    }

    fn disk(path: &str, id: &str) -> WriterDisk {
        WriterDisk {
            name: "d".into(),
            path: path.into(),
            scsi_id: id.into(),
            group: "g".into(),
            size: None,
        }
    }

    fn refused(host: &Host, d: WriterDisk) -> (String, String) {
        match host.check(&d) {
            Ok(t) => panic!("{d:?} passed as {t:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_scsi_id_finds_its_multipath_map_and_a_wrong_path_is_refused() {
        let root = healthy();
        let cfg = Config::default();
        let host = Host::read(&root, &cfg);
        let t = host.check(&disk("", SDB)).unwrap();
        assert_eq!(t.path, Path::new("/dev/mapper").join(SDB));
        assert_eq!(t.node, root.join("dev/mapper").join(SDB));
        // The map named by path with its ID: the same disk.
        let same = format!("/dev/mapper/{SDB}");
        assert_eq!(
            host.check(&disk(&same, SDB)).unwrap().path,
            Path::new(&same)
        );
        // sdc's map where sdb's ID is expected: another disk, never written.
        let other = format!("/dev/mapper/{SDC}");
        let (path, why) = refused(&host, disk(&other, SDB));
        assert_eq!(path, other);
        assert!(
            why.contains(&format!("carries SCSI ID {SDC}, not scsi-id {SDB}")),
            "{why}"
        );
        assert!(why.contains(&format!("/dev/mapper/{SDB}")), "{why}");
        // The SCSI path under a map: its ID matches, but multipath holds it.
        let (_, why) = refused(&host, disk("/dev/sdb", SDB));
        assert!(why.contains("dm-0, its multipath map"), "{why}");
        // An ID no disk has, and a partition (which carries none).
        let (path, why) = refused(&host, disk("", "36000c29ffffffffffffffffffffffffffffffff"));
        assert!(
            path.is_empty() && why.contains("no disk has SCSI ID"),
            "{why}"
        );
        assert!(why.contains(&format!("sdb {SDB}")), "{why}");
        let (_, why) = refused(&host, disk("/dev/sda2", SDA));
        assert!(why.contains("carries SCSI ID (none)"), "{why}");
    }

    #[test]
    fn the_journal_the_os_disk_swap_and_mounts_are_refused() {
        let root = healthy();
        let cfg = Config::default();
        let host = Host::read(&root, &cfg);
        // sdd's map is the retention volume: mounted, and the journal is on it.
        let (path, why) = refused(&host, disk("", SDD));
        assert_eq!(path, format!("/dev/mapper/{SDD}"));
        assert!(
            why.contains("holds the journal ([writer] journal-dir /mnt/retention/mtkit"),
            "{why}"
        );
        assert!(why.contains("is mounted at /mnt/retention"), "{why}");
        // The OS disk, by ID or by name; its swap partition.
        let (_, why) = refused(&host, disk("", SDA));
        assert!(
            why.contains("is the OS disk ([disks] os-disk sda)"),
            "{why}"
        );
        assert!(why.contains("holds the root filesystem"), "{why}");
        assert!(why.contains("is mounted at /boot"), "{why}");
        let (_, why) = refused(&host, disk("/dev/sda6", ""));
        assert!(why.contains("is an active swap (/dev/sda6)"), "{why}");
        // Another os-disk name: sda still holds / and is still refused.
        let mut moved = Config::default();
        moved.disks.os_disk = "sdc".into();
        let host = Host::read(&root, &moved);
        let (_, why) = refused(&host, disk("", SDA));
        assert!(why.contains("holds the root filesystem"), "{why}");
        let (_, why) = refused(&host, disk("", SDC));
        assert!(
            why.contains("is the OS disk ([disks] os-disk sdc)"),
            "{why}"
        );
        // The same disk named by its SCSI ID: found under its kernel name of this boot.
        moved.disks.os_disk = SDC.into();
        let host = Host::read(&root, &moved);
        let (_, why) = refused(&host, disk("", SDC));
        assert!(
            why.contains(&format!("is the OS disk sdc ([disks] os-disk {SDC})")),
            "{why}"
        );
        // ... and only that disk: sdb is a target like before.
        assert!(host.check(&disk("", SDB)).is_ok());
    }

    #[test]
    fn the_volume_of_the_mtkit_install_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        crate::external::Tool::new("cp", "coreutils", "coreutils")
            .run([
                std::ffi::OsStr::new("-a"),
                healthy().as_os_str(),
                root.as_os_str(),
            ])
            .unwrap();
        let mounts = root.join("proc/mounts");
        let mut text = std::fs::read_to_string(&mounts).unwrap();
        text += &format!("/dev/mapper/{SDC} /var/lib/mtkit ext4 rw 0 0\n");
        std::fs::write(&mounts, text).unwrap();
        let cfg = Config::default();
        let host = Host::read(&root, &cfg);
        let (_, why) = refused(&host, disk("", SDC));
        assert!(
            why.contains("holds the mtkit install (/var/lib/mtkit is on it)"),
            "{why}"
        );
        // sdb is still fine.
        assert!(host.check(&disk("", SDB)).is_ok());
    }

    #[test]
    fn a_regular_file_is_served_but_carries_no_id() {
        let t = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let host = Host::read(t.path(), &cfg);
        std::fs::write(t.path().join("d.img"), b"x").unwrap();
        let t1 = host.check(&disk("/d.img", "")).unwrap();
        assert!(!t1.block);
        let (_, why) = refused(&host, disk("/d.img", SDB));
        assert!(
            why.contains("regular file, which carries no SCSI ID"),
            "{why}"
        );
    }
}
