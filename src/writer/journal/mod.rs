//! A group's undo journal: numbered segment files of records, appended and synced in batches.
//!
//! Segments are `seg-<id>.log` in the group's folder. Only the newest segment is written;
//! older ones were synced before the next one was created, so a torn write can only sit at
//! the end of the newest. [`Journal::open`] cuts such a tail and keeps everything before it.
//!
//! Appends use direct I/O where the filesystem allows it: the records go from the caller's
//! buffer to the disk without a copy into the page cache, and the sync that follows has no
//! dirty pages to write back (both were a large share of the overwrite path's CPU). Each
//! append is padded with a `Pad` record to a 4 KiB boundary, so the next one starts aligned.

pub mod format;

use format::{DecodeError, HEADER_LEN, Header, Kind};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A new segment is started once the current one passes this size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Direct I/O alignment of appends (offset, length and memory): any disk's logical block.
pub const ALIGN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal segment {} is corrupt at byte {offset}", path.display())]
    Corruption {
        path: PathBuf,
        offset: u64,
        #[source]
        source: DecodeError,
    },
}

impl From<JournalError> for io::Error {
    /// Keeps the errno's kind (ENOSPC stays `StorageFull`) so callers can react to it.
    fn from(e: JournalError) -> io::Error {
        let kind = match &e {
            JournalError::Io { source, .. } => source.kind(),
            JournalError::Corruption { .. } => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a record's payload lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    /// File offset of the payload's first byte.
    pub data: u64,
}

/// What the scan at open learned about one segment.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub id: u64,
    pub bytes: u64,
    /// Highest seq in the segment (0 when empty).
    pub max_seq: u64,
}

/// A point record found in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointRecord {
    pub seq: u64,
    pub time_us: i64,
    pub app: bool,
    pub label: String,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Scan {
    pub points: Vec<PointRecord>,
    pub max_seq: u64,
    /// Bytes cut from a torn or corrupt tail of the newest segment.
    pub cut_bytes: u64,
}

pub struct Journal {
    dir: PathBuf,
    segments: Vec<SegmentInfo>,
    cur: File,
    /// `cur` was opened with O_DIRECT.
    direct: bool,
    segment_size: u64,
    /// Aligned copy of what [`Journal::append`] is given, for direct I/O.
    bounce: AlignedBuf,
}

/// A byte buffer whose start is [`ALIGN`]-aligned in memory, for direct I/O.
#[derive(Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// Empties the buffer and makes room for `n` bytes of records and their padding.
    /// Returns the room; the contents of kept memory are stale, not zeroed.
    pub fn prepare(&mut self, n: usize) -> &mut [u8] {
        let need = n + 2 * ALIGN;
        if self.raw.len() < need + ALIGN {
            // Zeroed by the allocator (fresh pages): untouched room costs no memory.
            self.raw = vec![0; need + ALIGN];
            self.start = self.raw.as_ptr().align_offset(ALIGN);
        }
        self.len = 0;
        let start = self.start;
        &mut self.raw[start..start + need]
    }

