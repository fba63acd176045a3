//! Segments written ahead. Syncing an append that grows a file also commits the file's new
//! size and block map (a jbd2 commit on ext4, a log force on xfs), which costs several
//! times the data write itself; syncing an append into bytes the file already has writes
//! the data only. Measured with 32 KiB O_DIRECT writes each followed by fdatasync (the
//! journal's small-write pattern): 787 µs appending vs 199 µs into written zeros on an
//! ext4 with its journal, 630 vs 235 µs on xfs, 226 vs 126 µs on an ext4 without one.
//! `fallocate` does not help much (683 µs on ext4): its extents are "unwritten" and each
//! first write converts them, which is again a metadata commit.
//!
//! So a journal fed small appends has its next segment prepared by a background thread:
//! a file of the segment's size filled with zeros and synced, renamed into place when the
//! journal rotates. Zeros are where a scan stops (see `check::scan_segment`): a header of
//! zeros with nothing but zeros after it is free space, not damage.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// When a group's journal writes its next segment ahead: `[writer] journal-write-ahead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteAhead {
    /// Once a segment has taken [`APPENDS_BEFORE_SPARE`] appends averaging under
    /// [`SMALL_APPEND`]: where it pays.
    #[default]
    Auto,
    /// From the first append, whatever their size.
    Always,
    /// Never: segments grow by appends (say, a thin-provisioned retention disk that must
    /// not be filled with zeros ahead of need).
    Never,
}

/// Appends smaller than this on average make writing ahead pay. Writing a segment ahead
/// costs one background write of its size (64 MiB: about 60 ms at 1 GB/s); growing it
/// costs a metadata commit (0.4-0.6 ms measured above) per append, in the writers' wait:
/// 64 appends of 1 MiB cost about 40 ms, 256 of 256 KiB 150 ms, 2000 of 32 KiB a second.
pub const SMALL_APPEND: u64 = 1 << 20;

/// Appends seen in a segment before the first spare is judged worth writing: a journal
/// that only takes a few records (points, a short burst) stays as it is.
pub const APPENDS_BEFORE_SPARE: u64 = 256;

/// Bytes written per call while filling.
const CHUNK: usize = 1 << 20;

/// Where the spare of the journal in `dir` is written: beside the folder (same
/// filesystem, so putting it in place is a rename), not in it, so that the folder holds
/// only segments and a crash while it is written leaves nothing a scan reads (the next
/// writing open removes it).
pub fn spare_path(dir: &Path) -> PathBuf {
    dir.with_extension("spare")
}

/// A segment being written ahead, or written.
pub struct Spare {
    path: PathBuf,
    job: Option<JoinHandle<io::Result<()>>>,
    stop: Arc<AtomicBool>,
    ready: bool,
}

impl Spare {
    /// Starts filling a spare of `size` bytes in `dir` on a thread of its own.
    pub fn start(dir: &Path, size: u64) -> Spare {
        let path = spare_path(dir);
        let stop = Arc::new(AtomicBool::new(false));
        let job = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::Builder::new()
                .name("journal-spare".into())
                .spawn(move || fill(&path, size, &stop))
        };
        let job = match job {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::warn!(error = %e, "journal: no thread to write a spare segment ahead");
                None
            }
        };
        Spare {
            path,
            job,
            stop,
            ready: false,
        }
    }

    /// Whether the spare is written and synced. Never waits. A spare that failed (a full
    /// volume, say) is removed and reports `Err`: the caller drops it.
    pub fn poll(&mut self) -> io::Result<bool> {
        if self.ready {
            return Ok(true);
        }
        match &self.job {
            Some(j) if !j.is_finished() => return Ok(false),
            Some(_) => {}
            None => return Err(io::Error::other("no thread to write the spare segment")),
        }
        let r = self.job.take().unwrap().join();
        match r {
            Ok(Ok(())) => {
                self.ready = true;
                Ok(true)
            }
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(&self.path);
                Err(e)
            }
            Err(_) => {
                let _ = std::fs::remove_file(&self.path);
                Err(io::Error::other(
                    "the thread writing a spare segment panicked",
                ))
            }
        }
    }

    /// Renames the (ready) spare to `to`. The caller syncs the folder.
    pub fn install(mut self, to: &Path) -> io::Result<()> {
        debug_assert!(self.ready);
        std::fs::rename(&self.path, to)?;
        // Nothing left to remove on drop.
        self.ready = false;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Spare {
    /// Stops a fill under way and removes the file (a journal dropped, or a full volume
    /// that needs the room for history).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.job.take() {
            let _ = j.join();
        }
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `size` zero bytes to a new file at `path` (direct I/O when the filesystem takes
/// it, so that the zeros do not fill the page cache) and syncs it.
fn fill(path: &Path, size: u64, stop: &AtomicBool) -> io::Result<()> {
    let (f, _) = super::direct::open_append(path, true)?;
    // Direct I/O wants the buffer 4 KiB-aligned in memory.
    let raw = vec![0u8; CHUNK + 4096];
    let start = raw.as_ptr().align_offset(4096);
    let zeros = &raw[start..start + CHUNK];
    let mut at = 0;
    while at < size {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped"));
        }
        let n = (size - at).min(CHUNK as u64) as usize;
        // The segment size is a multiple of 4 KiB (config checks), so every write is
        // aligned; a last piece that is not falls back to buffered through EINVAL.
        write_at(&f, path, &zeros[..n], at)?;
        at += n as u64;
    }
    f.sync_all()
}

fn write_at(f: &File, path: &Path, buf: &[u8], at: u64) -> io::Result<()> {
    match f.write_all_at(buf, at) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all_at(buf, at),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_is_zeros_of_its_size_and_is_removed_when_dropped_unused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("journal");
        let mut s = Spare::start(&d, 3 << 20);
        while !s.poll().unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(spare_path(&d), t.path().join("journal.spare"));
        let bytes = std::fs::read(spare_path(&d)).unwrap();
        assert_eq!(bytes.len(), 3 << 20);
        assert!(bytes.iter().all(|&b| b == 0));
        drop(s);
        assert!(!spare_path(&d).exists());
    }

    #[test]
    fn an_installed_spare_stays_where_it_was_put() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spare::start(d.path(), 1 << 20);
        while !s.poll().unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let to = d.path().join("seg-0000000002.log");
        s.install(&to).unwrap();
        assert_eq!(std::fs::metadata(&to).unwrap().len(), 1 << 20);
        assert!(!spare_path(d.path()).exists());
    }

    #[test]
    fn a_spare_that_cannot_be_made_says_so_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        // Something already has the name: the fill fails at its exclusive create.
        std::fs::create_dir(spare_path(d.path())).unwrap();
        let mut s = Spare::start(d.path(), 1 << 20);
        let r = loop {
            match s.poll() {
                Ok(false) => std::thread::sleep(std::time::Duration::from_millis(5)),
                r => break r,
            }
        };
        assert!(r.is_err());
    }
}
