//! Facts about the machine read through a root folder: SCSI disks and IDs, block devices, mounts, OS release.

pub mod blockdev;
pub mod mounts;
pub mod release;
pub mod resources;
pub mod scsi;
pub mod scsi_id;
pub mod udevdb;
pub mod vpd;
