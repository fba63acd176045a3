//! Shared by the integration tests, included by each the same way (`mod support;` and
//! `use support::...`): here the mtkit binary, skipping with a reason, fixtures and small
//! tools; in the submodules the in-process NBD server and raw client ([`nbd`]), the writer
//! service as a child process ([`writer_env`]), the crash tests' model ([`crash`]), an
//! installed master target root ([`installed_root`]), the CentOS 6 kernel's view
//! ([`old_kernel`]) and a folder tree as data ([`tree`]).
// Every tests/*.rs is its own crate that compiles this whole tree and uses only part of
// it, so the unused rest would warn in each: allowed here, once, for the tree.
#![allow(dead_code)]

pub mod crash;
pub mod installed_root;
pub mod nbd;
pub mod old_kernel;
mod tools;
pub mod tree;
pub mod writer_env;

pub use tools::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The mtkit binary under test.
pub fn mtkit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtkit"));
    // Never pick up the machine's /etc/mtkit/appliance.toml in tests.
    c.env_remove("MTKIT_CONFIG");
    c
}

/// Runs mtkit with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    mtkit().args(args).output().expect("running mtkit")
}

/// Runs mtkit with `args`; a run still going after `deadline` (blocked on a FIFO, say) is
/// killed and the test fails saying so, instead of hanging the suite.
pub fn run_or_kill(args: &[&str], deadline: std::time::Duration) -> Output {
    use std::process::Stdio;
    let mut child = mtkit()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mtkit");
    // Drain both pipes meanwhile: a full pipe must not look like a hang.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for mtkit") {
            break st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mtkit {args:?} still running after {deadline:?}: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// The finding `id` among `findings` (what `mtkit doctor --json` prints); a panic that
/// shows them all when it is not there.
pub fn finding<'a>(findings: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} finding: {findings:#?}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository's top folder.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// Skips the calling test with `reason` when `ok` is false; under MTKIT_REQUIRE_ALL=1
/// (the project's test script, CI) a skip is a failure instead.
#[macro_export]
macro_rules! require {
    ($ok:expr, $($reason:tt)+) => {
        if !$ok {
            let reason = format!($($reason)+);
            if std::env::var_os("MTKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
                panic!("cannot run under MTKIT_REQUIRE_ALL=1: {reason}");
            }
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// The venv's or PATH's ksvalidator.
pub fn ksvalidator() -> Option<PathBuf> {
    let venv = repo().join(".venv/bin/ksvalidator");
    if venv.is_file() {
        return Some(venv);
    }
    have("ksvalidator").then(|| PathBuf::from("ksvalidator"))
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A real RSA public key line (ssh-keygen -t rsa -b 2048), for configs that `build` must
/// accept: without a root password or an SSH key it refuses (nobody could log in).
pub const SSH_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDM3Xac5sOfXb/BVmfbg+1onCQEZWX+1/dtKdA8eMgDgadVB4eFHXXLAvEmYrKehB+ln6+h0/oSGzdU/3zFS34TbIGAr54NbM07nqFuHAKl2MryWR+rfGDzN7D/hD4Bv512jQTGHw36vBULuJttWmLowSpl+VCx2vN5xCTg0CVpmZuxWQvuVXsmpVeh2sM2epMyioO2FPUsNakAQO15997iPF02hLFQYW4Z3Aj8pEgeybuTGBH+z4QSAe4xojm9dtKYkuzVkCUWOLjhtoyDefnB7vsU5fYypcnOkYDVvZ0Z0SLjWa79U5O2Al0kJrYLWaiBvdM0v1JCDgtE2bkDy1+H admin@example";

/// Writes `dir/appliance.toml`: `extra` (TOML tables) plus `[access]` with [`SSH_KEY`], so
/// that `build` has a way in; returns its path.
pub fn config_with_key(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("appliance.toml");
    let text = format!("{extra}\n[access]\nssh-authorized-keys = [\"{SSH_KEY}\"]\n");
    std::fs::write(&p, text).unwrap();
    p
}
