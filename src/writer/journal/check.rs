//! The check of a segment at open: every record read and verified (header and payload),
//! damaged ranges skipped over (by searching for the next good header) and described, so
//! that [`super::Journal::open`] can tell a torn last batch from corruption.

use super::format::{
    self, DecodeError, HEADER_LEN, Header, Kind, LAST_IN_BATCH, Meta, PointRecord,
};
use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes read at once.
const WINDOW: usize = 1 << 20;
/// Bytes asked ahead of the window (`POSIX_FADV_WILLNEED`): the disk reads them while the
/// window is verified.
const AHEAD: u64 = 8 << 20;

/// What one segment holds.
#[derive(Debug, Default)]
pub struct SegmentScan {
    /// File length.
    pub len: u64,
    /// Where the records end and free space written ahead (zeros) begins; the file's
    /// length when there is none.
    pub data_end: u64,
    /// Offset after the last good record.
    pub end: u64,
    pub max_seq: u64,
    pub max_batch: u64,
    /// Points with the offset of their record.
    pub points: Vec<(u64, PointRecord)>,
    /// Seq of the first good record that is not a pad.
    pub first_seq: Option<u64>,
    pub has_commit: bool,
    /// A good record of version 1 was seen (new appends then go to a new segment).
    pub has_v1: bool,
    pub bad: Vec<BadRange>,
}

/// Bytes `[from, to)` of a segment that hold no good record.
#[derive(Debug, Clone)]
pub struct BadRange {
    pub from: u64,
    pub to: u64,
    pub error: DecodeError,
    /// The record's header when only its payload is bad.
    pub header: Option<Header>,
    /// Version 1 records around it (no batch numbers to judge by).
    pub v1: bool,
    /// The batch the bad bytes belong to if they are a torn append.
    pub batch: u64,
    /// Highest batch of the good records after it in the segment.
    pub later_batch: u64,
    /// A good record follows it in the segment.
    pub good_after: bool,
    /// Seq of the first good record (not a pad) after it in the segment.
    pub next_seq: Option<u64>,
}

impl BadRange {
    /// Whether these bytes can be what a crash leaves: the last append, torn. A good
    /// record of a later batch after them means the append they belong to had finished
    /// (an append is durable before the next is written: synced first, or written
    /// through by a device without a volatile cache), so they are corruption. Version 1 has no
    /// batches: only bad bytes with nothing good after them may be torn.
    pub fn may_be_torn(&self) -> bool {
        if self.v1 {
            !self.good_after
        } else {
            self.later_batch <= self.batch
        }
    }
}

/// A read window over a file, so that headers and payloads are read in large pieces.
struct Window<'a> {
    file: &'a File,
    len: u64,
    start: u64,
    buf: Vec<u8>,
    /// Where the read-ahead asked for so far ends.
    ahead_to: u64,
}

