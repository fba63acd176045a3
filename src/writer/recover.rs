//! Recovery: roll a group back (or forward again) to a point in place, commit it as the
//! new baseline, and read-only `<disk>@<point>` views for test failover.
//!
//! The contents of block `b` at point `Q` are those saved by the earliest undo record of
//! `b` with seq > Q, or, when no write touched `b` after Q, the contents the disks held
//! when recovery began ("head"). Before a recovery overwrites a block for the first time it
//! saves the head contents in the session log (`recover/saved/`), so that any point that
//! existed before the first recover stays reachable until commit.

use super::Export;
use super::group::{BLOCK, BlockSrc, Group, Point, ViewIndex, encode_point, now_us};
use super::journal::format::{self, Header, Kind};
use super::journal::{Journal, Loc, PayloadReader, PointRecord};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Which point a recover goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum PointSpec {
    Latest,
    LatestApp,
    /// The newest point at or before this time.
    Time(chrono::DateTime<chrono::Utc>),
    Id(u64),
}

impl std::str::FromStr for PointSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(PointSpec::Latest),
            "latest-app" => Ok(PointSpec::LatestApp),
            _ => {
                if let Ok(id) = s.parse::<u64>() {
                    return Ok(PointSpec::Id(id));
                }
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| PointSpec::Time(t.to_utc()))
                    .map_err(|_| {
                        format!("{s:?} is not a point: use latest, latest-app, a point id (see `mtkit points`) or an RFC 3339 time such as 2026-11-27T10:00:00Z")
                    })
            }
        }
    }
}

/// Picks the point `spec` names among `points` (oldest first).
pub fn choose(points: &[Point], spec: &PointSpec) -> Result<Point, String> {
    let found = match spec {
        PointSpec::Latest => points.last(),
        PointSpec::LatestApp => points.iter().rev().find(|p| p.kind == "app"),
        PointSpec::Time(t) => points.iter().rev().find(|p| p.time <= *t),
        PointSpec::Id(id) => points.iter().find(|p| p.id == *id),
    };
    found.cloned().ok_or_else(|| match spec {
        PointSpec::Id(id) => format!("no recovery point {id} (see `mtkit points`)"),
        PointSpec::Time(t) => format!("no recovery point at or before {t}"),
        PointSpec::LatestApp => "no app-consistent recovery point".into(),
        PointSpec::Latest => "no recovery point yet (the group is in initial sync)".into(),
    })
}

/// The session file saying a recovery is under way and where the disks are.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The point the disks are at; `None` while a recover is (or died) half-way.
    pub at: Option<u64>,
    pub started: chrono::DateTime<chrono::Utc>,
    /// A commit to `at` has begun: finish it, never recover again.
    #[serde(default)]
    pub committing: bool,
}

fn session_dir(dir: &Path) -> PathBuf {
    dir.join("recover")
}

pub fn session_exists(dir: &Path) -> bool {
    session_dir(dir).join("state.json").exists()
}

