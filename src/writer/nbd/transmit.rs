//! The transmission phase: a reader parses requests, a small worker pool runs them, and
//! replies go out, possibly out of order, through one writer under a mutex.
//!
//! Memory is bounded by two byte budgets: one per connection and one for the whole server
//! ([`BufferPool`]). The reader reserves a request's payload (WRITE data or READ buffer) in
//! both before allocating it and blocks when either is spent, which also stops it reading
//! from the socket (TCP back-pressure on the client).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::buffers::{Buffers, Payload};
use super::proto::{self, Request, SimpleReply};
use crate::writer::export::{Export, WriteReq};

#[derive(Debug, Clone)]
pub struct TransmitOptions {
    /// Largest READ/WRITE payload; a larger WRITE closes the connection.
    pub max_request: u32,
    pub workers: usize,
    /// Bytes of payload buffered per connection at most (at least one max-size request).
    pub budget: usize,
    /// A connection with no request and nothing in flight for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A client that sends nothing for this long inside a request (a header or a WRITE
    /// payload cut off) is closed, whatever is in flight: it holds buffer budget.
    pub stall_timeout: Option<Duration>,
    /// The server-wide payload budget shared by all connections.
    pub pool: Option<Arc<BufferPool>>,
}

impl Default for TransmitOptions {
    fn default() -> Self {
        TransmitOptions {
            max_request: 32 << 20,
            workers: 4,
            budget: 64 << 20,
            idle_timeout: None,
            stall_timeout: None,
            pool: None,
        }
    }
}

/// Why transmission ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// NBD_CMD_DISC: every request before it was answered.
    Disconnect,
    /// The client closed the connection (or the server shut its read side down).
    Closed,
    /// No request for the idle timeout.
    Idle,
}

#[derive(Debug, Error)]
pub enum TransmitError {
    #[error("reading a request")]
    Read(#[source] io::Error),
    #[error("request with bad magic {0:#x}")]
    BadMagic(u64),
    #[error("connection closed inside a request")]
    Truncated,
    #[error("client sent nothing for {0:?} inside a request")]
    Stalled(Duration),
    #[error("client did not send a whole request within {0:?}")]
    Late(Duration),
    #[error("WRITE of {len} bytes exceeds the maximum request size {max}")]
    Oversized { len: u32, max: u32 },
}

/// A request checked against the export: everything in it is safe to execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        len: u32,
        fua: bool,
    },
    Flush,
    Trim {
        offset: u64,
        len: u32,
        fua: bool,
    },
    WriteZeroes {
        offset: u64,
        len: u32,
        fua: bool,
        may_trim: bool,
    },
    Disconnect,
}

/// Checks a request header against the export; `Err` is the NBD error to reply with.
///
/// Pure: it decides before any I/O. Ranges are checked with `checked_add` so that an
/// offset near `u64::MAX` cannot wrap around into the export.
pub fn check(req: &Request, size: u64, read_only: bool, max_request: u32) -> Result<Command, u32> {
    let fua = req.flags & proto::CMD_FLAG_FUA != 0;
    let allowed = match req.command {
        proto::CMD_WRITE_ZEROES => proto::CMD_FLAG_FUA | proto::CMD_FLAG_NO_HOLE,
        proto::CMD_READ
        | proto::CMD_WRITE
        | proto::CMD_DISC
        | proto::CMD_FLUSH
        | proto::CMD_TRIM => proto::CMD_FLAG_FUA,
        _ => return Err(proto::EINVAL),
    };
    if req.flags & !allowed != 0 {
        return Err(proto::EINVAL);
    }
    let writes = matches!(
        req.command,
        proto::CMD_WRITE | proto::CMD_TRIM | proto::CMD_WRITE_ZEROES
    );
    if writes && read_only {
        return Err(proto::EPERM);
    }
    if matches!(req.command, proto::CMD_READ | proto::CMD_WRITE) && req.len > max_request {
        return Err(proto::EINVAL);
    }
    let in_range = req
        .offset
        .checked_add(u64::from(req.len))
        .is_some_and(|end| end <= size);
    let ranged = matches!(
        req.command,
        proto::CMD_READ | proto::CMD_WRITE | proto::CMD_TRIM | proto::CMD_WRITE_ZEROES
    );
    if ranged && !in_range {
        // proto.md: writes past the end SHOULD get ENOSPC; the rest (TRIM too) EINVAL. An overflowing
        // range is nonsense rather than a full disk.
        let overflow = req.offset.checked_add(u64::from(req.len)).is_none();
        let data_write = matches!(req.command, proto::CMD_WRITE | proto::CMD_WRITE_ZEROES);
        return Err(if data_write && !overflow {
            proto::ENOSPC
        } else {
            proto::EINVAL
        });
    }
    let (offset, len) = (req.offset, req.len);
    Ok(match req.command {
        proto::CMD_READ => Command::Read { offset, len },
        proto::CMD_WRITE => Command::Write { offset, len, fua },
        proto::CMD_FLUSH => Command::Flush,
        proto::CMD_TRIM => Command::Trim { offset, len, fua },
        proto::CMD_WRITE_ZEROES => Command::WriteZeroes {
            offset,
            len,
            fua,
            may_trim: req.flags & proto::CMD_FLAG_NO_HOLE == 0,
        },
        _ => Command::Disconnect,
    })
}

