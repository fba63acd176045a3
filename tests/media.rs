//! `mtkit iso kickstart|remaster` against real xorriso, mtools and createrepo_c, on a
//! synthetic CentOS 6 ISO (iso/fixture/make-centos6-iso.sh), checked with xorriso's
//! own report and independently with pycdlib (iso/fixture/check_iso.py).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::python_with;
use support::*;

const KS_TEXT: &str = "# a literal kickstart for the media tests\ninstall\ncdrom\n";

/// The tools the fixture script and the checks need; `None` with the reason otherwise.
fn missing_tools() -> Option<String> {
    for t in [
        "xorriso",
        "mkfs.vfat",
        "mcopy",
        "mtype",
        "createrepo_c",
        "musl-gcc",
        "cc",
    ] {
        if !have(t) {
            return Some(format!("{t} not installed (scripts/lib/deps.sh)"));
        }
    }
    for f in [
        "/usr/lib/ISOLINUX/isolinux.bin",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
    ] {
        if !Path::new(f).is_file() {
            return Some(format!(
                "{f} missing (Debian packages isolinux, syslinux-common)"
            ));
        }
    }
    if python_with("pycdlib").is_none() {
        return Some(
            "no Python with pycdlib: python3 -m venv .venv && .venv/bin/pip install pycdlib".into(),
        );
    }
    None
}

/// Runs the fixture script: a CentOS-6.6-like install ISO at `out`.
fn make_centos6(out: &Path, extra: &[&str]) {
    let o = Command::new(repo().join("iso/fixture/make-centos6-iso.sh"))
        .args(extra)
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "fixture script: {}", stderr(&o));
}

/// pycdlib's view of `iso`, with the content facts of `paths`.
fn pycdlib(iso: &Path, paths: &[&str]) -> Value {
    let o = Command::new(python_with("pycdlib").unwrap())
        .arg(repo().join("iso/fixture/check_iso.py"))
        .arg(iso)
        .args(paths)
        .output()
        .unwrap();
    assert!(o.status.success(), "check_iso.py: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn xorriso_extract(iso: &Path, from: &str, to: &Path) {
    let o = Command::new("xorriso")
        .args(["-no_rc", "-indev"])
        .arg(iso)
        .args(["-osirrox", "on", "-extract", from])
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "extracting {from}: {}", stderr(&o));
}

fn sha256(data: &[u8]) -> String {
    let o = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

/// The image's file at `iso_path` has the bytes of `file`.
fn assert_carries(v: &Value, iso_path: &str, file: impl AsRef<Path>) {
    assert_eq!(
        file_sha(v, iso_path),
        sha256(&std::fs::read(file.as_ref()).unwrap()),
        "{iso_path}"
    );
}

/// pycdlib saw the volume ID and both Joliet and Rock Ridge trees.
fn assert_volume(v: &Value, volume_id: &str) {
    assert_eq!(v["volume_id"], volume_id);
    assert_eq!(v["joliet"], true);
    assert_ne!(v["rock_ridge"], Value::Null);
}

fn file_sha(v: &Value, path: &str) -> String {
    v["files"][path]["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} missing from the image: {v:#}"))
        .to_string()
}

/// A static x86-64 binary (musl) and a dynamic glibc one, both tiny.
fn test_binaries(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("hello.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let stat = dir.join("hello-static");
    let dynamic = dir.join("hello-dynamic");
    for (cc, out, extra) in [
        ("musl-gcc", &stat, vec!["-static"]),
        ("cc", &dynamic, vec![]),
    ] {
        let o = Command::new(cc)
            .args(&extra)
            .arg("-o")
            .arg(out)
            .arg(&src)
            .output()
            .unwrap();
        assert!(o.status.success(), "{cc}: {}", stderr(&o));
    }
    (stat, dynamic)
}

/// Lists a folder: what a failed run must not have left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts that a refused run left nothing in `dir`.
fn assert_empty(dir: &Path) {
    assert!(names(dir).is_empty(), "left behind: {:?}", names(dir));
}

/// `mtkit [--config C] iso <kind> [--source SRC] -o OUT --binary BIN [--ks KS] EXTRA...`:
/// the one argument list every media test varies.
struct Iso<'a> {
    config: Option<&'a Path>,
    source: Option<&'a Path>,
    out: &'a Path,
    binary: &'a Path,
    ks: Option<&'a Path>,
}

impl<'a> Iso<'a> {
    /// A remaster of `source`.
    fn remaster(source: &'a Path, out: &'a Path, binary: &'a Path) -> Self {
        Iso {
            config: None,
            source: Some(source),
            out,
            binary,
            ks: None,
        }
    }

    /// A kickstart ISO.
    fn kickstart(out: &'a Path, binary: &'a Path) -> Self {
        Iso {
            config: None,
            source: None,
            out,
            binary,
            ks: None,
        }
    }

    /// Carries the kickstart file `ks` instead of one rendered from the config.
    fn ks(self, ks: &'a Path) -> Self {
        Iso {
            ks: Some(ks),
            ..self
        }
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = mtkit();
        if let Some(config) = self.config {
            c.arg("--config").arg(config);
        }
        match self.source {
            Some(src) => c.args(["iso", "remaster", "--source"]).arg(src),
            None => c.args(["iso", "kickstart"]),
        };
        c.arg("-o").arg(self.out).arg("--binary").arg(self.binary);
        if let Some(ks) = self.ks {
            c.arg("--ks").arg(ks);
        }
        c.args(extra);
        c
    }

