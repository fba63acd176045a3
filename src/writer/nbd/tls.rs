//! The TLS transport of the NBD server (NBD_OPT_STARTTLS): the server side of a rustls
//! session over a [`Connection`], full duplex.
//!
//! The transmission phase reads requests and writes replies from different threads, which
//! a single rustls connection object cannot do by itself. [`TlsStream`] shares the
//! connection state under a mutex and never holds it during socket I/O: the reader pulls
//! raw bytes from the socket unlocked, then feeds them in; a writer encrypts under the lock
//! and sends the records unlocked but in order under a second lock. Which files the
//! session's config comes from is [`crate::writer::certs`]' business, who the verified
//! peer is and what it may open [`crate::writer::access`]'s.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::CertificateDer;
use rustls::{ServerConfig, ServerConnection};

use super::connection::Connection;

/// Plaintext is encrypted in pieces of this size, so a 32 MiB READ reply never needs a
/// second 32 MiB buffer.
const WRITE_CHUNK: usize = 256 * 1024;
const READ_CHUNK: usize = 256 * 1024;

struct State {
    conn: ServerConnection,
    /// Raw bytes read from the socket that rustls has not taken yet.
    pending: Vec<u8>,
    pos: usize,
}

/// A server-side TLS session over a [`Connection`]; clones share the session, so one clone
/// can read while another writes.
pub struct TlsStream<S> {
    state: Arc<Mutex<State>>,
    raw_read: S,
    raw_write: Arc<Mutex<S>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: Connection> TlsStream<S> {
    /// Runs the TLS handshake as the server (after NBD_REP_ACK to STARTTLS).
    pub fn accept(config: Arc<ServerConfig>, mut sock: S) -> io::Result<TlsStream<S>> {
        let mut conn = ServerConnection::new(config).map_err(tls_err)?;
        // We drain encrypted output right after each write: no need for rustls to cap it.
        conn.set_buffer_limit(None);
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                // Tell the client why (a TLS alert), then give up: proto.md says the
                // session MUST end when the handshake fails.
                let _ = conn.write_tls(&mut sock);
                let _ = sock.shutdown(Shutdown::Both);
                return Err(e);
            }
        }
        while conn.wants_write() {
            conn.write_tls(&mut sock)?;
        }
        let raw_write = sock.try_clone()?;
        Ok(TlsStream {
            state: Arc::new(Mutex::new(State {
                conn,
                pending: Vec::new(),
                pos: 0,
            })),
            raw_read: sock,
            raw_write: Arc::new(Mutex::new(raw_write)),
        })
    }

    /// Another handle on the same session (for the reading side).
    pub fn try_clone(&self) -> io::Result<TlsStream<S>> {
        Ok(TlsStream {
            state: self.state.clone(),
            raw_read: self.raw_read.try_clone()?,
            raw_write: self.raw_write.clone(),
        })
    }

    /// A writing-only handle (its reads are never used).
    pub fn clone_writer(&self) -> TlsWriter<S> {
        TlsWriter {
            state: self.state.clone(),
            raw_write: self.raw_write.clone(),
        }
    }

    /// The underlying socket (for its timeouts).
    pub fn socket(&self) -> &S {
        &self.raw_read
    }

    /// The client's end-entity certificate, verified against the CA by the handshake.
    pub fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        let st = lock(&self.state);
        Some(st.conn.peer_certificates()?.first()?.clone().into_owned())
    }

    /// Sends close_notify (proto.md: shut TLS down before closing).
    pub fn close(&self) {
        let mut out = Vec::new();
        {
            let mut st = lock(&self.state);
            st.conn.send_close_notify();
            while st.conn.wants_write() {
                if st.conn.write_tls(&mut out).is_err() {
                    break;
                }
            }
        }
        let _ = lock(&self.raw_write).write_all(&out);
    }
}