/// Maps a store error to the NBD error value (proto.md "Error values").
pub fn errno_of(e: &io::Error) -> u32 {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES | libc::EROFS) => proto::EPERM,
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => proto::ENOSPC,
        Some(libc::EINVAL) => proto::EINVAL,
        Some(libc::ENOMEM) => proto::ENOMEM,
        Some(libc::EOVERFLOW) => proto::EOVERFLOW,
        Some(libc::EOPNOTSUPP) => proto::ENOTSUP,
        Some(libc::ESHUTDOWN) => proto::ESHUTDOWN,
        Some(_) => proto::EIO,
        None => match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => proto::EPERM,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => proto::ENOSPC,
            io::ErrorKind::InvalidInput => proto::EINVAL,
            io::ErrorKind::Unsupported => proto::ENOTSUP,
            io::ErrorKind::OutOfMemory => proto::ENOMEM,
            _ => proto::EIO,
        },
    }
}

/// Payload bytes that may be buffered at once.
struct Budget {
    /// (free bytes, readers waiting for some)
    free: Mutex<(usize, usize)>,
    freed: Condvar,
    total: usize,
}

impl Budget {
    fn new(total: usize) -> Budget {
        Budget {
            free: Mutex::new((total, 0)),
            freed: Condvar::new(),
            total,
        }
    }

    /// Reserves `n` bytes (capped at the total so one big request always fits).
    fn acquire(&self, n: usize) -> usize {
        let n = n.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while free.0 < n {
            free.1 += 1;
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
            free.1 -= 1;
        }
        free.0 -= n;
        n
    }

    fn release(&self, n: usize) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.0 += n;
        // std's notify is a futex syscall even when nobody waits: twice per request.
        if free.1 > 0 {
            self.freed.notify_all();
        }
    }
}

/// The server-wide budget of payload bytes buffered by all connections, so that memory
/// stays bounded whatever the number of clients, shared fairly: each consistency group in
/// transmission may hold `limit / (groups + 1)` (room is always left for one more group),
/// and each connection its part of its group's share. A group or connection holding
/// nothing may always take one request, so a share smaller than a request still serves.
/// Within a group, waiters are served first come, first served (a big request is not
/// starved by small ones); groups never wait behind each other's queue, so a client that
/// trickles its payloads holds at most its group's share, and only until its request
/// deadline. A reservation is held while its request is read, executed and answered.
#[derive(Debug)]
pub struct BufferPool {
    limit: usize,
    st: Mutex<PoolState>,
    cv: Condvar,
    waits: AtomicU64,
}

#[derive(Debug, Default)]
struct PoolState {
    used: usize,
    peak: usize,
    /// Groups with a connection in transmission.
    active: usize,
    /// One entry per group ever seen (their number is bounded by the config); members
    /// keep their index.
    groups: Vec<GroupShare>,
    /// Reservations waiting: wake-ups (a futex syscall each, even with nobody to wake)
    /// only when there are some.
    waiting: usize,
}

#[derive(Debug, Default)]
struct GroupShare {
    name: String,
    conns: usize,
    used: usize,
    next: u64,
    serving: u64,
}

/// A connection's place in the [`BufferPool`]: its group, and what it holds.
#[derive(Debug)]
pub struct PoolMember {
    pool: Arc<BufferPool>,
    group: usize,
    /// Changed only under the pool's lock.
    used: AtomicUsize,
}

/// What [`BufferPool::stats`] reports (metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub limit: usize,
    pub used: usize,
    /// The most ever reserved at once.
    pub peak: usize,
    /// Reservations that had to wait for others to be released.
    pub waits: u64,
}

