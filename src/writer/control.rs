//! The control socket: JSON lines over a root-only Unix socket (status, points, bookmark,
//! recover, commit). One request per connection; a recover streams progress lines first.

use super::service::Writer;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Points {
        group: Option<String>,
    },
    Bookmark {
        group: String,
        label: String,
    },
    Recover {
        group: String,
        to: String,
        dry_run: bool,
    },
    Commit {
        group: String,
    },
}

/// Answers a request against `w` (the service's, or one opened offline by the CLI).
pub fn execute(
    w: &Writer,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Value> {
    Ok(match req {
        Request::Status => serde_json::to_value(w.status())?,
        Request::Points { group } => serde_json::to_value(w.points(group.as_deref())?)?,
        Request::Bookmark { group, label } => serde_json::to_value(w.bookmark(group, label)?)?,
        Request::Recover { group, to, dry_run } => {
            serde_json::to_value(w.recover(group, to, *dry_run, progress)?)?
        }
        Request::Commit { group } => serde_json::to_value(w.commit(group)?)?,
    })
}

/// Creates the socket's folder (mode 0700 when we create it) and removes a stale socket.
pub fn prepare_socket_path(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting mode of {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{} answers: another writer service is running",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    Ok(())
}

pub struct Control {
    listener: UnixListener,
    writer: Arc<Writer>,
}

impl Control {
    pub fn bind(path: &Path, writer: Arc<Writer>) -> anyhow::Result<Control> {
        use std::os::unix::fs::PermissionsExt;
        prepare_socket_path(path)?;
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting mode of {}", path.display()))?;
        Ok(Control { listener, writer })
    }

    pub fn serve(self) {
        for conn in self.listener.incoming() {
            let Ok(conn) = conn else { continue };
            let w = self.writer.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve_one(&w, conn) {
                    tracing::warn!(error = %format!("{e:#}"), "control connection");
                }
            });
        }
    }
}

/// A control client must send its request within this, and read what it is sent: one that
/// stalls would otherwise pin a thread, or hold a recover (and its group) at a progress line.
const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn serve_one(w: &Writer, conn: UnixStream) -> anyhow::Result<()> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    conn.set_read_timeout(Some(CONTROL_TIMEOUT))?;
    conn.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    // Only root (or the service's own user) may steer recovery of the disks.
    let cred = getsockopt(&conn, PeerCredentials)?;
    let me = nix::unistd::geteuid().as_raw();
    let mut out = conn.try_clone()?;
    if cred.uid() != 0 && cred.uid() != me {
        tracing::warn!(
            uid = cred.uid(),
            pid = cred.pid(),
            "control socket: refused peer"
        );
        writeln!(
            out,
            "{}",
            json!({"error": "permission denied", "bad_input": false})
        )?;
        return Ok(());
    }
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            writeln!(
                out,
                "{}",
                json!({"error": format!("bad request: {e}"), "bad_input": true})
            )?;
            return Ok(());
        }
    };
    tracing::info!(?req, uid = cred.uid(), "control request");
    // Progress is best effort: a client gone (or not reading) must not stop the recover.
    let mut gone = false;
    let mut progress_out = out.try_clone()?;
    let mut progress = |done: u64, total: u64| {
        if !gone {
            gone = writeln!(progress_out, "{}", json!({"progress": [done, total]})).is_err();
        }
    };
    let reply = match execute(w, &req, &mut progress) {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({
            "error": format!("{e:#}"),
            "bad_input": crate::error::exit_code(&e) == 2,
        }),
    };
    writeln!(out, "{reply}")?;
    Ok(())
}

/// Why the CLI could not use the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the writer service is not running (no answer on {0})")]
    NotRunning(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Sends one request to the running service; `progress` sees recover progress.
pub fn request(
    path: &Path,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, ClientError> {
    let conn = match UnixStream::connect(path) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning(path.display().to_string()));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("connecting to {}", path.display()))
                .into());
        }
    };
    let mut w = conn.try_clone().map_err(anyhow::Error::from)?;
    writeln!(
        w,
        "{}",
        serde_json::to_string(req).map_err(anyhow::Error::from)?
    )
    .map_err(anyhow::Error::from)?;
    for line in BufReader::new(conn).lines() {
        let line = line.map_err(anyhow::Error::from)?;
        let v: Value = serde_json::from_str(&line).map_err(anyhow::Error::from)?;
        if let Some(p) = v.get("progress").and_then(Value::as_array) {
            let n = |i: usize| p.get(i).and_then(Value::as_u64).unwrap_or(0);
            progress(n(0), n(1));
        } else if let Some(ok) = v.get("ok") {
            return Ok(ok.clone());
        } else if let Some(err) = v.get("error").and_then(Value::as_str) {
            let e = if v.get("bad_input").and_then(Value::as_bool) == Some(true) {
                crate::error::bad_input(err)
            } else {
                anyhow::anyhow!("{err}")
            };
            return Err(e.into());
        }
    }
    Err(
        anyhow::anyhow!("the writer service closed the control connection without an answer")
            .into(),
    )
}

/// Runs a request on the running service, or, when it is not running, on the journal
/// directly (this process then holds the groups' locks for the duration).
pub fn request_or_offline(
    cfg: &crate::config::Config,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Value> {
    match request(&cfg.writer.control_socket, req, progress) {
        Ok(v) => Ok(v),
        Err(ClientError::NotRunning(sock)) => {
            tracing::debug!(socket = %sock, "service not running: using the journal directly");
            let w = Writer::open(cfg)?;
            execute(&w, req, progress)
        }
        Err(ClientError::Other(e)) => Err(e),
    }
}
