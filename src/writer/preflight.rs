//! Whether the writer starts with a config, judged from the config alone. `writer run`
//! checks it first, and `kickstart`, `build` and `doctor` call the same function, so a
//! config they pass is one the installed service starts with. The rules on single keys
//! (export and group names, journal ids, request sizes) are config validation's, reported
//! at file:line:column; what is left here needs more than the config's text: the TLS files
//! and the listen address as the service resolves them.
//!
//! Also the TLS the service starts with: `[writer.tls]` as configured, or (unset, and
//! listening beyond loopback) the appliance's own CA in /etc/mtkit/tls, made on first need;
//! and the journal folder's filesystem, which must come back whole after a power cut
//! (`host::crashsafe`), judged the same way by `writer run` and `doctor`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use crate::config::{Config, Writer, WriterTls};
use crate::error::bad_input;
use crate::host::crashsafe::{self, Judgement};
use crate::host::under;

use super::certs;

/// How the NBD server will do TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPlan {
    /// `[writer.tls]` as configured: forced TLS with its files.
    Configured,
    /// No `[writer.tls]` and a listen address beyond loopback: forced TLS with the
    /// appliance's own CA and server certificate in /etc/mtkit/tls.
    Own,
    /// Loopback (or the Unix socket) only: plain NBD.
    Plain,
    /// `[writer] insecure = true` on a network address: plain NBD, warned at every start.
    Insecure,
}

impl TlsPlan {
    /// One line for status, doctor and the summary: what the service does, and how a
    /// replication source gets a certificate.
    pub fn describe(&self, cfg: &Config) -> String {
        match self {
            TlsPlan::Own => format!(
                "forced TLS with the appliance's own CA in {}; issue a client certificate per \
                 replication source with `{}`",
                certs::DEFAULT_DIR,
                certs::ISSUE_CLIENT
            ),
            TlsPlan::Configured => {
                let at = cfg.writer.tls.as_ref().and_then(|t| t.dir.as_ref());
                match at {
                    Some(dir) => format!(
                        "forced TLS with [writer.tls] dir {}; issue a client certificate with \
                         `{}`",
                        dir.display(),
                        certs::ISSUE_CLIENT
                    ),
                    None => "forced TLS with the [writer.tls] files; client certificates come \
                             from the CA that signed them"
                        .into(),
                }
            }
            TlsPlan::Plain => "plain NBD, on loopback only (no TLS needed)".into(),
            TlsPlan::Insecure => format!(
                "plain NBD on {} ([writer] insecure = true): anyone who can connect can \
                 overwrite the target disks",
                cfg.writer.listen
            ),
        }
    }

    pub fn forced(&self) -> bool {
        matches!(self, TlsPlan::Configured | TlsPlan::Own)
    }
}

/// Which TLS the listen address and `[writer.tls]`/`insecure` give.
pub fn tls_plan(w: &Writer) -> Result<TlsPlan, String> {
    if w.tls.is_some() {
        return Ok(TlsPlan::Configured);
    }
    if w.listen.is_empty() {
        return Ok(TlsPlan::Plain);
    }
    // An IP:port (what validation accepts) resolves without DNS.
    let addrs: Vec<SocketAddr> = w
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("[writer] listen {:?}: {e}", w.listen))?
        .collect();
    if !addrs.iter().any(|a| !a.ip().is_loopback()) {
        Ok(TlsPlan::Plain)
    } else if w.insecure {
        Ok(TlsPlan::Insecure)
    } else {
        Ok(TlsPlan::Own)
    }
}

/// Every reason the writer would refuse to start with a validated `cfg`, whatever the
/// machine.
pub fn problems(cfg: &Config) -> Vec<String> {
    let w = &cfg.writer;
    let mut out = Vec::new();
    match tls_plan(w) {
        Ok(TlsPlan::Configured) => {
            if let Some(t) = &w.tls
                && let Err(e) = super::certs::TlsFiles::resolve(t)
            {
                out.push(format!("{e:#}"));
            }
        }
        Ok(_) => {}
        Err(e) => out.push(e),
    }
    out
}

/// [`problems`] as one error (bad input, exit 2), else the TLS plan.
pub fn check(cfg: &Config) -> anyhow::Result<TlsPlan> {
    let found = problems(cfg);
    if !found.is_empty() {
        return Err(bad_input(format!(
            "the writer service would refuse to start with this config:\n  {}",
            found.join("\n  ")
        )));
    }
    tls_plan(&cfg.writer).map_err(bad_input)
}

/// The filesystem of the journal folder of `cfg` on the system under `root`.
pub fn journal_filesystem(cfg: &Config, root: &Path) -> Judgement {
    crashsafe::of_folder(root, &cfg.writer.journal_dir(&cfg.retention))
}

