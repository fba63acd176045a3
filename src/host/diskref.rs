//! A disk named the way a config names one (a kernel name, a SCSI ID as `mtkit scsi-ids`
//! prints it, or a `/dev/disk/by-id|by-path` link), and the one resolver that finds the
//! disk it is on this boot; and the OS disk (`[disks] os-disk`) found through it, which
//! doctor, apply, the retention rules and the writer all tell from the data disks by.
//! Kernel names follow scan order and can change between boots; an ID or a link names the
//! same disk every time.

use super::scsi::{ScsiDisk, id_from_sysfs_wwid};
use crate::files::root::{Links, Node, Root};
use regex::Regex;
use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

/// How a config names a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRef {
    /// `sda`, `vdb`, `nvme0n1`: valid for this boot only.
    Kernel(String),
    /// What `scsi_id --whitelisted --replace-whitespace` prints, e.g. `36000c29...`.
    ScsiId(String),
    /// `/dev/disk/by-id/...` or `/dev/disk/by-path/...`, as written.
    Link(String),
}

/// Characters udev keeps in an ID (every other one becomes '_'), and so in its links.
fn id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b)
}

impl DiskRef {
    /// The form of `s`, or `None` when it is none of the three (shape only: nothing is read).
    pub fn parse(s: &str) -> Option<DiskRef> {
        if is_kernel_name(s) {
            return Some(DiskRef::Kernel(s.to_string()));
        }
        if let Some(rest) = s
            .strip_prefix("/dev/disk/by-id/")
            .or_else(|| s.strip_prefix("/dev/disk/by-path/"))
        {
            let ok = !rest.is_empty() && rest.bytes().all(id_char) && !rest.starts_with('.');
            return ok.then(|| DiskRef::Link(s.to_string()));
        }
        // scsi_id's first character is the designator type: 0-3 and 8 from page 0x83,
        // S for a page 0x80 serial. No kernel disk name starts with one of them.
        let typed = s.starts_with(['0', '1', '2', '3', '8', 'S']);
        (typed && s.len() > 1 && s.len() <= 256 && s.bytes().all(id_char))
            .then(|| DiskRef::ScsiId(s.to_string()))
    }

    /// The name RHEL 6 anaconda resolves through udev's links (kickstart.py deviceMatches,
    /// storage/udev.py udev_resolve_devspec): a kernel name, or a link without `/dev/`.
    pub fn installer_name(&self) -> String {
        match self {
            DiskRef::Kernel(n) => n.clone(),
            DiskRef::ScsiId(id) => format!("disk/by-id/scsi-{id}"),
            DiskRef::Link(l) => l.trim_start_matches("/dev/").to_string(),
        }
    }
}

impl fmt::Display for DiskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskRef::Kernel(n) => write!(f, "disk {n}"),
            DiskRef::ScsiId(id) => write!(f, "SCSI ID {id}"),
            DiskRef::Link(l) => write!(f, "{l}"),
        }
    }
}

/// A kernel disk name the kickstart can use: `sda`, `vdb`, `xvda`, `hda`, `nvme0n1`.
pub fn is_kernel_name(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:(?:s|v|xv|h)d[a-z]{1,3}|nvme[0-9]+n[0-9]+)$").expect("regex")
    });
    RE.is_match(s)
}

/// A disk reference that names no disk of the system, or more than one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// What was asked, e.g. "SCSI ID 36000c29..."
    pub asked: String,
    /// The disks it matched (empty: none).
    pub matches: Vec<String>,
    /// Every SCSI disk of the system with its ID ("sda 36000c29...", "sdb (no ID)").
    pub disks: Vec<String>,
    /// The one match is a partition (a `-partN` link), not a whole disk.
    pub partition: bool,
}

impl Unresolved {
    fn new(asked: String, matches: Vec<String>, disks: &[ScsiDisk]) -> Unresolved {
        Unresolved {
            asked,
            matches,
            disks: disks
                .iter()
                .map(|d| format!("{} {}", d.name, d.id.as_deref().unwrap_or("(no ID)")))
                .collect(),
            partition: false,
        }
    }
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.matches.as_slice() {
            [part] if self.partition => {
                write!(f, "{} is {part}, a partition, not a whole disk", self.asked)
            }
            [] => {
                let known = if self.disks.is_empty() {
                    "none".to_string()
                } else {
                    self.disks.join(", ")
                };
                write!(
                    f,
                    "no disk has {} (this system's disks: {known}; see `mtkit scsi-ids`)",
                    self.asked
                )
            }
            many => write!(f, "{} is on {}", self.asked, many.join(" and ")),
        }
    }
}