impl<S: Connection> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut out = Vec::new();
            let mut failed = None;
            let mut stuck = None;
            let result = {
                let mut st = lock(&self.state);
                let State { conn, pending, pos } = &mut *st;
                // Feed every buffered record rustls will take in one go: rustls takes a
                // few KiB per call, and taking the lock per record costs more than the
                // decryption (replies from worker threads wait for the same lock).
                while *pos < pending.len() {
                    let mut rest = &pending[*pos..];
                    let before = rest.len();
                    match conn.read_tls(&mut rest) {
                        Ok(0) => {
                            stuck = Some(io::Error::other("TLS input not accepted"));
                            break;
                        }
                        Ok(_) => *pos += before - rest.len(),
                        // Its plaintext buffer is full: hand that out first (an error
                        // only if there is no plaintext to hand out).
                        Err(e) => {
                            stuck = Some(e);
                            break;
                        }
                    }
                    if let Err(e) = conn.process_new_packets() {
                        failed = Some(e);
                        break;
                    }
                }
                while conn.wants_write() {
                    conn.write_tls(&mut out)?;
                }
                match failed {
                    Some(_) => None,
                    None => match conn.reader().read(buf) {
                        Ok(n) => Some(Ok(n)),
                        // A peer that just drops the TCP connection is a client gone,
                        // not an attack on truncation: NBD frames are checked whole.
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                        Err(e) => Some(Err(e)),
                    },
                }
            };
            if !out.is_empty() {
                // Alerts and key updates go out even when the read failed.
                let sent = lock(&self.raw_write).write_all(&out);
                if failed.is_none() && result.is_none() {
                    sent?;
                }
            }
            if let Some(e) = failed {
                return Err(tls_err(e));
            }
            if let Some(r) = result {
                return r;
            }
            if let Some(e) = stuck {
                return Err(e);
            }
            // No plaintext and every raw byte fed: read more from the socket, into the
            // shared buffer (negotiation and transmission hand it over between handles).
            let mut raw = {
                let mut st = lock(&self.state);
                if st.pos < st.pending.len() {
                    continue;
                }
                std::mem::take(&mut st.pending)
            };
            raw.resize(READ_CHUNK, 0);
            let n = match self.raw_read.read(&mut raw) {
                Ok(n) => n,
                Err(e) => {
                    raw.clear();
                    lock(&self.state).pending = raw;
                    return Err(e);
                }
            };
            raw.truncate(n);
            let mut st = lock(&self.state);
            st.pending = raw;
            st.pos = 0;
            if n == 0 {
                // EOF: let rustls see it; the plaintext read reports what is left.
                st.conn.read_tls(&mut io::empty())?;
                let _ = st.conn.process_new_packets();
                return match st.conn.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::UnexpectedEof
                        ) =>
                    {
                        Ok(0)
                    }
                    Err(e) => Err(e),
                };
            }
        }
    }
}

fn write_encrypted<S: Write>(state: &Mutex<State>, raw: &Mutex<S>, buf: &[u8]) -> io::Result<()> {
    // Holding the socket lock across encryption keeps records in order between writers.
    let mut sock = lock(raw);
    for piece in buf.chunks(WRITE_CHUNK) {
        let mut out = Vec::with_capacity(piece.len() + 1024);
        {
            let mut st = lock(state);
            st.conn.writer().write_all(piece)?;
            while st.conn.wants_write() {
                st.conn.write_tls(&mut out)?;
            }
        }
        sock.write_all(&out)?;
    }
    Ok(())
}

impl<S: Connection> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_encrypted(&self.state, &self.raw_write, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        lock(&self.raw_write).flush()
    }
}

/// The writing half of a [`TlsStream`].
pub struct TlsWriter<S> {
    state: Arc<Mutex<State>>,
    raw_write: Arc<Mutex<S>>,
}

impl<S: Write> Write for TlsWriter<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_encrypted(&self.state, &self.raw_write, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        lock(&self.raw_write).flush()
    }
}
