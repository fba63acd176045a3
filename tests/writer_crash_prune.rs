//! Crash safety while the journal is pruned: 1M segments and a 3 s retention window make
//! the service drop points and segments all through a write load with flushes and
//! bookmarks; it is SIGKILLed at random moments (half the rounds just after it logged a
//! prune), restarted and checked: every write acknowledged before a completed FLUSH is on
//! the target, every listed point reads back bit-exactly through its `<disk>@<point>` view,
//! and no point older than the window (bar the newest) is listed. The same rounds run on a
//! full 5 MiB tmpfs journal-dir (root), where the service drops segments for space.
//! MTKIT_CRASH_ROUNDS sets the rounds.

mod common;
#[path = "writer/env.rs"]
mod env;

use env::{Env, Nbd, control, point_ids};
use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Big blocks so that undo records fill 1M segments within a few points.
const BS: usize = 64 << 10;
const BLOCKS: usize = 16;
const DISKS: [&str; 2] = ["p-d0", "p-d1"];
const PRUNED: &str = "pruned points past the retention window";
/// `[policy] retention`, and how late past it a point may still be listed: one policy
/// pass period (1 s for this window) plus scheduling slack.
const RETENTION: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_millis(2500);

/// Every block holds one value: its write's counter repeated (0: zeros), so an image is
/// one u64 per block and a point's expected contents are cheap to keep.
type Images = Vec<Vec<u64>>;

fn encode(v: u64) -> Vec<u8> {
    v.to_le_bytes().repeat(BS / 8)
}

/// The value a block holds, or None for bytes no write put there.
fn decode(block: &[u8]) -> Option<u64> {
    let v = u64::from_le_bytes(block[..8].try_into().unwrap());
    (block == encode(v).as_slice()).then_some(v)
}

fn images_of(read: impl Fn(usize) -> Vec<u8>) -> Vec<Vec<Option<u64>>> {
    (0..DISKS.len())
        .map(|d| read(d).chunks(BS).map(decode).collect())
        .collect()
}

#[derive(Default)]
struct Model {
    acked: Images,
    /// Per (disk, block): values written since the last completed flush (any may stick).
    maybe: HashMap<(usize, usize), Vec<u64>>,
    durable: Images,
    /// Expected contents of every point, and when its FLUSH/bookmark was sent.
    points: HashMap<u64, (Images, Instant)>,
    /// A flush or bookmark in flight when the service died: its point may exist.
    pending: Option<(Images, Instant)>,
}

