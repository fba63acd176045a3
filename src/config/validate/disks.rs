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
