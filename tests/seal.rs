//! `mtkit seal --root` on an installed master target (CentOS 6.6 and systemd fixture
//! roots, after `mtkit apply` as the kickstart runs it): the dry run changes nothing and
//! shows the diffs, the seal removes or edits every machine-specific file (each asserted),
//! a second seal changes nothing, refusals leave the root as it was, and no path escapes
//! the root.

mod support;

use serde_json::Value;
use std::fs;
use std::path::Path;
use support::installed_root::*;
use support::tree::{mtimes, snapshot};
use support::{finding, run, stderr, stdout};

fn seal(root: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["seal", "--root", s(root)];
    args.extend_from_slice(extra);
    run(&args)
}

/// The seal assertions both kinds share.
fn assert_sealed_common(root: &Path) {
    // SSH host keys gone; the rest of /etc/ssh stays.
    let ssh: Vec<String> = fs::read_dir(root.join("etc/ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!ssh.iter().any(|n| n.starts_with("ssh_host_")), "{ssh:?}");
    assert!(ssh.contains(&"sshd_config".to_string()) && ssh.contains(&"ssh_config".to_string()));

    // udev: the NIC's rule gone (a clone's NIC would come up as eth1), others kept.
    assert!(!exists(root, "etc/udev/rules.d/70-persistent-net.rules"));
    assert!(exists(root, "etc/udev/rules.d/70-persistent-cd.rules"));

    // The NIC: no HWADDR/UUID, no static address, DHCP; apply's ONBOOT kept. Apply's copy
    // of the pre-mtkit file is sealed too, or the next apply would bring the MAC back.
    let ifcfg = text(root, "etc/sysconfig/network-scripts/ifcfg-eth0");
    let orig = original(root, "etc/sysconfig/network-scripts/ifcfg-eth0");
    for t in [&ifcfg, &orig] {
        for gone in [
            "HWADDR=", "UUID=", "IPADDR=", "PREFIX=", "GATEWAY=", "DNS1=",
        ] {
            assert!(!t.contains(gone), "{gone} in {t}");
        }
        assert!(
            t.contains("BOOTPROTO=dhcp\n") && t.contains("DEVICE=eth0\n"),
            "{t}"
        );
    }
    assert!(ifcfg.contains("ONBOOT=yes\nNM_CONTROLLED=no\n"), "{ifcfg}");
    assert!(
        orig.contains("ONBOOT=no\n"),
        "original stays pre-mtkit: {orig}"
    );

    // The installed config follows: DHCP, no address of its own; comments kept.
    let cfg = text(root, "etc/mtkit/appliance.toml");
    assert!(
        cfg.starts_with("# appliance.toml resolved by mtkit"),
        "{cfg}"
    );
    assert!(cfg.contains("bootproto = \"dhcp\"\nip = \"\""), "{cfg}");
    assert!(cfg.contains("gateway = \"\"\ndns = []\n"), "{cfg}");
    assert!(cfg.contains("hostname = \"mt07.dr.example\""));
    assert_eq!(mode(root, "etc/mtkit/appliance.toml"), 0o600);

    // Writer TLS: server key and certificate, CA and client keys gone (no shared-ca).
    for f in [
        "server-key.pem",
        "server-cert.pem",
        "ca-key.pem",
        "ca-cert.pem",
    ] {
        assert!(!exists(root, &format!("etc/mtkit/tls/{f}")), "{f}");
    }
    assert_eq!(
        fs::read_dir(root.join("etc/mtkit/tls/clients/ps01"))
            .unwrap()
            .count(),
        0
    );

    // Logs: every file gone but mtkit's own (how the template was made, and the seal).
    let logs: Vec<String> = walk_files(&root.join("var/log"));
    assert_eq!(logs, ["mtkit-apply.log", "mtkit-seal.log"], "{logs:?}");
    assert!(root.join("var/log/audit").is_dir(), "folders stay");
    let seal_log = text(root, "var/log/mtkit-seal.log");
    assert!(
        seal_log.contains(" seal: remove etc/ssh/ssh_host_rsa_key (ssh)\n"),
        "{seal_log}"
    );

    // History, package cache, random seed; a user's other files stay.
    for gone in [
        "root/.bash_history",
        "home/admin/.bash_history",
        "var/cache/yum/x86_64/6/base/repomd.xml",
        "var/cache/yum/x86_64/6/base/packages/lsscsi-0.23-3.el6.x86_64.rpm",
        "var/lib/random-seed",
    ] {
        assert!(!exists(root, gone), "{gone}");
    }
    assert_eq!(text(root, "home/admin/notes.txt"), "keep me\n");

    // fstab: the retention volume's line gone (a clone has no such disk), the rest kept.
    let fstab = text(root, "etc/fstab");
    assert!(!fstab.contains("/mnt/retention"), "{fstab}");
    assert_eq!(fstab.lines().count(), 4, "{fstab}");

    // Marked for first boot.
    assert!(text(root, "var/lib/mtkit/seal").starts_with("sealed by mtkit "));
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    go(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn centos6_dry_run_then_seal_every_file_then_nothing() {
    let d = installed(Kind::CentOs6);
    let root = d.path().join("r");
    let before = snapshot(&root);

    // Dry run: diffs and the list, nothing written.
    let o = seal(&root, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(snapshot(&root), before, "dry run changed the root");
    assert!(out.contains("-HWADDR=00:0C:29:4F:8A:21\n"), "{out}");
    assert!(out.contains("+BOOTPROTO=dhcp\n"), "{out}");
    assert!(
        out.contains("remove etc/ssh/ssh_host_rsa_key (was a file)\n"),
        "{out}"
    );
    assert!(
        out.contains("remove var/log/wtmp (was 21 bytes, binary)\n"),
        "{out}"
    );
    assert!(
        !out.contains("fixture rsa host key"),
        "key contents never shown: {out}"
    );
    assert!(
        out.contains("would link etc/rc.d/rc3.d/S09mtkit-firstboot (firstboot)\n"),
        "{out}"
    );

    let o = seal(&root, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let areas: Vec<&str> = v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["area"].as_str().unwrap())
        .collect();
    for a in [
        "ssh",
        "udev",
        "network",
        "config",
        "writer-tls",
        "machine-id",
        "logs",
        "history",
        "package-cache",
        "random-seed",
        "dhcp",
        "retention",
        "firstboot",
    ] {
        assert!(areas.contains(&a), "{a} in {areas:?}");
    }
    assert_eq!(v["dry-run"], false);
    assert!(v["forced"].as_array().unwrap().is_empty());

    assert_sealed_common(&root);
    // CentOS 6 specifics: protocol 1 key, dbus's machine-id, dhclient's lease, SysV service.
    for gone in [
        "etc/ssh/ssh_host_key",
        "etc/ssh/ssh_host_dsa_key.pub",
        "var/lib/dbus/machine-id",
        "var/lib/dhclient/dhclient-eth0.leases",
    ] {
        assert!(!exists(&root, gone), "{gone}");
    }
    let script = text(&root, "etc/rc.d/init.d/mtkit-firstboot");
    assert!(script.contains("# chkconfig: 2345 09 91\n"), "{script}");
    assert_eq!(mode(&root, "etc/rc.d/init.d/mtkit-firstboot"), 0o755);
    for l in 0..=6 {
        let (want, other) = if (2..=5).contains(&l) {
            ("S09", "K91")
        } else {
            ("K91", "S09")
        };
        let link = root.join(format!("etc/rc.d/rc{l}.d/{want}mtkit-firstboot"));
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("../init.d/mtkit-firstboot")
        );
        assert!(!exists(
            &root,
            &format!("etc/rc.d/rc{l}.d/{other}mtkit-firstboot")
        ));
    }
    // The sshd init script and the writer's service are untouched.
    assert!(exists(&root, "etc/rc.d/rc3.d/S55sshd"));
    assert!(exists(&root, "etc/rc.d/rc3.d/S95mtkit-writer"));

    // Nothing sealed away is kept in apply's revert record.
    let state = text(&root, "var/lib/mtkit/apply/state.json");
    assert!(
        !state.contains("ssh_host") && !state.contains("tls/"),
        "{state}"
    );
    assert!(!exists(&root, "var/lib/mtkit/apply/orig/etc/ssh"));

    // Idempotent: nothing changes, not even an mtime.
    let (snap, times) = (snapshot(&root), mtimes(&root));
    let o = seal(&root, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "nothing to change: already sealed\n");
    assert_eq!(snapshot(&root), snap);
    assert_eq!(mtimes(&root), times);

    // doctor says a first boot is pending.
    let o = run(&["doctor", "--root", s(&root), "--offline", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let f = finding(v.as_array().unwrap(), "firstboot");
    assert_eq!(f["status"], "warn", "{f}");
}

#[test]
fn systemd_root_seal_every_file() {
    let d = installed(Kind::Systemd);
    let root = d.path().join("r");
    let o = seal(&root, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_sealed_common(&root);
    // machine-id emptied (systemd makes a new one at boot), dbus's link to it left alone.
    assert_eq!(text(&root, "etc/machine-id"), "");
    assert_eq!(
        fs::read_link(root.join("var/lib/dbus/machine-id")).unwrap(),
        Path::new("/etc/machine-id")
    );
    for gone in [
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ecdsa_key.pub",
        "var/lib/systemd/random-seed",
        "var/lib/NetworkManager/dhclient-5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03-eth0.lease",
        "var/log/journal/3f1d9f9e0a2b4c5d8e7f60718293a4b5/system.journal",
    ] {
        assert!(!exists(&root, gone), "{gone}");
    }
    let unit = text(&root, "etc/systemd/system/mtkit-firstboot.service");
    assert!(unit.contains("Type=oneshot\n"), "{unit}");
    assert_eq!(
        fs::read_link(
            root.join("etc/systemd/system/multi-user.target.wants/mtkit-firstboot.service")
        )
        .unwrap(),
        Path::new("/etc/systemd/system/mtkit-firstboot.service")
    );
    let snap = snapshot(&root);
    let o = seal(&root, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(snapshot(&root), snap, "second seal changed something");
}

#[test]
fn refuses_with_target_disks_journal_or_mounted_retention_unless_forced() {
    let d = installed(Kind::CentOs6);
    let root = d.path().join("r");
    let cfg = root.join("etc/mtkit/appliance.toml");
    let base = text(&root, "etc/mtkit/appliance.toml");

    // 1. Target disks in the config.
    fs::write(
        &cfg,
        format!(
            "{base}\n[[writer.disk]]\nname = \"vm1-disk0\"\npath = \"/dev/sdb\"\ngroup = \"vm1\"\n"
        ),
    )
    .unwrap();
    let before = snapshot(&root);
    let o = seal(&root, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[[writer.disk]] lists 1 target disk(s) (vm1-disk0)"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("nothing changed"));
    assert_eq!(snapshot(&root), before);
    fs::write(&cfg, &base).unwrap();

    // 2. Journal files of the writer.
    fs::create_dir_all(root.join("mnt/retention/mtkit/vm1")).unwrap();
    fs::write(root.join("mnt/retention/mtkit/vm1/journal.0"), "points").unwrap();
    let before = snapshot(&root);
    let o = seal(&root, &["--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("journal folder /mnt/retention/mtkit holds 1 file(s)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&root), before);

    // 3. The retention volume mounted (the root's proc/mounts).
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(
        root.join("proc/mounts"),
        "/dev/sda2 / ext4 rw 0 0\n/dev/mapper/36000c29c3d4 /mnt/retention ext4 rw 0 0\n",
    )
    .unwrap();
    let before = snapshot(&root);
    let o = seal(&root, &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("retention volume /dev/mapper/36000c29c3d4 is mounted at /mnt/retention"),
        "{e}"
    );
    assert!(e.contains("journal folder"), "every reason at once: {e}");
    assert_eq!(snapshot(&root), before);

    // --force seals and leaves the journal alone.
    let o = seal(&root, &["--force", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["forced"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(text(&root, "mnt/retention/mtkit/vm1/journal.0"), "points");
    assert!(!exists(&root, "etc/ssh/ssh_host_rsa_key"));
}

#[test]
fn shared_ca_is_kept_and_links_never_lead_out_of_the_root() {
    let d = installed(Kind::CentOs6);
    let root = d.path().join("r");
    let cfg = root.join("etc/mtkit/appliance.toml");
    fs::write(
        &cfg,
        text(&root, "etc/mtkit/appliance.toml") + "\n[template]\nshared-ca = true\n",
    )
    .unwrap();
    let ca = text(&root, "etc/mtkit/tls/ca-cert.pem");

    // Links pointing out of the root: absolute ones mean the root's own paths, and a
    // climbing one stops at the root. The files outside must survive the seal.
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path();
    fs::write(out.join("ssh_host_rsa_key"), "host's key").unwrap();
    fs::write(out.join("messages"), "host's log").unwrap();
    fs::create_dir_all(out.join("h")).unwrap();
    fs::write(out.join("h/.bash_history"), "host's history").unwrap();
    std::os::unix::fs::symlink(out, root.join("var/log/host")).unwrap();
    std::os::unix::fs::symlink(out.join("messages"), root.join("var/log/messages.1")).unwrap();
    std::os::unix::fs::symlink(out.join("h"), root.join("home/evil")).unwrap();
    fs::remove_dir_all(root.join("var/cache/yum")).unwrap();
    std::os::unix::fs::symlink(out, root.join("var/cache/yum")).unwrap();

    let o = seal(&root, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        text(&root, "etc/mtkit/tls/ca-cert.pem"),
        ca,
        "shared CA kept"
    );
    assert!(exists(&root, "etc/mtkit/tls/ca-key.pem"));
    assert!(exists(&root, "etc/mtkit/tls/clients/ps01/client-cert.pem"));
    assert!(!exists(&root, "etc/mtkit/tls/server-key.pem"));
    for (f, t) in [
        ("ssh_host_rsa_key", "host's key"),
        ("messages", "host's log"),
        ("h/.bash_history", "host's history"),
    ] {
        assert_eq!(
            fs::read_to_string(out.join(f)).unwrap(),
            t,
            "{f} outside the root"
        );
    }
}
