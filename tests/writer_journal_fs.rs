//! The journal folder's filesystem, judged on real ones: loop devices made by mkfs.ext2,
//! mkfs.ext4 -O ^has_journal, mkfs.ext4, mkfs.ext3 and mkfs.xfs, and a tmpfs. `writer run`
//! refuses those a power cut can corrupt or empty (exit 2, nothing made) and starts on the
//! others; `[writer] allow-unsafe-journal = true` starts anyway with a warning; `doctor` and
//! `retention check` say the same. And what the writer creates is its own alone: journal
//! folders 0700, journal and target files 0600, whatever the umask.

mod support;

use support::{finding, free_port, sh_text};

use support::writer_env;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{have, is_root, mtkit, stderr, stdout};

/// The program and arguments that make a filesystem; `None`: a tmpfs.
type Mkfs<'a> = Option<(&'a str, &'a [&'a str])>;

/// A filesystem mounted at `at` (on a loop device over a sparse file, or a tmpfs); unmounted
/// and detached on drop, however the test ends.
struct Volume {
    at: PathBuf,
    dev: Option<String>,
}

impl Volume {
    fn new(dir: &Path, mkfs: Mkfs, size: u64) -> Volume {
        let at = dir.join("mnt");
        std::fs::create_dir_all(&at).unwrap();
        let Some((prog, args)) = mkfs else {
            sh_text(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    "size=16m",
                    "mtkit-test",
                    at.to_str().unwrap(),
                ],
            );
            return Volume { at, dev: None };
        };
        let img = dir.join("vol.img");
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        let dev = sh_text("losetup", &["-f", "--show", img.to_str().unwrap()]);
        let v = Volume {
            at,
            dev: Some(dev.clone()),
        };
        let mut a = args.to_vec();
        a.push(&dev);
        sh_text(prog, &a);
        sh_text("mount", &[&dev, v.at.to_str().unwrap()]);
        v
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).output();
        if let Some(d) = &self.dev {
            let _ = Command::new("losetup").args(["-d", d]).output();
        }
    }
}

