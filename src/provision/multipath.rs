//! `/etc/multipath.conf`: every data disk mapped as `/dev/mapper/<SCSI ID>`, the OS disk and
//! devices that are never data disks blacklisted.
//!
//! CentOS 6.6 ships no multipath.conf (device-mapper-multipath installs only examples under
//! /usr/share/doc until `mpathconf --enable` writes one), so mtkit owns the whole file.

use std::path::Path;

pub const PATH: &str = "etc/multipath.conf";

/// How the OS disk is named in the blacklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsDiskId {
    /// The WWID multipath derives from VPD page 0x83 (`3` + NAA hex for VMware disks).
    Wwid { disk: String, wwid: String },
    /// No readable ID (disk.EnableUUID off, no sysfs under root): blacklist by kernel name.
    Devnode { disk: String },
}

impl OsDiskId {
    /// The ID scsi_id gives the disk (`host::scsi`, what multipath names maps by); else the
    /// kernel's `<root>/sys/block/<disk>/device/wwid`; else the kernel name.
    pub fn read(root: &Path, disk: &str) -> OsDiskId {
        let scsi_id = match crate::host::scsi::list_disks(root) {
            Ok(disks) => disks
                .into_iter()
                .find(|d| d.name == disk)
                .and_then(|d| d.id),
            Err(e) => {
                tracing::debug!("reading SCSI disks under {}: {e:#}", root.display());
                None
            }
        };
        let wwid = scsi_id.or_else(|| {
            let p = root.join("sys/block").join(disk).join("device/wwid");
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| multipath_wwid(t.trim()))
        });
        match wwid {
            Some(wwid) => OsDiskId::Wwid {
                disk: disk.into(),
                wwid,
            },
            None => OsDiskId::Devnode { disk: disk.into() },
        }
    }
}

/// The sysfs `wwid` (`naa.6000c29...`) as multipath/scsi_id print it (`36000c29...`):
/// the designator type digit (3 NAA, 2 EUI-64) followed by the identifier in hex.
pub fn multipath_wwid(sysfs: &str) -> Option<String> {
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

/// The wanted file text.
pub fn render(os: &OsDiskId) -> String {
    let os_line = match os {
        OsDiskId::Wwid { disk, wwid } => {
            format!("    # the OS disk ({disk})\n    wwid \"{wwid}\"\n")
        }
        OsDiskId::Devnode { disk } => format!(
            "    # the OS disk, by name: no SCSI ID readable (set disk.EnableUUID = \"TRUE\")\n    devnode \"^{disk}[0-9]*$\"\n"
        ),
    };
    format!(
        "# Written by mtkit apply: every replicated target disk appears as
# /dev/mapper/<SCSI ID>. Edit appliance.toml and run `mtkit apply` again
# rather than this file.

defaults {{
    # Name maps by WWID, not mpathN, so names match the SCSI IDs the
    # configuration server knows.
    user_friendly_names no
    # VMware disks have a single path; map them anyway.
    find_multipaths no
}}

blacklist {{
{os_line}    # devices that are never data disks (RAM disks, loops, CD-ROMs, tapes,
    # device-mapper, md, and the installer's own)
    devnode \"^(ram|raw|loop|fd|md|dm-|sr|scd|st)[0-9]*\"
    devnode \"^hd[a-z]\"
    devnode \"^cciss!c[0-9]d[0-9]*\"
}}
"
    )
}

/// New text for multipath.conf, or `None` when it is already right.
pub fn plan(current: Option<&str>, os: &OsDiskId) -> Option<String> {
    let wanted = render(os);
    (current != Some(wanted.as_str())).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_wwid_becomes_multipath_name() {
        assert_eq!(
            multipath_wwid("naa.6000C29A1B2C3D4E5F60718293A4B5C6").as_deref(),
            Some("36000c29a1b2c3d4e5f60718293a4b5c6")
        );
        assert_eq!(multipath_wwid("t10.ATA     VBOX HARDDISK"), None);
        assert_eq!(multipath_wwid("naa."), None);
    }

    #[test]
    fn blacklists_by_wwid_when_known_else_by_devnode() {
        let by_id = render(&OsDiskId::Wwid {
            disk: "sda".into(),
            wwid: "36000c29aa".into(),
        });
        assert!(by_id.contains("    wwid \"36000c29aa\"\n"));
        assert!(!by_id.contains("^sda"));
        let by_name = render(&OsDiskId::Devnode { disk: "sda".into() });
        assert!(by_name.contains("devnode \"^sda[0-9]*$\""));
        for t in [&by_id, &by_name] {
            assert!(t.contains("user_friendly_names no"));
            assert!(t.contains("find_multipaths no"));
            assert!(t.contains(r#"devnode "^cciss!c[0-9]d[0-9]*""#));
        }
    }

    #[test]
    fn sysfs_wwid_is_read_through_root() {
        let d = tempfile::tempdir().unwrap();
        let dev = d.path().join("sys/block/sda/device");
        std::fs::create_dir_all(&dev).unwrap();
        assert_eq!(
            OsDiskId::read(d.path(), "sda"),
            OsDiskId::Devnode { disk: "sda".into() }
        );
        std::fs::write(dev.join("wwid"), "naa.6000c2900000000000000000000000aa\n").unwrap();
        assert_eq!(
            OsDiskId::read(d.path(), "sda"),
            OsDiskId::Wwid {
                disk: "sda".into(),
                wwid: "36000c2900000000000000000000000aa".into()
            }
        );
    }

    #[test]
    fn planning_twice_changes_nothing() {
        let os = OsDiskId::Devnode { disk: "sda".into() };
        let first = plan(None, &os).unwrap();
        assert_eq!(plan(Some(&first), &os), None);
    }
}