    fn run(&self, extra: &[&str]) -> std::process::Output {
        self.command(extra).output().unwrap()
    }
}

/// `mtkit --config KEYED build --out OUT --binary BIN EXTRA...`, with a config that gives
/// root an SSH key (build refuses an appliance nobody can log into).
fn build(out: &Path, binary: &Path, extra: &[&str]) -> std::process::Output {
    let dir = out.with_extension("config");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config_with_key(&dir, "");
    mtkit()
        .arg("--config")
        .arg(cfg)
        .arg("build")
        .arg("--out")
        .arg(out)
        .arg("--binary")
        .arg(binary)
        .args(extra)
        .output()
        .unwrap()
}

/// An ISO of the folder `tree` with volume ID `volid`, made by xorriso alone.
fn plain_iso(tree: &Path, volid: &str, out: &Path) {
    let o = Command::new("xorriso")
        .args(["-no_rc", "-outdev"])
        .arg(out)
        .args(["-volid", volid, "-map"])
        .arg(tree)
        .arg("/")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// An empty kickstart file outside the test's folder (a device such as /dev/null is
/// refused as input); removed when dropped.
fn empty_ks() -> tempfile::TempPath {
    tempfile::NamedTempFile::new().unwrap().into_temp_path()
}

/// The keys of `iso remaster --json`, which `build --json` repeats under "media".
const REMASTER_KEYS: [&str; 8] = [
    "binary",
    "binary-linkage",
    "boot-argument",
    "kind",
    "offline-repo",
    "output",
    "report",
    "source",
];

fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[test]
fn remaster_keeps_boot_records_and_carries_the_payload() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("CentOS-6.6-x86_64-minimal.iso");
    make_centos6(&src, &[]);
    let before = std::fs::read(&src).unwrap();
    let (binary, _) = test_binaries(d.path());
    let ks = d.path().join("ks.cfg");
    std::fs::write(&ks, KS_TEXT).unwrap();
    let out = d.path().join("mt-install.iso");

    let o = Iso::remaster(&src, &out, &binary)
        .ks(&ks)
        .run(&["--strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("statically linked"), "{log}");
    assert!(
        log.contains("100% written"),
        "no progress in the log:\n{log}"
    );
    assert!(stdout(&o).contains("ks=cdrom:/ks.cfg"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&src).unwrap(), before, "source modified");

    // xorriso's own report: both El Torito entries, the isohybrid MBR, the volume ID.
    let r = Command::new("xorriso")
        .args(["-no_rc", "-indev"])
        .arg(&out)
        .args(["-report_el_torito", "plain", "-report_system_area", "plain"])
        .output()
        .unwrap();
    let report = format!("{}{}", stdout(&r), stderr(&r));
    for want in [
        "Volume id    : 'CentOS_6.6_Final'",
        "El Torito img path :   1  /isolinux/isolinux.bin",
        "El Torito img path :   2  /images/efiboot.img",
        "El Torito img opts :   1  boot-info-table isohybrid-suitable",
        "System area summary: MBR isohybrid",
    ] {
        assert!(report.contains(want), "{want:?} not in:\n{report}");
    }
    assert!(
        report
            .lines()
            .any(|l| l.contains("El Torito boot img :   1  BIOS"))
            && report
                .lines()
                .any(|l| l.contains("El Torito boot img :   2  UEFI")),
        "{report}"
    );

    // pycdlib: entries point at the files, payload bytes, Joliet + RR, MBR.
    let v = pycdlib(
        &out,
        &[
            "/ks.cfg",
            "/mtkit/mtkit",
            "/mtkit/appliance.toml",
            "/.discinfo",
        ],
    );
    assert_volume(&v, "CentOS_6.6_Final");
    let entries = v["el_torito"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v:#}");
    assert_eq!(entries[0]["platform"], 0);
    assert_eq!(entries[0]["path"], "/isolinux/isolinux.bin");
    assert_eq!(entries[1]["platform"], 0xef);
    assert_eq!(entries[1]["path"], "/images/efiboot.img");
    assert_eq!(file_sha(&v, "/ks.cfg"), sha256(KS_TEXT.as_bytes()));
    assert_carries(&v, "/mtkit/mtkit", &binary);
    assert_eq!(v["files"]["/mtkit/mtkit"]["mode"], 0o755);
    let toml = mtkit::config::Config::default().resolved_toml();
    assert_eq!(
        file_sha(&v, "/mtkit/appliance.toml"),
        sha256(toml.as_bytes())
    );
    assert_eq!(v["mbr"]["signature"], "55aa");
    assert_eq!(v["mbr"]["partitions"][0]["start"], 0, "{v:#}");
    assert!(
        v["joliet_names"]
            .as_array()
            .unwrap()
            .contains(&"ks.cfg".into())
    );

    // isolinux.bin is the source's, apart from the boot-info table xorriso patches in.
    let x = d.path().join("x");
    std::fs::create_dir(&x).unwrap();
    xorriso_extract(&out, "/isolinux/isolinux.bin", &x.join("isolinux.bin"));
    let mut got = std::fs::read(x.join("isolinux.bin")).unwrap();
    let mut want = std::fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap();
    assert_eq!(got.len(), want.len());
    got[8..64].fill(0);
    want[8..64].fill(0);
    assert!(
        got == want,
        "isolinux.bin differs beyond its boot-info table"
    );

    // BIOS menu: our entry first and default, the stock ones kept.
    xorriso_extract(&out, "/isolinux/isolinux.cfg", &x.join("isolinux.cfg"));
    let cfg = read(&x.join("isolinux.cfg"));
    let ours = cfg.find("label mtkit").expect("mtkit entry");
    assert!(ours < cfg.find("label linux").unwrap(), "{cfg}");
    let entry = &cfg[ours..cfg.find("label linux").unwrap()];
    assert!(
        entry.contains("menu label Install mtkit master target"),
        "{entry}"
    );
    assert!(entry.contains("menu default"), "{entry}");
    assert!(
        entry.contains("append initrd=initrd.img ks=cdrom:/ks.cfg"),
        "{entry}"
    );
    assert_eq!(cfg.matches("menu default").count(), 1, "{cfg}");
    assert!(cfg.contains("\ntimeout 50\n"), "{cfg}");
    for label in ["label linux", "label vesa", "label rescue", "label local"] {
        assert!(cfg.contains(label), "{label} lost:\n{cfg}");
    }

    // EFI menu, in the ISO tree and inside the El Torito FAT image the firmware reads.
    xorriso_extract(&out, "/EFI/BOOT/BOOTX64.conf", &x.join("tree.conf"));
    xorriso_extract(&out, "/images/efiboot.img", &x.join("efiboot.img"));
    let fat = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(x.join("efiboot.img"))
        .arg("::EFI/BOOT/BOOTX64.conf")
        .output()
        .unwrap();
    assert!(fat.status.success(), "{}", stderr(&fat));
    for conf in [read(&x.join("tree.conf")), stdout(&fat)] {
        let first = conf.find("title ").unwrap();
        assert!(
            conf[first..].starts_with(
                "title Install mtkit master target\n\tkernel /images/pxeboot/vmlinuz ks=cdrom:/ks.cfg\n"
            ),
            "{conf}"
        );
        assert!(
            conf.contains("default=0\n") && conf.contains("timeout=5\n"),
            "{conf}"
        );
        assert!(conf.contains("title CentOS 6.6\n") && conf.contains("title rescue\n"));
    }
    assert_carries(&v, "/images/efiboot.img", x.join("efiboot.img"));

    // Remastering the result again replaces the mtkit entry and payload, no duplicates.
    std::fs::write(&ks, "# second kickstart\n").unwrap();
    let again = d.path().join("again.iso");
    let o = Iso::remaster(&out, &again, &binary).ks(&ks).run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = pycdlib(&again, &["/ks.cfg"]);
    assert_eq!(file_sha(&v, "/ks.cfg"), sha256(b"# second kickstart\n"));
    assert_eq!(v["el_torito"].as_array().unwrap().len(), 2);
    xorriso_extract(&again, "/isolinux/isolinux.cfg", &x.join("again.cfg"));
    let cfg = read(&x.join("again.cfg"));
    assert_eq!(cfg.matches("label mtkit").count(), 1, "{cfg}");
    assert_eq!(cfg.matches("menu default").count(), 1, "{cfg}");
}

#[test]
fn remaster_makes_a_plain_source_isohybrid() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("rhel6.iso");
    make_centos6(&src, &["--no-hybrid"]);
    let plain = pycdlib(&src, &[]);
    assert_eq!(plain["mbr"]["partitions"], serde_json::json!([]));
    let (binary, _) = test_binaries(d.path());
    let out = d.path().join("out.iso");
    let o = Iso::remaster(&src, &out, &binary).run(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["report"]["isohybrid-added"], true, "{summary:#}");
    assert_eq!(sorted_keys(&summary), REMASTER_KEYS);
    assert_eq!(summary["boot-argument"], "ks=cdrom:/ks.cfg");
    let v = pycdlib(&out, &["/ks.cfg"]);
    assert_eq!(v["mbr"]["signature"], "55aa");
    let parts = v["mbr"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{v:#}");
    assert_eq!(parts[0]["status"], 0x80);
    assert_eq!(v["el_torito"].as_array().unwrap().len(), 2);
    assert_eq!(v["volume_id"], "CentOS_6.6_Final");
    // The default config's kickstart was rendered into the image.
    let ks = run(&["kickstart"]);
    assert_eq!(file_sha(&v, "/ks.cfg"), sha256(&ks.stdout));
}

#[test]
fn kickstart_iso_has_label_joliet_rock_ridge_payload_and_repo() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    // An offline repo without RPMs: createrepo_c still writes valid, empty metadata.
    let repo = d.path().join("rpms");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(repo.join("README"), "RPMs for the appliance\n").unwrap();
    let config = d.path().join("appliance.toml");
    std::fs::write(
        &config,
        // Relative: next to the config, not to where mtkit runs.
        "[media]\nvolume-label = \"MTKS_TEST\"\n[packages]\noffline-repo = \"rpms\"\n",
    )
    .unwrap();
    let out = d.path().join("mt-ks.iso");
    // Given through a symlink, as from /usr/local/bin: the disc gets the file itself.
    let link = d.path().join("mtkit-link");
    std::os::unix::fs::symlink(&binary, &link).unwrap();
    let o = Iso {
        config: Some(&config),
        ..Iso::kickstart(&out, &link)
    }
    .run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("ks=hd:sr1:/ks.cfg") && text.contains("ks=cdrom:/ks.cfg"),
        "{text}"
    );
    assert_eq!(
        names(&repo),
        ["README"],
        "the user's repo folder was changed"
    );

    let v = pycdlib(
        &out,
        &[
            "/ks.cfg",
            "/mtkit/mtkit",
            "/mtkit/appliance.toml",
            "/mtkit/repo/README",
            "/mtkit/repo/repodata/repomd.xml",
        ],
    );
    assert_volume(&v, "MTKS_TEST");
    assert_eq!(v["el_torito"], serde_json::json!([]));
    assert_carries(&v, "/mtkit/mtkit", &binary);
    let loaded = mtkit::config::Config::load(Some(&config)).unwrap();
    let toml = loaded.config.resolved_toml();
    assert_eq!(
        file_sha(&v, "/mtkit/appliance.toml"),
        sha256(toml.as_bytes())
    );
    let ks = run(&["--config", config.to_str().unwrap(), "kickstart"]);
    assert!(ks.status.success(), "{}", stderr(&ks));
    assert_eq!(file_sha(&v, "/ks.cfg"), sha256(&ks.stdout));
    // Only RPMs (none here) and the metadata are carried, not the folder's other files.
    assert!(v["files"]["/mtkit/repo/README"].is_null(), "{v:#}");
    let x = d.path().join("repomd.xml");
    xorriso_extract(&out, "/mtkit/repo/repodata/repomd.xml", &x);
    let repomd = read(&x);
    assert!(
        repomd.contains("<repomd") && repomd.contains("primary"),
        "{repomd}"
    );
}

#[test]
fn a_binary_that_cannot_run_on_centos6_is_refused_unless_allowed() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let (_, dynamic) = test_binaries(d.path());
    let out = d.path().join("ks.iso");
    let ks = empty_ks();
    let iso = Iso::kickstart(&out, &dynamic).ks(&ks);
    // Refused by default (--strict is still accepted, and changes nothing).
    for extra in [&[][..], &["--strict"]] {
        let o = iso.run(extra);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        // Debian 12's glibc binds __libc_start_main at GLIBC_2.34.
        assert!(
            e.contains("GLIBC_2.") && e.contains("refusing to embed it"),
            "{e}"
        );
        assert!(e.contains("@GLIBC_2."), "no symbol named: {e}");
        assert!(e.contains("--allow-incompatible-binary"), "{e}");
        assert!(!out.exists());
        assert_eq!(
            names(d.path()),
            ["hello-dynamic", "hello-static", "hello.c"]
        );
    }

    let o = iso.run(&["--allow-incompatible-binary"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("WARN") && e.contains("newer than CentOS 6's glibc 2.12"),
        "{e}"
    );
    assert!(out.is_file());

    // `build` the same: refused (exit 2, --out left as it was) unless --force.
    let bout = d.path().join("out");
    let o = build(&bout, &dynamic, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("refusing to embed it") && e.contains("pass --force"),
        "{e}"
    );
    assert!(!bout.exists());
    let o = build(&bout, &dynamic, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("embedding it anyway (--force)"));
    assert!(bout.join("mt-ks.iso").is_file());

    // Static glibc has no symbol versions but refuses kernels older than its ABI tag
    // (Debian 12: 3.2.0), and CentOS 6 runs 2.6.32.
    let static_glibc = d.path().join("hello-static-glibc");
    let o = Command::new("cc")
        .args(["-static", "-o"])
        .arg(&static_glibc)
        .arg(d.path().join("hello.c"))
        .output()
        .unwrap();
    require!(
        o.status.success(),
        "no static glibc (libc6-dev): {}",
        stderr(&o)
    );
    let k2 = d.path().join("k2.iso");
    let o = Iso::kickstart(&k2, &static_glibc).ks(&ks).run(&[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("statically linked and declares Linux 3.2.0"),
        "{e}"
    );
    assert!(!k2.exists());
}

#[test]
fn non_centos_and_truncated_sources_are_refused_with_nothing_written() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    // A Debian-like ISO: no .discinfo/.treeinfo.
    let tree = d.path().join("tree");
    std::fs::create_dir_all(tree.join("isolinux")).unwrap();
    std::fs::write(tree.join("README.txt"), "Debian GNU/Linux\n").unwrap();
    std::fs::write(tree.join("isolinux/isolinux.cfg"), "default install\n").unwrap();
    let debian = d.path().join("debian.iso");
    plain_iso(&tree, "Debian_12", &debian);
    // An install tree of the right shape but release 7: refused by its .treeinfo.
    std::fs::write(tree.join(".discinfo"), "1404489053.504589\n7\nx86_64\n").unwrap();
    std::fs::write(
        tree.join(".treeinfo"),
        "[general]\nfamily = CentOS\nversion = 7\narch = x86_64\n",
    )
    .unwrap();
    let centos7 = d.path().join("centos7.iso");
    plain_iso(&tree, "CentOS_7_x86_64", &centos7);
    let c6 = d.path().join("c6.iso");
    make_centos6(&c6, &[]);
    let full = std::fs::read(&c6).unwrap();
    let truncated = d.path().join("truncated.iso");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let not_iso = d.path().join("notes.iso");
    std::fs::write(&not_iso, "not an image\n".repeat(5000)).unwrap();

    let outdir = d.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("mt.iso");
    let dev_null = empty_ks();
    let dev_null: &Path = &dev_null;
    for (source, expect) in [
        (
            &debian,
            "not a CentOS/RHEL 6 install ISO: /.discinfo, /.treeinfo missing",
        ),
        (
            &centos7,
            "not a CentOS/RHEL 6 install ISO: .treeinfo says family \"CentOS\", version \"7\"",
        ),
        (&truncated, "is truncated"),
        (&not_iso, "not an ISO 9660 image"),
        (&d.path().join("absent.iso"), "absent.iso"),
        (&tree, "is a folder"),
    ] {
        let o = Iso::remaster(source, &out, &binary).ks(dev_null).run(&[]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {e}", source.display());
        assert!(e.contains(expect), "{expect:?} not in: {e}");
        assert_empty(&outdir);
    }
    let o = Iso::remaster(&debian, &out, &binary).ks(dev_null).run(&[]);
    assert!(
        stderr(&o).contains("README.txt"),
        "the refusal says what was found"
    );

    // The output path is the source: refused, source intact.
    let o = Iso::remaster(&c6, &c6, &binary).ks(dev_null).run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&c6).unwrap(), full);
}

#[test]
fn missing_xorriso_names_the_package_and_writes_nothing() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let src = d.path().join("c6.iso");
    make_centos6(&src, &[]);
    let empty = d.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let outdir = d.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("x.iso");
    let dev_null = empty_ks();
    let dev_null: &Path = &dev_null;
    for iso in [
        Iso::remaster(&src, &out, &binary).ks(dev_null),
        Iso::kickstart(&out, &binary).ks(dev_null),
    ] {
        let o = iso.command(&[]).env("PATH", &empty).output().unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{:?}: {e}", iso.source);
        assert!(
            e.contains("xorriso not found") && e.contains("apt-get install xorriso"),
            "{e}"
        );
        assert_empty(&outdir);
    }
}

