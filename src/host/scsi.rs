//! SCSI disks of a system read from its sysfs tree (`<root>/sys`), with the ID udev's
//! scsi_id gives each, and udev's database entry when there is one.

use super::scsi_id::{self, IdSource, InquiryData};
use super::{udevdb, vpd};
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// One SCSI disk.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScsiDisk {
    /// Host:channel:target:lun
    pub hctl: String,
    /// Kernel name, e.g. "sda"
    pub name: String,
    /// "major:minor"
    pub devno: String,
    pub vendor: String,
    pub model: String,
    pub rev: String,
    pub size_bytes: u64,
    /// Unit serial number (VPD page 0x80), trimmed
    pub serial: Option<String>,
    /// What scsi_id --whitelisted --replace-whitespace prints; `None`: it prints nothing
    pub id: Option<String>,
    pub id_source: IdSource,
    /// The ID is only a vendor-specific designator or a serial number
    pub weak: bool,
    /// The kernel's `wwid` attribute (absent when the device has no usable designator)
    pub wwid: Option<String>,
    /// Every page 0x83 designator, e.g. "lu:naa.6000c29..." or "port:naa.5000..."
    pub designators: Vec<String>,
    /// Problems met while decoding the VPD pages
    pub vpd_problems: Vec<String>,
    /// udev's database entry, when present
    pub udev: Option<udevdb::UdevProps>,
}

/// How good a disk's ID is for multipath and failback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdStatus {
    Ok,
    /// Only a vendor-specific designator or serial number: unique only by luck (exit 0).
    Weak,
    /// scsi_id prints nothing: the VMware symptom of a missing disk.EnableUUID.
    Missing,
    /// Another disk has the same ID: a VM cloned from one template, or two paths to one LU.
    Duplicate,
}

impl IdStatus {
    pub fn is_failure(self) -> bool {
        matches!(self, IdStatus::Missing | IdStatus::Duplicate)
    }

    /// What to do about it.
    pub fn remedy(self) -> &'static str {
        match self {
            IdStatus::Ok => "",
            IdStatus::Weak => {
                "the ID is only a vendor-specific designator or serial number; on VMware set \
                 disk.EnableUUID = \"TRUE\" (mtkit vmx patch) so disks carry NAA IDs"
            }
            IdStatus::Missing => {
                "power the VM off, set disk.EnableUUID = \"TRUE\" in its .vmx (mtkit vmx patch \
                 FILE.vmx, or VM Options > Advanced > Configuration Parameters), power it on"
            }
            IdStatus::Duplicate => {
                "two disks report one ID: the VM was cloned from a template with the same disk \
                 UUIDs (give the clone new disks or new uuid.bios/disk UUIDs), or one LU is \
                 seen twice (set up multipath)"
            }
        }
    }
}

/// The status of each disk's ID, in the order of `disks`.
pub fn id_statuses(disks: &[ScsiDisk]) -> Vec<IdStatus> {
    disks
        .iter()
        .map(|d| match &d.id {
            None => IdStatus::Missing,
            Some(id) if disks.iter().filter(|o| o.id.as_ref() == Some(id)).count() > 1 => {
                IdStatus::Duplicate
            }
            Some(_) if d.weak => IdStatus::Weak,
            Some(_) => IdStatus::Ok,
        })
        .collect()
}

/// The kernel's sysfs `wwid` (`naa.6000C29...`) as scsi_id and multipath print it
/// (`36000c29...`): the designator type digit (3 NAA, 2 EUI-64), then the hex identifier.
pub fn id_from_sysfs_wwid(sysfs: &str) -> Option<String> {
    let (prefix, hex) = sysfs.split_once('.')?;
    let digit = match prefix {
        "naa" => '3',
        "eui" => '2',
        _ => return None,
    };
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{digit}{}", hex.to_ascii_lowercase()))
}

/// Peripheral device types the sd driver binds to: disk, optical memory, RBC, ZBC.
const DISK_TYPES: [u32; 4] = [0x00, 0x07, 0x0e, 0x14];

/// Lists the SCSI disks under `root` (the system's `/`), sorted by H:C:T:L. A CD-ROM, tape or
/// enclosure is not a disk. An empty list when the tree has no SCSI bus.
pub fn list_disks(root: &Path) -> Result<Vec<ScsiDisk>> {
    let mut disks = Vec::new();
    for dir in device_dirs(root)? {
        if let Some(d) = read_disk(root, &dir)? {
            disks.push(d);
        }
    }
    disks.sort_by_key(|d| hctl_key(&d.hctl));
    Ok(disks)
}

