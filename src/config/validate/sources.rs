//! `[sources]`: the filesystems of the protected machines.

use super::locate::{Checker, element, q};
use crate::config::Config;

/// Filesystem names `[sources] filesystems` accepts: what protected Linux and Windows
/// machines run. Only `reiserfs` changes the build (ELRepo's kmod and utils).
pub const KNOWN_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "reiserfs", "btrfs", "vfat", "ntfs",
];

/// Every filesystem one mtkit knows.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    for (i, fs) in c.sources.filesystems.iter().enumerate() {
        if !KNOWN_FILESYSTEMS.contains(&fs.as_str()) {
            ck.report(
                &element(&["sources", "filesystems"], i),
                q(fs),
                format!(
                    "unknown filesystem: use one of {}",
                    KNOWN_FILESYSTEMS.join(", ")
                ),
            );
        }
    }
}
