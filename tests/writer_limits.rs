//! The service's limits against misbehaving clients, end to end (`mtkit writer run`): a
//! stalled client holds no one hostage, the server-wide buffer budget bounds memory
//! whatever the number of clients, and malformed requests change neither target nor journal.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::writer_env::{Env, Nbd, control, header, metric, metrics, reply};

const MIB: usize = 1 << 20;
const NBD_READ: u16 = 0;
const NBD_WRITE: u16 = 1;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// True once the server closed `s` (EOF or reset), within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let t = Instant::now();
    loop {
        match s.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
        if t.elapsed() > wait {
            return false;
        }
    }
}

fn clients(env: &Env, group: &str, disk: &str) -> f64 {
    metric(
        &metrics(env.metrics_port),
        &format!("mtkit_clients{{group=\"{group}\",disk=\"{disk}\"}}"),
    )
}

/// Polls a gauge until it reads `want`: the server updates its gauges after a connection
/// or a request is done, which a client can observe a moment before it happens.
fn settles(read: impl Fn() -> f64, want: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if read() == want {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stalled_client_holds_no_other_client_nor_the_group_commit_hostage() {
    const SIZE: usize = 4 * MIB;
    const CHUNK: usize = 64 << 10;
    let env = Env::with_writer(
        &[
            ("s-d0", "s", SIZE as u64),
            ("s-d1", "s", SIZE as u64),
            ("t-d0", "t", SIZE as u64),
        ],
        "idle-timeout = \"6s\"\n",
    );
    let _svc = env.start();
    // Past the baseline: writes go through the journal's group commit.
    for g in ["s", "t"] {
        let req = format!(r#"{{"cmd":"bookmark","group":"{g}","label":"base"}}"#);
        control(&env.control(), &req).unwrap();
    }
    // Half a WRITE: the header and 100 KB of its 1 MiB payload, then nothing.
    let mut half = Nbd::connect(env.port, "s-d0").unwrap().into_stream();
    half.write_all(&header(NBD_WRITE, 1, 0, MIB as u32))
        .unwrap();
    half.write_all(&[0xee; 100_000]).unwrap();
    // A client that never reads its replies: 64 MiB of READ replies fill the socket buffers.
    let mut deaf = Nbd::connect(env.port, "s-d1").unwrap().into_stream();
    for h in 0..64 {
        deaf.write_all(&header(NBD_READ, h, 0, MIB as u32)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));

    // Meanwhile other clients of the same group and of another group write and flush.
    let t0 = Instant::now();
    let fill = |disk: &str, i: usize| (disk.len() + disk.as_bytes()[3] as usize * 7 + i) as u8;
    let writers: Vec<Nbd> = std::thread::scope(|s| {
        let handles: Vec<_> = ["s-d0", "s-d1", "t-d0"]
            .into_iter()
            .map(|disk| {
                let env = &env;
                s.spawn(move || {
                    let mut c = Nbd::connect(env.port, disk).unwrap();
                    for i in 0..40 {
                        c.write((MIB + i * CHUNK) as u64, &vec![fill(disk, i); CHUNK])
                            .unwrap();
                        if i % 8 == 7 {
                            c.flush().unwrap();
                        }
                    }
                    c
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = t0.elapsed();
    // They finished while both stalled clients were still connected (each of those disks
    // has its writer and its stalled client): nobody waited for the limits to throw the
    // stalled ones out. The writers are still connected here, so the gauges are exact.
    assert_eq!(clients(&env, "s", "s-d0"), 2.0, "writers took {took:?}");
    assert_eq!(clients(&env, "s", "s-d1"), 2.0, "writers took {took:?}");
    drop(writers);
    for disk in ["s-d0", "s-d1", "t-d0"] {
        let img = std::fs::read(env.disk(disk)).unwrap();
        for i in 0..40 {
            let at = MIB + i * CHUNK;
            assert!(
                img[at..at + CHUNK].iter().all(|&b| b == fill(disk, i)),
                "{disk} chunk {i}"
            );
        }
    }

    // Both stalled clients are closed by the limits (the idle timeout, 6 s here).
    assert!(closed_within(&mut half, Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(20);
    while clients(&env, "s", "s-d1") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the client that reads no replies was never closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(settles(|| clients(&env, "s", "s-d0"), 0.0));
    let log = env.log();
    assert!(log.contains("inside a request"), "{log}");
    // Nothing of the cut-off WRITE reached the disk.
    let img = std::fs::read(env.disk("s-d0")).unwrap();
    assert!(img[..MIB].iter().all(|&b| b == 0));
    eprintln!(
        "stalled clients: the others wrote 3 x {} KiB in {took:?}",
        (40 * CHUNK) >> 10
    );
}

#[test]
fn the_server_wide_buffer_budget_bounds_memory_whatever_the_clients() {
    const SIZE: usize = 32 * MIB;
    const CLIENTS: usize = 16;
    const WRITES: usize = 4;
    let env = Env::with_writer(
        &[("m-d0", "m", SIZE as u64), ("m-d1", "m", SIZE as u64)],
        "max-request-size = \"1M\"\nmax-buffer = \"3M\"\n",
    );
    let svc = env.start();
    let byte = |k: usize, i: usize| (k * WRITES + i + 1) as u8;
    let off = |k: usize, i: usize| ((k / 2) * WRITES + i) * MIB;
    // Every client pipelines its writes: all sent before any reply is read. Per
    // connection that is 4 MiB of payload, 64 MiB over all, against a 3 MiB budget.
    std::thread::scope(|s| {
        for k in 0..CLIENTS {
            let env = &env;
            s.spawn(move || {
                let disk = ["m-d0", "m-d1"][k % 2];
                let mut c = Nbd::connect(env.port, disk).unwrap().into_stream();
                let mut out = Vec::new();
                for i in 0..WRITES {
                    out.extend(header(NBD_WRITE, i as u64, off(k, i) as u64, MIB as u32));
                    out.extend(vec![byte(k, i); MIB]);
                }
                c.write_all(&out).unwrap();
                for _ in 0..WRITES {
                    assert_eq!(reply(&mut c).unwrap().0, 0);
                }
            });
        }
    });
    let m = metrics(env.metrics_port);
    let (peak, limit) = (
        metric(&m, "mtkit_buffer_peak_bytes"),
        metric(&m, "mtkit_buffer_limit_bytes"),
    );
    assert_eq!(limit, (3 * MIB) as f64);
    assert!(
        peak <= limit && peak >= MIB as f64,
        "peak {peak} vs limit {limit}"
    );
    assert!(
        metric(&m, "mtkit_buffer_waits_total") > 0.0,
        "the budget was never full"
    );
    // A reservation is returned just after its reply is sent, so poll briefly; a leak
    // never returns.
    assert!(
        settles(
            || metric(&metrics(env.metrics_port), "mtkit_buffer_bytes"),
            0.0
        ),
        "a reservation leaked"
    );
    for k in 0..CLIENTS {
        let img = std::fs::read(env.disk(["m-d0", "m-d1"][k % 2])).unwrap();
        for i in 0..WRITES {
            let at = off(k, i);
            assert!(img[at..at + MIB].iter().all(|&b| b == byte(k, i)));
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", svc.child.id())).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("");
    eprintln!(
        "buffer budget: peak {} KiB of {} KiB, service {hwm}",
        peak as u64 >> 10,
        limit as u64 >> 10
    );
}

/// Every file under `dir` with its contents.
fn tree(dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            tree(&p, out);
        } else {
            out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
        }
    }
}

#[test]
fn malformed_requests_change_neither_the_target_nor_the_journal() {
    const SIZE: u64 = 1 << 20;
    let env = Env::with_writer(&[("h-d0", "h", SIZE)], "max-request-size = \"64K\"\n");
    let _svc = env.start();
    let mut c = Nbd::connect(env.port, "h-d0").unwrap();
    c.write(0, &[1; 65536]).unwrap();
    control(
        &env.control(),
        r#"{"cmd":"bookmark","group":"h","label":"base"}"#,
    )
    .unwrap();
    c.write(4096, &[2; 8192]).unwrap();
    c.flush().unwrap();
    let snapshot = || {
        let mut t = BTreeMap::new();
        tree(&env.path("journal"), &mut t);
        (std::fs::read(env.disk("h-d0")).unwrap(), t)
    };
    let before = snapshot();
    let raw = || Nbd::connect(env.port, "h-d0").unwrap().into_stream();

    // Past the end, and an offset that wraps around: refused, the connection goes on.
    let mut s = raw();
    s.write_all(&header(NBD_WRITE, 1, SIZE - 4096, 8192))
        .unwrap();
    s.write_all(&[9; 8192]).unwrap();
    assert_eq!(reply(&mut s).unwrap(), (ENOSPC, 1));
    s.write_all(&header(NBD_WRITE, 2, u64::MAX - 100, 4096))
        .unwrap();
    s.write_all(&[9; 4096]).unwrap();
    assert_eq!(reply(&mut s).unwrap(), (EINVAL, 2));
    s.write_all(&header(42, 3, 0, 0)).unwrap();
    assert_eq!(reply(&mut s).unwrap(), (EINVAL, 3));
    s.write_all(&header(NBD_READ, 4, 0, 4096)).unwrap();
    assert_eq!(reply(&mut s).unwrap(), (0, 4));

    // Oversized: answered EINVAL, then closed (its payload cannot be skipped safely).
    let mut s = raw();
    s.write_all(&header(NBD_WRITE, 5, 0, 65536 + 4096)).unwrap();
    s.write_all(&[9; 65536 + 4096]).unwrap();
    assert_eq!(reply(&mut s).unwrap(), (EINVAL, 5));
    assert!(closed_within(&mut s, Duration::from_secs(5)));

    // Bad magic: closed without an answer, even with a valid-looking WRITE behind it.
    let mut s = raw();
    let mut bad = header(NBD_WRITE, 6, 0, 4096);
    bad[..4].copy_from_slice(&0x2560_9514u32.to_be_bytes());
    s.write_all(&bad).unwrap();
    let _ = s.write_all(&[9; 4096]);
    assert!(closed_within(&mut s, Duration::from_secs(5)));

    assert!(
        snapshot() == before,
        "a malformed request changed the disk or journal"
    );
    // The server logs after it closed: give it a moment.
    let logged = |t: &str| {
        (0..50).any(|_| {
            env.log().contains(t) || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        })
    };
    assert!(logged("bad magic"), "{}", env.log());
    assert!(logged("exceeds the maximum request size"), "{}", env.log());
    // The service goes on serving.
    let mut c = Nbd::connect(env.port, "h-d0").unwrap();
    let mut b = vec![0u8; 4096];
    c.read(4096, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 2));
}

#[test]
fn a_buffer_budget_smaller_than_one_request_is_refused_as_bad_input() {
    let env = Env::with_writer(
        &[("b-d0", "b", 1 << 20)],
        "max-request-size = \"4M\"\nmax-buffer = \"1M\"\n",
    );
    let o = env.mtkit(&["writer", "run"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("max-buffer") && err.contains("4M"), "{err}");
    assert!(!env.path("journal").exists(), "nothing is created");
}