/// The one disk among `disks` whose SCSI ID is `id`.
pub fn find_by_id<'a>(disks: &'a [ScsiDisk], id: &str) -> Result<&'a ScsiDisk, Unresolved> {
    let found: Vec<&ScsiDisk> = disks
        .iter()
        .filter(|d| d.id.as_deref() == Some(id))
        .collect();
    match found.as_slice() {
        [d] => Ok(d),
        _ => Err(Unresolved::new(
            format!("SCSI ID {id}"),
            found.iter().map(|d| d.name.clone()).collect(),
            disks,
        )),
    }
}

/// The kernel name of the disk `r` names on the system under `root` (`disks` are its SCSI
/// disks, from `scsi::list_disks`). A kernel name is taken as it is. A link is read where
/// udev made it (`<root>/dev/disk/...`, never followed out of the root), else found in
/// udev's database, else (a `by-id/scsi-<ID>` or `wwn-0x<NAA>` link) by the ID it carries.
pub fn resolve(root: &Path, r: &DiskRef, disks: &[ScsiDisk]) -> Result<String, Unresolved> {
    match r {
        DiskRef::Kernel(n) => Ok(n.clone()),
        DiskRef::ScsiId(id) => find_by_id(disks, id).map(|d| d.name.clone()),
        DiskRef::Link(l) => resolve_link(root, l, disks),
    }
}

fn resolve_link(root: &Path, link: &str, disks: &[ScsiDisk]) -> Result<String, Unresolved> {
    let rel = link.trim_start_matches('/');
    let whole = |name: String| {
        if root.join("sys/block").join(&name).exists() {
            Ok(name)
        } else {
            Err(Unresolved {
                partition: true,
                ..Unresolved::new(link.to_string(), vec![name], disks)
            })
        }
    };
    // The link itself, resolved inside the root (an absolute link under a fixture root
    // must not reach the host's /dev); its target is only named, never opened.
    let node = Root::open(root).and_then(|r| r.node(Path::new(rel), Links::InRoot));
    if let Ok(Node::Symlink { target }) = node
        && let Some(name) = target.file_name()
    {
        return whole(name.to_string_lossy().into_owned());
    }
    let in_db = rel.trim_start_matches("dev/");
    let named: Vec<&ScsiDisk> = disks
        .iter()
        .filter(|d| {
            d.udev
                .as_ref()
                .is_some_and(|u| u.links.iter().any(|l| l == in_db))
        })
        .collect();
    if !named.is_empty() {
        return match named.as_slice() {
            [d] => Ok(d.name.clone()),
            _ => Err(Unresolved::new(
                link.to_string(),
                named.iter().map(|d| d.name.clone()).collect(),
                disks,
            )),
        };
    }
    // udev's rule (60-persistent-storage) names these from the ID alone.
    let file = in_db.rsplit('/').next().unwrap_or_default();
    let by_id = in_db.starts_with("disk/by-id/");
    let id = match (file.strip_prefix("scsi-"), file.strip_prefix("wwn-0x")) {
        (Some(id), _) if by_id => Some(id.to_string()),
        (_, Some(naa)) if by_id => Some(format!("3{naa}")),
        _ => None,
    };
    match id {
        Some(id) => find_by_id(disks, &id)
            .map(|d| d.name.clone())
            .map_err(|e| Unresolved::new(link.to_string(), e.matches, disks)),
        None => Err(Unresolved::new(link.to_string(), Vec::new(), disks)),
    }
}

/// The OS disk: `[disks] os-disk` resolved to its kernel name, and the SCSI ID it has. Doctor, the
/// multipath planner and the retention rules all tell the OS disk from data disks with it,
/// so a second path to the OS disk's LU (same ID, other name) is the OS disk for all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsDisk {
    pub name: String,
    /// What scsi_id prints for it (what multipath names maps by); `None`: no readable ID
    pub id: Option<String>,
}

