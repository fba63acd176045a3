//! `mtkit vmx check --template`: what a VM template's .vmx must and must not have, on
//! variants of the ESXi-shaped fixture (tests/fixtures/vmx/healthy/mt01.vmx) written here.

mod support;
use serde_json::Value;
use std::fs;
use std::path::Path;
use support::*;

/// The healthy MT's .vmx with `drop` lines removed and `add` lines appended, as `name`.
fn variant(dir: &Path, name: &str, drop: &[&str], add: &str) -> String {
    let base = read(&fixture("vmx/healthy/mt01.vmx"));
    let mut text: String = base
        .lines()
        .filter(|l| !drop.iter().any(|d| l.starts_with(d)))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(add);
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn check(file: &str) -> (Option<i32>, Vec<Value>) {
    let o = run(&["vmx", "check", "--template", "--json", file]);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)));
    (
        o.status.code(),
        v[0]["findings"].as_array().unwrap().clone(),
    )
}

fn status<'a>(f: &'a [Value], id: &str) -> &'a Value {
    &f.iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {f:?}"))["status"]
}

#[test]
fn a_clean_template_passes_every_check() {
    let d = tempfile::tempdir().unwrap();
    // Only the OS disk: the retention and target disks are not part of a template.
    let f = variant(
        d.path(),
        "tpl.vmx",
        &["scsi0:1.", "scsi0:2.", "sched.scsi0:1", "sched.scsi0:2"],
        "",
    );
    let (code, findings) = check(&f);
    assert_eq!(code, Some(0), "{findings:?}");
    for x in &findings {
        assert_eq!(x["status"], "pass", "{x}");
    }
    let ids: Vec<&str> = findings.iter().map(|x| x["id"].as_str().unwrap()).collect();
    for id in [
        "enable-uuid",
        "controller-scsi0",
        "snapshots",
        "template-uuid-action",
        "template-mac",
        "template-disks",
        "template-cdrom",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    // A running MT's checks that mean nothing for a template are left out.
    assert!(
        !ids.contains(&"uuid-bios") && !ids.contains(&"disk-count"),
        "{ids:?}"
    );
}

#[test]
fn identity_lock_in_and_carried_disks_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let f = variant(
        d.path(),
        "bad.vmx",
        &[
            "disk.EnableUUID",
            "scsi0.virtualDev",
            "ethernet0.addressType",
            "ide1:0.",
        ],
        "uuid.action = \"keep\"\nscsi0.virtualDev = \"pvscsi\"\nethernet0.addressType = \"static\"\n\
         ethernet0.address = \"00:50:56:01:02:03\"\nide1:0.present = \"TRUE\"\n\
         ide1:0.deviceType = \"cdrom-image\"\nide1:0.fileName = \"/vmfs/volumes/ds1/iso/CentOS-6.6-x86_64-minimal.iso\"\n\
         ide1:0.startConnected = \"TRUE\"\n",
    );
    let (code, findings) = check(&f);
    assert_eq!(code, Some(1), "{findings:?}");
    for (id, want) in [
        ("enable-uuid", "fail"),
        ("controller-scsi0", "fail"),
        ("template-uuid-action", "fail"),
        ("template-mac", "fail"),
        ("template-disks", "warn"),
        ("template-cdrom", "warn"),
    ] {
        assert_eq!(status(&findings, id), want, "{id}: {findings:?}");
    }
    let mac = findings.iter().find(|x| x["id"] == "template-mac").unwrap();
    assert!(
        mac["found"].as_str().unwrap().contains("00:50:56:01:02:03"),
        "{mac}"
    );
    // Without --template the same file is checked as a running MT (uuid-bios, disk count).
    let o = run(&["vmx", "check", "--json", &f]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<&str> = v[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"disk-count") && !ids.contains(&"template-mac"),
        "{ids:?}"
    );
}
