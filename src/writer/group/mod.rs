//! A consistency group: its disks, the one write sequence ordering them, the undo journal
//! with group commit, and its recovery points.
//!
//! Write path (after the baseline): a write joins the group's queue ([`commit`]); the
//! leader of its batch saves the old contents of every block the batch overwrites for the
//! first time in this interval, appends them to the journal and syncs it once; only then
//! may each writer put its data on the target. A point (FLUSH, bookmark) takes the leader
//! role, waits for the writers of earlier batches, syncs the targets and appends the point
//! record.

mod behind;
mod commit;
mod point;

use super::block::BlockFile;
use super::export::WriteReq;
use super::journal::format::{self, CommitRecord, Header, Record, Undo};
use super::journal::{self, Access, AlignedBuf, Damage, Journal, JournalError, Loc, PointRecord};
use super::session::{Session, SessionError, read_session, remove_session, session_exists};
use behind::Behind;
use commit::{Appended, CommitQueue, GroupCommit, HasQueue, NotCommitted, Pending};
pub use point::{Point, PointGone, PointKind};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

pub use super::extents::BlockSrc;
use super::extents::{Extents, Index};
pub use super::journal::BLOCK;
/// Past this many saved extents in one interval (all disks of the group together, about
/// 24 bytes each: 6 MiB) the set is dropped: saving a block twice is only redundant
/// (recovery uses the earliest save after a point), never wrong.
const MAX_SAVED_EXTENTS: usize = 1 << 18;
/// Bytes of records per journal append: bounds the leader's buffer. 4 MiB: with 15 groups
/// written at once (the benchmark's scale case) 8 MiB buffers took the peak RSS to
/// 295-336 MiB, 4 MiB ones to 235-254, with the journaled throughput unchanged.
const CHUNK: usize = 4 << 20;
/// Largest undo payload per record (a longer job is split), so one fits a chunk.
const CHUNK_DATA: u64 = 2 << 20;

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A target disk of the group: its store, its journal id and what the service counts.
pub struct Target {
    pub name: String,
    pub id: u32,
    store: BlockFile,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) clients: AtomicUsize,
    pub(crate) stats: super::stats::DiskStats,
}

impl Target {
    /// Opens `path`; a regular file that does not exist (or is shorter) is made `size` long.
    pub fn open(name: &str, path: &Path, size: Option<u64>) -> io::Result<Target> {
        Ok(Target {
            name: name.to_string(),
            id: format::disk_id(name),
            store: BlockFile::open_target(path, size)?,
            bytes_written: AtomicU64::new(0),
            clients: AtomicUsize::new(0),
            stats: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    pub fn size(&self) -> u64 {
        self.store.size()
    }

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.store.read_at(buf, offset)
    }

    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.store.write_at(data, offset)
    }

    /// Writes past the page cache where it can ([`BlockFile::write_through`]).
    pub fn write_through(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.store.write_through(data, offset)
    }

    /// Asks the kernel to start reading `[offset, offset+len)` ([`BlockFile::read_ahead`]).
    pub fn read_ahead(&self, offset: u64, len: u64) {
        self.store.read_ahead(offset, len)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.store.sync()
    }

    /// Zeroes a range ([`BlockFile::write_zeroes`]).
    pub fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool) -> io::Result<()> {
        self.store.write_zeroes(offset, len, may_trim)
    }
}

/// The live index of a `<disk>@<point>` view: for every block changed since the point,
/// where its contents at the point are. Writes after the view opened keep adding to it.
pub struct ViewIndex {
    pub disk: usize,
    pub index: Mutex<Index>,
}

impl ViewIndex {
    /// Records that `[offset, offset+len)` held what `src` points to, unless known already.
    pub fn add(&self, offset: u64, len: u64, src: BlockSrc) {
        let (start, end) = (offset / BLOCK, (offset + len).div_ceil(BLOCK));
        self.index.lock().unwrap().add(self.disk, start, end, src);
    }
}

impl State {
    /// Drops the points before seq `keep_from` (pruning: past the window, or for space).
    fn prune_points_before(&mut self, keep_from: u64) -> usize {
        let before = self.points.len();
        self.points.retain(|p| p.seq >= keep_from);
        self.pruned_below = self.pruned_below.max(keep_from);
        before - self.points.len()
    }

    /// Why point `seq`, listed once, is not any more; `None` while it is listed.
    fn gone(&self, group: &str, seq: u64) -> Option<PointGone> {
        if self.points.iter().any(|p| p.seq == seq) {
            return None;
        }
        let (group, point) = (group.to_string(), seq);
        Some(if seq < self.pruned_below {
            PointGone::Pruned { group, point }
        } else {
            PointGone::CommittedPast { group, point }
        })
    }
}

/// What a group is and has, under its lock. Changed only by `Group`'s methods; its guard
/// never leaves this module (see [`GroupJournal`] for the lock order).
struct State {
    commit: CommitQueue,
    next_seq: u64,
    /// No baseline yet: writes go straight through, FLUSH makes no point.
    initial_sync: bool,
    /// The group is being recovered (or was, and awaits commit): no writes.
    recovering: bool,
    /// Writes since the last point.
    dirty: bool,
    first_dirty_us: Option<i64>,
    saved: Vec<Extents>,
    points: Vec<PointRecord>,
    /// Points before this seq were pruned (tells a pruned point from one committed past).
    pruned_below: u64,
    views: Vec<Weak<ViewIndex>>,
    /// When volume-full pruning last dropped history (for status).
    history_dropped_us: Option<i64>,
    /// Journal records found damaged (at open or when read): the points before them lost.
    damage: Vec<Damage>,
}