impl BufferPool {
    pub fn new(limit: usize) -> BufferPool {
        BufferPool {
            limit: limit.max(1),
            st: Mutex::new(PoolState::default()),
            cv: Condvar::new(),
            waits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters a connection of consistency group `group` ("" for exports without one).
    pub fn join(self: &Arc<Self>, group: &str) -> PoolMember {
        let mut st = self.lock();
        let idx = match st.groups.iter().position(|g| g.name == group) {
            Some(i) => i,
            None => {
                st.groups.push(GroupShare {
                    name: group.to_owned(),
                    ..GroupShare::default()
                });
                st.groups.len() - 1
            }
        };
        if st.groups[idx].conns == 0 {
            st.active += 1;
        }
        st.groups[idx].conns += 1;
        PoolMember {
            pool: self.clone(),
            group: idx,
            used: AtomicUsize::new(0),
        }
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        PoolStats {
            limit: self.limit,
            used: st.used,
            peak: st.peak,
            waits: self.waits.load(Ordering::Relaxed),
        }
    }
}

impl PoolMember {
    /// Whether `n` more bytes fit for this member now.
    fn fits(&self, st: &PoolState, n: usize) -> bool {
        let limit = self.pool.limit;
        let g = &st.groups[self.group];
        let group_share = limit / (st.active + 1);
        let conn_share = group_share / g.conns.max(1);
        let mine = self.used.load(Ordering::Relaxed);
        st.used + n <= limit
            && (g.used == 0 || g.used + n <= group_share)
            && (mine == 0 || mine + n <= conn_share)
    }

    /// Reserves `n` bytes (capped at the limit, so one big request always fits), waiting
    /// behind earlier reservations of the same group.
    pub fn acquire(&self, n: usize) -> usize {
        let pool = &*self.pool;
        let n = n.min(pool.limit);
        let mut st = pool.lock();
        let ticket = st.groups[self.group].next;
        st.groups[self.group].next += 1;
        let ready = |st: &PoolState| st.groups[self.group].serving == ticket && self.fits(st, n);
        if !ready(&st) {
            pool.waits.fetch_add(1, Ordering::Relaxed);
            st.waiting += 1;
            while !ready(&st) {
                st = pool.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.waiting -= 1;
        }
        st.used += n;
        st.peak = st.peak.max(st.used);
        let g = &mut st.groups[self.group];
        g.used += n;
        g.serving += 1;
        self.used.fetch_add(n, Ordering::Relaxed);
        // The next in line may fit too.
        if st.waiting > 0 {
            pool.cv.notify_all();
        }
        n
    }

    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let pool = &*self.pool;
        let mut st = pool.lock();
        st.used -= n;
        st.groups[self.group].used -= n;
        self.used.fetch_sub(n, Ordering::Relaxed);
        if st.waiting > 0 {
            pool.cv.notify_all();
        }
    }
}

impl Drop for PoolMember {
    fn drop(&mut self) {
        let pool = &*self.pool;
        let mut st = pool.lock();
        let g = &mut st.groups[self.group];
        g.conns -= 1;
        if g.conns == 0 {
            st.active -= 1;
        }
        // Shares grew: waiters of other groups may fit now.
        pool.cv.notify_all();
    }
}

/// The reply side: one writer, whole replies written under its lock.
struct Replies<W> {
    out: Mutex<W>,
    /// Set after a failed send; atomic so the reader can check it without the lock.
    broken: AtomicBool,
    /// The stall limit: a reply not taken by the client within its frame deadline fails.
    stall: Option<Duration>,
}

/// Writes all of `buf`, failing once `limit` has passed since the first write that did not
/// take everything: a client reading its replies a few bytes at a time holds their buffers
/// no longer than one sending a request that way. (A write taking all at once, the usual
/// case, reads no clock.)
fn write_within<W: Write>(w: &mut W, mut buf: &[u8], limit: Option<Duration>) -> io::Result<()> {
    let mut since = None;
    while !buf.is_empty() {
        match w.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if let Some(l) = limit.filter(|_| !buf.is_empty())
            && since.get_or_insert_with(Instant::now).elapsed() >= l
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("reply not read within {l:?}"),
            ));
        }
    }
    Ok(())
}

impl<W: Write> Replies<W> {
    /// Sends `buf` (header and maybe data); after a failed send the rest are dropped,
    /// since the client is gone and the reader will see it shortly.
    fn send(&self, buf: &[u8]) {
        let mut w = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if self.broken() {
            return;
        }
        let limit = self.stall.map(|l| frame_deadline(l, buf.len()));
        if let Err(e) = write_within(&mut *w, buf, limit).and_then(|()| w.flush()) {
            tracing::debug!(error = %e, "NBD reply failed");
            self.broken.store(true, Ordering::Release);
        }
    }

    fn broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn error(&self, handle: u64, error: u32) {
        let mut b = Vec::with_capacity(proto::SIMPLE_REPLY_LEN);
        SimpleReply { error, handle }.encode(&mut b);
        self.send(&b);
    }
}

struct Job {
    handle: u64,
    cmd: Command,
    /// WRITE data, or the READ buffer with room for the reply header in front.
    buf: Payload,
    reserved: usize,
    /// Bytes held in the server-wide pool.
    pooled: usize,
    /// A WRITE answered when it was read ([`Export::answer_early`]): its ticket.
    ticket: Option<u64>,
    /// Any other request: where answering early stood when it was read
    /// ([`Export::answered_mark`]); it waits for the writes answered before.
    mark: u64,
}

struct Shared<'a, W> {
    export: &'a dyn Export,
    replies: Replies<W>,
    budget: Budget,
    pool: Option<PoolMember>,
    in_flight: AtomicUsize,
    buffers: Buffers,
}

impl<W> Shared<'_, W> {
    /// Reserves `n` payload bytes: per connection first (only this reader waits there),
    /// then server-wide. Returns (per connection, pooled).
    fn reserve(&self, n: usize) -> (usize, usize) {
        let mine = self.budget.acquire(n);
        let pooled = self.pool.as_ref().map_or(0, |p| p.acquire(n));
        (mine, pooled)
    }

    /// An answered job: its buffer kept for reuse, its budget freed, out of flight.
    fn finish(&self, job: Job) {
        self.buffers.give(job.buf);
        self.release((job.reserved, job.pooled));
        self.in_flight.fetch_sub(1, Ordering::Release);
    }

    fn release(&self, (mine, pooled): (usize, usize)) {
        if let Some(p) = &self.pool {
            p.release(pooled);
        }
        self.budget.release(mine);
    }
}

