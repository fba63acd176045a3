//! NBD wire format: constants and pure codecs for the handshake, options and requests.
//!
//! Everything here follows NetworkBlockDevice/nbd `doc/proto.md` (fixed newstyle, the INFO
//! and WRITE_ZEROES extensions). All integers are big-endian. Decoders take `&mut &[u8]`
//! and advance it past what they consumed, so a frame can be decoded from a buffer that
//! holds more than one; they never panic on short or hostile input.

use thiserror::Error;

/// "NBDMAGIC", first thing the server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// "IHAVEOPT": newstyle greeting and the start of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Handshake flags (server).
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flags.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flags.
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
pub const FLAG_READ_ONLY: u16 = 1 << 1;
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
pub const FLAG_SEND_FUA: u16 = 1 << 3;
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Options.
pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;

/// Option replies.
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
const REP_ERR: u32 = 1 << 31;
pub const REP_ERR_UNSUP: u32 = REP_ERR | 1;
pub const REP_ERR_POLICY: u32 = REP_ERR | 2;
pub const REP_ERR_INVALID: u32 = REP_ERR | 3;
pub const REP_ERR_TLS_REQD: u32 = REP_ERR | 5;
pub const REP_ERR_UNKNOWN: u32 = REP_ERR | 6;
pub const REP_ERR_SHUTDOWN: u32 = REP_ERR | 7;

/// Information types of NBD_OPT_INFO / NBD_OPT_GO.
pub const INFO_EXPORT: u16 = 0;
pub const INFO_NAME: u16 = 1;
pub const INFO_DESCRIPTION: u16 = 2;
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Commands.
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;

/// Command flags.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;

/// Transmission error values (proto.md "Error values"; not the host's errno).
pub const EPERM: u32 = 1;
pub const EIO: u32 = 5;
pub const ENOMEM: u32 = 12;
pub const EINVAL: u32 = 22;
pub const ENOSPC: u32 = 28;
pub const EOVERFLOW: u32 = 75;
pub const ENOTSUP: u32 = 95;
pub const ESHUTDOWN: u32 = 108;

/// Size of the fixed part of each frame.
pub const OPTION_HEADER_LEN: usize = 16;
pub const REQUEST_LEN: usize = 28;
pub const SIMPLE_REPLY_LEN: usize = 16;
/// proto.md: strings (export names) MUST be no longer than 4096 bytes.
pub const MAX_STRING: usize = 4096;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("frame truncated: {need} bytes needed, {have} left")]
    Truncated { need: usize, have: usize },
    #[error("bad magic {found:#x}, expected {expected:#x}")]
    BadMagic { expected: u64, found: u64 },
    #[error("malformed {what}")]
    Malformed { what: &'static str },
}

pub type Result<T> = std::result::Result<T, ProtoError>;

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(ProtoError::Truncated {
            need: n,
            have: buf.len(),
        });
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn get_u16(buf: &mut &[u8]) -> Result<u16> {
    Ok(u16::from_be_bytes(take(buf, 2)?.try_into().unwrap()))
}

fn get_u32(buf: &mut &[u8]) -> Result<u32> {
    Ok(u32::from_be_bytes(take(buf, 4)?.try_into().unwrap()))
}

fn get_u64(buf: &mut &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(take(buf, 8)?.try_into().unwrap()))
}

fn get_string(buf: &mut &[u8], len: usize, what: &'static str) -> Result<String> {
    if len > MAX_STRING {
        return Err(ProtoError::Malformed { what });
    }
    let bytes = take(buf, len)?;
    // proto.md: UTF-8 without NUL.
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => Ok(s.to_owned()),
        _ => Err(ProtoError::Malformed { what }),
    }
}

/// The server's first message: NBDMAGIC, IHAVEOPT, handshake flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub flags: u16,
}

impl Greeting {
    pub const LEN: usize = 18;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&NBD_MAGIC.to_be_bytes());
        out.extend_from_slice(&IHAVEOPT.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let magic = get_u64(buf)?;
        if magic != NBD_MAGIC {
            return Err(ProtoError::BadMagic {
                expected: NBD_MAGIC,
                found: magic,
            });
        }
        let opt = get_u64(buf)?;
        if opt != IHAVEOPT {
            return Err(ProtoError::BadMagic {
                expected: IHAVEOPT,
                found: opt,
            });
        }
        Ok(Greeting {
            flags: get_u16(buf)?,
        })
    }
}