#[test]
fn build_makes_the_media_beside_the_kickstart() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let src = d.path().join("c6.iso");
    make_centos6(&src, &[]);

    // No source ISO: the kickstart ISO, carrying the very ks.cfg build wrote.
    let out = d.path().join("out-ks");
    let o = build(&out, &binary, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        names(&out),
        ["SUMMARY.txt", "appliance.toml", "ks.cfg", "mt-ks.iso"]
    );
    let v = pycdlib(
        &out.join("mt-ks.iso"),
        &["/ks.cfg", "/mtkit/appliance.toml"],
    );
    assert_eq!(v["volume_id"], "MTKS");
    assert_carries(&v, "/ks.cfg", out.join("ks.cfg"));
    assert_carries(&v, "/mtkit/appliance.toml", out.join("appliance.toml"));
    let summary = read(&out.join("SUMMARY.txt"));
    assert!(summary.contains("ks=hd:sr1:/ks.cfg"), "{summary}");
    // The install steps name the medium made and the argument it needs, as --json does.
    assert!(
        summary.contains("mt-ks.iso       the install medium")
            && summary.contains("1. Attach mt-ks.iso (volume label MTKS) as a second CD drive")
            && summary.contains("press Tab and add:\n         ks=hd:sr1:/ks.cfg\n"),
        "{summary}"
    );

    // With --source-iso: the remastered install ISO instead.
    let out = d.path().join("out-remaster");
    let o = build(
        &out,
        &binary,
        &["--source-iso", src.to_str().unwrap(), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["media"]["kind"], "remaster", "{j:#}");
    assert_eq!(j["boot-argument"], "ks=cdrom:/ks.cfg", "{j:#}");
    assert_eq!(sorted_keys(&j["media"]), REMASTER_KEYS);
    assert_eq!(
        j["media"]["output"],
        out.join("mt-install.iso").to_str().unwrap()
    );
    assert_eq!(
        names(&out),
        ["SUMMARY.txt", "appliance.toml", "ks.cfg", "mt-install.iso"]
    );
    let v = pycdlib(&out.join("mt-install.iso"), &["/ks.cfg"]);
    assert_eq!(v["volume_id"], "CentOS_6.6_Final");
    assert_carries(&v, "/ks.cfg", out.join("ks.cfg"));
    let summary = read(&out.join("SUMMARY.txt"));
    assert!(summary.contains("Install mtkit master target"), "{summary}");
    assert!(
        summary.contains("1. Boot the VM from mt-install.iso")
            && !summary.contains("press Tab and add"),
        "{summary}"
    );

    // A refused source leaves no output folder behind.
    let out = d.path().join("out-refused");
    let o = build(&out, &binary, &["--source-iso", binary.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists());
}

/// A static x86-64 program (musl) whose bytes carry the build-id mark `id`.
fn static_with_build_id(dir: &Path, name: &str, id: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(
        &src,
        format!(
            "__attribute__((used)) const char mark[] = \"MTKIT-BUILD-ID:{id};\";\n\
             int main(void) {{ return mark[0] == 0; }}\n"
        ),
    )
    .unwrap();
    let out = dir.join(name);
    let o = Command::new("musl-gcc")
        .args(["-static", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "musl-gcc: {}", stderr(&o));
    out
}

/// The media carry the static build found beside the running mtkit; whether it is stale
/// is told by the build id both carry (version + a hash of the sources), not by file
/// dates, which say nothing when one command builds both.
#[test]
fn the_static_build_beside_mtkit_is_judged_by_its_build_id_not_its_date() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    // A target folder of our own: this mtkit in debug/, a "static build" beside it.
    let debug = d.path().join("target/debug");
    let musl = d.path().join("target/x86_64-unknown-linux-musl/release");
    std::fs::create_dir_all(&debug).unwrap();
    std::fs::create_dir_all(&musl).unwrap();
    let exe = debug.join("mtkit");
    std::fs::copy(env!("CARGO_BIN_EXE_mtkit"), &exe).unwrap();
    let ks = empty_ks();
    let version = stdout(&run(&["--version"]));
    // "mtkit 0.1.0 (build 0123456789abcdef)"
    let (v, rest) = version
        .trim()
        .trim_start_matches("mtkit ")
        .split_once(" (build ")
        .unwrap();
    let own = format!("{v}+{}", rest.trim_end_matches(')'));
    let same = static_with_build_id(d.path(), "same", &own);
    let other = static_with_build_id(d.path(), "other", &format!("{v}+00000000deadbeef"));
    let set_mtime = |p: &Path, secs: u64| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // (static build, its mtime, whether a warning is due)
    for (i, (bin, mtime, stale)) in [(&same, 1_000_000_000, false), (&other, now + 86400, true)]
        .into_iter()
        .enumerate()
    {
        let placed = musl.join("mtkit");
        std::fs::copy(bin, &placed).unwrap();
        set_mtime(&placed, mtime);
        let iso = d.path().join(format!("k{i}.iso"));
        let o = Command::new(&exe)
            .args(["iso", "kickstart", "--ks"])
            .arg(&ks)
            .arg("-o")
            .arg(&iso)
            .output()
            .unwrap();
        let e = stderr(&o);
        assert!(o.status.success(), "{e}");
        assert_eq!(
            e.contains("the static build comes from other sources than this mtkit"),
            stale,
            "{e}"
        );
        if stale {
            assert!(
                e.contains(&format!(
                    "it is build {v}+00000000deadbeef, this one is build {own}"
                )),
                "{e}"
            );
        }
        assert!(!e.contains("older"), "{e}");
        let img = pycdlib(&iso, &["/mtkit/mtkit"]);
        assert_carries(&img, "/mtkit/mtkit", bin);
    }
}

/// Every file of `iso` under `dir`, as xorriso lists them.
fn iso_files(iso: &Path, dir: &str) -> Vec<String> {
    let o = Command::new("xorriso")
        .args(["-no_rc", "-indev"])
        .arg(iso)
        .args(["-find", dir, "-type", "f"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: Vec<String> = stdout(&o)
        .lines()
        .filter_map(|l| l.strip_prefix('\'')?.strip_suffix('\''))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Stand-in RPMs from tests/fixtures/rpms/make-rpms.sh.
fn make_rpms(dir: &Path, specs: &[&str]) {
    let o = Command::new(fixture("rpms/make-rpms.sh"))
        .arg(dir)
        .args(specs)
        .output()
        .unwrap();
    assert!(o.status.success(), "make-rpms.sh: {}", stderr(&o));
}

/// The packages the medium's offline repo metadata lists (name.arch), read from its
/// primary.xml.gz.
fn repo_packages(iso: &Path, scratch: &Path) -> Vec<String> {
    let gz = scratch.join("primary.xml.gz");
    xorriso_extract(iso, "/mtkit/repo/repodata/primary.xml.gz", &gz);
    let o = Command::new("zcat").arg(&gz).output().unwrap();
    let xml = stdout(&o);
    let mut names = Vec::new();
    for pkg in xml.split("<package ").skip(1) {
        let field = |tag: &str| {
            let open = format!("<{tag}>");
            let start = pkg.find(&open).unwrap() + open.len();
            pkg[start..start + pkg[start..].find('<').unwrap()].to_string()
        };
        names.push(format!("{}.{}", field("name"), field("arch")));
    }
    names.sort();
    names
}

/// The offline repo carries RPMs only, read without following links (no files from
/// outside its folder, a `loop -> .` not twice), counts what createrepo_c could index
/// (not a corrupt .rpm), and a build whose kickstart takes kmod-reiserfs and
/// reiserfs-utils from it is refused when its metadata lacks one.
#[test]
fn offline_repo_carries_only_indexed_rpms_and_must_hold_the_reiserfs_packages() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    require!(
        have("rpmbuild"),
        "rpmbuild not installed (Debian package rpm)"
    );
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let repo = d.path().join("rpms");
    make_rpms(&repo, &["kmod-reiserfs"]);
    make_rpms(&repo.join("sub"), &["reiserfs-utils.noarch"]);
    let outside = d.path().join("elsewhere");
    make_rpms(&outside, &["secret"]);
    std::fs::write(repo.join("corrupt.rpm"), "not an rpm\n").unwrap();
    std::fs::write(repo.join("README"), "notes\n").unwrap();
    std::os::unix::fs::symlink(".", repo.join("loop")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("outside")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("secret-1.0-1.el6.x86_64.rpm"),
        repo.join("link.rpm"),
    )
    .unwrap();
    let config = d.path().join("appliance.toml");
    std::fs::write(
        &config,
        "[sources]\nfilesystems = [\"ext4\", \"reiserfs\"]\n[packages]\noffline-repo = \"rpms\"\n\
         reiserfs-repo = \"offline\"\nextra = [\"sg3_utils\"]\n",
    )
    .unwrap();
    let out = d.path().join("ks.iso");
    let iso = Iso {
        config: Some(&config),
        ..Iso::kickstart(&out, &binary)
    };
    let o = iso.run(&[]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert_eq!(
        iso_files(&out, "/mtkit/repo")
            .into_iter()
            .filter(|f| !f.starts_with("/mtkit/repo/repodata/"))
            .collect::<Vec<_>>(),
        [
            "/mtkit/repo/kmod-reiserfs-1.0-1.el6.x86_64.rpm",
            "/mtkit/repo/sub/reiserfs-utils-1.0-1.el6.noarch.rpm",
        ]
    );
    assert_eq!(
        repo_packages(&out, d.path()),
        ["kmod-reiserfs.x86_64", "reiserfs-utils.noarch"]
    );
    for want in [
        "not readable as RPMs (createrepo_c skipped them; not carried): corrupt.rpm",
        "README (not an RPM)",
        "loop (a symlink",
        "outside (a symlink",
        "link.rpm (a symlink",
        "packages=2",
        "expected from the install source: sg3_utils",
    ] {
        assert!(e.contains(want), "{want:?} not in: {e}");
    }

    // Without reiserfs-utils the install would stop at it: refused, nothing written.
    std::fs::remove_dir_all(repo.join("sub")).unwrap();
    let out2 = d.path().join("ks2.iso");
    let o = Iso {
        config: Some(&config),
        ..Iso::kickstart(&out2, &binary)
    }
    .run(&[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(
            "does not carry reiserfs-utils (x86_64 or noarch), which the kickstart installs from it"
        ) && e.contains("its metadata lists kmod-reiserfs.x86_64"),
        "{e}"
    );
    assert!(!out2.exists());
    // An i686 build does not count for a CentOS 6 x86_64 install.
    make_rpms(&repo, &["reiserfs-utils.i686"]);
    let o = Iso {
        config: Some(&config),
        ..Iso::kickstart(&out2, &binary)
    }
    .run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("reiserfs-utils.i686"));
}

/// Remastering a disc with its own package metadata: `[packages] extra` must be on the
/// disc or in the offline repo, or the install would stop at it.
#[test]
fn remaster_refuses_extras_that_neither_the_disc_nor_the_offline_repo_carry() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    require!(
        have("rpmbuild"),
        "rpmbuild not installed (Debian package rpm)"
    );
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let disc_rpms = d.path().join("disc");
    make_rpms(&disc_rpms, &["sg3_utils"]);
    let src = d.path().join("c6.iso");
    make_centos6(&src, &["--packages", disc_rpms.to_str().unwrap()]);
    let repo = d.path().join("rpms");
    make_rpms(&repo, &["iotop.noarch"]);
    let config = d.path().join("appliance.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!("[packages]\noffline-repo = \"rpms\"\nextra = [{extra}]\n"),
        )
        .unwrap()
    };
    write("\"sg3_utils\", \"iotop\", \"@base\", \"-postfix\"");
    let out = d.path().join("out.iso");
    let iso = Iso {
        config: Some(&config),
        ..Iso::remaster(&src, &out, &binary)
    };
    let o = iso.run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    write("\"sg3_utils\", \"no-such-tool\"");
    let out2 = d.path().join("out2.iso");
    let o = Iso {
        config: Some(&config),
        ..Iso::remaster(&src, &out2, &binary)
    }
    .run(&[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("[packages] extra no-such-tool is in neither the offline repo"),
        "{e}"
    );
    assert!(!out2.exists());
}

/// A Latin-1 isolinux.cfg (any byte that is not UTF-8) is edited with its bytes kept, and
/// `timeout`/`ontimeout` written after the labels are global: the output waits 5 s and
/// boots the mtkit entry, not the local disk after 60 s.
#[test]
fn remaster_keeps_a_latin1_menu_and_takes_trailing_timeouts_as_global() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let cfg = d.path().join("isolinux.cfg");
    let mut text = b"default vesamenu.c32\n#prompt 1\ndisplay boot.msg\nmenu title Bienvenue \xe0 CentOS 6.6\n\
label linux\n  menu label ^Installer ou mettre \xe0 jour\n  menu default\n  kernel vmlinuz\n  append initrd=initrd.img\n\
label local\n  menu label D\xe9marrer le disque ^local\n  localboot 0xffff\n"
        .to_vec();
    text.extend_from_slice(b"timeout 600\nontimeout local\n");
    std::fs::write(&cfg, &text).unwrap();
    let src = d.path().join("c6-latin1.iso");
    make_centos6(&src, &["--isolinux-cfg", cfg.to_str().unwrap()]);
    let out = d.path().join("out.iso");
    let o = Iso::remaster(&src, &out, &binary).run(&[]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        !e.contains("mtkit-remaster-"),
        "a temp path in the log: {e}"
    );
    let got_path = d.path().join("got.cfg");
    xorriso_extract(&out, "/isolinux/isolinux.cfg", &got_path);
    let got = std::fs::read(&got_path).unwrap();
    let has = |needle: &[u8]| got.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"menu title Bienvenue \xe0 CentOS 6.6\n"), "{got:?}");
    assert!(has(b"menu label D\xe9marrer le disque ^local\n"), "{got:?}");
    let latin = String::from_utf8_lossy(&got);
    let globals: Vec<&str> = latin
        .lines()
        .take_while(|l| !l.starts_with("label"))
        .collect();
    assert!(globals.contains(&"timeout 50"), "{latin}");
    assert!(globals.contains(&"ontimeout mtkit"), "{latin}");
    assert!(
        !latin.contains("timeout 600") && !latin.contains("ontimeout local"),
        "{latin}"
    );
    let local = &latin[latin.find("label local").unwrap()..];
    assert_eq!(
        local,
        "label local\n  menu label D\u{fffd}marrer le disque ^local\n  localboot 0xffff\n"
    );
}

