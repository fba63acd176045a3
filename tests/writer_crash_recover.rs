//! Crash safety of `mtkit recover` and `mtkit commit`: the process doing the work (the
//! service, or the CLI working on the journal directly while the service is stopped) is
//! SIGKILLed at a random moment, then the service is restarted and checked: every point
//! that existed before the first recover is still listed and recovers bit-exactly, a commit
//! is either done or not started (never half), and another group's flushed writes made
//! during the recover are intact. Commits are also killed right after each step of their
//! session removal (the test hook pauses there). MTKIT_CRASH_ROUNDS sets the rounds
//! (default 8), MTKIT_CRASH_SEED replays a workload (see tests/writer/crash.rs).

mod common;
#[path = "writer/crash.rs"]
mod crash;
#[path = "writer/env.rs"]
mod env;

use env::{Env, Nbd, Service, control, point_ids};
use rand::{Rng, RngExt, rngs::StdRng, seq::SliceRandom};
use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BS: usize = 4096;
const SIZE: usize = 8 << 20;
const DISKS: [&str; 2] = ["r-d0", "r-d1"];
/// A disk of another group, written while group r is recovered.
const OTHER: &str = "o-d0";
const OTHER_BLOCKS: usize = 256;

type Images = Vec<Vec<u8>>;

fn files(env: &Env) -> Images {
    DISKS
        .iter()
        .map(|d| std::fs::read(env.disk(d)).unwrap())
        .collect()
}

/// The commit's removal steps pause this long (test hook), so kills can land between them.
/// A recover's steps pause a little too: kills aimed at the n-th land inside the rollback.
const PAUSE: (&str, &str) = ("MTKIT_TEST_PAUSE", "commit:30,recover:5");
/// The steps of a commit's session removal, as the test hook names them.
const REMOVAL_STEPS: [&str; 2] = [
    "commit: recovery log removed",
    "commit: session file removed",
];

/// The CLI, logging to `cli.log` (where the test hook's markers of an offline run go).
fn cli(env: &Env, args: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.path("cli.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_mtkit"))
        .env_remove("MTKIT_CONFIG")
        .env(PAUSE.0, PAUSE.1)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

use crash::kill;

/// Some writes to group r (random data, zeros, patterns, random lengths), then a FLUSH or
/// a bookmark: returns the new point and the disks' contents at it.
fn make_point(env: &Env, conns: &mut [Nbd], rng: &mut StdRng, n: usize) -> (u64, Images) {
    for _ in 0..n {
        let d = rng.random_range(0..DISKS.len());
        let len = BS * rng.random_range(1..64);
        let off = BS * rng.random_range(0..(SIZE - len) / BS);
        let mut data = vec![0u8; len];
        match rng.random_range(0..3) {
            0 => rng.fill_bytes(&mut data),
            1 => {}
            _ => data.fill(rng.random()),
        }
        conns[d].write(off as u64, &data).unwrap();
    }
    if rng.random_range(0..4) == 0 {
        let p = control(
            &env.control(),
            r#"{"cmd":"bookmark","group":"r","label":"app"}"#,
        )
        .unwrap();
        (p["id"].as_u64().unwrap(), files(env))
    } else {
        conns[rng.random_range(0..DISKS.len())].flush().unwrap();
        (*point_ids(&env.control(), "r").last().unwrap(), files(env))
    }
}

/// Writes and flushes group o until the connection fails or `stop`; returns the contents
/// as of the last completed FLUSH and, per block, the values written after it.
#[allow(clippy::type_complexity)]
fn other_load(
    port: u16,
    stop: &AtomicBool,
    mut durable: Vec<u8>,
) -> (Vec<u8>, HashMap<usize, Vec<Vec<u8>>>) {
    let mut maybe: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
    let Ok(mut c) = Nbd::connect(port, OTHER) else {
        return (durable, maybe);
    };
    let mut acked = durable.clone();
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..4 {
            counter += 1;
            let b = (counter as usize * 7919) % OTHER_BLOCKS;
            let data = (counter ^ 0x5a5a_0000).to_le_bytes().repeat(BS / 8);
            maybe.entry(b).or_default().push(data.clone());
            if c.write((b * BS) as u64, &data).is_err() {
                return (durable, maybe);
            }
            acked[b * BS..(b + 1) * BS].copy_from_slice(&data);
        }
        if c.flush().is_err() {
            return (durable, maybe);
        }
        durable = acked.clone();
        maybe.clear();
    }
    (durable, maybe)
}

