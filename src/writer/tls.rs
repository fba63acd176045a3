//! TLS for the NBD server (NBD_OPT_STARTTLS): rustls config from `[writer.tls]`, a
//! full-duplex TLS stream over a [`Connection`], client identities and access policy.
//!
//! The transmission phase reads requests and writes replies from different threads, which
//! a single rustls connection object cannot do by itself. [`TlsStream`] shares the
//! connection state under a mutex and never holds it during socket I/O: the reader pulls
//! raw bytes from the socket unlocked, then feeds them in; a writer encrypts under the lock
//! and sends the records unlocked but in order under a second lock.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::export::ClientInfo;
use super::nbd::server::Connection;
use crate::config::WriterTls;

/// Plaintext is encrypted in pieces of this size, so a 32 MiB READ reply never needs a
/// second 32 MiB buffer.
const WRITE_CHUNK: usize = 256 * 1024;
const READ_CHUNK: usize = 256 * 1024;

/// The files of a `[writer.tls]` section: `dir` gives defaults, explicit paths win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn resolve(t: &WriterTls) -> anyhow::Result<TlsFiles> {
        let from_dir = |name: &str| t.dir.as_ref().map(|d| d.join(name));
        let pick = |explicit: &Option<PathBuf>, name: &str, key: &str| {
            explicit.clone().or_else(|| from_dir(name)).ok_or_else(|| {
                crate::error::bad_input(format!(
                    "[writer.tls] needs `dir` (holding {name}) or `{key}`"
                ))
            })
        };
        Ok(TlsFiles {
            ca: pick(&t.ca, "ca-cert.pem", "ca")?,
            cert: pick(&t.cert, "server-cert.pem", "cert")?,
            key: pick(&t.key, "server-key.pem", "key")?,
        })
    }
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            crate::error::bad_input(format!("reading certificates from {}: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(crate::error::bad_input(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Builds the server's TLS config: its certificate, and client certificates required and
/// verified against the CA (expired or foreign ones fail the handshake).
pub fn server_config(t: &WriterTls) -> anyhow::Result<Arc<ServerConfig>> {
    let files = TlsFiles::resolve(t)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&files.ca)? {
        roots
            .add(ca)
            .with_context(|| format!("adding the CA in {}", files.ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the client certificate verifier")?;
    let certs = load_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        crate::error::bad_input(format!(
            "reading the private key {}: {e}",
            files.key.display()
        ))
    })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .with_context(|| format!("server certificate {}", files.cert.display()))?;
    Ok(Arc::new(config))
}

/// Whether `client` may open a disk of a group whose `[[writer.group]] clients` list is
/// `group_clients`. An empty list restricts nothing beyond the CA; otherwise the client's
/// verified certificate identity must be listed, and a client without a usable identity
/// is refused. Without TLS there is no identity and no list applies (the listen policy
/// keeps such a server on loopback or the Unix socket unless `insecure`).
pub fn allowed(group_clients: &[String], client: &ClientInfo) -> bool {
    !client.tls
        || group_clients.is_empty()
        || client
            .identity
            .as_deref()
            .is_some_and(|id| group_clients.iter().any(|c| c == id))
}

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

    /// The verified client certificate's identity: its subject CN, else its first DNS SAN.
    pub fn identity(&self) -> Option<String> {
        let st = lock(&self.state);
        let cert = st.conn.peer_certificates()?.first()?;
        cert_identity(cert.as_ref())
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

/// One DER element: (tag, contents), advancing `buf`.
fn der<'a>(buf: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    *buf = after;
    Some((tag, content))
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// ASN.1 string types a CN may use and still name a client: UTF8String, PrintableString,
/// IA5String. The others (BMPString, TeletexString, UniversalString) are not UTF-8 bytes.
const CN_STRING_TAGS: [u8; 3] = [0x0c, 0x13, 0x16];
/// A subject-alternative name of type dNSName ([2] IMPLICIT IA5String).
const SAN_DNS_TAG: u8 = 0x82;

/// A name usable as an identity: UTF-8, not empty, no control characters (it is compared
/// with `[[writer.group]] clients` and written to logs).
fn usable_name(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && !s.contains(char::is_control)).then(|| s.to_owned())
}

/// The identity of a client certificate, as docs/nbd-server.md states it: the subject's
/// common name when the subject has exactly one CN, of a UTF-8-compatible string type,
/// valid UTF-8, non-empty, without control characters; a subject with any other CN (two
/// of them, a BMPString, bad bytes) has no identity at all, never a fallback. A subject
/// without CN takes the first DNS subject-alternative name under the same text rules.
/// IP, e-mail and URI names and other subject fields (O, OU) never make an identity.
/// (The certificate was already verified by webpki; this only reads names out of it.)
pub fn cert_identity(cert: &[u8]) -> Option<String> {
    let mut c = cert;
    let (_, certificate) = der(&mut c)?;
    let mut c = certificate;
    let (_, mut tbs) = der(&mut c)?;
    let mut fields = Vec::new();
    while let Some(f) = der(&mut tbs) {
        fields.push(f);
    }
    // [0] version is optional; after it: serial, signature, issuer, validity, subject.
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let subject = fields.get(skip + 4)?.1;
    let mut cns = Vec::new();
    let mut rdns = subject;
    while let Some((_, set)) = der(&mut rdns) {
        let mut set = set;
        while let Some((_, atv)) = der(&mut set) {
            let mut atv = atv;
            let (_, oid) = der(&mut atv)?;
            let value = der(&mut atv)?;
            if oid == OID_CN {
                cns.push(value);
            }
        }
    }
    match cns[..] {
        [] => {}
        [(tag, value)] if CN_STRING_TAGS.contains(&tag) => return usable_name(value),
        _ => return None,
    }
    let exts = fields.iter().find(|f| f.0 == 0xa3)?.1;
    let mut exts = exts;
    let (_, mut list) = der(&mut exts)?;
    while let Some((_, ext)) = der(&mut list) {
        let mut ext = ext;
        let (_, oid) = der(&mut ext)?;
        if oid != OID_SAN {
            continue;
        }
        let mut value = None;
        while let Some((tag, v)) = der(&mut ext) {
            if tag == 0x04 {
                value = Some(v);
            }
        }
        let mut san = value?;
        let (_, mut names) = der(&mut san)?;
        while let Some((tag, name)) = der(&mut names) {
            if tag == SAN_DNS_TAG {
                return usable_name(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: &[&str]) -> Vec<u8> {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, cn.to_string());
        }
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn identity_from_cn_then_san() {
        assert_eq!(
            cert_identity(&cert(Some("ps-azure-01"), &["x.example"])).as_deref(),
            Some("ps-azure-01")
        );
        assert_eq!(
            cert_identity(&cert(None, &["ps-02.example"])).as_deref(),
            Some("ps-02.example")
        );
        assert_eq!(cert_identity(&cert(None, &[])), None);
        assert_eq!(cert_identity(b"\x30\x82\xff"), None);
        assert_eq!(cert_identity(&[]), None);
    }

    fn cert_with(dn: &[(rcgen::DnType, rcgen::DnValue)], sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), v.clone());
        }
        p.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn unusable_names_give_no_identity_and_no_fallback() {
        use rcgen::{DnType, DnValue, SanType};
        let dns = || vec![SanType::DnsName("ps-02.example".try_into().unwrap())];
        let ip = vec![SanType::IpAddress("192.0.2.7".parse().unwrap())];
        let org = (
            DnType::OrganizationName,
            DnValue::Utf8String("Contoso".into()),
        );
        // O and an IP SAN only: nothing names the client.
        assert_eq!(
            cert_identity(&cert_with(std::slice::from_ref(&org), ip)),
            None
        );
        // A CN that is not UTF-8 text: no identity, and the DNS SAN does not stand in.
        // BMPString "ÿa": the bytes 00 ff 00 61 are not UTF-8.
        let bmp = DnValue::BmpString(
            rcgen::string::BmpString::from_utf16be(vec![0, 0xff, 0, 0x61]).unwrap(),
        );
        assert_eq!(
            cert_identity(&cert_with(&[(DnType::CommonName, bmp)], dns())),
            None
        );
        let teletex = DnValue::TeletexString("ps-01".try_into().unwrap());
        assert_eq!(
            cert_identity(&cert_with(&[(DnType::CommonName, teletex)], dns())),
            None
        );
        let ctl = DnValue::Utf8String("ps-01\n[ok]".into());
        assert_eq!(
            cert_identity(&cert_with(&[(DnType::CommonName, ctl)], dns())),
            None
        );
        // No CN at all: the DNS SAN, and O beside it changes nothing.
        assert_eq!(
            cert_identity(&cert_with(std::slice::from_ref(&org), dns())).as_deref(),
            Some("ps-02.example")
        );
        let printable = DnValue::PrintableString("ps-03".try_into().unwrap());
        assert_eq!(
            cert_identity(&cert_with(&[org, (DnType::CommonName, printable)], dns())).as_deref(),
            Some("ps-03")
        );
    }

    #[test]
    fn access_policy() {
        let c = |id: Option<&str>| ClientInfo {
            peer: None,
            tls: true,
            identity: id.map(str::to_owned),
        };
        let list = vec!["ps-azure-01".to_string()];
        assert!(allowed(&list, &c(Some("ps-azure-01"))));
        assert!(!allowed(&list, &c(Some("ps-azure-02"))));
        // Over TLS without a usable identity: refused wherever clients are listed.
        assert!(!allowed(&list, &c(None)));
        assert!(allowed(&[], &c(None)));
        // Without TLS no list applies.
        assert!(allowed(&list, &ClientInfo::default()));
    }

    #[test]
    fn tls_files_resolve() {
        let t = WriterTls {
            dir: Some("/d".into()),
            key: Some("/k.pem".into()),
            ..WriterTls::default()
        };
        let f = TlsFiles::resolve(&t).unwrap();
        assert_eq!(f.ca, Path::new("/d/ca-cert.pem"));
        assert_eq!(f.cert, Path::new("/d/server-cert.pem"));
        assert_eq!(f.key, Path::new("/k.pem"));
        assert!(TlsFiles::resolve(&WriterTls::default()).is_err());
    }
}
