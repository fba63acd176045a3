//! A damaged journal with the real service and real clients (qemu-io, nbdcopy): bytes
//! flipped by hand are found and reported as lost points, never cut or recovered from;
//! only the writer's own open cuts a torn last batch; and one group's damage leaves the
//! other groups serving.

mod common;
#[path = "writer/env.rs"]
mod env;

use common::have;
use env::{Env, control, metric, metrics, point_ids};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// Header bytes of a journal record of format version 1 and 2.
fn header_len(version: u8) -> u64 {
    if version == 1 { 56 } else { 64 }
}
const KIND_UNDO: u8 = 1;

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn qemu_io(uri: &str, cmds: &[&str]) -> Output {
    let mut c = Command::new("qemu-io");
    c.args(["-f", "raw"]);
    for x in cmds {
        c.args(["-c", x]);
    }
    c.arg(uri).output().unwrap()
}

fn qemu_io_ok(uri: &str, cmds: &[&str]) {
    let o = qemu_io(uri, cmds);
    assert!(o.status.success(), "qemu-io {cmds:?}: {}", text(&o));
}

fn bookmark(env: &Env, group: &str) -> u64 {
    let req = format!(r#"{{"cmd":"bookmark","group":"{group}","label":"base"}}"#);
    control(&env.control(), &req).unwrap()["id"]
        .as_u64()
        .unwrap()
}

fn segments(env: &Env, group: &str) -> Vec<PathBuf> {
    let dir = env.path(&format!("journal/{group}/journal"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// A record of a segment as the test reads it: (offset of its payload in the file, kind,
/// seq, disk offset). (Either format version: the test also runs against older builds.)
fn records(seg: &Path) -> Vec<(u64, u8, u64, u64)> {
    let b = std::fs::read(seg).unwrap();
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 56 <= b.len() {
        assert_eq!(&b[pos..pos + 4], b"MTJR", "{} at {pos}", seg.display());
        let head = header_len(b[pos + 4]) as usize;
        let len = u32::from_le_bytes(b[pos + 20..pos + 24].try_into().unwrap()) as usize;
        out.push((
            (pos + head) as u64,
            b[pos + 5],
            u64_at(pos + 8),
            u64_at(pos + 24),
        ));
        pos += head + len;
    }
    out
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

/// Every file under `dir` with its bytes: equal before and after means nothing changed.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
                out.insert(p, Vec::new());
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The disk's bytes when `fills` ((offset, length, byte) in order) are written over `base`.
fn image(size: u64, base: u8, fills: &[(u64, u64, u8)]) -> Vec<u8> {
    let mut v = vec![base; size as usize];
    for &(o, l, b) in fills {
        v[o as usize..(o + l) as usize].fill(b);
    }
    v
}

fn points_json(env: &Env, group: &str) -> Vec<serde_json::Value> {
    let o = env.mtkit(&["points", "--group", group, "--json"]);
    assert!(o.status.success(), "points: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["points"].as_array().unwrap().clone()
}

#[test]
fn a_flipped_payload_byte_in_the_newest_segment_loses_only_the_points_that_need_it() {
    require!(
        have("qemu-io") && have("nbdcopy"),
        "qemu-utils and libnbd-bin are needed"
    );
    let env = Env::new(&[("d0", "vm1", MIB)]);
    let mut svc = env.start();
    let uri = env.uri("d0");
    qemu_io_ok(&uri, &["write -P 1 0 1M"]);
    let p1 = bookmark(&env, "vm1");
    // Each qemu-io ends with a flush: a point after each write.
    qemu_io_ok(&uri, &["write -P 2 0 64k"]);
    qemu_io_ok(&uri, &["write -P 3 64k 64k"]);
    qemu_io_ok(&uri, &["write -P 4 0 64k"]);
    let ids = point_ids(&env.control(), "vm1");
    assert_eq!(ids.len(), 4, "{ids:?}");
    let (p2, p3) = (ids[1], ids[2]);
    assert_eq!(svc.stop().code(), Some(0));

    // The old contents of 0..64k saved by the first overwrite (seq between p1 and p2): only
    // a recover to p1 needs them.
    let seg = segments(&env, "vm1").pop().unwrap();
    let (at, ..) = *records(&seg)
        .iter()
        .find(|r| r.1 == KIND_UNDO && r.3 == 0 && r.2 > p1 && r.2 < p2)
        .expect("the undo record of the first overwrite");
    flip(&seg, at + 1000);
    let journal = env.path("journal");
    let before = tree(&journal);
    let disk = std::fs::read(env.disk("d0")).unwrap();

    // Listings cut nothing and show every point, p1 marked lost with the reason.
    let points = points_json(&env, "vm1");
    let listed: Vec<u64> = points.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(listed, ids, "points vanished");
    let lost = points[0]["lost"].as_str().unwrap_or_default();
    assert!(
        lost.contains("damaged") && lost.contains(&seg.display().to_string()),
        "{points:?}"
    );
    assert!(
        points[1..].iter().all(|p| p.get("lost").is_none()),
        "{points:?}"
    );
    let o = env.mtkit(&["writer", "status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["groups"][0]["lost-points"], 1, "{st}");
    assert!(tree(&journal) == before, "a listing changed the journal");

    // A recover to the lost point is refused: exit 1, nothing written.
    let o = env.mtkit(&["recover", "--group", "vm1", "--to", &p1.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cannot be recovered"), "{}", text(&o));
    assert!(
        tree(&journal) == before,
        "a refused recover changed the journal"
    );
    assert_eq!(std::fs::read(env.disk("d0")).unwrap(), disk);

    // The service says the same, serves a view of a point after the damage, refuses one
    // of the lost point, and recovers to a point that does not need the damaged record.
    let mut svc = env.start();
    let m = metrics(env.metrics_port);
    assert_eq!(metric(&m, "mtkit_points_lost{group=\"vm1\"}"), 1.0, "{m}");
    let copy = env.path("p3.img");
    let o = Command::new("nbdcopy")
        .args([&env.uri(&format!("d0@{p3}")), copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let at_p3 = image(MIB, 1, &[(0, 64 * KIB, 2), (64 * KIB, 64 * KIB, 3)]);
    assert!(std::fs::read(&copy).unwrap() == at_p3, "view of p3 differs");
    let o = Command::new("nbdcopy")
        .args([&env.uri(&format!("d0@{p1}")), "null:"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "a view of a lost point was served");
    assert!(env.log().contains("cannot be recovered"), "{}", env.log());
    let o = env.mtkit(&["recover", "--group", "vm1", "--to", &p2.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(svc.stop().code(), Some(0));
    assert!(
        std::fs::read(env.disk("d0")).unwrap() == image(MIB, 1, &[(0, 64 * KIB, 2)]),
        "the disk is not at p2"
    );
}

#[test]
fn a_flipped_payload_byte_in_segment_1_of_5_is_never_written_to_the_disk() {
    require!(have("qemu-io"), "qemu-utils is needed");
    let env = Env::with_writer(&[("d0", "vm1", 4 * MIB)], "journal-segment-size = \"1M\"\n");
    let mut svc = env.start();
    let uri = env.uri("d0");
    qemu_io_ok(&uri, &["write -P 1 0 4M"]);
    let p1 = bookmark(&env, "vm1");
    // 16 overwrites of 256 KiB, a point after each: about 4 MiB of undo in 1 MiB segments.
    let mut cmds = Vec::new();
    for k in 0..16u64 {
        cmds.push(format!("write -P {} {} 256k", k + 2, k * 256 * KIB));
        cmds.push("flush".into());
    }
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io_ok(&uri, &cmds);
    let ids = point_ids(&env.control(), "vm1");
    assert_eq!(svc.stop().code(), Some(0));
    let segs = segments(&env, "vm1");
    assert!(segs.len() >= 5, "{segs:?}");
    assert!(segs[0].ends_with("seg-0000000001.log"));
    let (at, _, seq, _) = *records(&segs[0])
        .iter()
        .find(|r| r.1 == KIND_UNDO && r.3 == 0)
        .expect("the first overwrite's undo is in segment 1");
    assert!(seq > p1 && seq < ids[1]);
    flip(&segs[0], at + 5000);
    let disk = std::fs::read(env.disk("d0")).unwrap();
    let before = tree(&env.path("journal"));

    let o = env.mtkit(&["recover", "--group", "vm1", "--to", &p1.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        std::fs::read(env.disk("d0")).unwrap() == disk,
        "the disk changed"
    );
    assert!(tree(&env.path("journal")) == before, "the journal changed");
    // Every later point is whole: a recover to the second point is byte-exact.
    let p2 = ids[1];
    let o = env.mtkit(&["recover", "--group", "vm1", "--to", &p2.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read(env.disk("d0")).unwrap() == image(4 * MIB, 1, &[(0, 256 * KIB, 2)]),
        "the disk is not at point {p2}"
    );
}

#[test]
fn a_torn_tail_is_cut_only_when_the_writer_opens_the_journal() {
    require!(have("qemu-io"), "qemu-utils is needed");
    let env = Env::new(&[("d0", "vm1", MIB)]);
    let mut svc = env.start();
    let uri = env.uri("d0");
    qemu_io_ok(&uri, &["write -P 1 0 1M"]);
    bookmark(&env, "vm1");
    qemu_io_ok(&uri, &["write -P 2 0 64k"]);
    let ids = point_ids(&env.control(), "vm1");
    assert_eq!(svc.stop().code(), Some(0));
    let seg = segments(&env, "vm1").pop().unwrap();
    let good = std::fs::read(&seg).unwrap();
    // What a crash mid-append leaves: the start of a record, then zeros.
    let mut torn = good.clone();
    torn.extend_from_slice(b"MTJR\x02\x01\x00\x00");
    torn.resize(good.len() + 4096, 0);
    std::fs::write(&seg, &torn).unwrap();

    for args in [
        &["points", "--group", "vm1"][..],
        &["writer", "status", "--json"][..],
    ] {
        let o = env.mtkit(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            std::fs::read(&seg).unwrap() == torn,
            "{args:?} cut the journal"
        );
    }
    let _svc = env.start();
    assert!(env.log().contains("cutting a torn tail"), "{}", env.log());
    assert!(
        std::fs::read(&seg).unwrap() == good,
        "the torn batch was not cut"
    );
    assert_eq!(point_ids(&env.control(), "vm1"), ids);
}

#[test]
fn a_damaged_group_leaves_the_other_groups_serving() {
    require!(have("qemu-io"), "qemu-utils is needed");
    let env = Env::with_writer(
        &[
            ("a0", "vm1", 2 * MIB),
            ("b0", "vm2", 2 * MIB),
            ("c0", "vm3", 2 * MIB),
        ],
        "journal-segment-size = \"1M\"\n",
    );
    let mut svc = env.start();
    for (disk, group) in [("a0", "vm1"), ("b0", "vm2"), ("c0", "vm3")] {
        qemu_io_ok(&env.uri(disk), &["write -P 1 0 1M", "write -P 1 1M 1M"]);
        bookmark(&env, group);
    }
    let mut cmds = Vec::new();
    for k in 0..8u64 {
        cmds.push(format!("write -P {} {} 256k", k + 2, k * 256 * KIB));
        cmds.push("flush".into());
    }
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io_ok(&env.uri("a0"), &cmds);
    let vm1_points = point_ids(&env.control(), "vm1").len();
    assert_eq!(svc.stop().code(), Some(0));
    // vm1: a record header in the oldest of its segments; vm2: a garbage session file.
    let segs = segments(&env, "vm1");
    assert!(segs.len() >= 3, "{segs:?}");
    let (undo, ..) = *records(&segs[0]).iter().find(|r| r.1 == KIND_UNDO).unwrap();
    flip(&segs[0], undo - 20); // in the header, before the payload

    let session = env.path("journal/vm2/recover/state.json");
    std::fs::create_dir_all(session.parent().unwrap()).unwrap();
    std::fs::write(&session, b"\x00{garbage").unwrap();

    // Offline listings answer for the healthy groups.
    let o = env.mtkit(&["points"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = env.mtkit(&["points", "--group", "vm2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("closed"), "{}", text(&o));

    let _svc = env.start();
    let st = control(&env.control(), r#"{"cmd":"status"}"#).unwrap();
    let names: Vec<&str> = st["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vm1", "vm3"], "{st}");
    assert_eq!(st["closed"][0]["name"], "vm2", "{st}");
    let reason = st["closed"][0]["reason"].as_str().unwrap();
    assert!(reason.contains(&session.display().to_string()), "{reason}");
    let vm1 = &st["groups"][0];
    assert!(vm1["lost-points"].as_u64().unwrap() >= 1, "{vm1}");
    assert_eq!(
        vm1["points"].as_u64().unwrap() as usize,
        vm1_points,
        "{vm1}"
    );
    assert!(vm1["warnings"].to_string().contains("damaged"), "{vm1}");
    let m = metrics(env.metrics_port);
    assert_eq!(metric(&m, "mtkit_group_closed{group=\"vm2\"}"), 1.0, "{m}");
    assert_eq!(metric(&m, "mtkit_group_closed{group=\"vm3\"}"), 0.0, "{m}");
    assert!(metric(&m, "mtkit_points_lost{group=\"vm1\"}") >= 1.0, "{m}");
    assert!(env.log().contains("group closed"), "{}", env.log());

    // Replication goes on for vm1 (after its damage) and vm3; vm2's export is refused.
    qemu_io_ok(&env.uri("c0"), &["write -P 9 0 64k"]);
    qemu_io_ok(&env.uri("a0"), &["write -P 9 0 64k"]);
    let o = qemu_io(&env.uri("b0"), &["read 0 4k"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(env.log().contains("group vm2 is closed"), "{}", env.log());
    assert_eq!(point_ids(&env.control(), "vm3").len(), 2);
}
