//! The command surface: every subcommand of ARCHITECTURE.md is there, exit codes mean something.

mod common;
use common::*;

#[test]
fn help_lists_every_subcommand() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for sub in [
        "init",
        "build",
        "kickstart",
        "iso",
        "vmx",
        "scsi-ids",
        "doctor",
        "apply",
        "retention",
        "writer",
        "points",
        "bookmark",
        "recover",
        "commit",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} missing from --help:\n{text}"
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    let out = run(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["kickstart", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