impl HasQueue for State {
    fn queue(&mut self) -> &mut CommitQueue {
        &mut self.commit
    }

    fn undo_lost(&mut self) {
        // The saved marks are unreliable now; start the interval's set over.
        self.saved.iter_mut().for_each(Extents::clear);
    }
}

impl State {
    /// Something was written since the last point (and since when, for the RPO).
    fn mark_dirty(&mut self) {
        self.dirty = true;
        self.first_dirty_us.get_or_insert_with(now_us);
    }

    /// The byte ranges of `ranges` (on disk `disk`, `size` bytes) whose blocks have no undo
    /// since the last point: what a batch's leader will read.
    fn unsaved_bytes(&self, disk: usize, ranges: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
        let saved = &self.saved[disk];
        ranges
            .iter()
            .flat_map(|&(offset, len)| saved.gaps(offset / BLOCK, (offset + len).div_ceil(BLOCK)))
            .filter_map(|(s, e)| {
                let (start, end) = (s * BLOCK, (e * BLOCK).min(size));
                (start < end).then_some((start, end - start))
            })
            .collect()
    }

    /// Why point `seq` cannot be recovered, if it cannot.
    fn lost(&self, seq: u64) -> Option<String> {
        self.damage
            .iter()
            .find(|d| (d.from_seq..d.before_seq).contains(&seq))
            .map(|d| format!("lost: {}", d.reason))
    }

    /// Forgets damage in segments that pruning or a commit removed.
    fn forget_damage_before(&mut self, first_segment: u64) {
        self.damage.retain(|d| d.segment >= first_segment);
    }
}

pub struct Group {
    pub name: String,
    pub dir: PathBuf,
    pub disks: Vec<Target>,
    /// Lock order: `journal` before `state` (see [`GroupJournal`]).
    state: Mutex<State>,
    commit: GroupCommit,
    journal: Mutex<Journal>,
    /// The leader's record buffer, kept between batches.
    scratch: Mutex<AlignedBuf>,
    /// Writes answered before they reach the group ([`behind`]).
    behind: Behind,
    /// Initial-sync writes go past the page cache (`[writer] initial-sync-direct-io`).
    direct_sync: AtomicBool,
    _lock: File,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(
        "the journal of group {group} is in use by another process (is the writer service running?)"
    )]
    Busy { group: String },
    #[error("opening disk {disk} ({})", path.display())]
    Disk {
        disk: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("group {group}")]
    Journal {
        group: String,
        #[source]
        source: JournalError,
    },
    #[error(transparent)]
    PointGone(#[from] PointGone),
    /// The recovery session cannot be read: the group stays closed (see [`SessionError`]).
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("group {group}: finishing an interrupted commit")]
    FinishCommit {
        group: String,
        #[source]
        source: CommitError,
    },
    #[error("group {group}: {action}")]
    Io {
        group: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Why making the recovered point the baseline failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The session names a point the journal does not hold.
    #[error("point {0} is missing from the journal")]
    Corruption(u64),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// A disk as the config names it.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    pub name: String,
    pub path: PathBuf,
    pub size: Option<u64>,
}

/// The same error again, for each write of a batch that failed as one.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn refused(group: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("group {group} is being recovered: writes are refused until commit"),
    )
}

impl Group {
    /// Opens the group's journal (folder `dir`, locked against other processes) and disks.
    pub fn open(
        name: &str,
        dir: &Path,
        disks: &[DiskSpec],
        segment_size: u64,
    ) -> Result<Arc<Group>, GroupError> {
        Group::open_with(name, dir, disks, segment_size, Access::Write)
    }

