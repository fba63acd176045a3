//! The control socket: JSON lines over a root-only Unix socket (status, points, bookmark,
//! recover, commit). One request per connection; a recover streams progress lines first.

use super::recover::PointSpec;
use super::service::Writer;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
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
        to: PointSpec,
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
/// Only a socket is ever removed: anything else at the path (a file, a folder, a link) is
/// a mistake in `[writer] key` that must not cost what is there, and is bad input.
pub fn prepare_socket_path(path: &Path, key: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = crate::files::parent_dir(path);
    if !dir.exists() {
        // 0700 closes the window between bind (socket made with the umask's mode) and
        // the chmod to 0600 after it, and guards where connect ignores a socket's mode.
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting mode of {}", dir.display()))?;
    }
    // lstat: a link is judged itself, never the file it points at.
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let ty = meta.file_type();
    if !ty.is_socket() {
        let what = if ty.is_symlink() {
            "a symbolic link"
        } else if ty.is_dir() {
            "a folder"
        } else if ty.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return Err(crate::error::bad_input(format!(
            "[writer] {key} = {:?}: {} is {what}, not a socket, and is left alone; point \
             {key} at a free path for the socket, e.g. \"/run/mtkit/{}\"",
            path.display().to_string(),
            path.display(),
            if key == "unix-socket" {
                "nbd.sock"
            } else {
                "writer.sock"
            }
        )));
    }
    if UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "{} answers: another writer service is running",
            path.display()
        );
    }
    std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    Ok(())
}

pub struct Control {
    listener: UnixListener,
    writer: Arc<Writer>,
}

impl Control {
    pub fn bind(path: &Path, writer: Arc<Writer>) -> anyhow::Result<Control> {
        use std::os::unix::fs::PermissionsExt;
        prepare_socket_path(path, "control-socket")?;
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting mode of {}", path.display()))?;
        Ok(Control { listener, writer })
    }

    pub fn serve(self) {
        for conn in self.listener.incoming() {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    // Out of fds (EMFILE) accept fails at once again: pause, don't spin.
                    tracing::warn!(error = %e, "control socket: accept");
                    std::thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            };
            let w = self.writer.clone();
            // Builder, not thread::spawn: out of threads, drop the connection (the client
            // sees it closed) instead of panicking the accept loop.
            let spawned = std::thread::Builder::new()
                .name("control".into())
                .spawn(move || {
                    if let Err(e) = serve_one(&w, conn) {
                        tracing::warn!(error = %format!("{e:#}"), "control connection");
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "control socket: no thread for a connection");
            }
        }
    }
}

/// How long an accept loop waits after a failed accept (EMFILE, ENOMEM).
pub(crate) const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Longest request line read: requests are a few hundred bytes, and a peer must not
/// make the service buffer without bound before the newline.
const MAX_REQUEST: u64 = 64 << 10;

/// A control client must send its request within this, and read what it is sent: one that
/// stalls would otherwise pin a thread, or hold a recover (and its group) at a progress line.
const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn serve_one(w: &Writer, conn: UnixStream) -> anyhow::Result<()> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    conn.set_read_timeout(Some(CONTROL_TIMEOUT))
        .and_then(|_| conn.set_write_timeout(Some(CONTROL_TIMEOUT)))
        .context("setting control connection timeouts")?;
    // Only root (or the service's own user) may steer recovery of the disks. The file
    // modes already keep others out; SO_PEERCRED still holds if a mode was loosened.
    let cred = getsockopt(&conn, PeerCredentials).context("reading the control peer's uid")?;
    let me = nix::unistd::geteuid().as_raw();
    // Replies go through `&UnixStream`, not a try_clone: a dup can fail (EMFILE).
    let out = &conn;
    if cred.uid() != 0 && cred.uid() != me {
        tracing::warn!(
            uid = cred.uid(),
            pid = cred.pid(),
            "control socket: refused peer"
        );
        return answer(
            out,
            &json!({"error": "permission denied", "bad_input": false}),
        );
    }
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_REQUEST))
        .read_line(&mut line)
        .context("reading a control request")?;
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let e = format!("bad request: {e}");
            return answer(out, &json!({"error": e, "bad_input": true}));
        }
    };
    tracing::info!(?req, uid = cred.uid(), "control request");
    // Progress is best effort: a client gone (or not reading) must not stop the recover.
    let mut gone = false;
    let mut progress_out = &conn;
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
    answer(out, &reply)
}

