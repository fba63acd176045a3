//! The retention volume rules, evaluated over collected facts (Linux block devices and
//! Windows `R:` alike): pure, so every rule is tested without a device.

use serde::Serialize;
use std::path::PathBuf;

/// The label `prepare` gives the filesystem; also how a prepared volume is recognized.
pub const LABEL: &str = "mt-retention";

/// What is known about a candidate volume.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VolumeFacts {
    /// `/dev/loop3`, `R:`.
    pub name: String,
    pub exists: bool,
    pub size: u64,
    /// Lowercase filesystem type (`ext4`, `xfs`, `vfat`, `ntfs`, `swap`, `lvm2_member`).
    pub filesystem: Option<String>,
    /// FAT flavour when the probe tells it (`FAT32`).
    pub fs_version: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// `dos`, `gpt`: a partition table on the device.
    pub partition_table: Option<String>,
    /// Where the device or one of its partitions is mounted (as the host sees it).
    pub mounts: Vec<PathBuf>,
    /// Active swap (in /proc/swaps), the device or a partition.
    pub active_swap: bool,
    /// Kernel devices stacked on it (`dm-0`, `md127`), the device or a partition.
    pub holders: Vec<String>,
    /// `Some(false)` when an O_EXCL open failed with EBUSY; `None` when not tried.
    pub exclusive_open: Option<bool>,
    /// Why it counts as the OS disk (Linux `[disks] os-disk`, root fs; Windows system/boot).
    pub os_disk: Option<String>,
    /// The volume holding the mtkit install or its working files (the "cache volume").
    pub install_volume: Option<String>,
    /// The `[[writer.disk]]` it is, when it is one (or a replication target on Windows).
    pub writer_target: Option<String>,
    /// BitLocker: locked (Windows).
    pub locked: bool,
    /// Free bytes when mounted at the retention mountpoint.
    pub free: Option<u64>,
    /// A probe that could not be read (blkid failed): refuse rather than guess.
    pub probe_error: Option<String>,
    /// Whether its filesystem survives a power cut whole (`None`: not judged here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_safety: Option<crate::host::crashsafe::Judgement>,
    /// Facts that could not be collected here (no device nodes under a fixture root): the
    /// rules that need them are not judged, and callers say so.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
    /// Filesystems that count as prepared (`ext4`/`xfs` on Linux, `ntfs`/`refs` on Windows).
    #[serde(skip)]
    pub allowed_fs: Vec<&'static str>,
    /// The volume is used as it is (Windows R:), never formatted by mtkit: its filesystem
    /// must already be an allowed one.
    #[serde(skip)]
    pub used_as_is: bool,
}

/// What the rules are checked against.
#[derive(Debug, Clone)]
pub struct Requirements {
    pub min_size: u64,
    /// The retention mountpoint as the host sees it: being mounted there is fine.
    pub mountpoint: Option<PathBuf>,
    /// `prepare --force`: a partition table or filesystem with data may be overwritten.
    pub force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub volume: String,
    pub ok: bool,
    /// Already formatted with an allowed filesystem and our label, or mounted at the
    /// retention mountpoint with an allowed filesystem: nothing to format.
    pub prepared: bool,
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.ok)
    }
}

/// A size for messages: exact units when it has them (`100G`), else GiB with a decimal.
pub fn human(bytes: u64) -> String {
    use crate::config::Size;
    if bytes.is_multiple_of(Size::MIB) || bytes < Size::MIB {
        Size(bytes).to_string()
    } else {
        format!("{:.1}G", bytes as f64 / Size::GIB as f64)
    }
}

/// True for FAT12/16/32 and exFAT signatures, as blkid or Windows name them.
pub fn is_fat(fs: &str) -> bool {
    matches!(
        fs.to_ascii_lowercase().as_str(),
        "vfat" | "fat" | "fat12" | "fat16" | "fat32" | "msdos" | "exfat"
    )
}

