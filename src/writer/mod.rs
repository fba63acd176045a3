//! The master-target writer service: NBD server, block stores, undo journal, recovery points.
//!
//! The seam between the protocol and the storage is [`Export`] (one served disk, or a
//! read-only view of a disk at a point) and [`ExportResolver`] (how a name the client asks
//! for becomes an export, and who may open it). Under every export that writes a disk is
//! one block store, [`block::BlockFile`]: plain ([`FileExport`]) or under a group's
//! journal ([`journaled::JournaledDisk`]).

pub mod block;
pub mod export;
pub mod file_export;
pub mod nbd;

pub use export::{ClientInfo, Export, ExportInfo, ExportResolver, OpenError, WriteReq};
pub use file_export::FileExport;
pub mod access;
pub mod certs;
pub mod control;
pub mod daemon;
pub mod extents;
pub mod fds;
pub mod group;
pub mod journal;
pub mod journaled;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod recover;
pub mod service;
pub mod session;
pub mod stats;
pub mod targets;

/// A test hook for the crash tests, in debug builds only: with `MTKIT_TEST_PAUSE` set to
/// `<step prefix>:<milliseconds>` (several, comma-separated), each `step` that starts with
/// a prefix is logged on stderr ("mtkit test pause: <step>") and followed by that long a
/// sleep, so that a test can SIGKILL the process right after a chosen step of a change
/// made of several (a recover's steps, a commit's session removal, a prune's segment
/// removals). Release builds have no hook.
#[cfg(debug_assertions)]
pub(crate) fn test_pause(step: &str) {
    let Some(spec) = std::env::var_os("MTKIT_TEST_PAUSE") else {
        return;
    };
    let spec = spec.to_string_lossy();
    let ms = spec
        .split(',')
        .filter_map(|s| s.rsplit_once(':'))
        .find(|(prefix, _)| step.starts_with(prefix))
        .and_then(|(_, ms)| ms.parse().ok());
    if let Some(ms) = ms {
        eprintln!("mtkit test pause: {step}");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[cfg(not(debug_assertions))]
pub(crate) fn test_pause(_: &str) {}
