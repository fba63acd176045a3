//! Running external programs (xorriso, mkfs, blkid, ...): one wrapper that logs the
//! command line, captures stderr, and names the package that provides a missing program.
//! Every run goes through duct (pipes, waiting, no shell); nothing else in mtkit spawns.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// A program mtkit drives, and the packages that provide it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub debian: &'static str,
    pub centos: &'static str,
    /// Environment the program always runs with.
    pub env: &'static [(&'static str, &'static str)],
}

impl Tool {
    pub const fn new(name: &'static str, debian: &'static str, centos: &'static str) -> Self {
        Tool {
            name,
            debian,
            centos,
            env: &[],
        }
    }

    pub const fn with_env(self, env: &'static [(&'static str, &'static str)]) -> Self {
        Tool { env, ..self }
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

    /// Runs the program with stdin and stdout closed, handing each line it prints on
    /// stderr to `each_line` as it comes (for progress), and returns its exit status.
    pub fn stream_stderr<I, S>(
        &self,
        args: I,
        mut each_line: impl FnMut(String),
    ) -> Result<std::process::ExitStatus>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let (cmd, shown) = self.command(args)?;
        // stderr into the pipe read here, stdout to /dev/null (duct applies the outer
        // redirection first).
        let reader = cmd
            .stdin_null()
            .stdout_null()
            .stderr_to_stdout()
            .reader()
            .with_context(|| format!("starting {shown}"))?;
        for line in BufReader::new(&reader).lines() {
            each_line(line.with_context(|| format!("reading the messages of {}", self.name))?);
        }
        // The reader waited for the program when it saw the end of its output.
        let out = reader
            .try_wait()
            .with_context(|| format!("waiting for {}", self.name))?
            .with_context(|| format!("{} closed its stderr but did not exit", self.name))?;
        Ok(out.status)
    }

    /// The program (found on PATH, else an error naming its package) with its arguments and
    /// the tool's environment, and its command line for messages, logged: every run starts
    /// here. Unchecked: a non-zero exit is the caller's to judge (`run` makes it an error
    /// with the program's stderr, `output` and `stream_stderr` return it).
    fn command<I, S>(&self, args: I) -> Result<(duct::Expression, String)>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let exe = self.locate()?;
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let shown = std::iter::once(self.name.into())
            .chain(args.iter().map(|a| a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::debug!(command = %shown, "running");
        let cmd = self
            .env
            .iter()
            .fold(duct::cmd(exe, args), |cmd, (k, v)| cmd.env(k, v));
        Ok((cmd.unchecked(), shown))
    }

    fn run_any<I, S>(&self, args: I) -> Result<(String, Output)>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let (cmd, shown) = self.command(args)?;
        let out = cmd
            .stdout_capture()
            .stderr_capture()
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

// mtools refuses images that fail its FAT sanity checks unless told to skip them, and
// install discs' EFI boot images are not always laid out the way it expects.
const MTOOLS_ENV: &[(&str, &str)] = &[("MTOOLS_SKIP_CHECK", "1")];
pub const MTYPE: Tool = Tool::new("mtype", "mtools", "mtools").with_env(MTOOLS_ENV);
pub const MCOPY: Tool = Tool::new("mcopy", "mtools", "mtools").with_env(MTOOLS_ENV);

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

    #[test]
    fn env_and_stderr_lines_reach_the_caller() {
        const T: Tool = Tool::new("sh", "dash", "bash").with_env(&[("MTKIT_T", "v")]);
        let mut lines = Vec::new();
        let st = T
            .stream_stderr(["-c", "echo \"a $MTKIT_T\" >&2; echo b >&2; exit 4"], |l| {
                lines.push(l)
            })
            .unwrap();
        assert_eq!(st.code(), Some(4));
        assert_eq!(lines, ["a v", "b"]);
        assert_eq!(T.run(["-c", "printf %s $MTKIT_T"]).unwrap().stdout, "v");
    }
}
