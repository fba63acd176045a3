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

mod check;
mod direct;
pub mod format;
mod spare;

use crate::writer::block::AlignedMem;
use direct::open_append;
pub use format::PointRecord;
use format::{DecodeError, HEADER_LEN, Header, Kind, Record};
pub use spare::WriteAhead;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A new segment is started once the current one passes this size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Direct I/O alignment of appends (offset, length and memory): any disk's logical block.
pub const ALIGN: usize = crate::writer::block::DIRECT_ALIGN;
/// Undo granularity: blocks saved are 4 KiB aligned.
pub const BLOCK: u64 = 4096;

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
    #[error(
        "journal segment {} is damaged at byte {offset}: the undo record of seq {seq} fails its payload checksum",
        path.display()
    )]
    BadPayload {
        path: PathBuf,
        segment: u64,
        offset: u64,
        seq: u64,
    },
}

impl From<JournalError> for io::Error {
    /// Keeps the errno's kind (ENOSPC stays `StorageFull`) so callers can react to it.
    fn from(e: JournalError) -> io::Error {
        let kind = match &e {
            JournalError::Io { source, .. } => source.kind(),
            JournalError::Corruption { .. } | JournalError::BadPayload { .. } => {
                io::ErrorKind::InvalidData
            }
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
    /// File offset of the record (its header), so that a reader can verify the payload.
    pub record: u64,
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
    /// Appends may go on in it: only records of the current version, and no damage.
    pub appendable: bool,
    /// Byte ranges `[from, to)` that hold no good record (corruption): scans skip them.
    pub damaged: Vec<(u64, u64)>,
}

impl SegmentInfo {
    fn new(id: u64) -> SegmentInfo {
        SegmentInfo {
            id,
            bytes: 0,
            max_seq: 0,
            appendable: true,
            damaged: Vec::new(),
        }
    }
}

/// Records that cannot be read, and which points that costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: u64,
    pub offset: u64,
    /// Points with a seq in `from_seq..before_seq` need the damaged records to be
    /// recovered: they are lost.
    pub from_seq: u64,
    pub before_seq: u64,
    pub reason: String,
}

/// Whether [`Journal::open`] may change files: only the writer's own open may cut a torn
/// last batch or finish an interrupted commit; listings open read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    ReadOnly,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Scan {
    pub points: Vec<PointRecord>,
    pub max_seq: u64,
    /// Bytes cut from a torn last batch of the newest segment.
    pub cut_bytes: u64,
    /// Bytes of a torn last batch left in place (a read-only open cuts nothing).
    pub torn_bytes: u64,
    pub damage: Vec<Damage>,
}

pub struct Journal {
    dir: PathBuf,
    segments: Vec<SegmentInfo>,
    cur: File,
    /// `cur` was opened with O_DIRECT.
    direct: bool,
    /// The journal's device has no volatile write cache: a direct write is durable when
    /// it completes ([`Journal::durable_on_completion`]).
    durable_on_completion: bool,
    segment_size: u64,
    /// Aligned copy of what [`Journal::append`] is given, for direct I/O.
    bounce: AlignedBuf,
    /// The batch number of the next append.
    next_batch: u64,
    read_only: bool,
    /// When segments are written ahead (see [`spare`]).
    write_ahead: WriteAhead,
    spare: Option<spare::Spare>,
    /// The current segment's file has written bytes past its records (a spare put in
    /// place): syncing an append into it commits no metadata.
    cur_prewritten: bool,
    /// Appends into the current segment, to judge whether writing ahead pays.
    seg_appends: u64,
    /// The last full segment's appends were small (`None`: none judged yet).
    small_appends: Option<bool>,
    /// The segment during which a spare failed: no new try before the next one.
    spare_failed_in: Option<u64>,
    /// Appends into a segment before a spare is first judged worth writing.
    spare_after: u64,
}

/// A byte buffer whose start is [`ALIGN`]-aligned in memory, for direct I/O.
#[derive(Default)]
pub struct AlignedBuf {
    mem: AlignedMem,
    len: usize,
}

impl AlignedBuf {
    /// Empties the buffer and makes room for `n` bytes of records and their padding.
    /// Returns the room; the contents of kept memory are stale, not zeroed.
    pub fn prepare(&mut self, n: usize) -> &mut [u8] {
        let need = n + 2 * ALIGN;
        if self.mem.room() < need {
            self.mem = AlignedMem::zeroed(need);
        }
        self.len = 0;
        self.mem.bytes_mut(need)
    }

    /// Says how many bytes of the room hold records.
    pub fn set_len(&mut self, n: usize) {
        assert!(n + 2 * ALIGN <= self.mem.room(), "beyond prepared room");
        self.len = n;
    }

    pub fn as_slice(&self) -> &[u8] {
        self.mem.bytes(self.len)
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.mem.bytes_mut(self.len)
    }

    /// Empties the buffer and fills it with `records`; returns the offset of each in it.
    pub fn set_records(&mut self, records: &[Record<'_>]) -> Vec<usize> {
        let mut enc = Vec::with_capacity(records.iter().map(Record::encoded_len).sum());
        let offsets = records
            .iter()
            .map(|r| {
                let at = enc.len();
                r.encode(&mut enc);
                at
            })
            .collect();
        self.prepare(enc.len())[..enc.len()].copy_from_slice(&enc);
        self.set_len(enc.len());
        offsets
    }

    /// Bytes of memory held.
    pub fn capacity(&self) -> usize {
        self.mem.capacity()
    }

    /// Pads the records to a multiple of [`ALIGN`] with a `Pad` record.
    fn pad(&mut self) {
        let gap = format::pad_len(self.len, ALIGN);
        if gap > 0 {
            let h = format::pad_header(gap);
            let (at, end) = (self.len, self.len + gap);
            let bytes = self.mem.bytes_mut(end);
            bytes[at..at + HEADER_LEN].copy_from_slice(&h.to_bytes());
            bytes[at + HEADER_LEN..end].fill(0);
            self.len = end;
        }
    }
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:010}.log"))
}