fn hctl_key(h: &str) -> Vec<u64> {
    h.split(':')
        .map(|n| n.parse().unwrap_or(u64::MAX))
        .collect()
}

fn is_hctl(name: &str) -> bool {
    name.split(':').count() == 4 && name.split(':').all(|p| p.parse::<u64>().is_ok())
}

/// SCSI device folders (`.../H:C:T:L`), found through `sys/bus/scsi/devices`,
/// `sys/class/scsi_disk/*/device` and `sys/block/*/device`, whichever a tree has (a partial
/// capture may hold only some), each device once.
fn device_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found: std::collections::BTreeMap<String, PathBuf> = Default::default();
    let sources = [
        ("sys/bus/scsi/devices", None),
        ("sys/class/scsi_disk", Some("device")),
        ("sys/block", Some("device")),
    ];
    for (dir, sub) in sources {
        let entries = match fs::read_dir(root.join(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", root.join(dir).display()));
            }
        };
        for e in entries.flatten() {
            let mut p = follow_link_file(e.path());
            if let Some(sub) = sub {
                p = follow_link_file(p.join(sub));
            }
            let Ok(real) = p.canonicalize() else {
                continue;
            };
            let name = real.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(name) = name.filter(|n| is_hctl(n)) {
                found.entry(name).or_insert(real);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// A copied sysfs tree may hold a symlink as a small file that names its target (copies
/// made without keeping links): follow such a file like the link it was.
fn follow_link_file(p: PathBuf) -> PathBuf {
    let is_file = fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() < 4096);
    if !is_file {
        return p;
    }
    let Some(target) = read_text(&p).filter(|t| t.starts_with("../") && !t.contains('\n')) else {
        return p;
    };
    match p.parent().map(|d| d.join(&target)) {
        Some(t) if t.is_dir() => t,
        _ => p,
    }
}

fn read_opt(p: &Path) -> Option<Vec<u8>> {
    crate::files::read_input(p, crate::files::root::MAX_READ).ok()
}

fn read_text(p: &Path) -> Option<String> {
    let b = read_opt(p)?;
    Some(
        String::from_utf8_lossy(&b)
            .trim_end_matches('\n')
            .to_string(),
    )
}

/// Pads a sysfs vendor/model string back to its INQUIRY width; a shorter one means the
/// INQUIRY field held a NUL (the kernel prints up to it), which scsi_id treats as bad.
fn field(text: &str, width: usize) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.truncate(width);
    v.resize(width, 0);
    v
}

fn read_disk(root: &Path, dir: &Path) -> Result<Option<ScsiDisk>> {
    let hctl = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ty = read_text(&dir.join("type")).and_then(|t| t.trim().parse::<u32>().ok());
    if !ty.is_some_and(|t| DISK_TYPES.contains(&t)) {
        return Ok(None);
    }
    let Some(name) = block_name(dir)? else {
        return Ok(None);
    };
    let bdir = dir.join("block").join(&name);
    let devno = read_text(&bdir.join("dev")).unwrap_or_default();
    let size_bytes = read_text(&bdir.join("size"))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 512;

    // The raw INQUIRY keeps the exact bytes scsi_id sees; fall back to the text attributes.
    let raw_inq = read_opt(&dir.join("inquiry")).filter(|b| b.len() >= 32);
    let vendor_txt = read_text(&dir.join("vendor")).unwrap_or_default();
    let model_txt = read_text(&dir.join("model")).unwrap_or_default();
    let (vendor, model) = match &raw_inq {
        Some(b) => (b[8..16].to_vec(), b[16..32].to_vec()),
        None => (field(&vendor_txt, 8), field(&model_txt, 16)),
    };
    let page83 = read_opt(&dir.join("vpd_pg83"));
    let page80 = read_opt(&dir.join("vpd_pg80"));
    // Kernels before vpd_pg0 existed only kept pages 0x80/0x83 the device listed as
    // supported, so their presence stands in for page 0 there.
    let page0 = read_opt(&dir.join("vpd_pg0")).or_else(|| {
        let listed: Vec<u8> = [(0x83, &page83), (0x80, &page80)]
            .iter()
            .filter(|(_, p)| p.is_some())
            .map(|(c, _)| *c)
            .collect();
        let mut p = vec![0, 0, 0, listed.len() as u8];
        p.extend(listed);
        Some(p)
    });
    let inq = InquiryData {
        vendor: vendor.clone(),
        model: model.clone(),
        page0,
        page83: page83.clone(),
        page80: page80.clone(),
    };

    let mut problems = Vec::new();
    let mut designators = Vec::new();
    if let Some(p) = &page83 {
        match vpd::decode_pg83(p) {
            Ok(d) => {
                designators = d.designators.iter().map(|x| x.to_string()).collect();
                problems.extend(d.problems);
            }
            Err(e) => problems.push(e),
        }
    }
    let serial = match &page80 {
        Some(p) => match vpd::decode_pg80(p) {
            Ok(s) => Some(s).filter(|s| !s.is_empty()),
            Err(e) => {
                problems.push(e);
                None
            }
        },
        None => None,
    };

    let udev = match devno.split_once(':') {
        Some((ma, mi)) => match (ma.parse(), mi.parse()) {
            (Ok(ma), Ok(mi)) => udevdb::read(root, ma, mi, &name)?,
            _ => None,
        },
        None => None,
    };

    let computed = scsi_id::scsi_id(&inq);
    let (id, id_source) = match (&computed, udev.as_ref().and_then(|u| u.id_serial.clone())) {
        (Some(c), _) => (Some(c.formatted()), c.source),
        // No VPD pages readable here (an old kernel): udev ran scsi_id on the device itself.
        (None, Some(s)) if page83.is_none() && page80.is_none() => (Some(s), IdSource::Udev),
        (None, _) => (None, IdSource::None),
    };
    let tidy = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches(['\0', ' '])
            .to_string()
    };
    // An ID from udev's database keeps scsi_id's type prefix: '0' (vendor-specific
    // designator) and 'S' (page 0x80 serial) are as weak as when decoded from VPD here.
    let weak = id_source.is_weak()
        || (id_source == IdSource::Udev && id.as_ref().is_some_and(|i| i.starts_with(['0', 'S'])));
    Ok(Some(ScsiDisk {
        hctl,
        name,
        devno,
        vendor: raw_inq
            .as_ref()
            .map_or(vendor_txt.trim_end().to_string(), |_| tidy(&vendor)),
        model: raw_inq
            .as_ref()
            .map_or(model_txt.trim_end().to_string(), |_| tidy(&model)),
        rev: read_text(&dir.join("rev"))
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        size_bytes,
        serial,
        weak,
        id,
        id_source,
        wwid: read_text(&dir.join("wwid")).filter(|w| !w.is_empty()),
        designators,
        vpd_problems: problems,
        udev,
    }))
}