fn run_job<W: Write>(sh: &Shared<'_, W>, mut job: Job) {
    debug_assert!(job.ticket.is_none(), "answered writes run in run_writes");
    let e = sh.export;
    // What it touches of the writes answered before it: run first.
    let mark = job.mark;
    match job.cmd {
        Command::Read { offset, len }
        | Command::Write { offset, len, .. }
        | Command::Trim { offset, len, .. }
        | Command::WriteZeroes { offset, len, .. } => e.wait_answered(offset, len.into(), mark),
        Command::Flush | Command::Disconnect => {}
    }
    let result = match job.cmd {
        Command::Read { offset, .. } => e.read_at(&mut job.buf[proto::SIMPLE_REPLY_LEN..], offset),
        Command::Write { offset, fua, .. } => e.write_at(&job.buf, offset, fua),
        Command::Flush => e.flush_after(mark),
        Command::Trim { offset, len, fua } => e
            .trim(offset, len.into())
            .and_then(|()| if fua { e.flush_after(mark) } else { Ok(()) }),
        Command::WriteZeroes {
            offset,
            len,
            fua,
            may_trim,
        } => e.write_zeroes(offset, len.into(), may_trim, fua),
        Command::Disconnect => Ok(()),
    };
    match result {
        Ok(()) if matches!(job.cmd, Command::Read { .. }) => {
            let mut h = Vec::with_capacity(proto::SIMPLE_REPLY_LEN);
            SimpleReply {
                error: 0,
                handle: job.handle,
            }
            .encode(&mut h);
            job.buf[..proto::SIMPLE_REPLY_LEN].copy_from_slice(&h);
            sh.replies.send(&job.buf);
        }
        Ok(()) => sh.replies.error(job.handle, 0),
        Err(err) => {
            tracing::warn!(cmd = ?job.cmd, error = %err, "NBD request failed");
            sh.replies.error(job.handle, errno_of(&err));
        }
    }
    sh.finish(job);
}

/// Requests read and not yet taken by a worker. The reader waits when `cap` are queued
/// (back-pressure: it stops reading the socket); a request wakes one idle worker, and only
/// when one is idle. (std's channel shared by the workers behind a `Mutex<Receiver>` woke
/// two threads per request: the one in `recv` and the next one waiting for the receiver's
/// lock; perf stat counted four context switches per 4 KiB write before this and the
/// group commit's parked writers.)
struct JobQueue {
    st: Mutex<QueueState>,
    /// Idle workers wait here.
    work: Condvar,
    /// The reader waits here while the queue is full.
    room: Condvar,
}

struct QueueState {
    jobs: VecDeque<Job>,
    cap: usize,
    idle: usize,
    /// Idle workers woken and not yet at the queue: while one is on its way, another job
    /// wakes nobody (that worker takes the queued writes together).
    woken: usize,
    reader_waiting: bool,
    closed: bool,
}