/// A source ISO on a block device (an optical drive, here a loop device holding the
/// fixture ISO) is read with the device's size, not refused as truncated.
#[test]
fn remaster_reads_a_source_on_a_block_device() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    require!(is_root() && have("losetup"), "needs root and losetup");
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let src = d.path().join("c6.iso");
    make_centos6(&src, &[]);
    let o = Command::new("losetup")
        .args(["-f", "--show", "-r"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dev = stdout(&o).trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _detach = Detach(dev.clone());
    let out = d.path().join("from-device.iso");
    let ks = empty_ks();
    let from_file = d.path().join("from-file.iso");
    // Dates pinned, so that the two images can be compared byte for byte.
    let o = Iso::remaster(Path::new(&dev), &out, &binary)
        .ks(&ks)
        .command(&["--json"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{dev}: {e}");
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["source"], dev);
    assert_eq!(j["report"]["volume-id"], "CentOS_6.6_Final");
    let o = Iso::remaster(&src, &from_file, &binary)
        .ks(&ks)
        .command(&[])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The same disc read through the device or the file: the same image.
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&from_file).unwrap(),
        "the images differ"
    );
    let v = pycdlib(&out, &["/isolinux/isolinux.cfg"]);
    assert_eq!(v["el_torito"].as_array().unwrap().len(), 2);
}

