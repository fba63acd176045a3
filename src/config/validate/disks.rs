//! `[disks]`: the OS disk and its partition sizes, which must fit on it.

use super::locate::{Checker, path, q};
use crate::config::AutoSize;
use crate::config::Config;
use crate::config::Size;
use crate::config::partitions;
use regex::Regex;
use std::sync::LazyLock;

/// A kernel disk name, each partition at least its minimum, and all of them on the disk.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let d = &c.disks;
    if !is_disk_name(&d.os_disk) {
        let hint = d
            .os_disk
            .strip_prefix("/dev/")
            .filter(|s| is_disk_name(s))
            .map(|s| format!("write \"{s}\" (no /dev/)"))
            .unwrap_or_else(|| {
                "write the kernel name of a whole disk, e.g. \"sda\", \"vda\", \"nvme0n1\"".into()
            });
        ck.report(
            &path(&["disks", "os-disk"]),
            q(&d.os_disk),
            format!("not a plain kernel disk name: {hint}"),
        );
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

/// A kernel disk name the kickstart can use: `sda`, `vdb`, `xvda`, `hda`, `nvme0n1`.
fn is_disk_name(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:(?:s|v|xv|h)d[a-z]{1,3}|nvme[0-9]+n[0-9]+)$").expect("regex")
    });
    RE.is_match(s)
}
