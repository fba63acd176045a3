//! The NBD server: accept loops, one thread per connection, connection limits and a
//! shutdown that drains in-flight requests and flushes what was written.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::connection::Connection;
use super::negotiate::{self, NegotiateError, NegotiateOptions, Negotiated, Outcome, TlsState};
use super::tls::TlsStream;
use super::transmit::{self, BufferPool, End, PoolStats, TransmitError, TransmitOptions};
use crate::writer::access::cert_identity;
use crate::writer::certs;
use crate::writer::export::{ClientInfo, ExportResolver};
use crate::writer::fds::{self, FdBudget, FdLease};

/// Real clients negotiate in milliseconds; this only bounds stalled ones. It is a deadline
/// for the whole negotiation (TLS handshake included), not a limit per read: a client
/// trickling one byte at a time is closed when it passes.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections still negotiating, at most: their own cap, apart from `max_connections`.
const MAX_NEGOTIATING: usize = 16;
/// With every negotiating slot taken, a new connection waits (in the kernel's backlog)
/// and ends the oldest negotiation once that one is this old: a real client is done in
/// milliseconds, a slowloris socket is not.
const NEGOTIATION_GRACE: Duration = Duration::from_secs(1);
/// Descriptors an NBD connection holds: the socket, its clones for the reader and the
/// stopper, and over TLS one more for the writing half.
const FDS_PER_CONNECTION: usize = 4;
/// How often an accept loop looks again while it may not accept (no descriptors to
/// spare, no negotiating slot).
const ROOM_POLL: Duration = Duration::from_millis(50);
/// A client that stops sending inside a request, or leaves replies unread, for this long is
/// gone: its buffers and workers are released sooner than the idle timeout would.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the accept loops look at the shutdown flag.
const ACCEPT_POLL: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct ServerOptions {
    /// Connections in transmission at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Connections still negotiating at once (their own cap: they never take the slots of
    /// connections in transmission). More wait in the listen backlog; see
    /// [`NEGOTIATION_GRACE`].
    pub max_negotiating: usize,
    /// Largest READ/WRITE payload (advertised as the maximum block size).
    pub max_request_size: u32,
    /// Closes connections without requests for this long.
    pub idle_timeout: Option<Duration>,
    /// Deadline for the whole TLS handshake and option haggling (the idle timeout if
    /// shorter), enforced by the accept loops; it is also the limit of each read.
    pub negotiation_timeout: Option<Duration>,
    /// Limit for a client that sends nothing inside a request or reads no reply (the idle
    /// timeout if shorter).
    pub stall_timeout: Option<Duration>,
    /// Worker threads per connection (requests in flight at once).
    pub workers_per_connection: usize,
    /// Payload bytes buffered by all connections together (at least one request's worth).
    pub max_buffer: usize,
    /// FORCEDTLS with client certificates when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Descriptors client sockets may hold (shared with the other listeners of the
    /// service); unlimited when unset.
    pub fds: Option<Arc<FdBudget>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 64,
            max_negotiating: MAX_NEGOTIATING,
            max_request_size: 32 << 20,
            idle_timeout: None,
            negotiation_timeout: Some(NEGOTIATION_TIMEOUT),
            stall_timeout: Some(STALL_TIMEOUT),
            workers_per_connection: 4,
            max_buffer: 256 << 20,
            tls: None,
            fds: None,
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("max_connections", &self.max_connections)
            .field("max_negotiating", &self.max_negotiating)
            .field("max_request_size", &self.max_request_size)
            .field("idle_timeout", &self.idle_timeout)
            .field("negotiation_timeout", &self.negotiation_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("workers_per_connection", &self.workers_per_connection)
            .field("max_buffer", &self.max_buffer)
            .field("tls", &self.tls.is_some())
            .field("fds", &self.fds.as_ref().map(|f| f.limit()))
            .finish()
    }
}