impl Window<'_> {
    /// Up to `n` bytes at `at` (fewer at the end of the file).
    fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let have = at >= self.start && at + n as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (n.max(WINDOW) as u64).min(self.len.saturating_sub(at)) as usize;
            self.read_ahead(at + want as u64);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.start = at;
        }
        let lo = (at - self.start) as usize;
        let hi = (lo + n).min(self.buf.len());
        Ok(&self.buf[lo..hi])
    }

    /// Asks the kernel to read the [`AHEAD`] bytes from `from` while this window is
    /// checked, once per stretch: a hint, its error ignored.
    fn read_ahead(&mut self, from: u64) {
        if from >= self.len || from < self.ahead_to.saturating_sub(AHEAD / 2) {
            return;
        }
        let from = from.max(self.ahead_to);
        let to = (from + AHEAD).min(self.len);
        if let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) {
            let _ = posix_fadvise(self.file, off, len, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
        }
        self.ahead_to = to;
    }

    /// The record at `at`, its header checked and its payload verified.
    fn record(&mut self, at: u64) -> io::Result<Result<GoodRecord, BadRecord>> {
        let head = self.get(at, HEADER_LEN)?;
        let (h, m) = match Header::decode_meta(&mut &head[..]) {
            Ok(hm) => hm,
            Err(e) => return Ok(Err(BadRecord(e, None))),
        };
        let data = at + m.header_len() as u64;
        let n = h.payload_len as usize;
        let payload = self.get(data, n)?;
        if payload.len() < n {
            let need = m.header_len() + n;
            let have = m.header_len() + payload.len();
            return Ok(Err(BadRecord(
                DecodeError::Truncated { need, have },
                Some((h, m)),
            )));
        }
        if crc32c::crc32c(payload) != h.payload_crc {
            return Ok(Err(BadRecord(DecodeError::PayloadChecksum, Some((h, m)))));
        }
        // Labels are kept; other payloads are only checked.
        let keep = if h.kind.is_point() {
            payload.to_vec()
        } else {
            Vec::new()
        };
        Ok(Ok((h, m, keep)))
    }

    /// The offset of the first byte at or after `at` that is not zero (the file's length
    /// when there is none).
    fn zeros_from(&mut self, mut at: u64) -> io::Result<u64> {
        while at < self.len {
            let w = self.get(at, WINDOW)?;
            if let Some(i) = w.iter().position(|&b| b != 0) {
                return Ok(at + i as u64);
            }
            at += w.len() as u64;
        }
        Ok(self.len)
    }

    /// The next offset after `from` where a good header starts, if any.
    fn resync(&mut self, from: u64) -> io::Result<Option<u64>> {
        let magic = format::MAGIC.to_le_bytes();
        let mut at = from;
        while at + 4 <= self.len {
            let hits: Vec<u64> = {
                let w = self.get(at, WINDOW)?;
                w.windows(4)
                    .enumerate()
                    .filter(|(_, x)| *x == magic)
                    .map(|(i, _)| at + i as u64)
                    .collect()
            };
            let step = self.get(at, WINDOW)?.len() as u64;
            for c in hits {
                let head = self.get(c, HEADER_LEN)?;
                if Header::decode(&mut &head[..]).is_ok() {
                    return Ok(Some(c));
                }
            }
            // Overlap by 3 bytes: a magic may straddle two windows.
            at += step.saturating_sub(3).max(1);
        }
        Ok(None)
    }
}

/// A checked record: its header, what the header says of its batch, and its payload when
/// it is a point's label.
type GoodRecord = (Header, Meta, Vec<u8>);

/// Why a record is not good, with its header when only the payload is bad.
struct BadRecord(DecodeError, Option<(Header, Meta)>);

/// The batch that bytes after the last good record (`last`: its batch, whether it ended
/// its batch, its version) belong to.
fn batch_after(last: Option<(u64, bool, bool)>, prev_batch: u64) -> u64 {
    match last {
        Some((b, true, _)) => b + 1,
        Some((b, false, _)) => b,
        None => prev_batch + 1,
    }
}