    /// Says how many bytes of the room hold records.
    pub fn set_len(&mut self, n: usize) {
        assert!(
            self.start + n + 2 * ALIGN <= self.raw.len(),
            "beyond prepared room"
        );
        self.len = n;
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// Bytes of memory held.
    pub fn capacity(&self) -> usize {
        self.raw.len()
    }

    /// Pads the records to a multiple of [`ALIGN`] with a `Pad` record.
    fn pad(&mut self) {
        let gap = format::pad_len(self.len, ALIGN);
        if gap > 0 {
            let h = format::pad_header(gap);
            let mut head = Vec::with_capacity(HEADER_LEN);
            h.encode(&mut head);
            let at = self.start + self.len;
            self.raw[at..at + HEADER_LEN].copy_from_slice(&head);
            self.raw[at + HEADER_LEN..at + gap].fill(0);
            self.len += gap;
        }
    }
}

/// Opens a segment for appending: with O_DIRECT when the filesystem takes it (tmpfs may
/// not), else buffered. Returns whether it is direct.
fn open_append(path: &Path, create: bool) -> io::Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        let mut o = OpenOptions::new();
        o.read(true).write(true).custom_flags(flags);
        if create {
            // Old disk contents: the service's alone, whatever the umask.
            o.create_new(true).mode(0o600);
        }
        o.open(path)
    };
    match open(libc::O_DIRECT) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0).map(|f| (f, false)),
        Err(e) => Err(e),
    }
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:010}.log"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("listing journal", dir))? {
        let entry = entry.map_err(io_err("listing journal", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_prefix("seg-")
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing folder", dir))
}

/// Walks a segment's records by headers from byte `from` to `limit` (default: the file's
/// end), reading payloads only to check them when `verify` (and for points' labels).
/// Calls `f` for each good record with its header, payload location and payload (when read).
/// Returns the offset after the last good record and the error that stopped the walk
/// before the end, if any.
fn walk(
    file: &mut File,
    segment: u64,
    (from, limit): (u64, Option<u64>),
    verify: bool,
    mut f: impl FnMut(&Header, Loc, Option<&[u8]>),
) -> io::Result<(u64, Option<DecodeError>)> {
    let len = match limit {
        Some(l) => l,
        None => file.metadata()?.len(),
    };
    file.seek(SeekFrom::Start(from))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, &mut *file);
    let mut pos = from;
    let mut hbuf = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    while pos < len {
        let avail = (len - pos).min(HEADER_LEN as u64) as usize;
        reader.read_exact(&mut hbuf[..avail])?;
        let h = match Header::decode(&mut &hbuf[..avail]) {
            Ok(h) => h,
            Err(e) => return Ok((pos, Some(e))),
        };
        let data = pos + HEADER_LEN as u64;
        if data + u64::from(h.payload_len) > len {
            let need = HEADER_LEN + h.payload_len as usize;
            let have = (len - pos) as usize;
            return Ok((pos, Some(DecodeError::Truncated { need, have })));
        }
        let loc = Loc { segment, data };
        if verify || h.kind.is_point() {
            payload.resize(h.payload_len as usize, 0);
            reader.read_exact(&mut payload)?;
            if crc32c::crc32c(&payload) != h.payload_crc {
                return Ok((pos, Some(DecodeError::PayloadChecksum)));
            }
            f(&h, loc, Some(&payload));
        } else {
            reader.seek_relative(i64::from(h.payload_len))?;
            f(&h, loc, None);
        }
        pos = data + u64::from(h.payload_len);
    }
    Ok((pos, None))
}