/// The head of a client option: magic, option, data length (the data follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    pub option: u32,
    pub len: u32,
}

impl OptionHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&IHAVEOPT.to_be_bytes());
        out.extend_from_slice(&self.option.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let magic = get_u64(buf)?;
        if magic != IHAVEOPT {
            return Err(ProtoError::BadMagic {
                expected: IHAVEOPT,
                found: magic,
            });
        }
        Ok(OptionHeader {
            option: get_u32(buf)?,
            len: get_u32(buf)?,
        })
    }
}

/// A server reply to an option (every option but NBD_OPT_EXPORT_NAME).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionReply {
    pub option: u32,
    pub reply: u32,
    pub data: Vec<u8>,
}

impl OptionReply {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.option.to_be_bytes());
        out.extend_from_slice(&self.reply.to_be_bytes());
        // Data is built by this module from bounded parts (names <= 4096 bytes).
        out.extend_from_slice(&(self.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.data);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let magic = get_u64(buf)?;
        if magic != OPTION_REPLY_MAGIC {
            return Err(ProtoError::BadMagic {
                expected: OPTION_REPLY_MAGIC,
                found: magic,
            });
        }
        let option = get_u32(buf)?;
        let reply = get_u32(buf)?;
        let len = get_u32(buf)? as usize;
        let data = take(buf, len)?.to_vec();
        Ok(OptionReply {
            option,
            reply,
            data,
        })
    }

    pub fn is_error(&self) -> bool {
        self.reply & REP_ERR != 0
    }
}

/// Data of NBD_OPT_INFO and NBD_OPT_GO: an export name and the information asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub name: String,
    pub info: Vec<u16>,
}

impl ExportRequest {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.name.len() as u32).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.info.len() as u16).to_be_bytes());
        for i in &self.info {
            out.extend_from_slice(&i.to_be_bytes());
        }
    }

    /// Decodes the whole option data; trailing bytes make it malformed (NBD_REP_ERR_INVALID).
    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let name_len = get_u32(buf)? as usize;
        let name = get_string(buf, name_len, "export name")?;
        let count = get_u16(buf)? as usize;
        let mut info = Vec::with_capacity(count.min(buf.len() / 2));
        for _ in 0..count {
            info.push(get_u16(buf)?);
        }
        if !buf.is_empty() {
            return Err(ProtoError::Malformed {
                what: "info request list length",
            });
        }
        Ok(ExportRequest { name, info })
    }
}

/// One NBD_REP_INFO payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    Export { size: u64, flags: u16 },
    Name(String),
    Description(String),
    BlockSize { min: u32, preferred: u32, max: u32 },
}

impl Info {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Info::Export { size, flags } => {
                out.extend_from_slice(&INFO_EXPORT.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
            }
            Info::Name(s) => {
                out.extend_from_slice(&INFO_NAME.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Info::Description(s) => {
                out.extend_from_slice(&INFO_DESCRIPTION.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Info::BlockSize {
                min,
                preferred,
                max,
            } => {
                out.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
                out.extend_from_slice(&min.to_be_bytes());
                out.extend_from_slice(&preferred.to_be_bytes());
                out.extend_from_slice(&max.to_be_bytes());
            }
        }
    }

    /// Decodes a whole NBD_REP_INFO payload.
    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let info = match get_u16(buf)? {
            INFO_EXPORT => Info::Export {
                size: get_u64(buf)?,
                flags: get_u16(buf)?,
            },
            INFO_NAME => Info::Name(get_string(buf, buf.len(), "info name")?),
            INFO_DESCRIPTION => Info::Description(get_string(buf, buf.len(), "description")?),
            INFO_BLOCK_SIZE => Info::BlockSize {
                min: get_u32(buf)?,
                preferred: get_u32(buf)?,
                max: get_u32(buf)?,
            },
            _ => return Err(ProtoError::Malformed { what: "info type" }),
        };
        if !buf.is_empty() {
            return Err(ProtoError::Malformed {
                what: "info length",
            });
        }
        Ok(info)
    }
}

/// NBD_REP_SERVER payload: one export in the reply to NBD_OPT_LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    pub name: String,
    pub description: String,
}

impl ServerEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.name.len() as u32).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(self.description.as_bytes());
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let len = get_u32(buf)? as usize;
        let name = get_string(buf, len, "export name")?;
        let description = get_string(buf, buf.len(), "description")?;
        Ok(ServerEntry { name, description })
    }
}

