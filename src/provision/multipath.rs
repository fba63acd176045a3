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
    /// The OS disk `[disks] os-disk` names, as host::scsi resolves it (the ID multipath
    /// names maps by), else by kernel name. An os-disk that resolves to no disk or several
    /// is an error, except a SCSI ID, which multipath can blacklist as it is.
    pub fn read(
        root: &Path,
        configured: &str,
    ) -> Result<OsDiskId, crate::host::diskref::Unresolved> {
        use crate::host::diskref::OsDisk;
        match OsDisk::read(root, configured) {
            Ok(os) => Ok(OsDiskId::from(os)),
            Err(e) => match OsDisk::unresolved(configured) {
                os @ OsDisk { id: Some(_), .. } => Ok(OsDiskId::from(os)),
                _ => Err(e),
            },
        }
    }
}

impl From<crate::host::diskref::OsDisk> for OsDiskId {
    fn from(os: crate::host::diskref::OsDisk) -> OsDiskId {
        match os.id {
            Some(wwid) => OsDiskId::Wwid {
                disk: os.name,
                wwid,
            },
            None => OsDiskId::Devnode { disk: os.name },
        }
    }
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

/// True when `text` (a multipath.conf) blacklists the OS disk: a `wwid` line with its ID,
/// or a `devnode` line anchored on its name, inside the top-level `blacklist { }` section.
pub fn blacklists(text: &str, os: &OsDiskId) -> bool {
    let mut depth = 0i32;
    let mut in_blacklist = false;
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        let mut words = code.split_whitespace();
        let (key, value) = (words.next(), words.next().map(|v| v.trim_matches('"')));
        if depth == 0 && key == Some("blacklist") && code.ends_with('{') {
            in_blacklist = true;
        } else if in_blacklist && depth == 1 {
            let hit = match (os, key, value) {
                (OsDiskId::Wwid { wwid, .. }, Some("wwid"), Some(v)) => v == wwid,
                (
                    OsDiskId::Wwid { disk, .. } | OsDiskId::Devnode { disk },
                    Some("devnode"),
                    Some(v),
                ) => v.starts_with(&format!("^{disk}")),
                _ => false,
            };
            if hit {
                return true;
            }
        }
        depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
        if depth == 0 {
            in_blacklist = false;
        }
    }
    false
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
        use crate::host::scsi::id_from_sysfs_wwid;
        assert_eq!(
            id_from_sysfs_wwid("naa.6000C29A1B2C3D4E5F60718293A4B5C6").as_deref(),
            Some("36000c29a1b2c3d4e5f60718293a4b5c6")
        );
        assert_eq!(id_from_sysfs_wwid("t10.ATA     VBOX HARDDISK"), None);
        assert_eq!(id_from_sysfs_wwid("naa."), None);
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
            Ok(OsDiskId::Devnode { disk: "sda".into() })
        );
        std::fs::write(dev.join("wwid"), "naa.6000c2900000000000000000000000aa\n").unwrap();
        assert_eq!(
            OsDiskId::read(d.path(), "sda"),
            Ok(OsDiskId::Wwid {
                disk: "sda".into(),
                wwid: "36000c2900000000000000000000000aa".into()
            })
        );
        // By SCSI ID: that disk's name, whatever the kernel calls it this boot; an ID of
        // no disk is still blacklisted as it is, a link to no disk is an error.
        let healthy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roots/healthy");
        let id = "36000c29b2c3d4e5f60718293a4b5c6d7e8f90a1";
        assert_eq!(
            OsDiskId::read(&healthy, id),
            Ok(OsDiskId::Wwid {
                disk: "sdc".into(),
                wwid: id.into()
            })
        );
        assert_eq!(
            OsDiskId::read(d.path(), id),
            Ok(OsDiskId::Wwid {
                disk: id.into(),
                wwid: id.into()
            })
        );
        let e = OsDiskId::read(&healthy, "/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:7:0");
        assert!(e.is_err_and(|e| e.matches.is_empty()));
    }

    #[test]
    fn blacklist_of_the_os_disk_is_recognized() {
        let id = OsDiskId::Wwid {
            disk: "sda".into(),
            wwid: "36000c29aa".into(),
        };
        assert!(blacklists(&render(&id), &id));
        let name = OsDiskId::Devnode { disk: "sda".into() };
        assert!(blacklists(&render(&name), &name));
        // Unquoted, as hand-written files have it; not in blacklist_exceptions.
        assert!(blacklists("blacklist {\n  wwid 36000c29aa\n}\n", &id));
        assert!(!blacklists(
            "blacklist_exceptions {\n  wwid \"36000c29aa\"\n}\n",
            &id
        ));
        assert!(!blacklists(
            "defaults {\n}\nblacklist {\n  devnode \"^sdb\"\n}\n",
            &id
        ));
    }

    #[test]
    fn planning_twice_changes_nothing() {
        let os = OsDiskId::Devnode { disk: "sda".into() };
        let first = plan(None, &os).unwrap();
        assert_eq!(plan(Some(&first), &os), None);
    }
}