impl Journal {
    /// Opens (creating) the journal in `dir`: finishes an interrupted commit, checks every
    /// record of the newest segment and cuts a torn tail, and collects the points.
    pub fn open(dir: &Path, segment_size: u64) -> Result<(Journal, Scan), JournalError> {
        crate::files::create_private_dirs(dir).map_err(io_err("creating journal folder", dir))?;
        let mut ids = list_segments(dir)?;
        let mut scan = Scan::default();
        let mut segments = Vec::new();
        let mut commit_at = None;
        for (i, &id) in ids.iter().enumerate() {
            let path = segment_path(dir, id);
            let newest = i + 1 == ids.len();
            let mut file = OpenOptions::new()
                .read(true)
                .write(newest)
                .open(&path)
                .map_err(io_err("opening journal segment", &path))?;
            let mut info = SegmentInfo {
                id,
                bytes: 0,
                max_seq: 0,
            };
            let mut has_commit = false;
            let (end, err) = walk(&mut file, id, (0, None), newest, |h, _, payload| {
                info.max_seq = info.max_seq.max(h.seq);
                match h.kind {
                    Kind::Commit => has_commit = true,
                    k if k.is_point() => scan.points.push(PointRecord {
                        seq: h.seq,
                        time_us: h.time_us,
                        app: k == Kind::AppPoint,
                        label: String::from_utf8_lossy(payload.unwrap_or_default()).into_owned(),
                    }),
                    _ => {}
                }
            })
            .map_err(io_err("reading journal segment", &path))?;
            if let Some(source) = err {
                if !newest {
                    return Err(JournalError::Corruption {
                        path,
                        offset: end,
                        source,
                    });
                }
                let len = file.metadata().map(|m| m.len()).unwrap_or(end);
                tracing::warn!(segment = %path.display(), offset = end, cut = len - end,
                    reason = %source, "journal: cutting a torn tail");
                file.set_len(end)
                    .and_then(|_| file.sync_all())
                    .map_err(io_err("cutting journal tail", &path))?;
                scan.cut_bytes = len - end;
            }
            info.bytes = end;
            if has_commit {
                commit_at = Some(segments.len());
            }
            scan.max_seq = scan.max_seq.max(info.max_seq);
            segments.push(info);
        }
        if let Some(at) = commit_at.filter(|&at| at > 0) {
            // A commit wrote its segment but died before dropping the older ones.
            let stale: Vec<SegmentInfo> = segments.drain(..at).collect();
            let first_kept = segments[0].id;
            for s in &stale {
                let p = segment_path(dir, s.id);
                fs::remove_file(&p).map_err(io_err("removing journal segment", &p))?;
            }
            scan.points.clear();
            ids.retain(|&id| id >= first_kept);
            // Re-scan what is left for its points (cheap: headers and labels only).
            for s in &segments {
                let p = segment_path(dir, s.id);
                let mut f = File::open(&p).map_err(io_err("opening journal segment", &p))?;
                walk(&mut f, s.id, (0, None), false, |h, _, payload| {
                    if h.kind.is_point() {
                        scan.points.push(PointRecord {
                            seq: h.seq,
                            time_us: h.time_us,
                            app: h.kind == Kind::AppPoint,
                            label: String::from_utf8_lossy(payload.unwrap_or_default())
                                .into_owned(),
                        });
                    }
                })
                .map_err(io_err("reading journal segment", &p))?;
            }
            sync_dir(dir)?;
        }
        let (cur, direct) = match segments.last() {
            Some(s) => {
                let p = segment_path(dir, s.id);
                open_append(&p, false).map_err(io_err("opening journal segment", &p))?
            }
            None => {
                let (f, direct, info) = Self::create_segment(dir, 1)?;
                segments.push(info);
                (f, direct)
            }
        };
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                segments,
                cur,
                direct,
                segment_size,
                bounce: AlignedBuf::default(),
            },
            scan,
        ))
    }

    fn create_segment(dir: &Path, id: u64) -> Result<(File, bool, SegmentInfo), JournalError> {
        let p = segment_path(dir, id);
        let (f, direct) = open_append(&p, true).map_err(io_err("creating journal segment", &p))?;
        sync_dir(dir)?;
        Ok((
            f,
            direct,
            SegmentInfo {
                id,
                bytes: 0,
                max_seq: 0,
            },
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Where the next append will start: (segment id, offset), after rotating when the
    /// current segment is full. `max_seq` is the highest seq the append will carry.
    pub fn prepare_append(&mut self, len: u64) -> Result<(u64, u64), JournalError> {
        let cur = self
            .segments
            .last()
            .expect("a journal always has a segment");
        // A segment written before (buffered, or cut at a torn tail) may end unaligned:
        // direct appends start a new one rather than rewrite its last block.
        let unaligned = self.direct && !cur.bytes.is_multiple_of(ALIGN as u64);
        if cur.bytes > 0 && (cur.bytes + len > self.segment_size || unaligned) {
            // The current segment is synced: every append is followed by a sync before
            // anyone relies on it, and rotation happens only between batches.
            self.cur
                .sync_data()
                .map_err(io_err("syncing journal segment", &self.dir))?;
            let (f, direct, info) = Self::create_segment(&self.dir, cur.id + 1)?;
            self.cur = f;
            self.direct = direct;
            self.segments.push(info);
        }
        let cur = self.segments.last().unwrap();
        Ok((cur.id, cur.bytes))
    }

    /// Appends encoded records (not yet durable: call [`Journal::sync`]), after
    /// [`Journal::prepare_append`]. On error the segment is cut back to where it was, so a
    /// failed append leaves no partial record. Copies `buf` once; see
    /// [`Journal::append_aligned`] for the copy-free way.
    pub fn append(&mut self, buf: &[u8], max_seq: u64) -> io::Result<()> {
        let mut b = std::mem::take(&mut self.bounce);
        b.prepare(buf.len())[..buf.len()].copy_from_slice(buf);
        b.set_len(buf.len());
        let r = self.append_aligned(&mut b, max_seq);
        // Kept: a group's journal only appends small records this way (points, commits),
        // and a recover's session log appends steps of one size, so the buffer is
        // allocated (and its pages faulted in) once.
        self.bounce = b;
        r
    }

    /// Appends the records in `buf` (padding them in place to an [`ALIGN`] boundary).
    pub fn append_aligned(&mut self, buf: &mut AlignedBuf, max_seq: u64) -> io::Result<()> {
        buf.pad();
        let cur = self.segments.last_mut().unwrap();
        let mut r = self.cur.write_all_at(buf.as_slice(), cur.bytes);
        if self.direct
            && r.as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
        {
            // The filesystem took O_DIRECT at open but not this write: go buffered.
            let p = segment_path(&self.dir, cur.id);
            tracing::info!(segment = %p.display(), "journal: direct I/O refused, writing buffered");
            let _ = self.cur.set_len(cur.bytes);
            self.cur = OpenOptions::new().read(true).write(true).open(&p)?;
            self.direct = false;
            r = self.cur.write_all_at(buf.as_slice(), cur.bytes);
        }
        if let Err(e) = r {
            let _ = self.cur.set_len(cur.bytes);
            return Err(e);
        }
        cur.bytes += buf.as_slice().len() as u64;
        cur.max_seq = cur.max_seq.max(max_seq);
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.cur.sync_data()?;
        if self.direct {
            return Ok(());
        }
        // Synced journal pages are clean and rarely read again (only by a recover): drop
        // them so the journal does not push the targets out of the page cache, and so that
        // appends reuse recycled pages instead of ever new ones (first-touch of new memory
        // is what made appends the costliest copy of the write path in a VM).
        let end = self.segments.last().map_or(0, |s| s.bytes) & !4095;
        if end > 0 {
            use std::os::fd::AsRawFd;
            // SAFETY: posix_fadvise on an fd we own; it only gives the kernel a hint.
            unsafe {
                libc::posix_fadvise(
                    self.cur.as_raw_fd(),
                    0,
                    end as libc::off_t,
                    libc::POSIX_FADV_DONTNEED,
                )
            };
        }
        Ok(())
    }

    /// Removes the oldest segment when it is not the one being written. Returns its info.
    pub fn remove_oldest(&mut self) -> Result<Option<SegmentInfo>, JournalError> {
        if self.segments.len() < 2 {
            return Ok(None);
        }
        let s = self.segments.remove(0);
        let p = segment_path(&self.dir, s.id);
        fs::remove_file(&p).map_err(io_err("removing journal segment", &p))?;
        Ok(Some(s))
    }

    /// Starts over with one new segment holding `records` (already encoded), then drops
    /// every older segment. The records end with a `Commit`, so a crash in between is
    /// finished by the next [`Journal::open`].
    pub fn restart_with(&mut self, records: &[u8], max_seq: u64) -> Result<(), JournalError> {
        let next = self.segments.last().map_or(1, |s| s.id + 1);
        let (f, direct, info) = Self::create_segment(&self.dir, next)?;
        self.cur = f;
        self.direct = direct;
        self.segments.push(info);
        let p = segment_path(&self.dir, next);
        self.append(records, max_seq)
            .and_then(|_| self.sync())
            .map_err(io_err("writing journal segment", &p))?;
        while self.segments.len() > 1 {
            self.remove_oldest()?;
        }
        sync_dir(&self.dir)
    }

    /// Calls `f` for every record with `seq > after`, oldest first, by headers only.
    pub fn scan_after(&self, after: u64, f: impl FnMut(&Header, Loc)) -> Result<(), JournalError> {
        scan_segments(&self.dir, &self.segments, Pos::default(), after, f).map(|_| ())
    }

    /// Where the next append goes: the end of everything appended so far.
    pub fn end(&self) -> Pos {
        let s = self
            .segments
            .last()
            .expect("a journal always has a segment");
        Pos {
            segment: s.id,
            offset: s.bytes,
        }
    }

    /// The seq of the first record of the oldest segment (one header read, no scan).
    pub fn oldest_first_seq(&self) -> Result<Option<u64>, JournalError> {
        let Some(s) = self.segments.first() else {
            return Ok(None);
        };
        let p = segment_path(&self.dir, s.id);
        let file = File::open(&p).map_err(io_err("opening journal segment", &p))?;
        let mut pos = 0;
        let mut hbuf = [0u8; HEADER_LEN];
        while pos + HEADER_LEN as u64 <= s.bytes {
            file.read_exact_at(&mut hbuf, pos)
                .map_err(io_err("reading journal segment", &p))?;
            let h = Header::decode(&mut &hbuf[..]).map_err(|source| JournalError::Corruption {
                path: p.clone(),
                offset: pos,
                source,
            })?;
            if h.kind != Kind::Pad {
                return Ok(Some(h.seq));
            }
            pos += h.record_len();
        }
        Ok(None)
    }
}

/// A place in a journal: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

/// Calls `f` for every record with `seq > after` from `from` to the end of `segments` (a
/// snapshot of [`Journal::segments`]), oldest first, by headers only; returns where it
/// stopped. Needs no lock on the journal: it reads no further than the snapshot's lengths,
/// and appends never change bytes already written.
pub fn scan_segments(
    dir: &Path,
    segments: &[SegmentInfo],
    from: Pos,
    after: u64,
    mut f: impl FnMut(&Header, Loc),
) -> Result<Pos, JournalError> {
    let mut end = from;
    for s in segments.iter().filter(|s| s.id >= from.segment) {
        let start = if s.id == from.segment { from.offset } else { 0 };
        end = Pos {
            segment: s.id,
            offset: s.bytes.max(start),
        };
        if s.max_seq <= after || start >= s.bytes {
            continue;
        }
        let p = segment_path(dir, s.id);
        let mut file = File::open(&p).map_err(io_err("opening journal segment", &p))?;
        let (stop, err) = walk(
            &mut file,
            s.id,
            (start, Some(s.bytes)),
            false,
            |h, loc, _| {
                if h.seq > after {
                    f(h, loc)
                }
            },
        )
        .map_err(io_err("reading journal segment", &p))?;
        if let Some(source) = err {
            return Err(JournalError::Corruption {
                path: p,
                offset: stop,
                source,
            });
        }
    }
    Ok(end)
}

/// Reads journal payloads by [`Loc`], keeping segment files open (an open segment stays
/// readable even after pruning removes its name).
#[derive(Default)]
pub struct PayloadReader {
    dir: PathBuf,
    files: std::collections::HashMap<u64, File>,
}

impl PayloadReader {
    pub fn new(dir: &Path) -> PayloadReader {
        PayloadReader {
            dir: dir.to_path_buf(),
            files: Default::default(),
        }
    }

    pub fn read(&mut self, loc: Loc, buf: &mut [u8]) -> io::Result<()> {
        let f = match self.files.entry(loc.segment) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(segment_path(&self.dir, loc.segment))?)
            }
        };
        f.read_exact_at(buf, loc.data)
    }
}

