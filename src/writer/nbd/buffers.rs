//! Payload buffers kept between requests of one connection.
//!
//! A fresh buffer per request costs a zero-fill and a page fault for each 4 KiB the payload
//! lands in: glibc (and musl, the shipped binary's libc) hand large blocks back to the
//! kernel when they are freed, so every request faulted its pages in again. Profiled over
//! a TLS copy, those faults were 96 % of the service's page faults and 7-11 % of its CPU;
//! the plain copies pay the same. A connection keeps a few finished buffers instead.
//!
//! Kept buffers are memory, not budget: the payload budget (`Budget`, the server's pool)
//! is released when a request ends, as before, so a connection whose client stalls holds
//! no budget through this list; it holds at most [`KEEP_BYTES`] of memory, and all
//! connections together at most [`KEEP_TOTAL`] (60 connections would otherwise keep 240
//! MiB beside the budget).
//!
//! A buffer's bytes start on a 4 KiB boundary ([`Payload`]), so that a write's payload can
//! go to a target opened for direct I/O as it is (see `BlockFile::write_through`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::writer::block::AlignedMem;

/// Buffers one connection keeps.
const KEEP_COUNT: usize = 16;
/// Bytes of finished buffers one connection keeps (a depth-16 client of 256 KiB requests
/// reuses its buffers; one of 32 MiB requests keeps none), counting the up to 4 KiB each
/// buffer holds beyond its payload to align it.
pub const KEEP_BYTES: usize = (4 << 20) + KEEP_COUNT * ALIGN;
/// Bytes of kept buffers over all connections of the process.
pub const KEEP_TOTAL: usize = 32 << 20;

static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Where a payload's bytes start in memory: what direct I/O asks of a buffer.
pub const ALIGN: usize = crate::writer::block::DIRECT_ALIGN;

/// A request's bytes, starting at an [`ALIGN`]-aligned address.
#[derive(Default)]
pub struct Payload {
    mem: AlignedMem,
    len: usize,
}

impl Payload {
    /// A zeroed payload of `len` bytes.
    fn new(len: usize) -> Payload {
        Payload {
            mem: AlignedMem::zeroed(len),
            len,
        }
    }

    /// Bytes of memory held.
    pub fn capacity(&self) -> usize {
        self.mem.capacity()
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.mem.bytes(self.len)
    }
}

impl std::ops::DerefMut for Payload {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.mem.bytes_mut(self.len)
    }
}

#[derive(Default)]
pub struct Buffers {
    kept: Mutex<Vec<Payload>>,
}

impl Buffers {
    /// A buffer of `len` bytes: a kept one when one is large enough (its stale bytes are
    /// overwritten by the caller: a payload read or a read reply), else a new zeroed one.
    pub fn take(&self, len: usize) -> Payload {
        let found = {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.iter()
                .rposition(|b| b.mem.room() >= len)
                .map(|i| kept.swap_remove(i))
        };
        match found {
            Some(mut b) => {
                KEPT.fetch_sub(b.capacity(), Ordering::Relaxed);
                b.len = len;
                b
            }
            None => Payload::new(len),
        }
    }

    /// Gives a finished buffer back: kept when it fits in the connection's share.
    pub fn give(&self, buf: Payload) {
        if buf.capacity() == 0 || buf.capacity() > KEEP_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = kept.iter().map(Payload::capacity).sum();
        if kept.len() >= KEEP_COUNT || held + buf.capacity() > KEEP_BYTES {
            return;
        }
        let n = buf.capacity();
        if KEPT.fetch_add(n, Ordering::Relaxed) + n > KEEP_TOTAL {
            KEPT.fetch_sub(n, Ordering::Relaxed);
            return;
        }
        kept.push(buf);
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.kept
            .lock()
            .unwrap()
            .iter()
            .map(Payload::capacity)
            .sum()
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        let kept = self.kept.get_mut().unwrap_or_else(|p| p.into_inner());
        let n: usize = kept.iter().map(Payload::capacity).sum();
        KEPT.fetch_sub(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_buffer_is_reused_and_memory_stays_bounded() {
        let b = Buffers::default();
        let first = b.take(256 << 10);
        let at = first.as_ptr();
        b.give(first);
        let again = b.take(4096);
        assert_eq!((again.as_ptr(), again.len()), (at, 4096), "the same memory");
        b.give(again);
        let grown = b.take(256 << 10);
        assert_eq!((grown.as_ptr(), grown.len()), (at, 256 << 10));
        // A depth-16 client of 256 KiB requests keeps all 16 (alignment included).
        let all: Vec<Payload> = (0..KEEP_COUNT).map(|_| b.take(256 << 10)).collect();
        all.into_iter().for_each(|p| b.give(p));
        assert_eq!(b.kept.lock().unwrap().len(), KEEP_COUNT);
        for len in [1, 4095, 4096, 200_000] {
            let p = b.take(len);
            assert_eq!(
                (p.as_ptr() as usize % ALIGN, p.len()),
                (0, len),
                "aligned, {len} bytes"
            );
        }
        for _ in 0..64 {
            b.give(Payload::new(1 << 20));
        }
        assert!(b.held() <= KEEP_BYTES, "{}", b.held());
        b.give(Payload::new(KEEP_BYTES + 1));
        assert!(b.held() <= KEEP_BYTES);
    }

    #[test]
    fn all_connections_together_keep_at_most_the_total() {
        let conns: Vec<Buffers> = (0..2 * KEEP_TOTAL / KEEP_BYTES)
            .map(|_| Buffers::default())
            .collect();
        for c in &conns {
            for _ in 0..KEEP_COUNT {
                c.give(Payload::new(256 << 10));
            }
        }
        let held: usize = conns.iter().map(Buffers::held).sum();
        // Other tests of this process may hold a few of their own.
        assert!(held <= KEEP_TOTAL, "{held}");
        assert!(held >= KEEP_TOTAL / 2, "kept something: {held}");
        drop(conns);
        assert!(KEPT.load(Ordering::Relaxed) <= 2 * KEEP_BYTES);
    }
}
