//! A bounded loopback load test: several clients on several groups writing at once while
//! status and metrics are polled; nothing lost, no errors, counters add up.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use support::writer_env::{Env, Nbd, control, metric, metrics};

const SIZE: u64 = 2 << 20;
const CHUNK: usize = 16 << 10;

#[test]
fn several_clients_on_several_groups_with_status_and_metrics_polled() {
    let disks: Vec<(String, String)> = (0..3)
        .flat_map(|g| (0..2).map(move |d| (format!("g{g}-d{d}"), format!("g{g}"))))
        .collect();
    let defs: Vec<(&str, &str, u64)> = disks
        .iter()
        .map(|(n, g)| (n.as_str(), g.as_str(), SIZE))
        .collect();
    let env = Env::new(&defs);
    let _svc = env.start();
    for g in 0..3 {
        control(
            &env.control(),
            &format!(r#"{{"cmd":"bookmark","group":"g{g}","label":"base"}}"#),
        )
        .unwrap();
    }
    let done = AtomicBool::new(false);
    let mut polls = 0;
    std::thread::scope(|s| {
        let mut writers = Vec::new();
        // Two clients per disk, each on its own half, rewriting it three times.
        for (name, _) in &disks {
            for half in 0..2u64 {
                let env = &env;
                writers.push(s.spawn(move || {
                    let mut c = Nbd::connect(env.port, name).unwrap();
                    let base = half * SIZE / 2;
                    for pass in 0..3u8 {
                        for (k, off) in (base..base + SIZE / 2).step_by(CHUNK).enumerate() {
                            let fill = pass.wrapping_mul(31).wrapping_add(half as u8 * 7 + 1);
                            c.write(off, &vec![fill; CHUNK]).unwrap();
                            if k % 16 == 15 {
                                c.flush().unwrap();
                            }
                        }
                    }
                    c.flush().unwrap();
                }));
            }
        }
        let poller = s.spawn(|| {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let st = control(&env.control(), r#"{"cmd":"status"}"#).unwrap();
                assert_eq!(st["groups"].as_array().unwrap().len(), 3);
                let m = metrics(env.metrics_port);
                assert!(m.contains("mtkit_request_duration_seconds_bucket"));
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            n
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        polls = poller.join().unwrap();
    });
    assert!(polls > 0);

    // Content: the last pass of each half.
    for (name, _) in &disks {
        let data = std::fs::read(env.disk(name)).unwrap();
        for half in 0..2usize {
            let fill = 2u8.wrapping_mul(31).wrapping_add(half as u8 * 7 + 1);
            let part = &data[half * SIZE as usize / 2..(half + 1) * SIZE as usize / 2];
            assert!(part.iter().all(|&b| b == fill), "{name} half {half}");
        }
    }
    let m = metrics(env.metrics_port);
    for (name, g) in &disks {
        let labels = format!("group=\"{g}\",disk=\"{name}\",command=\"write\"");
        assert_eq!(
            metric(&m, &format!("mtkit_bytes_total{{{labels}}}")),
            (3 * SIZE) as f64,
            "{m}"
        );
        assert_eq!(metric(&m, &format!("mtkit_errors_total{{{labels}}}")), 0.0);
        let count = metric(
            &m,
            &format!("mtkit_request_duration_seconds_count{{{labels}}}"),
        );
        assert_eq!(count, (3 * SIZE / CHUNK as u64) as f64);
    }
    for g in 0..3 {
        assert!(metric(&m, &format!("mtkit_points{{group=\"g{g}\"}}")) > 1.0);
        assert!(metric(&m, &format!("mtkit_journal_bytes{{group=\"g{g}\"}}")) > SIZE as f64 / 2.0);
    }
    assert!(metric(&m, "mtkit_newest_point_timestamp_seconds{group=\"g0\"}") > 1.7e9);
}
