//! Crash safety while the journal is pruned: 1M segments and a 3 s retention window make
//! the service drop points and segments all through a write load with flushes and
//! bookmarks; it is SIGKILLed at random moments, and half the rounds right after it
//! removed a segment of a prune (the test hook pauses there, so the kill lands between
//! removals); then restarted and checked: every write acknowledged before a completed
//! FLUSH is on the target, every listed point reads back bit-exactly through its
//! `<disk>@<point>` view, and no point older than the window (bar the newest) is listed.
//! The same rounds run on a full 5 MiB tmpfs journal-dir (root), where the service drops
//! segments for space. MTKIT_CRASH_ROUNDS sets the rounds, MTKIT_CRASH_SEED replays a
//! workload (see tests/support/crash.rs).

mod support;

use support::crash;

use rand::{RngExt, rngs::StdRng, seq::SliceRandom};
use std::time::{Duration, Instant};
use support::crash::{Load, Model, Shape, same};
use support::writer_env::{Env, point_ids};

/// Big blocks so that undo records fill 1M segments within a few points.
const SHAPE: Shape = Shape {
    group: "p",
    disks: &["p-d0", "p-d1"],
    bs: 64 << 10,
    blocks: 16,
};
const PRUNED: &str = "pruned points past the retention window";
/// `[policy] retention`, and how late past it a point may still be listed: one policy
/// pass period (1 s for this window) plus scheduling slack.
const RETENTION: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_millis(2500);

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

struct Figures {
    checked: usize,
    kills_at_step: usize,
    max_listed: usize,
}

/// `[writer]` keys of both tests: small segments, each written ahead from the first append
/// (`journal-write-ahead = "always"`), so that kills and a full volume meet spares being
/// written, put in place and dropped for room.
const WRITER: &str = "journal-segment-size = \"1M\"\njournal-write-ahead = \"always\"\n";

/// SIGKILL rounds under load; in half of them the service pauses after each step named
/// `step` (test hook) and is killed in the first such pause. After each, the target and
/// every listed point are checked (and the retention window when `window`).
fn crash_rounds(
    env: &Env,
    m: &mut Model,
    rng: &mut StdRng,
    rounds: usize,
    step: &str,
    window: bool,
) -> Figures {
    let (mut checked, mut step_kills, mut max_listed) = (0, 0, 0);
    let pause = format!("{step}:20");
    let marker = format!("{}{step}", crash::PAUSED);
    let log = env.path("service.log");
    let load = Load {
        write_pct: 88,
        flush_pct: 10,
        // A steady pace: enough points per second to prune, few enough to check.
        pace: Duration::from_millis(3),
        listed: &|m, ids| {
            if window {
                check_window(m, ids, "under load")
            }
        },
    };
    for round in 0..rounds {
        let at_step = round % 2 == 1;
        let svc = if at_step {
            env.start_with(&[("MTKIT_TEST_PAUSE", &pause)])
        } else {
            env.start()
        };
        let pid = svc.child.id();
        let delay = Duration::from_millis(rng.random_range(300..2500));
        let before = crash::count_in(&log, &marker);
        let killed_at_step = std::thread::scope(|s| {
            let killer = s.spawn(|| {
                // In a pause after the step (or give up after 6 s), else after `delay`.
                let seen = at_step
                    && crash::wait_for(&log, &marker, before, Duration::from_secs(6), || false);
                if !at_step {
                    std::thread::sleep(delay);
                }
                crash::kill(pid);
                seen
            });
            crash::load(env, &SHAPE, m, rng, &load);
            killer.join().unwrap()
        });
        step_kills += killed_at_step as usize;
        drop(svc);
        m.check_and_settle(&SHAPE.files(env), round);

        // Restart: the listed points are known, within the window, and read back exactly.
        let _svc = env.start();
        let ids = point_ids(&env.control(), "p");
        max_listed = max_listed.max(ids.len());
        assert!(!ids.is_empty(), "round {round}: no point left");
        m.adopt_listed(&ids, true, round);
        if window {
            check_window(m, &ids, &format!("round {round}, after the restart"));
        }
        let mut to: Vec<u64> = ids[1..].to_vec();
        to.shuffle(rng);
        to.truncate(3);
        to.push(ids[0]);
        for id in to {
            let got = SHAPE.exports(env, &format!("@{id}"));
            assert!(
                same(&got, &m.points[&id].0),
                "round {round}: point {id} reads {got:?}, want {:?}; listed {ids:?}",
                m.points[&id].0
            );
            checked += 1;
        }
    }
    Figures {
        checked,
        kills_at_step: step_kills,
        max_listed,
    }
}