pub fn read_session(dir: &Path) -> Option<Session> {
    let text = std::fs::read(session_dir(dir).join("state.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_session(dir: &Path, s: &Session) -> anyhow::Result<()> {
    let d = session_dir(dir);
    std::fs::create_dir_all(&d)?;
    crate::files::write_atomic(&d.join("state.json"), &serde_json::to_vec(s)?, 0o600)
}

/// What a recover did (or, dry-run, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoverReport {
    pub group: String,
    pub point: Point,
    /// Blocks rewritten across the group's disks.
    pub blocks: u64,
    pub bytes: u64,
    pub dry_run: bool,
}

/// Per block (disk index, block number): where its wanted contents are, first save wins.
type BlockMap = HashMap<(usize, u64), BlockSrc>;

fn index_records(
    journal: &Journal,
    after: u64,
    ids: &HashMap<u32, usize>,
    map: &mut BlockMap,
) -> anyhow::Result<()> {
    journal.scan_after(after, |h: &Header, loc: Loc| {
        if !matches!(h.kind, Kind::Undo | Kind::UndoZero) {
            return;
        }
        let Some(&disk) = ids.get(&h.disk) else {
            return;
        };
        let mut b = h.offset / BLOCK;
        while b * BLOCK < h.offset + h.length {
            let src = (h.kind == Kind::Undo).then(|| Loc {
                segment: loc.segment,
                data: loc.data + (b * BLOCK - h.offset),
            });
            map.entry((disk, b)).or_insert(src);
            b += 1;
        }
    })?;
    Ok(())
}

/// Splits sorted (disk, block) keys into runs of consecutive blocks: (disk, first, count).
fn runs(keys: &[(usize, u64)]) -> Vec<(usize, u64, u64)> {
    let mut out: Vec<(usize, u64, u64)> = Vec::new();
    for &(d, b) in keys {
        match out.last_mut() {
            Some((ld, lb, n)) if *ld == d && *lb + *n == b => *n += 1,
            _ => out.push((d, b, 1)),
        }
    }
    out
}

fn read_src(reader: &mut PayloadReader, src: BlockSrc, buf: &mut [u8]) -> io::Result<()> {
    match src {
        Some(loc) => reader.read(loc, buf),
        None => {
            buf.fill(0);
            Ok(())
        }
    }
}

impl Group {
    fn disk_ids(&self) -> HashMap<u32, usize> {
        self.disks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect()
    }

    /// Where the group is, when it is under recovery.
    pub fn session(&self) -> Option<Session> {
        read_session(&self.dir)
    }

    /// Rolls every disk of the group to the point `spec` names. Writes are refused from
    /// the start until [`Group::commit`]. `progress(done, total)` is called per batch.
    pub fn recover(
        &self,
        spec: &PointSpec,
        dry_run: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<RecoverReport> {
        if self.session().is_some_and(|s| s.committing) {
            anyhow::bail!(
                "group {} is being committed: run `mtkit commit` to finish",
                self.name
            );
        }
        let point = choose(&self.points(), spec).map_err(crate::error::bad_input)?;
        let ids = self.disk_ids();
        let journal_dir;
        let mut want = BlockMap::new();
        {
            let j = self.journal.lock().unwrap();
            journal_dir = j.dir().to_path_buf();
            index_records(&j, point.id, &ids, &mut want)?;
        }
        let saved_dir = session_dir(&self.dir).join("saved");
        let mut head = BlockMap::new();
        if saved_dir.exists() {
            let (s, _) = Journal::open(&saved_dir, u64::MAX)?;
            index_records(&s, 0, &ids, &mut head)?;
        }
        let blocks: BTreeSet<(usize, u64)> = want.keys().chain(head.keys()).copied().collect();
        let bytes = blocks
            .iter()
            .map(|&(d, b)| BLOCK.min(self.disks[d].size.saturating_sub(b * BLOCK)))
            .sum();
        let report = RecoverReport {
            group: self.name.clone(),
            point: point.clone(),
            blocks: blocks.len() as u64,
            bytes,
            dry_run,
        };
        if dry_run {
            return Ok(report);
        }
        // The rollback saves what it overwrites on the retention volume: check the room
        // first, so that a full volume fails the recover before anything changes.
        let unsaved = blocks.iter().filter(|k| !head.contains_key(k)).count() as u64;
        let need = unsaved * (BLOCK + format::HEADER_LEN as u64) + (1 << 20);
        let free = nix::sys::statvfs::statvfs(&self.dir)
            .map(|v| v.blocks_available() * v.fragment_size())
            .unwrap_or(u64::MAX);
        if free < need {
            anyhow::bail!(
                "recovering group {} to point {} must first save {} MiB of current contents on the retention volume ({}), which has {} MiB free: free some space (or shorten [policy] retention) and retry; nothing was changed",
                self.name,
                point.id,
                need >> 20,
                self.dir.display(),
                free >> 20
            );
        }
        let _quiet = Quiet::new(self);
        tracing::info!(group = %self.name, point = point.id, blocks = blocks.len(), "recovering");
        let started = self.session().map_or_else(chrono::Utc::now, |s| s.started);
        write_session(
            &self.dir,
            &Session {
                at: None,
                started,
                committing: false,
            },
        )?;
        let (mut saved, _) = Journal::open(&saved_dir, u64::MAX)?;
        let mut jr = PayloadReader::new(&journal_dir);
        let mut sr = PayloadReader::new(&saved_dir);
        let total = blocks.len() as u64;
        let list: Vec<(usize, u64)> = blocks.into_iter().collect();
        let mut done = 0u64;
        let mut data = Vec::new();
        for chunk in list.chunks(1024) {
            let runs = runs(chunk);
            // Save head contents of blocks touched for the first time, durably, first.
            let mut buf = Vec::new();
            let mut rel = Vec::new();
            for &(d, b0, n) in &runs {
                if (b0..b0 + n).all(|b| head.contains_key(&(d, b))) {
                    continue;
                }
                let t = &self.disks[d];
                let (start, end) = (b0 * BLOCK, ((b0 + n) * BLOCK).min(t.size));
                data.resize((end - start) as usize, 0);
                t.read_at(&mut data, start)?;
                for b in (b0..b0 + n).filter(|&b| !head.contains_key(&(d, b))) {
                    let lo = ((b - b0) * BLOCK) as usize;
                    let block = &data[lo..(lo + BLOCK as usize).min(data.len())];
                    let zero = block.iter().all(|&x| x == 0);
                    let h = Header {
                        kind: if zero { Kind::UndoZero } else { Kind::Undo },
                        seq: 1,
                        disk: t.id,
                        offset: b * BLOCK,
                        length: block.len() as u64,
                        time_us: now_us(),
                        payload_len: 0,
                        payload_crc: 0,
                    };
                    let at = buf.len() + format::HEADER_LEN;
                    format::encode_parts(&h, if zero { &[] } else { block }, &mut buf);
                    rel.push(((d, b), (!zero).then_some(at as u64)));
                }
            }
            if !buf.is_empty() {
                let (seg, base) = saved.prepare_append(buf.len() as u64)?;
                saved.append(&buf, 1)?;
                saved.sync()?;
                for (k, at) in rel {
                    head.insert(
                        k,
                        at.map(|a| Loc {
                            segment: seg,
                            data: base + a,
                        }),
                    );
                }
            }
            // Then the wanted contents: one write per run, reads merged while the sources
            // of consecutive blocks are consecutive too (as they are inside one record).
            for &(d, b0, n) in &runs {
                let t = &self.disks[d];
                let (start, end) = (b0 * BLOCK, ((b0 + n) * BLOCK).min(t.size));
                data.resize((end - start) as usize, 0);
                let source = |b: u64| match want.get(&(d, b)) {
                    Some(&s) => (true, s),
                    None => (false, head[&(d, b)]),
                };
                let mut b = b0;
                while b < b0 + n {
                    let (from_journal, src) = source(b);
                    let mut e = b + 1;
                    while e < b0 + n {
                        let (j2, s2) = source(e);
                        let follows = match (src, s2) {
                            (None, None) => true,
                            (Some(x), Some(y)) => {
                                x.segment == y.segment && y.data == x.data + (e - b) * BLOCK
                            }
                            _ => false,
                        };
                        if j2 != from_journal || !follows {
                            break;
                        }
                        e += 1;
                    }
                    let lo = ((b - b0) * BLOCK) as usize;
                    let hi = (((e - b0) * BLOCK) as usize).min(data.len());
                    let reader = if from_journal { &mut jr } else { &mut sr };
                    read_src(reader, src, &mut data[lo..hi])?;
                    b = e;
                }
                t.write_at(&data, start)?;
            }
            done += chunk.len() as u64;
            progress(done, total);
        }
        for t in &self.disks {
            t.sync()?;
        }
        write_session(
            &self.dir,
            &Session {
                at: Some(point.id),
                started,
                committing: false,
            },
        )?;
        tracing::info!(group = %self.name, point = point.id, "recovered; `mtkit commit` makes it the baseline");
        Ok(report)
    }

    /// Makes the point the group was recovered to the new baseline: drops the rest of the
    /// journal and the session, and lets writes in again.
    pub fn commit(&self) -> anyhow::Result<Point> {
        let session = self.session().ok_or_else(|| {
            crate::error::bad_input(format!(
                "group {} is not under recovery: nothing to commit",
                self.name
            ))
        })?;
        let Some(at) = session.at else {
            return Err(crate::error::bad_input(format!(
                "the last recover of group {} did not finish: run `mtkit recover` again first",
                self.name
            )));
        };
        // Say "committing" first: once the journal is rewritten the session's saved head
        // contents no longer match it, so a crash in between must finish the commit at the
        // next open (see `finish_interrupted_commit`), never allow another recover.
        write_session(
            &self.dir,
            &Session {
                committing: true,
                ..session
            },
        )?;
        let _quiet = Quiet::new(self);
        self.finish_commit(at)
    }

    /// Completes a commit that a crash interrupted (called when the group is opened).
    pub(crate) fn finish_interrupted_commit(&self) -> anyhow::Result<()> {
        match self.session() {
            Some(Session {
                at: Some(at),
                committing: true,
                ..
            }) => {
                tracing::warn!(group = %self.name, point = at, "finishing an interrupted commit");
                let _quiet = Quiet::new(self);
                self.finish_commit(at).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    fn finish_commit(&self, at: u64) -> anyhow::Result<Point> {
        let rec: PointRecord = {
            let st = self.lock();
            st.points
                .iter()
                .find(|p| p.seq == at)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("point {at} is missing from the journal"))?
        };
        let max_seq = self.lock().next_seq - 1;
        let mut buf = Vec::new();
        encode_point(&rec, &mut buf);
        let h = Header {
            kind: Kind::Commit,
            seq: max_seq,
            disk: 0,
            offset: 0,
            length: 0,
            time_us: now_us(),
            payload_len: 0,
            payload_crc: 0,
        };
        format::encode_parts(&h, &[], &mut buf);
        self.journal.lock().unwrap().restart_with(&buf, max_seq)?;
        std::fs::remove_dir_all(session_dir(&self.dir))?;
        let mut st = self.lock();
        st.points = vec![rec.clone()];
        st.initial_sync = false;
        st.recovering = false;
        st.first_dirty_us = None;
        drop(st);
        tracing::info!(group = %self.name, point = at, "committed: replication may resume");
        Ok(Point::from(&rec))
    }

    /// A read-only view of disk `disk` as it was at point `id`.
    pub fn view(self: &Arc<Self>, disk: usize, id: u64) -> anyhow::Result<PointView> {
        if !self.points().iter().any(|p| p.id == id) {
            anyhow::bail!("no recovery point {id} in group {}", self.name);
        }
        let index = Arc::new(ViewIndex {
            disk,
            map: Mutex::new(HashMap::new()),
        });
        let ids = self.disk_ids();
        let _quiet = Quiet::writes_only(self)?;
        let j = self.journal.lock().unwrap();
        let mut map = BlockMap::new();
        index_records(&j, id, &ids, &mut map)?;
        *index.map.lock().unwrap() = map
            .into_iter()
            .filter(|((d, _), _)| *d == disk)
            .map(|((_, b), s)| (b, s))
            .collect();
        self.add_view(&index);
        Ok(PointView {
            reader: Mutex::new(PayloadReader::new(j.dir())),
            group: self.clone(),
            disk,
            index,
        })
    }
}

/// Holds a group's leader role for a recovery (writes refused and drained).
struct Quiet<'a> {
    group: &'a Group,
    keep_recovering: bool,
}

impl<'a> Quiet<'a> {
    fn new(group: &'a Group) -> Quiet<'a> {
        let mut st = group.quiesce();
        st.set_leader(true);
        Quiet {
            group,
            keep_recovering: true,
        }
    }

    /// Only pauses the journal (for building a view index); refused during recovery.
    fn writes_only(group: &'a Group) -> anyhow::Result<Quiet<'a>> {
        let mut st = group.lock();
        if st.recovering {
            anyhow::bail!("group {} is being recovered", group.name);
        }
        while st.is_leader() {
            st = group.wait(st);
        }
        st.set_leader(true);
        Ok(Quiet {
            group,
            keep_recovering: false,
        })
    }
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        let mut st = self.group.lock();
        st.set_leader(false);
        let _ = self.keep_recovering;
        self.group.notify();
    }
}

/// A disk as it was at a point, read-only, without touching the target (test failover).
pub struct PointView {
    group: Arc<Group>,
    disk: usize,
    index: Arc<ViewIndex>,
    reader: Mutex<PayloadReader>,
}

impl Export for PointView {
    fn size(&self) -> u64 {
        self.group.disks[self.disk].size
    }

    fn read_only(&self) -> bool {
        true
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let t = &self.group.disks[self.disk];
        // Target first, index second: a write racing with this read registers its undo in
        // the index before it touches the target, so the index then overrides what we read.
        t.read_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        let map = self.index.map.lock().unwrap();
        let mut reader = self.reader.lock().unwrap();
        let mut b = offset / BLOCK;
        while b * BLOCK < end {
            if let Some(&src) = map.get(&b) {
                let (bs, be) = (b * BLOCK, ((b + 1) * BLOCK).min(t.size));
                let (s, e) = (bs.max(offset), be.min(end));
                let out = &mut buf[(s - offset) as usize..(e - offset) as usize];
                let src = src.map(|l| Loc {
                    segment: l.segment,
                    data: l.data + (s - bs),
                });
                read_src(&mut reader, src, out)?;
            }
            b += 1;
        }
        Ok(())
    }

    fn write_at(&self, _: &[u8], _: u64, _: bool) -> io::Result<()> {
        Err(read_only())
    }

    fn write_zeroes(&self, _: u64, _: u64, _: bool, _: bool) -> io::Result<()> {
        Err(read_only())
    }

    fn trim(&self, _: u64, _: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "a point view is read-only")
}
