//! The recovery session file of a group (`recover/state.json`) and the folder of saved
//! head contents beside it: while it is there the group is closed to writes.

use std::io;
use std::path::{Path, PathBuf};

/// The session file saying a recovery is under way and where the disks are.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The point the disks are at; `None` while a recover is (or died) half-way.
    pub at: Option<u64>,
    pub started: chrono::DateTime<chrono::Utc>,
    /// A commit to `at` has begun: finish it, never recover again.
    #[serde(default)]
    pub committing: bool,
    /// Names the session's log of head contents (`saved-<id>`), so that only this
    /// session's log is ever read as its head. Empty in files of builds before ids: their
    /// log is `saved`.
    #[serde(default)]
    pub id: String,
}

impl Session {
    pub(crate) fn saved_dir(&self, dir: &Path) -> PathBuf {
        if self.id.is_empty() {
            session_dir(dir).join("saved")
        } else {
            session_dir(dir).join(format!("saved-{}", self.id))
        }
    }
}

/// Removes every log of head contents in the session folder but `keep`, then syncs the
/// folder. Such a log with no session file naming it was left by a crash in a commit's
/// removal: its records are the head of a recovery that is over, and read as today's head
/// they would put old data on blocks not written since.
pub(crate) fn remove_saved_logs(dir: &Path, keep: Option<&Path>) -> Result<(), SessionError> {
    let d = session_dir(dir);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SessionError::io("listing", &d)(e)),
    };
    let mut removed = false;
    for e in entries {
        let p = e.map_err(SessionError::io("listing", &d))?.path();
        let is_log = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("saved"));
        if is_log && Some(p.as_path()) != keep {
            std::fs::remove_dir_all(&p).map_err(SessionError::io("removing recovery log", &p))?;
            removed = true;
        }
    }
    if removed {
        crate::files::sync_dir(&d).map_err(SessionError::io("syncing", &d))?;
    }
    Ok(())
}

/// Removes a committed session in an order that a crash cannot misread: its head contents
/// first (synced), then the session file, then the folder. A session file without its log
/// is still a commit to finish; a log without its session file is never read (see
/// [`Session::id`]), and with this order there is none.
pub(crate) fn remove_session(dir: &Path) -> Result<(), SessionError> {
    let d = session_dir(dir);
    remove_saved_logs(dir, None)?;
    super::test_pause("commit: recovery log removed");
    let state = session_path(dir);
    match std::fs::remove_file(&state) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SessionError::io("removing", &state)(e)),
    }
    crate::files::sync_dir(&d).map_err(SessionError::io("syncing", &d))?;
    super::test_pause("commit: session file removed");
    std::fs::remove_dir_all(&d).map_err(SessionError::io("removing recovery session", &d))?;
    crate::files::sync_dir(dir).map_err(SessionError::io("syncing", dir))
}

pub(crate) fn new_session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn session_dir(dir: &Path) -> PathBuf {
    dir.join("recover")
}

fn session_path(dir: &Path) -> PathBuf {
    session_dir(dir).join("state.json")
}

/// Whether a recovery session file is there (readable or not): the group is then closed
/// to writes. When even that cannot be told, it counts as there: closed is the safe side.
pub fn session_exists(dir: &Path) -> bool {
    session_path(dir).try_exists().unwrap_or(true)
}

/// What failed with a group's recovery session. A session file that is there but cannot be
/// read (`Read`, `Corruption`) keeps the group closed: its disks may be part-way through a
/// recover or commit, and guessing which could make a half-rolled disk the baseline.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "reading the recovery session {}: the group stays closed to writes; make the file readable and retry (nothing was changed)",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the recovery session {} is corrupt: the group's disks may be part-way through a recover or commit, so the group stays closed to writes; restore the file (JSON: {{\"at\": the point id the disks were recovered to, or null, \"started\": an RFC 3339 time, \"committing\": true only if `mtkit commit` was run, \"id\": the <id> of the saved-<id> folder beside it}}) and retry (nothing was changed)",
        path.display()
    )]
    Corruption {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Changing the session's files: `action` names what was done to `path`.
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the session file (the atomic write says what failed and where).
    #[error(transparent)]
    Write(anyhow::Error),
}

impl SessionError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SessionError + 'a {
        move |source| SessionError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The group's recovery session: `None` when no recovery is under way (no file), an
/// error when the file is there but unreadable or corrupt.
pub fn read_session(dir: &Path) -> Result<Option<Session>, SessionError> {
    let path = session_path(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SessionError::Read { path, source }),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| SessionError::Corruption { path, source })
}

pub(crate) fn write_session(dir: &Path, s: &Session) -> Result<(), SessionError> {
    let d = session_dir(dir);
    crate::files::create_private_dirs(&d)
        .map_err(SessionError::io("creating recovery session folder", &d))?;
    let text = serde_json::to_vec(s).map_err(|e| SessionError::Write(e.into()))?;
    crate::files::write_atomic(&session_path(dir), &text, 0o600).map_err(SessionError::Write)
}
