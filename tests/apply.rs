//! `mtkit apply` against a fixture root shaped like a fresh CentOS 6.6 minimal install:
//! apply, check every file, apply again (nothing changes, mtimes too), revert (byte-identical),
//! dry run (nothing written), upgrades, and the real `lvmconfig --validate`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::tree::{Node, mtimes, snapshot};
use support::{copy_tree, fixture, read, run, stdout};

/// A fresh CentOS 6.6 root in a temp folder, made by the checked-in script.
fn centos66() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let st = Command::new("bash")
        .arg(fixture("make-centos66-root.sh"))
        .arg(d.path().join("r"))
        .status()
        .unwrap();
    assert!(st.success(), "make-centos66-root.sh failed");
    d
}

const CONFIG: &str = r#"
[appliance]
hostname = "mt07.dr.example"
[network]
device = "eth0"
bootproto = "static"
ip = "192.0.2.77"
prefix = 24
gateway = "192.0.2.1"
[disks]
os-disk = "sda"
[writer]
listen = "0.0.0.0:10809"
"#;

fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("appliance.toml");
    fs::write(&p, text).unwrap();
    p
}

fn apply(root: &Path, cfg: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "apply",
        "--root",
        root.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(
        o.status.success(),
        "apply {extra:?} failed: {}",
        support::stderr(&o)
    );
    o
}

fn link(root: &Path, rel: &str) -> Option<PathBuf> {
    fs::read_link(root.join(rel)).ok()
}