fn check_other(env: &Env, durable: &[u8], maybe: &HashMap<usize, Vec<Vec<u8>>>, round: usize) {
    let now = std::fs::read(env.disk(OTHER)).unwrap();
    for b in 0..OTHER_BLOCKS {
        let got = &now[b * BS..(b + 1) * BS];
        let ok = got == &durable[b * BS..(b + 1) * BS]
            || maybe.get(&b).is_some_and(|vs| vs.iter().any(|v| v == got));
        assert!(ok, "round {round}: group o block {b} lost a flushed write");
    }
}

/// How a kill found the group after restart (for the summary line).
fn state(env: &Env) -> (String, Option<u64>) {
    let st = control(&env.control(), r#"{"cmd":"status"}"#).unwrap();
    let g = st["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "r")
        .unwrap()
        .clone();
    (
        g["state"].as_str().unwrap().to_string(),
        g["recovered-to"].as_u64(),
    )
}

fn recover(env: &Env, id: u64) {
    control(
        &env.control(),
        &format!(r#"{{"cmd":"recover","group":"r","to":"{id}","dry_run":false}}"#),
    )
    .unwrap_or_else(|e| panic!("recover to {id}: {e}"));
}

/// When to kill: `delay` after the command started, after the session file shows `text`
/// (the work is under way: aims the kill inside it rather than before or after), or in the
/// test hook's pause after the n-th step (of a recover, or of a commit's session removal).
enum When {
    Delay(Duration),
    Session(&'static str, Duration),
    Paused(usize),
}

/// Runs `args` and SIGKILLs the worker at `when`: the service (`offline` false: the CLI
/// asks the service) or the CLI itself (`offline`: the service is stopped first). Online,
/// a CLI still running after the service died went on offline (it found no service): it
/// is killed too, inside its own work.
fn crash_during(
    env: &Env,
    svc: &mut Option<Service>,
    args: &[&str],
    offline: bool,
    when: When,
) -> Landed {
    if offline {
        svc.take().unwrap().stop();
    }
    let (service_log, cli_log) = (env.path("service.log"), env.path("cli.log"));
    let paused_before = [&service_log, &cli_log].map(|l| crash::count_in(l, crash::PAUSED));
    let mut c = cli(env, args);
    let mut landed = Landed {
        aimed: true,
        cli_outlived_service: false,
    };
    let mut aim = |c: &mut Child, by_cli: bool| match &when {
        When::Delay(d) => std::thread::sleep(*d),
        When::Session(text, d) => {
            let session = env.path("journal/r/recover/state.json");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !std::fs::read_to_string(&session).is_ok_and(|s| s.contains(text))
                && Instant::now() < deadline
                && c.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(*d);
        }
        When::Paused(n) => {
            let log = if by_cli { &cli_log } else { &service_log };
            landed.aimed = crash::wait_for(
                log,
                crash::PAUSED,
                paused_before[by_cli as usize] + n - 1,
                Duration::from_secs(10),
                || c.try_wait().unwrap().is_some(),
            );
        }
    };
    aim(&mut c, offline);
    match svc.take() {
        Some(mut s) if !offline => {
            kill(s.child.id());
            s.kill();
            // The CLI ends at once when it was talking to the service; one that is still
            // busy found no service and runs the command itself: kill it mid-way too.
            std::thread::sleep(Duration::from_millis(20));
            if c.try_wait().unwrap().is_none() {
                landed.cli_outlived_service = true;
                aim(&mut c, true);
                kill(c.id());
            }
        }
        _ => kill(c.id()),
    }
    let _ = c.wait();
    landed
}

/// Where a kill of [`crash_during`] landed.
struct Landed {
    /// At the step it aimed at (a step that the work never reached: not).
    aimed: bool,
    /// Online, the CLI was still running after the service was killed (it went offline).
    cli_outlived_service: bool,
}

#[test]
fn sigkill_during_recover_and_commit_keeps_every_point_and_flushed_writes() {
    let rounds = crash::rounds(8);
    let mut rng = crash::rng("recover crash test");
    let env = Env::new(&[
        (DISKS[0], "r", SIZE as u64),
        (DISKS[1], "r", SIZE as u64),
        (OTHER, "o", (OTHER_BLOCKS * BS) as u64),
    ]);
    let mut hist: BTreeMap<u64, Images> = BTreeMap::new();
    let mut other = vec![0u8; OTHER_BLOCKS * BS];
    // Where the kills landed: (recover mid-way, recover done/not begun, commit done, not).
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let t0 = Instant::now();
    // The longest recover seen: aims the kills.
    let mut recover_ms = 10u64;
    for round in 0..rounds {
        let mut svc = Some(env.start_with(&[PAUSE]));
        let mut conns: Vec<Nbd> = DISKS
            .iter()
            .map(|d| Nbd::connect(env.port, d).unwrap())
            .collect();
        if round == 0 {
            let p = control(
                &env.control(),
                r#"{"cmd":"bookmark","group":"r","label":"base"}"#,
            )
            .unwrap();
            hist.insert(p["id"].as_u64().unwrap(), files(&env));
            control(
                &env.control(),
                r#"{"cmd":"bookmark","group":"o","label":"base"}"#,
            )
            .unwrap();
        }
        for _ in 0..rng.random_range(2..5) {
            let n = rng.random_range(4..40);
            let (id, snap) = make_point(&env, &mut conns, &mut rng, n);
            hist.insert(id, snap);
        }
        drop(conns);
        let ids: Vec<u64> = hist.keys().copied().collect();
        assert_eq!(point_ids(&env.control(), "r"), ids, "round {round}");

        // Kill in the middle of a recover (offline: kill the CLI doing it).
        let to = ids[rng.random_range(0..ids.len())];
        let offline = rng.random_bool(0.3);
        let when = match rng.random_range(0..10) {
            0..3 => When::Delay(Duration::from_millis(rng.random_range(0..recover_ms + 20))),
            3..6 => When::Session(
                "\"at\":null",
                Duration::from_micros(rng.random_range(0..recover_ms * 1000)),
            ),
            _ => When::Paused(rng.random_range(1..=4)),
        };
        let aimed_at_step = matches!(when, When::Paused(_));
        let stop = AtomicBool::new(false);
        let (durable, maybe) = std::thread::scope(|s| {
            let load = (!offline).then(|| {
                let (stop, other) = (&stop, other.clone());
                s.spawn(move || other_load(env.port, stop, other))
            });
            let to = to.to_string();
            let landed = crash_during(
                &env,
                &mut svc,
                &["recover", "--group", "r", "--to", &to],
                offline,
                when,
            );
            if landed.cli_outlived_service {
                *seen
                    .entry("online recover went offline, killed too")
                    .or_default() += 1;
            }
            if aimed_at_step && landed.aimed {
                *seen.entry("recover killed after a step").or_default() += 1;
            }
            stop.store(true, Ordering::Relaxed);
            load.map_or_else(|| (other.clone(), HashMap::new()), |h| h.join().unwrap())
        });
        let _svc = env.start();
        check_other(&env, &durable, &maybe, round);
        other = std::fs::read(env.disk(OTHER)).unwrap();
        let (st, at) = state(&env);
        *seen
            .entry(match (st.as_str(), at) {
                ("recovering", None) => "recover cut mid-way",
                ("recovering", Some(_)) => "recover finished",
                _ => "recover not begun",
            })
            .or_default() += 1;
        if let Some(at) = at {
            assert_eq!(at, to, "round {round}: recovered to another point");
            assert!(
                files(&env) == hist[&to],
                "round {round}: the recover says it finished at point {to}, the disks differ"
            );
        }
        // Every point recovers bit-exactly, in any order, whatever the kill left.
        assert_eq!(point_ids(&env.control(), "r"), ids, "round {round}: points");
        let mut order = ids.clone();
        order.shuffle(&mut rng);
        for &id in &order {
            let t = Instant::now();
            recover(&env, id);
            recover_ms = recover_ms.max(t.elapsed().as_millis() as u64);
            assert!(
                files(&env) == hist[&id],
                "round {round}: point {id} differs"
            );
        }

        // Kill in the middle of a commit: afterwards it is done, or not begun and the
        // group can still go to every point.
        let base = ids[rng.random_range(0..ids.len())];
        recover(&env, base);
        drop(_svc);
        let mut svc = Some(env.start_with(&[PAUSE]));
        let offline = rng.random_bool(0.3);
        let when = match rng.random_range(0..3) {
            0 => When::Delay(Duration::from_micros(rng.random_range(0..3000))),
            1 => When::Session(
                "\"committing\":true",
                Duration::from_micros(rng.random_range(0..3000)),
            ),
            _ => When::Paused(rng.random_range(1..=REMOVAL_STEPS.len())),
        };
        let step = match when {
            When::Paused(n) => Some(n),
            _ => None,
        };
        let landed = crash_during(&env, &mut svc, &["commit", "--group", "r"], offline, when);
        if landed.cli_outlived_service {
            *seen
                .entry("online commit went offline, killed too")
                .or_default() += 1;
        }
        if let (Some(n), true) = (step, landed.aimed) {
            *seen
                .entry(
                    [
                        "commit killed after removal step 1",
                        "commit killed after removal step 2",
                    ][n - 1],
                )
                .or_default() += 1;
        }
        let _svc = env.start();
        assert!(
            files(&env) == hist[&base],
            "round {round}: commit changed the disks"
        );
        match state(&env) {
            (st, Some(at)) if st == "recovering" => {
                *seen.entry("commit not begun").or_default() += 1;
                assert_eq!(at, base);
                assert_eq!(point_ids(&env.control(), "r"), ids, "round {round}");
                let other_id = ids[rng.random_range(0..ids.len())];
                recover(&env, other_id);
                assert!(files(&env) == hist[&other_id], "round {round}");
                recover(&env, base);
                control(&env.control(), r#"{"cmd":"commit","group":"r"}"#).unwrap();
            }
            (st, _) => {
                *seen.entry("commit done").or_default() += 1;
                assert_eq!(st, "replicating", "round {round}");
            }
        }
        assert_eq!(point_ids(&env.control(), "r"), [base], "round {round}");
        assert!(files(&env) == hist[&base], "round {round}");
        hist = BTreeMap::from([(base, hist[&base].clone())]);
    }
    eprintln!(
        "recover crash test: {rounds} rounds in {:.1}s, kills landed: {seen:?}",
        t0.elapsed().as_secs_f64()
    );
}

/// A commit killed right after each step of its session removal (the test hook pauses the
/// service there) leaves nothing a later recover misreads. The session's log holds the
/// head contents of the recover it finishes; had the log outlived the session file (as
/// when `remove_dir_all` unlinked `state.json` first), the next recover would take those
/// stale contents as its head and put them on blocks not written since, saying it finished.
#[test]
fn a_commit_killed_after_each_step_of_its_removal_leaves_nothing_a_recover_misreads() {
    const B: usize = 4096;
    for step in REMOVAL_STEPS {
        let env = Env::new(&[("k-d0", "k", (64 * B) as u64)]);
        let svc = env.start_with(&[("MTKIT_TEST_PAUSE", &format!("{step}:20000"))]);
        let mut c = Nbd::connect(env.port, "k-d0").unwrap();
        c.write(0, &[1; 4 * B]).unwrap();
        let base = control(
            &env.control(),
            r#"{"cmd":"bookmark","group":"k","label":"base"}"#,
        )
        .unwrap()["id"]
            .as_u64()
            .unwrap();
        c.write(0, &[2; 4 * B]).unwrap();
        c.flush().unwrap();
        drop(c);
        // The log now holds blocks 0-3 as 2s: the head of this recover.
        control(
            &env.control(),
            &format!(r#"{{"cmd":"recover","group":"k","to":"{base}","dry_run":false}}"#),
        )
        .unwrap();
        let log = env.path("service.log");
        let mut commit = cli(&env, &["commit", "--group", "k"]);
        assert!(
            crash::wait_for(&log, crash::PAUSED, 0, Duration::from_secs(20), || false),
            "{step}: the commit never paused there: {}",
            env.log()
        );
        drop(svc);
        let _ = commit.wait();

        let _svc = env.start();
        assert_eq!(
            point_ids(&env.control(), "k"),
            [base],
            "killed after {step}"
        );
        let mut c = Nbd::connect(env.port, "k-d0").unwrap();
        c.write((5 * B) as u64, &[3; B]).unwrap();
        c.flush().unwrap();
        let p2 = *point_ids(&env.control(), "k").last().unwrap();
        c.write(0, &[4; B]).unwrap();
        c.flush().unwrap();
        drop(c);
        control(
            &env.control(),
            &format!(r#"{{"cmd":"recover","group":"k","to":"{p2}","dry_run":false}}"#),
        )
        .unwrap();
        let disk = std::fs::read(env.disk("k-d0")).unwrap();
        for (b, want) in [1u8, 1, 1, 1, 0, 3, 0].into_iter().enumerate() {
            assert!(
                disk[b * B..(b + 1) * B].iter().all(|&x| x == want),
                "killed after {step:?}: block {b} holds {} after the recover to point {p2}, which had {want}",
                disk[b * B]
            );
        }
    }
}