#[test]
fn sigkill_while_pruning_keeps_flushed_writes_and_only_whole_points() {
    let rounds = crash::rounds(8);
    let mut rng = crash::rng("prune crash test");
    let size = (SHAPE.bs * SHAPE.blocks) as u64;
    let env = Env::with_writer(
        &[(SHAPE.disks[0], "p", size), (SHAPE.disks[1], "p", size)],
        &format!(
            "{WRITER}\n[policy]\nretention = \"3s\"\n\
             app-consistent-interval = \"3s\"\nrpo-threshold = \"3s\"\n"
        ),
    );
    let mut m = Model::new(&SHAPE);
    crash::baseline(&env, &SHAPE, &mut m);
    let f = crash_rounds(
        &env,
        &mut m,
        &mut rng,
        rounds,
        "prune: journal segment removed",
        true,
    );
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
    let got = SHAPE.exports(&env, &format!("@{newest}"));
    assert!(
        same(&got, &m.points[&newest].0),
        "point {newest} differs after the restart"
    );

    // Pruning freed whole segments: what is left is about one window of 1M segments, far
    // less than the undo data written (up to a 64K block per write: counter / 16 MiB).
    let segments = std::fs::read_dir(env.path("journal/p/journal"))
        .unwrap()
        .count();
    let log = env.log();
    eprintln!(
        "prune crash test: {rounds} rounds, {} writes, {} point views checked, \
         {} prunes logged, {} kills between a prune's segment removals, at most {} points listed, {segments} segments left, {} torn tails cut",
        m.counter,
        f.checked,
        log.matches(PRUNED).count(),
        f.kills_at_step,
        f.max_listed,
        log.matches("cutting a torn tail").count()
    );
    assert!(log.contains(PRUNED), "nothing was pruned: {log}");
    assert!(
        (segments as u64) * 2 < m.counter / 16 + 16,
        "{segments} segments left after {} writes: pruning freed little",
        m.counter
    );
    assert!(
        m.counter > (SHAPE.blocks * 2 + rounds) as u64,
        "the load hardly ran"
    );
    assert!(
        f.kills_at_step > 0 || rounds < 2,
        "no kill landed between a prune's segment removals"
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
    require!(support::is_root(), "mounting a small tmpfs needs root");
    let rounds = crash::rounds(6);
    let mut rng = crash::rng("full-volume crash test");
    let size = (SHAPE.bs * SHAPE.blocks) as u64;
    // The default 24 h window: only the full volume prunes here.
    let env = Env::with_writer(
        &[(SHAPE.disks[0], "p", size), (SHAPE.disks[1], "p", size)],
        WRITER,
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
    let mut m = Model::new(&SHAPE);
    crash::baseline(&env, &SHAPE, &mut m);
    let f = crash_rounds(
        &env,
        &mut m,
        &mut rng,
        rounds,
        "volume full: journal segment removed",
        false,
    );
    let log = env.log();
    eprintln!(
        "full-volume crash test: {rounds} rounds, {} writes, {} point views checked, \
         {} segments dropped for space, {} kills right after one, at most {} points listed, \
         {} spares put in place, {} dropped for room",
        m.counter,
        f.checked,
        log.matches(FULL).count(),
        f.kills_at_step,
        f.max_listed,
        log.matches("segment written ahead put in place").count(),
        log.matches("dropped the journal segment written ahead")
            .count(),
    );
    assert!(log.contains(FULL), "the volume never filled: {log}");
    assert!(
        !log.contains("no journal history left to drop"),
        "all history was dropped: {log}"
    );
}
