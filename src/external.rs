//! Running external programs (xorriso, mkfs, blkid, ...): one wrapper that logs the
//! command line, captures stderr, and names the package that provides a missing program.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::PathBuf;

/// A program mtkit drives, and the packages that provide it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub debian: &'static str,
    pub centos: &'static str,
}

impl Tool {
    pub const fn new(name: &'static str, debian: &'static str, centos: &'static str) -> Self {
        Tool {
            name,
            debian,
            centos,
        }
    }

    /// Finds the program on PATH, or says which package to install.
    pub fn locate(&self) -> Result<PathBuf> {
        which::which(self.name).map_err(|_| {
            crate::error::bad_input(format!(
                "{} not found on PATH: install it (Debian/Ubuntu: apt-get install {}; CentOS/RHEL: yum install {})",
                self.name, self.debian, self.centos
            ))
        })
    }

    /// Runs the program to completion, returning its stdout; a failure carries its stderr.
    pub fn run<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let (shown, output) = self.run_any(args)?;
        if output.status != 0 {
            bail!(
                "{shown} failed (exit {}): {}",
                output.status,
                output.stderr.trim()
            );
        }
        Ok(output)
    }

    /// Runs the program and returns what it printed whatever its exit status (for programs
    /// whose non-zero exits mean an answer, like `blkid` exiting 2 for "nothing found").
    pub fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.run_any(args).map(|(_, o)| o)
    }

    fn run_any<I, S>(&self, args: I) -> Result<(String, Output)>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let exe = self.locate()?;
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let shown = format!(
            "{} {}",
            self.name,
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        tracing::debug!(command = %shown, "running");
        let out = duct::cmd(exe, &args)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .with_context(|| format!("starting {shown}"))?;
        let output = Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        Ok((shown, output))
    }
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

pub const XORRISO: Tool = Tool::new("xorriso", "xorriso", "xorriso");
pub const CREATEREPO: Tool = Tool::new("createrepo_c", "createrepo-c", "createrepo_c");
pub const MKFS_EXT4: Tool = Tool::new("mkfs.ext4", "e2fsprogs", "e2fsprogs");
pub const MKFS_XFS: Tool = Tool::new("mkfs.xfs", "xfsprogs", "xfsprogs");
pub const BLKID: Tool = Tool::new("blkid", "util-linux", "util-linux-ng");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_its_package() {
        let t = Tool::new("mtkit-no-such-program", "some-deb", "some-rpm");
        let e = t.run(["x"]).unwrap_err().to_string();
        assert!(e.contains("apt-get install some-deb"), "{e}");
        assert!(e.contains("yum install some-rpm"), "{e}");
    }

    #[test]
    fn failure_carries_stderr() {
        let t = Tool::new("sh", "dash", "bash");
        let e = t
            .run(["-c", "echo boom >&2; exit 3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit 3") && e.contains("boom"), "{e}");
    }
}