#[cfg(test)]
mod tests {
    use super::format::{Record, encode_parts};
    use super::*;

    fn undo(seq: u64, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        Record {
            kind: Kind::Undo,
            seq,
            disk: 7,
            offset: seq * 4096,
            length: data.len() as u64,
            time_us: 1,
            payload: data.to_vec(),
        }
        .encode(&mut b);
        b
    }

    fn point(seq: u64, label: &str) -> Vec<u8> {
        let mut b = Vec::new();
        let h = Header {
            kind: Kind::AppPoint,
            seq,
            disk: 0,
            offset: 0,
            length: 0,
            time_us: seq as i64,
            payload_len: 0,
            payload_crc: 0,
        };
        encode_parts(&h, label.as_bytes(), &mut b);
        b
    }

    fn fill(dir: &Path, seg_size: u64) -> Journal {
        let (mut j, scan) = Journal::open(dir, seg_size).unwrap();
        assert_eq!(scan.max_seq, 0);
        for seq in 1..=10 {
            let rec = if seq % 5 == 0 {
                point(seq, &format!("p{seq}"))
            } else {
                undo(seq, &[seq as u8; 100])
            };
            j.prepare_append(rec.len() as u64).unwrap();
            j.append(&rec, seq).unwrap();
            j.sync().unwrap();
        }
        j
    }