    /// [`Group::open`]; with [`Access::ReadOnly`] (listings) nothing in the journal is
    /// changed: no torn batch cut, no interrupted commit finished.
    pub fn open_with(
        name: &str,
        dir: &Path,
        disks: &[DiskSpec],
        segment_size: u64,
        access: Access,
    ) -> Result<Arc<Group>, GroupError> {
        // Read first, before anything is made or cut: a session that cannot be read keeps
        // the group closed, and whether a commit must be finished cannot be told.
        let session = read_session(dir)?;
        let gio = |action: &'static str| {
            move |source| GroupError::Io {
                group: name.to_string(),
                action,
                source,
            }
        };
        crate::files::create_private_dirs(dir).map_err(gio("creating journal folder"))?;
        use std::os::unix::fs::OpenOptionsExt;
        let lock = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(gio("opening lock file"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on an fd we own; no memory is passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(GroupError::Busy {
                group: name.to_string(),
            });
        }
        let targets = disks
            .iter()
            .map(|d| {
                Target::open(&d.name, &d.path, d.size).map_err(|source| GroupError::Disk {
                    disk: d.name.clone(),
                    path: d.path.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (mut journal, scan) = Journal::open_with(&dir.join("journal"), segment_size, access)
            .map_err(|source| GroupError::Journal {
                group: name.to_string(),
                source,
            })?;
        if access == Access::Write {
            journal.set_write_ahead(journal::WriteAhead::Auto);
        }
        let recovering = session.is_some();
        let state = State {
            commit: CommitQueue::default(),
            next_seq: scan.max_seq + 1,
            initial_sync: scan.points.is_empty(),
            recovering,
            dirty: false,
            first_dirty_us: None,
            saved: targets.iter().map(|_| Extents::default()).collect(),
            points: scan.points,
            pruned_below: 0,
            views: Vec::new(),
            history_dropped_us: None,
            damage: scan.damage,
        };
        let group = Arc::new(Group {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            disks: targets,
            state: Mutex::new(state),
            commit: GroupCommit::default(),
            journal: Mutex::new(journal),
            scratch: Mutex::new(AlignedBuf::default()),
            behind: Behind::default(),
            direct_sync: AtomicBool::new(true),
            _lock: lock,
        });
        if recovering {
            group.behind.close();
        }
        if access == Access::ReadOnly {
            return Ok(group);
        }
        // A crash interrupted a commit: finish it, never recover again (see `Session`).
        if let Some(Session {
            at: Some(at),
            committing: true,
            ..
        }) = session
        {
            tracing::warn!(group = %name, point = at, "finishing an interrupted commit");
            let _quiet = group.quiesce();
            group
                .finish_commit(at)
                .map_err(|source| GroupError::FinishCommit {
                    group: name.to_string(),
                    source,
                })?;
        }
        Ok(group)
    }

    /// Makes point `at` (the disks were recovered to it, the session says committing) the
    /// baseline: the journal restarts at it, the session goes, writes come in again.
    pub(crate) fn finish_commit(&self, at: u64) -> Result<Point, CommitError> {
        let rec = self
            .lock()
            .points
            .iter()
            .find(|p| p.seq == at)
            .cloned()
            .ok_or(CommitError::Corruption(at))?;
        let max_seq = self.lock().next_seq - 1;
        let commit = CommitRecord {
            seq: max_seq,
            time_us: now_us(),
        };
        let records = [Record::Point(rec.clone()), Record::Commit(commit)];
        self.journal().restart_with(&records, max_seq)?;
        remove_session(&self.dir)?;
        let mut st = self.lock();
        st.points = vec![rec.clone()];
        st.initial_sync = false;
        st.recovering = false;
        st.first_dirty_us = None;
        drop(st);
        tracing::info!(group = %self.name, point = at, "committed: replication may resume");
        Ok(Point::from(&rec))
    }

    pub fn disk_index(&self, name: &str) -> Option<usize> {
        self.disks.iter().position(|d| d.name == name)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Locks the group's journal. Never called with the state locked: the state's guard
    /// stays inside this module's methods, none of which calls this while holding it.
    pub fn journal(&self) -> GroupJournal<'_> {
        GroupJournal {
            group: self,
            journal: self.journal.lock().unwrap(),
        }
    }

    /// What the policy judges: where the group is and how old its newest points are.
    pub fn activity(&self) -> Activity {
        let st = self.lock();
        Activity {
            initial_sync: st.initial_sync,
            recovering: st.recovering,
            newest_point_us: st.points.last().map(|p| p.time_us),
            newest_app_point_us: st.points.iter().rev().find(|p| p.app).map(|p| p.time_us),
            first_dirty_us: st.first_dirty_us,
            history_dropped_us: st.history_dropped_us,
        }
    }

    /// Whether a view of point `seq` may still serve: not while the group is recovered
    /// (the target no longer holds what the view reads through to), nor once the point is
    /// pruned or committed past.
    pub(crate) fn check_view(&self, seq: u64) -> io::Result<()> {
        let st = self.lock();
        if st.recovering {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "group {} is being recovered: its point views are closed",
                    self.name
                ),
            ));
        }
        match st.gone(&self.name, seq) {
            Some(gone) => Err(gone.into()),
            None => Ok(()),
        }
    }

    pub fn points(&self) -> Vec<Point> {
        let st = self.lock();
        st.points
            .iter()
            .map(|p| Point {
                lost: st.lost(p.seq),
                ..Point::from(p)
            })
            .collect()
    }

    /// What is known damaged in the group's journal.
    pub fn damage(&self) -> Vec<Damage> {
        self.lock().damage.clone()
    }

    /// Records damage found when reading (after open): the points before it are lost.
    pub(crate) fn note_damage(&self, e: &JournalError) {
        if let JournalError::BadPayload {
            segment,
            offset,
            seq,
            ..
        } = e
        {
            tracing::error!(group = %self.name, error = %e, "journal damage found on read");
            let mut st = self.lock();
            if !st
                .damage
                .iter()
                .any(|d| (d.segment, d.offset) == (*segment, *offset))
            {
                st.damage.push(Damage {
                    segment: *segment,
                    offset: *offset,
                    from_seq: 0,
                    before_seq: *seq,
                    reason: e.to_string(),
                });
            }
        }
    }

    /// A WRITE of `[offset, offset+len)` of `disk` to answer before it is run
    /// (write-behind, see [`behind`]): its ticket for [`Group::answered`]. `None`: answer
    /// it once it is written (the group is closed for a recover).
    pub fn answer_early(&self, disk: usize, offset: u64, len: u64) -> Option<u64> {
        self.behind.answer(disk, offset, len)
    }

    /// Whether writes in initial sync go past the page cache (`[writer]
    /// initial-sync-direct-io`, on by default).
    pub fn set_direct_initial_sync(&self, on: bool) {
        self.direct_sync.store(on, Ordering::Relaxed);
    }

    /// Whether plain writes are answered early (`[writer] write-behind`, on by default).
    pub fn set_write_behind(&self, on: bool) {
        self.behind.set_enabled(on);
    }

    /// A write answered early has been run, with outcome `r`.
    pub fn answered(&self, ticket: u64, r: &io::Result<()>) {
        self.behind.done(ticket, r)
    }

    /// Where answering stands ([`Behind::mark`]): a request takes it when it is read.
    pub fn answered_mark(&self) -> u64 {
        self.behind.mark()
    }

    /// Waits for the writes answered early before `mark` that overlap `[offset,
    /// offset+len)` of `disk` (what reads, zeroes or writes it must see them).
    pub fn wait_answered(&self, disk: usize, offset: u64, len: u64, mark: u64) {
        self.behind.wait_range(disk, offset, len, mark)
    }

    pub fn in_initial_sync(&self) -> bool {
        self.lock().initial_sync
    }

    pub fn is_recovering(&self) -> bool {
        self.lock().recovering
    }

    /// Writes `data` at `offset` of disk `disk`, saving what it overwrites first.
    pub fn write(&self, disk: usize, data: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        let w = WriteReq {
            data,
            offset,
            fua,
            answered: false,
        };
        let mut out = self.write_many(disk, std::slice::from_ref(&w));
        out.pop().expect("one outcome per write")
    }

    /// Zeroes a range, in chunks so that the undo buffer stays small.
    pub fn write_zeroes(
        &self,
        disk: usize,
        offset: u64,
        len: u64,
        may_trim: bool,
        fua: bool,
    ) -> io::Result<()> {
        const CHUNK: u64 = 8 << 20;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            self.journaled(disk, offset + done, n, |t| {
                t.write_zeroes(offset + done, n, may_trim)
            })?;
            done += n;
        }
        if fua {
            self.disks[disk].sync()?;
        }
        Ok(())
    }

