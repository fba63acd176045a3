//! `mtkit vmx check|patch` on .vmx files shaped like ESXi 6.x writes them
//! (tests/fixtures/vmx/gen.py).

mod support;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use support::*;

fn vmx(rel: &str) -> String {
    fixture(&format!("vmx/{rel}")).to_str().unwrap().to_string()
}

/// Runs `vmx check --json` and returns the exit code and each file's findings by id.
fn check(files: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut args = vec!["vmx", "check", "--json"];
    args.extend(files);
    let out = run(&args);
    let v: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&out), stderr(&out)));
    (out.status.code(), v.as_array().unwrap().clone())
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {report}"))
}

#[test]
fn healthy_vm_passes_everything() {
    let (code, r) = check(&[&vmx("healthy/mt01.vmx")]);
    assert_eq!(code, Some(0));
    for f in r[0]["findings"].as_array().unwrap() {
        assert_eq!(f["status"], "pass", "{f}");
    }
    assert_eq!(finding(&r[0], "disk-count")["found"], "3 disks attached");
}

#[test]
fn missing_or_false_enable_uuid_fails_with_the_patch_remedy() {
    for (file, found) in [
        ("no-uuid/mt02.vmx", "no disk.EnableUUID line"),
        ("uuid-false/mt03.vmx", "disk.EnableUUID = \"false\""),
        ("cp1252/mt06.vmx", "no disk.EnableUUID line"),
    ] {
        let (code, r) = check(&[&vmx(file)]);
        assert_eq!(code, Some(1), "{file}");
        let f = finding(&r[0], "enable-uuid");
        assert_eq!(f["status"], "fail");
        assert!(f["found"].as_str().unwrap().contains(found), "{f}");
        assert!(
            f["remedy"].as_str().unwrap().contains("mtkit vmx patch"),
            "{f}"
        );
    }
}

#[test]
fn pvscsi_fails_and_lsi_sas_passes() {
    let (code, r) = check(&[&vmx("pvscsi/mt04.vmx")]);
    assert_eq!(code, Some(1));
    let f = finding(&r[0], "controller-scsi0");
    assert_eq!(f["status"], "fail");
    assert!(f["remedy"].as_str().unwrap().contains("LSI Logic"));
    let (_, r) = check(&[&vmx("many-disks/big.vmx")]);
    for c in 0..4 {
        assert_eq!(
            finding(&r[0], &format!("controller-scsi{c}"))["status"],
            "pass"
        );
    }
}

#[test]
fn more_than_60_disks_fails() {
    let (code, r) = check(&[&vmx("many-disks/big.vmx")]);
    assert_eq!(code, Some(1));
    let f = finding(&r[0], "disk-count");
    assert_eq!(
        (f["status"].as_str(), f["found"].as_str()),
        (Some("fail"), Some("61 disks attached"))
    );
}

#[test]
fn snapshot_deltas_and_vmsd_fail() {
    let (code, r) = check(&[&vmx("snapshot/mt05.vmx")]);
    assert_eq!(code, Some(1));
    let f = finding(&r[0], "snapshots");
    let found = f["found"].as_str().unwrap();
    assert!(found.contains("scsi0:1 = mt05_1-000001.vmdk"), "{found}");
    assert!(found.contains("\"before tuning\""), "{found}");
    // An emptied .vmsd (all snapshots deleted) is fine.
    let (_, r) = check(&[&vmx("healthy/mt01.vmx")]);
    assert_eq!(finding(&r[0], "snapshots")["status"], "pass");
}

#[test]
fn clones_sharing_uuid_bios_fail_only_together() {
    let (code, r) = check(&[&vmx("clones/clone-a.vmx"), &vmx("clones/clone-b.vmx")]);
    assert_eq!(code, Some(1));
    for (i, other) in [(0, "clone-b.vmx"), (1, "clone-a.vmx")] {
        let f = finding(&r[i], "uuid-bios");
        assert_eq!(f["status"], "fail");
        assert!(f["found"].as_str().unwrap().contains(other));
    }
    let (code, _) = check(&[&vmx("clones/clone-a.vmx"), &vmx("healthy/mt01.vmx")]);
    assert_eq!(code, Some(0));
}