/// The block device name under `<device>/block/` ("sda"), or under `block:sda` on old kernels.
fn block_name(dir: &Path) -> Result<Option<String>> {
    if let Ok(entries) = fs::read_dir(dir.join("block")) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        return Ok(names.into_iter().next());
    }
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("block:")
                .map(str::to_string)
        })
        .next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::diskref::{OsDisk, data_disks};

    fn capture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/scsi")
            .join(name)
    }

    /// Every line of expected/summary.tsv: the ID scsi_id printed, or none.
    fn expected(name: &str) -> Vec<(String, String, Option<String>)> {
        let text = fs::read_to_string(capture(name).join("expected/summary.tsv")).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let id = (f[10] == "0").then(|| f[9].to_string());
                (f[0].to_string(), f[2].to_string(), id)
            })
            .collect()
    }

    #[test]
    fn the_os_disk_is_known_by_name_and_by_id() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roots/healthy");
        let mut disks = list_disks(&root).unwrap();
        let os = OsDisk::identify(&root, "sda", &disks);
        assert_eq!(
            os.id.as_deref(),
            Some("36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0")
        );
        let names = |v: Vec<&ScsiDisk>| v.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(data_disks(&disks, &os)), ["sdb", "sdc", "sdd"]);
        // A second path to the OS disk's LU is the OS disk, not a data disk.
        let mut second = disks[0].clone();
        second.name = "sde".into();
        disks.push(second);
        assert_eq!(names(data_disks(&disks, &os)), ["sdb", "sdc", "sdd"]);
        assert!(os.is_named("sde", &disks) && !os.is_named("sdb", &disks));
        // Without an ID only the name counts (no None == None match).
        let unnamed = OsDisk {
            name: "sda".into(),
            id: None,
        };
        disks.iter_mut().for_each(|d| d.id = None);
        assert_eq!(data_disks(&disks, &unnamed).len(), 4);
    }

    #[test]
    fn matches_scsi_id_on_every_capture() {
        for cap in ["vmware-like", "no-uuid", "mixed"] {
            let disks = list_disks(&capture(cap)).unwrap();
            let want: Vec<_> = expected(cap)
                .into_iter()
                .filter(|(_, ty, _)| ty == "0")
                .collect();
            assert_eq!(disks.len(), want.len(), "{cap}: {disks:#?}");
            for (dev, _, id) in want {
                let d = disks.iter().find(|d| d.name == dev).unwrap();
                assert_eq!(d.id, id, "{cap}/{dev}");
            }
        }
    }

    #[test]
    fn follows_symlinks_copied_as_files() {
        let d = tempfile::tempdir().unwrap();
        let dev = d.path().join("sys/devices/h0/t0/0:0:0:0");
        fs::create_dir_all(dev.join("block/sda")).unwrap();
        fs::create_dir_all(d.path().join("sys/bus/scsi/devices")).unwrap();
        fs::write(dev.join("type"), "0\n").unwrap();
        fs::write(dev.join("block/sda/dev"), "8:0\n").unwrap();
        fs::write(
            d.path().join("sys/bus/scsi/devices/0:0:0:0"),
            "../../../devices/h0/t0/0:0:0:0",
        )
        .unwrap();
        let disks = list_disks(d.path()).unwrap();
        assert_eq!(disks.len(), 1);
        assert_eq!(disks[0].id, None);
    }

    #[test]
    fn finds_disks_through_sys_block_alone() {
        let d = tempfile::tempdir().unwrap();
        let cap = capture("vmware-like");
        // Only sys/block links and the device folders, as a partial capture might hold.
        let copy = |rel: &str| {
            crate::external::Tool::new("cp", "coreutils", "coreutils")
                .run([
                    std::ffi::OsStr::new("-a"),
                    cap.join(rel).as_os_str(),
                    d.path().join(rel).parent().unwrap().as_os_str(),
                ])
                .unwrap();
        };
        fs::create_dir_all(d.path().join("sys")).unwrap();
        copy("sys/block");
        copy("sys/devices");
        let disks = list_disks(d.path()).unwrap();
        let ids: Vec<_> = disks.iter().map(|d| d.id.clone().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "36000c29a1b2c3d4e",
                "36000c2955f0e7a11",
                "36000c29d8e21b3c7"
            ]
        );
    }

    #[test]
    fn reads_the_facts_of_a_vmware_like_disk() {
        let disks = list_disks(&capture("vmware-like")).unwrap();
        let a = &disks[0];
        assert_eq!((a.hctl.as_str(), a.name.as_str()), ("0:0:0:0", "sda"));
        assert_eq!(
            (a.vendor.as_str(), a.model.as_str(), a.rev.as_str()),
            ("VMware", "Virtual disk", "2.0")
        );
        assert_eq!(a.size_bytes, 16 << 30);
        assert_eq!(a.serial.as_deref(), Some("6000c29a1b2c3d4e"));
        assert_eq!(a.id_source, IdSource::Naa(6));
        assert!(!a.weak);
        assert_eq!(a.wwid.as_deref(), Some("naa.6000c29a1b2c3d4e"));
        assert_eq!(a.designators, ["lu:naa.6000c29a1b2c3d4e"]);
        // QEMU's NAA 6 is 8 bytes; SPC-4 (and sg_vpd) want 16: reported, still used.
        assert_eq!(a.vpd_problems.len(), 1, "{:?}", a.vpd_problems);
    }

    #[test]
    fn fallbacks_of_the_mixed_capture() {
        let disks = list_disks(&capture("mixed")).unwrap();
        let names: Vec<_> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sda", "sdb", "sdc"], "sr0 is a CD-ROM, not a disk");
        assert_eq!(disks[0].id_source, IdSource::VendorSpecific);
        assert!(disks[0].weak);
        assert_eq!(disks[1].id_source, IdSource::Naa(5));
        assert!(
            disks[1]
                .designators
                .iter()
                .any(|d| d == "port:naa.5000c500a1b2c3d5")
        );
        assert!(disks[2].weak);
    }
}