impl OsDisk {
    /// The ID from `disks` (host::scsi's decode), else the kernel's
    /// `<root>/sys/block/<name>/device/wwid` in scsi_id's form.
    pub fn identify(root: &Path, name: &str, disks: &[ScsiDisk]) -> OsDisk {
        let id = disks
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.id.clone())
            .or_else(|| {
                let p = root.join("sys/block").join(name).join("device/wwid");
                crate::files::read_text(&p)
                    .ok()
                    .and_then(|t| id_from_sysfs_wwid(t.trim()))
            });
        OsDisk {
            name: name.to_string(),
            id,
        }
    }

    /// The OS disk `[disks] os-disk` names (`configured`: a kernel name, a SCSI ID or a
    /// /dev/disk link), found among `disks` through [`resolve`]. Never a guess: a
    /// reference that matches no disk or several is an error.
    pub fn resolve(
        root: &Path,
        configured: &str,
        disks: &[ScsiDisk],
    ) -> Result<OsDisk, Unresolved> {
        let Some(r) = DiskRef::parse(configured) else {
            return Err(Unresolved {
                asked: format!("[disks] os-disk {configured:?} (not a disk name)"),
                matches: Vec::new(),
                disks: Vec::new(),
                partition: false,
            });
        };
        let name = resolve(root, &r, disks)?;
        Ok(OsDisk::identify(root, &name, disks))
    }

    /// Lists the disks under `root` and resolves the OS disk among them.
    pub fn read(root: &Path, configured: &str) -> Result<OsDisk, Unresolved> {
        let disks = super::scsi::list_disks(root).unwrap_or_else(|e| {
            tracing::debug!("reading SCSI disks under {}: {e:#}", root.display());
            Vec::new()
        });
        OsDisk::resolve(root, configured, &disks)
    }

    /// What stands for the OS disk when `configured` cannot be resolved: nothing guessed,
    /// only what the value itself says (its kernel name, its SCSI ID), so the OS disk's
    /// own ID still counts as the OS disk wherever it shows up.
    pub fn unresolved(configured: &str) -> OsDisk {
        let id = match DiskRef::parse(configured) {
            Some(DiskRef::ScsiId(id)) => Some(id),
            _ => None,
        };
        OsDisk {
            name: configured.to_string(),
            id,
        }
    }

    /// True when `d` is the OS disk: its name, or a path with the same ID.
    pub fn is(&self, d: &ScsiDisk) -> bool {
        d.name == self.name || (self.id.is_some() && d.id == self.id)
    }

    /// True when the disk with kernel name `name` is the OS disk.
    pub fn is_named(&self, name: &str, disks: &[ScsiDisk]) -> bool {
        name == self.name || disks.iter().any(|d| d.name == name && self.is(d))
    }
}

/// What to do when `[disks] os-disk` cannot be resolved (`e` from [`OsDisk::resolve`]).
pub fn os_disk_remedy(e: &Unresolved) -> &'static str {
    if e.partition {
        return "set [disks] os-disk to the whole OS disk, not a partition of it";
    }
    match e.matches.len() {
        0 => {
            "set [disks] os-disk in appliance.toml to the OS disk's SCSI ID as `mtkit scsi-ids` \
             prints it (it names the same disk at every boot), or to its /dev/disk/by-id or \
             /dev/disk/by-path link"
        }
        _ => {
            "more than one disk answers to it (a VM cloned with its disk UUIDs, or two paths \
             to one disk): give the clone new disk UUIDs, or set [disks] os-disk to the OS \
             disk's /dev/disk/by-path link"
        }
    }
}

