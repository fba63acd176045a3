//! The journal, groups, recovery and views through the `Export` trait (no network): a
//! random write load with points, then recovery to every point in turn, byte-exact.

mod support;

use mtkit::writer::Export;
use mtkit::writer::group::{DiskSpec, Group};
use mtkit::writer::journaled::JournaledDisk;
use mtkit::writer::recover::PointSpec;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use std::path::Path;
use std::sync::Arc;

const SIZE: u64 = 1 << 20;

fn specs(dir: &Path, n: usize) -> Vec<DiskSpec> {
    (0..n)
        .map(|i| DiskSpec {
            name: format!("d{i}"),
            path: dir.join(format!("d{i}.img")),
            size: Some(SIZE + 512 * i as u64), // one size not a multiple of 4 KiB
        })
        .collect()
}

fn open(dir: &Path, n: usize) -> Arc<Group> {
    Group::open("g", &dir.join("journal/g"), &specs(dir, n), 64 << 10).unwrap()
}

fn contents(g: &Group) -> Vec<Vec<u8>> {
    g.disks
        .iter()
        .map(|t| {
            let mut b = vec![0u8; t.size() as usize];
            t.read_at(&mut b, 0).unwrap();
            b
        })
        .collect()
}

fn random_writes(rng: &mut StdRng, disks: &[JournaledDisk], n: usize) {
    for _ in 0..n {
        let d = &disks[rng.random_range(0..disks.len())];
        let len = rng.random_range(1..20_000u64).min(d.size());
        let off = rng.random_range(0..=d.size() - len);
        if rng.random_ratio(1, 8) {
            d.write_zeroes(off, len, rng.random(), false).unwrap();
        } else {
            let fill: u8 = rng.random();
            let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
            d.write_at(&data, off, rng.random_ratio(1, 10)).unwrap();
        }
    }
}

#[test]
fn initial_sync_writes_through_and_makes_no_points() {
    let t = tempfile::tempdir().unwrap();
    let g = open(t.path(), 1);
    let d = JournaledDisk::new(g.clone(), 0);
    d.write_at(&[7u8; 8192], 0, false).unwrap();
    d.flush().unwrap();
    assert!(g.in_initial_sync());
    assert!(g.points().is_empty());
    let seg = t.path().join("journal/g/journal/seg-0000000001.log");
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        0,
        "no undo before the baseline"
    );
    let p = g.point(true, "baseline").unwrap().unwrap();
    assert_eq!(p.kind, mtkit::writer::group::PointKind::App);
    assert!(!g.in_initial_sync());
    // Overwriting a zero region saves no data; overwriting data saves it.
    let at_point = std::fs::metadata(&seg).unwrap().len();
    d.write_at(&[1u8; 4096], 1 << 16, false).unwrap();
    let after_zero = std::fs::metadata(&seg).unwrap().len();
    // (Appends are padded to 4 KiB for direct I/O: a header-only record takes one block.)
    assert!(
        after_zero - at_point <= 4096,
        "zero undo has no payload: {after_zero}"
    );
    d.write_at(&[2u8; 4096], 0, false).unwrap();
    // Only the first overwrite of a block in an interval is saved.
    d.write_at(&[3u8; 4096], 0, false).unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    assert!((4096 + 56..=8192).contains(&(len - after_zero)), "{len}");
    d.flush().unwrap();
    // A flush with nothing written since makes no new point.
    d.flush().unwrap();
    assert_eq!(g.points().len(), 2);
}

#[test]
fn recover_to_every_point_and_back_then_commit() {
    for seed in 0..4 {
        recover_scenario(seed);
    }
}

