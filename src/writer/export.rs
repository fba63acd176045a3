//! What the NBD server serves, as seen from the protocol side.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// One served block device. Implementations are shared across connections and worker
/// threads, so every method takes `&self`; several calls may run at once (a journaled
/// store batches concurrent writes into one journal sync: group commit).
///
/// Offsets and lengths are checked against [`Export::size`] by the server before any call.
pub trait Export: Send + Sync {
    fn size(&self) -> u64;
    /// A read-only export refuses writes (NBD_FLAG_READ_ONLY).
    fn read_only(&self) -> bool;
    /// Preferred I/O size (NBD_INFO_BLOCK_SIZE), 4096 unless the store knows better.
    fn preferred_block_size(&self) -> u32 {
        4096
    }
    /// The consistency group the export belongs to: the server shares its payload buffers
    /// fairly between groups. "" (the default) puts exports without one in one share.
    fn group(&self) -> &str {
        ""
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// `fua`: the data is durable when this returns (NBD_CMD_FLAG_FUA).
    fn write_at(&self, data: &[u8], offset: u64, fua: bool) -> io::Result<()>;
    /// Several WRITEs at once (a connection's queued writes): each one's outcome, in
    /// order. A journaled store saves their undo together and keeps them in one place in
    /// its group commit; the default writes them one by one.
    fn write_many(&self, writes: &[WriteReq<'_>]) -> Vec<io::Result<()>> {
        writes
            .iter()
            .map(|w| self.write_at(w.data, w.offset, w.fua))
            .collect()
    }
    /// `may_trim` is false when the client sent NBD_CMD_FLAG_NO_HOLE.
    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> io::Result<()>;
    fn trim(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Everything acknowledged before is durable when this returns; for a journaled
    /// disk a completed flush is also a crash-consistent recovery point.
    fn flush(&self) -> io::Result<()>;
    /// Write-behind: may a WRITE (without FUA) of `[offset, offset+len)` be answered now,
    /// before it is run? `Some(ticket)`: yes; the server answers it, runs it later (with
    /// [`WriteReq::answered`] set) and reports its outcome to [`Export::answered`]. The
    /// export keeps what the client can observe: later reads, and FLUSH, see it. The
    /// default answers a write once it has run.
    fn answer_early(&self, _offset: u64, _len: u64) -> Option<u64> {
        None
    }
    /// A write answered early (`ticket` from [`Export::answer_early`]) has run, with
    /// outcome `r`; nobody else learns of a failure.
    fn answered(&self, _ticket: u64, _r: &io::Result<()>) {}
    /// Where answering early stands when a request is read: the server passes it to
    /// [`Export::wait_answered`] and [`Export::flush_after`], which wait only for the
    /// writes answered before (a later one may be queued behind the request).
    fn answered_mark(&self) -> u64 {
        0
    }
    /// Waits for the writes answered early before `mark` that overlap `[offset,
    /// offset+len)`: the server calls it before a READ, WRITE_ZEROES, TRIM or a write not
    /// answered early runs.
    fn wait_answered(&self, _offset: u64, _len: u64, _mark: u64) {}
    /// [`Export::flush`] of a FLUSH read at `mark`: it covers the writes answered before.
    fn flush_after(&self, _mark: u64) -> io::Result<()> {
        self.flush()
    }
}

/// One WRITE of [`Export::write_many`].
#[derive(Debug, Clone, Copy)]
pub struct WriteReq<'a> {
    pub data: &'a [u8],
    pub offset: u64,
    /// NBD_CMD_FLAG_FUA: durable when the call returns.
    pub fua: bool,
    /// Answered already ([`Export::answer_early`]).
    pub answered: bool,
}

/// An export as listed by NBD_OPT_LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    pub name: String,
    pub description: String,
}

/// Who is asking: the peer address and, over TLS, the verified certificate identity.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub peer: Option<SocketAddr>,
    /// Over TLS: the client certificate was verified (the identity may still be unusable).
    pub tls: bool,
    /// Certificate subject CN / DNS SAN of a TLS client ([`crate::writer::access::cert_identity`]);
    /// `None` without TLS or when the certificate names no usable identity.
    pub identity: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// NBD_REP_ERR_UNKNOWN
    #[error("no export named {0:?}")]
    Unknown(String),
    /// NBD_REP_ERR_POLICY (not allowed, or group under recovery)
    #[error("export {name:?} refused: {reason}")]
    Refused { name: String, reason: String },
    #[error("opening export {name:?}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// Maps export names to exports (the writer service: disks, `<disk>@<point>` views).
pub trait ExportResolver: Send + Sync {
    fn list(&self, client: &ClientInfo) -> Vec<ExportInfo>;
    fn open(&self, name: &str, client: &ClientInfo) -> Result<Arc<dyn Export>, OpenError>;
}
