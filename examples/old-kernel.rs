//! Runs a program as CentOS 6.6's kernel 2.6.32 would: every system call added after 2.6.32
//! fails with ENOSYS, fallocate PUNCH_HOLE/ZERO_RANGE with EOPNOTSUPP (or, with
//! `--vanilla-fallocate`, "succeed" without effect as on a vanilla 2.6.32 ext4/xfs). The
//! filter is tests/support/old_kernel/filter.rs, the one tests/old_kernel.rs runs under.
//!
//! Usage: cargo run --example old-kernel -- [--vanilla-fallocate] PROGRAM [ARGS...]
//! e.g.   cargo run --example old-kernel -- \
//!          target/x86_64-unknown-linux-musl/release/mtkit scsi-ids --root tests/fixtures/roots/healthy

#[allow(dead_code)] // the tests use more of it
#[path = "../tests/support/old_kernel/filter.rs"]
mod filter;

use std::os::unix::process::CommandExt;

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = if args.first().map(String::as_str) == Some("--vanilla-fallocate") {
        args.remove(0);
        filter::Fallocate::SilentNoop
    } else {
        filter::Fallocate::Unsupported
    };
    let Some((program, rest)) = args.split_first() else {
        anyhow::bail!("usage: old-kernel [--vanilla-fallocate] PROGRAM [ARGS...]");
    };
    // This process has one thread: the filter holds for it and so for what it execs.
    filter::OldKernelFilter::new(mode).install()?;
    let err = std::process::Command::new(program).args(rest).exec();
    anyhow::bail!("running {program}: {err}")
}