/// What to do about a failed rule (the remedy `mtkit doctor` shows).
pub fn remedy(rule: &str) -> &'static str {
    match rule {
        "exists" => "attach a retention disk, then mtkit retention prepare DEVICE",
        "probe" => "see why blkid -p cannot read the device's signatures",
        "size" | "min-size" => {
            "attach a retention disk of at least [retention] min-size and run mtkit retention \
             prepare DEVICE (or lower min-size in appliance.toml)"
        }
        "not-mounted" => "unmount it from the other mountpoints",
        "not-fat" => {
            "FAT cannot hold the journal: unmount it, then mtkit retention prepare DEVICE \
             --fs ext4 --force"
        }
        "filesystem" => "format R: as NTFS or ReFS",
        "crash-safe" => crate::host::crashsafe::REMEDY,
        "not-locked" => "unlock the volume (Unlock-BitLocker) or use another one",
        "no-data" => "use an empty disk, or mtkit retention prepare DEVICE --force to wipe it",
        "space" => {
            "free space on the retention volume or attach a larger one (the estimate: 10% of \
             the target disks per day, over [policy] retention)"
        }
        _ => "give retention a disk of its own: mtkit retention prepare DEVICE",
    }
}

/// Evaluates every rule; a volume is eligible when all pass.
pub fn evaluate(f: &VolumeFacts, req: &Requirements) -> Verdict {
    let mut out = Vec::new();
    let mut check = |rule: &'static str, ok: bool, detail: String| {
        out.push(Finding { rule, ok, detail });
    };
    if !f.exists {
        check("exists", false, format!("{} does not exist", f.name));
        return Verdict {
            volume: f.name.clone(),
            ok: false,
            prepared: false,
            findings: out,
        };
    }
    check("exists", true, format!("{} exists", f.name));
    let fs = f.filesystem.as_deref().unwrap_or("");
    let allowed = f.allowed_fs.iter().any(|a| a.eq_ignore_ascii_case(fs));
    let at_mountpoint = req
        .mountpoint
        .as_ref()
        .is_some_and(|m| f.mounts.iter().any(|x| x == m));
    let prepared = allowed && (f.label.as_deref() == Some(LABEL) || at_mountpoint);

    if let Some(e) = &f.probe_error {
        check("probe", false, format!("cannot read its signatures: {e}"));
    }
    check(
        "size",
        f.size > 0,
        if f.size > 0 {
            format!("capacity {}", human(f.size))
        } else {
            "capacity is zero".into()
        },
    );
    check(
        "min-size",
        f.size >= req.min_size,
        format!(
            "capacity {} {} [retention] min-size {}",
            human(f.size),
            if f.size >= req.min_size { ">=" } else { "<" },
            human(req.min_size)
        ),
    );
    // Mounts, swap and stacked devices are Linux notions; Windows facts do not have them.
    if !f.used_as_is {
        let elsewhere: Vec<String> = f
            .mounts
            .iter()
            .filter(|m| Some(*m) != req.mountpoint.as_ref())
            .map(|m| m.display().to_string())
            .collect();
        check(
            "not-mounted",
            elsewhere.is_empty(),
            if elsewhere.is_empty() {
                "not mounted elsewhere".into()
            } else {
                format!("mounted at {}", elsewhere.join(", "))
            },
        );
        let swap = f.active_swap || fs == "swap";
        check(
            "not-swap",
            !swap,
            if f.active_swap {
                "in use as swap".into()
            } else if swap {
                "holds a swap signature".into()
            } else {
                "not swap".into()
            },
        );
        check(
            "not-lvm-pv",
            fs != "lvm2_member",
            if fs == "lvm2_member" {
                "is an LVM physical volume".into()
            } else {
                "not an LVM PV".into()
            },
        );
        check(
            "not-md-member",
            fs != "linux_raid_member",
            if fs == "linux_raid_member" {
                "is an md RAID member".into()
            } else {
                "not an md member".into()
            },
        );
        check(
            "not-held",
            f.holders.is_empty(),
            if f.holders.is_empty() {
                "no device-mapper or md device on it".into()
            } else {
                format!("held by {}", f.holders.join(", "))
            },
        );
    }
    check(
        "not-os-disk",
        f.os_disk.is_none(),
        f.os_disk
            .clone()
            .unwrap_or_else(|| "not the OS disk".into()),
    );
    check(
        "not-install-volume",
        f.install_volume.is_none(),
        f.install_volume
            .clone()
            .unwrap_or_else(|| "does not hold the mtkit install (cache volume)".into()),
    );
    check(
        "not-writer-target",
        f.writer_target.is_none(),
        match &f.writer_target {
            Some(t) => format!("is the writer target disk {t}"),
            None => "not a writer target disk".into(),
        },
    );
    if f.locked {
        check("not-locked", false, "BitLocker-locked".into());
    }
    match f.exclusive_open {
        Some(false) if !at_mountpoint => check(
            "exclusive-open",
            false,
            "cannot be opened exclusively (O_EXCL): another program holds it".into(),
        ),
        Some(_) => check("exclusive-open", true, "can be opened exclusively".into()),
        None => {}
    }
    let fat = is_fat(fs);
    let fat_name = f.fs_version.clone().unwrap_or_else(|| fs.to_uppercase());
    check(
        "not-fat",
        !fat || req.force,
        if fat {
            format!("filesystem is {fat_name}, never a retention volume (--force reformats it)")
        } else {
            "not FAT".into()
        },
    );
    if f.used_as_is {
        let names = f
            .allowed_fs
            .iter()
            .map(|n| match *n {
                "ntfs" => "NTFS",
                "refs" => "ReFS",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(" or ");
        check(
            "filesystem",
            allowed,
            if allowed {
                format!("filesystem is {}", f.fs_version.as_deref().unwrap_or(fs))
            } else if fs.is_empty() || fs == "unknown" || fs == "raw" {
                format!("no readable filesystem (RAW or locked): must be {names}")
            } else {
                format!(
                    "filesystem is {}: must be {names}",
                    f.fs_version.as_deref().unwrap_or(fs)
                )
            },
        );
        let ok = out.iter().all(|x| x.ok);
        return Verdict {
            volume: f.name.clone(),
            ok,
            prepared: allowed,
            findings: out,
        };
    }
    // A prepared volume is kept as it is: its filesystem must hold the journal whole across
    // a power cut (an ext4 made without has_journal passes every other rule).
    if let Some(j) = f.crash_safety.as_ref().filter(|_| prepared) {
        check(
            "crash-safe",
            j.is_safe(),
            format!("{}: {}", j.filesystem, j.why),
        );
    }
    // Data that a format would destroy: a partition table, or a filesystem that is not a
    // prepared retention volume. Swap, PV and FAT have their own rules above.
    let other_fs = !fs.is_empty()
        && !prepared
        && !fat
        && !matches!(fs, "swap" | "lvm2_member" | "linux_raid_member");
    let data = if let Some(pt) = &f.partition_table {
        Some(format!("holds a {pt} partition table"))
    } else if other_fs {
        Some(format!(
            "holds a {fs} filesystem{}",
            f.label
                .as_deref()
                .map(|l| format!(" labelled {l}"))
                .unwrap_or_default()
        ))
    } else {
        None
    };
    check(
        "no-data",
        data.is_none() || req.force,
        match data {
            Some(d) if req.force => format!("{d}: --force, it will be overwritten"),
            Some(d) => format!("{d}; use --force to overwrite it"),
            None if prepared => format!("{fs} retention filesystem"),
            None => "no partition table or filesystem".into(),
        },
    );
    let ok = out.iter().all(|x| x.ok);
    Verdict {
        volume: f.name.clone(),
        ok,
        prepared,
        findings: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> VolumeFacts {
        VolumeFacts {
            name: "/dev/sdb".into(),
            exists: true,
            size: 2 << 40,
            exclusive_open: Some(true),
            allowed_fs: vec!["ext4", "xfs"],
            ..VolumeFacts::default()
        }
    }

    fn req() -> Requirements {
        Requirements {
            min_size: 1 << 40,
            mountpoint: Some("/mnt/retention".into()),
            force: false,
        }
    }

    fn failed(f: &VolumeFacts, r: &Requirements) -> Vec<&'static str> {
        evaluate(f, r).failures().map(|x| x.rule).collect()
    }

    #[test]
    fn a_blank_disk_passes() {
        let v = evaluate(&blank(), &req());
        assert!(v.ok, "{v:?}");
        assert!(!v.prepared);
    }

    #[test]
    fn each_use_is_refused_with_its_rule() {
        let cases: Vec<(VolumeFacts, &str)> = vec![
            (
                VolumeFacts {
                    mounts: vec!["/srv".into()],
                    ..blank()
                },
                "not-mounted",
            ),
            (
                VolumeFacts {
                    active_swap: true,
                    ..blank()
                },
                "not-swap",
            ),
            (
                VolumeFacts {
                    filesystem: Some("swap".into()),
                    ..blank()
                },
                "not-swap",
            ),
            (
                VolumeFacts {
                    filesystem: Some("lvm2_member".into()),
                    ..blank()
                },
                "not-lvm-pv",
            ),
            (
                VolumeFacts {
                    filesystem: Some("linux_raid_member".into()),
                    ..blank()
                },
                "not-md-member",
            ),
            (
                VolumeFacts {
                    holders: vec!["dm-3".into()],
                    ..blank()
                },
                "not-held",
            ),
            (
                VolumeFacts {
                    os_disk: Some("is the OS disk sda".into()),
                    ..blank()
                },
                "not-os-disk",
            ),
            (
                VolumeFacts {
                    install_volume: Some("holds /usr/local/sbin/mtkit".into()),
                    ..blank()
                },
                "not-install-volume",
            ),
            (
                VolumeFacts {
                    writer_target: Some("vm1-disk0".into()),
                    ..blank()
                },
                "not-writer-target",
            ),
            (
                VolumeFacts {
                    exclusive_open: Some(false),
                    ..blank()
                },
                "exclusive-open",
            ),
            (
                VolumeFacts {
                    filesystem: Some("vfat".into()),
                    fs_version: Some("FAT32".into()),
                    ..blank()
                },
                "not-fat",
            ),
            (VolumeFacts { size: 0, ..blank() }, "size"),
            (
                VolumeFacts {
                    size: 1 << 30,
                    ..blank()
                },
                "min-size",
            ),
            (
                VolumeFacts {
                    partition_table: Some("gpt".into()),
                    ..blank()
                },
                "no-data",
            ),
            (
                VolumeFacts {
                    filesystem: Some("ext4".into()),
                    label: Some("data".into()),
                    ..blank()
                },
                "no-data",
            ),
            (
                VolumeFacts {
                    locked: true,
                    ..blank()
                },
                "not-locked",
            ),
            (
                VolumeFacts {
                    exists: false,
                    ..blank()
                },
                "exists",
            ),
        ];
        for (facts, rule) in cases {
            let f = failed(&facts, &req());
            assert!(f.contains(&rule), "{rule}: {f:?}");
        }
    }

    #[test]
    fn force_allows_overwriting_data_but_not_a_mounted_volume() {
        let r = Requirements {
            force: true,
            ..req()
        };
        let data = VolumeFacts {
            filesystem: Some("ext4".into()),
            ..blank()
        };
        assert!(evaluate(&data, &r).ok);
        let mounted = VolumeFacts {
            mounts: vec!["/srv".into()],
            ..data
        };
        assert_eq!(failed(&mounted, &r), ["not-mounted"]);
    }

    #[test]
    fn a_prepared_volume_mounted_at_the_mountpoint_passes() {
        let f = VolumeFacts {
            filesystem: Some("ext4".into()),
            label: Some(LABEL.into()),
            mounts: vec!["/mnt/retention".into()],
            exclusive_open: Some(false),
            ..blank()
        };
        let v = evaluate(&f, &req());
        assert!(v.ok && v.prepared, "{v:?}");
    }
}