/// Reads and verifies every record of a segment. `prev_batch`: the highest batch of the
/// segments before it (a segment starts with the batch after it).
pub fn scan_segment(file: &File, prev_batch: u64) -> io::Result<SegmentScan> {
    let len = file.metadata()?.len();
    let mut w = Window {
        file,
        len,
        start: 0,
        buf: Vec::new(),
        ahead_to: 0,
    };
    let mut s = SegmentScan {
        len,
        data_end: len,
        ..Default::default()
    };
    // The last good record's batch, whether it ended its batch, and its version.
    let mut last: Option<(u64, bool, bool)> = None;
    let mut pos = 0;
    while pos < len {
        match w.record(pos)? {
            Ok((h, m, payload)) => {
                for b in s.bad.iter_mut() {
                    b.good_after = true;
                    b.later_batch = b.later_batch.max(m.batch);
                    if h.kind != Kind::Pad && b.next_seq.is_none() {
                        b.next_seq = Some(h.seq);
                    }
                }
                if h.kind != Kind::Pad && s.first_seq.is_none() {
                    s.first_seq = Some(h.seq);
                }
                s.max_seq = s.max_seq.max(h.seq);
                s.max_batch = s.max_batch.max(m.batch);
                s.has_v1 |= m.version == 1;
                s.has_commit |= h.kind == Kind::Commit;
                if let Some(p) = PointRecord::from_parts(&h, &payload) {
                    s.points.push((pos, p));
                }
                last = Some((m.batch, m.flags & LAST_IN_BATCH != 0, m.version == 1));
                pos += m.record_len(&h);
                s.end = pos;
            }
            Err(BadRecord(error, header)) => {
                // Zeros where a header would be: space written ahead (see `super::spare`),
                // unless good records follow them (then they are a hole: damage).
                let zeros_to = match header {
                    None => w.zeros_from(pos)?,
                    Some(_) => pos,
                };
                if zeros_to >= (pos + HEADER_LEN as u64).min(len) {
                    if zeros_to == len {
                        s.data_end = pos;
                        break;
                    }
                    if w.resync(zeros_to)?.is_none() {
                        // Only bytes that are no record after the free space: what an
                        // append past it would leave, torn. Judged like any other.
                        s.data_end = pos;
                        let head = w.get(zeros_to, HEADER_LEN)?;
                        let error = Header::decode(&mut &head[..])
                            .err()
                            .unwrap_or(DecodeError::BadMagic(0));
                        s.bad.push(BadRange {
                            from: zeros_to,
                            to: len,
                            error,
                            header: None,
                            v1: last.is_some_and(|l| l.2),
                            batch: batch_after(last, prev_batch),
                            later_batch: 0,
                            good_after: false,
                            next_seq: None,
                        });
                        break;
                    }
                }
                // A bad payload under a good header: the header's length is trusted (its
                // checksum held), the next record starts after it.
                let to = match &header {
                    Some((h, m)) if error == DecodeError::PayloadChecksum => pos + m.record_len(h),
                    _ => w.resync(pos + 1)?.unwrap_or(len),
                };
                let batch = match &header {
                    Some((_, m)) => m.batch,
                    None => batch_after(last, prev_batch),
                };
                let v1 = header.map_or(last.is_some_and(|l| l.2), |(_, m)| m.version == 1);
                s.bad.push(BadRange {
                    from: pos,
                    to,
                    error,
                    header: header.map(|(h, _)| h),
                    v1,
                    batch,
                    later_batch: 0,
                    good_after: false,
                    next_seq: None,
                });
                pos = to;
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::block::tests::resident;
    use std::time::{Duration, Instant};

    /// Waits (the hint only starts the reads) until `want` bytes of `path` are cached.
    fn cached_at_least(path: &std::path::Path, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = resident(path);
            if got >= want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_scan_asks_the_kernel_for_the_bytes_ahead_of_its_window() {
        // On a disk filesystem: tmpfs pages cannot be dropped.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = dir.path().join("seg-0000000001.log");
        let len = 24u64 << 20;
        std::fs::write(&p, vec![0x5a; len as usize]).unwrap();
        let f = File::open(&p).unwrap();
        f.sync_all().unwrap();
        posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        assert_eq!(resident(&p), 0, "the synced pages were dropped");
        let mut w = Window {
            file: &f,
            len,
            start: 0,
            buf: Vec::new(),
            ahead_to: 0,
        };

        // The first window, and the 8 MiB after it asked for.
        w.get(0, HEADER_LEN).unwrap();
        let first = WINDOW as u64 + AHEAD;
        let got = cached_at_least(&p, first);
        assert!(
            got >= first && got < len,
            "{got} bytes cached after the first window"
        );
        assert_eq!(w.ahead_to, first);
        // The next window is inside what was asked: nothing more is asked for yet.
        w.get(WINDOW as u64, HEADER_LEN).unwrap();
        assert_eq!(w.ahead_to, first);
        // Half of the stretch used: the next 8 MiB are asked for, up to the file's end.
        w.get(5 << 20, HEADER_LEN).unwrap();
        assert_eq!(w.ahead_to, first + AHEAD);
        assert!(cached_at_least(&p, first + AHEAD) >= first + AHEAD);
        w.get(13 << 20, HEADER_LEN).unwrap();
        assert_eq!(w.ahead_to, len, "clipped at the end");
        w.get(len - 16, 16).unwrap();
        assert_eq!(w.ahead_to, len);
    }
}