fn recover_scenario(seed: u64) {
    let t = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let g = open(t.path(), 2);
    let disks: Vec<_> = (0..2).map(|i| JournaledDisk::new(g.clone(), i)).collect();
    random_writes(&mut rng, &disks, 30);
    g.point(true, "base").unwrap();
    let mut copies = vec![(g.points()[0].id, contents(&g))];
    for round in 0..8 {
        random_writes(&mut rng, &disks, 25);
        if round % 3 == 2 {
            g.point(true, &format!("app{round}")).unwrap();
        } else {
            disks[round % 2].flush().unwrap();
        }
        copies.push((g.points().last().unwrap().id, contents(&g)));
    }
    // Unflushed tail writes: recovering must drop them too.
    random_writes(&mut rng, &disks, 10);
    let head = contents(&g);
    assert_eq!(g.points().len(), copies.len());

    // Views first: each disk at each point, without touching the target.
    for (id, want) in &copies {
        for (i, w) in want.iter().enumerate() {
            let v = g.view(i, *id).unwrap();
            let mut got = vec![0u8; w.len()];
            // Odd-sized reads crossing block edges.
            for (k, ch) in got.chunks_mut(5000).enumerate() {
                v.read_at(ch, k as u64 * 5000).unwrap();
            }
            assert!(got == *w, "view of d{i} at point {id} differs");
        }
    }
    // A view stays right while writes continue.
    let v = g.view(0, copies[3].0).unwrap();
    random_writes(&mut rng, &disks, 10);
    let mut got = vec![0u8; copies[3].1[0].len()];
    v.read_at(&mut got, 0).unwrap();
    assert!(got == copies[3].1[0], "view changed under later writes");
    drop(v);
    let head = if head != contents(&g) {
        contents(&g)
    } else {
        head
    };

    // Recover in a scrambled order, including moving forward again.
    let order = [4, 1, 7, 0, 8, 2, 6, 3, 5];
    let mut progressed = 0;
    for &k in &order {
        let (id, want) = &copies[k];
        let r = g
            .recover(&PointSpec::Id(*id), false, &mut |d, n| {
                assert!(d <= n);
                progressed += 1;
            })
            .unwrap();
        assert_eq!(r.point.id, *id);
        assert!(g.is_recovering());
        assert!(
            contents(&g) == *want,
            "disks differ from point {id} (copy {k})"
        );
        // Writes are refused while recovering.
        assert!(disks[0].write_at(&[1], 0, false).is_err());
    }
    assert!(progressed > 0);
    // Dry run says what, changes nothing.
    let before = contents(&g);
    let dry = g.recover(&PointSpec::Latest, true, &mut |_, _| {}).unwrap();
    assert!(dry.dry_run && dry.blocks > 0);
    assert!(contents(&g) == before);
    // Reopen mid-session (as after a restart): still recovering, still able to move.
    drop(disks);
    drop(g);
    let g = open(t.path(), 2);
    assert!(g.is_recovering());
    g.recover(&PointSpec::LatestApp, false, &mut |_, _| {})
        .unwrap();
    assert!(contents(&g) == copies[6].1);
    let _ = head;
    let p = g.commit().unwrap();
    assert_eq!(p.id, copies[6].0);
    assert!(!g.is_recovering());
    assert_eq!(g.points().len(), 1);
    // Replication resumes; the committed point is the baseline to go back to.
    let disks: Vec<_> = (0..2).map(|i| JournaledDisk::new(g.clone(), i)).collect();
    random_writes(&mut rng, &disks, 20);
    disks[0].flush().unwrap();
    g.recover(&PointSpec::Id(p.id), false, &mut |_, _| {})
        .unwrap();
    assert!(contents(&g) == copies[6].1);
    drop(disks);
    drop(g);
    let g = open(t.path(), 2);
    assert_eq!(g.points().len(), 2);
}

#[test]
fn concurrent_writers_batch_and_stay_exact() {
    let t = tempfile::tempdir().unwrap();
    let g = open(t.path(), 2);
    g.point(true, "base").unwrap();
    let base = contents(&g);
    std::thread::scope(|s| {
        for w in 0..6u64 {
            let g = g.clone();
            s.spawn(move || {
                let d = JournaledDisk::new(g, (w % 2) as usize);
                let mut rng = StdRng::seed_from_u64(w);
                for i in 0..150 {
                    // Overlapping writers on purpose: same regions, different data.
                    let off = rng.random_range(0..64u64) * 4096 + (w * 100);
                    d.write_at(&[w as u8 + 1; 6000], off, false).unwrap();
                    if i % 40 == 39 {
                        d.flush().unwrap();
                    }
                }
            });
        }
    });
    g.point(false, "").unwrap();
    let pts = g.points();
    assert!(pts.len() >= 2);
    g.recover(&PointSpec::Id(pts[0].id), false, &mut |_, _| {})
        .unwrap();
    assert!(contents(&g) == base);
}

