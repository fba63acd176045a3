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

/// One record with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub seq: u64,
    pub disk: u32,
    pub offset: u64,
    pub length: u64,
    pub time_us: i64,
    pub payload: Vec<u8>,
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
}

/// The stable id of a disk inside its group's journal: a checksum of its name, so that the
/// journal needs no table of disks (the config checks that ids are unique in a group).
pub fn disk_id(name: &str) -> u32 {
    crc32c::crc32c(name.as_bytes())
}

impl Header {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(VERSION);
        out.push(self.kind as u8);
        // Flags (6) and batch (48) are stamped by the journal at append: `stamp_batch`.
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.disk.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.time_us.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
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

impl Record {
    pub fn header(&self) -> Header {
        Header {
            kind: self.kind,
            seq: self.seq,
            disk: self.disk,
            offset: self.offset,
            length: self.length,
            time_us: self.time_us,
            payload_len: self.payload.len() as u32,
            payload_crc: crc32c::crc32c(&self.payload),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_parts(&self.header(), &self.payload, out);
    }

    /// Decodes and checks one record, advancing `buf` past it.
    pub fn decode(buf: &mut &[u8]) -> Result<Record, DecodeError> {
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
        Ok(Record {
            kind: h.kind,
            seq: h.seq,
            disk: h.disk,
            offset: h.offset,
            length: h.length,
            time_us: h.time_us,
            payload: payload.to_vec(),
        })
    }
}

/// Appends a `Pad` record that ends `out` on a multiple of `align` (from `out`'s start):
/// nothing when it ends there already, else at least a header's worth.
pub fn encode_pad(out: &mut Vec<u8>, align: usize) {
    let gap = pad_len(out.len(), align);
    if gap > 0 {
        let h = pad_header(gap);
        h.encode(out);
        out.resize(out.len() + h.payload_len as usize, 0);
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
pub fn encode_parts(h: &Header, payload: &[u8], out: &mut Vec<u8>) {
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

    fn sample() -> Record {
        Record {
            kind: Kind::Undo,
            seq: 42,
            disk: disk_id("vm1-disk0"),
            offset: 8192,
            length: 5,
            time_us: 1_700_000_000_000_000,
            payload: b"hello".to_vec(),
        }
    }

    #[test]
    fn roundtrip() {
        let r = sample();
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let mut s = &buf[..];
        assert_eq!(Record::decode(&mut s).unwrap(), r);
        assert!(s.is_empty());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(Record::decode(&mut &bad[..]).is_err(), "flip at byte {i}");
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for n in 0..buf.len() {
            let err = Record::decode(&mut &buf[..n]).unwrap_err();
            assert!(matches!(err, DecodeError::Truncated { .. }), "{n}: {err}");
        }
    }

    #[test]
    fn pads_end_on_the_boundary_and_decode() {
        for used in [0, 1, 100, 4040, 4041, 4095, 4096, 5000] {
            let mut buf = vec![0xee; used];
            encode_pad(&mut buf, 4096);
            assert_eq!(buf.len() % 4096, 0, "{used}");
            if buf.len() > used {
                let r = Record::decode(&mut &buf[used..]).unwrap();
                assert_eq!((r.kind, r.seq), (Kind::Pad, 0));
            }
        }
    }

    #[test]
    fn stamping_sets_batch_and_last_flag_and_keeps_records_valid() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        sample().encode(&mut buf);
        stamp_batch(&mut buf, 77);
        let mut s = &buf[..];
        let (_, a) = Header::decode_meta(&mut s).unwrap();
        s = &s[5..];
        let (_, b) = Header::decode_meta(&mut s).unwrap();
        assert_eq!(
            (a.batch, a.flags, b.batch, b.flags),
            (77, 0, 77, LAST_IN_BATCH)
        );
        assert!(Record::decode(&mut &buf[..]).is_ok());
    }

    #[test]
    fn version_1_records_are_still_read() {
        let r = sample();
        let mut buf = Vec::new();
        encode_v1(&r.header(), &r.payload, &mut buf);
        assert_eq!(buf.len(), V1_HEADER_LEN + 5);
        let (h, m) = Header::decode_meta(&mut &buf[..]).unwrap();
        assert_eq!(
            (m.version, m.batch, m.record_len(&h)),
            (1, 0, buf.len() as u64)
        );
        assert_eq!(Record::decode(&mut &buf[..]).unwrap(), r);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(Record::decode(&mut &bad[..]).is_err(), "flip at byte {i}");
        }
    }

    #[test]
    fn inconsistent_lengths_are_refused() {
        let mut r = sample();
        r.length = 4096; // claims 4096 bytes, carries 5
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(
            Record::decode(&mut &buf[..]).unwrap_err(),
            DecodeError::BadLength("undo payload differs from its length")
        );
    }

    proptest! {
        #[test]
        fn roundtrip_any(kind in 1u8..=6, seq: u64, disk: u32, offset in 0u64..1<<50,
                         time_us: i64, payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let kind = Kind::from_u8(kind).unwrap();
            let payload = if kind == Kind::UndoZero { Vec::new() } else { payload };
            let length = if kind == Kind::UndoZero { 4096 } else { payload.len() as u64 };
            let r = Record { kind, seq, disk, offset, length, time_us, payload };
            let mut buf = Vec::new();
            r.encode(&mut buf);
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
