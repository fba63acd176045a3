//! Crash safety: the service is SIGKILLed at random moments under a write load, restarted,
//! and checked: every write acknowledged before a completed FLUSH is on the target, and
//! every recovery point still recovers bit-exactly. MTKIT_CRASH_ROUNDS sets the rounds,
//! MTKIT_CRASH_SEED replays a workload (see tests/support/crash.rs).

mod support;

use support::crash;

use rand::{RngExt, seq::SliceRandom};
use std::time::Duration;
use support::crash::{Load, Model, Shape, same};
use support::writer_env::{Env, Nbd, control, point_ids};

const SHAPE: Shape = Shape {
    group: "c",
    disks: &["c-d0", "c-d1"],
    bs: 4096,
    blocks: 64,
};

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_and_points_recover() {
    let size = (SHAPE.bs * SHAPE.blocks) as u64;
    let env = Env::new(&[(SHAPE.disks[0], "c", size), (SHAPE.disks[1], "c", size)]);
    crash_rounds(&env, crash::rounds(24), "crash test");
}

/// The same kills with the journal's segments written ahead from the first append
/// (`journal-write-ahead = "always"`) and small segments, so that kills land while a
/// spare is written, right after one is put in place and in appends into its zeros.
#[test]
fn sigkill_with_segments_written_ahead_loses_nothing_and_points_recover() {
    let size = (SHAPE.bs * SHAPE.blocks) as u64;
    let env = Env::with_writer(
        &[(SHAPE.disks[0], "c", size), (SHAPE.disks[1], "c", size)],
        "journal-segment-size = \"1M\"\njournal-write-ahead = \"always\"\n",
    );
    crash_rounds(
        &env,
        crash::rounds(24),
        "crash test, segments written ahead",
    );
    let installed = env.log().matches(WRITTEN_AHEAD).count();
    eprintln!("crash test, segments written ahead: {installed} spares put in place");
    assert!(installed > 0, "no segment was written ahead: {}", env.log());
}

/// What the service logs when it puts a segment written ahead in place.
const WRITTEN_AHEAD: &str = "segment written ahead put in place";

fn crash_rounds(env: &Env, rounds: usize, label: &str) {
    let mut rng = crash::rng(label);
    let mut m = Model::new(&SHAPE);
    crash::baseline(env, &SHAPE, &mut m);
    let load = Load {
        write_pct: 85,
        flush_pct: 12,
        pace: Duration::ZERO,
        listed: &|_, _| {},
    };
    let mut checked_points = 0;
    for round in 0..rounds {
        let svc = env.start();
        let pid = svc.child.id();
        let delay = Duration::from_millis(rng.random_range(1..80));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            crash::kill(pid);
        });
        crash::load(env, &SHAPE, &mut m, &mut rng, &load);
        killer.join().unwrap();
        drop(svc);
        m.check_and_settle(&SHAPE.files(env), round);

        // Restart: every known point is listed and recovers bit-exactly.
        let _svc = env.start();
        let ids = point_ids(&env.control(), "c");
        m.adopt_listed(&ids, false, round);
        let mut to: Vec<u64> = ids.clone();
        to.shuffle(&mut rng);
        to.truncate(2);
        to.push(*ids.last().unwrap());
        for id in to {
            recover_in(env, "c", id);
            assert!(
                same(&SHAPE.files(env), &m.points[&id].0),
                "round {round}: point {id} differs"
            );
            checked_points += 1;
        }
        control(&env.control(), r#"{"cmd":"commit","group":"c"}"#).unwrap();
        m.committed(*ids.last().unwrap());
    }
    eprintln!(
        "{label}: {rounds} rounds, {} writes sent, {checked_points} point recoveries checked, {} torn tails cut",
        m.counter,
        env.log().matches("cutting a torn tail").count()
    );
    assert!(
        m.counter > (SHAPE.blocks * 2 + rounds) as u64,
        "the load hardly ran: {} writes",
        m.counter
    );
}

#[test]
fn a_torn_journal_tail_is_cut_at_start_and_points_survive() {
    let env = Env::new(&[("t-d0", "t", 1 << 20)]);
    let snap = |env: &Env| std::fs::read(env.disk("t-d0")).unwrap();
    let (ids, want) = {
        let _svc = env.start();
        let mut c = Nbd::connect(env.port, "t-d0").unwrap();
        c.write(0, &[7; 65536]).unwrap();
        control(
            &env.control(),
            r#"{"cmd":"bookmark","group":"t","label":"base"}"#,
        )
        .unwrap();
        c.write(4096, &[8; 8192]).unwrap();
        c.flush().unwrap();
        (point_ids(&env.control(), "t"), snap(&env))
    };
    assert_eq!(ids.len(), 2);
    // A torn append: half a record header and some payload after the last good record.
    let dir = env.path("journal/t/journal");
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let good = std::fs::metadata(last).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut f, b"MTJR\x01\x01garbage-from-a-torn-write").unwrap();
    drop(f);
    let _svc = env.start();
    assert!(env.log().contains("cutting a torn tail"), "{}", env.log());
    assert_eq!(std::fs::metadata(last).unwrap().len(), good);
    assert_eq!(point_ids(&env.control(), "t"), ids);
    let mut c = Nbd::connect(env.port, "t-d0").unwrap();
    c.write(0, &[9; 4096]).unwrap();
    c.flush().unwrap();
    recover_in(&env, "t", ids[1]);
    assert!(snap(&env) == want);
}

fn recover_in(env: &Env, group: &str, id: u64) {
    control(
        &env.control(),
        &format!(r#"{{"cmd":"recover","group":"{group}","to":"{id}","dry_run":false}}"#),
    )
    .unwrap_or_else(|e| panic!("recover to {id}: {e}"));
}
