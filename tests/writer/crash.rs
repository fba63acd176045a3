//! Shared by the crash tests: rounds and seed from the environment, SIGKILL aimed at a
//! step the service logs, and the model of what a client knows about a group's disks
//! (every block holds one value: its write's counter, repeated) with the checks after a
//! kill.
//!
//! `MTKIT_CRASH_ROUNDS` sets the rounds (CI keeps the defaults small; hundreds for a long
//! run); `MTKIT_CRASH_SEED` replays a workload (the writes, flushes, bookmarks, kill
//! delays and recover targets; where a kill lands in time stays the machine's).
#![allow(dead_code)]

use super::env::{Env, Nbd, control};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn rounds(default: usize) -> usize {
    std::env::var("MTKIT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The workload's random source: `MTKIT_CRASH_SEED` when set, else a fresh seed, printed
/// so that a failing run can be replayed.
pub fn rng(test: &str) -> StdRng {
    let seed: u64 = std::env::var("MTKIT_CRASH_SEED")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("MTKIT_CRASH_SEED={s:?} is not a u64"))
        })
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (replay: MTKIT_CRASH_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

pub fn kill(pid: u32) {
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// The test hook's marker (`MTKIT_TEST_PAUSE`, debug builds): the service logs it after a
/// step, then sleeps, so a kill at the marker lands right after that step.
pub const PAUSED: &str = "mtkit test pause: ";

/// How many times `marker` is in the file at `log`.
pub fn count_in(log: &Path, marker: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(marker)
        .count()
}

/// Waits until `marker` is in `log` more than `before` times (true), or `limit` passed or
/// `gone()` says the process ended (false).
pub fn wait_for(
    log: &Path,
    marker: &str,
    before: usize,
    limit: Duration,
    mut gone: impl FnMut() -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if count_in(log, marker) > before {
            return true;
        }
        if gone() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A group's disks as the test sees them: names, block size, blocks per disk.
pub struct Shape {
    pub group: &'static str,
    pub disks: &'static [&'static str],
    pub bs: usize,
    pub blocks: usize,
}

/// One value per block, per disk.
pub type Images = Vec<Vec<u64>>;

impl Shape {
    pub fn encode(&self, v: u64) -> Vec<u8> {
        v.to_le_bytes().repeat(self.bs / 8)
    }

    /// The value a block holds, or None for bytes no write put there.
    pub fn decode(&self, block: &[u8]) -> Option<u64> {
        let v = u64::from_le_bytes(block[..8].try_into().unwrap());
        (block == self.encode(v).as_slice()).then_some(v)
    }

    pub fn images_of(&self, read: impl Fn(usize) -> Vec<u8>) -> Vec<Vec<Option<u64>>> {
        (0..self.disks.len())
            .map(|d| read(d).chunks(self.bs).map(|b| self.decode(b)).collect())
            .collect()
    }

    /// The target files' contents.
    pub fn files(&self, env: &Env) -> Vec<Vec<Option<u64>>> {
        self.images_of(|d| std::fs::read(env.disk(self.disks[d])).unwrap())
    }

    /// Each disk read whole through export `<disk><suffix>` (`@<point>` for a view).
    pub fn exports(&self, env: &Env, suffix: &str) -> Vec<Vec<Option<u64>>> {
        self.images_of(|d| {
            let name = format!("{}{suffix}", self.disks[d]);
            let mut c = Nbd::connect(env.port, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut buf = vec![0u8; self.bs * self.blocks];
            c.read(0, &mut buf).unwrap();
            buf
        })
    }

    pub fn listed(&self, env: &Env) -> Result<Vec<u64>, String> {
        let v = control(
            &env.control(),
            &format!(r#"{{"cmd":"points","group":"{}"}}"#, self.group),
        )?;
        Ok(v[0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect())
    }

    pub fn bookmark(&self, env: &Env, label: &str) -> Result<u64, String> {
        let v = control(
            &env.control(),
            &format!(
                r#"{{"cmd":"bookmark","group":"{}","label":"{label}"}}"#,
                self.group
            ),
        )?;
        Ok(v["id"].as_u64().unwrap())
    }
}

/// Exactly the images `want` (every block holds its value).
pub fn same(got: &[Vec<Option<u64>>], want: &Images) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g.iter().zip(w).all(|(g, w)| *g == Some(*w)) && g.len() == w.len())
}

/// What the client knows: contents acknowledged, what a crash may leave per block, and the
/// expected contents of every point (with when its FLUSH or bookmark was sent).
#[derive(Default)]
pub struct Model {
    pub acked: Images,
    /// Per (disk, block): values written since the last completed flush (any may stick).
    pub maybe: HashMap<(usize, usize), Vec<u64>>,
    /// As of the last completed flush.
    pub durable: Images,
    pub points: HashMap<u64, (Images, Instant)>,
    /// A flush or bookmark in flight when the service died: its point may exist.
    pub pending: Option<(Images, Instant)>,
    /// The last value written (values are unique across the test).
    pub counter: u64,
}

impl Model {
    pub fn new(shape: &Shape) -> Model {
        let zero = vec![vec![0u64; shape.blocks]; shape.disks.len()];
        Model {
            acked: zero.clone(),
            durable: zero,
            ..Model::default()
        }
    }

    /// Checks the disks after a kill: every block holds its value as of the last completed
    /// flush, or one written after it; then takes what is there as the new truth.
    pub fn check_and_settle(&mut self, now: &[Vec<Option<u64>>], round: usize) {
        for (d, img) in now.iter().enumerate() {
            for (b, got) in img.iter().enumerate() {
                let ok = *got == Some(self.durable[d][b])
                    || got
                        .is_some_and(|v| self.maybe.get(&(d, b)).is_some_and(|vs| vs.contains(&v)));
                assert!(
                    ok,
                    "round {round}: disk {d} block {b} holds {got:?}, never written there after the last flush (flushed: {})",
                    self.durable[d][b]
                );
            }
        }
        self.acked = self.durable.clone();
        for ((d, b), _) in self.maybe.drain() {
            self.acked[d][b] = now[d][b].unwrap();
        }
        self.durable = self.acked.clone();
    }

    /// Takes the points the restarted service lists: every known one must be there (unless
    /// `may_prune`), and an unknown one is the flush or bookmark that was in flight.
    pub fn adopt_listed(&mut self, ids: &[u64], may_prune: bool, round: usize) {
        if !may_prune {
            for id in self.points.keys() {
                assert!(
                    ids.contains(id),
                    "round {round}: point {id} lost; listed {ids:?}"
                );
            }
        }
        for id in ids {
            if !self.points.contains_key(id) {
                let p = self.pending.clone().unwrap_or_else(|| {
                    panic!("round {round}: unknown point {id} with no flush in flight")
                });
                self.points.insert(*id, p);
            }
        }
        self.pending = None;
    }

    /// The group was committed to `base`: it is all there is.
    pub fn committed(&mut self, base: u64) {
        let snap = self.points[&base].clone();
        self.acked = snap.0.clone();
        self.durable = snap.0.clone();
        self.maybe.clear();
        self.pending = None;
        self.points = HashMap::from([(base, snap)]);
    }
}

/// The client's side of a crash round: writes (`write_pct`), flushes (`flush_pct`) and
/// bookmarks (the rest) at `pace` until the service dies under it. `listed` sees the
/// points after each completed flush.
pub struct Load<'a> {
    pub write_pct: u32,
    pub flush_pct: u32,
    pub pace: Duration,
    pub listed: &'a dyn Fn(&Model, &[u64]),
}

pub fn load(env: &Env, shape: &Shape, m: &mut Model, rng: &mut StdRng, how: &Load) {
    let Ok(mut conns) = shape
        .disks
        .iter()
        .map(|d| Nbd::connect(env.port, d))
        .collect::<std::io::Result<Vec<_>>>()
    else {
        return;
    };
    loop {
        let r = rng.random_range(0..100);
        if r < how.write_pct {
            let d = rng.random_range(0..shape.disks.len());
            let b = rng.random_range(0..shape.blocks);
            m.counter += 1;
            let v = m.counter;
            m.maybe.entry((d, b)).or_default().push(v);
            if conns[d]
                .write((b * shape.bs) as u64, &shape.encode(v))
                .is_err()
            {
                return;
            }
            m.acked[d][b] = v;
        } else if r < how.write_pct + how.flush_pct {
            m.pending = Some((m.acked.clone(), Instant::now()));
            let d = rng.random_range(0..shape.disks.len());
            if conns[d].flush().is_err() {
                return;
            }
            m.durable = m.acked.clone();
            m.maybe.clear();
            let Ok(ids) = shape.listed(env) else { return };
            let p = m.pending.take().unwrap();
            if let Some(id) = ids.last() {
                m.points.entry(*id).or_insert(p);
            }
            (how.listed)(m, &ids);
        } else {
            m.pending = Some((m.acked.clone(), Instant::now()));
            let Ok(id) = shape.bookmark(env, "b") else {
                return;
            };
            m.durable = m.acked.clone();
            m.maybe.clear();
            let p = m.pending.take().unwrap();
            m.points.insert(id, p);
        }
        std::thread::sleep(how.pace);
    }
}

/// Every block written, then the first bookmark: the baseline (undo records need data).
pub fn baseline(env: &Env, shape: &Shape, m: &mut Model) {
    let _svc = env.start();
    let mut conns: Vec<_> = shape
        .disks
        .iter()
        .map(|d| Nbd::connect(env.port, d).unwrap())
        .collect();
    for (d, c) in conns.iter_mut().enumerate() {
        for b in 0..shape.blocks {
            m.counter += 1;
            c.write((b * shape.bs) as u64, &shape.encode(m.counter))
                .unwrap();
            m.acked[d][b] = m.counter;
        }
        c.flush().unwrap();
    }
    let id = shape.bookmark(env, "base").unwrap();
    m.durable = m.acked.clone();
    m.points.insert(id, (m.acked.clone(), Instant::now()));
}