/// Writes the final answer line of a request.
fn answer(mut out: &UnixStream, v: &Value) -> anyhow::Result<()> {
    writeln!(out, "{v}").context("answering the control client")
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
    let mut w = &conn;
    let text = serde_json::to_string(req).context("encoding a control request")?;
    writeln!(w, "{text}").with_context(|| format!("sending a request to {}", path.display()))?;
    for line in BufReader::new(conn).lines() {
        let line = line.with_context(|| format!("reading the answer on {}", path.display()))?;
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("a bad answer line on {}: {line:?}", path.display()))?;
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
            // Listings change nothing: no torn batch cut, no interrupted commit finished.
            let access = match req {
                Request::Status | Request::Points { .. } => {
                    crate::writer::journal::Access::ReadOnly
                }
                _ => crate::writer::journal::Access::Write,
            };
            let w = Writer::open_with(cfg, Path::new("/"), access)?;
            execute(&w, req, progress)
        }
        Err(ClientError::Other(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path) -> Arc<Writer> {
        let text = format!("[writer]\njournal-dir = \"{}\"\n", dir.join("j").display());
        Arc::new(Writer::open(&toml::from_str(&text).unwrap()).unwrap())
    }

    /// Sends `req` bytes to `serve_one` over a socket pair; the answer lines.
    fn exchange(w: &Arc<Writer>, req: Vec<u8>) -> Vec<Value> {
        let (client, server) = UnixStream::pair().unwrap();
        let w = w.clone();
        let t = std::thread::spawn(move || serve_one(&w, server));
        // A writer thread: an overlong request fills the socket buffer before the answer.
        let mut c = client.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let _ = c.write_all(&req);
        });
        // After the answer, a reset is fine: the server closed with the request unread.
        let lines = BufReader::new(&client)
            .lines()
            .map_while(Result::ok)
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect();
        t.join().unwrap().unwrap();
        drop(client);
        sender.join().unwrap();
        lines
    }

    #[test]
    fn requests_get_one_answer_line_and_bad_ones_are_bad_input() {
        let t = tempfile::tempdir().unwrap();
        let w = writer(t.path());
        let a = exchange(&w, b"{\"cmd\":\"status\"}\n".to_vec());
        assert_eq!(a, [json!({"ok": {"groups": []}})]);
        let a = exchange(&w, b"{\"cmd\":\"format-all\"}\n".to_vec());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["bad_input"], true, "{a:?}");
        // Past MAX_REQUEST without a newline: refused, not buffered until the timeout.
        let a = exchange(&w, vec![b' '; 2 * MAX_REQUEST as usize]);
        assert_eq!(a.len(), 1);
        assert!(
            a[0]["error"].as_str().unwrap().contains("bad request"),
            "{a:?}"
        );
        let a = exchange(&w, b"{\"cmd\":\"commit\",\"group\":\"nope\"}\n".to_vec());
        assert_eq!(a[0]["bad_input"], true, "{a:?}");
        assert!(
            a[0]["error"].as_str().unwrap().contains("no group"),
            "{a:?}"
        );
    }

    #[test]
    fn the_client_talks_to_a_bound_socket_and_knows_when_none_runs() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("run/ctl.sock");
        assert!(matches!(
            request(&sock, &Request::Status, &mut |_, _| {}),
            Err(ClientError::NotRunning(_))
        ));
        let control = Control::bind(&sock, writer(t.path())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&sock), mode(sock.parent().unwrap())), (0o600, 0o700));
        std::thread::spawn(move || control.serve());
        let v = request(&sock, &Request::Status, &mut |_, _| {}).unwrap();
        assert_eq!(v, json!({"groups": []}));
        let err = request(
            &sock,
            &Request::Points {
                group: Some("nope".into()),
            },
            &mut |_, _| {},
        )
        .err()
        .unwrap();
        let ClientError::Other(err) = err else {
            panic!("{err}")
        };
        assert_eq!(crate::error::exit_code(&err), 2, "{err:#}");
        // A second service on the same socket is refused while the first answers.
        let err = prepare_socket_path(&sock, "control-socket").unwrap_err();
        assert!(err.to_string().contains("another writer service"), "{err}");
    }

    #[test]
    fn only_sockets_are_removed_from_a_socket_path() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("appliance.toml");
        std::fs::write(&file, "[writer]\n").unwrap();
        let folder = t.path().join("run");
        std::fs::create_dir(&folder).unwrap();
        let link = t.path().join("link.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for (p, kind) in [
            (&file, "a regular file"),
            (&folder, "a folder"),
            (&link, "a symbolic link"),
        ] {
            let e = prepare_socket_path(p, "unix-socket").unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{e:#}");
            let msg = e.to_string();
            assert!(
                msg.contains("[writer] unix-socket") && msg.contains(&p.display().to_string()),
                "{msg}"
            );
            assert!(msg.contains(kind), "{msg}");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "[writer]\n");
        assert!(folder.is_dir() && link.is_symlink());
        // A stale socket (nobody answers) is removed.
        let sock = t.path().join("stale.sock");
        drop(UnixListener::bind(&sock).unwrap());
        prepare_socket_path(&sock, "control-socket").unwrap();
        assert!(!sock.exists());
    }
}
