//! Small tools of the host the tests lean on: a free port, a FIFO, a program that must
//! succeed, a tree copy, a Python with a given module.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A FIFO at `p` (mode 0644).
pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Runs `prog args` and asserts it succeeded (its stderr in the message); its output.
pub fn sh(prog: &str, args: &[&str]) -> Output {
    let o = Command::new(prog).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// [`sh`]'s stdout, trimmed.
pub fn sh_text(prog: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&sh(prog, args).stdout)
        .trim()
        .to_string()
}

/// `cp -a from to`: the tree with its links (sysfs links stay links), modes and times.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// The repository's venv Python, else python3, when it can import `module`.
pub fn python_with(module: &str) -> Option<PathBuf> {
    // The repository's folder, not super::repo(): the root re-exports this module.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let py = if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}
