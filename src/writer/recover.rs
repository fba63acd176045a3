//! Recovery: roll a group back (or forward again) to a point in place, commit it as the
//! new baseline, and read-only `<disk>@<point>` views for test failover.
//!
//! The contents of block `b` at point `Q` are those saved by the earliest undo record of
//! `b` with seq > Q, or, when no write touched `b` after Q, the contents the disks held
//! when recovery began ("head"). Before a recovery overwrites a block for the first time it
//! saves the head contents in the session log (`recover/saved-<session id>/`), so that any
//! point that existed before the first recover stays reachable until commit. The session
//! file names that log by its id: a log that no session file names (left by a crash while
//! an older build removed a committed session) is someone else's head, never used.

use super::Export;
use super::extents::{BlockSrc, Extents, Index};
use super::group::{Group, Point, ViewIndex, now_us};
use super::journal::BLOCK;
use super::journal::format::{self, Header, Record, Undo};
use super::journal::{Journal, Loc, PayloadReader};
use super::session::{
    Session, SessionError, new_session_id, read_session, remove_saved_logs, write_session,
};
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

/// Which point a recover goes to. On the control socket it is the text the CLI takes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PointSpec {
    Latest,
    LatestApp,
    /// The newest point at or before this time.
    Time(chrono::DateTime<chrono::Utc>),
    Id(u64),
}

/// Text that names no point (`--to`, or a request on the control socket).
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a point: use latest, latest-app, a point id (see `mtkit points`) or an RFC 3339 time such as 2026-11-27T10:00:00Z"
)]
pub struct BadPointSpec(String);

impl std::str::FromStr for PointSpec {
    type Err = BadPointSpec;
    fn from_str(s: &str) -> Result<Self, BadPointSpec> {
        match s {
            "latest" => Ok(PointSpec::Latest),
            "latest-app" => Ok(PointSpec::LatestApp),
            _ => {
                if let Ok(id) = s.parse::<u64>() {
                    return Ok(PointSpec::Id(id));
                }
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| PointSpec::Time(t.to_utc()))
                    .map_err(|_| BadPointSpec(s.to_string()))
            }
        }
    }
}

impl TryFrom<String> for PointSpec {
    type Error = BadPointSpec;
    fn try_from(s: String) -> Result<Self, BadPointSpec> {
        s.parse()
    }
}

impl From<PointSpec> for String {
    fn from(p: PointSpec) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for PointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointSpec::Latest => f.write_str("latest"),
            PointSpec::LatestApp => f.write_str("latest-app"),
            PointSpec::Time(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
            PointSpec::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A point spec that names none of the group's points.
#[derive(Debug, thiserror::Error)]
pub enum NoSuchPoint {
    #[error("no recovery point {0} (see `mtkit points`)")]
    Id(u64),
    #[error("no recovery point at or before {0}")]
    Time(chrono::DateTime<chrono::Utc>),
    #[error("no app-consistent recovery point")]
    App,
    #[error("no recovery point yet (the group is in initial sync)")]
    None,
}

/// Picks the point `spec` names among `points` (oldest first).
pub fn choose(points: &[Point], spec: &PointSpec) -> Result<Point, NoSuchPoint> {
    let found = match spec {
        PointSpec::Latest => points.last(),
        PointSpec::LatestApp => points
            .iter()
            .rev()
            .find(|p| p.kind == crate::writer::group::PointKind::App),
        PointSpec::Time(t) => points.iter().rev().find(|p| p.time <= *t),
        PointSpec::Id(id) => points.iter().find(|p| p.id == *id),
    };
    found.cloned().ok_or(match *spec {
        PointSpec::Id(id) => NoSuchPoint::Id(id),
        PointSpec::Time(t) => NoSuchPoint::Time(t),
        PointSpec::LatestApp => NoSuchPoint::App,
        PointSpec::Latest => NoSuchPoint::None,
    })
}

/// Refuses a point whose journal records are damaged (exit 1: nothing is wrong with the
/// request, the history is), naming the points that can still be recovered.
fn usable(group: &str, p: &Point) -> anyhow::Result<()> {
    match &p.lost {
        None => Ok(()),
        Some(why) => anyhow::bail!(
            "recovery point {} of group {group} cannot be recovered ({why}); nothing was changed; `mtkit points` shows which points can",
            p.id
        ),
    }
}

/// What a recover did (or, dry-run, would do).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecoverReport {
    pub group: String,
    pub point: Point,
    /// Blocks rewritten across the group's disks.
    pub blocks: u64,
    pub bytes: u64,
    pub dry_run: bool,
}

/// Adds the undo records with seq > `after` to `index`, oldest first (first save wins).
fn index_records(
    journal: &Journal,
    after: u64,
    ids: &HashMap<u32, usize>,
    index: &mut Index,
) -> anyhow::Result<()> {
    journal.scan_after(after, |h: &Header, loc: Loc| {
        if let Some(&disk) = ids.get(&h.disk) {
            index.add_undo(disk, h, loc);
        }
    })?;
    Ok(())
}

/// Blocks per recovery step (progress, and the batch of head contents saved at once).
const STEP: u64 = 4096;

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

