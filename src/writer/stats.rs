//! Per-disk request counters: written by the disks as they serve, read by the metrics
//! endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Histogram bucket upper bounds, seconds.
pub const BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The NBD commands counted per disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Read,
    Write,
    WriteZeroes,
    Trim,
    Flush,
}

impl Command {
    /// Every command, in the order the metrics list them.
    pub const ALL: [Command; 5] = [
        Command::Read,
        Command::Write,
        Command::WriteZeroes,
        Command::Trim,
        Command::Flush,
    ];

    /// The `command` label of its metrics.
    pub fn name(self) -> &'static str {
        match self {
            Command::Read => "read",
            Command::Write => "write",
            Command::WriteZeroes => "write_zeroes",
            Command::Trim => "trim",
            Command::Flush => "flush",
        }
    }
}

#[derive(Default)]
pub struct CommandStats {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) sum_us: AtomicU64,
    /// Non-cumulative counts per bucket; the last is +Inf.
    pub(crate) buckets: [AtomicU64; BUCKETS.len() + 1],
}

/// Counters of one disk, one entry per [`Command`].
#[derive(Default)]
pub struct DiskStats {
    commands: [CommandStats; Command::ALL.len()],
    /// Writes and write-zeroes that carried NBD_CMD_FLAG_FUA (the kernel client's REQ_FUA).
    pub fua: AtomicU64,
}

impl DiskStats {
    /// The counters of `cmd`.
    pub fn command(&self, cmd: Command) -> &CommandStats {
        // ALL lists the variants in declaration order, so the discriminant is the index.
        &self.commands[cmd as usize]
    }

    /// Times `f` and counts it under `cmd`.
    pub fn observe<T, E>(
        &self,
        cmd: Command,
        bytes: u64,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let t0 = Instant::now();
        let r = f();
        self.record(cmd, bytes, t0.elapsed().as_secs_f64(), r.is_ok());
        r
    }

    /// Counts one request of `cmd` that took `secs` (`bytes` count when it succeeded).
    pub fn record(&self, cmd: Command, bytes: u64, secs: f64, ok: bool) {
        let c = self.command(cmd);
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.sum_us.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        let b = BUCKETS
            .iter()
            .position(|&ub| secs <= ub)
            .unwrap_or(BUCKETS.len());
        c.buckets[b].fetch_add(1, Ordering::Relaxed);
        if ok {
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
        } else {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_fua(&self, fua: bool) {
        if fua {
            self.fua.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_has_its_own_counters_and_label() {
        let s = DiskStats::default();
        for (i, c) in Command::ALL.into_iter().enumerate() {
            assert_eq!(Command::ALL[c as usize], c, "ALL is in declaration order");
            for _ in 0..=i {
                let _ = s.observe(c, 10, || Ok::<_, ()>(()));
            }
            let _ = s.observe(c, 10, || Err::<(), _>(()));
        }
        for (i, c) in Command::ALL.into_iter().enumerate() {
            let n = s.command(c);
            assert_eq!(n.requests.load(Ordering::Relaxed), i as u64 + 2, "{c:?}");
            assert_eq!(
                n.bytes.load(Ordering::Relaxed),
                10 * (i as u64 + 1),
                "{c:?}"
            );
            assert_eq!(n.errors.load(Ordering::Relaxed), 1, "{c:?}");
        }
        let names: Vec<_> = Command::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["read", "write", "write_zeroes", "trim", "flush"]);
    }
}
