//! Drives a whole NBD session from arbitrary bytes: the cargo-fuzz target (`fuzz/`) and
//! the proptest below both call [`session`], so stable Rust exercises the same path.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::StaticResolver;
use super::negotiate::{self, NegotiateOptions, Outcome, TlsState};
use super::transmit::{self, TransmitOptions};
use crate::writer::export::{ClientInfo, Export};

/// An export in memory.
pub struct MemExport {
    data: Mutex<Vec<u8>>,
    read_only: bool,
}

impl MemExport {
    pub fn new(size: usize, fill: u8, read_only: bool) -> MemExport {
        MemExport {
            data: Mutex::new(vec![fill; size]),
            read_only,
        }
    }

    pub fn contents(&self) -> Vec<u8> {
        self.data.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let size = self.data.lock().unwrap_or_else(|p| p.into_inner()).len();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        match start.checked_add(len) {
            Some(end) if end <= size => Ok(start..end),
            // The server checks ranges first: reaching this is a server bug.
            _ => panic!("out-of-range I/O reached the export: {offset}+{len} > {size}"),
        }
    }
}

impl Export for MemExport {
    fn size(&self) -> u64 {
        self.data.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data.lock().unwrap_or_else(|p| p.into_inner())[r]);
        Ok(())
    }
    fn write_at(&self, data: &[u8], offset: u64, _fua: bool) -> io::Result<()> {
        assert!(!self.read_only, "write reached a read-only export");
        let r = self.range(offset, data.len())?;
        self.data.lock().unwrap_or_else(|p| p.into_inner())[r].copy_from_slice(data);
        Ok(())
    }
    fn write_zeroes(&self, offset: u64, len: u64, _may_trim: bool, _fua: bool) -> io::Result<()> {
        assert!(!self.read_only, "zeroing reached a read-only export");
        let r = self.range(offset, len as usize)?;
        self.data.lock().unwrap_or_else(|p| p.into_inner())[r].fill(0);
        Ok(())
    }
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        assert!(!self.read_only, "trim reached a read-only export");
        self.range(offset, len as usize).map(|_| ())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Client bytes in, server bytes out.
struct Duplex<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl io::Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.input, buf)
    }
}

impl io::Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs greeting, option haggling and (when an export is chosen) transmission on `data`
/// as the client's bytes, against a read-write and a read-only export in memory.
/// Panics only on a server bug: out-of-range I/O or a write to the read-only export.
pub fn session(data: &[u8]) {
    let rw = std::sync::Arc::new(MemExport::new(64 * 1024, 0x5a, false));
    let ro = std::sync::Arc::new(MemExport::new(64 * 1024, 0xa5, true));
    let resolver =
        StaticResolver::new()
            .with("rw", "read-write", rw)
            .with("ro", "read-only", ro.clone());
    let client = ClientInfo::default();
    let stop = AtomicBool::new(false);
    let opts = NegotiateOptions {
        resolver: &resolver,
        client: &client,
        tls: TlsState::Off,
        max_request: 16 * 1024,
        shutting_down: &stop,
        admit: &|| Ok(()),
    };
    let mut s = Duplex {
        input: data,
        output: Vec::new(),
    };
    let Ok(no_zeroes) = negotiate::greet(&mut s) else {
        return;
    };
    if let Ok(Outcome::Transmit(n)) = negotiate::haggle(&mut s, &opts, no_zeroes) {
        let topts = TransmitOptions {
            max_request: 16 * 1024,
            workers: 2,
            budget: 32 * 1024,
            ..TransmitOptions::default()
        };
        let _ = transmit::serve(s.input, Vec::new(), &*n.export, &topts);
    }
    assert!(ro.contents().iter().all(|&b| b == 0xa5));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::nbd::proto::{self, ExportRequest, OptionHeader, Request};
    use proptest::prelude::*;

    /// A valid prefix (flags, GO) so random bytes reach the request parser too.
    fn go(name: &str) -> Vec<u8> {
        let mut b = (proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES)
            .to_be_bytes()
            .to_vec();
        let mut d = Vec::new();
        ExportRequest {
            name: name.into(),
            info: vec![],
        }
        .encode(&mut d);
        OptionHeader {
            option: proto::OPT_GO,
            len: d.len() as u32,
        }
        .encode(&mut b);
        b.extend_from_slice(&d);
        b
    }

    fn request() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just(proto::REQUEST_MAGIC), any::<u32>()],
            any::<u16>(),
            0u16..10,
            prop_oneof![0u64..70_000, any::<u64>()],
            prop_oneof![0u32..20_000, any::<u32>()],
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(magic, flags, command, offset, len, payload)| {
                let mut b = Vec::new();
                Request {
                    flags: flags & 0x3,
                    command,
                    handle: 1,
                    offset,
                    len,
                }
                .encode(&mut b);
                b[..4].copy_from_slice(&magic.to_be_bytes());
                b.extend_from_slice(&payload);
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_sessions_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            session(&data);
        }

        #[test]
        fn random_requests_after_go(
            ro in any::<bool>(),
            reqs in proptest::collection::vec(request(), 1..8),
        ) {
            let mut data = go(if ro { "ro" } else { "rw" });
            for r in reqs {
                data.extend_from_slice(&r);
            }
            session(&data);
        }
    }
}