#[test]
fn table_output_and_bad_input() {
    let out = run(&["vmx", "check", &vmx("pvscsi/mt04.vmx")]);
    assert_eq!(out.status.code(), Some(1));
    let t = stdout(&out);
    assert!(t.starts_with("FILE"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("controller-scsi0") && l.contains(" fail "))
    );
    let out = run(&["vmx", "check", "/nonexistent/x.vmx"]);
    assert_eq!(out.status.code(), Some(2));
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.vmx");
    fs::write(&junk, [0u8, 1, 2, 3]).unwrap();
    let out = run(&["vmx", "check", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Copies a fixture VM folder into a tempdir and returns the copied .vmx.
fn copy_vm(rel: &str, d: &Path) -> PathBuf {
    let src = fixture(&format!("vmx/{rel}"));
    for e in fs::read_dir(src.parent().unwrap()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d.join(src.file_name().unwrap())
}

#[test]
fn patch_adds_the_line_keeps_every_other_byte_and_is_idempotent() {
    let d = tempfile::tempdir().unwrap();
    let p = copy_vm("no-uuid/mt02.vmx", d.path());
    let before = fs::read(&p).unwrap();
    let out = run(&["vmx", "patch", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = fs::read(&p).unwrap();
    let mut want = before.clone();
    want.extend(b"disk.EnableUUID = \"TRUE\"\n");
    assert_eq!(after, want);
    let backup = d.path().join("mt02.vmx.mtkit-bak");
    assert_eq!(fs::read(&backup).unwrap(), before);
    assert_eq!(check(&[p.to_str().unwrap()]).0, Some(0));

    let mtime = fs::metadata(&p).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = run(&["vmx", "patch", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("already set"), "{}", stdout(&out));
    assert_eq!(fs::read(&p).unwrap(), after);
    assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), mtime);
    assert!(
        !d.path().join("mt02.vmx.mtkit-bak.1").exists(),
        "no second backup"
    );
}

#[test]
fn patch_replaces_a_false_value_in_place() {
    let d = tempfile::tempdir().unwrap();
    let p = copy_vm("uuid-false/mt03.vmx", d.path());
    let before = String::from_utf8(fs::read(&p).unwrap()).unwrap();
    assert_eq!(
        run(&["vmx", "patch", p.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let after = String::from_utf8(fs::read(&p).unwrap()).unwrap();
    // The key keeps ESXi's spelling; only the value changes.
    assert_eq!(
        after,
        before.replace("disk.enableUUID = \"false\"", "disk.enableUUID = \"TRUE\"")
    );
}

#[test]
fn patch_keeps_windows_1252_bytes_and_crlf() {
    let d = tempfile::tempdir().unwrap();
    let p = copy_vm("cp1252/mt06.vmx", d.path());
    let before = fs::read(&p).unwrap();
    assert!(
        before.windows(4).any(|w| w == b"Caf\xe9"),
        "fixture is windows-1252"
    );
    assert_eq!(
        run(&["vmx", "patch", p.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let mut want = before;
    want.extend(b"disk.EnableUUID = \"TRUE\"\r\n");
    assert_eq!(fs::read(&p).unwrap(), want);
}

#[test]
fn patch_refuses_while_the_vm_is_running() {
    let d = tempfile::tempdir().unwrap();
    let p = copy_vm("no-uuid/mt02.vmx", d.path());
    fs::create_dir(d.path().join("mt02.vmx.lck")).unwrap();
    let before = fs::read(&p).unwrap();
    let out = run(&["vmx", "patch", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("powered on"), "{}", stderr(&out));
    assert_eq!(fs::read(&p).unwrap(), before);
    assert!(!d.path().join("mt02.vmx.mtkit-bak").exists());
    let (_, r) = check(&[p.to_str().unwrap()]);
    assert_eq!(finding(&r[0], "powered-on")["status"], "warn");
}

/// A .vmx reached through a symlink (a datastore browser's link, a template folder): the
/// real file is patched and the link stays a link; the lock is looked for beside the real
/// file; the backup is beside the real file.
#[test]
fn patch_through_a_symlink_edits_the_real_file() {
    let d = tempfile::tempdir().unwrap();
    let vm = d.path().join("vm");
    fs::create_dir(&vm).unwrap();
    let real = copy_vm("no-uuid/mt02.vmx", &vm);
    let link = d.path().join("mt02-link.vmx");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before = fs::read(&real).unwrap();
    // The VM runs: its lock is beside the real file, not beside the link.
    fs::create_dir(vm.join("mt02.vmx.lck")).unwrap();
    let out = run(&["vmx", "patch", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("powered on"), "{}", stderr(&out));
    assert_eq!(fs::read(&real).unwrap(), before);
    fs::remove_dir(vm.join("mt02.vmx.lck")).unwrap();

    let out = run(&["vmx", "patch", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), real);
    assert!(
        fs::read_to_string(&real)
            .unwrap()
            .ends_with("disk.EnableUUID = \"TRUE\"\n")
    );
    assert_eq!(fs::read(vm.join("mt02.vmx.mtkit-bak")).unwrap(), before);
    assert!(!d.path().join("mt02-link.vmx.mtkit-bak").exists());
}

/// In a folder another user can write, links planted at the backup's name and at the old
/// temp-file name are never written through: root's patch leaves their targets alone.
#[test]
fn patch_never_writes_through_planted_links() {
    let d = tempfile::tempdir().unwrap();
    let p = copy_vm("no-uuid/mt02.vmx", d.path());
    let victim = d.path().join("victim");
    fs::write(&victim, "root's file\n").unwrap();
    std::os::unix::fs::symlink(&victim, d.path().join("mt02.vmx.mtkit-bak")).unwrap();
    std::os::unix::fs::symlink(&victim, d.path().join(".mt02.vmx.mtkit-tmp")).unwrap();
    let before = fs::read(&p).unwrap();
    let out = run(&["vmx", "patch", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file\n");
    // The planted backup name is taken: the backup goes to the next free one.
    assert_eq!(
        fs::read(d.path().join("mt02.vmx.mtkit-bak.1")).unwrap(),
        before
    );
    assert!(
        stdout(&out).contains("mt02.vmx.mtkit-bak.1"),
        "{}",
        stdout(&out)
    );
    assert!(
        fs::read_to_string(&p)
            .unwrap()
            .contains("disk.EnableUUID = \"TRUE\"")
    );
}

/// A text file with a `key = "value"` line is not a .vmx: without config.version and
/// virtualHW.version it is refused (exit 2) and left as it was; a FIFO is refused
/// without hanging.
#[test]
fn patch_refuses_what_is_not_a_vmx() {
    let d = tempfile::tempdir().unwrap();
    let readme = d.path().join("README.md");
    fs::write(&readme, "# Notes\ntitle = \"my vm\"\n").unwrap();
    let out = run(&["vmx", "patch", readme.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a VMware .vmx file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(&readme).unwrap(),
        "# Notes\ntitle = \"my vm\"\n"
    );
    assert_eq!(
        fs::read_dir(d.path()).unwrap().count(),
        1,
        "no backup, no temp"
    );
    let fifo = d.path().join("fifo.vmx");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = run_or_kill(
        &["vmx", "patch", fifo.to_str().unwrap()],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("FIFO"), "{}", stderr(&out));
}