/// The reply to NBD_OPT_EXPORT_NAME: size, transmission flags, maybe 124 zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportNameReply {
    pub size: u64,
    pub flags: u16,
    /// False when the client negotiated NBD_FLAG_C_NO_ZEROES.
    pub zeroes: bool,
}

impl ExportNameReply {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        if self.zeroes {
            out.extend_from_slice(&[0; 124]);
        }
    }
}

/// A transmission request header (the WRITE payload follows it on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub command: u16,
    pub handle: u64,
    pub offset: u64,
    pub len: u32,
}

impl Request {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.command.to_be_bytes());
        out.extend_from_slice(&self.handle.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        // Check the length first so a short frame never half-advances the buffer.
        if buf.len() < REQUEST_LEN {
            return Err(ProtoError::Truncated {
                need: REQUEST_LEN,
                have: buf.len(),
            });
        }
        let magic = get_u32(buf)?;
        if magic != REQUEST_MAGIC {
            return Err(ProtoError::BadMagic {
                expected: REQUEST_MAGIC.into(),
                found: magic.into(),
            });
        }
        Ok(Request {
            flags: get_u16(buf)?,
            command: get_u16(buf)?,
            handle: get_u64(buf)?,
            offset: get_u64(buf)?,
            len: get_u32(buf)?,
        })
    }
}

/// A simple reply header (READ data follows it on success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReply {
    pub error: u32,
    pub handle: u64,
}