/// The data disks (target and retention disks): every SCSI disk that is not the OS disk.
pub fn data_disks<'a>(disks: &'a [ScsiDisk], os: &OsDisk) -> Vec<&'a ScsiDisk> {
    disks.iter().filter(|d| !os.is(d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::scsi::list_disks;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/roots")
            .join(name)
    }

    const OS_ID: &str = "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn parses_the_three_forms_and_nothing_else() {
        let k = |s: &str| Some(DiskRef::Kernel(s.into()));
        assert_eq!(DiskRef::parse("sda"), k("sda"));
        assert_eq!(DiskRef::parse("nvme0n1"), k("nvme0n1"));
        assert_eq!(DiskRef::parse(OS_ID), Some(DiskRef::ScsiId(OS_ID.into())));
        assert_eq!(
            DiskRef::parse("SQEMU_QEMU_HARDDISK_drive-scsi0"),
            Some(DiskRef::ScsiId("SQEMU_QEMU_HARDDISK_drive-scsi0".into()))
        );
        let by_path = "/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:0:0";
        assert_eq!(DiskRef::parse(by_path), Some(DiskRef::Link(by_path.into())));
        for bad in [
            "",
            "/dev/sda",
            "sda1",
            "disk0",
            "/dev/disk/by-uuid/1234",
            "/dev/disk/by-id/../../sda",
            "/dev/disk/by-id/",
            "3600 0c29",
            "naa.6000c29",
        ] {
            assert_eq!(DiskRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn installer_names_are_what_anaconda_resolves() {
        let r = DiskRef::parse(OS_ID).unwrap();
        assert_eq!(r.installer_name(), format!("disk/by-id/scsi-{OS_ID}"));
        let l = DiskRef::parse("/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:0:0").unwrap();
        assert_eq!(
            l.installer_name(),
            "disk/by-path/pci-0000:00:10.0-scsi-2:0:0:0"
        );
        assert_eq!(DiskRef::parse("sdb").unwrap().installer_name(), "sdb");
    }

    #[test]
    fn a_scsi_id_resolves_to_its_one_disk() {
        let root = fixture("healthy");
        let disks = list_disks(&root).unwrap();
        let r = DiskRef::parse("36000c29b2c3d4e5f60718293a4b5c6d7e8f90a1").unwrap();
        assert_eq!(resolve(&root, &r, &disks).unwrap(), "sdc");
        let r = DiskRef::parse(OS_ID).unwrap();
        assert_eq!(resolve(&root, &r, &disks).unwrap(), "sda");
    }

    #[test]
    fn a_scsi_id_of_no_disk_lists_the_disks_there_are() {
        let root = fixture("healthy");
        let disks = list_disks(&root).unwrap();
        let r = DiskRef::parse("36000c29ffffffffffffffffffffffffffffffff").unwrap();
        let e = resolve(&root, &r, &disks).unwrap_err();
        assert!(e.matches.is_empty());
        assert_eq!(
            e.to_string(),
            format!(
                "no disk has SCSI ID 36000c29ffffffffffffffffffffffffffffffff (this system's \
                 disks: sda {OS_ID}, sdb 36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90, \
                 sdc 36000c29b2c3d4e5f60718293a4b5c6d7e8f90a1, \
                 sdd 36000c29c3d4e5f60718293a4b5c6d7e8f90a1b2; see `mtkit scsi-ids`)"
            )
        );
    }

    #[test]
    fn a_scsi_id_on_two_disks_is_refused_naming_both() {
        let root = fixture("cloned");
        let disks = list_disks(&root).unwrap();
        let r = DiskRef::parse("36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90").unwrap();
        let e = resolve(&root, &r, &disks).unwrap_err();
        assert_eq!(e.matches, ["sdb", "sdc"]);
        assert_eq!(
            e.to_string(),
            "SCSI ID 36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90 is on sdb and sdc"
        );
        // The same through its by-id link, which udev gave both.
        let l = DiskRef::parse("/dev/disk/by-id/scsi-36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90")
            .unwrap();
        assert_eq!(
            resolve(&root, &l, &disks).unwrap_err().matches,
            ["sdb", "sdc"]
        );
    }

    #[test]
    fn links_resolve_through_udevs_database_its_links_or_the_id() {
        let root = fixture("healthy");
        let disks = list_disks(&root).unwrap();
        let by_path = DiskRef::parse("/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:1:0").unwrap();
        assert_eq!(resolve(&root, &by_path, &disks).unwrap(), "sdb");
        let wwn = DiskRef::parse(&format!("/dev/disk/by-id/wwn-0x{}", &OS_ID[1..])).unwrap();
        assert_eq!(resolve(&root, &wwn, &disks).unwrap(), "sda");
        let gone = DiskRef::parse("/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:9:0").unwrap();
        let e = resolve(&root, &gone, &disks).unwrap_err();
        assert!(e.to_string().starts_with(
            "no disk has /dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:9:0 (this system's disks: sda"
        ));

        // Without udev's database: the links udev made, read without being followed.
        let d = tempfile::tempdir().unwrap();
        let ids = d.path().join("dev/disk/by-id");
        std::fs::create_dir_all(&ids).unwrap();
        std::fs::create_dir_all(d.path().join("sys/block/sdq")).unwrap();
        std::os::unix::fs::symlink("../../sdq", ids.join("scsi-3600a")).unwrap();
        std::os::unix::fs::symlink("../../sdq1", ids.join("scsi-3600a-part1")).unwrap();
        let r = DiskRef::parse("/dev/disk/by-id/scsi-3600a").unwrap();
        assert_eq!(resolve(d.path(), &r, &[]).unwrap(), "sdq");
        let p = DiskRef::parse("/dev/disk/by-id/scsi-3600a-part1").unwrap();
        assert_eq!(
            resolve(d.path(), &p, &[]).unwrap_err().to_string(),
            "/dev/disk/by-id/scsi-3600a-part1 is sdq1, a partition, not a whole disk"
        );
    }
}
