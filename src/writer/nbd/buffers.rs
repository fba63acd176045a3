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
//! no budget through this list; it holds at most [`KEEP_BYTES`] of memory.

use std::sync::Mutex;

/// Bytes of finished buffers one connection keeps (a depth-16 client of 256 KiB requests
/// reuses its buffers; one of 32 MiB requests keeps none).
pub const KEEP_BYTES: usize = 4 << 20;
/// Buffers one connection keeps.
const KEEP_COUNT: usize = 16;

#[derive(Default)]
pub struct Buffers {
    kept: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// A buffer of `len` bytes: a kept one when one is large enough (its stale bytes are
    /// overwritten by the caller: a payload read or a read reply), else a new zeroed one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let found = {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.iter()
                .rposition(|b| b.capacity() >= len)
                .map(|i| kept.swap_remove(i))
        };
        match found {
            Some(mut b) => {
                if b.len() < len {
                    b.resize(len, 0);
                } else {
                    b.truncate(len);
                }
                b
            }
            None => vec![0u8; len],
        }
    }

    /// Gives a finished buffer back: kept when it fits in the connection's share.
    pub fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > KEEP_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = kept.iter().map(Vec::capacity).sum();
        if kept.len() < KEEP_COUNT && held + buf.capacity() <= KEEP_BYTES {
            kept.push(buf);
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.kept.lock().unwrap().iter().map(Vec::capacity).sum()
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
        for _ in 0..64 {
            b.give(vec![1u8; 1 << 20]);
        }
        assert!(b.held() <= KEEP_BYTES, "{}", b.held());
        b.give(vec![0u8; KEEP_BYTES + 1]);
        assert!(b.held() <= KEEP_BYTES);
    }
}