/// With SOURCE_DATE_EPOCH, two builds of the same inputs are byte-identical ISOs: the
/// kickstart ISO with an offline repo, and the remastered install ISO.
#[test]
fn source_date_epoch_makes_identical_isos() {
    require!(missing_tools().is_none(), "{}", missing_tools().unwrap());
    require!(
        have("rpmbuild"),
        "rpmbuild not installed (Debian package rpm)"
    );
    let d = tempfile::tempdir().unwrap();
    let (binary, _) = test_binaries(d.path());
    let src = d.path().join("c6.iso");
    make_centos6(&src, &[]);
    let repo = d.path().join("rpms");
    make_rpms(&repo, &["kmod-reiserfs", "reiserfs-utils"]);
    let config = config_with_key(
        d.path(),
        "[sources]\nfilesystems = [\"reiserfs\"]\n[packages]\noffline-repo = \"rpms\"\n\
         reiserfs-repo = \"offline\"\n",
    );
    let run_build = |out: &Path, extra: &[&str], epoch: &str| {
        let o = mtkit()
            .env("SOURCE_DATE_EPOCH", epoch)
            .arg("--config")
            .arg(&config)
            .arg("build")
            .arg("--out")
            .arg(out)
            .arg("--binary")
            .arg(&binary)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    for (iso, extra) in [
        ("mt-ks.iso", vec![]),
        (
            "mt-install.iso",
            vec!["--source-iso", src.to_str().unwrap()],
        ),
    ] {
        let a = d.path().join(format!("a-{iso}"));
        let b = d.path().join(format!("b-{iso}"));
        run_build(&a, &extra, "1700000000");
        // A second later, as a second build would be.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        run_build(&b, &extra, "1700000000");
        let (x, y) = (
            std::fs::read(a.join(iso)).unwrap(),
            std::fs::read(b.join(iso)).unwrap(),
        );
        assert_eq!(x.len(), y.len(), "{iso}");
        let first = x.iter().zip(&y).position(|(p, q)| p != q);
        assert_eq!(first, None, "{iso}: first difference at byte {first:?}");
        for f in ["ks.cfg", "appliance.toml"] {
            assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs");
        }
        // The date is the one given.
        let c = d.path().join(format!("c-{iso}"));
        run_build(&c, &extra, "1600000000");
        assert_ne!(std::fs::read(c.join(iso)).unwrap(), x, "{iso}");
    }
}