#[test]
fn another_process_cannot_open_a_locked_group() {
    let t = tempfile::tempdir().unwrap();
    let _g = open(t.path(), 1);
    let err = Group::open(
        "g",
        &t.path().join("journal/g"),
        &specs(t.path(), 1),
        1 << 20,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_retention_volume_prunes_oldest_first_and_never_fails_a_write() {
    require!(support::is_root(), "mounting a small tmpfs needs root");
    let t = tempfile::tempdir().unwrap();
    let vol = t.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "mtkit-test-full"])
        .arg(&vol)
        .status()
        .unwrap();
    require!(st.success(), "cannot mount tmpfs here");
    let _m = Mount(vol.clone());
    let spec = DiskSpec {
        name: "d".into(),
        path: t.path().join("d.img"),
        size: Some(4 << 20),
    };
    let g = Group::open("g", &vol.join("g"), &[spec], 256 << 10).unwrap();
    let d = JournaledDisk::new(g.clone(), 0);
    let mut rng = StdRng::seed_from_u64(9);
    let noise: Vec<u8> = (0..4 << 20).map(|_| rng.random()).collect();
    d.write_at(&noise, 0, false).unwrap();
    g.point(true, "base").unwrap();
    let mut snaps = Vec::new();
    for round in 0..40u64 {
        let off = (round * 97 % 60) * 65536;
        // 64 KiB of fresh undo per round: 40 rounds need more than the 2 MiB volume.
        d.write_at(&vec![round as u8; 65536], off, false).unwrap();
        d.flush().unwrap();
        snaps.push((g.points().last().unwrap().id, contents(&g)));
    }
    let pts = g.points();
    assert!(pts.len() < 41, "some points were pruned: {}", pts.len());
    assert!(pts.len() > 5, "recent points are kept: {}", pts.len());
    let oldest = pts[0].id;
    let want = &snaps.iter().find(|(id, _)| *id == oldest).unwrap().1;
    let before = contents(&g);
    let err = g
        .recover(&PointSpec::Id(oldest), false, &mut |_, _| {})
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("nothing was changed"),
        "{err:#}"
    );
    assert!(contents(&g) == before && !g.is_recovering());
    // The admin makes room.
    let st = std::process::Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(&vol)
        .status()
        .unwrap();
    assert!(st.success());
    g.recover(&PointSpec::Id(oldest), false, &mut |_, _| {})
        .unwrap();
    assert!(
        contents(&g) == *want,
        "the oldest kept point recovers exactly"
    );
    g.commit().unwrap();
    let st = std::process::Command::new("mount")
        .args(["-o", "remount,size=2m"])
        .arg(&vol)
        .status()
        .unwrap();
    assert!(st.success());
    // One write whose undo cannot fit even an empty journal: it goes through anyway.
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    d.write_at(&big, 0, false).unwrap();
    let mut back = vec![0u8; big.len()];
    d.read_at(&mut back, 0).unwrap();
    assert!(back == big);
    assert!(
        g.in_initial_sync(),
        "history dropped: writes go through until a new baseline"
    );
    assert!(g.points().is_empty());
    d.flush().unwrap();
    g.point(true, "rebaseline").unwrap();
    d.write_at(&[1u8; 4096], 0, false).unwrap();
    d.flush().unwrap();
    g.recover(&PointSpec::LatestApp, false, &mut |_, _| {})
        .unwrap();
    d.read_at(&mut back, 0).unwrap();
    assert!(back == big);
}

#[test]
fn a_commit_interrupted_by_a_crash_is_finished_at_the_next_open() {
    let t = tempfile::tempdir().unwrap();
    let g = open(t.path(), 1);
    let d = JournaledDisk::new(g.clone(), 0);
    d.write_at(&[5u8; 8192], 0, false).unwrap();
    let base = g.point(true, "base").unwrap().unwrap();
    let want = contents(&g);
    d.write_at(&[6u8; 8192], 0, false).unwrap();
    d.flush().unwrap();
    g.recover(&PointSpec::Id(base.id), false, &mut |_, _| {})
        .unwrap();
    drop(d);
    drop(g);
    // The crash: the session says "committing", the journal was not rewritten yet.
    let state = t.path().join("journal/g/recover/state.json");
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    s["committing"] = true.into();
    std::fs::write(&state, s.to_string()).unwrap();
    let g = open(t.path(), 1);
    assert!(!g.is_recovering());
    assert_eq!(
        g.points().iter().map(|p| p.id).collect::<Vec<_>>(),
        [base.id]
    );
    assert!(contents(&g) == want);
    assert!(!state.exists());
}

#[test]
fn a_recover_cut_short_can_be_run_again_to_any_point() {
    let t = tempfile::tempdir().unwrap();
    let spec = DiskSpec {
        name: "big".into(),
        path: t.path().join("big.img"),
        size: Some(24 << 20),
    };
    let dir = t.path().join("journal/big");
    let g = Group::open("big", &dir, std::slice::from_ref(&spec), 8 << 20).unwrap();
    let d = JournaledDisk::new(g.clone(), 0);
    let mut rng = StdRng::seed_from_u64(3);
    let mut noise = vec![0u8; 24 << 20];
    rng.fill(&mut noise[..]);
    d.write_at(&noise, 0, false).unwrap();
    let p0 = g.point(true, "base").unwrap().unwrap();
    let at0 = contents(&g);
    // Overwrite most of the disk so that a recover takes several steps.
    d.write_at(&vec![0x11; 20 << 20], 4 << 20, false).unwrap();
    d.flush().unwrap();
    let p1 = g.points().last().unwrap().id;
    let at1 = contents(&g);
    d.write_at(&vec![0x22; 8 << 20], 0, false).unwrap();
    drop(d);
    // A crash after the first step of the rollback (the progress callback stops it).
    let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        g.recover(&PointSpec::Id(p0.id), false, &mut |done, total| {
            assert!(done < total, "stopped before the end");
            panic!("simulated crash");
        })
    }));
    assert!(cut.is_err());
    assert!(g.is_recovering());
    assert!(
        g.session().unwrap().unwrap().at.is_none(),
        "half-way is recorded"
    );
    drop(g);
    let g = Group::open("big", &dir, &[spec], 8 << 20).unwrap();
    assert!(g.is_recovering());
    g.recover(&PointSpec::Id(p1), false, &mut |_, _| {})
        .unwrap();
    assert!(contents(&g) == at1, "point 1 after a cut-short recover");
    g.recover(&PointSpec::Id(p0.id), false, &mut |_, _| {})
        .unwrap();
    assert!(contents(&g) == at0, "point 0 after a cut-short recover");
}
