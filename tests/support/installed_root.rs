//! Shared by tests/seal.rs and tests/firstboot.rs: an installed master target root
//! (CentOS 6.6 or systemd) as the kickstart leaves it and its admin uses it, and reading its files.

use super::{fixture, run, stderr};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CentOs6,
    Systemd,
}

/// An installed MT under `<tmp>/r`: the distribution's fixture root, the machine's own files
/// (make-installed-mt.sh), writer certificates with one client, and `mtkit apply` run as
/// the kickstart's %post runs it.
pub fn installed(kind: Kind) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    let maker = match kind {
        Kind::CentOs6 => "make-centos66-root.sh",
        Kind::Systemd => "make-systemd-root.sh",
    };
    for (script, arg) in [(maker, &root), ("make-installed-mt.sh", &root)] {
        let st = Command::new("bash")
            .arg(fixture(script))
            .arg(arg)
            .status()
            .unwrap();
        assert!(st.success(), "{script} failed");
    }
    let cfg = root.join("etc/mtkit/appliance.toml");
    let tls = root.join("etc/mtkit/tls");
    ok(&[
        "writer",
        "certs",
        "--config",
        s(&cfg),
        "--out",
        s(&tls),
        "--client",
        "ps01",
    ]);
    ok(&["apply", "--root", s(&root), "--config", s(&cfg)]);
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs mtkit and asserts it succeeded; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "mtkit {args:?} failed: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn exists(root: &Path, rel: &str) -> bool {
    fs::symlink_metadata(root.join(rel)).is_ok()
}

pub fn text(root: &Path, rel: &str) -> String {
    super::read(&root.join(rel))
}

pub fn mode(root: &Path, rel: &str) -> u32 {
    fs::metadata(root.join(rel)).unwrap().permissions().mode() & 0o7777
}

/// The apply state's copy of `rel` as it was before mtkit.
pub fn original(root: &Path, rel: &str) -> String {
    text(root, &format!("var/lib/mtkit/apply/orig/{rel}"))
}