    /// Writes several ranges of disk `disk` (one connection's queued writes): their undo is
    /// saved together, then each is written. Each write's outcome, in order; a FUA write
    /// is durable when this returns (one sync for all of them).
    pub fn write_many(&self, disk: usize, writes: &[WriteReq<'_>]) -> Vec<io::Result<()>> {
        let ranges: Vec<(u64, u64)> = writes
            .iter()
            .map(|w| (w.offset, w.data.len() as u64))
            .collect();
        let initial = match self.admit(disk, &ranges) {
            Ok(initial) => initial,
            Err(e) => return writes.iter().map(|_| Err(copy_error(&e))).collect(),
        };
        // Initial sync fills the whole disk once: past the page cache, it neither copies
        // every byte into memory nor leaves the appliance's memory full of a disk that is
        // not read back (nothing is cached for the first overwrites' undo either way).
        let through = initial && self.direct_sync.load(Ordering::Relaxed);
        let target = &self.disks[disk];
        let mut out: Vec<io::Result<()>> = writes
            .iter()
            .map(|w| {
                let r = if through {
                    target.write_through(w.data, w.offset)
                } else {
                    target.write_at(w.data, w.offset)
                };
                self.written(target, w.data.len() as u64, r)
            })
            .collect();
        if writes.iter().any(|w| w.fua)
            && let Err(e) = target.sync()
        {
            for (r, w) in out.iter_mut().zip(writes) {
                if w.fua && r.is_ok() {
                    *r = Err(copy_error(&e));
                }
            }
        }
        out
    }

    /// Runs `apply` (the target write of `[offset, offset+len)`) once the undo of the
    /// blocks it overwrites is durable.
    fn journaled(
        &self,
        disk: usize,
        offset: u64,
        len: u64,
        apply: impl FnOnce(&Target) -> io::Result<()>,
    ) -> io::Result<()> {
        self.admit(disk, &[(offset, len)])?;
        let target = &self.disks[disk];
        self.written(target, len, apply(target))
    }

    /// A write [`Group::admit`] let through has gone to the target (`r`, its outcome):
    /// counted, and out of flight.
    fn written(&self, target: &Target, len: u64, r: io::Result<()>) -> io::Result<()> {
        target.bytes_written.fetch_add(len, Ordering::Relaxed);
        self.commit.write_done(&self.state);
        r
    }

    /// Lets writes of `ranges` of disk `disk` go to the target: once the undo of the blocks
    /// they overwrite is durable (after the baseline), or at once (before it). On `Ok` each
    /// range counts in flight until its [`GroupCommit::write_done`]. `Ok(true)`: the group is
    /// in initial sync, no undo was saved.
    ///
    /// A write whose blocks' old contents the leader will read has them read ahead first,
    /// without the lock: the kernel fetches them while earlier batches are saved, so the
    /// leader finds them in memory instead of waiting for the disk once per write (a
    /// target's old contents are rarely cached: it is a replicated disk nothing reads).
    fn admit(&self, disk: usize, ranges: &[(u64, u64)]) -> io::Result<bool> {
        let mut read_ahead = false;
        let st = loop {
            let mut st = self.lock();
            if st.recovering {
                return Err(refused(&self.name));
            }
            if st.initial_sync {
                self.commit.write_direct(ranges.len());
                st.mark_dirty();
                return Ok(true);
            }
            if read_ahead {
                break st;
            }
            let unsaved = st.unsaved_bytes(disk, ranges, self.disks[disk].size());
            if unsaved.is_empty() {
                // Rewrites of blocks saved since the point: nothing to read, keep the lock.
                break st;
            }
            drop(st);
            for (offset, len) in unsaved {
                self.disks[disk].read_ahead(offset, len);
            }
            read_ahead = true;
        };
        // The batch's leader marks the group dirty.
        self.commit
            .commit(
                &self.state,
                st,
                disk,
                ranges,
                |st| st.recovering,
                |st, batch| self.lead(st, batch),
            )
            .map(|()| false)
            .map_err(|e| match e {
                NotCommitted::Closed => refused(&self.name),
                NotCommitted::Failed(msg) => io::Error::other(msg),
            })
    }

    /// Saves the undo of a batch (the leader role held): decides under the lock what to
    /// save and in which order (seq), appends it without the lock, and tells the views.
    /// A direct-I/O journal's sync is left to the group commit, run once the role is
    /// handed on ([`Appended::SyncLater`]).
    fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        batch: &[Pending],
    ) -> (MutexGuard<'a, State>, Result<Appended, String>) {
        let mut jobs = Vec::new();
        for p in batch {
            let t = &self.disks[p.disk];
            let (b0, b1) = (p.offset / BLOCK, (p.offset + p.len).div_ceil(BLOCK));
            let seq = st.next_seq;
            st.next_seq += 1;
            let unsaved = st.saved[p.disk].take_unsaved(b0, b1);
            if !unsaved.is_empty()
                && st.saved.iter().map(Extents::len).sum::<usize>() > MAX_SAVED_EXTENTS
            {
                st.saved.iter_mut().for_each(Extents::clear);
            }
            for (s, e) in unsaved {
                let start = s * BLOCK;
                let end = (e * BLOCK).min(t.size());
                if start < end {
                    jobs.push((p.disk, seq, start, end - start));
                }
            }
        }
        let max_seq = st.next_seq - 1;
        drop(st);
        let result = if jobs.is_empty() {
            Ok((Vec::new(), Appended::Durable))
        } else {
            self.save(&jobs, max_seq)
        };
        let mut st = self.lock();
        let result = match result {
            Ok((added, appended)) => {
                st.mark_dirty();
                st.views.retain(|v| v.strong_count() > 0);
                for v in st.views.iter().filter_map(Weak::upgrade) {
                    for &(disk, off, len, src) in &added {
                        if disk == v.disk {
                            v.add(off, len, src);
                        }
                    }
                }
                Ok(appended)
            }
            Err(e) => {
                tracing::error!(group = %self.name, error = %e, "journal write failed: failing the batch");
                st.undo_lost();
                Err(format!("journal write failed: {e}"))
            }
        };
        (st, result)
    }

