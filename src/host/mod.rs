//! Facts about the machine read through a root folder: SCSI disks and IDs, block devices, mounts, OS release.
