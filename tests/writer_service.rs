//! The writer service end to end: `mtkit writer run` as a child, real NBD clients
//! (qemu-io, qemu-img, nbdinfo, nbdcopy), points, recovery, commit and views.

mod common;
#[path = "writer/env.rs"]
mod env;

use common::have;
use env::{Env, Nbd, control, point_ids};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn qemu_io(uri: &str, cmds: &[&str]) -> String {
    let mut c = Command::new("qemu-io");
    c.args(["-f", "raw"]);
    for x in cmds {
        c.args(["-c", x]);
    }
    c.arg(uri);
    let out = ok(&mut c);
    assert!(!out.contains("Pattern verification failed"), "{out}");
    out
}

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn replicate_points_recover_views_and_commit() {
    require!(
        have("qemu-io") && have("qemu-img") && have("nbdinfo") && have("nbdcopy"),
        "qemu-utils and libnbd-bin are needed"
    );
    let env = Env::new(&[
        ("vm1-d0", "vm1", 4 * MIB),
        ("vm1-d1", "vm1", 4 * MIB),
        ("vm2-d0", "vm2", 2 * MIB),
    ]);
    let mut svc = env.start();
    let sock = env.control();
    // The control socket is root-only: 0600 in a 0700 folder.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);

    // nbdinfo lists every disk with its size.
    let list = ok(Command::new("nbdinfo").args(["--list", "--json", &env.uri("")]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let mut names: Vec<(String, u64)> = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["export-name"].as_str().unwrap().to_string(),
                e["export-size"].as_u64().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("vm1-d0".into(), 4 * MIB),
            ("vm1-d1".into(), 4 * MIB),
            ("vm2-d0".into(), 2 * MIB)
        ]
    );

    // Initial sync: qemu-img convert -n an image in, nbdcopy another, and compare.
    let src = env.path("src.img");
    ok(Command::new("qemu-img").args(["create", "-f", "raw", src.to_str().unwrap(), "4M"]));
    qemu_io(
        src.to_str().unwrap(),
        &["write -P 0x5a 0 1M", "write -P 0xa5 2M 512k"],
    );
    ok(Command::new("qemu-img").args([
        "convert",
        "-n",
        "-f",
        "raw",
        "-O",
        "raw",
        src.to_str().unwrap(),
        &env.uri("vm1-d0"),
    ]));
    ok(Command::new("qemu-img").args([
        "compare",
        "-f",
        "raw",
        "-F",
        "raw",
        src.to_str().unwrap(),
        &env.uri("vm1-d0"),
    ]));
    ok(Command::new("nbdcopy").args([
        "--connections=2",
        src.to_str().unwrap(),
        &env.uri("vm1-d1"),
    ]));
    assert_eq!(read(&env.disk("vm1-d1")), read(&src));
    assert!(
        point_ids(&sock, "vm1").is_empty(),
        "initial sync makes no points"
    );
    let st = control(&sock, r#"{"cmd":"status"}"#).unwrap();
    assert_eq!(st["groups"][0]["state"], "initial-sync");

    // Baseline, then rounds of overwrite + flush (crash points) and bookmarks (app points).
    let o = env.mtkit(&["bookmark", "--group", "vm1", "--label", "baseline"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap = |env: &Env| (read(&env.disk("vm1-d0")), read(&env.disk("vm1-d1")));
    let mut copies = vec![(point_ids(&sock, "vm1")[0], snap(&env))];
    for round in 0..4u32 {
        let pat = 0x10 + round;
        let off = u64::from(round) * 700 * 1024;
        qemu_io(
            &env.uri("vm1-d0"),
            &[
                &format!("write -P {pat} {off} 300k"),
                "flush",
                &format!("read -P {pat} {off} 300k"),
            ],
        );
        qemu_io(
            &env.uri("vm1-d1"),
            &[
                &format!("write -z {} 64k", off + 4096),
                &format!("write -P {} 3M 8k", pat + 1),
            ],
        );
        if round % 2 == 1 {
            let o = env.mtkit(&[
                "bookmark",
                "--group",
                "vm1",
                "--label",
                &format!("r{round}"),
            ]);
            assert!(o.status.success());
        }
        let ids = point_ids(&sock, "vm1");
        copies.push((*ids.last().unwrap(), snap(&env)));
    }
    // Points are listed with kinds and labels.
    let o = env.mtkit(&["points", "--group", "vm1"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("baseline") && text.contains("app") && text.contains("crash"),
        "{text}"
    );

    // Test failover: every disk at every point through `<disk>@<point>`, read-only.
    for (id, (d0, d1)) in &copies {
        for (disk, want) in [("vm1-d0", d0), ("vm1-d1", d1)] {
            let copy = env.path("want.img");
            std::fs::write(&copy, want).unwrap();
            ok(Command::new("qemu-img").args([
                "compare",
                "-f",
                "raw",
                "-F",
                "raw",
                copy.to_str().unwrap(),
                &env.uri(&format!("{disk}@{id}")),
            ]));
        }
    }
    let ro = Command::new("qemu-io")
        .args([
            "-f",
            "raw",
            "-c",
            "write 0 4k",
            &env.uri(&format!("vm1-d0@{}", copies[0].0)),
        ])
        .output()
        .unwrap();
    let ro_out =
        String::from_utf8_lossy(&ro.stdout).to_string() + &String::from_utf8_lossy(&ro.stderr);
    assert!(
        ro_out.contains("read-only") || ro_out.contains("Read-only") || !ro.status.success(),
        "{ro_out}"
    );

    // Recover in place, to each point in turn and forward again, while vm2 keeps working.
    let before_vm2 = read(&env.disk("vm2-d0"));
    for k in [2, 0, 4, 1, 3] {
        let (id, want) = &copies[k];
        let o = env.mtkit(&["recover", "--group", "vm1", "--to", &id.to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("100%"));
        assert!(snap(&env) == *want, "vm1 differs from point {id}");
        // Exports of a group under recovery are refused.
        let r = Command::new("qemu-io")
            .args(["-f", "raw", "-c", "read 0 4k", &env.uri("vm1-d0")])
            .output()
            .unwrap();
        assert!(!r.status.success());
    }
    qemu_io(&env.uri("vm2-d0"), &["write -P 7 0 4k"]);
    assert_ne!(read(&env.disk("vm2-d0")), before_vm2);
    let st = control(&sock, r#"{"cmd":"status"}"#).unwrap();
    assert_eq!(st["groups"][0]["state"], "recovering");
    // Dry run to latest-app changes nothing.
    let o = env.mtkit(&[
        "recover",
        "--group",
        "vm1",
        "--to",
        "latest-app",
        "--dry-run",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("would roll"));
    assert!(snap(&env) == copies[3].1);
    // Bad input: exit 2.
    assert_eq!(
        env.mtkit(&["recover", "--group", "vm1", "--to", "yesterday"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        env.mtkit(&["recover", "--group", "nope", "--to", "latest"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        env.mtkit(&["commit", "--group", "vm2"]).status.code(),
        Some(2)
    );

    let o = env.mtkit(&["commit", "--group", "vm1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(point_ids(&sock, "vm1"), [copies[3].0]);
    // Replication resumes.
    qemu_io(
        &env.uri("vm1-d0"),
        &["write -P 0x77 0 64k", "read -P 0x77 0 64k"],
    );

    // SIGTERM drains and exits 0; offline, points and recover still work on the journal.
    let st = svc.stop();
    assert!(st.success(), "{st}: {}", env.log());
    let o = env.mtkit(&["points", "--group", "vm1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pts: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pts[0]["points"].as_array().unwrap().len(), 2, "{pts}");
    let o = env.mtkit(&[
        "recover",
        "--group",
        "vm1",
        "--to",
        &copies[3].0.to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(snap(&env) == copies[3].1);
    let o = env.mtkit(&["writer", "status"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("recovering"));
}

#[test]
fn tls_clients_may_open_only_their_groups_disks() {
    require!(have("qemu-io"), "qemu-io is needed (qemu-utils)");
    let env = Env::new(&[("vm1-d0", "vm1", MIB), ("vm2-d0", "vm2", MIB)]);
    let pki = env.path("pki");
    let o = env.mtkit(&[
        "writer",
        "certs",
        "--out",
        pki.to_str().unwrap(),
        "--client",
        "src-vm1",
        "--client",
        "src-vm2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg = cfg.replacen(
        "[writer]\n",
        &format!("[writer.tls]\ndir = \"{}\"\n\n[writer]\n", pki.display()),
        1,
    );
    // [writer.tls] must follow [writer]'s keys in TOML: move it after them.
    let (head, rest) = cfg.split_once("[writer]\n").unwrap();
    let (writer_keys, disks) = rest.split_once("\n[[writer.disk]]").unwrap();
    cfg = format!(
        "[writer]\n{writer_keys}\n{head}\n[[writer.group]]\nname = \"vm1\"\nclients = [\"src-vm1\"]\n\n[[writer.group]]\nname = \"vm2\"\nclients = [\"src-vm2\"]\n\n[[writer.disk]]{disks}"
    );
    std::fs::write(&env.config, cfg).unwrap();
    let _svc = env.start();
    let io = |client: &str, export: &str, pat: u8| {
        let creds = format!(
            "tls-creds-x509,id=tls0,dir={},endpoint=client",
            pki.join("clients").join(client).display()
        );
        let opts = format!(
            "driver=nbd,host=127.0.0.1,port={},export={export},tls-creds=tls0",
            env.port
        );
        let o = Command::new("qemu-io")
            .args(["--object", &creds, "--image-opts", &opts])
            .args([
                "-c",
                &format!("write -P {pat} 0 64k"),
                "-c",
                &format!("read -P {pat} 0 64k"),
            ])
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success() && !text.contains("fail"), text)
    };
    let (ok, text) = io("src-vm1", "vm1-d0", 0x42);
    assert!(ok, "{text}");
    let (ok, text) = io("src-vm2", "vm1-d0", 0x43);
    assert!(!ok, "a client of another group was let in: {text}");
    assert!(
        std::fs::read(env.disk("vm1-d0")).unwrap()[..65536]
            .iter()
            .all(|&b| b == 0x42)
    );
    let (ok, text) = io("src-vm2", "vm2-d0", 0x44);
    assert!(ok, "{text}");
    assert!(
        env.log().contains("client not allowed for group vm1"),
        "{}",
        env.log()
    );
}

/// Every file under `dir` with its contents (folders as empty entries).
fn tree(dir: &std::path::Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.insert(format!("{}/", p.display()), Vec::new());
            tree(&p, out);
        } else if p.extension().is_none_or(|x| x != "log") {
            out.insert(p.display().to_string(), read(&p));
        }
    }
}

#[test]
fn a_corrupt_recovery_session_closes_its_group_and_changes_nothing() {
    let env = Env::new(&[("vm1-d0", "vm1", MIB), ("vm2-d0", "vm2", MIB)]);
    let sock = env.control();
    let mut svc = env.start();
    let mut c = Nbd::connect(env.port, "vm1-d0").unwrap();
    c.write(0, &[1; 4096]).unwrap();
    let base = control(&sock, r#"{"cmd":"bookmark","group":"vm1","label":"base"}"#).unwrap();
    c.write(0, &[2; 4096]).unwrap();
    c.flush().unwrap();
    drop(c);
    let to = base["id"].as_u64().unwrap();
    control(
        &sock,
        &format!(r#"{{"cmd":"recover","group":"vm1","to":"{to}","dry_run":false}}"#),
    )
    .unwrap();
    assert!(svc.stop().success(), "{}", env.log());
    // The session says where the disks are; garbage in it must not read as "no session".
    let state = env.path("journal/vm1/recover/state.json");
    std::fs::write(&state, b"{\"at\": 1, \"sta").unwrap();
    let mut before = Default::default();
    tree(env.dir.path(), &mut before);

    for args in [
        &["commit", "--group", "vm1"][..],
        &["recover", "--group", "vm1", "--to", "latest"],
        &["points", "--group", "vm1"],
    ] {
        let o = env.mtkit(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("state.json is corrupt"), "{args:?}: {err}");
    }
    // Status answers, for the other group too, and names the closed group's file.
    let o = env.mtkit(&["writer", "status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("group vm1 CLOSED") && out.contains("state.json is corrupt"),
        "{out}"
    );
    assert!(out.contains("group vm2: initial-sync"), "{out}");
    let mut after = Default::default();
    tree(env.dir.path(), &mut after);
    assert!(before == after, "a refused command changed files");

    // The service starts for vm2 and keeps vm1 closed, saying why.
    let _svc = env.start();
    let mut c = Nbd::connect(env.port, "vm2-d0").unwrap();
    c.write(0, &[3; 4096]).unwrap();
    c.flush().unwrap();
    assert!(Nbd::connect(env.port, "vm1-d0").is_err());
    let st = control(&sock, r#"{"cmd":"status"}"#).unwrap();
    assert_eq!(st["closed"][0]["name"], "vm1", "{st}");
    let err = control(&sock, r#"{"cmd":"commit","group":"vm1"}"#).unwrap_err();
    assert!(err.contains("state.json is corrupt"), "{err}");
    assert!(env.log().contains("group vm1 is closed"), "{}", env.log());
    assert_eq!(std::fs::read(&state).unwrap(), b"{\"at\": 1, \"sta");
}