    /// Reads the old contents of `jobs` and appends them to the journal: synced, or (on a
    /// device that writes through: [`Journal::durable_on_completion`]) written by direct
    /// I/O with the file to sync ([`Appended::SyncLater`]).
    /// Returns what views need to learn: (disk, offset, len, where the data is).
    #[allow(clippy::type_complexity)]
    fn save(
        &self,
        jobs: &[(usize, u64, u64, u64)],
        max_seq: u64,
    ) -> io::Result<(Vec<(usize, u64, u64, BlockSrc)>, Appended)> {
        let time_us = now_us();
        // Records go out in chunks of at most CHUNK bytes (a larger job is split into
        // several records of the same seq), so the leader's buffer stays bounded whatever
        // the batch; it is kept between batches so that it is not zero-filled each time.
        let mut buf = self.scratch.lock().unwrap();
        let mut out = Vec::new();
        let mut pieces = jobs.iter().flat_map(|&(disk, seq, offset, len)| {
            (0..len.div_ceil(CHUNK_DATA)).map(move |i| {
                let o = i * CHUNK_DATA;
                (disk, seq, offset + o, (len - o).min(CHUNK_DATA))
            })
        });
        let mut next = pieces.next();
        let mut j = self.journal.lock().unwrap();
        while next.is_some() {
            let room = buf.prepare(CHUNK);
            let mut used = 0;
            let mut rel = Vec::new();
            while let Some((disk, seq, offset, len)) = next {
                let data_at = used + format::HEADER_LEN;
                if data_at + len as usize > CHUNK {
                    break;
                }
                let t = &self.disks[disk];
                // Read the old contents straight into the record's payload place: no copy.
                let payload = &mut room[data_at..data_at + len as usize];
                t.read_at(payload, offset)?;
                let undo = Undo::of(seq, t.id, offset, time_us, payload);
                let (head, zero) = (undo.encode_header(), undo.data.is_none());
                room[used..data_at].copy_from_slice(&head);
                used = if zero {
                    data_at
                } else {
                    data_at + len as usize
                };
                rel.push((disk, offset, len, (!zero).then_some(data_at as u64)));
                next = pieces.next();
            }
            buf.set_len(used);
            let Some((segment, base)) = self.append_or_prune(&mut j, &mut buf, max_seq)? else {
                // All history was dropped: the group writes through, nothing to index.
                return Ok((Vec::new(), Appended::Durable));
            };
            out.extend(rel.into_iter().map(|(d, o, l, at)| {
                let src = at.map(|a| Loc {
                    segment,
                    record: base + a - format::HEADER_LEN as u64,
                    data: base + a,
                });
                (d, o, l, src)
            }));
        }
        // Direct appends (every one of this batch's: a buffered one was synced at once)
        // are made durable by syncing the segment they went to; a rotation synced the
        // one before.
        let appended = if j.durable_on_completion() {
            Appended::SyncLater(j.sync_handle()?)
        } else {
            // The next batch's append must not reach a volatile cache before this one is
            // flushed: synced here, with the journal still held.
            if j.is_direct() {
                j.sync()?;
            }
            Appended::Durable
        };
        Ok((out, appended))
    }

