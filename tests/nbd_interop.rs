//! The NBD server against real clients: qemu-io, qemu-img, nbdinfo, nbdcopy (TCP and Unix).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use mtkit::writer::nbd::ServerOptions;
use support::have;
use support::nbd::{Files, Running, image};

const MIB: usize = 1 << 20;

/// Runs a client program and returns its stdout; panics with its output when it fails.
fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{prog} {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(!out.status.success(), "{prog} {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn start(dir: &Path, exports: &[(&str, &Path, bool)]) -> Running {
    Running::start(Arc::new(Files::new(exports)), ServerOptions::default(), dir)
}

#[test]
fn qemu_io_writes_patterns_and_reads_them_back() {
    require!(have("qemu-io"), "qemu-io not installed (qemu-utils)");
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "disk.img", 8 * MIB, |_| 0x11);
    let srv = start(dir.path(), &[("disk", &disk, false)]);
    let uri = srv.uri("disk");
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0xab 0 1M",
            "-c",
            "write -P 0xcd -f 3M 512",
            "-c",
            "read -P 0xab 0 1M",
            "-c",
            "read -P 0xcd 3M 512",
            "-c",
            "read -P 0x11 4M 1M",
            "-c",
            "flush",
            &uri,
        ],
    );
    srv.shutdown();
    let data = std::fs::read(&disk).unwrap();
    assert!(data[..MIB].iter().all(|&b| b == 0xab));
    assert!(data[MIB..3 * MIB].iter().all(|&b| b == 0x11));
    assert!(data[3 * MIB..3 * MIB + 512].iter().all(|&b| b == 0xcd));
    assert!(data[3 * MIB + 512..].iter().all(|&b| b == 0x11));
}

#[test]
fn qemu_img_convert_then_compare() {
    require!(have("qemu-img"), "qemu-img not installed (qemu-utils)");
    let dir = tempfile::tempdir().unwrap();
    let src = image(dir.path(), "src.img", 16 * MIB, |i| {
        (i / 4096 * 7 + i) as u8
    });
    let target = image(dir.path(), "target.img", 16 * MIB, |_| 0);
    let srv = start(dir.path(), &[("t", &target, false)]);
    let uri = srv.uri("t");
    let s = src.to_str().unwrap();
    run(
        "qemu-img",
        &["convert", "-n", "-f", "raw", "-O", "raw", s, &uri],
    );
    let out = run("qemu-img", &["compare", "-f", "raw", "-F", "raw", s, &uri]);
    assert!(out.contains("Images are identical"), "{out}");
    srv.shutdown();
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&target).unwrap());
}

