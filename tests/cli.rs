//! The command surface: every subcommand of ARCHITECTURE.md is there, exit codes mean something.

mod support;

use support::*;

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

/// Output paths the user got wrong: exit 2 with the path named, and nothing written.
#[test]
fn bad_output_paths_exit_2_and_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("a folder");
    std::fs::create_dir(&dir).unwrap();
    let file = d.path().join("a file");
    std::fs::write(&file, "keep me").unwrap();
    let missing = d.path().join("no such folder/ks.cfg");
    let (dir_s, file_s, missing_s) = (
        dir.to_str().unwrap(),
        file.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    for (args, named) in [
        (vec!["kickstart", "-o", dir_s], dir_s),
        (vec!["kickstart", "-o", missing_s], "no such folder"),
        (vec!["init", "--force", "--out", dir_s], dir_s),
        (vec!["init", "--out", missing_s], "no such folder"),
        (vec!["build", "--no-media", "--out", file_s], file_s),
        (vec!["retention", "check", "--windows", dir_s], dir_s),
        (
            vec!["retention", "check", "--windows", missing_s],
            missing_s,
        ),
        (
            vec![
                "retention",
                "prepare",
                "/dev/null",
                "--root",
                dir_s,
                "--mountpoint",
                "rel/dir",
            ],
            "--mountpoint rel/dir: must be an absolute path",
        ),
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} does not name {named}: {err}");
        assert!(
            !err.contains("mtkit-tmp"),
            "{args:?} names a temp file: {err}"
        );
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
}

/// A kickstart %post log or a pipeline's captured stderr gets plain text, and -q leaves
/// only errors there; stdout carries only the data.
#[test]
fn logs_are_plain_on_stderr_and_quiet_silences_them() {
    let d = tempfile::tempdir().unwrap();
    let ks = d.path().join("ks with spaces.cfg");
    let out = run(&["kickstart", "-o", ks.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("INFO") && err.contains("kickstart written"),
        "{err}"
    );
    assert!(
        !err.contains('\x1b'),
        "escape codes in a non-terminal log: {err:?}"
    );
    assert!(read(&ks).contains("ignoredisk --only-use=sda"));

    let out = run(&["-q", "kickstart", "--force", "-o", ks.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "-q: {}", stderr(&out));
    let out = run(&["-q", "kickstart", "--config", "/no/such.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such.toml"), "-q hid the error");
}

/// Every key in `v`, at any depth.
fn keys(v: &serde_json::Value, into: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
            into.push(k.clone());
            keys(x, into)
        }),
        serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, into)),
        _ => {}
    }
}

/// `--json` prints one JSON document on stdout and nothing else; keys are kebab-case
/// like appliance.toml's, and the top-level shape is the documented one.
#[test]
fn json_outputs_are_one_document_with_kebab_case_keys() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    copy_tree(&fixture("roots/healthy"), &root);
    let root = root.to_str().unwrap();
    let scsi = fixture("scsi/vmware-like");
    let vmx = fixture("vmx/healthy/mt01.vmx");
    let win = fixture("windows/ok-ps7.json");
    let cases: Vec<(Vec<&str>, &str, &[&str])> = vec![
        (
            vec!["scsi-ids", "--json", "--root", scsi.to_str().unwrap()],
            "array",
            &[
                "hctl",
                "name",
                "id",
                "id-source",
                "weak",
                "status",
                "size-bytes",
            ],
        ),
        (
            vec!["doctor", "--json", "--offline", "--root", root],
            "array",
            &["id", "status", "found", "remedy"],
        ),
        (
            vec!["vmx", "check", "--json", vmx.to_str().unwrap()],
            "array",
            &["file", "findings"],
        ),
        (
            vec!["apply", "--json", "--dry-run", "--root", root],
            "object",
            &["changed", "diff", "notes", "upgraded-from"],
        ),
        (
            vec![
                "retention",
                "check",
                "--json",
                "--windows",
                win.to_str().unwrap(),
            ],
            "object",
            &["findings", "ok", "volume", "space"],
        ),
    ];
    for (args, shape, expected) in cases {
        let out = run(&args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document: {e}"));
        let is_shape = match shape {
            "array" => v.as_array().is_some_and(|a| !a.is_empty()),
            _ => v.is_object(),
        };
        assert!(is_shape, "{args:?}: not a non-empty {shape}: {v}");
        let mut all = Vec::new();
        keys(&v, &mut all);
        for k in expected {
            assert!(all.iter().any(|x| x == k), "{args:?}: no key {k}: {v}");
        }
        let snake: Vec<_> = all.iter().filter(|k| k.contains('_')).collect();
        assert!(snake.is_empty(), "{args:?}: snake_case keys {snake:?}");
    }
}