impl ServerOptions {
    /// Options from `[writer]`: limits, and TLS when `[writer.tls]` is present.
    pub fn from_config(w: &crate::config::Writer) -> anyhow::Result<ServerOptions> {
        let max = w.max_request_size.0;
        anyhow::ensure!(
            (4096..=u32::MAX as u64).contains(&max),
            "[writer] max-request-size must be between 4K and 4G, not {max} bytes"
        );
        let tls = match &w.tls {
            Some(t) => Some(certs::server_config(t)?),
            None => None,
        };
        let idle = w.idle_timeout.0;
        let some = |d: Duration| (!d.is_zero()).then_some(d);
        Ok(ServerOptions {
            max_connections: w.max_connections.max(1) as usize,
            max_negotiating: w.max_negotiating.max(1) as usize,
            max_request_size: max as u32,
            idle_timeout: some(idle),
            negotiation_timeout: some(w.negotiation_timeout.0),
            stall_timeout: some(w.request_timeout.0),
            workers_per_connection: 4,
            max_buffer: usize::try_from(w.max_buffer.0.max(max)).unwrap_or(usize::MAX),
            tls,
            fds: None,
        })
    }
}

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("negotiation failed")]
    Negotiate(#[from] NegotiateError),
    #[error("TLS handshake failed")]
    Tls(#[source] io::Error),
    #[error("transmission failed")]
    Transmit(#[from] TransmitError),
    #[error("setting up the connection")]
    Setup(#[source] io::Error),
}

/// One live connection: how to stop it, and while it negotiates, since when.
struct Entry {
    stop: Box<dyn Fn(Shutdown) + Send + Sync>,
    negotiating_since: Option<Instant>,
    peer: Option<SocketAddr>,
}

/// Live connections: how to stop each one, the negotiating count, and a count to wait on.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Entry>>,
    /// Entries with `negotiating_since` set; changed only under the `conns` lock.
    negotiating: AtomicUsize,
    gone: Condvar,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the negotiating state of `e` (once: whoever comes first, under the lock).
    fn end_negotiation(&self, e: &mut Entry) -> bool {
        if e.negotiating_since.take().is_some() {
            self.negotiating.fetch_sub(1, Ordering::AcqRel);
            return true;
        }
        false
    }

    /// Marks connection `id` as past negotiation; false if it was closed for being late.
    fn negotiated(&self, id: u64) -> bool {
        let mut conns = self.lock();
        conns.get_mut(&id).is_some_and(|e| self.end_negotiation(e))
    }

    /// Closes every connection negotiating for longer than `limit`.
    fn reap(&self, limit: Duration) {
        let mut conns = self.lock();
        for e in conns.values_mut() {
            if e.negotiating_since.is_some_and(|t| t.elapsed() >= limit) {
                self.end_negotiation(e);
                tracing::warn!(peer = ?e.peer, ?limit, "NBD client still negotiating at the deadline, closed");
                (e.stop)(Shutdown::Both);
            }
        }
    }

    /// Closes the oldest negotiation if it is at least `grace` old; false if none is.
    fn evict_oldest(&self, grace: Duration) -> bool {
        let mut conns = self.lock();
        let oldest = conns
            .values_mut()
            .filter(|e| e.negotiating_since.is_some_and(|t| t.elapsed() >= grace))
            .min_by_key(|e| e.negotiating_since);
        match oldest {
            Some(e) => {
                self.end_negotiation(e);
                tracing::warn!(peer = ?e.peer, "NBD client closed: still negotiating while new clients wait");
                (e.stop)(Shutdown::Both);
                true
            }
            None => false,
        }
    }
}

struct Inner {
    resolver: Arc<dyn ExportResolver>,
    opts: ServerOptions,
    shutting_down: AtomicBool,
    registry: Registry,
    /// Connections in transmission (the ones `max_connections` counts).
    serving: AtomicUsize,
    pool: Arc<BufferPool>,
}

/// The NBD server; cheap to clone (clones share state).
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

/// Stops a running [`Server`] from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

impl ShutdownHandle {
    /// Stops accepting, ends every connection after its in-flight requests are answered
    /// (each flushes its export), and returns when all connections are gone.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let reg = &self.inner.registry;
        let mut conns = reg.lock();
        for e in conns.values() {
            (e.stop)(Shutdown::Read);
        }
        while !conns.is_empty() {
            conns = reg.gone.wait(conns).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }
}

/// Removes a connection from the registry when its thread ends, however it ends.
struct Registered<'a> {
    reg: &'a Registry,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut conns = self.reg.lock();
        if let Some(mut e) = conns.remove(&self.id) {
            self.reg.end_negotiation(&mut e);
        }
        self.reg.gone.notify_all();
    }
}