/// Whether the device holding `dir` writes through (no volatile cache); unknown is no.
fn durable_on_completion(dir: &Path) -> bool {
    use crate::host::blockdev::{DevNum, volatile_cache_at};
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(dir) else {
        return false;
    };
    let dev = DevNum::of(m.dev());
    let volatile = (dev.major != 0)
        .then(|| dev.sysfs(Path::new("/")))
        .flatten()
        .and_then(|s| volatile_cache_at(&s));
    let durable = volatile == Some(false);
    if durable {
        tracing::info!(journal = %dir.display(), device = %dev,
            "journal device writes through: an append's sync may overlap the next append");
    } else {
        tracing::info!(journal = %dir.display(), device = %dev, ?volatile,
            "journal device may cache writes: each append is synced before the next");
    }
    durable
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

/// Walks a segment's records by headers alone from byte `from` to `limit`, calling `f`
/// with each header and its payload's place. Returns the offset after the last good
/// record and the error that stopped the walk before `limit`, if any.
fn walk(
    file: &mut File,
    segment: u64,
    (from, limit): (u64, u64),
    mut f: impl FnMut(&Header, Loc),
) -> io::Result<(u64, Option<DecodeError>)> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, &mut *file);
    let mut pos = from;
    let mut hbuf = [0u8; HEADER_LEN];
    while pos < limit {
        let avail = (limit - pos).min(HEADER_LEN as u64) as usize;
        reader.read_exact(&mut hbuf[..avail])?;
        let (h, m) = match Header::decode_meta(&mut &hbuf[..avail]) {
            Ok(hm) => hm,
            Err(e) => return Ok((pos, Some(e))),
        };
        let data = pos + m.header_len() as u64;
        if data + u64::from(h.payload_len) > limit {
            let need = m.header_len() + h.payload_len as usize;
            let have = (limit - pos) as usize;
            return Ok((pos, Some(DecodeError::Truncated { need, have })));
        }
        f(
            &h,
            Loc {
                segment,
                record: pos,
                data,
            },
        );
        // A version 1 header is shorter than the bytes read for it.
        let extra = (avail - m.header_len()) as i64;
        reader.seek_relative(i64::from(h.payload_len) - extra)?;
        pos = data + u64::from(h.payload_len);
    }
    Ok((pos, None))
}

impl Journal {
    /// Opens (creating) the journal in `dir`: reads and verifies every record of every
    /// segment, finishes an interrupted commit and cuts a torn last batch (both only with
    /// [`Access::Write`]), and collects the points and any damage.
    pub fn open(dir: &Path, segment_size: u64) -> Result<(Journal, Scan), JournalError> {
        Journal::open_with(dir, segment_size, Access::Write)
    }