#[test]
fn apply_checks_every_file_then_changes_nothing_then_reverts_byte_identical() {
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    let before = snapshot(&root);

    let o = apply(&root, &cfg, &[]);
    assert!(
        stdout(&o).contains("did create etc/multipath.conf (multipath)"),
        "{}",
        stdout(&o)
    );

    // multipath: whole file, OS disk by name (no sysfs in this root)
    let mp = read(&root.join("etc/multipath.conf"));
    assert!(
        mp.contains("    user_friendly_names no\n    # VMware")
            || mp.contains("user_friendly_names no\n")
    );
    assert!(mp.contains("find_multipaths no\n"));
    assert!(mp.contains("devnode \"^sda[0-9]*$\""), "{mp}");
    assert!(mp.contains(r#"devnode "^(ram|raw|loop|fd|md|dm-|sr|scd|st)[0-9]*""#));
    assert!(mp.contains(r#"devnode "^hd[a-z]""#));
    assert!(mp.contains(r#"devnode "^cciss!c[0-9]d[0-9]*""#));

    // LVM: only the filter changed, the stock one is gone, everything else kept
    let lvm = read(&root.join("etc/lvm/lvm.conf"));
    let stock_lvm = match &before[Path::new("etc/lvm/lvm.conf")] {
        Node::File(b, _) => String::from_utf8(b.clone()).unwrap(),
        n => panic!("{n:?}"),
    };
    assert!(lvm.contains("    filter = [ \"a|^/dev/sda[0-9]*$|\", \"r|.*|\" ]\n"));
    assert!(!lvm.contains("    filter = [ \"a/.*/\" ]\n"));
    assert!(lvm.contains("    # filter = [ \"r|/dev/cdrom|\" ]\n"));
    assert_eq!(lvm.lines().count(), stock_lvm.lines().count() + 1);

    // kdump
    let kd = read(&root.join("etc/kdump.conf"));
    assert!(kd.contains("#path /var/crash\npath /var/crash\n"));
    assert!(kd.contains("\ncore_collector makedumpfile -c --message-level 1 -d 31\n"));
    let grub = read(&root.join("boot/grub/grub.conf"));
    assert_eq!(
        grub.matches("crashkernel=auto").count(),
        1,
        "anaconda's crashkernel=auto kept once"
    );

    // network, hosts, firewall
    let ifcfg = read(&root.join("etc/sysconfig/network-scripts/ifcfg-eth0"));
    assert!(
        ifcfg.contains("\nONBOOT=yes\nNM_CONTROLLED=no\n"),
        "{ifcfg}"
    );
    assert!(ifcfg.contains("HWADDR=00:0C:29:4F:8A:21\n"));
    assert!(read(&root.join("etc/hosts")).ends_with("\n192.0.2.77\tmt07.dr.example mt07\n"));
    let ipt = read(&root.join("etc/sysconfig/iptables"));
    assert!(ipt.contains("--dport 22 -j ACCEPT\n-A INPUT -m state --state NEW -m tcp -p tcp --dport 10809 -j ACCEPT\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n"), "{ipt}");
    let mode = |rel: &str| fs::metadata(root.join(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("etc/sysconfig/iptables"), 0o600, "mode kept");

    // writer service and services on (as chkconfig would leave them)
    assert!(read(&root.join("etc/init.d/mtkit-writer")).contains("# chkconfig: 345 95 05"));
    assert_eq!(mode("etc/rc.d/init.d/mtkit-writer"), 0o755);
    assert!(
        read(&root.join("etc/sysconfig/mtkit-writer")).contains("DAEMON_COREFILE_LIMIT=unlimited")
    );
    for (name, s, k) in [
        ("multipathd", 13, 87),
        ("kdump", 20, 80),
        ("ntpd", 58, 74),
        ("mtkit-writer", 95, 5),
    ] {
        let target = Some(PathBuf::from(format!("../init.d/{name}")));
        for l in 2..=5 {
            assert_eq!(
                link(&root, &format!("etc/rc{l}.d/S{s:02}{name}")),
                target,
                "{name} rc{l}"
            );
            assert_eq!(
                link(&root, &format!("etc/rc{l}.d/K{k:02}{name}")),
                None,
                "{name} rc{l}"
            );
        }
        for l in [0, 1, 6] {
            assert_eq!(
                link(&root, &format!("etc/rc{l}.d/K{k:02}{name}")),
                target,
                "{name} rc{l}"
            );
        }
    }
    assert_eq!(
        link(&root, "etc/rc3.d/S55sshd"),
        Some(PathBuf::from("../init.d/sshd"))
    );

    // marker and log
    assert_eq!(
        read(&root.join("var/lib/mtkit/apply/version")).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let log = read(&root.join("var/log/mtkit-apply.log"));
    assert!(
        log.contains("apply: create etc/multipath.conf (multipath)"),
        "{log}"
    );

    // second run: nothing to change, nothing touched
    let after = snapshot(&root);
    let times = mtimes(&root);
    let o = apply(&root, &cfg, &[]);
    assert_eq!(stdout(&o), "nothing to change\n");
    assert_eq!(snapshot(&root), after);
    assert_eq!(mtimes(&root), times, "mtimes unchanged on the second run");

    // revert: byte-identical (the log stays as the audit trail)
    let o = apply(&root, &cfg, &["--revert"]);
    assert!(
        stdout(&o).contains("did remove etc/multipath.conf"),
        "{}",
        stdout(&o)
    );
    let mut reverted = snapshot(&root);
    assert!(read(&root.join("var/log/mtkit-apply.log")).contains("revert: apply state removed"));
    reverted.remove(Path::new("var/log/mtkit-apply.log"));
    assert_eq!(reverted, before);
    let o = apply(&root, &cfg, &["--revert"]);
    assert_eq!(stdout(&o), "nothing to revert\n");
}

#[test]
fn dry_run_shows_diffs_and_writes_nothing() {
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    let before = snapshot(&root);
    let times = mtimes(&root);
    let o = apply(&root, &cfg, &["--dry-run"]);
    let out = stdout(&o);
    assert!(
        out.contains("--- /dev/null\n+++ b/etc/multipath.conf\n"),
        "{out}"
    );
    assert!(out.contains("--- a/etc/lvm/lvm.conf\n+++ b/etc/lvm/lvm.conf\n"));
    assert!(
        out.contains("-    filter = [ \"a/.*/\" ]\n+    # mtkit: accept only the OS disk (sda)\n")
    );
    assert!(out.contains("-ONBOOT=no\n"));
    assert!(out.contains("remove etc/rc.d/rc3.d/K87multipathd (was link to ../init.d/multipathd)"));
    assert!(out.contains("would link etc/rc.d/rc3.d/S13multipathd (services)"));
    let o = apply(&root, &cfg, &["--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changed = v["changed"].as_array().unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c["path"] == "etc/lvm/lvm.conf" && c["action"] == "edit")
    );
    assert!(v["diff"].as_str().unwrap().contains("+++ b/etc/kdump.conf"));
    assert_eq!(snapshot(&root), before);
    assert_eq!(mtimes(&root), times);

    // revert --dry-run after a real apply shows the way back and changes nothing
    apply(&root, &cfg, &[]);
    let applied = snapshot(&root);
    let o = apply(&root, &cfg, &["--revert", "--dry-run"]);
    let out = stdout(&o);
    assert!(
        out.contains("--- a/etc/lvm/lvm.conf\n+++ b/etc/lvm/lvm.conf\n"),
        "{out}"
    );
    assert!(out.contains("would remove etc/multipath.conf (revert)"));
    assert!(out.contains("would link etc/rc.d/rc3.d/K87multipathd (revert)"));
    assert_eq!(snapshot(&root), applied);
}

/// Applies the unified diff `diff` in `dir` with `patch -p1` and with `git apply`, each on
/// its own copy; returns the two copies.
fn patched(dir: &Path, diff: &str, tag: &str) -> [PathBuf; 2] {
    let copies = [
        dir.with_extension(format!("{tag}-patch")),
        dir.with_extension(format!("{tag}-git")),
    ];
    for c in &copies {
        copy_tree(dir, c);
    }
    let file = dir.with_extension(format!("{tag}.diff"));
    fs::write(&file, diff).unwrap();
    let patch = Command::new("patch")
        .args(["-p1", "--quiet", "--batch", "--no-backup-if-mismatch", "-i"])
        .arg(&file)
        .arg("-d")
        .arg(&copies[0])
        .output()
        .unwrap();
    let git = Command::new("git")
        .args(["apply", "-p1", "--whitespace=nowarn"])
        .arg(&file)
        .current_dir(&copies[1])
        .output()
        .unwrap();
    for (what, o) in [("patch -p1", patch), ("git apply", git)] {
        assert!(
            o.status.success(),
            "{what} refused the diff: {}{}\n{diff}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    copies
}

/// `apply --dry-run` prints a real unified diff: patch(1) and git apply take it, and the
/// files they make are the files `apply` writes. Texts without a final newline too (the
/// diff marks them, as diff(1) does).
#[test]
fn the_dry_run_diff_is_a_patch_that_patch_and_git_apply_take() {
    require!(support::have("patch"), "patch (Debian patch) not installed");
    require!(support::have("git"), "git not installed");
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    let o = apply(&root, &cfg, &["--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let diff = v["diff"].as_str().unwrap().to_string();
    let copies = patched(&root, &diff, "all");
    apply(&root, &cfg, &[]);
    let files: Vec<&str> = diff
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .collect();
    assert!(
        files.contains(&"etc/lvm/lvm.conf") && files.contains(&"etc/multipath.conf"),
        "{files:?}"
    );
    for c in &copies {
        for f in &files {
            assert_eq!(
                read(&c.join(f)),
                read(&root.join(f)),
                "{f} as {} made it",
                c.display()
            );
        }
    }
    // Edge cases of the format, through the library function apply prints with.
    let cases = [
        ("a\nb", "a\nc"),
        ("a\nb\n", "a\nb"),
        ("a\nb", "a\nb\n"),
        (
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
            "1\nTWO\n3\n4\n5\n6\n7\n8\n9\n10\n11\nTWELVE\n",
        ),
    ];
    for (i, (old, new)) in cases.iter().enumerate() {
        let dir = d.path().join(format!("case{i}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("f"), old).unwrap();
        let diff = mtkit::provision::diff::unified(old, new, "a/f", "b/f");
        for c in patched(&dir, &diff, "one") {
            assert_eq!(
                fs::read_to_string(c.join("f")).unwrap(),
                *new,
                "case {i}:\n{diff}"
            );
        }
    }
}

#[test]
fn edited_lvm_conf_passes_real_lvmconfig_validate() {
    require!(
        support::have("lvmconfig"),
        "lvmconfig (Debian lvm2) not installed"
    );
    let d = centos66();
    let root = d.path().join("r");
    let validate = |dir: &Path| {
        Command::new("lvmconfig")
            .arg("--validate")
            .env("LVM_SYSTEM_DIR", dir)
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output()
            .unwrap()
    };
    // The stock 6.6 file is valid for lvm2 2.03 too: every key it sets is still known.
    let o = validate(&root.join("etc/lvm"));
    assert!(o.status.success(), "stock: {}", support::stderr(&o));
    apply(&root, &config(d.path(), CONFIG), &[]);
    let copy = d.path().join("lvm-copy");
    fs::create_dir(&copy).unwrap();
    fs::copy(root.join("etc/lvm/lvm.conf"), copy.join("lvm.conf")).unwrap();
    let o = validate(&copy);
    assert!(o.status.success(), "edited: {}", support::stderr(&o));
    let said = format!("{}{}", stdout(&o), support::stderr(&o));
    assert!(said.contains("LVM configuration valid"), "{said}");
    // The filter for an OS disk named by SCSI ID (udev's by-id links) is valid as well.
    let edited = read(&copy.join("lvm.conf"));
    let lvm = |os: &str| mtkit::provision::lvm::filter_line(os);
    let id = "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0";
    assert!(edited.contains(&lvm("sda")));
    fs::write(copy.join("lvm.conf"), edited.replace(&lvm("sda"), &lvm(id))).unwrap();
    let o = validate(&copy);
    assert!(o.status.success(), "by id: {}", support::stderr(&o));
    fs::write(copy.join("lvm.conf"), &edited).unwrap();
    // The check can fail: a broken filter is rejected.
    let broken = read(&copy.join("lvm.conf")).replace("\"r|.*|\" ]", "\"r|.*|\"");
    fs::write(copy.join("lvm.conf"), broken).unwrap();
    assert!(!validate(&copy).status.success());
}

#[test]
fn os_disk_with_a_scsi_id_is_blacklisted_by_wwid() {
    let d = centos66();
    let root = d.path().join("r");
    let dev = root.join("sys/block/sda/device");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("wwid"), "naa.6000c29d4e1f0a2b3c4d5e6f708192a3\n").unwrap();
    apply(&root, &config(d.path(), CONFIG), &[]);
    let mp = read(&root.join("etc/multipath.conf"));
    assert!(
        mp.contains("    # the OS disk (sda)\n    wwid \"36000c29d4e1f0a2b3c4d5e6f708192a3\"\n"),
        "{mp}"
    );
    assert!(!mp.contains("^sda"));
}

#[test]
fn kernel_lines_without_crashkernel_get_it() {
    let d = centos66();
    let root = d.path().join("r");
    let g = root.join("boot/grub/grub.conf");
    let stock = read(&g);
    fs::write(
        &g,
        stock.replace(" crashkernel=auto ", " crashkernel=128M "),
    )
    .unwrap();
    apply(&root, &config(d.path(), CONFIG), &[]);
    let grub = read(&g);
    assert!(grub.contains("rhgb quiet crashkernel=auto\n"), "{grub}");
    assert!(!grub.contains("128M"));
    assert!(grub.contains("\troot (hd0,0)\n") && grub.contains("rd_NO_LUKS rd_NO_LVM"));
}

#[test]
fn a_changed_config_replaces_the_old_edits_and_revert_still_reaches_the_original() {
    let d = centos66();
    let root = d.path().join("r");
    let before = snapshot(&root);
    apply(&root, &config(d.path(), CONFIG), &[]);
    // As a newer mtkit would: the marker names an older version; the port moved.
    fs::write(root.join("var/lib/mtkit/apply/version"), "0.0.1\n").unwrap();
    let cfg = config(
        d.path(),
        &CONFIG
            .replace("10809", "10900")
            .replace("os-disk = \"sda\"", "os-disk = \"vda\""),
    );
    let o = apply(&root, &cfg, &[]);
    assert!(
        stdout(&o).contains("upgrading changes applied by mtkit 0.0.1"),
        "{}",
        stdout(&o)
    );
    let ipt = read(&root.join("etc/sysconfig/iptables"));
    assert!(
        ipt.contains("--dport 10900 -j ACCEPT") && !ipt.contains("10809"),
        "{ipt}"
    );
    let lvm = read(&root.join("etc/lvm/lvm.conf"));
    assert_eq!(lvm.matches("# mtkit:").count(), 1);
    assert!(lvm.contains("a|^/dev/vda[0-9]*$|"));
    assert_eq!(
        read(&root.join("var/lib/mtkit/apply/version")).trim(),
        env!("CARGO_PKG_VERSION")
    );
    apply(&root, &cfg, &["--revert"]);
    let mut reverted = snapshot(&root);
    reverted.remove(Path::new("var/log/mtkit-apply.log"));
    assert_eq!(reverted, before);
}

#[test]
fn systemd_root_gets_unit_enablement_links() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    let units = root.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    fs::write(root.join("usr/lib/systemd/systemd"), "").unwrap();
    fs::write(
        units.join("multipathd.service"),
        "[Service]\nExecStart=/sbin/multipathd\n[Install]\nWantedBy=sysinit.target\n",
    )
    .unwrap();
    fs::write(
        units.join("kdump.service"),
        "[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("etc/lvm")).unwrap();
    let cfg = config(d.path(), CONFIG);
    let o = apply(&root, &cfg, &[]);
    assert!(
        support::stderr(&o).contains("ntpd.service not installed"),
        "{}",
        support::stderr(&o)
    );
    assert_eq!(
        link(
            &root,
            "etc/systemd/system/sysinit.target.wants/multipathd.service"
        ),
        Some(PathBuf::from("/usr/lib/systemd/system/multipathd.service"))
    );
    assert_eq!(
        link(
            &root,
            "etc/systemd/system/multi-user.target.wants/mtkit-writer.service"
        ),
        Some(PathBuf::from("/etc/systemd/system/mtkit-writer.service"))
    );
    assert!(
        read(&root.join("etc/systemd/system/mtkit-writer.service")).contains("LimitCORE=infinity")
    );
    apply(&root, &cfg, &["--revert"]);
    assert!(
        !root.join("etc/systemd").exists(),
        "created folders removed on revert"
    );
    assert!(!root.join("etc/multipath.conf").exists());
}

#[test]
fn bad_root_is_bad_input() {
    let o = run(&["apply", "--root", "/nonexistent/mtkit-root"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn os_disk_id_comes_from_the_scsi_id_code_on_a_real_sysfs_capture() {
    // The host branch's capture of a VMware-like VM: sda's scsi_id is 36000c29a1b2c3d4e.
    let d = centos66();
    let root = d.path().join("r");
    copy_tree(&fixture("scsi/vmware-like/sys"), &root.join("sys"));
    let cfg = config(d.path(), CONFIG);
    apply(&root, &cfg, &[]);
    let mp = read(&root.join("etc/multipath.conf"));
    assert!(
        mp.contains("    # the OS disk (sda)\n    wwid \"36000c29a1b2c3d4e\"\n"),
        "{mp}"
    );
    // The data disks of the capture are not blacklisted.
    assert!(!mp.contains("36000c2955f0e7a11"));
}

/// The rendered SysV script really runs: started, its writer respawned after exiting,
/// stopped with both processes gone. The CentOS function library is replaced by a small
/// stand-in with the same contract (status/killproc with -p, success/failure).
#[test]
fn init_script_respawns_the_writer_and_stops_cleanly() {
    require!(support::have("logger"), "logger (bsdutils) not installed");
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let functions = t.join("functions");
    fs::write(
        &functions,
        r#"
status() { local pid; pid=$(cat "$2" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && echo "$3 (pid $pid) is running..." && return 0; echo "$3 is stopped"; return 3; }
killproc() { local pid; pid=$(cat "$2" 2>/dev/null) || return 1; kill -TERM "$pid"; for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }; sleep 0.1; done; kill -KILL "$pid"; return 1; }
success() { echo -n " [ OK ]"; }
failure() { echo -n " [FAILED]"; }
"#,
    )
    .unwrap();
    // A writer that records each start, runs briefly, and exits with an error.
    let fake = t.join("mtkit");
    let starts = t.join("starts");
    fs::write(
        &fake,
        format!(
            "#!/bin/bash\necho $$ >> {}\nsleep 0.3\nexit 1\n",
            starts.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(t.join("appliance.toml"), "").unwrap();
    fs::write(t.join("mtkit-writer"), "RESPAWN_DELAY=0.2\n").unwrap();
    let script = mtkit::provision::writer_service::render(
        mtkit::provision::InitSystem::SysV,
        &mtkit::config::Config::default(),
    )
    .unwrap()
    .replace("/etc/rc.d/init.d/functions", functions.to_str().unwrap())
    .replace("/var/run/", &format!("{}/", t.display()))
    .replace("/var/lock/subsys/", &format!("{}/", t.display()))
    .replace("/etc/sysconfig/", &format!("{}/", t.display()))
    .replace("/usr/local/sbin/mtkit", fake.to_str().unwrap())
    .replace(
        "/etc/mtkit/appliance.toml",
        t.join("appliance.toml").to_str().unwrap(),
    );
    let init = t.join("init");
    fs::write(&init, script).unwrap();
    let svc = |cmd: &str| Command::new("bash").arg(&init).arg(cmd).output().unwrap();

    let o = svc("start");
    assert!(o.status.success(), "start: {}", stdout(&o));
    let wrapper: i32 = read(&t.join("mtkit-writer.pid")).trim().parse().unwrap();
    assert!(svc("status").status.success());
    // Respawned: several starts with different pids within a few seconds.
    let mut n = 0;
    for _ in 0..50 {
        n = fs::read_to_string(&starts)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(n >= 3, "writer started {n} times, wanted a respawn");
    let o = svc("stop");
    assert!(o.status.success(), "stop: {}", stdout(&o));
    // SAFETY: kill with signal 0 only checks whether the process exists.
    assert_ne!(
        unsafe { libc::kill(wrapper, 0) },
        0,
        "wrapper still running"
    );
    let last: i32 = read(&starts).lines().last().unwrap().parse().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    // SAFETY: as above.
    assert_ne!(unsafe { libc::kill(last, 0) }, 0, "writer still running");
    let n_after = read(&starts).lines().count();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        read(&starts).lines().count(),
        n_after,
        "no start after stop"
    );
    assert_eq!(svc("status").status.code(), Some(3));
}

/// A step that fails half-way (rc5.d made immutable: even root cannot add links there)
/// leaves the system as it was: the changes already made by that run are undone.
#[test]
fn failing_step_undoes_the_run() {
    require!(
        support::is_root() && support::have("chattr"),
        "needs root and chattr"
    );
    let d = centos66();
    let root = d.path().join("r");
    let before = snapshot(&root);
    let rc5 = root.join("etc/rc.d/rc5.d");
    let st = Command::new("chattr").arg("+i").arg(&rc5).status().unwrap();
    require!(st.success(), "chattr +i not supported on this filesystem");
    let o = run(&[
        "apply",
        "--root",
        root.to_str().unwrap(),
        "--config",
        config(d.path(), CONFIG).to_str().unwrap(),
    ]);
    Command::new("chattr").arg("-i").arg(&rc5).status().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", support::stderr(&o));
    assert!(
        support::stderr(&o).contains("rc5.d"),
        "{}",
        support::stderr(&o)
    );
    assert_eq!(snapshot(&root), before);
}

/// An admin on the wrong machine, or a VM whose disk is vda: the LVM filter would accept
/// only a disk that is not there. Refused (exit 2, nothing written) unless --force;
/// --dry-run shows the plan with the warning.
#[test]
fn os_disk_that_is_not_a_disk_of_the_system_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    copy_tree(&fixture("roots/healthy"), &root);
    let cfg = config(d.path(), "[disks]\nos-disk = \"vda\"\n");
    let before = snapshot(&root);
    let args = ["apply", "--root", root.to_str().unwrap(), "--config"];
    let o = run(&[&args[..], &[cfg.to_str().unwrap()]].concat());
    let e = support::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(
            "[disks] os-disk = \"vda\" is not a disk of this system (its disks: sda, sdb, sdc, sdd)"
        ) && e.contains("--force"),
        "{e}"
    );
    assert_eq!(snapshot(&root), before);

    // The dry run shows the plan and exits as the real run would: 2.
    let o = run(&[&args[..], &[cfg.to_str().unwrap(), "--dry-run"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", support::stderr(&o));
    assert!(support::stderr(&o).contains("is not a disk of this system"));
    assert!(stdout(&o).contains("would "), "{}", stdout(&o));
    assert_eq!(snapshot(&root), before);

    apply(&root, &cfg, &["--force"]);
    assert_ne!(snapshot(&root), before);
}

/// An os-disk SCSI ID or link that names no disk, or two: refused with exit 2, the disks
/// listed, nothing written (the dry run too); never a fallback to a kernel name.
#[test]
fn os_disk_id_or_link_that_names_no_disk_or_two_is_refused() {
    let none = "36000c29ffffffffffffffffffffffffffffffff";
    let cloned = "36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90";
    for (fixture_root, os_disk, want) in [
        (
            "healthy",
            none.to_string(),
            format!(
                "[disks] os-disk = \"{none}\": no disk has SCSI ID {none} (this system's disks: \
                 sda 36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0, sdb {cloned}, \
                 sdc 36000c29b2c3d4e5f60718293a4b5c6d7e8f90a1, \
                 sdd 36000c29c3d4e5f60718293a4b5c6d7e8f90a1b2; see `mtkit scsi-ids`); \
                 nothing was changed: set [disks] os-disk in appliance.toml to the OS disk's \
                 SCSI ID"
            ),
        ),
        (
            "healthy",
            "/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:9:0".to_string(),
            "[disks] os-disk = \"/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:9:0\": no disk has \
             /dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:9:0 (this system's disks: sda"
                .to_string(),
        ),
        (
            "cloned",
            cloned.to_string(),
            format!(
                "[disks] os-disk = \"{cloned}\": SCSI ID {cloned} is on sdb and sdc; nothing was \
                 changed: more than one disk answers to it"
            ),
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        copy_tree(&fixture("roots").join(fixture_root), &root);
        let cfg = config(d.path(), &format!("[disks]\nos-disk = \"{os_disk}\"\n"));
        let before = everything(d.path());
        for extra in [&[][..], &["--dry-run"][..]] {
            let o = apply_code(&root, &cfg, extra);
            let e = support::stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{os_disk} {extra:?}: {e}");
            assert!(
                e.contains(&want),
                "{os_disk} {extra:?}: want {want:?} in\n{e}"
            );
            assert_eq!(everything(d.path()), before, "{os_disk} {extra:?}");
        }
    }
}

/// The OS disk by SCSI ID: multipath blacklists that ID and the LVM filter accepts only
/// udev's links to it, which keep naming it whatever kernel name it gets at the next boot.
#[test]
fn os_disk_by_scsi_id_is_blacklisted_and_filtered_by_id() {
    let id = "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    copy_tree(&fixture("roots/healthy"), &root);
    fs::create_dir_all(root.join("etc/lvm")).unwrap();
    fs::write(
        root.join("etc/lvm/lvm.conf"),
        "devices {\n    dir = \"/dev\"\n}\n",
    )
    .unwrap();
    let cfg = config(d.path(), &format!("[disks]\nos-disk = \"{id}\"\n"));
    apply(&root, &cfg, &[]);
    let mp = read(&root.join("etc/multipath.conf"));
    assert!(
        mp.contains(&format!("    # the OS disk (sda)\n    wwid \"{id}\"\n")),
        "{mp}"
    );
    let lvm = read(&root.join("etc/lvm/lvm.conf"));
    assert_eq!(
        lvm,
        format!(
            "devices {{\n    dir = \"/dev\"\n    # mtkit: accept only the OS disk ({id})\n    \
             filter = [ \"a|^/dev/disk/by-id/scsi-{id}(-part[0-9]+)?$|\", \"r|.*|\" ]\n}}\n"
        )
    );
    // Again: nothing changes.
    let o = apply(&root, &cfg, &[]);
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
}

/// Every entry under the test's temp folder: the root and everything beside it ("outside").
fn everything(d: &Path) -> BTreeMap<PathBuf, Node> {
    snapshot(d)
}

fn apply_code(root: &Path, cfg: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "apply",
        "--root",
        root.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Lines an admin adds after the first apply (an /etc/hosts entry, an iptables rule, an
/// LVM setting) survive the next apply, even one that changes mtkit's own lines (a new
/// writer port), and `--revert` keeps them too: the files go back to the originals plus
/// the admin's lines.
#[test]
fn admin_lines_survive_apply_and_revert() {
    let d = centos66();
    let root = d.path().join("r");
    let before = snapshot(&root);
    let cfg = config(d.path(), CONFIG);
    apply(&root, &cfg, &[]);
    let hosts = root.join("etc/hosts");
    let ipt = root.join("etc/sysconfig/iptables");
    let lvm = root.join("etc/lvm/lvm.conf");
    let admin_host = "10.1.2.3\tbackup-server\n";
    let admin_rule = "-A INPUT -s 10.1.2.0/24 -p tcp --dport 5666 -j ACCEPT";
    fs::write(&hosts, format!("{}{admin_host}", read(&hosts))).unwrap();
    let edited_ipt = read(&ipt).replace(
        "-A INPUT -j REJECT",
        &format!("{admin_rule}\n-A INPUT -j REJECT"),
    );
    fs::write(&ipt, edited_ipt).unwrap();
    let lvm_text = read(&lvm);
    fs::write(&lvm, format!("{lvm_text}# admin: keep this\n")).unwrap();

    // Same config: the edits are kept, nothing of mtkit's is missing, nothing to write.
    // (mtkit's line may move after the admin's: the file is made again from the original
    // with the admin's lines in it.)
    let o = apply(&root, &cfg, &[]);
    assert!(read(&hosts).contains(admin_host), "{}", read(&hosts));
    assert!(read(&hosts).contains("192.0.2.77\tmt07.dr.example mt07\n"));
    // A new writer port: mtkit's rule is replaced, the admin's stays.
    let cfg2 = config(d.path(), &CONFIG.replace("10809", "10900"));
    let o2 = apply(&root, &cfg2, &[]);
    let text = read(&ipt);
    assert!(text.contains(admin_rule), "{text}");
    assert!(
        text.contains("--dport 10900 -j ACCEPT") && !text.contains("10809"),
        "{text}"
    );
    assert!(read(&hosts).contains(admin_host));
    assert!(read(&hosts).contains("192.0.2.77\tmt07.dr.example mt07\n"));
    assert!(read(&lvm).ends_with("# admin: keep this\n"));
    assert!(
        read(&lvm).contains("filter = [ \"a|^/dev/sda[0-9]*$|\", \"r|.*|\" ]"),
        "mtkit's filter still there"
    );
    let said = format!("{}{}", support::stderr(&o), support::stderr(&o2));
    assert!(said.contains("the edits are kept"), "{said}");
    // Applying again changes nothing.
    let settled = snapshot(&root);
    assert_eq!(stdout(&apply(&root, &cfg2, &[])), "nothing to change\n");
    assert_eq!(snapshot(&root), settled);

    // Revert: the originals plus the admin's lines; every other file as before.
    apply(&root, &cfg2, &["--revert"]);
    let mut after = snapshot(&root);
    after.remove(Path::new("var/log/mtkit-apply.log"));
    let file = |m: &BTreeMap<PathBuf, Node>, p: &str| match &m[Path::new(p)] {
        Node::File(b, _) => String::from_utf8(b.clone()).unwrap(),
        n => panic!("{p}: {n:?}"),
    };
    assert_eq!(
        file(&after, "etc/hosts"),
        format!("{}{admin_host}", file(&before, "etc/hosts"))
    );
    let ipt_after = file(&after, "etc/sysconfig/iptables");
    assert!(
        ipt_after.contains(admin_rule) && !ipt_after.contains("10900"),
        "{ipt_after}"
    );
    assert_eq!(
        file(&after, "etc/lvm/lvm.conf"),
        format!("{}# admin: keep this\n", file(&before, "etc/lvm/lvm.conf"))
    );
    for p in ["etc/hosts", "etc/sysconfig/iptables", "etc/lvm/lvm.conf"] {
        after.remove(Path::new(p));
    }
    let mut rest = before;
    for p in ["etc/hosts", "etc/sysconfig/iptables", "etc/lvm/lvm.conf"] {
        rest.remove(Path::new(p));
    }
    assert_eq!(after, rest);
}

/// An edit of mtkit's own lines (the LVM filter), or of a file mtkit wrote whole
/// (multipath.conf), cannot be merged: apply refuses with the diff, exit 2, nothing
/// changed, and its dry run says the same; `--force` keeps the edited files as
/// `.mtkit-bak` and writes mtkit's versions.
#[test]
fn edits_of_mtkit_lines_are_refused_with_the_diff_unless_force() {
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    apply(&root, &cfg, &[]);
    let lvm = root.join("etc/lvm/lvm.conf");
    let mp = root.join("etc/multipath.conf");
    let admin_lvm = read(&lvm).replace("\"r|.*|\" ]", "\"a|^/dev/sdz$|\", \"r|.*|\" ]");
    fs::write(&lvm, &admin_lvm).unwrap();
    let admin_mp = format!("{}# admin: wwid 3600aa\n", read(&mp));
    fs::write(&mp, &admin_mp).unwrap();
    let before = everything(d.path());
    for extra in [&[][..], &["--dry-run"][..]] {
        let o = apply_code(&root, &cfg, extra);
        let e = support::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        assert!(
            e.contains("etc/lvm/lvm.conf: the edit changes lines mtkit wrote"),
            "{e}"
        );
        assert!(
            e.contains("etc/multipath.conf: mtkit wrote the whole file"),
            "{e}"
        );
        assert!(
            e.contains("+    filter = [ \"a|^/dev/sda[0-9]*$|\", \"a|^/dev/sdz$|\""),
            "{e}"
        );
        assert!(e.contains("+# admin: wwid 3600aa"), "{e}");
        assert!(
            e.contains("--force") && e.contains("nothing was changed"),
            "{e}"
        );
        assert_eq!(everything(d.path()), before, "{extra:?}");
    }
    let o = apply(&root, &cfg, &["--force"]);
    assert!(support::stderr(&o).contains("etc/lvm/lvm.conf.mtkit-bak"));
    assert_eq!(read(&root.join("etc/lvm/lvm.conf.mtkit-bak")), admin_lvm);
    assert_eq!(read(&root.join("etc/multipath.conf.mtkit-bak")), admin_mp);
    assert!(!read(&lvm).contains("sdz") && !read(&mp).contains("admin"));
    assert_eq!(stdout(&apply(&root, &cfg, &[])), "nothing to change\n");
}

/// `--revert` never deletes a file mtkit created once the admin edited it: refused (exit
/// 2, nothing changed) unless `--force`, which keeps the edited file as `.mtkit-bak`.
#[test]
fn revert_keeps_an_edited_file_mtkit_created() {
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    apply(&root, &cfg, &[]);
    let mp = root.join("etc/multipath.conf");
    let admin = format!("{}blacklist {{\n    wwid \"3600bb\"\n}}\n", read(&mp));
    fs::write(&mp, &admin).unwrap();
    let before = everything(d.path());
    for extra in [&["--revert"][..], &["--revert", "--dry-run"][..]] {
        let o = apply_code(&root, &cfg, extra);
        let e = support::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        assert!(
            e.contains("etc/multipath.conf: mtkit wrote the whole file"),
            "{e}"
        );
        assert_eq!(everything(d.path()), before);
    }
    apply(&root, &cfg, &["--revert", "--force"]);
    assert!(!mp.exists());
    assert_eq!(read(&root.join("etc/multipath.conf.mtkit-bak")), admin);
    assert!(!root.join("var/lib/mtkit/apply").exists());
}

/// Under `--root`, no link in the system takes apply outside it: folder links (absolute,
/// and relative with more `..` than the depth) resolve inside the root as a chroot would,
/// a planted temp-file name is never opened, an absolute link at a managed file is read
/// inside the root, and a linked log refuses the run (exit 2, nothing changed).
#[test]
fn links_under_root_never_lead_outside_it() {
    let d = centos66();
    let root = d.path().join("r");
    let outside = d.path().join("outside");
    fs::create_dir_all(outside.join("lvm")).unwrap();
    fs::create_dir_all(d.path().join("x")).unwrap();
    fs::write(
        outside.join("lvm/lvm.conf"),
        "devices {\n    filter = [ \"a/.*/\" ]\n}\n",
    )
    .unwrap();
    fs::write(outside.join("hosts"), "10.9.9.9 host-only\n").unwrap();
    fs::write(d.path().join("x/iptables"), "*filter\nCOMMIT\n").unwrap();
    fs::remove_dir_all(root.join("etc/lvm")).unwrap();
    std::os::unix::fs::symlink(outside.join("lvm"), root.join("etc/lvm")).unwrap();
    fs::rename(root.join("etc/sysconfig"), root.join("sysconfig-real")).unwrap();
    std::os::unix::fs::symlink("../../sysconfig-real", root.join("etc/sysconfig")).unwrap();
    fs::remove_file(root.join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink(outside.join("hosts"), root.join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink(outside.join("hosts"), root.join("etc/.hosts.mtkit-tmp")).unwrap();
    let cfg = config(d.path(), CONFIG);
    let outside_before = (snapshot(&outside), snapshot(&d.path().join("x")));

    // A linked log: refused before anything changes.
    fs::create_dir_all(root.join("var/log")).unwrap();
    std::os::unix::fs::symlink(outside.join("hosts"), root.join("var/log/mtkit-apply.log"))
        .unwrap();
    let before = everything(d.path());
    let o = apply_code(&root, &cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", support::stderr(&o));
    assert!(support::stderr(&o).contains("mtkit-apply.log is a symbolic link"));
    assert_eq!(everything(d.path()), before);
    fs::remove_file(root.join("var/log/mtkit-apply.log")).unwrap();

    apply(&root, &cfg, &[]);
    assert_eq!(
        (snapshot(&outside), snapshot(&d.path().join("x"))),
        outside_before,
        "nothing outside the root changed"
    );
    // etc/lvm -> /outside/lvm is `<root>/outside/lvm` seen from inside: not there.
    assert!(!root.join("outside").exists());
    // etc/sysconfig -> ../../sysconfig-real is `<root>/sysconfig-real`: edited there.
    let ipt = read(&root.join("sysconfig-real/iptables"));
    assert!(ipt.contains("--dport 10809 -j ACCEPT"), "{ipt}");
    // etc/hosts (a link to the host's file) read as missing inside, replaced by a file.
    let hosts = fs::symlink_metadata(root.join("etc/hosts")).unwrap();
    assert!(hosts.is_file());
    assert_eq!(
        read(&root.join("etc/hosts")),
        "192.0.2.77\tmt07.dr.example mt07\n"
    );
    assert!(
        fs::symlink_metadata(root.join("etc/.hosts.mtkit-tmp"))
            .unwrap()
            .is_symlink()
    );
    apply(&root, &cfg, &["--revert"]);
    assert_eq!(
        (snapshot(&outside), snapshot(&d.path().join("x"))),
        outside_before
    );
    assert!(
        fs::symlink_metadata(root.join("etc/hosts"))
            .unwrap()
            .is_symlink(),
        "link restored"
    );
}

/// The apply state is input like any file under the root: an entry whose path, copy or
/// created folder is absolute or holds `..`, or a saved original that is a link, refuses
/// the run (exit 2) with nothing changed inside or outside the root.
#[test]
fn forged_apply_state_is_refused() {
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    apply(&root, &cfg, &[]);
    let victim = d.path().join("victim");
    fs::create_dir_all(victim.join("dir")).unwrap();
    fs::write(victim.join("file"), "keep me\n").unwrap();
    let state_p = root.join("var/lib/mtkit/apply/state.json");
    let good = read(&state_p);
    let v = victim.display().to_string();
    let forged = [
        good.replacen(
            "\"path\": \"etc/multipath.conf\"",
            &format!("\"path\": \"{v}/file\""),
            1,
        ),
        good.replacen(
            "\"path\": \"etc/multipath.conf\"",
            "\"path\": \"etc/../../victim/file\"",
            1,
        ),
        good.replacen(
            "\"backup\": \"orig/etc/hosts\"",
            &format!("\"backup\": \"{v}/file\""),
            1,
        ),
        good.replacen(
            "\"backup\": \"orig/etc/hosts\"",
            "\"backup\": \"orig/../../../../../victim/file\"",
            1,
        ),
        good.replacen(
            "\"created-dirs\": [",
            &format!("\"created-dirs\": [\n    \"{v}/dir\","),
            1,
        ),
    ];
    for (i, text) in forged.iter().enumerate() {
        assert_ne!(text, &good, "case {i} changed nothing");
        fs::write(&state_p, text).unwrap();
        let before = everything(d.path());
        for extra in [&[][..], &["--revert"][..], &["--dry-run"][..]] {
            let o = apply_code(&root, &cfg, extra);
            let e = support::stderr(&o);
            assert_eq!(o.status.code(), Some(2), "case {i} {extra:?}: {e}");
            assert!(e.contains("the apply state is damaged or forged"), "{e}");
            assert_eq!(everything(d.path()), before, "case {i} {extra:?}");
        }
    }
    fs::write(&state_p, &good).unwrap();
    // A saved original replaced by a link to a file outside: never followed.
    let orig = root.join("var/lib/mtkit/apply/orig/etc/hosts");
    fs::remove_file(&orig).unwrap();
    std::os::unix::fs::symlink(victim.join("file"), &orig).unwrap();
    let before = everything(d.path());
    let o = apply_code(&root, &cfg, &["--revert"]);
    assert_eq!(o.status.code(), Some(2), "{}", support::stderr(&o));
    assert!(
        support::stderr(&o).contains("is a symbolic link"),
        "{}",
        support::stderr(&o)
    );
    assert_eq!(everything(d.path()), before);
}

/// A FIFO where apply reads a file does not hang it: refused (exit 2), nothing changed.
#[test]
fn fifo_under_root_is_refused_not_read() {
    let d = centos66();
    let root = d.path().join("r");
    let cfg = config(d.path(), CONFIG);
    fs::remove_file(root.join("etc/kdump.conf")).unwrap();
    nix_mkfifo(&root.join("etc/kdump.conf"));
    let before = everything(d.path());
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["apply", "--root", root.to_str().unwrap(), "--config"];
        args.push(cfg.to_str().unwrap());
        args.extend_from_slice(extra);
        let o = support::run_or_kill(&args, std::time::Duration::from_secs(120));
        assert_eq!(o.status.code(), Some(2), "{}", support::stderr(&o));
        assert!(
            support::stderr(&o).contains("kdump.conf is a FIFO"),
            "{}",
            support::stderr(&o)
        );
    }
    assert_eq!(everything(d.path()), before);
}

fn nix_mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// The writer's unit names the retention mountpoint exactly, whatever it holds (a blank,
/// `%`, quotes): systemd's own parser (`systemd-analyze verify`) derives from it the one
/// mount unit `systemd-escape --path` gives for the path. A newline in the mountpoint
/// (which would add `[Service]` and `ExecStartPre=` lines) is refused by the config:
/// exit 2, nothing changed.
#[test]
fn writer_unit_paths_are_escaped_for_systemd() {
    require!(
        support::have("systemd-analyze") && support::have("systemd-escape"),
        "systemd-analyze and systemd-escape (Debian systemd) not installed"
    );
    let d = tempfile::tempdir().unwrap();
    for mp in [
        "/mnt/retention",
        "/mnt/my retention",
        "/srv/100%/r",
        "/srv/q\"uote's",
    ] {
        let mut c = mtkit::config::Config::default();
        c.retention.mountpoint = mp.into();
        let unit =
            mtkit::provision::writer_service::render(mtkit::provision::InitSystem::Systemd, &c)
                .unwrap();
        assert_eq!(unit.matches("RequiresMountsFor=").count(), 1);
        let f = d.path().join("mtkit-writer.service");
        fs::write(&f, &unit).unwrap();
        let o = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&f)
            .env("SYSTEMD_LOG_LEVEL", "debug")
            .output()
            .unwrap();
        let said = format!("{}{}", stdout(&o), support::stderr(&o));
        let want = Command::new("systemd-escape")
            .args(["--path", "--suffix=mount", mp])
            .output()
            .unwrap();
        let want = String::from_utf8(want.stdout).unwrap().trim().to_string();
        assert!(
            said.contains(&format!("{want}: ")),
            "{mp}: systemd did not read {want} from\n{unit}\n{said}"
        );
    }

    let root = d.path().join("r");
    fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    fs::write(root.join("usr/lib/systemd/systemd"), "").unwrap();
    let cfg = config(
        d.path(),
        &format!(
            "{CONFIG}[retention]\nmountpoint = \"/mnt/r\\n[Service]\\nExecStartPre=/bin/id\"\n"
        ),
    );
    let before = snapshot(&root);
    let o = apply_code(&root, &cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", support::stderr(&o));
    assert!(support::stderr(&o).contains("holds the control character '\\n'"));
    assert_eq!(snapshot(&root), before);
}
