//! Fixed newstyle negotiation (proto.md "Handshake"), generic over any `Read + Write`.
//!
//! [`greet`] sends the greeting and reads the client flags; [`haggle`] answers options
//! until the client picks an export (GO / EXPORT_NAME), aborts, or asks for STARTTLS. The
//! caller upgrades the stream after [`Outcome::StartTls`] and calls [`haggle`] again with
//! [`TlsState::Active`]: negotiation itself never sees TLS.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

use super::proto::{self, ExportNameReply, ExportRequest, Info, OptionHeader, OptionReply};
use crate::writer::export::{ClientInfo, Export, ExportResolver, OpenError};

/// Option data longer than this ends the session: no valid option comes near it (names are
/// at most 4096 bytes), and reading it would let a client make us buffer gigabytes.
pub const MAX_OPTION_DATA: u32 = 64 * 1024;
/// A client still haggling after this many options is treated as a denial of service.
pub const MAX_OPTIONS: usize = 1024;

/// The TLS mode of this session (proto.md "TLS support").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsState {
    /// NOTLS: the server has no TLS configured; STARTTLS is unsupported.
    Off,
    /// FORCEDTLS before the upgrade: every option but STARTTLS and ABORT gets TLS_REQD.
    Required,
    /// FORCEDTLS after the upgrade.
    Active,
}

pub struct NegotiateOptions<'a> {
    pub resolver: &'a dyn ExportResolver,
    pub client: &'a ClientInfo,
    pub tls: TlsState,
    /// Largest READ/WRITE payload, advertised as the maximum block size.
    pub max_request: u32,
    /// Set while the server shuts down: options get NBD_REP_ERR_SHUTDOWN.
    pub shutting_down: &'a AtomicBool,
    /// Called when the client chooses an export, before the reply: takes the
    /// connection's transmission slot, or says why there is none (the export is refused).
    pub admit: &'a dyn Fn() -> std::result::Result<(), String>,
}

/// The export a client chose and how it is served.
pub struct Negotiated {
    pub name: String,
    pub export: Arc<dyn Export>,
    /// Transmission flags sent to the client.
    pub flags: u16,
}

pub enum Outcome {
    Transmit(Negotiated),
    /// NBD_REP_ACK was sent for STARTTLS: the TLS handshake comes next.
    StartTls,
    /// The client sent NBD_OPT_ABORT (and got its ACK).
    Aborted,
}

#[derive(Debug, Error)]
pub enum NegotiateError {
    #[error("negotiation I/O")]
    Io(#[from] io::Error),
    #[error("malformed negotiation frame")]
    Protocol(#[from] proto::ProtoError),
    #[error("unknown client flags {0:#x}")]
    ClientFlags(u32),
    #[error("option data of {0} bytes is too long")]
    OptionTooLong(u32),
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
    /// NBD_OPT_EXPORT_NAME cannot return an error: the session is closed instead.
    #[error("export {name:?} refused after NBD_OPT_EXPORT_NAME: {reason}")]
    ExportNameRefused { name: String, reason: String },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Transmit(n) => write!(f, "Transmit({:?}, flags {:#x})", n.name, n.flags),
            Outcome::StartTls => f.write_str("StartTls"),
            Outcome::Aborted => f.write_str("Aborted"),
        }
    }
}

pub type Result<T> = std::result::Result<T, NegotiateError>;

/// The transmission flags for `export`.
///
/// CAN_MULTI_CONN is always set: every [`Export`] shares one store between connections and
/// its flush covers writes acknowledged on any connection (the journal flushes per group).
pub fn transmission_flags(export: &dyn Export) -> u16 {
    let mut flags = proto::FLAG_HAS_FLAGS
        | proto::FLAG_SEND_FLUSH
        | proto::FLAG_SEND_FUA
        | proto::FLAG_CAN_MULTI_CONN;
    if export.read_only() {
        flags |= proto::FLAG_READ_ONLY;
    } else {
        flags |= proto::FLAG_SEND_TRIM | proto::FLAG_SEND_WRITE_ZEROES;
    }
    flags
}