/// A writer config with its journal in `journal`, one 1 MiB file target in `dir`, the
/// retention mountpoint at `retention`, and `extra` `[writer]` keys.
fn config(dir: &Path, journal: &Path, retention: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "[retention]\nmountpoint = \"{}\"\nmin-size = \"16M\"\n\n[writer]\n\
         listen = \"127.0.0.1:{}\"\nmetrics-listen = \"\"\nunix-socket = \"\"\n\
         journal-dir = \"{}\"\ncontrol-socket = \"{}\"\n{extra}\n\
         [[writer.disk]]\nname = \"d0\"\npath = \"{}\"\ngroup = \"g\"\nsize = \"1M\"\n",
        retention.display(),
        free_port(),
        journal.display(),
        dir.join("run/control.sock").display(),
        dir.join("d0.img").display(),
    );
    let p = dir.join("appliance.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `writer run` until its control socket answers (`Ok`, the child to stop) or it exits
/// (`Err`: its exit code and log).
fn start(cfg: &Path, dir: &Path) -> Result<Child, (Option<i32>, String)> {
    let log = dir.join("service.log");
    let mut child = mtkit()
        .arg("--config")
        .arg(cfg)
        .args(["writer", "run"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Err((st.code(), std::fs::read_to_string(&log).unwrap()));
        }
        if writer_env::control(&dir.join("run/control.sock"), r#"{"cmd":"status"}"#).is_ok() {
            return Ok(child);
        }
        assert!(Instant::now() < deadline, "writer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM and the exit code.
fn stop(mut c: Child) -> Option<i32> {
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    c.wait().unwrap().code()
}

fn doctor_row(cfg: &Path, id: &str) -> serde_json::Value {
    let o = mtkit()
        .arg("--config")
        .arg(cfg)
        .args(["doctor", "--offline", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    finding(v.as_array().unwrap(), id).clone()
}

fn can_run() -> bool {
    is_root()
        && [
            "losetup",
            "mount",
            "mkfs.ext2",
            "mkfs.ext3",
            "mkfs.ext4",
            "mkfs.xfs",
            "blkid",
        ]
        .iter()
        .all(|p| have(p))
}

#[test]
fn the_writer_keeps_its_journal_only_on_a_crash_safe_filesystem() {
    require!(
        can_run(),
        "needs root, losetup, mount, mkfs.ext2/ext3/ext4 (e2fsprogs), mkfs.xfs (xfsprogs), blkid"
    );
    const MIB: u64 = 1 << 20;
    // (case, mkfs (none: tmpfs), image size, crash-safe, how the filesystem is named)
    let cases: [(&str, Mkfs, u64, bool, &str); 6] = [
        (
            "ext2",
            Some(("mkfs.ext2", &["-q", "-F"])),
            32 * MIB,
            false,
            "ext2 without a journal (no has_journal feature)",
        ),
        (
            "ext4 without has_journal",
            Some(("mkfs.ext4", &["-q", "-F", "-O", "^has_journal"])),
            32 * MIB,
            false,
            "ext4 without a journal (no has_journal feature)",
        ),
        ("tmpfs", None, 0, false, "tmpfs (mtkit-test on "),
        (
            "ext4",
            Some(("mkfs.ext4", &["-q", "-F"])),
            32 * MIB,
            true,
            "ext4 with a journal",
        ),
        (
            "ext3",
            Some(("mkfs.ext3", &["-q", "-F"])),
            32 * MIB,
            true,
            "ext3 with a journal",
        ),
        // mkfs.xfs wants 300 MiB at least; the file is sparse.
        (
            "xfs",
            Some(("mkfs.xfs", &["-q", "-f"])),
            320 * MIB,
            true,
            "xfs",
        ),
    ];
    for (case, mkfs, size, safe, named) in cases {
        let t = tempfile::tempdir().unwrap();
        let vol = Volume::new(t.path(), mkfs, size);
        let journal = vol.at.join("mtkit");
        let cfg = config(t.path(), &journal, &vol.at, "");
        match start(&cfg, t.path()) {
            Ok(child) => {
                assert!(safe, "{case}: the writer started on it");
                assert!(journal.join("g").is_dir(), "{case}");
                assert_eq!(stop(child), Some(0), "{case}");
            }
            Err((code, log)) => {
                assert!(!safe, "{case}: refused: {log}");
                assert_eq!(code, Some(2), "{case}: {log}");
                let why = format!(
                    "the journal folder {} ([writer] journal-dir) is not crash-safe: it is on \
                     {named}",
                    journal.display()
                );
                assert!(log.contains(&why), "{case}: {log}");
                assert!(
                    log.contains("power cut") && log.contains("tune2fs -O has_journal"),
                    "{case}: says what a power cut does and what to use: {log}"
                );
                assert!(log.contains("allow-unsafe-journal = true"), "{case}: {log}");
                // Refused before anything was made.
                assert!(!journal.exists(), "{case}: journal folder made");
                assert!(!t.path().join("d0.img").exists(), "{case}: target made");
            }
        }
        let row = doctor_row(&cfg, "journal-fs");
        assert_eq!(
            row["status"],
            if safe { "pass" } else { "fail" },
            "{case}: {row}"
        );
        assert!(
            row["found"].as_str().unwrap().contains(named),
            "{case}: {row}"
        );

        // The retention rules judge the volume itself: ext4 and xfs are kept as they are.
        if let Some(dev) = vol
            .dev
            .as_deref()
            .filter(|_| case.starts_with("ext4") || case == "xfs")
        {
            let o = mtkit()
                .arg("--config")
                .arg(&cfg)
                .args(["retention", "check", dev, "--json"])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let rule = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["rule"] == "crash-safe")
                .unwrap_or_else(|| panic!("{case}: no crash-safe rule: {v}"));
            assert_eq!(rule["ok"], safe, "{case}: {v}");
            assert_eq!(
                o.status.code(),
                Some(if safe { 0 } else { 1 }),
                "{case}: {v}"
            );
        }

        // The escape: started anyway, loudly.
        if !safe {
            let cfg = config(t.path(), &journal, &vol.at, "allow-unsafe-journal = true\n");
            let child = start(&cfg, t.path()).unwrap_or_else(|e| panic!("{case}: {e:?}"));
            assert_eq!(stop(child), Some(0), "{case}");
            let log = std::fs::read_to_string(t.path().join("service.log")).unwrap();
            assert!(
                log.contains("WARN") && log.contains("STARTING ANYWAY"),
                "{case}: {log}"
            );
            let row = doctor_row(&cfg, "journal-fs");
            assert_eq!(row["status"], "warn", "{case}: {row}");
        }
        drop(vol);
    }
}

#[test]
fn a_journal_on_a_filesystem_mounted_without_write_barriers_is_refused() {
    require!(
        can_run(),
        "needs root, losetup, mount, mkfs.ext4 (e2fsprogs), mkfs.xfs (xfsprogs), blkid"
    );
    let t = tempfile::tempdir().unwrap();
    let vol = Volume::new(t.path(), Some(("mkfs.ext4", &["-q", "-F"])), 32 << 20);
    let at = vol.at.to_str().unwrap();
    // What a "performance" tweak from the VMware guides of CentOS 6's time does.
    sh_text("mount", &["-o", "remount,nobarrier", at]);
    let journal = vol.at.join("mtkit");
    let cfg = config(t.path(), &journal, &vol.at, "");
    let Err((code, log)) = start(&cfg, t.path()) else {
        panic!("the writer started with its journal on an ext4 mounted nobarrier");
    };
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("it is on ext4 with a journal mounted nobarrier"),
        "{log}"
    );
    assert!(
        log.contains("power cut") && log.contains("remount,barrier=1"),
        "says what a power cut does and what to do: {log}"
    );
    assert!(!journal.exists(), "refused before anything was made");
    let row = doctor_row(&cfg, "journal-fs");
    assert_eq!(row["status"], "fail", "{row}");
    assert!(
        row["found"].as_str().unwrap().contains("mounted nobarrier"),
        "{row}"
    );
    // Barriers back on: it starts.
    sh_text("mount", &["-o", "remount,barrier=1", at]);
    let child = start(&cfg, t.path()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(stop(child), Some(0));
    assert_eq!(doctor_row(&cfg, "journal-fs")["status"], "pass");
}

/// The file mode bits of `p` (not following a link).
fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every folder and file under `dir`, itself included.
fn tree(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            tree(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn journal_folders_and_target_files_are_the_services_alone_whatever_the_umask() {
    let env = writer_env::Env::new(&[("m-d0", "m", 1 << 20)]);
    let log = std::fs::File::create(env.path("service.log")).unwrap();
    let mut cmd = mtkit();
    cmd.arg("--config")
        .arg(&env.config)
        .args(["writer", "run"])
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: umask(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while writer_env::control(&env.control(), r#"{"cmd":"status"}"#).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{}", env.log());
        assert!(Instant::now() < deadline, "{}", env.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Journaling from a baseline on, and a recover, so that segments and the recovery
    // session's folders exist.
    let mut c = writer_env::Nbd::connect(env.port, "m-d0").unwrap();
    c.write(0, &[1u8; 4096]).unwrap();
    c.flush().unwrap();
    let o = env.mtkit(&["bookmark", "--group", "m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    c.write(0, &[2u8; 4096]).unwrap();
    c.flush().unwrap();
    drop(c);
    let first = writer_env::point_ids(&env.control(), "m")[0];
    let o = env.mtkit(&["recover", "--group", "m", "--to", &first.to_string()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    let journal = env.path("journal");
    let mut all = Vec::new();
    tree(&journal, &mut all);
    let (dirs, files): (Vec<&PathBuf>, Vec<&PathBuf>) = all.iter().partition(|p| p.is_dir());
    assert!(
        dirs.iter().any(|d| d.ends_with("recover"))
            && files
                .iter()
                .any(|f| f.to_string_lossy().contains("/journal/seg-")),
        "{all:?}"
    );
    for d in dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&env.disk("m-d0")), 0o600, "target file");
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "{}", env.log());
}
