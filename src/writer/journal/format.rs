//! The journal's on-disk record: a pure codec with magic, version and two checksums.
//!
//! Layout of version 2 (little-endian), 64 header bytes then the payload:
//! ```text
//!  0 magic u32 | 4 version u8 | 5 kind u8 | 6 flags u16 | 8 seq u64 | 16 disk u32
//! 20 payload_len u32 | 24 offset u64 | 32 length u64 | 40 time_us i64
//! 48 batch u64 | 56 payload crc32c u32 | 60 header crc32c u32 (over bytes 0..60)
//! ```
//! The header has its own checksum so that a scan can walk a segment by headers alone
//! (skipping payloads) and still trust the lengths it skips by. `batch` numbers the
//! journal's appends (one write and one sync each) and flag [`LAST_IN_BATCH`] marks an
//! append's last record: after a crash only the last batch may be torn, so a bad record
//! followed by a good record of a later batch is corruption, not a tail to cut.
//!
//! Version 1 (written before batches existed) is the same without `batch`: 56 bytes, the
//! checksums at 48 and 52. It is still read; new records are always version 2.

pub const MAGIC: u32 = 0x524a_544d; // "MTJR" read as little-endian bytes
pub const VERSION: u8 = 2;
/// Header bytes of a record of [`VERSION`].
pub const HEADER_LEN: usize = 64;
/// Header bytes of a version 1 record.
pub const V1_HEADER_LEN: usize = 56;
/// Flag: the last record of its batch (an append ends after it).
pub const LAST_IN_BATCH: u16 = 1;
/// Largest payload a record may carry: one undo extent of a maximal NBD request.
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// A recovery point (kinds `CrashPoint` and `AppPoint`); the payload is its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointRecord {
    pub seq: u64,
    pub time_us: i64,
    pub app: bool,
    pub label: String,
}

/// Old contents of a range of a disk, saved before the range is overwritten (kinds `Undo`
/// and `UndoZero`: a range that held only zeros is saved without its bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undo<'a> {
    pub seq: u64,
    /// Which disk of the group (see [`disk_id`]).
    pub disk: u32,
    pub offset: u64,
    pub length: u64,
    pub time_us: i64,
    /// The old contents; `None` when they were all zeros.
    pub data: Option<&'a [u8]>,
}

/// A commit: the point it follows is the baseline, every older segment is void. `seq` is
/// the highest seq the group had given out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRecord {
    pub seq: u64,
    pub time_us: i64,
}

/// Any record with its payload (borrowed from the bytes it was decoded from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Undo(Undo<'a>),
    Point(PointRecord),
    Commit(CommitRecord),
    /// Zeros up to an alignment boundary: `len` bytes in all, header included.
    Pad {
        len: usize,
    },
}

/// What a record means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Old contents of `length` bytes at `offset` of `disk`, saved before an overwrite.
    Undo = 1,
    /// The region held only zeros before the overwrite: no payload.
    UndoZero = 2,
    /// A crash-consistent recovery point (a completed FLUSH); payload: label.
    CrashPoint = 3,
    /// An app-consistent recovery point (a bookmark); payload: label.
    AppPoint = 4,
    /// A commit: every segment before this one is void (see `Journal::open`).
    Commit = 5,
    /// Zeros that fill a batch up to the next 4 KiB boundary (direct I/O); seq 0, ignored.
    Pad = 6,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Undo,
            2 => Kind::UndoZero,
            3 => Kind::CrashPoint,
            4 => Kind::AppPoint,
            5 => Kind::Commit,
            6 => Kind::Pad,
            _ => return None,
        })
    }

    pub fn is_point(self) -> bool {
        matches!(self, Kind::CrashPoint | Kind::AppPoint)
    }
}

/// A record header: everything but the payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    /// Position in the group's single write order; a point's id.
    pub seq: u64,
    /// Which disk of the group (see `disk_id`).
    pub disk: u32,
    pub offset: u64,
    pub length: u64,
    /// Microseconds since the Unix epoch.
    pub time_us: i64,
    pub payload_len: u32,
    pub payload_crc: u32,
}

/// What a decoded header says about its place in the journal, beside the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Which append of the journal wrote it (0 in version 1): stamped by the journal.
    pub batch: u64,
    /// [`LAST_IN_BATCH`] or 0: stamped by the journal.
    pub flags: u16,
    /// The format it was read in.
    pub version: u8,
}

