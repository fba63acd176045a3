//! `mtkit doctor` against fixture roots (tests/fixtures/roots/gen.py): a healthy CentOS 6.6
//! master target passes, and each broken copy is found out by exactly the checks it breaks.

mod common;
use common::*;
use serde_json::Value;

fn doctor(args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let mut a = vec!["doctor", "--json"];
    a.extend(args);
    let out = run(&a);
    let v: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&out), stderr(&out)));
    (
        out.status.code(),
        v.as_array().unwrap().clone(),
        stderr(&out),
    )
}

fn root(name: &str) -> String {
    fixture(&format!("roots/{name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// (id, status, text the finding must contain) of every finding that is not a pass, besides
/// the configuration server check that a fixture root always skips.
fn not_passing(name: &str) -> (Option<i32>, Vec<(String, String, String)>) {
    let (code, v, _) = doctor(&["--root", &root(name)]);
    let cs = v.iter().find(|f| f["id"] == "config-server").unwrap();
    assert_eq!(cs["status"], "skip", "{name}: {cs}");
    let rest = v
        .iter()
        .filter(|f| f["status"] != "pass" && f["id"] != "config-server")
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                format!(
                    "{} | {}",
                    f["found"].as_str().unwrap(),
                    f["remedy"].as_str().unwrap()
                ),
            )
        })
        .collect();
    (code, rest)
}

/// A finding a root must have: check id, status, words in "found | remedy".
type Expect = (&'static str, &'static str, &'static str);

#[test]
fn every_fixture_root_has_exactly_its_findings() {
    // root, exit code, [(check id, status, words in found|remedy)]
    let cases: &[(&str, i32, &[Expect])] = &[
        ("healthy", 0, &[]),
        (
            "centos-6.5",
            0,
            &[("os-release", "warn", "CentOS release 6.5")],
        ),
        (
            "small-vm",
            1,
            &[
                ("cpu", "fail", "2 cores, need 4"),
                ("memory", "fail", "3.7 GiB, need 6 GiB"),
            ],
        ),
        (
            "small-os-disk",
            1,
            &[("os-disk-size", "fail", "sda: 60.0 GiB, need 100.0 GiB")],
        ),
        (
            "missing-programs",
            1,
            &[
                ("program-lsscsi", "fail", "yum install lsscsi"),
                (
                    "program-multipath",
                    "fail",
                    "yum install device-mapper-multipath",
                ),
            ],
        ),
        (
            "no-uuid",
            1,
            &[
                ("scsi-ids", "fail", "sdb missing, sdc missing, sdd missing"),
                ("multipath", "fail", "no /etc/multipath.conf"),
            ],
        ),
        (
            "cloned",
            1,
            &[(
                "scsi-ids",
                "fail",
                "sdb duplicate, sdc duplicate (mtkit scsi-ids) | two disks report one ID: the VM was cloned",
            )],
        ),
        (
            "os-on-lvm",
            1,
            &[(
                "os-disk-lvm",
                "fail",
                "sda holds LVM volumes VolGroup-lv_root; / is on /dev/mapper/VolGroup-lv_root",
            )],
        ),
        ("no-multipath", 1, &[("multipath", "fail", "mtkit apply")]),
        (
            "retention-unmounted",
            1,
            &[("retention", "fail", "nothing mounted at /mnt/retention")],
        ),
        (
            "retention-vfat",
            1,
            &[("retention", "fail", "/mnt/retention is vfat")],
        ),
        (
            "retention-small",
            0,
            &[("retention", "warn", "200.0 GiB; the policy wants 1T")],
        ),
        (
            "nic-nm",
            1,
            &[("nic", "fail", "eth0: ONBOOT=no, NM_CONTROLLED=yes")],
        ),
        (
            "hosts-missing",
            1,
            &[(
                "hosts",
                "fail",
                "mt01.example.local is not in /etc/hosts | add \"192.0.2.10 mt01.example.local mt01\"",
            )],
        ),
        (
            "hosts-loopback",
            1,
            &[(
                "hosts",
                "fail",
                "-> 127.0.0.1 (the MT's address is 192.0.2.10)",
            )],
        ),
        (
            "kdump-small",
            1,
            &[("kdump", "fail", "2.0 GiB size), RAM 7.7 GiB")],
        ),
        (
            "writer-stopped",
            1,
            &[("writer", "fail", "not running | service mtkit-writer start")],
        ),
        (
            "reiserfs-tools-missing",
            1,
            &[
                ("program-mkreiserfs", "fail", "yum install reiserfs-utils"),
                ("program-reiserfsck", "fail", "yum install reiserfs-utils"),
            ],
        ),
    ];
    let listed = read(&fixture("roots/VARIANTS.txt"));
    assert_eq!(
        listed.lines().filter(|l| !l.starts_with('#')).count(),
        cases.len(),
        "a case per root"
    );
    for (name, code, want) in cases {
        let (got_code, got) = not_passing(name);
        assert_eq!(got.len(), want.len(), "{name}: {got:#?}");
        for ((id, st, text), (gid, gst, gtext)) in want.iter().zip(&got) {
            assert_eq!((*id, *st), (gid.as_str(), gst.as_str()), "{name}: {got:#?}");
            assert!(
                gtext.contains(text),
                "{name}/{id}: {gtext:?} lacks {text:?}"
            );
        }
        assert_eq!(got_code, Some(*code), "{name}");
    }
}

#[test]
fn healthy_root_table_lists_every_check() {
    let out = run(&["doctor", "--root", &root("healthy")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let t = stdout(&out);
    assert!(t.starts_with("CHECK"));
    for id in [
        "os-release",
        "cpu",
        "memory",
        "os-disk-size",
        "program-kexec",
        "scsi-ids",
        "multipath",
        "os-disk-lvm",
        "retention",
        "nic",
        "hosts",
        "config-server",
        "kdump",
        "writer",
    ] {
        assert!(t.lines().any(|l| l.starts_with(id)), "{id} missing:\n{t}");
    }
}

#[test]
fn config_server_is_reached_over_tcp_on_the_live_root() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("appliance.toml");
    std::fs::write(
        &cfg,
        format!("[configuration-server]\naddress = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let (_, v, _) = doctor(&["--config", cfg.to_str().unwrap()]);
    let f = v.iter().find(|f| f["id"] == "config-server").unwrap();
    assert_eq!(f["status"], "pass", "{f}");
    drop(l);
    // Nothing listens on the port any more: a refusal is a failure with a remedy.
    let (_, v, _) = doctor(&["--config", cfg.to_str().unwrap()]);
    let f = v.iter().find(|f| f["id"] == "config-server").unwrap();
    assert_eq!(f["status"], "fail", "{f}");
    assert!(f["remedy"].as_str().unwrap().contains("TCP 443"));
    let (_, v, _) = doctor(&["--offline", "--config", cfg.to_str().unwrap()]);
    let f = v.iter().find(|f| f["id"] == "config-server").unwrap();
    assert_eq!(f["status"], "skip");
}

#[test]
fn bad_root_is_bad_input() {
    let out = run(&["doctor", "--root", "/nonexistent/mtkit-doctor-root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a folder"));
}
