//! `[retention]`: the volume that holds the journal (device, filesystem, mountpoint, size).

use super::locate::{Checker, path, q};
use crate::config::Config;

/// Filesystems a retention volume can be made with.
const RETENTION_FILESYSTEMS: &[&str] = &["ext4", "xfs"];

pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let r = &c.retention;
    let dev_ok = r.device == "auto"
        || r.device.starts_with('/')
        || (!r.device.is_empty()
            && r.device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
    if !dev_ok {
        ck.report(
            &path(&["retention", "device"]),
            q(&r.device),
            "write \"auto\", a device path such as \"/dev/sdb\", or a SCSI ID such as \"36000c29...\"",
        );
    }
    if !RETENTION_FILESYSTEMS.contains(&r.filesystem.as_str()) {
        ck.report(
            &path(&["retention", "filesystem"]),
            q(&r.filesystem),
            "a retention volume is \"ext4\" or \"xfs\"",
        );
    }
    if !r.mountpoint.is_absolute() {
        ck.report(
            &path(&["retention", "mountpoint"]),
            q(&r.mountpoint.display().to_string()),
            "must be an absolute path, e.g. \"/mnt/retention\"",
        );
    }
    if r.min_size.bytes() == 0 {
        ck.report(
            &path(&["retention", "min-size"]),
            "\"0B\"",
            "must be above zero, e.g. \"1T\"",
        );
    }
}
