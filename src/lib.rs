//! mtkit: builds and runs a disaster-recovery master target appliance.
//!
//! Host side: `config` → `kickstart` → `media`, gathered by `build` (the main job).
//! In the guest: `host` facts, `doctor` checks, `provision` (apply), `retention`
//! volumes, and the `writer` service that receives replication over NBD.

pub mod build;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod external;
pub mod files;
pub mod host;
pub mod kickstart;
pub mod media;
pub mod provision;
pub mod retention;
pub mod template;
pub mod vmx;
pub mod writer;