/// Sends the greeting and reads the client flags; returns whether the client asked for
/// NBD_FLAG_C_NO_ZEROES.
pub fn greet<S: Read + Write>(s: &mut S) -> Result<bool> {
    let mut out = Vec::with_capacity(proto::Greeting::LEN);
    proto::Greeting {
        flags: proto::FLAG_FIXED_NEWSTYLE | proto::FLAG_NO_ZEROES,
    }
    .encode(&mut out);
    s.write_all(&out)?;
    s.flush()?;
    let mut b = [0u8; 4];
    s.read_exact(&mut b)?;
    let flags = u32::from_be_bytes(b);
    // proto.md: the server MUST drop the connection on unknown client flags.
    if flags & !(proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES) != 0 {
        return Err(NegotiateError::ClientFlags(flags));
    }
    Ok(flags & proto::FLAG_C_NO_ZEROES != 0)
}

fn send<S: Write>(s: &mut S, option: u32, reply: u32, data: Vec<u8>) -> io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    OptionReply {
        option,
        reply,
        data,
    }
    .encode(&mut out);
    s.write_all(&out)?;
    s.flush()
}

fn send_error<S: Write>(s: &mut S, option: u32, reply: u32, msg: &str) -> io::Result<()> {
    send(s, option, reply, msg.as_bytes().to_vec())
}

/// Answers options until the client chooses an export, aborts or starts TLS.
pub fn haggle<S: Read + Write>(
    s: &mut S,
    opts: &NegotiateOptions<'_>,
    no_zeroes: bool,
) -> Result<Outcome> {
    for _ in 0..MAX_OPTIONS {
        let mut head = [0u8; proto::OPTION_HEADER_LEN];
        s.read_exact(&mut head)?;
        let h = OptionHeader::decode(&mut &head[..])?;
        if h.len > MAX_OPTION_DATA {
            return Err(NegotiateError::OptionTooLong(h.len));
        }
        let mut data = vec![0u8; h.len as usize];
        s.read_exact(&mut data)?;
        tracing::debug!(option = h.option, len = h.len, "NBD option");

        if h.option == proto::OPT_ABORT {
            // The client may already have gone; a failed ACK changes nothing.
            let _ = send(s, h.option, proto::REP_ACK, Vec::new());
            return Ok(Outcome::Aborted);
        }
        if opts.shutting_down.load(Ordering::Relaxed) {
            if h.option == proto::OPT_EXPORT_NAME {
                return Err(NegotiateError::ExportNameRefused {
                    name: String::from_utf8_lossy(&data).into_owned(),
                    reason: "server shutting down".into(),
                });
            }
            send_error(s, h.option, proto::REP_ERR_SHUTDOWN, "server shutting down")?;
            continue;
        }
        if opts.tls == TlsState::Required && h.option != proto::OPT_STARTTLS {
            if h.option == proto::OPT_EXPORT_NAME {
                return Err(NegotiateError::ExportNameRefused {
                    name: String::from_utf8_lossy(&data).into_owned(),
                    reason: "TLS required".into(),
                });
            }
            send_error(s, h.option, proto::REP_ERR_TLS_REQD, "TLS is required")?;
            continue;
        }
        match h.option {
            proto::OPT_STARTTLS => match opts.tls {
                TlsState::Off => {
                    send_error(s, h.option, proto::REP_ERR_UNSUP, "TLS is not configured")?
                }
                TlsState::Active => {
                    send_error(s, h.option, proto::REP_ERR_INVALID, "TLS already active")?
                }
                TlsState::Required if !data.is_empty() => send_error(
                    s,
                    h.option,
                    proto::REP_ERR_INVALID,
                    "STARTTLS takes no data",
                )?,
                TlsState::Required => {
                    send(s, h.option, proto::REP_ACK, Vec::new())?;
                    return Ok(Outcome::StartTls);
                }
            },
            proto::OPT_LIST => {
                if !data.is_empty() {
                    send_error(s, h.option, proto::REP_ERR_INVALID, "LIST takes no data")?;
                    continue;
                }
                for e in opts.resolver.list(opts.client) {
                    let mut d = Vec::new();
                    proto::ServerEntry {
                        name: e.name,
                        description: e.description,
                    }
                    .encode(&mut d);
                    send(s, h.option, proto::REP_SERVER, d)?;
                }
                send(s, h.option, proto::REP_ACK, Vec::new())?;
            }
            proto::OPT_EXPORT_NAME => {
                let name = match std::str::from_utf8(&data) {
                    Ok(n) if n.len() <= proto::MAX_STRING && !n.contains('\0') => n.to_owned(),
                    _ => {
                        return Err(NegotiateError::ExportNameRefused {
                            name: String::from_utf8_lossy(&data).into_owned(),
                            reason: "malformed name".into(),
                        });
                    }
                };
                let export = match open(opts, &name) {
                    Ok(e) => e,
                    Err(e) => {
                        return Err(NegotiateError::ExportNameRefused {
                            name,
                            reason: e.to_string(),
                        });
                    }
                };
                if let Err(reason) = (opts.admit)() {
                    return Err(NegotiateError::ExportNameRefused { name, reason });
                }
                let flags = transmission_flags(&*export);
                let mut out = Vec::new();
                ExportNameReply {
                    size: export.size(),
                    flags,
                    zeroes: !no_zeroes,
                }
                .encode(&mut out);
                s.write_all(&out)?;
                s.flush()?;
                return Ok(Outcome::Transmit(Negotiated {
                    name,
                    export,
                    flags,
                }));
            }
            proto::OPT_INFO | proto::OPT_GO => {
                if let Some(n) = info_or_go(s, opts, h.option, &data)? {
                    return Ok(Outcome::Transmit(n));
                }
            }
            // Structured replies are optional; simple replies serve READ fully.
            _ => send_error(s, h.option, proto::REP_ERR_UNSUP, "option not supported")?,
        }
    }
    Err(NegotiateError::TooManyOptions)
}