impl JobQueue {
    fn new(cap: usize) -> JobQueue {
        JobQueue {
            st: Mutex::new(QueueState {
                jobs: VecDeque::with_capacity(cap),
                cap: cap.max(1),
                idle: 0,
                woken: 0,
                reader_waiting: false,
                closed: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job for the workers, waiting for room.
    fn push(&self, job: Job) {
        let mut st = self.lock();
        while st.jobs.len() >= st.cap {
            st.reader_waiting = true;
            st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.jobs.push_back(job);
        self.wake_one(&mut st);
    }

    /// Wakes an idle worker for the queued jobs unless one is already on its way.
    fn wake_one(&self, st: &mut QueueState) {
        if st.woken == 0 && st.idle > 0 && !st.jobs.is_empty() {
            st.woken += 1;
            self.work.notify_one();
        }
    }

    /// The next work: a job, or the WRITEs queued one after another at the front (at most
    /// [`BATCH_WRITES`] and [`BATCH_BYTES`], the first whatever its size); `None` once the
    /// queue is closed and drained.
    fn pop(&self) -> Option<Work> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                let work = match WriteJob::of(job) {
                    Err(job) => Work::One(job),
                    Ok(first) => {
                        let mut bytes = first.job.buf.len();
                        let answered = first.job.ticket.is_some();
                        let mut writes = vec![first];
                        // Writes answered early run apart from the others: one not
                        // answered waits for the answered writes it overlaps, which
                        // must not be in its own run.
                        while let Some(next) = st.jobs.front()
                            && writes.len() < BATCH_WRITES
                            && bytes + next.buf.len() <= BATCH_BYTES
                            && matches!(next.cmd, Command::Write { .. })
                            && next.ticket.is_some() == answered
                        {
                            bytes += next.buf.len();
                            let job = st.jobs.pop_front().expect("front exists");
                            writes.extend(WriteJob::of(job).ok());
                        }
                        Work::Writes(writes)
                    }
                };
                if st.reader_waiting {
                    st.reader_waiting = false;
                    self.room.notify_one();
                }
                // What is left (a job that is not a WRITE, or past the batch's bounds)
                // goes to another worker.
                self.wake_one(&mut st);
                return Some(work);
            }
            if st.closed {
                return None;
            }
            st.idle += 1;
            st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
            // Woken by wake_one (or spuriously, or by close).
            st.woken = st.woken.saturating_sub(1);
        }
    }

    /// No more jobs come: the workers drain the queue and stop.
    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }
}

/// Closes the queue when the reader ends, however it ends (the workers would wait forever).
struct CloseOnDrop<'a>(&'a JobQueue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Bytes a connection reads from its socket ahead of the request being parsed.
const READ_AHEAD: usize = 64 << 10;

/// WRITEs one worker takes from the queue at once, at most: their undo is saved in one place
/// of the group commit and their replies go out in one send, so a burst of small writes
/// costs one wake-up instead of one each.
const BATCH_WRITES: usize = 64;
/// Payload bytes of WRITEs one worker takes at once: large writes are not held back behind
/// each other (a 4 KiB burst batches up to [`BATCH_WRITES`], 256 KiB ones four at a time).
const BATCH_BYTES: usize = 1 << 20;

/// What a worker takes from the queue.
enum Work {
    One(Job),
    Writes(Vec<WriteJob>),
}

/// A WRITE job with its checked offset and FUA flag.
struct WriteJob {
    job: Job,
    offset: u64,
    fua: bool,
}

impl WriteJob {
    /// The WRITE job, or the job back when it is something else.
    fn of(job: Job) -> Result<WriteJob, Job> {
        match job.cmd {
            Command::Write { offset, fua, .. } => Ok(WriteJob { job, offset, fua }),
            _ => Err(job),
        }
    }
}

fn worker<W: Write>(sh: &Shared<'_, W>, queue: &JobQueue) {
    while let Some(work) = queue.pop() {
        match work {
            Work::One(job) => run_job(sh, job),
            Work::Writes(mut writes) if writes.len() == 1 && writes[0].job.ticket.is_none() => {
                run_job(sh, writes.pop().expect("one write").job)
            }
            Work::Writes(writes) => run_writes(sh, writes),
        }
    }
}

/// Runs several WRITEs with one [`Export::write_many`] and sends the replies of those not
/// answered yet at once; the outcome of those answered goes to [`Export::answered`].
fn run_writes<W: Write>(sh: &Shared<'_, W>, writes: Vec<WriteJob>) {
    // A run is all answered early or none ([`JobQueue::pop`]); the others run after the
    // answered writes before them that they overlap.
    for w in writes.iter().filter(|w| w.job.ticket.is_none()) {
        sh.export
            .wait_answered(w.offset, w.job.buf.len() as u64, w.job.mark);
    }
    let reqs: Vec<WriteReq<'_>> = writes
        .iter()
        .map(|w| WriteReq {
            data: &w.job.buf,
            offset: w.offset,
            fua: w.fua,
            answered: w.job.ticket.is_some(),
        })
        .collect();
    let results = sh.export.write_many(&reqs);
    drop(reqs);
    let mut replies = Vec::with_capacity(writes.len() * proto::SIMPLE_REPLY_LEN);
    for (w, r) in writes.iter().zip(&results) {
        if let Some(ticket) = w.job.ticket {
            sh.export.answered(ticket, r);
            continue;
        }
        let error = match r {
            Ok(()) => 0,
            Err(err) => {
                tracing::warn!(cmd = ?w.job.cmd, error = %err, "NBD request failed");
                errno_of(err)
            }
        };
        SimpleReply {
            error,
            handle: w.job.handle,
        }
        .encode(&mut replies);
    }
    if !replies.is_empty() {
        sh.replies.send(&replies);
    }
    for w in writes {
        sh.finish(w.job);
    }
}

/// What reading a frame found.
enum Frame {
    Full,
    /// EOF before the first byte.
    Eof,
    Idle,
}

/// The slowest payload rate a frame's deadline allows for beyond the stall limit: a
/// 32 MiB WRITE gets 512 s more, a 4 KiB one a few milliseconds.
pub const MIN_PAYLOAD_RATE: u64 = 64 * 1024;

/// How long a frame of `len` bytes may take from its first byte: the stall limit plus its
/// length at [`MIN_PAYLOAD_RATE`].
fn frame_deadline(stall: Duration, len: usize) -> Duration {
    stall + Duration::from_millis(len as u64 * 1000 / MIN_PAYLOAD_RATE)
}

/// Reads `buf` fully. Before its first byte, a read timeout with nothing in flight past the
/// idle limit is idleness; once a frame has begun, no byte for the stall limit, or the
/// frame not complete by its deadline ([`frame_deadline`]: trickling bytes does not extend
/// it), ends the connection (the reservation for it must not be held hostage). Otherwise
/// reading goes on.
fn read_frame<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    in_flight: &AtomicUsize,
    opts: &TransmitOptions,
    begun: bool,
) -> Result<Frame, TransmitError> {
    let idle = opts.idle_timeout;
    let mut got = 0;
    let mut since = Instant::now();
    let limit = opts.stall_timeout.map(|s| frame_deadline(s, buf.len()));
    let mut deadline = limit.filter(|_| begun).map(|l| since + l);
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(Frame::Eof),
            Ok(0) => return Err(TransmitError::Truncated),
            Ok(n) => {
                got += n;
                since = Instant::now();
                if let Some(l) = limit.filter(|_| got < buf.len())
                    && since >= *deadline.get_or_insert(since + l)
                {
                    return Err(TransmitError::Late(l));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(l) = limit.filter(|_| deadline.is_some_and(|d| Instant::now() >= d)) {
                    return Err(TransmitError::Late(l));
                }
                let quiet = since.elapsed();
                let stalled = opts.stall_timeout.filter(|&s| quiet >= s);
                if let Some(stall) = stalled.filter(|_| got > 0 || begun) {
                    return Err(TransmitError::Stalled(stall));
                }
                let limit = idle.unwrap_or(Duration::MAX);
                if in_flight.load(Ordering::Acquire) == 0 && quiet >= limit {
                    if got == 0 && !begun {
                        return Ok(Frame::Idle);
                    }
                    return Err(TransmitError::Truncated);
                }
            }
            Err(e) => return Err(TransmitError::Read(e)),
        }
    }
    Ok(Frame::Full)
}