    /// [`Journal::open`], read-only when `access` says so.
    pub fn open_with(
        dir: &Path,
        segment_size: u64,
        access: Access,
    ) -> Result<(Journal, Scan), JournalError> {
        crate::files::create_private_dirs(dir).map_err(io_err("creating journal folder", dir))?;
        let mut scans = Vec::new();
        let mut prev_batch = 0;
        for id in list_segments(dir)? {
            let path = segment_path(dir, id);
            let s = File::open(&path)
                .and_then(|f| check::scan_segment(&f, prev_batch))
                .map_err(io_err("reading journal segment", &path))?;
            prev_batch = prev_batch.max(s.max_batch);
            scans.push((id, s));
        }
        let next_batch = prev_batch + 1;
        // A commit wrote its segment but died before dropping the older ones.
        if let Some(at) = scans.iter().rposition(|(_, s)| s.has_commit)
            && at > 0
        {
            for (id, _) in scans.drain(..at) {
                if access == Access::Write {
                    let p = segment_path(dir, id);
                    fs::remove_file(&p).map_err(io_err("removing journal segment", &p))?;
                }
            }
            if access == Access::Write {
                sync_dir(dir)?;
            }
        }
        let mut scan = Scan::default();
        let mut segments = Vec::new();
        // Damaged undo records whose header held: which points need them can be told.
        let mut known = Vec::new();
        let newest = scans.len().saturating_sub(1);
        // Past every seq read: what a damaged range with nothing good after it may hold.
        let after_all = scans.iter().map(|(_, s)| s.max_seq).max().unwrap_or(0) + 1;
        for (i, (id, s)) in scans.iter().enumerate() {
            let path = segment_path(dir, *id);
            // Only the newest segment was being appended to: only its end may be torn.
            let torn = (i == newest)
                .then(|| s.bad.iter().position(check::BadRange::may_be_torn))
                .flatten();
            let bytes = torn.map_or(s.data_end, |t| s.bad[t].from.min(s.data_end));
            if let Some(t) = torn {
                let (from, error) = (s.bad[t].from, &s.bad[t].error);
                // Bytes that were records (or would have been): a torn piece past the
                // free space written ahead is cut alone, the free space kept.
                let cut = if from >= s.data_end {
                    s.len - from
                } else {
                    s.data_end - from
                };
                if access == Access::Write {
                    tracing::warn!(segment = %path.display(), offset = from, cut,
                        reason = %error, "journal: cutting a torn tail (the last batch, an append a crash interrupted)");
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(from).and_then(|_| f.sync_all()))
                        .map_err(io_err("cutting journal tail", &path))?;
                    scan.cut_bytes = cut;
                } else {
                    scan.torn_bytes = cut;
                }
            }
            let corrupt = &s.bad[..torn.unwrap_or(s.bad.len())];
            for b in corrupt {
                let later = || scans[i + 1..].iter().find_map(|(_, s)| s.first_seq);
                let before_seq = match &b.header {
                    Some(h) if matches!(h.kind, Kind::Undo | Kind::UndoZero) => h.seq,
                    Some(_) => 0,
                    None => b.next_seq.or_else(later).unwrap_or(after_all),
                };
                let what = match &b.header {
                    Some(h) => format!("a record of seq {} ({:?})", h.seq, h.kind),
                    None => format!("{} bytes", b.to - b.from),
                };
                if let Some(h) = b.header.filter(|h| h.kind == Kind::Undo) {
                    known.push((scan.damage.len(), h));
                }
                scan.damage.push(Damage {
                    segment: *id,
                    offset: b.from,
                    from_seq: 0,
                    before_seq,
                    reason: format!(
                        "journal segment {} is damaged at byte {}: {what}: {}",
                        path.display(),
                        b.from,
                        b.error
                    ),
                });
            }
            if let Some((prev, _)) = i.checked_sub(1).map(|p| &scans[p])
                && prev + 1 != *id
            {
                // Segments are only ever removed oldest first: a gap is lost history.
                scan.damage.push(Damage {
                    segment: prev + 1,
                    offset: 0,
                    from_seq: 0,
                    before_seq: scans[i..]
                        .iter()
                        .find_map(|(_, s)| s.first_seq)
                        .unwrap_or(after_all),
                    reason: format!(
                        "journal segments {} to {} are missing from {}",
                        prev + 1,
                        id - 1,
                        dir.display()
                    ),
                });
            }
            scan.points.extend(
                s.points
                    .iter()
                    .filter(|(at, _)| *at < bytes)
                    .map(|(_, p)| p.clone()),
            );
            scan.max_seq = scan.max_seq.max(s.max_seq);
            segments.push(SegmentInfo {
                id: *id,
                bytes,
                max_seq: s.max_seq,
                appendable: !s.has_v1 && corrupt.is_empty(),
                damaged: corrupt.iter().map(|b| (b.from, b.to)).collect(),
            });
        }
        if !known.is_empty() {
            narrow_lost(dir, &segments, &known, &mut scan.damage)?;
        }
        for d in &scan.damage {
            tracing::error!(journal = %dir.display(), "{}", d.reason);
        }
        let (cur, direct) = match segments.last() {
            Some(s) if access == Access::ReadOnly => {
                let p = segment_path(dir, s.id);
                (
                    File::open(&p).map_err(io_err("opening journal segment", &p))?,
                    false,
                )
            }
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
        let mut cur_prewritten = false;
        if access == Access::Write {
            // A spare a crash interrupted (or finished but never put in place): its zeros
            // are worth less than knowing it is whole.
            let spare = spare::spare_path(dir);
            match fs::remove_file(&spare) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("removing a spare journal segment", &spare)(e));
                }
                _ => {}
            }
            let end = segments.last().map_or(0, |s| s.bytes);
            cur_prewritten = cur.metadata().is_ok_and(|m| m.len() > end);
        }
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                segments,
                cur,
                direct,
                durable_on_completion: access == Access::Write && durable_on_completion(dir),
                segment_size,
                bounce: AlignedBuf::default(),
                next_batch,
                read_only: access == Access::ReadOnly,
                write_ahead: WriteAhead::Never,
                spare: None,
                cur_prewritten,
                seg_appends: 0,
                small_appends: None,
                spare_failed_in: None,
                spare_after: spare::APPENDS_BEFORE_SPARE,
            },
            scan,
        ))
    }

    fn create_segment(dir: &Path, id: u64) -> Result<(File, bool, SegmentInfo), JournalError> {
        let p = segment_path(dir, id);
        let (f, direct) = open_append(&p, true).map_err(io_err("creating journal segment", &p))?;
        sync_dir(dir)?;
        Ok((f, direct, SegmentInfo::new(id)))
    }

    /// When to write segments ahead: a group's journal (`Never` by default: a recover's
    /// session log appends rarely).
    pub fn set_write_ahead(&mut self, mode: WriteAhead) {
        self.write_ahead = mode;
        if mode == WriteAhead::Never {
            self.spare = None;
        }
    }

    /// Drops the spare segment (written ahead or being written), freeing its room for
    /// history on a full volume. Whether there was one.
    pub fn discard_spare(&mut self) -> bool {
        self.spare_failed_in = self.segments.last().map(|s| s.id);
        self.spare.take().is_some()
    }

    /// Whether the spare is ready to be put in place; a spare that failed is dropped.
    fn poll_spare(&mut self) -> bool {
        let Some(s) = self.spare.as_mut() else {
            return false;
        };
        match s.poll() {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(journal = %self.dir.display(), error = %e,
                    "journal: could not write a segment ahead; appends grow the segment instead");
                self.discard_spare();
                false
            }
        }
    }

    /// Starts writing the next segment ahead when appends are small and the volume has
    /// room to spare (a segment beyond it).
    fn maybe_start_spare(&mut self) {
        let cur = self.segments.last().map(|s| s.id);
        // Judged on evidence: enough appends into this segment, small on average (or
        // the segment before it was judged so).
        let small = match (self.write_ahead, self.small_appends) {
            (WriteAhead::Never, _) => false,
            (WriteAhead::Always, _) => true,
            (WriteAhead::Auto, Some(small)) => small,
            (WriteAhead::Auto, None) => {
                let bytes = self.segments.last().map_or(0, |s| s.bytes);
                self.seg_appends >= self.spare_after.max(1)
                    && bytes / self.seg_appends < spare::SMALL_APPEND
            }
        };
        if !small || self.spare.is_some() || self.spare_failed_in.is_some_and(|id| Some(id) == cur)
        {
            return;
        }
        let room = nix::sys::statvfs::statvfs(&self.dir)
            .map(|v| v.blocks_available() * v.fragment_size())
            .unwrap_or(0);
        if room < 2 * self.segment_size {
            self.spare_failed_in = cur;
            return;
        }
        self.spare = Some(spare::Spare::start(&self.dir, self.segment_size));
    }

    /// Puts the ready spare in place as segment `id`.
    fn install_spare(
        &mut self,
        s: spare::Spare,
        id: u64,
    ) -> Result<(File, bool, SegmentInfo), JournalError> {
        let p = segment_path(&self.dir, id);
        s.install(&p)
            .map_err(io_err("putting a spare journal segment in place", &p))?;
        sync_dir(&self.dir)?;
        if let Some(parent) = self.dir.parent() {
            sync_dir(parent)?;
        }
        let (f, direct) = open_append(&p, false).map_err(io_err("opening journal segment", &p))?;
        tracing::info!(segment = %p.display(), "journal: segment written ahead put in place");
        Ok((f, direct, SegmentInfo::new(id)))
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
        if self.read_only {
            return Err(JournalError::Io {
                action: "appending to a journal opened read-only",
                path: self.dir.clone(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            });
        }
        let cur = self
            .segments
            .last()
            .expect("a journal always has a segment");
        // A segment written before (buffered, or cut at a torn tail) may end unaligned:
        // direct appends start a new one rather than rewrite its last block.
        let unaligned = self.direct && !cur.bytes.is_multiple_of(ALIGN as u64);
        // Nor is a damaged or old-version segment appended to: it stays as it was found.
        let sealed = unaligned || !cur.appendable;
        let (id, bytes) = (cur.id, cur.bytes);
        // A segment that grows with each append is left as soon as one written ahead is
        // ready.
        let spare_ready = self.poll_spare();
        let to_spare = spare_ready && !self.cur_prewritten;
        if bytes > 0 && (bytes + len > self.segment_size || sealed || to_spare) {
            // The current segment is synced: every append is followed by a sync before
            // anyone relies on it, and rotation happens only between batches.
            self.cur
                .sync_data()
                .map_err(io_err("syncing journal segment", &self.dir))?;
            if self.seg_appends >= self.spare_after.max(1) {
                self.small_appends = Some(bytes / self.seg_appends < spare::SMALL_APPEND);
            }
            let spare = if spare_ready { self.spare.take() } else { None };
            // A spare that cannot be put in place costs its speed, never a write: the
            // segment is made the plain way (the old one is synced either way).
            let installed = spare.and_then(|s| {
                self.install_spare(s, id + 1)
                    .inspect_err(|e| {
                        tracing::warn!(journal = %self.dir.display(), error = %e,
                            "journal: a segment written ahead could not be put in place; making one the plain way");
                        self.spare_failed_in = Some(id + 1);
                    })
                    .ok()
            });
            let prewritten = installed.is_some();
            let (f, direct, info) = match installed {
                Some(made) => made,
                None => Self::create_segment(&self.dir, id + 1)?,
            };
            self.cur_prewritten = prewritten;
            self.seg_appends = 0;
            self.cur = f;
            self.direct = direct;
            self.segments.push(info);
        }
        self.maybe_start_spare();
        let cur = self.segments.last().unwrap();
        Ok((cur.id, cur.bytes))
    }

    /// Appends `records` (not yet durable: call [`Journal::sync`]), after
    /// [`Journal::prepare_append`] (of their [`Record::encoded_len`] together), and returns
    /// where each landed. On error the segment is cut back to where it was, so a failed
    /// append leaves no partial record. Encodes into a kept buffer; see
    /// [`Journal::append_aligned`] for the copy-free way.
    pub fn append(&mut self, records: &[Record<'_>], max_seq: u64) -> io::Result<Vec<Loc>> {
        let mut b = std::mem::take(&mut self.bounce);
        let offsets = b.set_records(records);
        let end = self.end();
        let r = self.append_aligned(&mut b, max_seq);
        // Kept: a group's journal only appends small records this way (points, commits),
        // and a recover's session log appends steps of one size, so the buffer is
        // allocated (and its pages faulted in) once.
        self.bounce = b;
        r?;
        Ok(offsets
            .into_iter()
            .map(|at| {
                let record = end.offset + at as u64;
                Loc {
                    segment: end.segment,
                    record,
                    data: record + HEADER_LEN as u64,
                }
            })
            .collect())
    }

    /// Appends the records in `buf` (padding them in place to an [`ALIGN`] boundary).
    pub fn append_aligned(&mut self, buf: &mut AlignedBuf, max_seq: u64) -> io::Result<()> {
        buf.pad();
        format::stamp_batch(buf.as_mut_slice(), self.next_batch);
        self.next_batch += 1;
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
            self.cur_prewritten = false;
            r = self.cur.write_all_at(buf.as_slice(), cur.bytes);
        }
        if let Err(e) = r {
            let _ = self.cur.set_len(cur.bytes);
            self.cur_prewritten = false;
            return Err(e);
        }
        cur.bytes += buf.as_slice().len() as u64;
        cur.max_seq = cur.max_seq.max(max_seq);
        self.seg_appends += 1;
        Ok(())
    }

    /// Whether appends go to the current segment by direct I/O: their data is on the
    /// device when the write returns, and [`Journal::sync_handle`]'s sync makes it durable.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Whether a direct append is on stable storage once written, before any sync: the
    /// device of the journal's folder says `write through` (no volatile cache). Only then
    /// may the next append be written before this one's sync: on a device with a volatile
    /// cache a power cut may keep the later append and lose part of this one, which a scan
    /// could not tell from corruption (see `check::BadRange::may_be_torn`).
    pub fn durable_on_completion(&self) -> bool {
        self.direct && self.durable_on_completion
    }

    /// The current segment's file, to sync without the journal (its lock) held.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.cur.try_clone()
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
        // Synced, so that a power cut cannot bring back a segment whose points are gone.
        sync_dir(&self.dir)?;
        Ok(Some(s))
    }

    /// Starts over with one new segment holding `records`, then drops every older segment.
    /// The records end with a `Commit`, so a crash in between is finished by the next
    /// [`Journal::open`].
    pub fn restart_with(
        &mut self,
        records: &[Record<'_>],
        max_seq: u64,
    ) -> Result<(), JournalError> {
        let next = self.segments.last().map_or(1, |s| s.id + 1);
        let (f, direct, info) = Self::create_segment(&self.dir, next)?;
        self.cur = f;
        self.direct = direct;
        self.cur_prewritten = false;
        self.seg_appends = 0;
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
        // Damage at the start was reported at open: the first good record is after it.
        let mut pos = s.damaged.first().filter(|d| d.0 == 0).map_or(0, |d| d.1);
        let mut hbuf = [0u8; HEADER_LEN];
        while pos < s.bytes {
            let n =
                read_up_to(&file, &mut hbuf, pos).map_err(io_err("reading journal segment", &p))?;
            let (h, m) = Header::decode_meta(&mut &hbuf[..n]).map_err(|source| {
                JournalError::Corruption {
                    path: p.clone(),
                    offset: pos,
                    source,
                }
            })?;
            if h.kind != Kind::Pad {
                return Ok(Some(h.seq));
            }
            pos += m.record_len(&h);
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
        // The good pieces between damaged ranges (what they held was reported at open).
        let mut pieces = Vec::new();
        let mut at = start;
        for &(from, to) in &s.damaged {
            if from > at {
                pieces.push((at, from.min(s.bytes)));
            }
            at = at.max(to);
        }
        if at < s.bytes {
            pieces.push((at, s.bytes));
        }
        for piece in pieces {
            let (stop, err) = walk(&mut file, s.id, piece, |h, loc| {
                if h.seq > after {
                    f(h, loc)
                }
            })
            .map_err(io_err("reading journal segment", &p))?;
            if let Some(source) = err {
                return Err(JournalError::Corruption {
                    path: p,
                    offset: stop,
                    source,
                });
            }
        }
    }
    Ok(end)
}

/// Narrows the points a damaged undo record costs to those that need it. A recover to
/// point P takes each block from the earliest record after P that saved it: the damaged
/// record (seq s) is used for block b only when no record saved b between P and s. So P
/// needs it when P < s and P is at or after the last save of some block of it before s.
fn narrow_lost(
    dir: &Path,
    segments: &[SegmentInfo],
    known: &[(usize, Header)],
    damage: &mut [Damage],
) -> Result<(), JournalError> {
    let blocks = |h: &Header| (h.offset / BLOCK, (h.offset + h.length).div_ceil(BLOCK));
    // Per damaged record, per block: the seq of the last earlier save (0: none).
    let mut last: Vec<Vec<u64>> = known
        .iter()
        .map(|(_, h)| {
            let (b0, b1) = blocks(h);
            vec![0; (b1 - b0) as usize]
        })
        .collect();
    scan_segments(dir, segments, Pos::default(), 0, |h, _| {
        if !matches!(h.kind, Kind::Undo | Kind::UndoZero) {
            return;
        }
        for ((_, d), saves) in known.iter().zip(last.iter_mut()) {
            let ((b0, b1), (c0, c1)) = (blocks(d), blocks(h));
            if h.disk != d.disk || h.seq >= d.seq || c1 <= b0 || c0 >= b1 {
                continue;
            }
            for b in c0.max(b0)..c1.min(b1) {
                let at = &mut saves[(b - b0) as usize];
                *at = (*at).max(h.seq);
            }
        }
    })?;
    for ((i, _), saves) in known.iter().zip(&last) {
        damage[*i].from_seq = saves.iter().copied().min().unwrap_or(0);
    }
    Ok(())
}

/// Reads journal payloads by [`Loc`], keeping segment files open (an open segment stays
/// readable even after pruning removes its name). A record's payload is verified against
/// its checksum, whole, before the first read of any part of it.
#[derive(Default)]
pub struct PayloadReader {
    dir: PathBuf,
    files: std::collections::HashMap<u64, File>,
    /// Records whose payload checksum held: (segment, record offset).
    verified: std::collections::HashSet<(u64, u64)>,
}

impl PayloadReader {
    pub fn new(dir: &Path) -> PayloadReader {
        PayloadReader {
            dir: dir.to_path_buf(),
            ..Default::default()
        }
    }

    fn file(&mut self, segment: u64) -> Result<&File, JournalError> {
        use std::collections::hash_map::Entry;
        Ok(match self.files.entry(segment) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let p = segment_path(&self.dir, segment);
                e.insert(File::open(&p).map_err(io_err("opening journal segment", &p))?)
            }
        })
    }

    /// Checks the checksums of the record `loc` is part of (once per record).
    pub fn verify(&mut self, loc: Loc) -> Result<(), JournalError> {
        if self.verified.contains(&(loc.segment, loc.record)) {
            return Ok(());
        }
        let path = segment_path(&self.dir, loc.segment);
        let f = self.file(loc.segment)?;
        let mut head = [0u8; HEADER_LEN];
        let n = read_up_to(f, &mut head, loc.record)
            .map_err(io_err("reading journal segment", &path))?;
        let corrupt = |source| JournalError::Corruption {
            path: path.clone(),
            offset: loc.record,
            source,
        };
        let (h, m) = Header::decode_meta(&mut &head[..n]).map_err(corrupt)?;
        let mut payload = vec![0u8; h.payload_len as usize];
        let at = loc.record + m.header_len() as u64;
        let got =
            read_up_to(f, &mut payload, at).map_err(io_err("reading journal segment", &path))?;
        if got < payload.len() {
            return Err(corrupt(DecodeError::Truncated {
                need: m.header_len() + payload.len(),
                have: m.header_len() + got,
            }));
        }
        if crc32c::crc32c(&payload) != h.payload_crc {
            return Err(JournalError::BadPayload {
                path,
                segment: loc.segment,
                offset: loc.record,
                seq: h.seq,
            });
        }
        self.verified.insert((loc.segment, loc.record));
        Ok(())
    }

    /// Reads `buf.len()` bytes at `loc`, after verifying the record they belong to.
    pub fn read(&mut self, loc: Loc, buf: &mut [u8]) -> io::Result<()> {
        self.verify(loc)?;
        self.file(loc.segment)?.read_exact_at(buf, loc.data)
    }
}