fn open(
    opts: &NegotiateOptions<'_>,
    name: &str,
) -> std::result::Result<Arc<dyn Export>, OpenError> {
    let r = opts.resolver.open(name, opts.client);
    if let Err(e) = &r {
        tracing::warn!(
            export = name,
            peer = ?opts.client.peer,
            identity = opts.client.identity.as_deref().unwrap_or("-"),
            error = %e,
            "NBD export refused"
        );
    }
    r
}

/// NBD_OPT_INFO / NBD_OPT_GO: replies with the export's information; `Some` when GO
/// succeeded and transmission starts.
fn info_or_go<S: Read + Write>(
    s: &mut S,
    opts: &NegotiateOptions<'_>,
    option: u32,
    data: &[u8],
) -> Result<Option<Negotiated>> {
    let req = match ExportRequest::decode(&mut &data[..]) {
        Ok(r) => r,
        Err(e) => {
            send_error(s, option, proto::REP_ERR_INVALID, &e.to_string())?;
            return Ok(None);
        }
    };
    let export = match open(opts, &req.name) {
        Ok(e) => e,
        Err(e) => {
            let code = match e {
                OpenError::Unknown(_) => proto::REP_ERR_UNKNOWN,
                OpenError::Refused { .. } => proto::REP_ERR_POLICY,
                // No better code exists; the message says what failed.
                OpenError::Io { .. } => proto::REP_ERR_UNKNOWN,
            };
            let msg = match &e {
                OpenError::Io { source, .. } => format!("{e}: {source}"),
                _ => e.to_string(),
            };
            send_error(s, option, code, &msg)?;
            return Ok(None);
        }
    };
    if option == proto::OPT_GO
        && let Err(reason) = (opts.admit)()
    {
        // No code says "busy"; POLICY with the reason is what a client shows its user.
        send_error(s, option, proto::REP_ERR_POLICY, &reason)?;
        return Ok(None);
    }
    let flags = transmission_flags(&*export);
    let mut infos = vec![Info::Export {
        size: export.size(),
        flags,
    }];
    // Minimum 1: any alignment is served, so sending it unasked cannot hurt a client.
    let max = opts.max_request.max(1);
    let preferred = export.preferred_block_size().clamp(512, 1 << 20);
    let preferred = if preferred.is_power_of_two() {
        preferred
    } else {
        4096
    };
    infos.push(Info::BlockSize {
        min: 1,
        preferred,
        max,
    });
    for &want in &req.info {
        match want {
            proto::INFO_NAME => infos.push(Info::Name(req.name.clone())),
            proto::INFO_DESCRIPTION => {
                let d = opts
                    .resolver
                    .list(opts.client)
                    .into_iter()
                    .find(|e| e.name == req.name)
                    .map(|e| e.description)
                    .unwrap_or_default();
                infos.push(Info::Description(d));
            }
            // EXPORT and BLOCK_SIZE are always sent; unknown types are ignored (proto.md).
            _ => {}
        }
    }
    for i in infos {
        let mut d = Vec::new();
        i.encode(&mut d);
        send(s, option, proto::REP_INFO, d)?;
    }
    send(s, option, proto::REP_ACK, Vec::new())?;
    if option == proto::OPT_GO {
        Ok(Some(Negotiated {
            name: req.name,
            export,
            flags,
        }))
    } else {
        Ok(None)
    }
}
