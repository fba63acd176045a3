//! `mtkit scsi-ids` against the real sysfs captures (matching udev's scsi_id exactly) and
//! against trees built here for what the captures lack (16-byte NAA 6, clones).

mod support;
use std::fs;
use std::path::Path;
use support::*;

/// (dev, type, scsi_id output or None) from a capture's expected/summary.tsv.
fn expected(cap: &str) -> Vec<(String, String, Option<String>)> {
    let text = read(&fixture(&format!("scsi/{cap}/expected/summary.tsv")));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].into(),
                f[2].into(),
                (f[10] == "0").then(|| f[9].to_string()),
            )
        })
        .collect()
}

fn json(cap_root: &Path) -> (Option<i32>, serde_json::Value) {
    let out = run(&["scsi-ids", "--json", "--root", cap_root.to_str().unwrap()]);
    let v = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    (out.status.code(), v)
}

#[test]
fn ids_match_scsi_id_on_every_capture() {
    for cap in ["vmware-like", "no-uuid", "mixed"] {
        let (_, v) = json(&fixture(&format!("scsi/{cap}")));
        let rows = v.as_array().unwrap();
        let disks: Vec<_> = expected(cap)
            .into_iter()
            .filter(|(_, t, _)| t == "0")
            .collect();
        assert_eq!(rows.len(), disks.len(), "{cap}");
        for (dev, _, id) in disks {
            let row = rows.iter().find(|r| r["name"] == dev.as_str()).unwrap();
            assert_eq!(row["id"].as_str(), id.as_deref(), "{cap}/{dev}");
        }
    }
}

#[test]
fn scsi_id_txt_agrees_with_the_table() {
    // expected/scsi_id.txt is the raw log of the scsi_id runs; each printed ID must be in
    // the table row of its device.
    let text = read(&fixture("scsi/vmware-like/expected/scsi_id.txt"));
    let out = run(&[
        "scsi-ids",
        "--root",
        fixture("scsi/vmware-like").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    let mut lines = text.lines();
    let mut seen = 0;
    while let Some(l) = lines.next() {
        if l.starts_with("$ scsi_id --whitelisted --replace-whitespace --device=/dev/") {
            let dev = l
                .split("/dev/")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            let id = lines.next().unwrap();
            let row = table
                .lines()
                .find(|r| r.contains(&format!(" {dev} ")))
                .unwrap();
            assert!(row.contains(id) && row.ends_with("ok"), "{row} vs {id}");
            seen += 1;
        }
    }
    assert_eq!(seen, 3);
}

#[test]
fn missing_ids_exit_1_with_the_enableuuid_remedy() {
    let out = run(&[
        "scsi-ids",
        "--root",
        fixture("scsi/no-uuid").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("disk.EnableUUID = \"TRUE\""),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out)
            .lines()
            .filter(|l| l.ends_with("missing"))
            .count()
            == 2
    );
}

#[test]
fn weak_ids_warn_and_the_cdrom_is_not_listed() {
    let (code, v) = json(&fixture("scsi/mixed"));
    assert_eq!(code, Some(0));
    let rows = v.as_array().unwrap();
    assert!(rows.iter().all(|r| r["name"] != "sr0"));
    let st: Vec<_> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(st, ["weak", "ok", "weak"]);
    assert_eq!(rows[1]["id-source"], "vpd83-naa5");
    assert_eq!(rows[1]["udev"], serde_json::Value::Null);
}

/// Writes one SCSI device into a sysfs tree under `root`.
fn add_disk(root: &Path, hctl: &str, name: &str, minor: u32, ty: u8, pg83: Option<&[u8]>) {
    let dev = root.join(format!(
        "sys/devices/pci0000:00/0000:00:10.0/host0/target0:0:0/{hctl}"
    ));
    fs::create_dir_all(dev.join(format!("block/{name}"))).unwrap();
    fs::write(
        dev.join(format!("block/{name}/dev")),
        format!("8:{minor}\n"),
    )
    .unwrap();
    fs::write(dev.join(format!("block/{name}/size")), "209715200\n").unwrap();
    fs::write(dev.join("type"), format!("{ty}\n")).unwrap();
    fs::write(dev.join("vendor"), "VMware  \n").unwrap();
    fs::write(dev.join("model"), "Virtual disk    \n").unwrap();
    fs::write(dev.join("rev"), "1.0 \n").unwrap();
    let mut inq = vec![ty, 0, 6, 2, 31, 0, 0, 0x72];
    inq.extend(b"VMware  Virtual disk    1.0 ");
    fs::write(dev.join("inquiry"), inq).unwrap();
    if let Some(p) = pg83 {
        fs::write(dev.join("vpd_pg0"), [ty, 0, 0, 3, 0, 0x80, 0x83]).unwrap();
        fs::write(dev.join("vpd_pg83"), p).unwrap();
    }
    let bus = root.join("sys/bus/scsi/devices");
    fs::create_dir_all(&bus).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../devices/pci0000:00/0000:00:10.0/host0/target0:0:0/{hctl}"),
        bus.join(hctl),
    )
    .unwrap();
}

/// Page 0x83 of a VMware disk with disk.EnableUUID on an LSI Logic SAS controller: a 16-byte
/// NAA 6 for the LU, then the target port's NAA 5 and relative port designators.
fn vmware_page(uuid_tail: u8) -> Vec<u8> {
    let mut d = vec![
        0x01, 0x03, 0x00, 0x10, 0x60, 0x00, 0xc2, 0x9a, 0x1b, 0x2c, 0x3d, 0x4e,
    ];
    d.extend([0x5f, 0x60, 0x71, 0x82, 0x93, 0xa4, 0xb5, uuid_tail]);
    d.extend([
        0x61, 0x93, 0x00, 0x08, 0x50, 0x05, 0x05, 0x6a, 0xbc, 0xde, 0xf0, 0x01,
    ]);
    d.extend([0x61, 0x94, 0x00, 0x04, 0, 0, 0, 1]);
    let mut p = vec![0, 0x83, 0, d.len() as u8];
    p.extend(d);
    p
}

#[test]
fn vmware_16_byte_naa6_with_port_designators() {
    let t = tempfile::tempdir().unwrap();
    add_disk(t.path(), "2:0:0:0", "sda", 0, 0, Some(&vmware_page(0xc6)));
    add_disk(t.path(), "2:0:1:0", "sdb", 16, 0, Some(&vmware_page(0xc7)));
    add_disk(t.path(), "3:0:0:0", "sr0", 32, 5, Some(&vmware_page(0xc8)));
    let (code, v) = json(t.path());
    assert_eq!(code, Some(0), "{v}");
    let ids: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "36000c29a1b2c3d4e5f60718293a4b5c6",
            "36000c29a1b2c3d4e5f60718293a4b5c7"
        ]
    );
}

