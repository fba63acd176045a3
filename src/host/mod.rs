//! Facts about the machine read through a root folder: SCSI disks and IDs, block devices, mounts, OS release.

pub mod blockdev;
pub mod crashsafe;
pub mod diskref;
pub mod mounts;
pub mod release;
pub mod resources;
pub mod scsi;
pub mod scsi_id;
pub mod udevdb;
pub mod vpd;

use std::path::{Path, PathBuf};

/// `root` joined with a path of the system under it, absolute (`/dev/sdb`) or not.
pub fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}
