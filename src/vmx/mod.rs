//! VMware .vmx files: a lossless reader, the master target's checks, and the
//! disk.EnableUUID patch.

pub mod check;
pub mod parse;
pub mod patch;