    /// Checks the checksums of every journal record `index` takes contents from. A damaged
    /// one is noted (the points before it are lost from now on) and refuses the recover.
    fn verify_sources(
        &self,
        index: &Index,
        reader: &mut PayloadReader,
        point: &Point,
    ) -> anyhow::Result<()> {
        for loc in index.sources() {
            if let Err(e) = reader.verify(loc) {
                self.note_damage(&e);
                return Err(anyhow::Error::new(e).context(format!(
                    "recovery point {} of group {} cannot be recovered; nothing was changed",
                    point.id, self.name
                )));
            }
        }
        Ok(())
    }

    /// Where the group is, when it is under recovery (see [`read_session`]).
    pub fn session(&self) -> Result<Option<Session>, SessionError> {
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
        if self.session()?.is_some_and(|s| s.committing) {
            anyhow::bail!(
                "group {} is being committed: run `mtkit commit` to finish",
                self.name
            );
        }
        // A wrong point is refused before anything stops. Then writes stop (and pruning
        // keeps off) before the point is chosen for good and indexed; a failure before the
        // session is written lets writes in again (see `Group::quiesce`).
        usable(
            &self.name,
            &choose(&self.points(), spec).map_err(|e| crate::error::bad_input(e.to_string()))?,
        )?;
        let _quiet = (!dry_run).then(|| self.quiesce());
        // Again now that no other recover or commit runs: one may have begun meanwhile.
        if self.session()?.is_some_and(|s| s.committing) {
            anyhow::bail!(
                "group {} is being committed: run `mtkit commit` to finish",
                self.name
            );
        }
        let point =
            choose(&self.points(), spec).map_err(|e| crate::error::bad_input(e.to_string()))?;
        usable(&self.name, &point)?;
        let ids = self.disk_ids();
        let journal_dir;
        let mut want = Index::default();
        {
            // Locks unwrap: poisoned only by a panic mid-update, not a state to go on from.
            let j = self.journal();
            journal_dir = j.dir().to_path_buf();
            index_records(&j, point.id, &ids, &mut want)?;
        }
        // The head is this session's own log: a recover that begins a session starts with
        // none (a log no session file names is stale, removed below, never read).
        let session = self.session()?.unwrap_or_else(|| Session {
            at: None,
            started: chrono::Utc::now(),
            committing: false,
            id: new_session_id(),
        });
        let saved_dir = session.saved_dir(&self.dir);
        let mut head = Index::default();
        if saved_dir.exists() {
            let (s, scan) = Journal::open(&saved_dir, u64::MAX)?;
            // Head contents are needed for every point: damage there refuses them all.
            if let Some(d) = scan.damage.first() {
                anyhow::bail!(
                    "the contents saved by the last recover of group {} are damaged, so no point can be recovered exactly; nothing was changed: {}",
                    self.name,
                    d.reason
                );
            }
            index_records(&s, 0, &ids, &mut head)?;
        }
        let mut all: BTreeMap<usize, Extents> = BTreeMap::new();
        for (d, ext) in want.cover().chain(head.cover()) {
            for (s, e) in ext.iter() {
                all.entry(d).or_default().insert(s, e);
            }
        }
        let mut steps = Vec::new();
        let (mut blocks, mut bytes, mut unsaved) = (0u64, 0u64, 0u64);
        for (&d, ext) in &all {
            let last = self.disks[d].size().div_ceil(BLOCK);
            for (s, e) in ext.iter() {
                let e = e.min(last);
                let mut b = s;
                while b < e {
                    let n = (e - b).min(STEP);
                    steps.push((d, b, n));
                    b += n;
                }
                blocks += e.saturating_sub(s);
                bytes += (e * BLOCK)
                    .min(self.disks[d].size())
                    .saturating_sub(s * BLOCK);
                unsaved += head.gaps(d, s, e).iter().map(|(a, b)| b - a).sum::<u64>();
            }
        }
        // Every record the rollback will copy is verified before the first block changes.
        let mut jr = PayloadReader::new(&journal_dir);
        let mut sr = PayloadReader::new(&saved_dir);
        self.verify_sources(&want, &mut jr, &point)?;
        self.verify_sources(&head, &mut sr, &point)?;
        let report = RecoverReport {
            group: self.name.clone(),
            point: point.clone(),
            blocks,
            bytes,
            dry_run,
        };
        if dry_run {
            return Ok(report);
        }
        // The rollback saves what it overwrites on the retention volume: check the room
        // first, so that a full volume fails the recover before anything changes.
        let need = unsaved * (BLOCK + format::HEADER_LEN as u64) + (1 << 20);
        let free = nix::sys::statvfs::statvfs(&self.dir)
            .map(|v| v.blocks_available() * v.fragment_size())
            .with_context(|| format!("measuring free space of {}", self.dir.display()))?;
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
        tracing::info!(group = %self.name, point = point.id, blocks, "recovering");
        remove_saved_logs(&self.dir, Some(&saved_dir))?;
        let session = Session {
            at: None,
            ..session
        };
        write_session(&self.dir, &session)?;
        let (mut saved, _) = Journal::open(&saved_dir, u64::MAX)?;
        let mut done = 0u64;
        let mut data = Vec::new();
        for &(d, b0, n) in &steps {
            let t = &self.disks[d];
            let (start, end) = (b0 * BLOCK, ((b0 + n) * BLOCK).min(t.size()));
            // Head contents are synced to the session log before the disk is overwritten:
            // after a crash here, every point reachable before is reachable still.
            let gaps = head.gaps(d, b0, b0 + n);
            if !gaps.is_empty() {
                data.resize((end - start) as usize, 0);
                t.read_at(&mut data, start)
                    .with_context(|| format!("reading disk {}", t.path().display()))?;
                let undos: Vec<Record> = gaps
                    .iter()
                    .map(|&(gs, ge)| {
                        let lo = ((gs - b0) * BLOCK) as usize;
                        let hi = (((ge - b0) * BLOCK) as usize).min(data.len());
                        Record::Undo(Undo::of(1, t.id, gs * BLOCK, now_us(), &data[lo..hi]))
                    })
                    .collect();
                let len = undos.iter().map(Record::encoded_len).sum::<usize>();
                saved.prepare_append(len as u64)?;
                let locs = saved
                    .append(&undos, 1)
                    .and_then(|locs| saved.sync().map(|_| locs))
                    .with_context(|| format!("saving head contents in {}", saved_dir.display()))?;
                super::test_pause("recover: head contents saved");
                for ((gs, ge), (loc, undo)) in gaps.into_iter().zip(locs.into_iter().zip(&undos)) {
                    let has_data = matches!(undo, Record::Undo(Undo { data: Some(_), .. }));
                    head.add(d, gs, ge, has_data.then_some(loc));
                }
            }
            data.resize((end - start) as usize, 0);
            let mut b = b0;
            while b < b0 + n {
                let (e, src, reader, from) = match want.find(d, b) {
                    Some((e, src)) => (e, src, &mut jr, &journal_dir),
                    None => {
                        // Every step's gaps were saved into `head` just above.
                        let (e, src) = head.find(d, b).expect("head covers every step");
                        let e = want.next_start(d, b).map_or(e, |w| e.min(w));
                        (e, src, &mut sr, &saved_dir)
                    }
                };
                let e = e.min(b0 + n);
                let lo = ((b - b0) * BLOCK) as usize;
                let hi = (((e - b0) * BLOCK) as usize).min(data.len());
                read_src(reader, src, &mut data[lo..hi])
                    .with_context(|| format!("reading saved contents in {}", from.display()))?;
                b = e;
            }
            t.write_at(&data, start)
                .with_context(|| format!("writing disk {}", t.path().display()))?;
            super::test_pause("recover: step written");
            done += n;
            progress(done, blocks);
        }
        for t in &self.disks {
            t.sync()
                .with_context(|| format!("syncing disk {}", t.path().display()))?;
        }
        write_session(
            &self.dir,
            &Session {
                at: Some(point.id),
                ..session
            },
        )?;
        tracing::info!(group = %self.name, point = point.id, "recovered; `mtkit commit` makes it the baseline");
        Ok(report)
    }