/// A connection's transmission slot, taken when it chooses an export (before the reply,
/// so that a client cannot connect again before it counts) and given back when dropped.
struct Slot<'a> {
    inner: &'a Inner,
    id: u64,
    taken: AtomicBool,
}

impl Slot<'_> {
    /// Takes a slot in `serving` and ends the negotiating state; the reason otherwise.
    fn take(&self) -> Result<(), String> {
        if self.taken.load(Ordering::Acquire) {
            return Ok(());
        }
        let inner = self.inner;
        let max = inner.opts.max_connections;
        if inner.serving.fetch_add(1, Ordering::SeqCst) >= max {
            inner.serving.fetch_sub(1, Ordering::SeqCst);
            return Err(format!("server busy: {max} connections"));
        }
        // Only now: a client refused above stays under the negotiation deadline.
        if !inner.registry.negotiated(self.id) {
            inner.serving.fetch_sub(1, Ordering::SeqCst);
            return Err("negotiation took too long".into());
        }
        self.taken.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.taken.load(Ordering::Acquire) {
            self.inner.serving.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Server {
    pub fn new(resolver: Arc<dyn ExportResolver>, opts: ServerOptions) -> Server {
        Server {
            inner: Arc::new(Inner {
                resolver,
                pool: Arc::new(BufferPool::new(opts.max_buffer)),
                opts,
                shutting_down: AtomicBool::new(false),
                registry: Registry::default(),
                serving: AtomicUsize::new(0),
            }),
        }
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            inner: self.inner.clone(),
        }
    }

    pub fn options(&self) -> &ServerOptions {
        &self.inner.opts
    }

    /// The server-wide payload budget: in use, peak, waits.
    pub fn buffer_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// The shortest of the stall and idle limits: how long a client may send nothing
    /// inside a request or leave replies unread.
    fn stall_limit(&self) -> Option<Duration> {
        let o = &self.inner.opts;
        match (o.stall_timeout, o.idle_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Connections being served now (negotiating or in transmission).
    pub fn connections(&self) -> usize {
        self.inner.registry.lock().len()
    }

    /// Connections still negotiating now.
    pub fn negotiating(&self) -> usize {
        self.inner.registry.negotiating.load(Ordering::Acquire)
    }

    /// The negotiation deadline (the idle timeout if shorter).
    fn negotiation_limit(&self) -> Option<Duration> {
        let o = &self.inner.opts;
        match (o.negotiation_timeout, o.idle_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Waits until one more connection may be accepted: a negotiating slot free (or one
    /// freed from a negotiation past the grace) and descriptors to spare. Closes late
    /// negotiations on the way. False once shutdown began.
    fn wait_for_room(&self, listener: &impl AsFd) -> io::Result<bool> {
        let inner = &*self.inner;
        let grace = self
            .negotiation_limit()
            .map_or(NEGOTIATION_GRACE, |l| l.min(NEGOTIATION_GRACE));
        loop {
            if let Some(limit) = self.negotiation_limit() {
                inner.registry.reap(limit);
            }
            if inner.shutting_down.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let slot = self.negotiating() < inner.opts.max_negotiating.max(1)
                || inner.registry.evict_oldest(grace);
            let fds = inner
                .opts
                .fds
                .as_ref()
                .is_none_or(|b| b.fits(FDS_PER_CONNECTION));
            if slot && fds {
                break;
            }
            // Leave the client in the backlog; look again shortly.
            std::thread::sleep(ROOM_POLL);
        }
        wait_readable(listener, &inner.shutting_down, || {
            if let Some(limit) = self.negotiation_limit() {
                inner.registry.reap(limit);
            }
        })
    }

    /// Accepts TCP clients until shutdown; one thread per connection.
    pub fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        while self.wait_for_room(&listener)? {
            let (stream, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) => {
                    accept_failed(e)?;
                    continue;
                }
            };
            // Replies are small frames; Nagle would hold them back behind the next one.
            let _ = stream.set_nodelay(true);
            let client = ClientInfo {
                peer: Some(peer),
                ..ClientInfo::default()
            };
            self.spawn(stream, client);
        }
        Ok(())
    }

    /// Accepts Unix-socket clients until shutdown; one thread per connection.
    pub fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        while self.wait_for_room(&listener)? {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) => {
                    accept_failed(e)?;
                    continue;
                }
            };
            self.spawn(stream, ClientInfo::default());
        }
        Ok(())
    }

    fn spawn<S: Connection>(&self, stream: S, client: ClientInfo) {
        let max = self.inner.opts.max_connections;
        if self.inner.serving.load(Ordering::SeqCst) >= max {
            tracing::warn!(peer = ?client.peer, max, "NBD connection refused: too many connections");
            // Dropping the stream closes it before any negotiation.
            return;
        }
        let lease = match &self.inner.opts.fds {
            Some(b) => match b.take(FDS_PER_CONNECTION) {
                Some(l) => Some(l),
                None => {
                    tracing::warn!(peer = ?client.peer, "NBD connection refused: descriptors kept for the journal");
                    return;
                }
            },
            None => None,
        };
        let server = self.clone();
        let spawned = std::thread::Builder::new()
            .name("nbd-conn".into())
            .spawn(move || {
                let _lease: Option<FdLease> = lease;
                let peer = client.peer;
                match server.handle(stream, client) {
                    Ok(()) => {}
                    // Port probes and clients that give up before choosing an export.
                    Err(ConnError::Negotiate(NegotiateError::Io(e)))
                        if e.kind() == io::ErrorKind::UnexpectedEof =>
                    {
                        tracing::debug!(?peer, "NBD client left during negotiation");
                    }
                    Err(e) => tracing::warn!(?peer, error = %chain(&e), "NBD connection ended"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start an NBD connection thread");
        }
    }

    /// Serves one client on `stream` in this thread: negotiation (with TLS when
    /// configured), then transmission. Returns when the client is done or on shutdown.
    pub fn handle<S: Connection>(&self, stream: S, client: ClientInfo) -> Result<(), ConnError> {
        let inner = &*self.inner;
        let stopper = stream.try_clone().map_err(ConnError::Setup)?;
        let id = inner.registry.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = inner.registry.lock();
            if inner.shutting_down.load(Ordering::SeqCst) {
                return Ok(());
            }
            // Shutting the read side ends the reader with EOF; replies still go out. A late
            // negotiation is shut both ways: a blocked write must end too.
            conns.insert(
                id,
                Entry {
                    stop: Box::new(move |how| {
                        let _ = stopper.shutdown(how);
                    }),
                    negotiating_since: Some(Instant::now()),
                    peer: client.peer,
                },
            );
            inner.registry.negotiating.fetch_add(1, Ordering::AcqRel);
        }
        let _registered = Registered {
            reg: &inner.registry,
            id,
        };
        // Each read and write of the negotiation is bounded too (where no accept loop
        // enforces the whole deadline: connections handed to `handle` directly).
        set_timeouts(&stream, self.negotiation_limit()).map_err(ConnError::Setup)?;
        self.negotiate_and_serve(stream, client, id)
    }

    fn negotiate_and_serve<S: Connection>(
        &self,
        mut stream: S,
        client: ClientInfo,
        id: u64,
    ) -> Result<(), ConnError> {
        let inner = &*self.inner;
        let slot = Slot {
            inner,
            id,
            taken: AtomicBool::new(false),
        };
        let admit = || {
            slot.take().inspect_err(|reason| {
                tracing::warn!(peer = ?client.peer, "NBD export refused: {reason}");
            })
        };
        let no_zeroes = negotiate::greet(&mut stream)?;
        let tls_state = if inner.opts.tls.is_some() {
            TlsState::Required
        } else {
            TlsState::Off
        };
        let outcome = {
            let opts = NegotiateOptions {
                resolver: &*inner.resolver,
                client: &client,
                tls: tls_state,
                max_request: inner.opts.max_request_size,
                shutting_down: &inner.shutting_down,
                admit: &admit,
            };
            negotiate::haggle(&mut stream, &opts, no_zeroes)?
        };
        match outcome {
            Outcome::Aborted => Ok(()),
            Outcome::Transmit(n) => {
                set_timeouts(&stream, self.stall_limit()).map_err(ConnError::Setup)?;
                let reader = stream.try_clone().map_err(ConnError::Setup)?;
                self.transmit(reader, stream, n, &client)
            }
            Outcome::StartTls => {
                let config = inner
                    .opts
                    .tls
                    .clone()
                    .expect("STARTTLS only when configured");
                let mut tls = TlsStream::accept(config, stream).map_err(ConnError::Tls)?;
                let client = ClientInfo {
                    tls: true,
                    identity: tls.peer_certificate().and_then(|c| cert_identity(&c)),
                    ..client
                };
                tracing::debug!(peer = ?client.peer, identity = ?client.identity, "TLS client");
                let admit = || {
                    slot.take().inspect_err(|reason| {
                        tracing::warn!(peer = ?client.peer, "NBD export refused: {reason}");
                    })
                };
                let opts = NegotiateOptions {
                    resolver: &*inner.resolver,
                    client: &client,
                    tls: TlsState::Active,
                    max_request: inner.opts.max_request_size,
                    shutting_down: &inner.shutting_down,
                    admit: &admit,
                };
                let outcome = negotiate::haggle(&mut tls, &opts, no_zeroes)?;
                match outcome {
                    Outcome::Transmit(n) => {
                        set_timeouts(tls.socket(), self.stall_limit()).map_err(ConnError::Setup)?;
                        let reader = tls.try_clone().map_err(ConnError::Setup)?;
                        let r = self.transmit(reader, tls.clone_writer(), n, &client);
                        tls.close();
                        r
                    }
                    _ => {
                        tls.close();
                        Ok(())
                    }
                }
            }
        }
    }

    fn transmit<R: Read, W: Write + Send>(
        &self,
        reader: R,
        writer: W,
        n: Negotiated,
        client: &ClientInfo,
    ) -> Result<(), ConnError> {
        let inner = &*self.inner;
        tracing::info!(export = %n.name, peer = ?client.peer,
            identity = client.identity.as_deref().unwrap_or("-"), "NBD client connected");
        let opts = TransmitOptions {
            max_request: inner.opts.max_request_size,
            workers: inner.opts.workers_per_connection,
            budget: (inner.opts.max_request_size as usize).saturating_mul(2),
            idle_timeout: inner.opts.idle_timeout,
            stall_timeout: self.stall_limit(),
            pool: Some(inner.pool.clone()),
        };
        let result = transmit::serve(reader, writer, &*n.export, &opts);
        if inner.shutting_down.load(Ordering::SeqCst) {
            // Shutdown promises that everything acknowledged is on disk.
            if let Err(e) = n.export.flush() {
                tracing::error!(export = %n.name, error = %e, "flush at shutdown failed");
            }
        }
        match &result {
            Ok(End::Idle) => tracing::info!(export = %n.name, peer = ?client.peer,
                "NBD client idle too long, closed"),
            Ok(end) => tracing::info!(export = %n.name, peer = ?client.peer, ?end,
                "NBD client disconnected"),
            Err(_) => {}
        }
        result.map(|_| ()).map_err(ConnError::from)
    }
}

/// Read and write timeouts of a connection (all handles on one socket share them). The
/// write timeout matters too: a client that stops reading its replies would otherwise pin
/// the worker threads, their buffers (and a shutdown waiting for them) forever. In
/// transmission it is the stall limit; the idle limit is checked between read timeouts.
fn set_timeouts<S: Connection>(s: &S, t: Option<Duration>) -> io::Result<()> {
    s.set_read_timeout(t)?;
    s.set_write_timeout(t)
}

/// An error with its causes, "a: b: c", for one log line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What an accept loop does after a failed accept: go on at once after a client that
/// gave up, pause after running out of descriptors or memory (accepting again would fail
/// at once: a loop that spins at 100 % CPU), stop on anything else.
fn accept_failed(e: io::Error) -> io::Result<()> {
    if fds::exhausted(&e) {
        tracing::warn!(error = %e, "NBD accept: out of resources, pausing");
        std::thread::sleep(fds::ACCEPT_BACKOFF);
        return Ok(());
    }
    match e.raw_os_error() {
        Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN | libc::EPROTO) => Ok(()),
        _ => Err(e),
    }
}

/// Waits until `listener` has a connection to accept, calling `tick` at every poll
/// timeout; false once shutdown began.
fn wait_readable(listener: &impl AsFd, stop: &AtomicBool, tick: impl Fn()) -> io::Result<bool> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut pfd = libc::pollfd {
            fd: listener.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the duration of the call, count is 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ACCEPT_POLL.as_millis() as libc::c_int) };
        match n {
            n if n > 0 => return Ok(true),
            0 => tick(),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}