    /// Appends, and syncs a buffered append (a direct one is synced by the caller: its
    /// sync cannot find the volume full); when the volume is full, prunes the oldest history (loudly) and
    /// retries, so that a write the target could take never fails for lack of journal.
    /// `None`: even an empty journal cannot take the records; all history is dropped and
    /// the group writes straight through until the next bookmark makes a new baseline.
    fn append_or_prune(
        &self,
        j: &mut Journal,
        buf: &mut AlignedBuf,
        max_seq: u64,
    ) -> io::Result<Option<(u64, u64)>> {
        loop {
            let len = buf.as_slice().len() as u64;
            let at = j.prepare_append(len).map_err(io::Error::from);
            let r = at.and_then(|at| {
                j.append_aligned(buf, max_seq)?;
                if !j.is_direct() {
                    j.sync()?;
                }
                Ok(at)
            });
            let e = match r {
                Ok(at) => return Ok(Some(at)),
                Err(e) if is_nospc(&e) => e,
                Err(e) => return Err(e),
            };
            // The room of a segment written ahead goes to history first.
            if j.discard_spare() {
                tracing::warn!(group = %self.name, "retention volume full: dropped the journal segment written ahead");
                continue;
            }
            self.lock().history_dropped_us = Some(now_us());
            if let Some(seg) = j.remove_oldest()? {
                tracing::error!(group = %self.name, segment = seg.id,
                    "RETENTION VOLUME FULL: dropped the oldest journal segment; the oldest recovery points are gone");
                self.forget_points_before_journal(j);
                super::test_pause("volume full: journal segment removed");
                continue;
            }
            tracing::error!(group = %self.name, error = %e,
                "RETENTION VOLUME FULL: no journal history left to drop; ALL recovery points of the group are gone and writes go straight through until the next bookmark");
            j.restart_with(&[], max_seq)?;
            let mut st = self.lock();
            st.prune_points_before(u64::MAX);
            st.damage.clear();
            st.initial_sync = true;
            return Ok(None);
        }
    }

    /// Drops the points whose undo history is no longer complete after pruning.
    fn forget_points_before_journal(&self, j: &Journal) {
        // A point is recoverable when every record after it is present: when it lies in
        // (or after) the oldest remaining segment. Segments hold increasing seqs, so the
        // first record of the oldest tells (one header read: this runs with the journal
        // and the commit role held, so it must not scan).
        if let Some(first) = j.segments().first() {
            self.lock().forget_damage_before(first.id);
        }
        match j.oldest_first_seq() {
            Ok(Some(min)) => {
                self.lock().prune_points_before(min);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(group = %self.name, error = %e, "reading the oldest journal segment")
            }
        }
    }

    /// Makes everything written so far durable and, after the baseline, a recovery point
    /// when anything was written since the last one (`app`: always, with `label`).
    /// Returns the new point, if one was made.
    pub fn point(&self, app: bool, label: &str) -> io::Result<Option<Point>> {
        self.point_after(None, app, label)
    }

    /// [`Group::point`] for a FLUSH read at `mark` ([`Group::answered_mark`]): it holds
    /// every write answered before it, on any disk of the group (not those answered
    /// since, which may be queued behind it on its connection). `None`: before now.
    pub fn point_after(
        &self,
        mark: Option<u64>,
        app: bool,
        label: &str,
    ) -> io::Result<Option<Point>> {
        self.behind.drain(mark).map_err(io::Error::other)?;
        let mut st = self.lock();
        if st.recovering {
            return Err(refused(&self.name));
        }
        if st.initial_sync && !app {
            drop(st);
            for t in &self.disks {
                t.sync()?;
            }
            return Ok(None);
        }
        st = self.commit.wait_leader(st, |_| false);
        st.commit.set_leader(true);
        st = self.commit.wait_quiet(st);
        let make = app || st.dirty;
        let seq = st.next_seq;
        if make {
            st.next_seq += 1;
        }
        drop(st);
        let r = self.make_point(make, seq, app, label);
        let mut st = self.lock();
        self.commit.release_leader(&mut st.commit);
        let rec = r?;
        if let Some(rec) = &rec {
            st.points.push(rec.clone());
            st.saved.iter_mut().for_each(Extents::clear);
            st.dirty = false;
            st.first_dirty_us = None;
            if st.initial_sync {
                tracing::info!(group = %self.name, "baseline reached: journaling starts");
            }
            st.initial_sync = false;
        }
        Ok(rec.as_ref().map(Point::from))
    }

    fn make_point(
        &self,
        make: bool,
        seq: u64,
        app: bool,
        label: &str,
    ) -> io::Result<Option<PointRecord>> {
        for t in &self.disks {
            t.sync()?;
        }
        if !make {
            return Ok(None);
        }
        let rec = PointRecord {
            seq,
            time_us: now_us(),
            app,
            label: label.to_string(),
        };
        let mut buf = AlignedBuf::default();
        buf.set_records(&[Record::Point(rec.clone())]);
        let mut j = self.journal.lock().unwrap();
        Ok(self.append_or_prune(&mut j, &mut buf, seq)?.map(|_| rec))
    }

    /// The index of disk `disk` as it was at point `after`, registered so that later saves
    /// keep it complete. The journal is scanned without the commit role, so writes go on
    /// meanwhile; then, holding the role (no batch in between), only what was appended
    /// since is read and the index is registered.
    pub fn open_view_index(&self, disk: usize, after: u64) -> Result<Arc<ViewIndex>, GroupError> {
        self.open_view_index_with(disk, after, || {})
    }