/// Pipelines diff what build writes: the same config gives the same bytes, every time,
/// and `--json` lists exactly the files written.
#[test]
fn build_without_media_is_deterministic_and_its_json_lists_the_files() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("my appliance.toml");
    let out = run(&["init", "--out", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The starter has no way in; give root a key, as a user must before build.
    let starter = read(&cfg);
    let keyed = starter.replace(
        "ssh-authorized-keys = []",
        &format!("ssh-authorized-keys = [\"{SSH_KEY}\"]"),
    );
    assert_ne!(keyed, starter);
    std::fs::write(&cfg, keyed).unwrap();
    let dir = d.path().join("out dir");
    let build = || {
        let o = run(&[
            "--config",
            cfg.to_str().unwrap(),
            "build",
            "--no-media",
            "--json",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let files: Vec<(String, Vec<u8>)> = ["ks.cfg", "appliance.toml", "SUMMARY.txt"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect();
        (v, files)
    };
    let (v1, first) = build();
    let (v2, second) = build();
    assert_eq!(v1, v2);
    assert_eq!(first, second, "build output differs between two runs");
    let listed: Vec<&str> = v1["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for name in ["ks.cfg", "appliance.toml", "SUMMARY.txt"] {
        let want = dir.join(name);
        assert!(listed.contains(&want.to_str().unwrap()), "{listed:?}");
    }
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(v1["root"], "locked");
    assert_eq!(v1["boot-argument"], "ks=cdrom:/ks.cfg");
    assert_eq!(v1["media"], serde_json::Value::Null);
}

/// `mtkit doctor --json | head -1`: the reader goes away; mtkit ends like other Unix tools
/// (SIGPIPE), never with a panic and a backtrace on the admin's terminal.
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let root = fixture("roots/healthy");
    let mut child = mtkit()
        .args(["doctor", "--offline", "--json", "--root"])
        .arg(&root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// An ISO from an earlier build in --out still carries an old kickstart: build warns.
#[test]
fn build_warns_about_media_left_from_an_earlier_build() {
    let d = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let cfg = config_with_key(c.path(), "");
    std::fs::write(d.path().join("mt-install.iso"), "old").unwrap();
    let o = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "build",
        "--no-media",
        "--out",
        d.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("WARN") && err.contains("mt-install.iso is left from an earlier build"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(d.path().join("mt-install.iso")).unwrap(),
        b"old"
    );
}

#[test]
fn a_root_that_is_not_a_folder_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no-such-root");
    let missing = missing.to_str().unwrap();
    for cmd in [
        &["doctor", "--root", missing][..],
        &["apply", "--root", missing, "--dry-run"],
        &["scsi-ids", "--root", missing],
    ] {
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("--root {missing}: not a folder")),
            "{cmd:?}: {err}"
        );
    }
}

#[test]
fn an_iso_into_a_missing_folder_is_refused_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let out_path = d.path().join("missing/mt-ks.iso");
    let out = run(&["iso", "kickstart", "-o", out_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("does not exist (create it first)"), "{err}");
    assert!(!d.path().join("missing").exists());
}

/// One rule for every file a command writes at a path the user names: an existing file is
/// refused (exit 2, untouched) unless --force, like `init`; a device is written into.
#[test]
fn outputs_are_never_replaced_without_force() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("taken");
    let f_s = f.to_str().unwrap();
    let src = d.path().join("source.iso");
    std::fs::write(&src, "not looked at").unwrap();
    for args in [
        vec!["init", "--out", f_s],
        vec!["kickstart", "-o", f_s],
        vec!["iso", "kickstart", "-o", f_s],
        vec![
            "iso",
            "remaster",
            "--source",
            src.to_str().unwrap(),
            "-o",
            f_s,
        ],
    ] {
        std::fs::write(&f, "keep me").unwrap();
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains(&format!("{f_s} exists: pass --force to overwrite it")),
            "{args:?}: {e}"
        );
        assert_eq!(read(&f), "keep me", "{args:?}");
    }
    for args in [
        vec!["init", "--force", "--out", f_s],
        vec!["kickstart", "--force", "-o", f_s],
    ] {
        std::fs::write(&f, "keep me").unwrap();
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_ne!(read(&f), "keep me", "{args:?}");
    }
    // A device is written into, not replaced: no --force needed.
    let o = run(&["kickstart", "-o", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
}

/// With --log-format json every line on stderr is JSON, the fatal error too (a config
/// error, and a command line clap rejects), with the exit code.
#[test]
fn a_fatal_error_is_a_json_line_under_log_format_json() {
    for (args, words) in [
        (
            vec![
                "--log-format",
                "json",
                "kickstart",
                "--config",
                "/no/such.toml",
            ],
            "/no/such.toml",
        ),
        (
            vec!["--log-format=json", "kickstart", "--no-such-flag"],
            "--no-such-flag",
        ),
        (
            vec!["--log-format", "json", "doctor", "--root", "/no/such/root"],
            "--root /no/such/root: not a folder",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        let lines: Vec<serde_json::Value> = err
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{args:?}: not a JSON line ({e}): {l}"))
            })
            .collect();
        let fatal = lines
            .iter()
            .find(|v| v["level"] == "ERROR")
            .unwrap_or_else(|| panic!("{args:?}: no ERROR line in {err}"));
        assert!(
            fatal["fields"]["message"].as_str().unwrap().contains(words),
            "{args:?}: {fatal}"
        );
        assert_eq!(fatal["fields"]["exit-code"], 2, "{fatal}");
    }
}

/// `init` reads no config, so it does not offer --config: not in its help, and refused
/// when given (a config set for every command through MTKIT_CONFIG is not an error).
#[test]
fn init_does_not_offer_a_config_it_would_ignore() {
    let help = stdout(&run(&["init", "--help"]));
    assert!(!help.contains("--config"), "{help}");
    assert!(stdout(&run(&["kickstart", "--help"])).contains("--config"));
    for args in [
        &["init", "--config", "x.toml"][..],
        &["--config", "x.toml", "init"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("init writes a starter config and reads none"));
    }
    let o = mtkit()
        .env("MTKIT_CONFIG", "/etc/elsewhere.toml")
        .arg("init")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("# appliance.toml"));
}