    /// Makes the point the group was recovered to the new baseline: drops the rest of the
    /// journal and the session, and lets writes in again.
    pub fn commit(&self) -> anyhow::Result<Point> {
        let not_recovering = || {
            crate::error::bad_input(format!(
                "group {} is not under recovery: nothing to commit",
                self.name
            ))
        };
        self.session()?.ok_or_else(not_recovering)?;
        // Wait for a recover running now, then read where the disks are: a session read
        // before would name the point of the recover before it, and the commit would make
        // that the baseline of disks rolled elsewhere.
        let _quiet = self.quiesce();
        let session = self.session()?.ok_or_else(not_recovering)?;
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
        Ok(self.finish_commit(at)?)
    }

    /// A read-only view of disk `disk` as it was at point `id`.
    pub fn view(self: &Arc<Self>, disk: usize, id: u64) -> anyhow::Result<PointView> {
        let Some(point) = self.points().into_iter().find(|p| p.id == id) else {
            anyhow::bail!("no recovery point {id} in group {}", self.name);
        };
        usable(&self.name, &point)?;
        // Writes go on while the journal is indexed (see `open_view_index`).
        let view = self.open_view_index(disk, id)?;
        let dir = self.journal().dir().to_path_buf();
        Ok(PointView {
            reader: Mutex::new(PayloadReader::new(&dir)),
            group: self.clone(),
            disk,
            point: id,
            index: view,
        })
    }
}

