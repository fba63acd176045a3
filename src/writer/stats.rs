//! Per-disk request counters: written by the disks as they serve, read by the metrics
//! endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Histogram bucket upper bounds, seconds.
pub const BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The commands counted per disk.
pub const COMMANDS: [&str; 5] = ["read", "write", "write_zeroes", "trim", "flush"];

#[derive(Default)]
pub struct CommandStats {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) sum_us: AtomicU64,
    /// Non-cumulative counts per bucket; the last is +Inf.
    pub(crate) buckets: [AtomicU64; BUCKETS.len() + 1],
}

/// Counters of one disk, one entry per [`COMMANDS`].
#[derive(Default)]
pub struct DiskStats {
    pub commands: [CommandStats; COMMANDS.len()],
    /// Writes and write-zeroes that carried NBD_CMD_FLAG_FUA (the kernel client's REQ_FUA).
    pub fua: AtomicU64,
}

impl DiskStats {
    /// Times `f` and counts it under command `cmd` (an index into [`COMMANDS`]).
    pub fn observe<T, E>(
        &self,
        cmd: usize,
        bytes: u64,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let t0 = Instant::now();
        let r = f();
        let c = &self.commands[cmd];
        let secs = t0.elapsed().as_secs_f64();
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.sum_us.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        let b = BUCKETS
            .iter()
            .position(|&ub| secs <= ub)
            .unwrap_or(BUCKETS.len());
        c.buckets[b].fetch_add(1, Ordering::Relaxed);
        match &r {
            Ok(_) => {
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    /// Counts a write that asked for FUA.
    pub fn count_fua(&self, fua: bool) {
        if fua {
            self.fua.fetch_add(1, Ordering::Relaxed);
        }
    }
}