/// `build` on the defaults gives a VM on DHCP (reachable on any network that has it) but
/// no way to log in: it refuses, naming the keys, and writes nothing. A static network in
/// a documentation range is refused too; --force builds anyway with warnings; a key makes
/// a buildable appliance whose summary says how to reach and log into it.
#[test]
fn build_refuses_an_appliance_nobody_can_reach_or_log_into() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let out_s = out.to_str().unwrap();
    let o = run(&["build", "--no-media", "--out", out_s]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    for want in [
        "nobody could log in",
        "[access] ssh-authorized-keys-file",
        "[appliance] root-password-hash",
        "--force",
    ] {
        assert!(e.contains(want), "{want:?} not in: {e}");
    }
    assert!(!e.contains("the network is an example"), "{e}");
    assert!(!out.exists());

    let example = config_with_key(
        d.path(),
        "[appliance]\nhostname = \"mt01.example.local\"\n[network]\nbootproto = \"static\"\n\
         ip = \"192.0.2.10\"\ngateway = \"192.0.2.1\"\ndns = [\"192.0.2.53\"]\n",
    );
    let cfg = example.to_str().unwrap();
    let o = run(&["--config", cfg, "build", "--no-media", "--out", out_s]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("[network] ip = \"192.0.2.10\", gateway = \"192.0.2.1\", dns = \"192.0.2.53\" are in a documentation range")
            && e.contains("bootproto = \"dhcp\""),
        "{e}"
    );
    assert!(!e.contains("nobody could log in"), "{e}");
    assert!(!out.exists());
    let o = run(&[
        "--config",
        cfg,
        "build",
        "--no-media",
        "--force",
        "--out",
        out_s,
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("WARN") && e.contains("building anyway (--force): the network is an example"),
        "{e}"
    );
    assert!(e.contains("is an example name (RFC 2606)"), "{e}");

    let keyed = config_with_key(d.path(), "");
    let o = run(&[
        "--config",
        keyed.to_str().unwrap(),
        "build",
        "--no-media",
        "--out",
        out_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read(&out.join("SUMMARY.txt"));
    for want in [
        "master target (host name from DHCP)",
        "eth0 by DHCP: the address and the host name come from your DHCP server",
        "root logs in over SSH (ssh root@ADDRESS) with 1 key(s):\n  - ssh-rsa admin@example\n",
        "root's password is LOCKED on the installed machine (SSH keys still work)",
        "The install needs no network",
    ] {
        assert!(summary.contains(want), "{want:?} not in:\n{summary}");
    }
    let ks = read(&out.join("ks.cfg"));
    assert!(
        ks.contains("\nnetwork --device=eth0 --bootproto=dhcp --onboot=yes\n"),
        "{ks}"
    );
    assert!(ks.contains(&format!("\n{SSH_KEY}\n")), "{ks}");
}

/// Shell completions and man pages are generated from the clap definitions: every
/// command and option is in them, the bash script parses, the pages render cleanly.
#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    for (shell, marker) in [
        ("bash", "complete -F _mtkit"),
        ("zsh", "#compdef mtkit"),
        ("fish", "complete -c mtkit"),
    ] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let text = stdout(&o);
        for want in [
            marker,
            "source-iso",
            "remaster",
            "allow-incompatible-binary",
        ] {
            assert!(text.contains(want), "{shell}: no {want:?}");
        }
    }
    let d = tempfile::tempdir().unwrap();
    let bash = d.path().join("mtkit.bash");
    std::fs::write(&bash, run(&["completions", "bash"]).stdout).unwrap();
    let o = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(o.status.success(), "bash -n: {}", stderr(&o));

    let o = run(&["manpage"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains("\n.TH mtkit 1 "), "{page}");
    assert!(page.contains("log\\-format"), "{page}");
    let o = run(&["manpage", "--out-dir", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let build = read(&d.path().join("mtkit-build.1"));
    assert!(build.contains(".TH mtkit-build 1"), "{build}");
    assert!(build.contains("documentation range"), "{build}");
    assert!(d.path().join("mtkit-retention-prepare.1").is_file());
    if have("groff") {
        for page in ["mtkit.1", "mtkit-build.1", "mtkit-doctor.1"] {
            let o = std::process::Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(d.path().join(page))
                .output()
                .unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "{page}: {}",
                stderr(&o)
            );
        }
    }
    let o = run(&["manpage", "--out-dir", "/no/such/folder"]);
    assert_eq!(o.status.code(), Some(2));
}

/// reiserfs sources take kmod-reiserfs and reiserfs-utils from ELRepo by default: the
/// install then needs the network, and the build log and SUMMARY.txt say so (not with
/// the packages carried in the offline repo).
#[test]
fn an_install_that_needs_the_network_is_said_to() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config_with_key(
        d.path(),
        "[sources]\nfilesystems = [\"ext4\", \"reiserfs\"]\n",
    );
    let out = d.path().join("out");
    let o = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "build",
        "--no-media",
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    let want = "the install needs network access: kmod-reiserfs and reiserfs-utils come from \
                http://elrepo.org/linux/elrepo/el6/x86_64/";
    assert!(e.contains("WARN") && e.contains(want), "{e}");
    let summary = read(&out.join("SUMMARY.txt"));
    let flat = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("The install needs network access: kmod-reiserfs and reiserfs-utils come from http://elrepo.org/linux/elrepo/el6/x86_64/")
            && flat.contains("reiserfs-repo = \"offline\""),
        "{summary}"
    );

    std::fs::create_dir(d.path().join("rpms")).unwrap();
    let cfg = config_with_key(
        d.path(),
        "[sources]\nfilesystems = [\"reiserfs\"]\n[packages]\noffline-repo = \"rpms\"\n\
         reiserfs-repo = \"offline\"\n",
    );
    let o = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "build",
        "--no-media",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("needs network"), "{}", stderr(&o));
    assert!(read(&out.join("SUMMARY.txt")).contains("The install needs no network"));
}

