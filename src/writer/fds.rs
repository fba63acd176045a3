//! File descriptors as a budget: the open-file limit raised at start, and a count of the
//! descriptors client connections hold, so that sockets can never take the last ones the
//! journal needs (a new segment, a folder to fsync, a recover's files).
//!
//! Every accept loop asks the budget before `accept(2)`: a connection that does not fit
//! stays in the kernel's backlog until others close, instead of being accepted into an
//! EMFILE that fails journal appends with EIO.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How long an accept loop pauses after running out of descriptors or memory: accepting
/// again at once would fail the same way, in a loop that spins at 100 % CPU.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Descriptors kept free for everything but client sockets, beyond a few per disk.
pub const RESERVE: usize = 64;
/// Per served disk: its target (a buffered and a direct descriptor), a journal segment, a
/// view or recover reading an older one.
pub const PER_DISK: usize = 5;

/// Raises the soft open-file limit to the hard one (the unit and the init script set a
/// high hard limit; a shell's soft default of 1024 is too few for many clients). Returns
/// the soft limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Descriptors that client connections may hold together.
#[derive(Debug)]
pub struct FdBudget {
    limit: usize,
    used: AtomicUsize,
}

/// Descriptors held by one connection; given back when dropped.
#[derive(Debug)]
pub struct FdLease {
    budget: Arc<FdBudget>,
    n: usize,
}

impl Drop for FdLease {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl FdBudget {
    /// The budget under an open-file limit of `nofile` with `disks` disks served.
    pub fn new(nofile: u64, disks: usize) -> Arc<FdBudget> {
        let reserve = RESERVE + PER_DISK * disks;
        let limit = usize::try_from(nofile)
            .unwrap_or(usize::MAX)
            .saturating_sub(reserve);
        Arc::new(FdBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Whether a connection holding `n` descriptors fits now (asked before accepting).
    pub fn fits(&self, n: usize) -> bool {
        self.used.load(Ordering::Acquire) + n <= self.limit
    }

    /// Takes `n` descriptors for a connection just accepted; `None` when they do not fit
    /// (another loop took the room first): the connection is closed at once.
    pub fn take(self: &Arc<Self>, n: usize) -> Option<FdLease> {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            if cur + n > self.limit {
                return None;
            }
            match self
                .used
                .compare_exchange(cur, cur + n, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(FdLease {
                        budget: self.clone(),
                        n,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Whether an accept error means "out of descriptors or memory": accepting again at once
/// fails the same way, so the loop must pause instead of spinning.
pub fn exhausted(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_the_reserve_and_returns_leases() {
        let b = FdBudget::new(100, 2);
        assert_eq!(b.limit(), 100 - RESERVE - 2 * PER_DISK);
        let per = 4;
        let mut held = Vec::new();
        while let Some(l) = b.take(per) {
            held.push(l);
        }
        assert_eq!(held.len(), b.limit() / per);
        assert!(!b.fits(per));
        held.pop();
        assert!(b.fits(per));
        drop(held);
        assert_eq!(b.in_use(), 0);
        // A limit below the reserve leaves no room, never an underflow.
        assert!(FdBudget::new(10, 50).take(1).is_none());
    }

    #[test]
    fn raising_keeps_a_limit_at_least_as_high() {
        let mut before = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only the struct passed.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) };
        assert!(raise_nofile_limit() >= before.rlim_cur);
    }
}