    #[test]
    fn reopen_finds_points_and_rotates() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 400);
        assert!(j.segments().len() > 2, "{:?}", j.segments());
        drop(j);
        let (j, scan) = Journal::open(t.path(), 400).unwrap();
        assert_eq!(scan.max_seq, 10);
        assert_eq!(scan.cut_bytes, 0);
        let labels: Vec<_> = scan.points.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["p5", "p10"]);
        let mut seen = Vec::new();
        j.scan_after(6, |h, _| seen.push(h.seq)).unwrap();
        assert_eq!(seen, [7, 8, 9, 10]);
    }

    #[test]
    fn appends_stay_aligned_and_scans_resume_from_a_position() {
        let t = tempfile::tempdir().unwrap();
        // A segment left unaligned (written buffered, by an older build or a cut tail).
        let mut old = undo(1, &[1; 100]);
        old.extend(point(2, "p2"));
        fs::write(segment_path(t.path(), 1), &old).unwrap();
        let (mut j, scan) = Journal::open(t.path(), 1 << 20).unwrap();
        assert_eq!(scan.max_seq, 2);
        let mid = j.end();
        for seq in 3..=5 {
            let rec = undo(seq, &[seq as u8; 5000]);
            j.prepare_append(rec.len() as u64).unwrap();
            j.append(&rec, seq).unwrap();
            j.sync().unwrap();
            assert_eq!(j.end().offset % ALIGN as u64, 0, "padded to a block");
        }
        // Direct appends did not rewrite the unaligned segment's last block: they began a
        // new segment (buffered ones, where O_DIRECT is refused, may go on in it).
        if j.direct {
            assert_eq!(fs::read(segment_path(t.path(), 1)).unwrap(), old);
            assert_eq!(j.segments().len(), 2);
        }
        let mut all = Vec::new();
        let end = scan_segments(t.path(), j.segments(), Pos::default(), 0, |h, _| {
            all.push((h.seq, h.kind))
        })
        .unwrap();
        assert_eq!(end, j.end());
        assert_eq!(
            all.iter().filter(|(_, k)| *k != Kind::Pad).count(),
            5,
            "{all:?}"
        );
        let mut later = Vec::new();
        scan_segments(t.path(), j.segments(), mid, 0, |h, _| later.push(h.seq)).unwrap();
        assert_eq!(later, [3, 4, 5], "pads (seq 0) are not after any point");
        drop(j);
        let (j, scan) = Journal::open(t.path(), 1 << 20).unwrap();
        assert_eq!((scan.max_seq, scan.cut_bytes, scan.points.len()), (5, 0, 1));
        assert_eq!(j.oldest_first_seq().unwrap(), Some(1));
    }

    #[test]
    fn torn_tail_is_cut_and_nothing_before_is_lost() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 1 << 20);
        let last = segment_path(t.path(), j.segments().last().unwrap().id);
        drop(j);
        let full = fs::read(&last).unwrap();
        let rec = undo(11, &[0xee; 100]);
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, rec.len() - 1] {
            let mut torn = full.clone();
            torn.extend_from_slice(&rec[..cut]);
            fs::write(&last, &torn).unwrap();
            let (_, scan) = Journal::open(t.path(), 1 << 20).unwrap();
            assert_eq!(scan.cut_bytes, cut as u64);
            assert_eq!(scan.max_seq, 10);
            assert_eq!(scan.points.len(), 2);
            assert_eq!(fs::read(&last).unwrap(), full);
        }
    }

    #[test]
    fn corrupt_tail_payload_is_cut() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 1 << 20);
        let last = segment_path(t.path(), j.segments().last().unwrap().id);
        drop(j);
        let mut bytes = fs::read(&last).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&undo(11, &[0xee; 100]));
        let n = bytes.len();
        bytes[n - 3] ^= 1; // a sector of the payload never made it
        fs::write(&last, &bytes).unwrap();
        let (_, scan) = Journal::open(t.path(), 1 << 20).unwrap();
        assert_eq!(scan.cut_bytes, (n - good) as u64);
        assert_eq!(scan.max_seq, 10);
    }

    #[test]
    fn corruption_in_an_older_segment_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 400);
        let first = segment_path(t.path(), j.segments()[0].id);
        drop(j);
        let mut bytes = fs::read(&first).unwrap();
        bytes[10] ^= 1;
        fs::write(&first, &bytes).unwrap();
        let err = Journal::open(t.path(), 400).err().unwrap();
        assert!(matches!(err, JournalError::Corruption { .. }), "{err}");
    }

    #[test]
    fn restart_with_drops_older_segments_even_after_a_crash() {
        let t = tempfile::tempdir().unwrap();
        let mut j = fill(t.path(), 400);
        let mut recs = point(5, "kept");
        let h = Header {
            kind: Kind::Commit,
            seq: 10,
            disk: 0,
            offset: 0,
            length: 0,
            time_us: 0,
            payload_len: 0,
            payload_crc: 0,
        };
        encode_parts(&h, &[], &mut recs);
        // Simulate a crash after the new segment is written but before the old are gone.
        let next = j.segments().last().unwrap().id + 1;
        fs::write(segment_path(t.path(), next), &recs).unwrap();
        drop(j);
        let (j2, scan) = Journal::open(t.path(), 400).unwrap();
        assert_eq!(j2.segments().len(), 1);
        assert_eq!(scan.points.len(), 1);
        assert_eq!(scan.points[0].label, "kept");
        assert_eq!(scan.max_seq, 10);
        j = j2;
        j.restart_with(&recs, 10).unwrap();
        assert_eq!(j.segments().len(), 1);
    }
}