/// Why the journal folder of `cfg` is refused, in the words `writer run` and `doctor` use;
/// `None` when its filesystem is crash-safe.
pub fn journal_refusal(cfg: &Config, j: &Judgement) -> Option<String> {
    (!j.is_safe()).then(|| {
        let dir = cfg.writer.journal_dir(&cfg.retention);
        let verb = match j.safety {
            crashsafe::Safety::Unknown => "cannot be told crash-safe",
            _ => "is not crash-safe",
        };
        format!(
            "the journal folder {} ([writer] journal-dir) {verb}: it is on {}",
            dir.display(),
            j.describe()
        )
    })
}

/// At start: refuses (exit 2) a journal folder whose filesystem a power cut can corrupt or
/// empty, unless `[writer] allow-unsafe-journal = true`, which only warns.
pub fn check_journal_filesystem(cfg: &Config, root: &Path) -> anyhow::Result<()> {
    let j = journal_filesystem(cfg, root);
    let Some(why) = journal_refusal(cfg, &j) else {
        tracing::info!(filesystem = %j.filesystem, "journal filesystem is crash-safe");
        return Ok(());
    };
    if cfg.writer.allow_unsafe_journal {
        tracing::warn!(
            "{why}. STARTING ANYWAY ([writer] allow-unsafe-journal = true): a power cut can \
             lose recovery points or make a recover write the wrong data; on an appliance, {}",
            crashsafe::REMEDY
        );
        return Ok(());
    }
    Err(bad_input(format!(
        "{why}\nthe writer refuses to start: {}\n(for tests and labs only, [writer] \
         allow-unsafe-journal = true starts it anyway, with a warning)",
        crashsafe::REMEDY
    )))
}

/// The `[writer.tls]` the service starts with on the system under `root`: the configured
/// one (its paths under root), or the appliance's own, made now when missing. `None`: no
/// TLS.
pub fn tls_for_start(
    cfg: &Config,
    plan: &TlsPlan,
    root: &Path,
) -> anyhow::Result<Option<WriterTls>> {
    match plan {
        TlsPlan::Plain => Ok(None),
        TlsPlan::Insecure => {
            tracing::warn!(
                listen = %cfg.writer.listen,
                "NBD server listens on a non-loopback address WITHOUT TLS ([writer] insecure = true): \
                 anyone who can connect can overwrite the target disks"
            );
            Ok(None)
        }
        TlsPlan::Configured => {
            let t = cfg.writer.tls.clone().unwrap_or_default();
            let at = |p: Option<std::path::PathBuf>| p.map(|p| under(root, &p));
            Ok(Some(WriterTls {
                dir: at(t.dir),
                cert: at(t.cert),
                key: at(t.key),
                ca: at(t.ca),
            }))
        }
        TlsPlan::Own => {
            let made = certs::ensure_default(root, cfg)?;
            let dir = made.dir;
            if !made.files.is_empty() {
                tracing::info!(dir = %dir.display(), "made the appliance's own CA and server certificate (first start)");
            }
            tracing::info!(
                dir = %dir.display(),
                "forced TLS with the appliance's own CA; issue client certificates with `{}`",
                certs::ISSUE_CLIENT
            );
            Ok(Some(WriterTls {
                dir: Some(dir),
                ..WriterTls::default()
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_and_tls_keys_decide_the_plan() {
        let mut w = Writer {
            listen: "127.0.0.1:10809".into(),
            ..Writer::default()
        };
        assert_eq!(tls_plan(&w), Ok(TlsPlan::Plain));
        w.listen = "[::1]:10809".into();
        assert_eq!(tls_plan(&w), Ok(TlsPlan::Plain));
        w.listen = String::new();
        assert_eq!(tls_plan(&w), Ok(TlsPlan::Plain));
        // The default: reachable from the network, no [writer.tls] → the appliance's own CA.
        w.listen = "0.0.0.0:10809".into();
        assert_eq!(tls_plan(&w), Ok(TlsPlan::Own));
        w.insecure = true;
        assert_eq!(tls_plan(&w), Ok(TlsPlan::Insecure));
        w.tls = Some(WriterTls {
            dir: Some("/x".into()),
            ..WriterTls::default()
        });
        assert_eq!(tls_plan(&w), Ok(TlsPlan::Configured));
        w.tls = None;
        w.listen = "not an address".into();
        assert!(tls_plan(&w).is_err());
    }

    #[test]
    fn the_defaults_start_and_every_refusal_is_listed() {
        let cfg = Config::default();
        assert_eq!(check(&cfg).unwrap(), TlsPlan::Own);
        assert!(
            TlsPlan::Own
                .describe(&cfg)
                .contains("mtkit writer certs --client NAME")
        );
        let text = "[writer]\nlisten = \"nowhere\"\n[writer.tls]\ncert = \"/nonexistent/c.pem\"\n";
        let mut cfg: Config = toml::from_str(text).unwrap();
        assert_eq!(problems(&cfg).len(), 1, "{:#?}", problems(&cfg));
        cfg.writer.tls = None;
        let p = problems(&cfg);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].contains("[writer] listen \"nowhere\""), "{}", p[0]);
        let e = check(&cfg).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(e.to_string().contains("would refuse to start"), "{e}");
    }
}
