//! The udev database entry of a block device under a root: `run/udev/data/b<major>:<minor>`
//! (systemd's udev) or `dev/.udev/db/block:<name>` (udev 147 of CentOS 6), both text lines
//! such as `E:ID_SERIAL=...`; or libudev on the live system.

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The properties mtkit uses from udev's database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UdevProps {
    pub id_serial: Option<String>,
    pub id_serial_short: Option<String>,
    pub id_wwn: Option<String>,
    pub id_wwn_with_extension: Option<String>,
    /// The links udev made for it under /dev (`disk/by-id/scsi-3600...`), from `S:` lines;
    /// not printed: `mtkit scsi-ids` shows IDs, and the links follow from them.
    #[serde(skip)]
    pub links: Vec<String>,
}

impl UdevProps {
    fn from_map(m: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| m.get(k).filter(|v| !v.is_empty()).cloned();
        UdevProps {
            id_serial: get("ID_SERIAL"),
            id_serial_short: get("ID_SERIAL_SHORT"),
            id_wwn: get("ID_WWN"),
            id_wwn_with_extension: get("ID_WWN_WITH_EXTENSION"),
            links: Vec::new(),
        }
    }
}

/// Parses a udev database file: one record per line, a one-letter tag, ':', the value;
/// `E:` lines are `KEY=VALUE` properties. Other tags (S: symlinks, I: init time, G: tags,
/// L: priority, W: watch, V: version) are skipped.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `S:` lines of a udev database file: links under /dev, without the `/dev/`.
pub fn links(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("S:"))
        .map(str::to_string)
        .collect()
}

/// Reads the database entry of block device `major:minor` under `root`; `None` when udev
/// keeps none there (udevd not running, an old udev with another layout, a fixture without).
pub fn read(root: &Path, major: u32, minor: u32, name: &str) -> Result<Option<UdevProps>> {
    #[cfg(feature = "udev")]
    if root == Path::new("/")
        && let Some(p) = live(major, minor)
    {
        return Ok(Some(p));
    }
    for path in [
        root.join(format!("run/udev/data/b{major}:{minor}")),
        root.join(format!("dev/.udev/db/block:{name}")),
    ] {
        // udev 147 stores an entry without properties as a symlink whose target is
        // "<node> <link>..." (libudev-device-private.c, udev_device_update_db): known to
        // udev, no IDs. Never followed: under --root it could lead out of the root.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Ok(Some(UdevProps::default()));
        }
        match crate::files::read_text(&path) {
            Ok(text) => {
                let mut p = UdevProps::from_map(&parse(&text));
                p.links = links(&text);
                return Ok(Some(p));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(None)
}

/// libudev's view of the device on the running system.
#[cfg(feature = "udev")]
fn live(major: u32, minor: u32) -> Option<UdevProps> {
    let devnum = nix::sys::stat::makedev(major.into(), minor.into());
    let dev = udev::Device::from_devnum(udev::DeviceType::Block, devnum).ok()?;
    let m: BTreeMap<String, String> = dev
        .properties()
        .map(|p| {
            (
                p.name().to_string_lossy().into_owned(),
                p.value().to_string_lossy().into_owned(),
            )
        })
        .collect();
    // A device udev never processed has no ID_* keys: fall back to the file (same answer).
    m.contains_key("ID_SERIAL").then(|| UdevProps::from_map(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped exactly like /run/udev/data/b8:16 written by udev 252 for a SCSI disk.
    const REAL: &str = "S:disk/by-id/scsi-35000c500a1b2c3d4
S:disk/by-id/wwn-0x5000c500a1b2c3d4
S:disk/by-path/pci-0000:00:02.0-scsi-0:0:1:0
S:disk/by-diskseq/2
I:3061420
E:ID_SCSI=1
E:ID_VENDOR=QEMU
E:ID_VENDOR_ENC=QEMU\\x20\\x20\\x20\\x20
E:ID_MODEL=QEMU_HARDDISK
E:ID_MODEL_ENC=QEMU\\x20HARDDISK\\x20\\x20\\x20
E:ID_REVISION=2.5+
E:ID_TYPE=disk
E:ID_SERIAL=35000c500a1b2c3d4
E:ID_SERIAL_SHORT=5000c500a1b2c3d4
E:ID_WWN=0x5000c500a1b2c3d4
E:ID_WWN_WITH_EXTENSION=0x5000c500a1b2c3d4
E:ID_BUS=scsi
E:ID_PATH=pci-0000:00:02.0-scsi-0:0:1:0
E:ID_PATH_TAG=pci-0000_00_02_0-scsi-0_0_1_0
G:systemd
Q:systemd
V:1
";

    #[test]
    fn parses_the_properties_of_a_real_entry() {
        let m = parse(REAL);
        assert_eq!(m["ID_MODEL_ENC"], "QEMU\\x20HARDDISK\\x20\\x20\\x20");
        let p = UdevProps::from_map(&m);
        assert_eq!(p.id_serial.as_deref(), Some("35000c500a1b2c3d4"));
        assert_eq!(p.id_wwn.as_deref(), Some("0x5000c500a1b2c3d4"));
        assert!(!m.contains_key("disk/by-id/scsi-35000c500a1b2c3d4"));
        assert_eq!(
            links(REAL)[..2],
            [
                "disk/by-id/scsi-35000c500a1b2c3d4",
                "disk/by-id/wwn-0x5000c500a1b2c3d4"
            ]
        );
    }

    #[test]
    fn reads_under_a_root_and_tolerates_absence() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path(), 8, 16, "sdb").unwrap(), None);
        std::fs::create_dir_all(d.path().join("run/udev/data")).unwrap();
        std::fs::write(d.path().join("run/udev/data/b8:16"), REAL).unwrap();
        let p = read(d.path(), 8, 16, "sdb").unwrap().unwrap();
        assert_eq!(p.id_serial_short.as_deref(), Some("5000c500a1b2c3d4"));
        std::fs::create_dir_all(d.path().join("dev/.udev/db")).unwrap();
        std::fs::write(
            d.path().join("dev/.udev/db/block:sdc"),
            "N:sdc\nE:ID_SERIAL=3600a\n",
        )
        .unwrap();
        let p = read(d.path(), 8, 32, "sdc").unwrap().unwrap();
        assert_eq!(p.id_serial.as_deref(), Some("3600a"));
        // udev 147's link form: a device with no stored property; its target is not a path.
        std::os::unix::fs::symlink(
            "sdd disk/by-path/x",
            d.path().join("dev/.udev/db/block:sdd"),
        )
        .unwrap();
        assert_eq!(
            read(d.path(), 8, 48, "sdd").unwrap(),
            Some(UdevProps::default())
        );
    }
}