/// A DEVICE that is a regular file (or a folder) is called that, also when given
/// relative to the current folder (it used to be looked up under / and "not exist").
#[test]
fn retention_names_what_a_non_device_is() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("vol.img"), vec![0u8; 4096]).unwrap();
    std::fs::create_dir(d.path().join("vol.d")).unwrap();
    for (dev, what) in [("vol.img", "a regular file"), ("vol.d", "a folder")] {
        for sub in ["prepare", "check"] {
            let o = mtkit()
                .current_dir(d.path())
                .args(["retention", sub, dev])
                .output()
                .unwrap();
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{sub} {dev}: {e}");
            assert!(
                e.contains(&format!("{dev} is {what}, not a block device")),
                "{sub} {dev}: {e}"
            );
            assert!(!e.contains("does not exist"), "{e}");
        }
    }
    assert_eq!(
        std::fs::read(d.path().join("vol.img")).unwrap(),
        vec![0u8; 4096]
    );
}

/// FIFOs where doctor reads files under `--root` (/etc/hosts, redhat-release, /proc files)
/// do not hang it: each is reported as unreadable, the run ends, nothing is changed.
#[test]
fn fifos_under_root_do_not_hang_doctor() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    copy_tree(&fixture("roots/healthy"), &root);
    for f in [
        "etc/hosts",
        "etc/redhat-release",
        "proc/meminfo",
        "proc/mounts",
        "proc/swaps",
    ] {
        std::fs::remove_file(root.join(f)).unwrap();
        mkfifo(&root.join(f));
    }
    let out = run_or_kill(
        &["doctor", "--offline", "--root", root.to_str().unwrap()],
        std::time::Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("etc/hosts is a") && said.contains("FIFO"),
        "{said}"
    );
    for f in ["etc/hosts", "etc/redhat-release", "proc/meminfo"] {
        let m = std::fs::symlink_metadata(root.join(f)).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()),
            "{f}"
        );
    }
}

/// `iso remaster --source` (and `build --source-iso`) on a FIFO is refused at once
/// (exit 2), nothing written: opening it would block until a writer came.
#[test]
fn a_fifo_as_the_source_iso_is_refused_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("centos.iso");
    mkfifo(&fifo);
    let out_iso = d.path().join("mt.iso");
    let out_dir = d.path().join("out");
    // A way in, without which build refuses before it looks at the source.
    let c = tempfile::tempdir().unwrap();
    let cfg = config_with_key(c.path(), "");
    for args in [
        vec![
            "iso",
            "remaster",
            "--source",
            fifo.to_str().unwrap(),
            "-o",
            out_iso.to_str().unwrap(),
        ],
        vec![
            "--config",
            cfg.to_str().unwrap(),
            "build",
            "--source-iso",
            fifo.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    ] {
        let out = run_or_kill(&args, std::time::Duration::from_secs(120));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a FIFO"), "{}", stderr(&out));
    }
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "only the FIFO"
    );
}