/// Reads into `buf` at `at` until it is full or the file ends; returns the bytes read.
fn read_up_to(f: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::format::{CommitRecord, Undo};
    use super::*;

    fn undo(seq: u64, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        Undo {
            seq,
            disk: 7,
            offset: seq * 4096,
            length: data.len() as u64,
            time_us: 1,
            data: Some(data),
        }
        .encode(&mut b);
        b
    }

    fn point(seq: u64, label: &str) -> Vec<u8> {
        let mut b = Vec::new();
        PointRecord {
            seq,
            time_us: seq as i64,
            app: true,
            label: label.into(),
        }
        .encode(&mut b);
        b
    }

    /// Appends the records encoded in `rec` as one synced batch of highest seq `seq`.
    fn put(j: &mut Journal, rec: &[u8], seq: u64) {
        j.prepare_append(rec.len() as u64).unwrap();
        j.append(&recs(rec), seq).unwrap();
        j.sync().unwrap();
    }

    /// The records encoded in `bytes`, for [`Journal::append`].
    fn recs(mut bytes: &[u8]) -> Vec<Record<'_>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            out.push(Record::decode(&mut bytes).unwrap());
        }
        out
    }

    fn fill(dir: &Path, seg_size: u64) -> Journal {
        let (mut j, scan) = Journal::open_with(dir, seg_size, Access::Write).unwrap();
        assert_eq!(scan.max_seq, 0);
        for seq in 1..=10 {
            let rec = if seq % 5 == 0 {
                point(seq, &format!("p{seq}"))
            } else {
                undo(seq, &[seq as u8; 100])
            };
            put(&mut j, &rec, seq);
        }
        j
    }

    /// Appends records of seq `from..=to` with prewrite on, waiting for a spare to be put
    /// in place first. Returns the journal.
    fn fill_prewritten(dir: &Path, seg_size: u64, from: u64, to: u64) -> Journal {
        let (mut j, _) = Journal::open_with(dir, seg_size, Access::Write).unwrap();
        j.set_write_ahead(WriteAhead::Auto);
        j.spare_after = 1;
        for seq in from..=to {
            let rec = if seq % 5 == 0 {
                point(seq, &format!("p{seq}"))
            } else {
                undo(seq, &[seq as u8; 3000])
            };
            // Give each spare its time, so that every rotation moves into one.
            while j.spare.is_some() && !j.poll_spare() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            put(&mut j, &rec, seq);
        }
        j
    }

    #[test]
    fn small_appends_go_into_segments_written_ahead_and_read_back_whole() {
        let t = tempfile::tempdir().unwrap();
        let seg = 64 << 10;
        let j = fill_prewritten(t.path(), seg, 1, 40);
        let ids = list_segments(t.path()).unwrap();
        assert!(ids.len() >= 3, "{ids:?}");
        // The first segment grew by appends; the ones after it were written ahead, whole.
        for id in &ids[1..] {
            let len = fs::metadata(segment_path(t.path(), *id)).unwrap().len();
            assert_eq!(len, seg, "segment {id} has the spare's size");
        }
        let last = j.segments().last().unwrap().bytes;
        assert!(last < seg, "records end before the file does: {last}");
        drop(j);
        let (mut j, scan) = Journal::open_with(t.path(), seg, Access::Write).unwrap();
        assert!(
            !spare::spare_path(t.path()).exists(),
            "a left spare is removed"
        );
        assert_eq!((scan.max_seq, scan.cut_bytes, scan.torn_bytes), (40, 0, 0));
        assert!(scan.damage.is_empty(), "{:?}", scan.damage);
        let labels: Vec<_> = scan.points.iter().map(|p| p.label.clone()).collect();
        assert_eq!(
            labels,
            (1..=8).map(|i| format!("p{}", i * 5)).collect::<Vec<_>>()
        );
        assert_eq!(j.segments().last().unwrap().bytes, last);
        assert!(
            j.cur_prewritten,
            "appends go on into the written-ahead space"
        );
        let mut seen = Vec::new();
        j.scan_after(0, |h, _| seen.push(h.seq)).unwrap();
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        // Appending after the reopen lands right after the last record.
        let rec = undo(41, &[41; 3000]);
        put(&mut j, &rec, 41);
        drop(j);
        let (_, scan) = Journal::open_with(t.path(), seg, Access::ReadOnly).unwrap();
        assert_eq!((scan.max_seq, scan.damage.len()), (41, 0));
    }

    #[test]
    fn a_torn_append_in_space_written_ahead_is_cut_and_zeros_in_the_middle_are_damage() {
        let t = tempfile::tempdir().unwrap();
        let seg = 256 << 10;
        let j = fill_prewritten(t.path(), seg, 1, 20);
        let end = j.segments().last().unwrap().bytes;
        let id = j.segments().last().unwrap().id;
        drop(j);
        let p = segment_path(t.path(), id);
        // A torn next append: its first sector written, the rest still zeros.
        let mut torn = undo(21, &[21; 3000]);
        let record = torn.len() as u64;
        torn.truncate(512);
        {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all_at(&torn, end).unwrap();
        }
        let (j, scan) = Journal::open_with(t.path(), seg, Access::ReadOnly).unwrap();
        assert_eq!((scan.max_seq, scan.torn_bytes), (20, record));
        assert!(scan.damage.is_empty(), "{:?}", scan.damage);
        drop(j);
        let (j, scan) = Journal::open_with(t.path(), seg, Access::Write).unwrap();
        assert_eq!((scan.max_seq, scan.cut_bytes), (20, record));
        assert_eq!(j.segments().last().unwrap().bytes, end);
        drop(j);
        // Zeros where a record was, with good records after them: damage, never free space.
        let first = ALIGN as u64;
        {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all_at(&[0u8; 4096], first).unwrap();
        }
        let (_, scan) = Journal::open_with(t.path(), seg, Access::ReadOnly).unwrap();
        assert_eq!(scan.damage.len(), 1, "{:?}", scan.damage);
        assert_eq!(scan.max_seq, 20, "records after the zeros are still read");
    }

    #[test]
    fn bytes_past_the_space_written_ahead_are_cut_alone_and_the_space_kept() {
        let t = tempfile::tempdir().unwrap();
        let seg = 256 << 10;
        let j = fill_prewritten(t.path(), seg, 1, 12);
        let (id, end) = (
            j.segments().last().unwrap().id,
            j.segments().last().unwrap().bytes,
        );
        drop(j);
        let p = segment_path(t.path(), id);
        let len = fs::metadata(&p).unwrap().len();
        assert_eq!(len, seg);
        // Something appended at the file's end, past the zeros (an older build's append
        // would go there): no record, nothing after it.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, b"MTJR\x02\x01garbage").unwrap();
        drop(f);
        let (_, scan) = Journal::open_with(t.path(), seg, Access::ReadOnly).unwrap();
        assert_eq!((scan.max_seq, scan.torn_bytes), (12, 13));
        assert!(scan.damage.is_empty(), "{:?}", scan.damage);
        let (j, scan) = Journal::open_with(t.path(), seg, Access::Write).unwrap();
        assert_eq!((scan.max_seq, scan.cut_bytes), (12, 13));
        assert_eq!(fs::metadata(&p).unwrap().len(), len, "the zeros stay");
        assert_eq!(j.segments().last().unwrap().bytes, end);
        assert!(j.cur_prewritten);
    }

    #[test]
    fn a_spare_is_dropped_for_room_and_not_made_again_in_the_same_segment() {
        let t = tempfile::tempdir().unwrap();
        let seg = 256 << 10;
        let mut j = fill_prewritten(t.path(), seg, 1, 3);
        // fill_prewritten leaves the next spare started (appends are small).
        assert!(j.spare.is_some());
        while !j.poll_spare() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(spare::spare_path(t.path()).exists());
        assert!(j.discard_spare(), "there was one to drop");
        assert!(!spare::spare_path(t.path()).exists(), "its room is free");
        assert!(!j.discard_spare());
        // The volume was full a moment ago: no new spare before the next segment.
        let rec = undo(4, &[4; 3000]);
        put(&mut j, &rec, 4);
        assert!(j.spare.is_none());
    }

    #[test]
    fn always_writes_ahead_whatever_the_appends_and_never_writes_nothing_ahead() {
        for (mode, made) in [(WriteAhead::Always, true), (WriteAhead::Never, false)] {
            let t = tempfile::tempdir().unwrap();
            let (mut j, _) = Journal::open_with(t.path(), 64 << 20, Access::Write).unwrap();
            j.set_write_ahead(mode);
            j.spare_after = 1;
            let rec = undo(1, &vec![2; 2 << 20]);
            put(&mut j, &rec, 1);
            j.prepare_append(rec.len() as u64).unwrap();
            assert_eq!(j.spare.is_some(), made, "{mode:?}");
        }
    }

    #[test]
    fn a_spare_that_cannot_be_put_in_place_costs_no_write() {
        let t = tempfile::tempdir().unwrap();
        let seg = 64 << 10;
        let mut j = fill_prewritten(t.path(), seg, 1, 3);
        while !j.poll_spare() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Gone under it (an admin's clean-up, say): the rename at the rotation fails.
        fs::remove_file(spare::spare_path(t.path())).unwrap();
        let before = j.segments().len();
        for seq in 4..=40 {
            let rec = undo(seq, &[seq as u8; 3000]);
            put(&mut j, &rec, seq);
        }
        assert!(j.segments().len() > before, "rotated");
        drop(j);
        let (_, scan) = Journal::open_with(t.path(), seg, Access::ReadOnly).unwrap();
        assert_eq!((scan.max_seq, scan.damage.len()), (40, 0));
    }

    #[test]
    fn a_journal_of_a_few_appends_or_of_large_ones_writes_nothing_ahead() {
        let t = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
        j.set_write_ahead(WriteAhead::Auto);
        for seq in 1..=20 {
            let rec = undo(seq, &[1; 100]);
            put(&mut j, &rec, seq);
        }
        assert!(j.spare.is_none(), "20 appends are no evidence");
        let t = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open_with(t.path(), 64 << 20, Access::Write).unwrap();
        j.set_write_ahead(WriteAhead::Auto);
        j.spare_after = 4;
        let big = undo(1, &vec![2; 2 << 20]);
        for seq in 1..=10 {
            put(&mut j, &big, seq);
        }
        assert!(j.spare.is_none(), "appends of 2 MiB grow their segments");
    }

    #[test]
    fn reopen_finds_points_and_rotates() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 400);
        assert!(j.segments().len() > 2, "{:?}", j.segments());
        drop(j);
        let (j, scan) = Journal::open_with(t.path(), 400, Access::Write).unwrap();
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
        let (mut j, scan) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
        assert_eq!(scan.max_seq, 2);
        let mid = j.end();
        for seq in 3..=5 {
            let rec = undo(seq, &[seq as u8; 5000]);
            put(&mut j, &rec, seq);
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
        let (j, scan) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
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
            let (_, scan) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
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
        let (_, scan) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
        assert_eq!(scan.cut_bytes, (n - good) as u64);
        assert!(scan.damage.is_empty());
    }

    /// Flips one byte of `path` at `at`.
    fn flip(path: &Path, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at as usize] ^= 0x40;
        fs::write(path, &bytes).unwrap();
    }

    /// The offset of the record of `seq` in the segment file `path`.
    fn record_at(path: &Path, seq: u64) -> u64 {
        let mut found = None;
        let len = fs::metadata(path).unwrap().len();
        walk(&mut File::open(path).unwrap(), 0, (0, len), |h, loc| {
            if h.seq == seq && found.is_none() {
                found = Some(loc.record);
            }
        })
        .unwrap();
        found.unwrap()
    }

    #[test]
    fn corruption_in_an_older_segment_is_reported_not_fatal() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 400);
        let first = segment_path(t.path(), j.segments()[0].id);
        drop(j);
        flip(&first, 10); // the first record's header
        let before = fs::read(&first).unwrap();
        let (j, scan) = Journal::open_with(t.path(), 400, Access::Write).unwrap();
        assert_eq!(scan.damage.len(), 1, "{:?}", scan.damage);
        let d = &scan.damage[0];
        assert_eq!((d.segment, d.offset), (j.segments()[0].id, 0));
        // Seq 2 (the next good record) and older points need what was lost.
        assert_eq!(d.before_seq, 2, "{d:?}");
        assert_eq!(scan.points.len(), 2);
        assert_eq!(scan.cut_bytes, 0);
        assert_eq!(
            fs::read(&first).unwrap(),
            before,
            "nothing cut or rewritten"
        );
        // Scans skip the damaged range and see every other record.
        let mut seen = Vec::new();
        j.scan_after(0, |h, _| seen.push(h.seq)).unwrap();
        seen.retain(|&s| s != 0);
        assert_eq!(seen, (2..=10).collect::<Vec<_>>());
    }

    #[test]
    fn a_bad_payload_before_a_later_batch_is_corruption_and_is_not_cut() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 1 << 20);
        let seg = segment_path(t.path(), j.segments().last().unwrap().id);
        drop(j);
        // Seq 7 is followed by batches 8, 9 and 10 (the point): it was synced before them.
        flip(&seg, record_at(&seg, 7) + HEADER_LEN as u64 + 3);
        let before = fs::read(&seg).unwrap();
        for access in [Access::ReadOnly, Access::Write] {
            let (mut j, scan) = Journal::open_with(t.path(), 1 << 20, access).unwrap();
            assert_eq!((scan.cut_bytes, scan.torn_bytes), (0, 0), "{access:?}");
            assert_eq!(scan.damage.len(), 1);
            assert_eq!(scan.damage[0].before_seq, 7);
            assert!(scan.damage[0].reason.contains("seq 7"), "{:?}", scan.damage);
            assert_eq!(scan.points.len(), 2, "p10 after the damage is kept");
            assert_eq!(
                fs::read(&seg).unwrap(),
                before,
                "{access:?} changed the segment"
            );
            if access == Access::Write {
                // New records go to a new segment: the damaged one stays as found.
                let (id, _) = j.prepare_append(100).unwrap();
                assert_ne!(id, j.segments()[0].id);
            }
        }
        // A reader of the payload finds the damage too.
        let mut r = PayloadReader::new(t.path());
        let at = record_at(&seg, 7);
        let loc = Loc {
            segment: 1,
            record: at,
            data: at + HEADER_LEN as u64,
        };
        let err = r.read(loc, &mut [0u8; 10]).unwrap_err();
        assert!(err.to_string().contains("seq 7"), "{err}");
    }

    #[test]
    fn a_damaged_record_costs_only_the_points_that_need_it() {
        let t = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
        let at = |seq: u64, offset: u64, fill: u8| {
            let mut b = Vec::new();
            Undo {
                seq,
                disk: 7,
                offset,
                length: 8192,
                time_us: 1,
                data: Some(&[fill; 8192]),
            }
            .encode(&mut b);
            b
        };
        // Blocks 0-1 saved at 1 and again at 3 (after point 2); blocks 4-5 at 5.
        let batches = [
            at(1, 0, 1),
            point(2, "p2"),
            at(3, 0, 3),
            point(4, "p4"),
            at(5, 4 << 12, 5),
            point(6, "p6"),
        ];
        for (i, r) in batches.iter().enumerate() {
            j.prepare_append(r.len() as u64).unwrap();
            j.append(&recs(r), i as u64 + 1).unwrap();
            j.sync().unwrap();
        }
        drop(j);
        let seg = segment_path(t.path(), 1);
        flip(&seg, record_at(&seg, 3) + HEADER_LEN as u64 + 10);
        let (_, scan) = Journal::open_with(t.path(), 1 << 20, Access::ReadOnly).unwrap();
        let d = &scan.damage[0];
        // Point 2 needs seq 3 for blocks 0-1; a point before 1 would take seq 1's save.
        assert_eq!((d.from_seq, d.before_seq), (1, 3), "{d:?}");
    }

    #[test]
    fn a_torn_last_batch_is_cut_only_by_a_writing_open_even_with_sectors_out_of_order() {
        let t = tempfile::tempdir().unwrap();
        let mut j = fill(t.path(), 1 << 20);
        let seg = segment_path(t.path(), j.segments().last().unwrap().id);
        let good = j.end().offset;
        // One last append of two records, the first torn, the second landed.
        let mut batch = undo(11, &[0xaa; 3000]);
        batch.extend(undo(12, &[0xbb; 3000]));
        put(&mut j, &batch, 12);
        drop(j);
        flip(&seg, good + 100);
        let torn = fs::read(&seg).unwrap();
        let (_, scan) = Journal::open_with(t.path(), 1 << 20, Access::ReadOnly).unwrap();
        assert_eq!(scan.torn_bytes, torn.len() as u64 - good);
        assert!(scan.damage.is_empty(), "{:?}", scan.damage);
        assert_eq!(fs::read(&seg).unwrap(), torn, "a read-only open cut");
        let (_, scan) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
        assert_eq!(scan.cut_bytes, torn.len() as u64 - good);
        assert_eq!(fs::read(&seg).unwrap(), torn[..good as usize]);
        assert_eq!(scan.points.len(), 2);
    }

    #[test]
    fn a_gap_in_segment_ids_loses_the_points_before_it() {
        let t = tempfile::tempdir().unwrap();
        let j = fill(t.path(), 400);
        let ids: Vec<u64> = j.segments().iter().map(|s| s.id).collect();
        drop(j);
        assert!(ids.len() >= 4, "{ids:?}");
        let gone = ids[1];
        fs::remove_file(segment_path(t.path(), gone)).unwrap();
        let (_, scan) = Journal::open_with(t.path(), 400, Access::ReadOnly).unwrap();
        assert_eq!(scan.damage.len(), 1, "{:?}", scan.damage);
        assert_eq!(scan.damage[0].segment, gone);
        assert!(scan.damage[0].reason.contains("missing"));
    }

    #[test]
    fn a_version_1_journal_is_read_and_appends_go_to_a_new_segment() {
        let t = tempfile::tempdir().unwrap();
        let mut old = Vec::new();
        let u = Header {
            disk: 7,
            length: 100,
            ..Header::new(Kind::Undo, 1)
        };
        format::encode_v1(&u, &[1; 100], &mut old);
        format::encode_v1(&Header::new(Kind::AppPoint, 2), b"old", &mut old);
        fs::write(segment_path(t.path(), 1), &old).unwrap();
        let (mut j, scan) = Journal::open_with(t.path(), 1 << 20, Access::Write).unwrap();
        assert_eq!((scan.max_seq, scan.points.len()), (2, 1));
        assert_eq!(scan.points[0].label, "old");
        let (id, _) = j.prepare_append(100).unwrap();
        assert_eq!(id, 2, "a version 1 segment is not appended to");
        let rec = undo(3, &[3; 100]);
        j.append(&recs(&rec), 3).unwrap();
        j.sync().unwrap();
        let mut seen = Vec::new();
        j.scan_after(0, |h, loc| seen.push((h.seq, loc.segment)))
            .unwrap();
        seen.retain(|&(s, _)| s != 0);
        assert_eq!(seen, [(1, 1), (2, 1), (3, 2)]);
        assert_eq!(fs::read(segment_path(t.path(), 1)).unwrap(), old);
    }

    #[test]
    fn restart_with_drops_older_segments_even_after_a_crash() {
        let t = tempfile::tempdir().unwrap();
        let mut j = fill(t.path(), 400);
        let mut kept = point(5, "kept");
        CommitRecord {
            seq: 10,
            time_us: 0,
        }
        .encode(&mut kept);
        // Simulate a crash after the new segment is written but before the old are gone.
        let next = j.segments().last().unwrap().id + 1;
        fs::write(segment_path(t.path(), next), &kept).unwrap();
        drop(j);
        let (j2, scan) = Journal::open_with(t.path(), 400, Access::Write).unwrap();
        assert_eq!(j2.segments().len(), 1);
        assert_eq!(scan.points.len(), 1);
        assert_eq!(scan.points[0].label, "kept");
        assert_eq!(scan.max_seq, 10);
        j = j2;
        j.restart_with(&recs(&kept), 10).unwrap();
        assert_eq!(j.segments().len(), 1);
    }
}
