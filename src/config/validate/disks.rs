//! `[disks]`: the OS disk and its partition sizes, which must fit on it.

use super::locate::{Checker, path, q};
use crate::config::AutoSize;
use crate::config::Config;
use crate::config::Size;
use crate::config::partitions;
use crate::host::diskref::{DiskRef, is_kernel_name};

/// An OS disk named by kernel name, SCSI ID or link, each partition at least its minimum, and all of them on the disk.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let d = &c.disks;
    if let Some(msg) = os_disk_problem(&d.os_disk) {
        ck.report(&path(&["disks", "os-disk"]), q(&d.os_disk), msg);
    }
    if d.root_size < Size::from_gib(4) {
        ck.report(
            &path(&["disks", "root-size"]),
            q(&d.root_size.to_string()),
            "too small for CentOS 6 and its tools: at least \"4G\" (the default is \"40G\")",
        );
    }
    if d.home_size < Size::from_mib(100) {
        ck.report(
            &path(&["disks", "home-size"]),
            q(&d.home_size.to_string()),
            "at least \"100M\" (the default is \"4G\")",
        );
    }
    if let AutoSize::Fixed(s) = d.swap_size
        && s < Size(Size::MIB)
    {
        ck.report(
            &path(&["disks", "swap-size"]),
            q(&s.to_string()),
            "at least \"1M\", or \"auto\"",
        );
    }
    if let AutoSize::Fixed(s) = d.var_crash_size
        && s < c.appliance.memory
    {
        ck.report(
            &path(&["disks", "var-crash-size"]),
            q(&s.to_string()),
            format!(
                "a vmcore of this machine's memory ({}) does not fit: use \"auto\" ({}) or at least {}",
                c.appliance.memory,
                partitions::auto_var_crash(c.appliance.memory),
                q(&c.appliance.memory.to_string())
            ),
        );
    }
    let parts = || {
        partitions::partitions(c)
            .iter()
            .map(|p| format!("{} {}", p.mountpoint, Size::from_mib(p.size_mib)))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    match partitions::required(c) {
        None => ck.report(
            &path(&["disks", "os-disk-size"]),
            q(&d.os_disk_size.to_string()),
            format!(
                "the partitions ({}) add up to more than 16E, more than any disk: shrink them",
                parts()
            ),
        ),
        Some(need) if need > d.os_disk_size => ck.report(
            &path(&["disks", "os-disk-size"]),
            q(&d.os_disk_size.to_string()),
            format!(
                "the partitions need {need} ({} + {} for the partition table) but the OS \
                 disk is only {}: raise os-disk-size or shrink the partitions",
                parts(),
                partitions::SLACK,
                d.os_disk_size
            ),
        ),
        Some(_) => {}
    }
}

/// What is wrong with `[disks] os-disk`, if anything: it is a kernel disk name, a SCSI ID
/// as `mtkit scsi-ids` prints it, or a /dev/disk/by-id or /dev/disk/by-path link to a
/// whole disk.
fn os_disk_problem(v: &str) -> Option<String> {
    const FORMS: &str = "write the OS disk's SCSI ID as `mtkit scsi-ids` prints it, e.g. \
        \"36000c29a1b2c3d4e5f60718293a4b5c6\" (recommended: kernel names can change between \
        boots), a /dev/disk/by-id/ or /dev/disk/by-path/ link to it, or its kernel name, e.g. \
        \"sda\"";
    match DiskRef::parse(v) {
        Some(DiskRef::Kernel(_)) => None,
        // '#' would start a comment in the kickstart's ignoredisk line.
        Some(DiskRef::ScsiId(id)) if id.contains('#') => Some(
            "a SCSI ID with '#' cannot be named in the kickstart: use the OS disk's \
             /dev/disk/by-path/ link"
                .into(),
        ),
        Some(DiskRef::ScsiId(id)) => super::writer_disks::scsi_id_problem(&id),
        Some(DiskRef::Link(l)) if l.contains('#') => {
            Some("a link with '#' cannot be named in the kickstart: use its kernel name".into())
        }
        Some(DiskRef::Link(l)) => {
            let part = l
                .rsplit_once("-part")
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            part.then(|| {
                format!(
                    "a link to a partition: name the whole disk, e.g. {}",
                    q(l.rsplit_once("-part").map_or("", |(disk, _)| disk))
                )
            })
        }
        None => Some(match v.strip_prefix("/dev/") {
            Some(k) if is_kernel_name(k) => format!("not a disk name: write {} (no /dev/)", q(k)),
            _ => match super::writer_disks::scsi_id_problem(v) {
                // A SCSI ID in another form (the kernel's naa., vSphere's bare NAA).
                Some(m) if !m.starts_with("not a SCSI ID") => m,
                _ => format!("not a disk name: {FORMS}"),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::problems;

    fn os_disk(v: &str) -> Vec<String> {
        problems(&format!("[disks]\nos-disk = \"{v}\"\n"))
    }

    #[test]
    fn os_disk_takes_a_kernel_name_a_scsi_id_or_a_disk_link() {
        for ok in [
            "sda",
            "vdb",
            "nvme0n1",
            "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "SQEMU_QEMU_HARDDISK_drive-scsi0",
            "/dev/disk/by-id/scsi-36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "/dev/disk/by-id/wwn-0x6000c290f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:0:0",
        ] {
            assert_eq!(os_disk(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn os_disk_in_another_form_is_refused_with_the_right_one() {
        let at = "t.toml:2:11: [disks] os-disk = ";
        for (bad, want) in [
            (
                "/dev/sda",
                "\"/dev/sda\": not a disk name: write \"sda\" (no /dev/)",
            ),
            (
                "36000C290F1E2D3C",
                "\"36000C290F1E2D3C\": `mtkit scsi-ids` prints the hex digits in lowercase: \
                 write \"36000c290f1e2d3c\"",
            ),
            (
                "naa.6000c290f1e2d3c4",
                "\"naa.6000c290f1e2d3c4\": this is the kernel's wwid form: write \
                 \"36000c290f1e2d3c4\" as `mtkit scsi-ids` prints it",
            ),
            (
                "6000c290f1e2d3c4",
                "\"6000c290f1e2d3c4\": an NAA identifier without scsi_id's type digit: write \
                 \"36000c290f1e2d3c4\" as `mtkit scsi-ids` prints it",
            ),
            (
                "/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:0:0-part2",
                "\"/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:0:0-part2\": a link to a \
                 partition: name the whole disk, e.g. \
                 \"/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:0:0\"",
            ),
            (
                "3600a#1",
                "\"3600a#1\": a SCSI ID with '#' cannot be named in the kickstart",
            ),
            (
                "sda1",
                "\"sda1\": not a disk name: write the OS disk's SCSI ID",
            ),
            (
                "/dev/disk/by-label/MT",
                "\"/dev/disk/by-label/MT\": not a disk name",
            ),
        ] {
            let p = os_disk(bad);
            assert_eq!(p.len(), 1, "{bad}: {p:#?}");
            assert!(p[0].starts_with(&format!("{at}{want}")), "{bad}: {}", p[0]);
        }
    }
}