    /// [`Group::open_view_index`], calling `snapshot_taken` once the journal's segment
    /// list is taken and before the catch-up (writes, and pruning, go on meanwhile).
    pub(crate) fn open_view_index_with(
        &self,
        disk: usize,
        after: u64,
        snapshot_taken: impl FnOnce(),
    ) -> Result<Arc<ViewIndex>, GroupError> {
        // A scan that failed because pruning removed a segment under it is the point
        // pruned, not a journal fault.
        let jerr = |source| match self.lock().gone(&self.name, after) {
            Some(gone) => GroupError::PointGone(gone),
            None => GroupError::Journal {
                group: self.name.clone(),
                source,
            },
        };
        let id = self.disks[disk].id;
        let view = Arc::new(ViewIndex {
            disk,
            index: Mutex::new(Index::default()),
        });
        let mut index = view.index.lock().unwrap();
        let mut add = |h: &Header, loc: Loc| {
            if h.disk == id {
                index.add_undo(disk, h, loc);
            }
        };
        let (dir, snapshot) = {
            let j = self.journal.lock().unwrap();
            (j.dir().to_path_buf(), j.segments().to_vec())
        };
        snapshot_taken();
        let end = journal::scan_segments(&dir, &snapshot, Default::default(), after, &mut add)
            .map_err(jerr)?;
        let mut st = self.lock();
        st = self.commit.wait_leader(st, |st| st.recovering);
        if st.recovering {
            return Err(GroupError::Io {
                group: self.name.clone(),
                action: "opening a point view",
                source: refused(&self.name),
            });
        }
        // Pruning may have dropped the point (and segments the scan read) meanwhile.
        if let Some(gone) = st.gone(&self.name, after) {
            return Err(gone.into());
        }
        st.commit.set_leader(true);
        drop(st);
        let caught_up = {
            let j = self.journal.lock().unwrap();
            journal::scan_segments(&dir, j.segments(), end, after, &mut add)
        };
        drop(index);
        let mut st = self.lock();
        if caught_up.is_ok() {
            st.views.push(Arc::downgrade(&view));
        }
        self.commit.release_leader(&mut st.commit);
        drop(st);
        caught_up.map_err(jerr)?;
        Ok(view)
    }

    /// Refuses writes, waits for the leader role and for writers to finish, and holds the
    /// role (writes refused and drained) for a recovery until the guard is dropped.
    pub(crate) fn quiesce(&self) -> Quiesced<'_> {
        // Writes answered early are run before the group refuses writes.
        self.behind.close();
        let mut st = self.lock();
        st.recovering = true;
        self.commit.wake_all(&st.commit);
        st = self.commit.wait_leader(st, |_| false);
        let mut st = self.commit.wait_quiet(st);
        st.commit.set_leader(true);
        Quiesced { group: self }
    }
}

/// A group quiesced for a recovery ([`Group::quiesce`]).
pub(crate) struct Quiesced<'a> {
    group: &'a Group,
}

impl Drop for Quiesced<'_> {
    fn drop(&mut self) {
        let g = self.group;
        let mut st = g.lock();
        st.commit.set_leader(false);
        // Under recovery exactly while a session exists: a recover that failed before
        // writing one changed nothing, and writes may come in again.
        st.recovering = session_exists(&g.dir);
        if !st.recovering {
            g.behind.open();
        }
        g.commit.wake_all(&st.commit);
    }
}

/// A group's journal, locked. The lock order is the journal before the group's state:
/// what needs both (pruning) is a method of this guard, and the state's guard never
/// leaves the group's own methods, so nobody can hold it while taking this.
pub struct GroupJournal<'a> {
    group: &'a Group,
    journal: MutexGuard<'a, Journal>,
}

impl std::ops::Deref for GroupJournal<'_> {
    type Target = Journal;
    fn deref(&self) -> &Journal {
        &self.journal
    }
}

impl std::ops::DerefMut for GroupJournal<'_> {
    fn deref_mut(&mut self) -> &mut Journal {
        &mut self.journal
    }
}

impl GroupJournal<'_> {
    /// Drops the points older than `cutoff_us` but the newest. Returns how many were
    /// dropped and the seq of the oldest kept; `None` (nothing done) under recovery or
    /// with no point. Under the journal lock: a recover sets `recovering` before it picks
    /// its point, so either it sees the points pruned here, or this sees it.
    pub fn prune_points_older_than(&self, cutoff_us: i64) -> Option<(usize, u64)> {
        let mut st = self.group.lock();
        if st.recovering || st.points.is_empty() {
            return None;
        }
        let newest = st.points.len() - 1;
        let first = st
            .points
            .iter()
            .position(|p| p.time_us >= cutoff_us)
            .unwrap_or(newest);
        let keep_from = st.points[first].seq;
        let dropped = st.prune_points_before(keep_from);
        Some((dropped, st.points[0].seq))
    }

    /// Forgets damage in segments pruning removed (before the oldest one left).
    pub fn forget_removed_damage(&self) {
        if let Some(first) = self.journal.segments().first() {
            self.group.lock().forget_damage_before(first.id);
        }
    }
}

/// A group's state as the retention policy judges it ([`Group::activity`]).
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    pub initial_sync: bool,
    pub recovering: bool,
    pub newest_point_us: Option<i64>,
    pub newest_app_point_us: Option<i64>,
    /// The first write since the newest point.
    pub first_dirty_us: Option<i64>,
    /// When volume-full pruning last dropped history.
    pub history_dropped_us: Option<i64>,
}

/// ENOSPC, also when wrapped by the journal's own error type.
fn is_nospc(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}