/// A disk as it was at a point, read-only, without touching the target (test failover).
pub struct PointView {
    group: Arc<Group>,
    disk: usize,
    point: u64,
    index: Arc<ViewIndex>,
    reader: Mutex<PayloadReader>,
}

impl Export for PointView {
    fn size(&self) -> u64 {
        self.group.disks[self.disk].size()
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
        // Look the sources up under the index lock, read them after: the group's journal
        // leader adds to this index with the group locked, so no I/O may happen under it.
        let mut parts = Vec::new();
        {
            let index = self.index.index.lock().unwrap();
            let mut b = offset / BLOCK;
            while b * BLOCK < end {
                let Some((e, src)) = index.find(self.disk, b) else {
                    match index.next_start(self.disk, b) {
                        Some(next) => {
                            b = next;
                            continue;
                        }
                        None => break,
                    }
                };
                let (bs, be) = (b * BLOCK, (e * BLOCK).min(t.size()));
                let (s, x) = (bs.max(offset), be.min(end));
                if s < x {
                    let src = src.map(|l| Loc {
                        data: l.data + (s - bs),
                        ..l
                    });
                    parts.push(((s - offset) as usize..(x - offset) as usize, src));
                }
                b = e;
            }
        }
        // Journal records are never rewritten in place: a source looked up stays valid.
        let mut reader = self.reader.lock().unwrap();
        let read = parts.into_iter().try_for_each(|(range, src)| {
            if let Some(loc) = src
                && let Err(e) = reader.verify(loc)
            {
                self.group.note_damage(&e);
                return Err(e.into());
            }
            read_src(&mut reader, src, &mut buf[range])
        });
        drop(reader);
        // A segment pruned under the read is the point gone, said as such.
        self.still_valid()?;
        read
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

impl PointView {
    /// A view reads the target for blocks unchanged since its point: once a recover rolls
    /// the target (outside the journal) or a commit drops the point, that is no longer
    /// the point's contents. Checked after reading: a recover sets `recovering` before it
    /// changes anything, so a read that raced with one is refused here.
    fn still_valid(&self) -> io::Result<()> {
        self.group.check_view(self.point)
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "a point view is read-only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::group::DiskSpec;
    use crate::writer::group::testing::one_disk_group;
    use crate::writer::journaled::JournaledDisk;
    use crate::writer::session::session_exists;
    use std::path::{Path, PathBuf};

    /// Every file under `dir` with its contents: equal before and after = nothing changed.
    fn tree(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                tree(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }

    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        tree(dir, &mut out);
        out
    }

    /// A one-disk group rolled back to its baseline and left under recovery.
    fn recovered(root: &Path) -> (PathBuf, DiskSpec, Point) {
        let spec = DiskSpec {
            name: "d0".into(),
            path: root.join("d0.img"),
            size: Some(1 << 20),
        };
        let dir = root.join("journal/vm1");
        let g = Group::open("vm1", &dir, std::slice::from_ref(&spec), 1 << 20).unwrap();
        let d = JournaledDisk::new(g.clone(), 0);
        d.write_at(&[1; 4096], 0, false).unwrap();
        let base = g.point(true, "base").unwrap().unwrap();
        d.write_at(&[2; 4096], 0, false).unwrap();
        d.flush().unwrap();
        g.recover(&PointSpec::Id(base.id), false, &mut |_, _| {})
            .unwrap();
        assert_eq!(g.session().unwrap().unwrap().at, Some(base.id));
        (dir, spec, base)
    }

    #[test]
    fn point_specs_roundtrip_through_their_text() {
        for text in ["latest", "latest-app", "1234", "2026-11-27T10:00:00Z"] {
            let spec: PointSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<PointSpec>(&json).unwrap(), spec);
        }
        let t: PointSpec = "2026-11-27T12:00:00.5+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-27T10:00:00.500Z");
        assert!(serde_json::from_str::<PointSpec>("\"yesterday\"").is_err());
    }

    #[test]
    fn point_errors_read_as_they_always_did() {
        let bad = "yesterday".parse::<PointSpec>().unwrap_err().to_string();
        assert_eq!(
            bad,
            "\"yesterday\" is not a point: use latest, latest-app, a point id (see `mtkit points`) or an RFC 3339 time such as 2026-11-27T10:00:00Z"
        );
        let t = "2026-11-27T10:00:00Z".parse().unwrap();
        let cases = [
            (PointSpec::Id(7), "no recovery point 7 (see `mtkit points`)"),
            (
                PointSpec::Time(t),
                "no recovery point at or before 2026-11-27 10:00:00 UTC",
            ),
            (PointSpec::LatestApp, "no app-consistent recovery point"),
            (
                PointSpec::Latest,
                "no recovery point yet (the group is in initial sync)",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(choose(&[], &spec).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn no_session_file_is_no_session() {
        let t = tempfile::tempdir().unwrap();
        assert!(read_session(t.path()).unwrap().is_none());
        assert!(!session_exists(t.path()));
    }

    #[test]
    fn an_unusable_session_fails_the_open_and_changes_nothing() {
        type Spoil = fn(&Path);
        let cases: [(&str, Spoil); 3] = [
            ("garbage", |p| std::fs::write(p, b"\x00{not json").unwrap()),
            ("truncated", |p| {
                std::fs::write(p, br#"{"at":3,"started":"2026-11-27T10:00:00Z","comm"#).unwrap()
            }),
            // Present but unreadable (EISDIR): root reads through file modes.
            ("unreadable", |p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            }),
        ];
        for (case, spoil) in cases {
            let t = tempfile::tempdir().unwrap();
            let (dir, spec, _) = recovered(t.path());
            let state = dir.join("recover/state.json");
            spoil(&state);
            // A torn last batch too: an open that went on to the journal would cut it.
            let seg = std::fs::read_dir(dir.join("journal"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .max()
                .unwrap();
            let mut torn = std::fs::read(&seg).unwrap();
            torn.extend_from_slice(&[0x4d; 100]);
            std::fs::write(&seg, &torn).unwrap();
            let before = snapshot(t.path());
            let err = match Group::open("vm1", &dir, std::slice::from_ref(&spec), 1 << 20) {
                Ok(_) => panic!("{case}: the group opened on an unusable session"),
                Err(e) => format!("{:#}", anyhow::Error::new(e)),
            };
            assert!(
                err.contains(&state.display().to_string()) && err.contains("retry"),
                "{case}: {err}"
            );
            assert!(
                snapshot(t.path()) == before,
                "{case}: the failed open changed files"
            );
        }
    }

    #[test]
    fn a_session_spoiled_while_open_fails_commit_and_recover_not_as_absent() {
        let t = tempfile::tempdir().unwrap();
        let (dir, spec, base) = recovered(t.path());
        let g = Group::open("vm1", &dir, std::slice::from_ref(&spec), 1 << 20).unwrap();
        assert!(g.is_recovering());
        let state = dir.join("recover/state.json");
        std::fs::write(&state, b"garbage").unwrap();
        let before = snapshot(t.path());
        let err = g.commit().unwrap_err();
        // Not "nothing to commit" (a user mistake, exit 2): the file is named instead.
        assert_eq!(crate::error::exit_code(&err), 1, "{err:#}");
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        let err = g
            .recover(&PointSpec::Id(base.id), false, &mut |_, _| {})
            .unwrap_err();
        assert!(
            format!("{err:#}").contains(&state.display().to_string()),
            "{err:#}"
        );
        assert!(
            snapshot(t.path()) == before,
            "a refused commit changed files"
        );
        assert!(g.is_recovering(), "the group stays closed");
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }

    fn log_folders(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("recover"))
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("saved"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_log_that_no_session_names_is_removed_and_never_read_as_head() {
        let t = tempfile::tempdir().unwrap();
        let spec = DiskSpec {
            name: "d0".into(),
            path: t.path().join("d0.img"),
            size: Some(1 << 20),
        };
        let dir = t.path().join("journal/vm1");
        let g = Group::open("vm1", &dir, std::slice::from_ref(&spec), 1 << 20).unwrap();
        let d = JournaledDisk::new(g.clone(), 0);
        d.write_at(&[1; 4 * 4096], 0, false).unwrap();
        let base = g.point(true, "base").unwrap().unwrap();
        d.write_at(&[2; 4 * 4096], 0, false).unwrap();
        d.flush().unwrap();
        // Recovered to the base: the session's log holds blocks 0-3 as 2s (their head).
        g.recover(&PointSpec::Id(base.id), false, &mut |_, _| {})
            .unwrap();
        let logs = log_folders(&dir);
        assert_eq!(logs.len(), 1, "{logs:?}");
        let stale = t.path().join("stale");
        copy_dir(&dir.join("recover").join(&logs[0]), &stale);
        g.commit().unwrap();
        assert!(!dir.join("recover").exists(), "commit leaves no session");
        // What a crash in the removal left under the old order (remove_dir_all unlinked
        // state.json first): the log without its session, under this build's name and the
        // older builds' one.
        copy_dir(&stale, &dir.join("recover").join(&logs[0]));
        copy_dir(&stale, &dir.join("recover/saved"));
        d.write_at(&[3; 4096], 5 * 4096, false).unwrap();
        let p2 = g.point(false, "").unwrap().unwrap();
        d.write_at(&[4; 4096], 0, false).unwrap();
        d.flush().unwrap();
        g.recover(&PointSpec::Id(p2.id), false, &mut |_, _| {})
            .unwrap();
        let mut disk = vec![0u8; 6 * 4096];
        d.read_at(&mut disk, 0).unwrap();
        for (b, want) in [1, 1, 1, 1, 0, 3].into_iter().enumerate() {
            assert!(
                disk[b * 4096..(b + 1) * 4096].iter().all(|&x| x == want),
                "block {b} holds {}, point {} had {want}: a stale log was read as head",
                disk[b * 4096],
                p2.id
            );
        }
        let id = g.session().unwrap().unwrap().id;
        assert_eq!(
            log_folders(&dir),
            [format!("saved-{id}")],
            "stale logs removed"
        );
        assert_ne!(format!("saved-{id}"), logs[0], "a new session has a new id");
        g.commit().unwrap();
    }

    #[test]
    fn a_view_whose_point_is_pruned_says_so_when_opening_and_reading() {
        use crate::config::Policy;
        let t = tempfile::tempdir().unwrap();
        let (g, d) = one_disk_group(t.path(), 1 << 20, 16 << 10);
        d.write_at(&[0xaa; 1 << 18], 0, false).unwrap();
        let base = g.point(true, "base").unwrap().unwrap();
        for i in 0..20u8 {
            d.write_at(&[i + 1; 8192], u64::from(i) * 8192, false)
                .unwrap();
            d.flush().unwrap();
        }
        let later = now_us() + 25 * 3600 * 1_000_000;
        // Opened, then pruned before its first read: the segments it needs are gone.
        let view = g.view(0, base.id).unwrap();
        assert!(crate::writer::policy::prune(&g, &Policy::default(), later) > 0);
        let mut b = vec![0u8; 4096];
        let err = view.read_at(&mut b, 0).unwrap_err().to_string();
        assert!(
            err.contains(&format!("recovery point {} of group g was pruned", base.id)),
            "{err}"
        );
        // Pruned while the view opens: after the segment list is taken, before the scan.
        for i in 0..20u8 {
            d.write_at(&[i + 0x40; 8192], u64::from(i) * 8192, false)
                .unwrap();
            d.flush().unwrap();
        }
        let first = g.points()[0].id;
        let err = match g.open_view_index_with(0, first, || {
            crate::writer::policy::prune(&g, &Policy::default(), later + 3600 * 1_000_000);
        }) {
            Ok(_) => panic!("a view of pruned point {first} opened"),
            Err(e) => e,
        };
        assert!(
            matches!(err, crate::writer::group::GroupError::PointGone(_)),
            "{err:?}"
        );
        assert!(err.to_string().contains("was pruned"), "{err}");
    }
}