impl Meta {
    /// Header bytes in the record's version.
    pub fn header_len(&self) -> usize {
        if self.version == 1 {
            V1_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Bytes of the whole record of `h` (header and payload).
    pub fn record_len(&self, h: &Header) -> u64 {
        self.header_len() as u64 + u64::from(h.payload_len)
    }
}

/// Why bytes are not a valid record. All but `Truncated` mean corruption; at the end of the
/// last segment any of them is a torn write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated: {need} bytes needed, {have} present")]
    Truncated { need: usize, have: usize },
    #[error("bad record magic {0:#010x}")]
    BadMagic(u32),
    #[error("unsupported record version {0}")]
    BadVersion(u8),
    #[error("unknown record kind {0}")]
    BadKind(u8),
    #[error("record header checksum mismatch")]
    HeaderChecksum,
    #[error("record payload checksum mismatch")]
    PayloadChecksum,
    #[error("record lengths inconsistent: {0}")]
    BadLength(&'static str),
    #[error("a {found:?} record where a {expected} record belongs")]
    WrongKind { expected: &'static str, found: Kind },
}

/// The stable id of a disk inside its group's journal: a checksum of its name, so that the
/// journal needs no table of disks (the config checks that ids are unique in a group).
pub fn disk_id(name: &str) -> u32 {
    crc32c::crc32c(name.as_bytes())
}

impl Header {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The encoded header (in place, no allocation: the write path makes one per record).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = VERSION;
        b[5] = self.kind as u8;
        // Flags (6) and batch (48) are stamped by the journal at append: `stamp_batch`.
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.disk.to_le_bytes());
        b[20..24].copy_from_slice(&self.payload_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.length.to_le_bytes());
        b[40..48].copy_from_slice(&self.time_us.to_le_bytes());
        b[56..60].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks one header (of either version), advancing `buf` past it.
    pub fn decode(buf: &mut &[u8]) -> Result<Header, DecodeError> {
        Header::decode_meta(buf).map(|(h, _)| h)
    }

    /// [`Header::decode`], with what the header says of its batch and version.
    pub fn decode_meta(buf: &mut &[u8]) -> Result<(Header, Meta), DecodeError> {
        let b = *buf;
        // The version byte picks the length; an unknown one still needs a checked header
        // to be believed, so it is judged on the current layout's checksum.
        let len = match b.get(4) {
            Some(1) => V1_HEADER_LEN,
            _ => HEADER_LEN,
        };
        if b.len() < len {
            return Err(DecodeError::Truncated {
                need: len,
                have: b.len(),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        if crc32c::crc32c(&b[..len - 4]) != u32_at(len - 4) {
            return Err(DecodeError::HeaderChecksum);
        }
        if b[4] != VERSION && b[4] != 1 {
            return Err(DecodeError::BadVersion(b[4]));
        }
        let kind = Kind::from_u8(b[5]).ok_or(DecodeError::BadKind(b[5]))?;
        let v1 = len == V1_HEADER_LEN;
        let h = Header {
            kind,
            seq: u64_at(8),
            disk: u32_at(16),
            payload_len: u32_at(20),
            offset: u64_at(24),
            length: u64_at(32),
            time_us: u64_at(40) as i64,
            payload_crc: u32_at(len - 8),
        };
        let meta = Meta {
            batch: if v1 { 0 } else { u64_at(48) },
            flags: if v1 {
                0
            } else {
                u16::from_le_bytes([b[6], b[7]])
            },
            version: b[4],
        };
        h.check()?;
        *buf = &b[len..];
        Ok((h, meta))
    }

    /// A header with only kind and seq set (what callers build on; the journal stamps
    /// `batch` and `flags`, the encoder the payload's length and checksum).
    pub fn new(kind: Kind, seq: u64) -> Header {
        Header {
            kind,
            seq,
            disk: 0,
            offset: 0,
            length: 0,
            time_us: 0,
            payload_len: 0,
            payload_crc: 0,
        }
    }

    fn check(&self) -> Result<(), DecodeError> {
        if self.payload_len > MAX_PAYLOAD {
            return Err(DecodeError::BadLength("payload too large"));
        }
        match self.kind {
            Kind::Undo if u64::from(self.payload_len) != self.length => Err(
                DecodeError::BadLength("undo payload differs from its length"),
            ),
            Kind::UndoZero if self.payload_len != 0 => {
                Err(DecodeError::BadLength("zero undo with a payload"))
            }
            _ if self.offset.checked_add(self.length).is_none() => {
                Err(DecodeError::BadLength("offset + length overflows"))
            }
            _ => Ok(()),
        }
    }

    /// Bytes of the whole record (header and payload) in the current version.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Decodes and checks one whole record (header and payload checksums), advancing `buf`
/// past it. Returns the header and the payload, borrowed.
pub fn decode_parts<'a>(buf: &mut &'a [u8]) -> Result<(Header, &'a [u8]), DecodeError> {
    let mut rest = *buf;
    let (h, meta) = Header::decode_meta(&mut rest)?;
    let n = h.payload_len as usize;
    if rest.len() < n {
        return Err(DecodeError::Truncated {
            need: meta.header_len() + n,
            have: meta.header_len() + rest.len(),
        });
    }
    let payload = &rest[..n];
    if crc32c::crc32c(payload) != h.payload_crc {
        return Err(DecodeError::PayloadChecksum);
    }
    *buf = &rest[n..];
    Ok((h, payload))
}

/// [`decode_parts`] into the record type `T`, which `from_parts` reads (`None`: the record
/// is of another kind). `buf` moves only past a record of that type.
fn decode_as<'a, T>(
    buf: &mut &'a [u8],
    expected: &'static str,
    from_parts: impl FnOnce(&Header, &'a [u8]) -> Option<T>,
) -> Result<T, DecodeError> {
    let mut rest = *buf;
    let (h, payload) = decode_parts(&mut rest)?;
    let r = from_parts(&h, payload).ok_or(DecodeError::WrongKind {
        expected,
        found: h.kind,
    })?;
    *buf = rest;
    Ok(r)
}

impl<'a> Undo<'a> {
    /// The undo of `old`, the contents at `offset` of `disk` before an overwrite: without
    /// data when it is all zeros.
    pub fn of(seq: u64, disk: u32, offset: u64, time_us: i64, old: &'a [u8]) -> Undo<'a> {
        Undo {
            seq,
            disk,
            offset,
            length: old.len() as u64,
            time_us,
            data: (!old.iter().all(|&b| b == 0)).then_some(old),
        }
    }

    fn header(&self) -> Header {
        let payload = self.data.unwrap_or_default();
        Header {
            kind: if self.data.is_some() {
                Kind::Undo
            } else {
                Kind::UndoZero
            },
            seq: self.seq,
            disk: self.disk,
            offset: self.offset,
            length: self.length,
            time_us: self.time_us,
            payload_len: payload.len() as u32,
            payload_crc: crc32c::crc32c(payload),
        }
    }

    /// The header alone, for data already in place right after it (the group's leader
    /// reads old contents straight into the journal's buffer).
    pub fn encode_header(&self) -> [u8; HEADER_LEN] {
        self.header().to_bytes()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode_header());
        out.extend_from_slice(self.data.unwrap_or_default());
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.data.map_or(0, <[u8]>::len)
    }

    pub fn decode(buf: &mut &'a [u8]) -> Result<Undo<'a>, DecodeError> {
        decode_as(buf, "undo", Undo::from_parts)
    }

    /// The undo a checked record's header and payload hold; `None` for other kinds.
    pub fn from_parts(h: &Header, payload: &'a [u8]) -> Option<Undo<'a>> {
        let data = match h.kind {
            Kind::Undo => Some(payload),
            Kind::UndoZero => None,
            _ => return None,
        };
        Some(Undo {
            seq: h.seq,
            disk: h.disk,
            offset: h.offset,
            length: h.length,
            time_us: h.time_us,
            data,
        })
    }
}

impl PointRecord {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let kind = if self.app {
            Kind::AppPoint
        } else {
            Kind::CrashPoint
        };
        let h = Header {
            time_us: self.time_us,
            ..Header::new(kind, self.seq)
        };
        encode_parts(&h, self.label.as_bytes(), out);
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.label.len()
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PointRecord, DecodeError> {
        decode_as(buf, "point", PointRecord::from_parts)
    }

    /// The point a checked record's header and payload (its label) hold; `None` for other
    /// kinds.
    pub fn from_parts(h: &Header, label: &[u8]) -> Option<PointRecord> {
        h.kind.is_point().then(|| PointRecord {
            seq: h.seq,
            time_us: h.time_us,
            app: h.kind == Kind::AppPoint,
            label: String::from_utf8_lossy(label).into_owned(),
        })
    }
}

impl CommitRecord {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let h = Header {
            time_us: self.time_us,
            ..Header::new(Kind::Commit, self.seq)
        };
        encode_parts(&h, &[], out);
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn decode(buf: &mut &[u8]) -> Result<CommitRecord, DecodeError> {
        decode_as(buf, "commit", |h, _| {
            (h.kind == Kind::Commit).then_some(CommitRecord {
                seq: h.seq,
                time_us: h.time_us,
            })
        })
    }
}

impl<'a> Record<'a> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Undo(u) => u.encode(out),
            Record::Point(p) => p.encode(out),
            Record::Commit(c) => c.encode(out),
            Record::Pad { len } => {
                let h = pad_header(*len);
                h.encode(out);
                out.resize(out.len() + h.payload_len as usize, 0);
            }
        }
    }

    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Undo(u) => u.encoded_len(),
            Record::Point(p) => p.encoded_len(),
            Record::Commit(c) => c.encoded_len(),
            Record::Pad { len } => *len,
        }
    }

    /// Decodes and checks one record of any kind (either version), advancing `buf` past it.
    pub fn decode(buf: &mut &'a [u8]) -> Result<Record<'a>, DecodeError> {
        let mut rest = *buf;
        let (h, payload) = decode_parts(&mut rest)?;
        let r = match h.kind {
            Kind::Undo | Kind::UndoZero => Undo::from_parts(&h, payload).map(Record::Undo),
            Kind::CrashPoint | Kind::AppPoint => {
                PointRecord::from_parts(&h, payload).map(Record::Point)
            }
            Kind::Commit => Some(Record::Commit(CommitRecord {
                seq: h.seq,
                time_us: h.time_us,
            })),
            Kind::Pad => Some(Record::Pad {
                len: buf.len() - rest.len(),
            }),
        };
        *buf = rest;
        Ok(r.expect("every kind has its record type"))
    }
}

/// Appends a `Pad` record that ends `out` on a multiple of `align` (from `out`'s start):
/// nothing when it ends there already, else at least a header's worth.
pub fn encode_pad(out: &mut Vec<u8>, align: usize) {
    let gap = pad_len(out.len(), align);
    if gap > 0 {
        Record::Pad { len: gap }.encode(out);
    }
}

/// Bytes of the `Pad` record that makes `used` a multiple of `align` (0: none needed).
pub fn pad_len(used: usize, align: usize) -> usize {
    match (align - used % align) % align {
        0 => 0,
        g if g < HEADER_LEN => g + align,
        g => g,
    }
}

/// The header of a `Pad` record of `len` bytes in all (`len >= HEADER_LEN`).
pub fn pad_header(len: usize) -> Header {
    static ZEROS: [u8; 8192] = [0; 8192];
    let payload = len - HEADER_LEN;
    Header {
        payload_len: payload as u32,
        payload_crc: crc32c::crc32c(&ZEROS[..payload]),
        ..Header::new(Kind::Pad, 0)
    }
}

/// Encodes a record from a header and a borrowed payload (no copy of the payload first).
/// `h.payload_len` and `h.payload_crc` are filled in from `payload`.
fn encode_parts(h: &Header, payload: &[u8], out: &mut Vec<u8>) {
    let h = Header {
        payload_len: payload.len() as u32,
        payload_crc: crc32c::crc32c(payload),
        ..*h
    };
    h.encode(out);
    out.extend_from_slice(payload);
}

/// Stamps the records encoded in `buf` (version 2, back to back) with `batch`, flags the
/// last one [`LAST_IN_BATCH`] and renews their header checksums. Payloads are not touched.
pub fn stamp_batch(buf: &mut [u8], batch: u64) {
    let mut pos = 0;
    let end = buf.len();
    while pos + HEADER_LEN <= end {
        let h = &mut buf[pos..pos + HEADER_LEN];
        let payload_len = u32::from_le_bytes(h[20..24].try_into().unwrap()) as usize;
        let next = pos + HEADER_LEN + payload_len;
        let flags = if next >= end { LAST_IN_BATCH } else { 0 };
        h[6..8].copy_from_slice(&flags.to_le_bytes());
        h[48..56].copy_from_slice(&batch.to_le_bytes());
        let crc = crc32c::crc32c(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        pos = next;
    }
}

/// A version 1 record, as builds before batches wrote them (tests of reading old journals).
#[cfg(test)]
pub fn encode_v1(h: &Header, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(1);
    out.push(h.kind as u8);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&h.seq.to_le_bytes());
    out.extend_from_slice(&h.disk.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.offset.to_le_bytes());
    out.extend_from_slice(&h.length.to_le_bytes());
    out.extend_from_slice(&h.time_us.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_700_000_000_000_000;

    fn undo() -> Undo<'static> {
        Undo::of(42, disk_id("vm1-disk0"), 8192, T + 1, b"old!")
    }

    fn point() -> PointRecord {
        PointRecord {
            seq: 44,
            time_us: T + 3,
            app: true,
            label: "before upgrade".into(),
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn encoded(r: &Record) -> Vec<u8> {
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(buf.len(), r.encoded_len(), "{r:?}");
        buf
    }

    /// The bytes of version 2 as the code before typed records wrote them (recorded from
    /// it): journals written by any build read the same, so these never change.
    #[test]
    fn records_encode_to_the_pinned_bytes() {
        let zeros = [0u8; 8192];
        let cases = [
            (
                Record::Undo(undo()),
                concat!(
                    "4d544a52020100002a00000000000000d08d54b4040000000020000000000000",
                    "040000000000000001401e18240a060000000000000000009273ce4767d641f3",
                    "6f6c6421",
                ),
            ),
            (
                Record::Undo(Undo::of(43, disk_id("vm1-disk0"), 4096, T + 2, &zeros)),
                concat!(
                    "4d544a52020200002b00000000000000d08d54b4000000000010000000000000",
                    "002000000000000002401e18240a060000000000000000000000000068644e9d",
                ),
            ),
            (
                // A recover's log of head contents: seq 1.
                Record::Undo(Undo {
                    seq: 1,
                    disk: 7,
                    offset: 0,
                    length: 4096,
                    time_us: 5,
                    data: None,
                }),
                concat!(
                    "4d544a5202020000010000000000000007000000000000000000000000000000",
                    "00100000000000000500000000000000000000000000000000000000bbc262a3",
                ),
            ),
            (
                Record::Point(point()),
                concat!(
                    "4d544a52020400002c00000000000000000000000e0000000000000000000000",
                    "000000000000000003401e18240a06000000000000000000ab1d2c7a684954a6",
                    "6265666f72652075706772616465",
                ),
            ),
            (
                Record::Point(PointRecord {
                    seq: 45,
                    time_us: T + 4,
                    app: false,
                    label: String::new(),
                }),
                concat!(
                    "4d544a52020300002d0000000000000000000000000000000000000000000000",
                    "000000000000000004401e18240a0600000000000000000000000000726e2268",
                ),
            ),
            (
                Record::Commit(CommitRecord {
                    seq: 46,
                    time_us: T + 5,
                }),
                concat!(
                    "4d544a52020500002e0000000000000000000000000000000000000000000000",
                    "000000000000000005401e18240a0600000000000000000000000000ea17cf63",
                ),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(hex(&encoded(&r)), want, "{r:?}");
        }
        let mut buf = vec![0xee; 4000];
        encode_pad(&mut buf, 4096);
        assert_eq!(buf.len(), 4096);
        assert_eq!(
            hex(&buf[4000..4064]),
            concat!(
                "4d544a5202060000000000000000000000000000200000000000000000000000",
                "000000000000000000000000000000000000000000000000aa36918abc0d8628",
            )
        );
        assert!(buf[4064..].iter().all(|&b| b == 0));
    }

    /// Every record type: decodes back to itself, as its own type and as a [`Record`].
    #[test]
    fn each_record_type_roundtrips() {
        let commit = CommitRecord { seq: 9, time_us: T };
        let zeros = [0u8; 100];
        let zero = Undo::of(3, 7, 0, T, &zeros);
        assert_eq!(zero.data, None, "zeros are saved without data");
        for r in [
            Record::Undo(undo()),
            Record::Undo(zero),
            Record::Point(point()),
            Record::Commit(commit),
            Record::Pad { len: 200 },
        ] {
            let mut buf = encoded(&r);
            buf.extend_from_slice(b"next");
            let mut s = &buf[..];
            assert_eq!(Record::decode(&mut s).unwrap(), r);
            assert_eq!(s, b"next");
        }
        let buf = encoded(&Record::Undo(undo()));
        assert_eq!(Undo::decode(&mut &buf[..]).unwrap(), undo());
        let buf = encoded(&Record::Point(point()));
        assert_eq!(PointRecord::decode(&mut &buf[..]).unwrap(), point());
        let buf = encoded(&Record::Commit(commit));
        assert_eq!(CommitRecord::decode(&mut &buf[..]).unwrap(), commit);
    }

    /// Every record type: a flipped byte anywhere and a cut anywhere are refused.
    #[test]
    fn each_record_type_refuses_corrupt_and_truncated_bytes() {
        let commit = Record::Commit(CommitRecord { seq: 9, time_us: T });
        for r in [Record::Undo(undo()), Record::Point(point()), commit] {
            let buf = encoded(&r);
            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 0x40;
                assert!(
                    Record::decode(&mut &bad[..]).is_err(),
                    "{r:?}: flip at byte {i}"
                );
            }
            for n in 0..buf.len() {
                let err = Record::decode(&mut &buf[..n]).unwrap_err();
                assert!(matches!(err, DecodeError::Truncated { .. }), "{n}: {err}");
            }
        }
        let p = encoded(&Record::Point(point()));
        let mut s = &p[..];
        assert!(matches!(
            Undo::decode(&mut s),
            Err(DecodeError::WrongKind {
                expected: "undo",
                ..
            })
        ));
        assert_eq!(s.len(), p.len(), "a record of another kind is not consumed");
        assert!(CommitRecord::decode(&mut &p[..]).is_err());
        let u = encoded(&Record::Undo(undo()));
        assert!(PointRecord::decode(&mut &u[..]).is_err());
    }

    #[test]
    fn pads_end_on_the_boundary_and_decode() {
        for used in [0, 1, 100, 4040, 4041, 4095, 4096, 5000] {
            let mut buf = vec![0xee; used];
            encode_pad(&mut buf, 4096);
            assert_eq!(buf.len() % 4096, 0, "{used}");
            if buf.len() > used {
                let r = Record::decode(&mut &buf[used..]).unwrap();
                assert_eq!(
                    r,
                    Record::Pad {
                        len: buf.len() - used
                    }
                );
            }
        }
    }

    #[test]
    fn stamping_sets_batch_and_last_flag_and_keeps_records_valid() {
        let mut buf = Vec::new();
        undo().encode(&mut buf);
        undo().encode(&mut buf);
        stamp_batch(&mut buf, 77);
        let mut s = &buf[..];
        let (_, a) = Header::decode_meta(&mut s).unwrap();
        s = &s[4..];
        let (_, b) = Header::decode_meta(&mut s).unwrap();
        assert_eq!(
            (a.batch, a.flags, b.batch, b.flags),
            (77, 0, 77, LAST_IN_BATCH)
        );
        assert!(Record::decode(&mut &buf[..]).is_ok());
    }

    #[test]
    fn version_1_records_are_still_read() {
        let r = undo();
        let mut buf = Vec::new();
        encode_v1(&r.header(), r.data.unwrap(), &mut buf);
        assert_eq!(buf.len(), V1_HEADER_LEN + 4);
        let (h, m) = Header::decode_meta(&mut &buf[..]).unwrap();
        assert_eq!(
            (m.version, m.batch, m.record_len(&h)),
            (1, 0, buf.len() as u64)
        );
        assert_eq!(Undo::decode(&mut &buf[..]).unwrap(), r);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(Record::decode(&mut &bad[..]).is_err(), "flip at byte {i}");
        }
    }

    #[test]
    fn inconsistent_lengths_are_refused() {
        let r = Undo {
            length: 4096, // claims 4096 bytes, carries 4
            ..undo()
        };
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(
            Record::decode(&mut &buf[..]).unwrap_err(),
            DecodeError::BadLength("undo payload differs from its length")
        );
    }

    proptest! {
        #[test]
        fn roundtrip_any(kind in 0u8..3, seq: u64, disk: u32, offset in 0u64..1<<50,
                         time_us: i64, payload in proptest::collection::vec(any::<u8>(), 1..300)) {
            let label = String::from_utf8_lossy(&payload).into_owned();
            let r = match kind {
                0 => Record::Undo(Undo { seq, disk, offset, length: payload.len() as u64, time_us, data: Some(&payload) }),
                1 => Record::Undo(Undo { seq, disk, offset, length: 4096, time_us, data: None }),
                _ => Record::Point(PointRecord { seq, time_us, app: disk % 2 == 0, label }),
            };
            let mut buf = encoded(&r);
            buf.extend_from_slice(b"next");
            let mut s = &buf[..];
            prop_assert_eq!(Record::decode(&mut s).unwrap(), r);
            prop_assert_eq!(s, b"next");
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Record::decode(&mut &bytes[..]);
        }
    }
}