/// What the unit tests of the writer share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{DiskSpec, Group};
    use crate::writer::journaled::JournaledDisk;
    use std::path::Path;
    use std::sync::Arc;

    /// Group `g` of one disk `d` (a file of `size` bytes) with its journal in `root/j`, and
    /// a handle that writes to the disk through the journal.
    pub(crate) fn one_disk_group(
        root: &Path,
        size: u64,
        segment_size: u64,
    ) -> (Arc<Group>, JournaledDisk) {
        let spec = DiskSpec {
            name: "d".into(),
            path: root.join("d.img"),
            size: Some(size),
        };
        let g = Group::open("g", &root.join("j"), &[spec], segment_size).unwrap();
        let d = JournaledDisk::new(g.clone(), 0);
        (g, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::Export;
    use crate::writer::journal::PayloadReader;
    use testing::one_disk_group;

    #[test]
    fn initial_sync_writes_bypass_the_page_cache_and_journaled_ones_do_not() {
        use crate::writer::block::AlignedMem;
        use crate::writer::block::tests::{aligned, resident};
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        let (g, _) = one_disk_group(t.path(), 4 << 20, 1 << 20);
        let disk = t.path().join("d.img");
        let mut raw = AlignedMem::default();
        let data = aligned(&mut raw, 1 << 20, 3);
        g.write(0, data, 0, false).unwrap();
        assert_eq!(resident(&disk), 0, "initial sync: past the page cache");

        // Switched off: through it.
        g.set_direct_initial_sync(false);
        g.write(0, data, 1 << 20, false).unwrap();
        assert_eq!(resident(&disk), 1 << 20);
        g.set_direct_initial_sync(true);

        // After the baseline the old contents are read and the write is buffered.
        g.point(true, "base").unwrap().expect("the baseline");
        g.write(0, data, 2 << 20, false).unwrap();
        assert_eq!(resident(&disk), 2 << 20);
        let mut back = vec![0u8; 3 << 20];
        g.disks[0].read_at(&mut back, 0).unwrap();
        assert!(back.iter().all(|&x| x == 3));
    }

    #[test]
    fn a_write_reads_ahead_only_the_blocks_whose_undo_is_still_to_save() {
        let t = tempfile::tempdir().unwrap();
        let size = 64 * BLOCK + 100;
        let (g, d) = one_disk_group(t.path(), size, 1 << 20);
        d.write_at(&vec![1; size as usize], 0, false).unwrap();
        g.point(true, "base").unwrap().expect("the baseline");
        // Since the point, blocks 4..8 were saved.
        d.write_at(&vec![2; 4 * BLOCK as usize], 4 * BLOCK, false)
            .unwrap();
        let st = g.lock();
        let b = BLOCK;
        // A write inside blocks 2..10 at odd offsets: blocks 2..4 and 8..10 to read.
        assert_eq!(
            st.unsaved_bytes(0, &[(2 * b + 7, 8 * b - 14)], size),
            vec![(2 * b, 2 * b), (8 * b, 2 * b)]
        );
        // All saved: nothing. Two ranges: each one's gaps.
        assert_eq!(st.unsaved_bytes(0, &[(5 * b, b)], size), vec![]);
        assert_eq!(
            st.unsaved_bytes(0, &[(0, b), (7 * b, 2 * b)], size),
            vec![(0, b), (8 * b, b)]
        );
        // The last block is short: clipped to the disk's end.
        assert_eq!(
            st.unsaved_bytes(0, &[(64 * b, 100)], size),
            vec![(64 * b, 100)]
        );
    }

    /// What the index says block `b` held at the point: its bytes, or `None` when the
    /// index does not know the block (it was not overwritten since).
    fn at_point(v: &ViewIndex, r: &mut PayloadReader, b: u64) -> Option<Vec<u8>> {
        let (_, src) = v.index.lock().unwrap().find(v.disk, b)?;
        let mut buf = vec![0u8; BLOCK as usize];
        if let Some(loc) = src {
            r.read(loc, &mut buf).unwrap();
        }
        Some(buf)
    }

    #[test]
    fn writes_proceed_while_a_view_scans_the_journal_and_the_view_catches_up() {
        let t = tempfile::tempdir().unwrap();
        let (g, d) = one_disk_group(t.path(), 4 << 20, 256 << 10);
        let block = |b: u64| vec![b as u8 | 1; BLOCK as usize];
        for b in 0..1024 {
            d.write_at(&block(b), b * BLOCK, false).unwrap();
        }
        let p = g.point(true, "base").unwrap().unwrap();
        // A journal of many segments after the point: every block of the first half is
        // overwritten, a point after each 64.
        for b in 0..512 {
            d.write_at(&[0xee; BLOCK as usize], b * BLOCK, false)
                .unwrap();
            if b % 64 == 63 {
                d.flush().unwrap();
            }
        }
        assert!(g.journal.lock().unwrap().segments().len() > 4);
        let mut during = 0;
        let v = g
            .open_view_index_with(0, p.id, || {
                // Before the scan and the catch-up: the old code held the commit role for
                // the whole scan, so these writes (and the flush) would wait for it here.
                for b in 600..664 {
                    d.write_at(&[0xdd; BLOCK as usize], b * BLOCK, false)
                        .unwrap();
                    during += 1;
                }
                d.flush().unwrap();
            })
            .unwrap();
        assert_eq!(during, 64);
        // Written after the view opened: registered, so the view learns it too.
        d.write_at(&[0xcc; BLOCK as usize], 900 * BLOCK, false)
            .unwrap();
        let mut r = PayloadReader::new(&t.path().join("j/journal"));
        for b in (0..512).chain(600..664).chain([900]) {
            assert_eq!(at_point(&v, &mut r, b), Some(block(b)), "block {b}");
        }
        for b in [512, 599, 664, 899, 1023] {
            assert_eq!(
                at_point(&v, &mut r, b),
                None,
                "block {b} was never overwritten"
            );
        }
    }
}
