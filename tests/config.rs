//! appliance.toml through the CLI: every error class is located and exits 2 with nothing
//! written; `mtkit init` writes a starter that parses back to the defaults.

mod support;

use mtkit::config::Config;
use std::path::{Path, PathBuf};
use support::mkfifo;
use support::*;

/// `# expect: LINE:COL MESSAGE` lines at the top of a bad fixture.
fn expectations(file: &Path) -> Vec<String> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    read(file)
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (at, msg) = e.split_once(' ').unwrap_or((e, ""));
            format!("{name}:{at}: {msg}")
        })
        .collect()
}

fn bad_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(fixture("config/bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_bad_config_is_located_and_exits_2() {
    let files = bad_fixtures();
    assert!(files.len() >= 30, "bad fixtures missing: {files:?}");
    for f in files {
        let want = expectations(&f);
        assert!(!want.is_empty(), "{} has no # expect line", f.display());
        // Run from the fixture folder so messages name the bare file.
        let out = mtkit()
            .current_dir(f.parent().unwrap())
            .args(["kickstart", "-o", "-", "--config"])
            .arg(f.file_name().unwrap())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", f.display());
        assert!(
            stdout(&out).is_empty(),
            "{}: printed a kickstart",
            f.display()
        );
        // Every expected problem, in file order, each on its own line.
        let mut rest = err.as_str();
        for w in &want {
            let at = rest
                .find(w.as_str())
                .unwrap_or_else(|| panic!("{}: want {w:?} in order, got:\n{err}", f.display()));
            rest = &rest[at + w.len()..];
        }
        assert!(
            !err.contains("Secret-Plain-Text"),
            "a password was echoed: {err}"
        );
        assert_eq!(
            err.lines().count(),
            want.len(),
            "{}: one line per problem:\n{err}",
            f.display()
        );
    }
}

#[test]
fn build_with_a_bad_config_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("out");
    let out = mtkit()
        .args(["build", "--out"])
        .arg(&out_dir)
        .arg("--config")
        .arg(fixture("config/bad/many.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("many.toml:11:10: [network] prefix = 40"));
    assert!(!out_dir.exists(), "build created {}", out_dir.display());
}

/// The rules the writer service checks before it opens a journal (export names, group
/// folders, journal ids, request sizes) are config rules: `build` refuses a config that
/// breaks one, located, before it writes anything, so it never ships one the service
/// would refuse at its first start.
#[test]
fn build_refuses_what_the_writer_service_would_refuse() {
    for name in [
        "disk-name-at",
        "disk-name-slash",
        "disk-name-long",
        "group-slash",
        "group-dot",
        "journal-id-clash",
        "max-request-size-big",
    ] {
        let f = fixture("config/bad").join(format!("{name}.toml"));
        let want = expectations(&f);
        let d = tempfile::tempdir().unwrap();
        let out = mtkit()
            .current_dir(f.parent().unwrap())
            .args(["build", "--no-media", "--out"])
            .arg(d.path().join("out"))
            .arg("--config")
            .arg(f.file_name().unwrap())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        for w in &want {
            assert!(err.contains(w.as_str()), "{name}: want {w:?} in:\n{err}");
        }
        assert!(!d.path().join("out").exists(), "{name}: build wrote out/");
    }
}

#[test]
fn missing_password_file_exits_2_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.toml"),
        "[appliance]\nroot-password-file = \"nope.txt\"\n",
    )
    .unwrap();
    let out = mtkit()
        .current_dir(d.path())
        .args(["build", "--out", "out", "--config", "a.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("root-password-file nope.txt"));
    assert!(!d.path().join("out").exists());
}

#[test]
fn missing_config_file_exits_2() {
    let out = run(&["kickstart", "--config", "/nonexistent/appliance.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/appliance.toml"));
}

#[test]
fn good_configs_parse() {
    for e in std::fs::read_dir(fixture("config/good")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let name = p.display().to_string();
            Config::parse(&read(&p), &name).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn init_starter_parses_back_to_the_defaults() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("appliance.toml");
    let out = mtkit().arg("init").arg("--out").arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = read(&f);
    assert_eq!(
        Config::parse(&text, "appliance.toml").unwrap(),
        Config::default()
    );
    // Commented: every section explains itself.
    assert!(text.lines().filter(|l| l.starts_with('#')).count() > 30);
    // And to stdout, the same text.
    let out = run(&["init"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), text);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("appliance.toml");
    std::fs::write(&f, "# mine\n").unwrap();
    let out = mtkit().arg("init").arg("--out").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(read(&f), "# mine\n");
    let out = mtkit()
        .args(["init", "--force", "--out"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(read(&f).contains("[appliance]"));
}

#[test]
fn resolved_config_in_build_parses_back_and_never_holds_a_plain_password() {
    let d = tempfile::tempdir().unwrap();
    let good = fixture("config/good");
    let out = mtkit()
        .current_dir(&good)
        .args([
            "build",
            "--no-media",
            "--json",
            "--config",
            "password-file.toml",
            "--out",
        ])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["root"], "password-file");
    // ks.cfg, appliance.toml, SUMMARY.txt.
    assert_eq!(json["files"].as_array().unwrap().len(), 3);
    let resolved = read(&d.path().join("appliance.toml"));
    let back = Config::parse(&resolved, "appliance.toml").unwrap();
    assert_eq!(back.appliance.root_password_file, None);
    for f in ["ks.cfg", "appliance.toml", "SUMMARY.txt"] {
        let text = read(&d.path().join(f));
        assert!(
            !text.contains("Plain-Test-Password"),
            "{f} holds the password"
        );
    }
    assert!(!stdout(&out).contains("Plain-Test-Password"));
    assert!(!stderr(&out).contains("Plain-Test-Password"));
}

#[test]
fn relative_password_file_is_next_to_the_config() {
    let d = tempfile::tempdir().unwrap();
    let out = mtkit()
        .current_dir(d.path())
        .args(["kickstart", "-o", "-", "--config"])
        .arg(fixture("config/good/password-file.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\nrootpw --iscrypted $6$"));
}

/// `[access] ssh-authorized-keys-file`: relative to the config, every line checked (the
/// error names the key file's line), its keys inlined into the resolved appliance.toml.
#[test]
fn ssh_key_file_is_read_checked_and_inlined() {
    let d = tempfile::tempdir().unwrap();
    let good = read(&fixture("config/good/admin.pub"));
    std::fs::write(d.path().join("keys.pub"), &good).unwrap();
    let cfg = d.path().join("appliance.toml");
    std::fs::write(&cfg, "[access]\nssh-authorized-keys-file = \"keys.pub\"\n").unwrap();
    let out = d.path().join("out");
    let o = mtkit()
        .current_dir("/")
        .arg("--config")
        .arg(&cfg)
        .args(["build", "--no-media", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let resolved = Config::parse(&read(&out.join("appliance.toml")), "r.toml").unwrap();
    assert_eq!(resolved.access.ssh_authorized_keys_file, None);
    let keys: Vec<&str> = good
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(resolved.access.ssh_authorized_keys, keys);
    assert!(read(&out.join("ks.cfg")).contains(keys[0]));

    // An ed25519 key on line 3: CentOS 6's sshd would ignore it.
    let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICXJWPfzbWIXvdh+dzSN9Bw7vgeIG2lMqYFH/Oz3JiqY ed";
    std::fs::write(d.path().join("keys.pub"), format!("{}\n\n{ed}\n", keys[0])).unwrap();
    let out2 = d.path().join("out2");
    let o = mtkit()
        .arg("--config")
        .arg(&cfg)
        .args(["build", "--no-media", "--out"])
        .arg(&out2)
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    let want = format!(
        "[access] ssh-authorized-keys-file = \"keys.pub\": {}:3: ssh-ed25519 keys are not accepted",
        d.path().join("keys.pub").display()
    );
    assert!(e.contains(&want), "{want}\nnot in: {e}");
    assert!(!out2.exists());
}

/// Every file under `dir`: "nothing written" means this is the same after the run.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0))
        })
        .collect();
    v.sort();
    v
}

/// A config that is not valid UTF-8 is located: line and column of the first bad byte.
#[test]
fn invalid_utf8_config_is_located() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("latin1.toml");
    std::fs::write(&f, b"[appliance]\n# caf\xe9\nhostname = \"mt01\"\n").unwrap();
    let out = run(&["kickstart", "-o", "-", "--config", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("latin1.toml:2:6: byte 0xe9 is not UTF-8"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

/// A FIFO or a device as the config, or as root-password-file, is refused (exit 2) at
/// once instead of hanging or reading without end; nothing is written.
#[test]
fn config_and_password_file_must_be_regular_files() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo.toml");
    mkfifo(&fifo);
    let pw_fifo = d.path().join("pw");
    mkfifo(&pw_fifo);
    std::fs::write(
        d.path().join("a.toml"),
        "[appliance]\nroot-password-file = \"pw\"\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("zero.toml"),
        "[appliance]\nroot-password-file = \"/dev/zero\"\n",
    )
    .unwrap();
    let a = d.path().join("a.toml");
    let zero = d.path().join("zero.toml");
    let out_dir = d.path().join("out");
    let cases: [(&[&str], &str); 5] = [
        (
            &["kickstart", "-o", "-", "--config", fifo.to_str().unwrap()],
            "a FIFO",
        ),
        (
            &["kickstart", "-o", "-", "--config", "/dev/zero"],
            "a character device",
        ),
        (
            &["doctor", "--offline", "--config", fifo.to_str().unwrap()],
            "a FIFO",
        ),
        (
            &["kickstart", "-o", "-", "--config", a.to_str().unwrap()],
            "a FIFO",
        ),
        (
            &[
                "build",
                "--out",
                out_dir.to_str().unwrap(),
                "--config",
                zero.to_str().unwrap(),
            ],
            "a character device",
        ),
    ];
    let before = listing(d.path());
    for (args, want) in cases {
        let out = run_or_kill(args, std::time::Duration::from_secs(120));
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(stdout(&out).is_empty(), "{args:?}");
        assert_eq!(listing(d.path()), before, "{args:?}");
    }
}

/// A root password with a NUL (crypt would hash less than the admin typed) or only blanks
/// is refused: exit 2, no kickstart.
#[test]
fn root_password_with_nul_or_only_blanks_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.toml"),
        "[appliance]\nroot-password-file = \"pw\"\n",
    )
    .unwrap();
    for (pw, want) in [
        (&b"abc\0def\n"[..], "NUL"),
        (b"   \t \n", "only blanks"),
        (b"\n", "is empty"),
    ] {
        std::fs::write(d.path().join("pw"), pw).unwrap();
        let ks = d.path().join("ks.cfg");
        let out = mtkit()
            .current_dir(d.path())
            .args(["kickstart", "-o", "ks.cfg", "--config", "a.toml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{want}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        assert!(!ks.exists());
    }
}

/// 300 000 `[packages] extra` entries (half of them repeated): validated and rendered in
/// seconds, not the minutes a per-entry regex and quadratic de-duplication took; each
/// package appears once, in order.
#[test]
fn hundreds_of_thousands_of_packages_are_fast() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("big.toml");
    let names: Vec<String> = (0..300_000)
        .map(|i| format!("\"pkg{}\"", i % 150_000))
        .collect();
    std::fs::write(&f, format!("[packages]\nextra = [{}]\n", names.join(","))).unwrap();
    let ks = d.path().join("ks.cfg");
    let start = std::time::Instant::now();
    let out = run_or_kill(
        &[
            "kickstart",
            "-o",
            ks.to_str().unwrap(),
            "--config",
            f.to_str().unwrap(),
        ],
        std::time::Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("300k packages: {:?} (debug build)", start.elapsed());
    let text = read(&ks);
    let pkgs: Vec<&str> = text.lines().filter(|l| l.starts_with("pkg")).collect();
    assert_eq!(pkgs.len(), 150_000);
    assert_eq!((pkgs[0], pkgs[149_999]), ("pkg0", "pkg149999"));
}