/// Serves requests on one connection until DISC, EOF, idleness or a protocol violation.
/// Every request read before the end is executed and answered before this returns.
pub fn serve<R: Read, W: Write + Send>(
    reader: R,
    writer: W,
    export: &dyn Export,
    opts: &TransmitOptions,
) -> Result<End, TransmitError> {
    let workers = opts.workers.max(1);
    let budget = opts.budget.max(opts.max_request as usize);
    let shared = Shared {
        export,
        replies: Replies {
            out: Mutex::new(writer),
            broken: AtomicBool::new(false),
            stall: opts.stall_timeout,
        },
        budget: Budget::new(budget),
        pool: opts.pool.as_ref().map(|p| p.join(export.group())),
        in_flight: AtomicUsize::new(0),
        buffers: Buffers::default(),
    };
    let queue = JobQueue::new(workers * 2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| worker(&shared, &queue));
        }
        let _close = CloseOnDrop(&queue);
        // Requests are read through a buffer: a burst of small WRITEs comes in with a few
        // recv calls instead of two each (header, payload); a payload larger than the
        // buffer is read straight into its own.
        let reader = io::BufReader::with_capacity(READ_AHEAD, reader);
        read_loop(reader, &queue, &shared, opts)
    })
}

fn read_loop<R: Read, W: Write>(
    mut reader: R,
    queue: &JobQueue,
    sh: &Shared<'_, W>,
    opts: &TransmitOptions,
) -> Result<End, TransmitError> {
    let size = sh.export.size();
    let read_only = sh.export.read_only();
    loop {
        if sh.replies.broken() {
            // Replies cannot reach the client: executing more of its requests is pointless.
            return Ok(End::Closed);
        }
        let mut head = [0u8; proto::REQUEST_LEN];
        match read_frame(&mut reader, &mut head, &sh.in_flight, opts, false)? {
            Frame::Full => {}
            Frame::Eof => return Ok(End::Closed),
            Frame::Idle => return Ok(End::Idle),
        }
        let req = match Request::decode(&mut &head[..]) {
            Ok(r) => r,
            Err(proto::ProtoError::BadMagic { found, .. }) => {
                return Err(TransmitError::BadMagic(found));
            }
            Err(_) => return Err(TransmitError::Truncated),
        };
        if req.command == proto::CMD_WRITE && req.len > opts.max_request {
            // The payload cannot be skipped without reading it all: answer and close.
            sh.replies.error(req.handle, proto::EINVAL);
            return Err(TransmitError::Oversized {
                len: req.len,
                max: opts.max_request,
            });
        }
        let checked = check(&req, size, read_only, opts.max_request);
        let mut reserved = (0, 0);
        let mut buf = Payload::default();
        if req.command == proto::CMD_WRITE {
            // The payload is on the wire even when the request is refused: consume it.
            reserved = sh.reserve(req.len as usize);
            buf = sh.buffers.take(req.len as usize);
            match read_frame(&mut reader, &mut buf, &sh.in_flight, opts, true) {
                Ok(Frame::Full) => {}
                Ok(_) | Err(TransmitError::Truncated) => {
                    sh.release(reserved);
                    return Err(TransmitError::Truncated);
                }
                Err(e) => {
                    sh.release(reserved);
                    return Err(e);
                }
            }
        }
        let cmd = match checked {
            Ok(c) => c,
            Err(errno) => {
                tracing::debug!(?req, errno, "NBD request refused");
                drop(buf);
                sh.release(reserved);
                sh.replies.error(req.handle, errno);
                continue;
            }
        };
        if cmd == Command::Disconnect {
            return Ok(End::Disconnect);
        }
        if let Command::Read { len, .. } = cmd {
            reserved = sh.reserve(len as usize);
            buf = sh.buffers.take(proto::SIMPLE_REPLY_LEN + len as usize);
        }
        sh.in_flight.fetch_add(1, Ordering::AcqRel);
        let job = Job {
            handle: req.handle,
            cmd,
            buf,
            reserved: reserved.0,
            pooled: reserved.1,
            ticket: None,
            mark: 0,
        };
        // Write-behind: a WRITE without FUA may be answered as soon as it is queued.
        let early = match cmd {
            Command::Write {
                offset,
                fua: false,
                len,
            } => sh.export.answer_early(offset, len.into()),
            _ => None,
        };
        let mark = match early {
            Some(_) => 0,
            None => sh.export.answered_mark(),
        };
        let handle = job.handle;
        queue.push(Job {
            ticket: early,
            mark,
            ..job
        });
        if early.is_some() {
            sh.replies.error(handle, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(command: u16, flags: u16, offset: u64, len: u32) -> Request {
        Request {
            flags,
            command,
            handle: 7,
            offset,
            len,
        }
    }

    #[test]
    fn check_ranges() {
        let size = 1 << 20;
        let max = 65536;
        assert_eq!(
            check(&req(proto::CMD_READ, 0, 0, 4096), size, false, max),
            Ok(Command::Read {
                offset: 0,
                len: 4096
            })
        );
        // Exactly to the end is fine, one past is not.
        assert!(check(&req(proto::CMD_READ, 0, size - 512, 512), size, false, max).is_ok());
        assert_eq!(
            check(&req(proto::CMD_READ, 0, size - 511, 512), size, false, max),
            Err(proto::EINVAL)
        );
        assert_eq!(
            check(&req(proto::CMD_WRITE, 0, size, 1), size, false, max),
            Err(proto::ENOSPC)
        );
        // offset + len wraps around u64.
        assert_eq!(
            check(
                &req(proto::CMD_WRITE, 0, u64::MAX - 10, 4096),
                size,
                false,
                max
            ),
            Err(proto::EINVAL)
        );
        assert_eq!(
            check(&req(proto::CMD_TRIM, 0, u64::MAX, 1), size, false, max),
            Err(proto::EINVAL)
        );
        assert_eq!(
            check(&req(proto::CMD_READ, 0, 0, max + 1), size, false, max),
            Err(proto::EINVAL)
        );
        // TRIM/WRITE_ZEROES carry no payload: no size cap beyond the export.
        assert!(check(&req(proto::CMD_TRIM, 0, 0, 1 << 20), size, false, max).is_ok());
    }

    #[test]
    fn check_flags_commands_read_only() {
        let size = 1 << 20;
        assert_eq!(
            check(&req(99, 0, 0, 0), size, false, 4096),
            Err(proto::EINVAL)
        );
        assert_eq!(
            check(&req(proto::CMD_WRITE, 0, 0, 512), size, true, 4096),
            Err(proto::EPERM)
        );
        assert_eq!(
            check(&req(proto::CMD_TRIM, 0, 0, 512), size, true, 4096),
            Err(proto::EPERM)
        );
        assert_eq!(
            check(
                &req(proto::CMD_WRITE, proto::CMD_FLAG_NO_HOLE, 0, 512),
                size,
                false,
                4096
            ),
            Err(proto::EINVAL)
        );
        assert_eq!(
            check(
                &req(proto::CMD_WRITE_ZEROES, proto::CMD_FLAG_NO_HOLE | 1, 0, 512),
                size,
                false,
                4096
            ),
            Ok(Command::WriteZeroes {
                offset: 0,
                len: 512,
                fua: true,
                may_trim: false
            })
        );
        assert_eq!(
            check(&req(proto::CMD_READ, 1 << 2, 0, 512), size, false, 4096),
            Err(proto::EINVAL)
        );
        assert_eq!(
            check(&req(proto::CMD_FLUSH, 0, 0, 0), size, true, 4096),
            Ok(Command::Flush)
        );
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(
            errno_of(&io::Error::from_raw_os_error(libc::ENOSPC)),
            proto::ENOSPC
        );
        assert_eq!(
            errno_of(&io::Error::from_raw_os_error(libc::EROFS)),
            proto::EPERM
        );
        assert_eq!(errno_of(&io::Error::other("x")), proto::EIO);
    }

    /// A client that takes `per_call` bytes of a reply every 5 ms.
    struct SlowReader {
        per_call: usize,
        taken: usize,
    }

    impl Write for SlowReader {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            let n = buf.len().min(self.per_call);
            self.taken += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reply_read_byte_by_byte_fails_at_its_deadline() {
        let reply = vec![0u8; 4096];
        let mut slow = SlowReader {
            per_call: 1,
            taken: 0,
        };
        // 50 ms + 4 KiB at 64 KiB/s = 112 ms; at 200 B/s the reply would take 20 s.
        let t = Instant::now();
        let err = write_within(
            &mut slow,
            &reply,
            Some(frame_deadline(Duration::from_millis(50), 4096)),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert!(slow.taken < 4096);
        // A reader that keeps up gets it all, and without a limit anyone does.
        let mut fast = SlowReader {
            per_call: 1024,
            taken: 0,
        };
        write_within(
            &mut fast,
            &reply,
            Some(frame_deadline(Duration::from_millis(50), 4096)),
        )
        .unwrap();
        assert_eq!(fast.taken, 4096);
        let mut slow = SlowReader {
            per_call: 512,
            taken: 0,
        };
        write_within(&mut slow, &reply, None).unwrap();
        assert_eq!(slow.taken, 4096);
    }

    #[test]
    fn pool_caps_bytes_in_use_and_serves_a_group_in_order() {
        let pool = Arc::new(BufferPool::new(100));
        let a = pool.join("g");
        assert_eq!(a.acquire(60), 60);
        // Capped at the limit: one request bigger than the pool still gets through alone.
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |n: usize, tag: &'static str| {
            let (p, order) = (pool.clone(), order.clone());
            let t = std::thread::spawn(move || {
                let m = p.join("g");
                let got = m.acquire(n);
                order.lock().unwrap().push(tag);
                m.release(got);
                got
            });
            // Let it queue before the next one.
            while pool.stats().waits < 1 + u64::from(tag == "small") {
                std::thread::yield_now();
            }
            t
        };
        let big = spawn(500, "big");
        let small = spawn(10, "small");
        // The small one would fit now, but waits behind the big one: first come, first served.
        std::thread::sleep(Duration::from_millis(50));
        assert!(order.lock().unwrap().is_empty());
        a.release(60);
        assert_eq!(big.join().unwrap(), 100);
        assert_eq!(small.join().unwrap(), 10);
        assert_eq!(*order.lock().unwrap(), ["big", "small"]);
        let st = pool.stats();
        assert_eq!((st.used, st.peak, st.limit, st.waits), (0, 100, 100, 2));
    }

    #[test]
    fn pool_shares_between_groups_and_connections() {
        let pool = Arc::new(BufferPool::new(100));
        // Alone, a group may hold half: room is kept for one more group.
        let a1 = pool.join("a");
        assert_eq!(a1.acquire(50), 50);
        // A second connection of the same group waits: its group's share is spent.
        let waiting = {
            let p = pool.clone();
            std::thread::spawn(move || {
                let a2 = p.join("a");
                let got = a2.acquire(30);
                a2.release(got);
                got
            })
        };
        while pool.stats().waits < 1 {
            std::thread::yield_now();
        }
        // Another group is served at once, not behind group a's queue.
        let b1 = pool.join("b");
        assert_eq!(b1.acquire(30), 30);
        assert_eq!(pool.stats().used, 80);
        b1.release(30);
        a1.release(50);
        assert_eq!(waiting.join().unwrap(), 30);
        assert_eq!(pool.stats().used, 0);
        // A connection holding nothing may always take one request, even past its share.
        let c = pool.join("c");
        assert_eq!(c.acquire(90), 90);
        c.release(90);
    }

    fn job(handle: u64, cmd: Command, len: usize) -> Job {
        Job {
            handle,
            cmd,
            buf: Buffers::default().take(len),
            reserved: 0,
            pooled: 0,
            ticket: None,
            mark: 0,
        }
    }

    fn write(handle: u64, len: u32) -> Job {
        let cmd = Command::Write {
            offset: handle * 4096,
            len,
            fua: false,
        };
        job(handle, cmd, len as usize)
    }

    /// What each pop hands a worker: the handles, and whether they came as a WRITE batch.
    fn drain(q: &JobQueue) -> Vec<(bool, Vec<u64>)> {
        q.close();
        std::iter::from_fn(|| q.pop())
            .map(|w| match w {
                Work::One(j) => (false, vec![j.handle]),
                Work::Writes(ws) => (true, ws.iter().map(|w| w.job.handle).collect()),
            })
            .collect()
    }

    #[test]
    fn a_worker_takes_the_writes_queued_in_a_row_within_the_batch_bounds() {
        let q = JobQueue::new(200);
        for h in 0..5 {
            q.push(write(h, 4096));
        }
        q.push(job(
            5,
            Command::Read {
                offset: 0,
                len: 4096,
            },
            4096,
        ));
        q.push(write(6, 4096));
        q.push(job(7, Command::Flush, 0));
        // 70 small writes: one batch of BATCH_WRITES, then the rest.
        for h in 100..170 {
            q.push(write(h, 4096));
        }
        // Large writes: BATCH_BYTES holds four of 256 KiB; one larger than it goes alone.
        for h in 200..205 {
            q.push(write(h, 256 << 10));
        }
        q.push(write(300, 2 << 20));
        q.push(write(301, 4096));
        let got = drain(&q);
        let want: Vec<(bool, Vec<u64>)> = vec![
            (true, (0..5).collect()),
            (false, vec![5]),
            (true, vec![6]),
            (false, vec![7]),
            (true, (100..164).collect()),
            (true, (164..170).chain(200..203).collect()),
            (true, vec![203, 204]),
            (true, vec![300]),
            (true, vec![301]),
        ];
        assert_eq!(got, want);
    }
}
