//! `mtkit firstboot --root` on sealed master targets (CentOS 6.6 and systemd fixture
//! roots): the identity from guestinfo (a `vmtoolsd` stand-in on PATH answering
//! `--cmd "info-get guestinfo.mtkit.<key>"` like open-vm-tools), from a config ISO made
//! with xorriso (read with xorriso -osirrox, no mount), or none (DHCP); every file
//! asserted, a second run and a later apply change nothing, two clones of one template get
//! different host keys and certificates, and a failure stays enabled and shows in doctor.

mod support;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::installed_root::*;
use support::tree::{mtimes, snapshot};
use support::{copy_tree, finding, have, mtkit, stderr, stdout};

/// A `vmtoolsd` stand-in answering from files in `values/` (key = file name); exit 1 with
/// vmtoolsd's message for a key that is not set.
fn guestinfo(dir: &Path, values: &[(&str, &str)]) -> PathBuf {
    let bin = dir.join("bin");
    let vals = dir.join("values");
    fs::create_dir_all(&bin).unwrap();
    let _ = fs::remove_dir_all(&vals);
    fs::create_dir_all(&vals).unwrap();
    for (k, v) in values {
        fs::write(vals.join(format!("mtkit.{k}")), format!("{v}\n")).unwrap();
    }
    let shim = bin.join("vmtoolsd");
    fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ \"$1\" = --cmd ] || exit 64\nkey=${{2#info-get guestinfo.}}\n\
             [ \"$key\" != \"$2\" ] || exit 64\n\
             if [ -f '{0}'/\"$key\" ]; then cat '{0}'/\"$key\"; exit 0; fi\n\
             echo 'No value found' >&2\nexit 1\n",
            vals.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn firstboot(root: &Path, shim: Option<&Path>, extra: &[&str]) -> Output {
    let mut c = mtkit();
    c.args(["firstboot", "--root", s(root)]).args(extra);
    if let Some(bin) = shim {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", bin.display()));
    }
    c.output().unwrap()
}

fn sealed(kind: Kind) -> tempfile::TempDir {
    let d = installed(kind);
    ok(&["seal", "--root", s(&d.path().join("r"))]);
    d
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    stdout(&o)
}

fn assert_done(root: &Path) {
    assert!(!exists(root, "var/lib/mtkit/seal"), "seal mark removed");
    let st: Value = serde_json::from_str(&text(root, "var/lib/mtkit/firstboot.json")).unwrap();
    assert_eq!(st["state"], "done", "{st}");
    let log = text(root, "var/log/mtkit-firstboot.log");
    for step in [
        "identity:",
        "network:",
        "ssh-host-keys:",
        "writer-tls:",
        "apply:",
        "disable:",
        "done;",
    ] {
        assert!(log.contains(step), "{step} in {log}");
    }
    // Idempotent: not sealed any more, nothing to do, nothing changed.
    let (snap, times) = (snapshot(root), mtimes(root));
    let o = firstboot(root, None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("not sealed"), "{}", stdout(&o));
    assert_eq!(snapshot(root), snap);
    assert_eq!(mtimes(root), times);
    // apply later plans from its sealed and re-addressed copy: nothing to change.
    let o = support::run(&[
        "apply",
        "--root",
        s(root),
        "--config",
        s(&root.join("etc/mtkit/appliance.toml")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "nothing to change\n");
}

/// The writer's certificates: the server's is signed by the CA and names `names`.
fn assert_server_cert(root: &Path, names: &[&str]) {
    let tls = root.join("etc/mtkit/tls");
    let verify = openssl(&[
        "verify",
        "-CAfile",
        s(&tls.join("ca-cert.pem")),
        s(&tls.join("server-cert.pem")),
    ]);
    assert!(verify.trim_end().ends_with(": OK"), "{verify}");
    let t = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-in",
        s(&tls.join("server-cert.pem")),
    ]);
    for n in names {
        assert!(t.contains(n), "{n} in the server certificate: {t}");
    }
    assert_eq!(mode(root, "etc/mtkit/tls/server-key.pem"), 0o600);
    assert_eq!(mode(root, "etc/mtkit/tls/ca-key.pem"), 0o600);
}

#[test]
fn centos6_guestinfo_identity_every_file() {
    require!(
        have("ssh-keygen") && have("openssl"),
        "ssh-keygen and openssl needed"
    );
    let d = sealed(Kind::CentOs6);
    let root = d.path().join("r");
    let shim = guestinfo(
        d.path(),
        &[
            ("hostname", "mt21.dr.example"),
            ("ip", "198.51.100.21/25"),
            ("gateway", "198.51.100.1"),
            ("dns", "198.51.100.53, 198.51.100.54"),
        ],
    );

    // A dry run tells what it would do and writes nothing.
    let before = snapshot(&root);
    let o = firstboot(&root, Some(&shim), &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("+IPADDR=198.51.100.21\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(snapshot(&root), before, "dry run changed the root");

    let o = firstboot(&root, Some(&shim), &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["source"], "guestinfo");
    assert_eq!(
        v["address"],
        "198.51.100.21/25 gw 198.51.100.1 dns 198.51.100.53,198.51.100.54"
    );

    // Host name where CentOS 6 reads it, and in the config.
    let net = text(&root, "etc/sysconfig/network");
    assert!(
        net.contains("HOSTNAME=mt21.dr.example\n") && net.contains("NETWORKING=yes\n"),
        "{net}"
    );
    let cfg = text(&root, "etc/mtkit/appliance.toml");
    for want in [
        "hostname = \"mt21.dr.example\"",
        "bootproto = \"static\"",
        "ip = \"198.51.100.21\"",
        "prefix = 25",
        "gateway = \"198.51.100.1\"",
        "dns = [\"198.51.100.53\", \"198.51.100.54\"]",
    ] {
        assert!(cfg.contains(want), "{want} in {cfg}");
    }
    // The NIC, and apply's pre-mtkit copy of it (so the next apply keeps the address).
    let ifcfg = text(&root, "etc/sysconfig/network-scripts/ifcfg-eth0");
    assert_eq!(
        ifcfg,
        "DEVICE=eth0\nTYPE=Ethernet\nONBOOT=yes\nNM_CONTROLLED=no\nBOOTPROTO=none\nDEFROUTE=yes\n\
         IPV4_FAILURE_FATAL=yes\nIPV6INIT=no\nNAME=\"System eth0\"\nIPADDR=198.51.100.21\n\
         PREFIX=25\nGATEWAY=198.51.100.1\nDNS1=198.51.100.53\nDNS2=198.51.100.54\n"
    );
    let orig = original(&root, "etc/sysconfig/network-scripts/ifcfg-eth0");
    assert!(
        orig.contains("ONBOOT=no\n") && orig.contains("IPADDR=198.51.100.21\n"),
        "{orig}"
    );
    // apply mapped the new name to the new address.
    let hosts = text(&root, "etc/hosts");
    assert!(
        hosts.contains("198.51.100.21\tmt21.dr.example mt21\n"),
        "{hosts}"
    );
    assert!(!hosts.contains("192.0.2.77"), "{hosts}");

    // New SSH host keys of the types CentOS 6's sshd loads; no protocol 1 key.
    for t in ["rsa", "dsa"] {
        let key = text(&root, &format!("etc/ssh/ssh_host_{t}_key"));
        assert!(key.starts_with("-----BEGIN "), "{t}: {key}");
        assert!(
            !key.contains("OPENSSH PRIVATE KEY"),
            "PEM for OpenSSH 5.3: {key}"
        );
        assert_eq!(mode(&root, &format!("etc/ssh/ssh_host_{t}_key")), 0o600);
        assert!(text(&root, &format!("etc/ssh/ssh_host_{t}_key.pub")).starts_with("ssh-"));
    }
    assert!(!exists(&root, "etc/ssh/ssh_host_key"));

    // A new CA (the template's was sealed away) and a server certificate for this clone.
    assert_server_cert(&root, &["mt21.dr.example", "IP Address:198.51.100.21"]);

    // The service disabled (script kept), the writer's links untouched.
    for l in 0..=6 {
        let names: Vec<String> = fs::read_dir(root.join(format!("etc/rc.d/rc{l}.d")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.ends_with("mtkit-firstboot")),
            "rc{l}.d: {names:?}"
        );
    }
    assert!(exists(&root, "etc/rc.d/init.d/mtkit-firstboot"));
    assert!(exists(&root, "etc/rc.d/rc3.d/S95mtkit-writer"));
    assert_done(&root);

    let o = support::run(&["doctor", "--root", s(&root), "--offline", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        !v.as_array().unwrap().iter().any(|f| f["id"] == "firstboot"),
        "{v}"
    );
}

#[test]
fn systemd_config_iso_identity_every_file() {
    require!(
        have("ssh-keygen") && have("openssl") && have("xorriso"),
        "ssh-keygen, openssl, xorriso needed"
    );
    let d = sealed(Kind::Systemd);
    let root = d.path().join("r");
    // A VMware guest with no mtkit keys set: vmtoolsd answers "No value found".
    let shim = guestinfo(d.path(), &[]);
    let clone = d.path().join("clone.toml");
    fs::write(
        &clone,
        "[appliance]\nhostname = \"mt22.dr.example\"\n[network]\nbootproto = \"static\"\nip = \"198.51.100.22\"\nprefix = 24\n\
         gateway = \"198.51.100.1\"\ndns = [\"198.51.100.53\"]\n",
    )
    .unwrap();
    let iso = d.path().join("clone.iso");
    let o = Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-V",
            "MTKS",
            "-r",
            "-J",
            "-o",
            s(&iso),
            "-graft-points",
        ])
        .arg(format!("mtkit/appliance.toml={}", clone.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let o = firstboot(&root, Some(&shim), &["--config-iso", s(&iso), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["source"],
        format!("ISO {}:/mtkit/appliance.toml", iso.display())
    );

    assert_eq!(text(&root, "etc/hostname"), "mt22.dr.example\n");
    let ifcfg = text(&root, "etc/sysconfig/network-scripts/ifcfg-eth0");
    assert_eq!(
        ifcfg,
        "DEVICE=eth0\nTYPE=Ethernet\nONBOOT=yes\nNM_CONTROLLED=no\nBOOTPROTO=none\nDEFROUTE=yes\n\
         IPV4_FAILURE_FATAL=yes\nIPV6INIT=no\nNAME=\"System eth0\"\nIPADDR=198.51.100.22\n\
         PREFIX=24\nGATEWAY=198.51.100.1\nDNS1=198.51.100.53\n"
    );
    let cfg = text(&root, "etc/mtkit/appliance.toml");
    assert!(cfg.contains("ip = \"198.51.100.22\""), "{cfg}");
    // systemd makes machine-id itself: firstboot leaves the sealed (empty) file alone.
    assert_eq!(text(&root, "etc/machine-id"), "");
    for t in ["rsa", "ecdsa", "ed25519"] {
        assert!(text(&root, &format!("etc/ssh/ssh_host_{t}_key")).starts_with("-----BEGIN "));
        assert!(exists(&root, &format!("etc/ssh/ssh_host_{t}_key.pub")));
    }
    assert_server_cert(&root, &["mt22.dr.example", "IP Address:198.51.100.22"]);
    assert!(!exists(
        &root,
        "etc/systemd/system/multi-user.target.wants/mtkit-firstboot.service"
    ));
    assert!(exists(
        &root,
        "etc/systemd/system/multi-user.target.wants/sshd.service"
    ));
    assert_done(&root);
}

#[test]
fn no_identity_keeps_dhcp_and_two_clones_differ() {
    require!(
        have("ssh-keygen") && have("openssl") && have("xorriso"),
        "ssh-keygen, openssl and xorriso needed"
    );
    let d = sealed(Kind::CentOs6);
    let template = d.path().join("r");
    let sealed_ifcfg = text(&template, "etc/sysconfig/network-scripts/ifcfg-eth0");
    // The template's own kickstart ISO left attached: same label, the template's identity.
    // Taken, it would give every clone the template's static address.
    let own = d.path().join("own.toml");
    fs::write(
        &own,
        "[appliance]\nhostname = \"mt07.dr.example\"\n[network]\nbootproto = \"static\"\nip = \"192.0.2.77\"\n",
    )
    .unwrap();
    let ks_iso = d.path().join("mt-ks.iso");
    let o = Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-V",
            "MTKS",
            "-r",
            "-o",
            s(&ks_iso),
            "-graft-points",
        ])
        .arg(format!("mtkit/appliance.toml={}", own.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Two clones of one template: copies of the sealed tree.
    let clones: Vec<PathBuf> = ["c1", "c2"].iter().map(|c| d.path().join(c)).collect();
    for (i, c) in clones.iter().enumerate() {
        copy_tree(&template, c);
        // No vmtoolsd (not a VMware guest), no ISO or only the template's own: DHCP kept.
        let iso: &[&str] = if i == 0 {
            &["--config-iso", s(&ks_iso)]
        } else {
            &[]
        };
        let o = firstboot(c, None, iso);
        assert!(o.status.success(), "{}", stderr(&o));
        if i == 0 {
            assert!(
                stderr(&o).contains("names the template itself"),
                "{}",
                stderr(&o)
            );
        }
        assert!(
            stdout(&o).contains("from none: host name (kept), address (kept: DHCP)"),
            "{}",
            stdout(&o)
        );
        assert_eq!(
            text(c, "etc/sysconfig/network-scripts/ifcfg-eth0"),
            sealed_ifcfg
        );
        assert!(text(c, "etc/sysconfig/network").contains("HOSTNAME=mt07.dr.example\n"));
        assert_server_cert(c, &["mt07.dr.example"]);
        assert_done(c);
    }
    for f in [
        "etc/ssh/ssh_host_rsa_key",
        "etc/mtkit/tls/server-key.pem",
        "etc/mtkit/tls/ca-cert.pem",
    ] {
        assert_ne!(
            text(&clones[0], f),
            text(&clones[1], f),
            "{f} the same on both clones"
        );
    }
}

#[test]
fn shared_ca_signs_each_clone_and_a_failure_stays_enabled_for_doctor() {
    require!(
        have("ssh-keygen") && have("openssl"),
        "ssh-keygen and openssl needed"
    );
    let d = installed(Kind::CentOs6);
    let root = d.path().join("r");
    let cfg = root.join("etc/mtkit/appliance.toml");
    fs::write(
        &cfg,
        text(&root, "etc/mtkit/appliance.toml") + "\n[template]\nshared-ca = true\n",
    )
    .unwrap();
    let ca = text(&root, "etc/mtkit/tls/ca-cert.pem");
    ok(&["seal", "--root", s(&root)]);

    // A bad value: exit 2, nothing of the system changed, recorded for doctor, still enabled.
    let shim = guestinfo(
        d.path(),
        &[("hostname", "mt23"), ("ip", "198.51.100.300/24")],
    );
    let before = snapshot(&root);
    let o = firstboot(&root, Some(&shim), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("guestinfo.mtkit.ip = \"198.51.100.300\": not an IPv4 address"),
        "{}",
        stderr(&o)
    );
    let mut after = snapshot(&root);
    for recorded in [
        "var/lib/mtkit/firstboot.json",
        "var/log/mtkit-firstboot.log",
    ] {
        after.remove(Path::new(recorded));
    }
    assert_eq!(after, before, "only the failure record was written");
    assert!(exists(&root, "etc/rc.d/rc3.d/S09mtkit-firstboot"));
    let o = support::run(&["doctor", "--root", s(&root), "--offline", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let f = finding(v.as_array().unwrap(), "firstboot");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["found"]
            .as_str()
            .unwrap()
            .contains("first boot failed at identity"),
        "{f}"
    );
    assert!(
        f["remedy"].as_str().unwrap().contains("still enabled"),
        "{f}"
    );

    // Fixed: the next run succeeds, signed by the kept fleet CA.
    guestinfo(d.path(), &[("hostname", "mt23"), ("ip", "dhcp")]);
    let o = firstboot(&root, Some(&shim), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        text(&root, "etc/mtkit/tls/ca-cert.pem"),
        ca,
        "shared CA kept"
    );
    assert_server_cert(&root, &["DNS:mt23"]);
    assert!(text(&root, "etc/sysconfig/network-scripts/ifcfg-eth0").contains("BOOTPROTO=dhcp\n"));
    assert_done(&root);
}