impl SimpleReply {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.error.to_be_bytes());
        out.extend_from_slice(&self.handle.to_be_bytes());
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Self> {
        let magic = get_u32(buf)?;
        if magic != SIMPLE_REPLY_MAGIC {
            return Err(ProtoError::BadMagic {
                expected: SIMPLE_REPLY_MAGIC.into(),
                found: magic.into(),
            });
        }
        Ok(SimpleReply {
            error: get_u32(buf)?,
            handle: get_u64(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn greeting_roundtrip_and_layout() {
        let g = Greeting {
            flags: FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES,
        };
        let b = bytes(|o| g.encode(o));
        assert_eq!(&b[..8], b"NBDMAGIC");
        assert_eq!(&b[8..16], b"IHAVEOPT");
        assert_eq!(b.len(), Greeting::LEN);
        assert_eq!(Greeting::decode(&mut &b[..]).unwrap(), g);
    }

    #[test]
    fn request_roundtrip_consumes_exactly_one_frame() {
        let r = Request {
            flags: CMD_FLAG_FUA,
            command: CMD_WRITE,
            handle: 0xdead_beef_0102_0304,
            offset: 1 << 40,
            len: 4096,
        };
        let mut b = bytes(|o| r.encode(o));
        assert_eq!(b.len(), REQUEST_LEN);
        b.extend_from_slice(b"payload");
        let mut s = &b[..];
        assert_eq!(Request::decode(&mut s).unwrap(), r);
        assert_eq!(s, b"payload");
    }

    #[test]
    fn request_bad_magic_and_truncation() {
        let r = Request {
            flags: 0,
            command: CMD_READ,
            handle: 1,
            offset: 0,
            len: 512,
        };
        let mut b = bytes(|o| r.encode(o));
        let short = &b[..REQUEST_LEN - 1];
        let mut s = short;
        assert!(matches!(
            Request::decode(&mut s),
            Err(ProtoError::Truncated { need: 28, have: 27 })
        ));
        // A failed decode leaves a short buffer untouched.
        assert_eq!(s.len(), REQUEST_LEN - 1);
        b[0] ^= 0xff;
        assert!(matches!(
            Request::decode(&mut &b[..]),
            Err(ProtoError::BadMagic { .. })
        ));
    }

    #[test]
    fn option_header_and_reply_roundtrip() {
        let h = OptionHeader {
            option: OPT_GO,
            len: 12,
        };
        let b = bytes(|o| h.encode(o));
        assert_eq!(OptionHeader::decode(&mut &b[..]).unwrap(), h);
        let r = OptionReply {
            option: OPT_LIST,
            reply: REP_SERVER,
            data: bytes(|o| {
                ServerEntry {
                    name: "vm1-disk0".into(),
                    description: "vm1".into(),
                }
                .encode(o)
            }),
        };
        let b = bytes(|o| r.encode(o));
        let back = OptionReply::decode(&mut &b[..]).unwrap();
        assert_eq!(back, r);
        assert!(!back.is_error());
        let e = ServerEntry::decode(&mut &back.data[..]).unwrap();
        assert_eq!(e.name, "vm1-disk0");
        assert_eq!(e.description, "vm1");
    }

    #[test]
    fn option_header_bad_magic() {
        let mut b = bytes(|o| {
            OptionHeader {
                option: OPT_LIST,
                len: 0,
            }
            .encode(o)
        });
        b[7] = 0;
        assert!(matches!(
            OptionHeader::decode(&mut &b[..]),
            Err(ProtoError::BadMagic { .. })
        ));
    }

    #[test]
    fn export_request_roundtrip_and_corrupt() {
        let r = ExportRequest {
            name: "disk".into(),
            info: vec![INFO_BLOCK_SIZE, INFO_NAME],
        };
        let b = bytes(|o| r.encode(o));
        assert_eq!(ExportRequest::decode(&mut &b[..]).unwrap(), r);
        // Name length larger than the data.
        let mut bad = b.clone();
        bad[3] = 200;
        assert!(ExportRequest::decode(&mut &bad[..]).is_err());
        // Trailing garbage.
        let mut bad = b.clone();
        bad.push(0);
        assert!(matches!(
            ExportRequest::decode(&mut &bad[..]),
            Err(ProtoError::Malformed { .. })
        ));
        // Info count larger than the list.
        let mut bad = b;
        let n = bad.len();
        bad[n - 5] = 9;
        assert!(ExportRequest::decode(&mut &bad[..]).is_err());
        // NUL inside the name.
        let bad = bytes(|o| {
            ExportRequest {
                name: "a\0b".into(),
                info: vec![],
            }
            .encode(o)
        });
        assert!(ExportRequest::decode(&mut &bad[..]).is_err());
    }

    #[test]
    fn info_roundtrip_and_corrupt() {
        for i in [
            Info::Export {
                size: 1 << 30,
                flags: FLAG_HAS_FLAGS | FLAG_SEND_FLUSH,
            },
            Info::Name("x".into()),
            Info::Description("the disk".into()),
            Info::BlockSize {
                min: 1,
                preferred: 4096,
                max: 32 << 20,
            },
        ] {
            let b = bytes(|o| i.encode(o));
            assert_eq!(Info::decode(&mut &b[..]).unwrap(), i);
            if matches!(i, Info::Export { .. } | Info::BlockSize { .. }) {
                assert!(Info::decode(&mut &b[..b.len() - 1]).is_err());
            }
        }
        assert!(Info::decode(&mut &[0u8, 9][..]).is_err());
    }

    #[test]
    fn export_name_reply_zeroes() {
        let r = ExportNameReply {
            size: 10,
            flags: 1,
            zeroes: true,
        };
        assert_eq!(bytes(|o| r.encode(o)).len(), 134);
        let r = ExportNameReply { zeroes: false, ..r };
        assert_eq!(bytes(|o| r.encode(o)).len(), 10);
    }

    #[test]
    fn simple_reply_roundtrip_and_bad_magic() {
        let r = SimpleReply {
            error: EINVAL,
            handle: 42,
        };
        let mut b = bytes(|o| r.encode(o));
        assert_eq!(b.len(), SIMPLE_REPLY_LEN);
        assert_eq!(SimpleReply::decode(&mut &b[..]).unwrap(), r);
        b[1] = 0;
        assert!(SimpleReply::decode(&mut &b[..]).is_err());
    }

    proptest! {
        #[test]
        fn request_roundtrips(flags: u16, command: u16, handle: u64, offset: u64, len: u32) {
            let r = Request { flags, command, handle, offset, len };
            let b = bytes(|o| r.encode(o));
            prop_assert_eq!(Request::decode(&mut &b[..]).unwrap(), r);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::decode(&mut &data[..]);
            let _ = OptionHeader::decode(&mut &data[..]);
            let _ = OptionReply::decode(&mut &data[..]);
            let _ = ExportRequest::decode(&mut &data[..]);
            let _ = Info::decode(&mut &data[..]);
            let _ = ServerEntry::decode(&mut &data[..]);
            let _ = SimpleReply::decode(&mut &data[..]);
            let _ = Greeting::decode(&mut &data[..]);
        }
    }
}