#[test]
fn cloned_disks_share_an_id_and_fail() {
    let t = tempfile::tempdir().unwrap();
    add_disk(t.path(), "0:0:0:0", "sda", 0, 0, Some(&vmware_page(0xc6)));
    add_disk(t.path(), "0:0:1:0", "sdb", 16, 0, Some(&vmware_page(0xc6)));
    let out = run(&["scsi-ids", "--root", t.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.ends_with("duplicate"))
            .count(),
        2
    );
    assert!(stderr(&out).contains("cloned"), "{}", stderr(&out));
}

#[test]
fn udev_database_is_read_under_the_root() {
    let t = tempfile::tempdir().unwrap();
    // An old kernel: no vpd_pg* in sysfs, so the ID comes from udev's database.
    add_disk(t.path(), "0:0:0:0", "sda", 0, 0, None);
    fs::create_dir_all(t.path().join("run/udev/data")).unwrap();
    fs::write(
        t.path().join("run/udev/data/b8:0"),
        "S:disk/by-id/scsi-36000c29aaaabbbbccccddddeeeeffff\nI:123\nE:ID_SCSI=1\nE:ID_SERIAL=36000c29aaaabbbbccccddddeeeeffff\nE:ID_WWN=0x6000c29aaaabbbbc\nG:systemd\n",
    )
    .unwrap();
    let (code, v) = json(t.path());
    assert_eq!(code, Some(0));
    assert_eq!(v[0]["id"], "36000c29aaaabbbbccccddddeeeeffff");
    assert_eq!(v[0]["id-source"], "udev");
    // kebab-case like every --json key (it was id_wwn).
    assert_eq!(v[0]["udev"]["id-wwn"], "0x6000c29aaaabbbbc");
}

#[test]
fn a_root_that_is_not_a_folder_is_bad_input() {
    let out = run(&["scsi-ids", "--root", "/nonexistent/mtkit-root"]);
    assert_eq!(out.status.code(), Some(2));
}

/// sg3-utils' names for what mtkit's decoder reports.
fn sg_name(d: &mtkit::host::vpd::Designator) -> (String, String, String) {
    use mtkit::host::vpd::{Association as A, CodeSet as C, DesignatorType as T};
    let assoc = match d.association {
        A::LogicalUnit => "Addressed logical unit",
        A::TargetPort => "Target port",
        A::TargetDevice => "Target device that contains addressed lu",
        A::Reserved => "reserved",
    };
    let kind = match d.kind {
        T::VendorSpecific => "vendor specific [0x0]",
        T::T10Vendor => "T10 vendor identification",
        T::Eui64 => "EUI-64 based",
        T::Naa => "NAA",
        T::RelativeTargetPort => "Relative target port",
        T::TargetPortGroup => "Target port group",
        T::ScsiName => "SCSI name string",
        _ => "other",
    };
    let cs = match d.code_set {
        C::Binary => "Binary",
        C::Ascii => "ASCII",
        C::Utf8 => "UTF-8",
        C::Reserved(_) => "reserved",
    };
    (assoc.into(), kind.into(), cs.into())
}

#[test]
fn designators_agree_with_sg_vpd_decodes() {
    let mut compared = 0;
    for cap in ["vmware-like", "no-uuid", "mixed"] {
        let dir = fixture(&format!("scsi/{cap}"));
        for d in mtkit::host::scsi::list_disks(&dir).unwrap() {
            let page = dir.join(format!("sys/bus/scsi/devices/{}/vpd_pg83", d.hctl));
            let Ok(bytes) = fs::read(&page) else { continue };
            let ours: Vec<_> = mtkit::host::vpd::decode_pg83(&bytes)
                .unwrap()
                .designators
                .iter()
                .map(sg_name)
                .collect();
            // sg_vpd --page=di: association headings, then "designator type: X,  code set: Y".
            let text = read(&dir.join(format!("expected/{}.sg_vpd.txt", d.name)));
            let section = text
                .split("--page=di\n")
                .nth(1)
                .unwrap()
                .split("\n## ")
                .next()
                .unwrap();
            let mut assoc = String::new();
            let mut theirs = Vec::new();
            for l in section.lines() {
                if l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':') {
                    assoc = l.trim().trim_end_matches(':').to_string();
                } else if let Some(rest) = l.trim().strip_prefix("designator type: ") {
                    let (kind, cs) = rest.split_once(",  code set: ").unwrap();
                    theirs.push((assoc.clone(), kind.to_string(), cs.to_string()));
                }
            }
            assert_eq!(ours, theirs, "{cap}/{}", d.name);
            compared += ours.len();
        }
    }
    assert_eq!(compared, 3 + 1 + 4 + 1, "every designator of the captures");
}