#[test]
fn nbdinfo_lists_exports_with_sizes_and_json() {
    require!(have("nbdinfo"), "nbdinfo not installed (libnbd-bin)");
    let dir = tempfile::tempdir().unwrap();
    let a = image(dir.path(), "a.img", 3 * MIB, |_| 0);
    let b = image(dir.path(), "b.img", 5 * MIB, |_| 0);
    let srv = start(
        dir.path(),
        &[("vm1-disk0", &a, false), ("vm1-disk1@p1", &b, true)],
    );
    let base = format!("nbd://127.0.0.1:{}", srv.port);
    let list = run("nbdinfo", &["--list", &base]);
    assert!(list.contains("export=\"vm1-disk0\""), "{list}");
    assert!(list.contains("export-size: 3145728"), "{list}");
    assert!(list.contains("export=\"vm1-disk1@p1\""), "{list}");
    assert!(list.contains("export-size: 5242880"), "{list}");
    assert!(list.contains("description: test disk vm1-disk0"), "{list}");

    let json = run("nbdinfo", &["--json", &srv.uri("vm1-disk0")]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["protocol"], "newstyle-fixed");
    let e = &v["exports"][0];
    assert_eq!(e["export-name"], "vm1-disk0");
    assert_eq!(e["export-size"], 3 * MIB as u64);
    for flag in [
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_multi_conn",
    ] {
        assert_eq!(e[flag], true, "{flag} in {json}");
    }
    assert_eq!(e["is_read_only"], false);
    assert_eq!(e["block_size_maximum"], 32 * MIB as u64);

    let json = run("nbdinfo", &["--json", &srv.uri("vm1-disk1@p1")]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["exports"][0]["is_read_only"], true);
    assert_eq!(v["exports"][0]["can_trim"], false);

    let err = fails("nbdinfo", &[&srv.uri("nosuch")]);
    assert!(err.contains("nosuch"), "{err}");
    // NBD_REP_ERR_POLICY (libnbd words it its own way; tests/nbd_hostile.rs checks the code).
    let err = fails("nbdinfo", &[&srv.uri("refused")]);
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn nbdcopy_with_four_connections_both_ways() {
    require!(have("nbdcopy"), "nbdcopy not installed (libnbd-bin)");
    let dir = tempfile::tempdir().unwrap();
    let src = image(dir.path(), "src.img", 32 * MIB, |i| (i % 251) as u8);
    let target = image(dir.path(), "target.img", 32 * MIB, |_| 0xff);
    let srv = start(dir.path(), &[("t", &target, false)]);
    let uri = srv.uri("t");
    run(
        "nbdcopy",
        &[
            "--connections=4",
            "--requests=16",
            src.to_str().unwrap(),
            &uri,
        ],
    );
    // Read back over several connections too.
    let back = dir.path().join("back.img");
    std::fs::write(&back, []).unwrap();
    run(
        "nbdcopy",
        &["--connections=4", &uri, back.to_str().unwrap()],
    );
    srv.shutdown();
    let want = std::fs::read(&src).unwrap();
    assert!(std::fs::read(&target).unwrap() == want, "target differs");
    assert!(std::fs::read(&back).unwrap() == want, "read-back differs");
}

#[test]
fn write_zeroes_and_trim_via_qemu_io() {
    require!(have("qemu-io"), "qemu-io not installed (qemu-utils)");
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "disk.img", 8 * MIB, |_| 0x5a);
    let srv = start(dir.path(), &[("d", &disk, false)]);
    let uri = srv.uri("d");
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            // NO_HOLE zeroing, then zeroing that may unmap, then a discard.
            "-c",
            "write -z 1M 1M",
            "-c",
            "write -z -u 3M 1M",
            "-c",
            "discard 6M 1M",
            "-c",
            "read -P 0 1M 1M",
            "-c",
            "read -P 0 3M 1M",
            "-c",
            "read -P 0x5a 0 1M",
            "-c",
            "read -P 0x5a 2M 1M",
            &uri,
        ],
    );
    srv.shutdown();
    let data = std::fs::read(&disk).unwrap();
    assert!(data[MIB..2 * MIB].iter().all(|&b| b == 0));
    assert!(data[3 * MIB..4 * MIB].iter().all(|&b| b == 0));
    assert!(data[4 * MIB..6 * MIB].iter().all(|&b| b == 0x5a));
    assert_eq!(data.len(), 8 * MIB, "trim must not change the size");
}

#[test]
fn unix_socket_uris() {
    require!(
        have("qemu-io") && have("nbdinfo"),
        "qemu-io/nbdinfo not installed (qemu-utils, libnbd-bin)"
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "disk.img", 4 * MIB, |_| 0);
    let srv = start(dir.path(), &[("local", &disk, false)]);
    let uri = srv.unix_uri("local");
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x42 512 64k",
            "-c",
            "read -P 0x42 512 64k",
            &uri,
        ],
    );
    let json = run("nbdinfo", &["--json", &uri]);
    assert!(json.contains("\"export-size\": 4194304"), "{json}");
    srv.shutdown();
    let data = std::fs::read(&disk).unwrap();
    assert!(data[512..512 + 65536].iter().all(|&b| b == 0x42));
    assert_eq!(data[511], 0);
}

#[test]
fn read_only_export_refuses_writes_from_qemu_io() {
    require!(have("qemu-io"), "qemu-io not installed (qemu-utils)");
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "ro.img", MIB, |_| 7);
    let srv = start(dir.path(), &[("ro", &disk, true)]);
    let uri = srv.uri("ro");
    // qemu sees NBD_FLAG_READ_ONLY and refuses to open the export read-write.
    let out = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "write -P 1 0 4k", &uri])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("Permission denied"),
        "{text}"
    );
    run(
        "qemu-io",
        &["-r", "-f", "raw", "-c", "read -P 7 0 4k", &uri],
    );
    srv.shutdown();
    assert!(std::fs::read(&disk).unwrap().iter().all(|&b| b == 7));
}