fn listed(env: &Env) -> Result<Vec<u64>, String> {
    let v = control(&env.control(), r#"{"cmd":"points","group":"p"}"#)?;
    Ok(v[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect())
}

/// No point but the newest is listed past the window (and its policy pass).
fn check_window(m: &Model, ids: &[u64], when: &str) {
    let now = Instant::now();
    for id in &ids[..ids.len().saturating_sub(1)] {
        if let Some((_, sent)) = m.points.get(id) {
            let age = now - *sent;
            assert!(
                age < RETENTION + GRACE,
                "{when}: point {id} of {age:?} ago is still listed (retention 3s); listed {ids:?}"
            );
        }
    }
}

/// Writes, flushes and bookmarks until the service dies under it.
fn load(env: &Env, m: &mut Model, rng: &mut StdRng, counter: &mut u64) {
    let Ok(mut conns) = DISKS
        .iter()
        .map(|d| Nbd::connect(env.port, d))
        .collect::<std::io::Result<Vec<_>>>()
    else {
        return;
    };
    loop {
        let r = rng.random_range(0..100);
        if r < 88 {
            let d = rng.random_range(0..DISKS.len());
            let b = rng.random_range(0..BLOCKS);
            *counter += 1;
            m.maybe.entry((d, b)).or_default().push(*counter);
            if conns[d].write((b * BS) as u64, &encode(*counter)).is_err() {
                return;
            }
            m.acked[d][b] = *counter;
        } else if r < 98 {
            m.pending = Some((m.acked.clone(), Instant::now()));
            let d = rng.random_range(0..DISKS.len());
            if conns[d].flush().is_err() {
                return;
            }
            m.durable = m.acked.clone();
            m.maybe.clear();
            let Ok(ids) = listed(env) else { return };
            let p = m.pending.take().unwrap();
            if let Some(id) = ids.last() {
                m.points.entry(*id).or_insert(p);
            }
            check_window(m, &ids, "under load");
        } else {
            m.pending = Some((m.acked.clone(), Instant::now()));
            let Ok(v) = control(
                &env.control(),
                r#"{"cmd":"bookmark","group":"p","label":"b"}"#,
            ) else {
                return;
            };
            m.durable = m.acked.clone();
            m.maybe.clear();
            let p = m.pending.take().unwrap();
            m.points.insert(v["id"].as_u64().unwrap(), p);
        }
        // A steady pace: enough points per second to prune, few enough to check.
        std::thread::sleep(Duration::from_millis(3));
    }
}

fn read_export(env: &Env, export: &str) -> Vec<u8> {
    let mut c = Nbd::connect(env.port, export).unwrap_or_else(|e| panic!("{export}: {e}"));
    let mut buf = vec![0u8; BS * BLOCKS];
    c.read(0, &mut buf).unwrap();
    buf
}

fn rounds(default: usize) -> usize {
    std::env::var("MTKIT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Every block written, then the first bookmark (undo records need data to save).
fn baseline(env: &Env, m: &mut Model, counter: &mut u64) {
    let zero = vec![vec![0u64; BLOCKS]; DISKS.len()];
    *m = Model {
        acked: zero.clone(),
        durable: zero,
        ..Model::default()
    };
    {
        let _svc = env.start();
        let mut conns: Vec<_> = DISKS
            .iter()
            .map(|d| Nbd::connect(env.port, d).unwrap())
            .collect();
        for (d, c) in conns.iter_mut().enumerate() {
            for b in 0..BLOCKS {
                *counter += 1;
                c.write((b * BS) as u64, &encode(*counter)).unwrap();
                m.acked[d][b] = *counter;
            }
            c.flush().unwrap();
        }
        let v = control(
            &env.control(),
            r#"{"cmd":"bookmark","group":"p","label":"base"}"#,
        )
        .unwrap();
        m.durable = m.acked.clone();
        m.points
            .insert(v["id"].as_u64().unwrap(), (m.acked.clone(), Instant::now()));
    }
}

struct Figures {
    checked: usize,
    kills_at_marker: usize,
    max_listed: usize,
}

/// SIGKILL rounds under load, half of them as soon as the log shows `marker` anew; after
/// each, the target and every listed point are checked (and the retention window when
/// `window`).
fn crash_rounds(
    env: &Env,
    m: &mut Model,
    rng: &mut StdRng,
    counter: &mut u64,
    rounds: usize,
    marker: &str,
    window: bool,
) -> Figures {
    let (mut checked, mut prune_kills, mut max_listed) = (0, 0, 0);
    for round in 0..rounds {
        let mut svc = env.start();
        let pid = svc.child.id() as i32;
        let after_prune = round % 2 == 1;
        let delay = Duration::from_millis(rng.random_range(300..2500));
        let pruned_before = env.log().matches(marker).count();
        let killed_at_prune = std::thread::scope(|s| {
            let killer = s.spawn(|| {
                let start = Instant::now();
                let mut seen = false;
                if after_prune {
                    // Kill as soon as the log shows a new prune (or give up after 6 s).
                    while start.elapsed() < Duration::from_secs(6) {
                        if env.log().matches(marker).count() > pruned_before {
                            seen = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                } else {
                    std::thread::sleep(delay);
                }
                // SAFETY: kill(2) on our own child's pid; no memory involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                seen
            });
            load(env, m, rng, counter);
            killer.join().unwrap()
        });
        prune_kills += killed_at_prune as usize;
        svc.kill();

        // Acknowledged-and-flushed data is there; anything else is a value written later.
        let now = images_of(|d| std::fs::read(env.disk(DISKS[d])).unwrap());
        for (d, img) in now.iter().enumerate() {
            for (b, got) in img.iter().enumerate() {
                let ok = *got == Some(m.durable[d][b])
                    || got.is_some_and(|v| m.maybe.get(&(d, b)).is_some_and(|vs| vs.contains(&v)));
                assert!(
                    ok,
                    "round {round}: disk {d} block {b} holds {got:?}, never written there after the last flush"
                );
            }
        }
        m.acked = m.durable.clone();
        for ((d, b), _) in m.maybe.drain() {
            m.acked[d][b] = now[d][b].unwrap();
        }
        m.durable = m.acked.clone();

        // Restart: the listed points are known, within the window, and read back exactly.
        let _svc = env.start();
        let ids = point_ids(&env.control(), "p");
        max_listed = max_listed.max(ids.len());
        assert!(!ids.is_empty(), "round {round}: no point left");
        for id in &ids {
            if !m.points.contains_key(id) {
                let p = m.pending.clone().unwrap_or_else(|| {
                    panic!("round {round}: unknown point {id} with no flush in flight")
                });
                m.points.insert(*id, p);
            }
        }
        m.pending = None;
        if window {
            check_window(m, &ids, &format!("round {round}, after the restart"));
        }
        let mut to: Vec<u64> = ids[1..].to_vec();
        to.shuffle(rng);
        to.truncate(3);
        to.push(ids[0]);
        for id in to {
            let got = images_of(|d| read_export(env, &format!("{}@{id}", DISKS[d])));
            let want = &m.points[&id].0;
            for d in 0..DISKS.len() {
                for b in 0..BLOCKS {
                    assert!(
                        got[d][b] == Some(want[d][b]),
                        "round {round}: point {id} disk {d} block {b}: {:?}, want {}; listed {ids:?}",
                        got[d][b],
                        want[d][b]
                    );
                }
            }
            checked += 1;
        }
    }
    Figures {
        checked,
        kills_at_marker: prune_kills,
        max_listed,
    }
}

#[test]
fn sigkill_while_pruning_keeps_flushed_writes_and_only_whole_points() {
    let rounds = rounds(8);
    let seed: u64 = rand::random();
    eprintln!("prune crash test: {rounds} rounds, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let size = (BS * BLOCKS) as u64;
    let env = Env::with_writer(
        &[(DISKS[0], "p", size), (DISKS[1], "p", size)],
        "journal-segment-size = \"1M\"\n\n[policy]\nretention = \"3s\"\n\
         app-consistent-interval = \"3s\"\nrpo-threshold = \"3s\"\n",
    );
    let mut m = Model::default();
    let mut counter = 0u64;
    baseline(&env, &mut m, &mut counter);
    let f = crash_rounds(&env, &mut m, &mut rng, &mut counter, rounds, PRUNED, true);
    let (checked, prune_kills, max_listed) = (f.checked, f.kills_at_marker, f.max_listed);
    // Down past the window: the restarted service lists only the newest point, although the
    // journal still holds older ones in the segment it kept for newer records.
    let newest = {
        let _svc = env.start();
        *point_ids(&env.control(), "p").last().unwrap()
    };
    std::thread::sleep(RETENTION + Duration::from_millis(500));
    let _svc = env.start();
    assert_eq!(
        point_ids(&env.control(), "p"),
        [newest],
        "after a stop past the window"
    );
    let got = images_of(|d| read_export(&env, &format!("{}@{newest}", DISKS[d])));
    let want: Vec<Vec<Option<u64>>> = m.points[&newest]
        .0
        .iter()
        .map(|img| img.iter().map(|v| Some(*v)).collect())
        .collect();
    assert!(got == want, "point {newest} differs after the restart");

    // Pruning freed whole segments: what is left is about one window of 1M segments, far
    // less than the undo data written (up to a 64K block per write: counter / 16 MiB).
    let segments = std::fs::read_dir(env.path("journal/p/journal"))
        .unwrap()
        .count();
    let log = env.log();
    eprintln!(
        "prune crash test: {rounds} rounds, {counter} writes, {checked} point views checked, \
         {} prunes logged, {prune_kills} kills right after a prune, at most {max_listed} points listed, {segments} segments left, {} torn tails cut",
        log.matches(PRUNED).count(),
        log.matches("cutting a torn tail").count()
    );
    assert!(log.contains(PRUNED), "nothing was pruned: {log}");
    assert!(
        (segments as u64) * 2 < counter / 16 + 16,
        "{segments} segments left after {counter} writes: pruning freed little"
    );
    assert!(
        counter > (BLOCKS * 2 + rounds) as u64,
        "the load hardly ran"
    );
}

const FULL: &str = "RETENTION VOLUME FULL: dropped the oldest journal segment";

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn sigkill_while_a_full_retention_volume_prunes_keeps_flushed_writes_and_whole_points() {
    require!(common::is_root(), "mounting a small tmpfs needs root");
    let rounds = rounds(6);
    let seed: u64 = rand::random();
    eprintln!("full-volume crash test: {rounds} rounds, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let size = (BS * BLOCKS) as u64;
    // The default 24 h window: only the full volume prunes here.
    let env = Env::with_writer(
        &[(DISKS[0], "p", size), (DISKS[1], "p", size)],
        "journal-segment-size = \"1M\"\n",
    );
    let vol = env.path("journal");
    std::fs::create_dir_all(&vol).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=5m", "mtkit-test-prune-full"])
        .arg(&vol)
        .status()
        .unwrap();
    require!(st.success(), "cannot mount tmpfs here");
    let _mount = Mount(vol);
    let mut m = Model::default();
    let mut counter = 0u64;
    baseline(&env, &mut m, &mut counter);
    let f = crash_rounds(&env, &mut m, &mut rng, &mut counter, rounds, FULL, false);
    let log = env.log();
    eprintln!(
        "full-volume crash test: {rounds} rounds, {counter} writes, {} point views checked, \
         {} segments dropped for space, {} kills right after one, at most {} points listed",
        f.checked,
        log.matches(FULL).count(),
        f.kills_at_marker,
        f.max_listed
    );
    assert!(log.contains(FULL), "the volume never filled: {log}");
    assert!(
        !log.contains("no journal history left to drop"),
        "all history was dropped: {log}"
    );
}
