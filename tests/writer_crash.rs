//! Crash safety: the service is SIGKILLed at random moments under a write load, restarted,
//! and checked: every write acknowledged before a completed FLUSH is on the target, and
//! every recovery point still recovers bit-exactly. MTKIT_CRASH_ROUNDS sets the rounds.

mod common;
#[path = "writer/env.rs"]
mod env;

use env::{Env, Nbd, control, point_ids};
use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use std::collections::HashMap;
use std::time::Duration;

const BS: usize = 4096;
const BLOCKS: usize = 64;
const DISKS: [&str; 2] = ["c-d0", "c-d1"];

type Images = Vec<Vec<u8>>;

/// What the client knows: contents acknowledged, what a crash may leave per block, and the
/// expected contents of every point.
struct Model {
    acked: Images,
    /// Per (disk, block): values written since the last acknowledged flush (any may stick).
    maybe: HashMap<(usize, usize), Vec<Vec<u8>>>,
    /// As of the last completed flush.
    durable: Images,
    points: HashMap<u64, Images>,
    /// A flush or bookmark in flight when the service died: its point may exist.
    pending: Option<Images>,
}

fn block(img: &[u8], b: usize) -> &[u8] {
    &img[b * BS..(b + 1) * BS]
}

fn files(env: &Env) -> Images {
    DISKS
        .iter()
        .map(|d| std::fs::read(env.disk(d)).unwrap())
        .collect()
}

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
        if r < 85 {
            let d = rng.random_range(0..DISKS.len());
            let b = rng.random_range(0..BLOCKS);
            *counter += 1;
            let data: Vec<u8> = counter.to_le_bytes().repeat(BS / 8);
            m.maybe.entry((d, b)).or_default().push(data.clone());
            if conns[d].write((b * BS) as u64, &data).is_err() {
                return;
            }
            m.acked[d][b * BS..(b + 1) * BS].copy_from_slice(&data);
        } else if r < 97 {
            m.pending = Some(m.acked.clone());
            let d = rng.random_range(0..DISKS.len());
            if conns[d].flush().is_err() {
                return;
            }
            m.durable = m.acked.clone();
            m.maybe.clear();
            let Ok(id) = newest_point(env) else { return };
            if let Some(id) = id {
                m.points.entry(id).or_insert_with(|| m.acked.clone());
            }
            m.pending = None;
        } else {
            m.pending = Some(m.acked.clone());
            let Ok(p) = control(
                &env.control(),
                r#"{"cmd":"bookmark","group":"c","label":"b"}"#,
            ) else {
                return;
            };
            m.durable = m.acked.clone();
            m.maybe.clear();
            m.points.insert(p["id"].as_u64().unwrap(), m.acked.clone());
            m.pending = None;
        }
    }
}

fn newest_point(env: &Env) -> Result<Option<u64>, String> {
    let v = control(&env.control(), r#"{"cmd":"points","group":"c"}"#)?;
    Ok(v[0]["points"]
        .as_array()
        .unwrap()
        .last()
        .map(|p| p["id"].as_u64().unwrap()))
}

fn recover(env: &Env, id: u64) {
    recover_in(env, "c", id);
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_and_points_recover() {
    let rounds: usize = std::env::var("MTKIT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let seed: u64 = rand::random();
    eprintln!("crash test: {rounds} rounds, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let size = (BS * BLOCKS) as u64;
    let env = Env::new(&[(DISKS[0], "c", size), (DISKS[1], "c", size)]);
    let zero = vec![vec![0u8; BS * BLOCKS]; DISKS.len()];
    let mut m = Model {
        acked: zero.clone(),
        maybe: HashMap::new(),
        durable: zero.clone(),
        points: HashMap::new(),
        pending: None,
    };
    let mut counter = 0u64;

    // The baseline: some data, then the first bookmark.
    {
        let _svc = env.start();
        let mut c = Nbd::connect(env.port, DISKS[0]).unwrap();
        c.write(0, &[0xab; BS * 4]).unwrap();
        m.acked[0][..BS * 4].fill(0xab);
        c.flush().unwrap();
        let p = control(
            &env.control(),
            r#"{"cmd":"bookmark","group":"c","label":"base"}"#,
        )
        .unwrap();
        m.durable = m.acked.clone();
        m.points.insert(p["id"].as_u64().unwrap(), m.acked.clone());
    }

    let mut checked_points = 0;
    for round in 0..rounds {
        let mut svc = env.start();
        let pid = svc.child.id() as i32;
        let delay = Duration::from_millis(rng.random_range(1..80));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        load(&env, &mut m, &mut rng, &mut counter);
        killer.join().unwrap();
        svc.kill();

        // Acknowledged-and-flushed data is there; anything else is a value written later.
        let now = files(&env);
        for (d, img) in now.iter().enumerate() {
            for b in 0..BLOCKS {
                let got = block(img, b);
                let ok = got == block(&m.durable[d], b)
                    || m.maybe
                        .get(&(d, b))
                        .is_some_and(|vs| vs.iter().any(|v| v == got));
                assert!(
                    ok,
                    "round {round}: disk {d} block {b} holds data never written there"
                );
            }
        }

        // Restart: every known point is listed and recovers bit-exactly.
        let _svc = env.start();
        let ids = point_ids(&env.control(), "c");
        for id in m.points.keys() {
            assert!(
                ids.contains(id),
                "round {round}: point {id} lost; listed {ids:?}"
            );
        }
        for id in &ids {
            if !m.points.contains_key(id) {
                let snap = m.pending.clone().unwrap_or_else(|| {
                    panic!("round {round}: unknown point {id} with no flush in flight")
                });
                m.points.insert(*id, snap);
            }
        }
        let mut to: Vec<u64> = ids.clone();
        to.shuffle(&mut rng);
        to.truncate(2);
        to.push(*ids.last().unwrap());
        for id in to {
            recover(&env, id);
            assert!(
                files(&env) == m.points[&id],
                "round {round}: point {id} differs"
            );
            checked_points += 1;
        }
        control(&env.control(), r#"{"cmd":"commit","group":"c"}"#).unwrap();
        let base = *ids.last().unwrap();
        let snap = m.points[&base].clone();
        m.acked = snap.clone();
        m.durable = snap.clone();
        m.maybe.clear();
        m.pending = None;
        m.points = HashMap::from([(base, snap)]);
    }
    eprintln!(
        "crash test: {rounds} rounds, {counter} writes sent, {checked_points} point recoveries checked, {} torn tails cut",
        env.log().matches("cutting a torn tail").count()
    );
    assert!(
        counter > rounds as u64,
        "the load hardly ran: {counter} writes"
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
