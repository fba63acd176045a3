//! Running the static (musl) mtkit the media carry as CentOS 6's kernel would: the binary
//! built by `scripts/build-static`, started under the seccomp filter of `filter.rs`.

pub mod filter;

use filter::{Fallocate, OldKernelFilter};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The static binary: `scripts/build-static --debug` (cargo rebuilds it when the source
/// changed, else returns at once). The debug profile keeps the CI cost down (see
/// docs/old-kernel.md); MTKIT_OLD_KERNEL_PROFILE=release tests the release build the media
/// carry instead. `Err` says why it could not be built (no musl target, no musl-gcc).
pub fn static_mtkit() -> Result<PathBuf, String> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let release = std::env::var("MTKIT_OLD_KERNEL_PROFILE").is_ok_and(|p| p == "release");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-static");
            let mut c = Command::new("bash");
            c.arg(&script);
            if !release {
                c.arg("--debug");
            }
            let o = c
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !o.status.success() {
                return Err(format!(
                    "scripts/build-static failed (rustup target add x86_64-unknown-linux-musl; \
                     apt-get install musl-tools): {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if !path.is_file() {
                return Err(format!("scripts/build-static printed {}", path.display()));
            }
            Ok(path)
        })
        .clone()
}

/// `None` when this kernel can install the filter; else why not.
pub fn seccomp_unavailable() -> Option<String> {
    let f = OldKernelFilter::new(Fallocate::Unsupported);
    // A throwaway thread: filters are per thread, this one ends with it.
    std::thread::spawn(move || f.install().err().map(|e| format!("seccomp: {e}")))
        .join()
        .unwrap()
}

/// A command for `program` that runs under the old-kernel filter.
pub fn under_filter(program: &Path, fallocate: Fallocate) -> Command {
    under(program, OldKernelFilter::new(fallocate))
}

/// A command for `program` that runs under `filter`.
pub fn under(program: &Path, filter: OldKernelFilter) -> Command {
    let filter = Arc::new(filter);
    let mut c = Command::new(program);
    c.env_remove("MTKIT_CONFIG");
    // SAFETY: runs in the child between fork and exec; install() only makes the prctl and
    // seccomp system calls on programs compiled before the fork (no allocation, no lock).
    unsafe {
        c.pre_exec(move || filter.install());
    }
    c
}

/// The static mtkit under the filter (RHEL 6 fallocate semantics: EOPNOTSUPP).
pub fn old_mtkit(bin: &Path) -> Command {
    under_filter(bin, Fallocate::Unsupported)
}
