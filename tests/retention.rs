//! `mtkit retention` with real loop devices (root): a fresh device prepared (mkfs, mount,
//! fstab by UUID, journal folder) and prepared again (no change); devices that are mounted,
//! swap, an LVM PV, FAT32, of size zero, held open exclusively, or holding data, each
//! refused with its reason and left untouched. Windows R: from fixture JSON.

mod common;

use common::{fixture, have, is_root, read, run, stderr, stdout};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A loop device over a temp file; detached (after swapoff and unmounts) on drop.
struct Loop {
    dev: String,
    mounts: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(size: u64) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let f = fs::File::create(&img).unwrap();
        f.set_len(size).unwrap();
        let o = sh("losetup", &["-f", "--show", img.to_str().unwrap()]);
        let dev = String::from_utf8(o.stdout).unwrap().trim().to_string();
        Loop {
            dev,
            mounts: Vec::new(),
            _dir: dir,
        }
    }

    fn mount_at(&mut self, dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        sh("mount", &[&self.dev, dir.to_str().unwrap()]);
        self.mounts.push(dir.to_path_buf());
    }

    /// Hash of the first MiB: "left untouched" means this is unchanged.
    fn head(&self) -> u32 {
        let mut buf = vec![0u8; 1 << 20];
        let mut f = fs::File::open(&self.dev).unwrap();
        let n = f.read(&mut buf).unwrap_or(0);
        crc32c::crc32c(&buf[..n])
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.dev).output();
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).output();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
    }
}

fn can_loop() -> bool {
    is_root() && have("losetup") && have("mkfs.ext4") && have("blkid")
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("appliance.toml");
    fs::write(&p, "[retention]\nmin-size = \"16M\"\n").unwrap();
    p
}

/// `mtkit retention <sub> [DEVICE] --root ROOT --config CFG EXTRA...`.
fn retention(
    sub: &str,
    device: Option<&str>,
    root: &Path,
    cfg: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["retention", sub];
    args.extend(device);
    args.extend([
        "--root",
        root.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    args.extend(extra);
    run(&args)
}

fn is_mounted_at(p: &Path) -> bool {
    read(Path::new("/proc/self/mountinfo"))
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
}

#[test]
fn fresh_device_is_prepared_then_left_as_it_is() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, blkid");
    let mut lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/fstab"),
        "UUID=0b6bd5a2 / ext4 defaults 1 1\n",
    )
    .unwrap();
    let cfg = config(t.path());
    let target = root.join("mnt/retention");
    // Registered before prepare so the guard unmounts even when an assertion fails.
    lp.mounts.push(target.clone());
    let prepare = || retention("prepare", Some(&lp.dev), &root, &cfg, &[]);
    let o = prepare();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("formatted"), "{}", stdout(&o));
    assert!(is_mounted_at(&target));
    let probe = String::from_utf8(sh("blkid", &["-p", "-o", "export", &lp.dev]).stdout).unwrap();
    assert!(
        probe.contains("TYPE=ext4\n") && probe.contains("LABEL=mt-retention\n"),
        "{probe}"
    );
    let uuid = probe.lines().find_map(|l| l.strip_prefix("UUID=")).unwrap();
    assert_eq!(
        read(&root.join("etc/fstab")),
        format!(
            "UUID=0b6bd5a2 / ext4 defaults 1 1\nUUID={uuid} /mnt/retention ext4 defaults,noatime,nofail 0 2\n"
        )
    );
    assert!(target.join("mtkit").is_dir(), "journal folder");

    // again: nothing to change, fstab not rewritten
    let mtime = fs::metadata(root.join("etc/fstab"))
        .unwrap()
        .modified()
        .unwrap();
    let head = lp.head();
    let o = prepare();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("{}: already prepared, nothing to change", lp.dev)
    );
    assert_eq!(
        fs::metadata(root.join("etc/fstab"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    assert_eq!(lp.head(), head);

    // check on the mounted volume: eligible, with the space comparison
    let o = retention("check", Some(&lp.dev), &root, &cfg, &["--json"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["prepared"], true);
    assert_eq!(v["space"]["needed"], 16 << 20);
    assert!(v["space"]["free"].as_u64().unwrap() > 16 << 20);
    // and without DEVICE: `auto` finds what is mounted at the mountpoint
    let o = retention("check", None, &root, &cfg, &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok   space"), "{}", stdout(&o));
}

/// Runs prepare on a device set up to break a rule: exit 2, the rule named, nothing changed.
fn assert_refused(lp: &Loop, rule: &str, reason: &str) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let cfg = config(t.path());
    let head = lp.head();
    let o = retention("prepare", Some(&lp.dev), &root, &cfg, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("- {rule}: {reason}")),
        "{rule}: {err}"
    );
    assert!(err.contains("nothing was changed"));
    assert_eq!(lp.head(), head, "{rule}: device changed");
    assert!(!root.join("etc/fstab").exists());
    assert!(!root.join("mnt").exists());
}

#[test]
fn mounted_device_is_refused() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, blkid");
    let mut lp = Loop::new(32 << 20);
    sh("mkfs.ext4", &["-q", &lp.dev]);
    let m = tempfile::tempdir().unwrap();
    lp.mount_at(m.path());
    assert_refused(
        &lp,
        "not-mounted",
        &format!("mounted at {}", m.path().display()),
    );
}

#[test]
fn swap_is_refused() {
    require!(can_loop() && have("mkswap"), "needs root, losetup, mkswap");
    let lp = Loop::new(32 << 20);
    sh("mkswap", &[&lp.dev]);
    let on = Command::new("swapon")
        .arg(&lp.dev)
        .output()
        .unwrap()
        .status
        .success();
    let reason = if on {
        "in use as swap"
    } else {
        "holds a swap signature"
    };
    assert_refused(&lp, "not-swap", reason);
}

#[test]
fn lvm_pv_is_refused() {
    require!(
        can_loop() && have("pvcreate"),
        "needs root, losetup, pvcreate"
    );
    let lp = Loop::new(32 << 20);
    let o = Command::new("pvcreate")
        .args(["-y", "--devices", &lp.dev, &lp.dev])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pvcreate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_refused(&lp, "not-lvm-pv", "is an LVM physical volume");
}

#[test]
fn fat32_is_refused() {
    require!(
        can_loop() && have("mkfs.vfat"),
        "needs root, losetup, mkfs.vfat"
    );
    let lp = Loop::new(64 << 20);
    sh("mkfs.vfat", &["-F", "32", &lp.dev]);
    assert_refused(&lp, "not-fat", "filesystem is FAT32");
}

#[test]
fn size_zero_is_refused() {
    require!(can_loop(), "needs root, losetup");
    // A loop over an empty file is a real block device of 0 sectors.
    let lp = Loop::new(0);
    assert_refused(&lp, "size", "capacity is zero");
}

#[test]
fn device_held_open_exclusively_is_refused() {
    require!(can_loop(), "needs root, losetup");
    use std::os::unix::fs::OpenOptionsExt;
    let lp = Loop::new(32 << 20);
    let _held = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&lp.dev)
        .unwrap();
    assert_refused(&lp, "exclusive-open", "cannot be opened exclusively");
}

#[test]
fn existing_filesystem_needs_force() {
    require!(
        can_loop() && have("mkfs.xfs"),
        "needs root, losetup, mkfs.xfs"
    );
    let mut lp = Loop::new(320 << 20);
    sh("mkfs.ext4", &["-q", "-L", "userdata", &lp.dev]);
    assert_refused(&lp, "no-data", "holds a ext4 filesystem labelled userdata");
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let cfg = config(t.path());
    lp.mounts.push(root.join("srv/ret"));
    let o = retention(
        "prepare",
        Some(&lp.dev),
        &root,
        &cfg,
        &["--force", "--fs", "xfs", "--mountpoint", "/srv/ret"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(read(&root.join("etc/fstab")).contains(" /srv/ret xfs defaults,noatime,nofail 0 0\n"));
    assert!(root.join("srv/ret/mtkit").is_dir());
}

/// A prepared-looking volume (ext4 labelled mt-retention) made without a journal passes
/// every other rule: only its superblock tells, and prepare keeps a prepared volume as it
/// is, so it must refuse it, even with --force.
#[test]
fn a_retention_ext4_without_a_journal_is_refused() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, blkid");
    let lp = Loop::new(64 << 20);
    sh(
        "mkfs.ext4",
        &["-q", "-L", "mt-retention", "-O", "^has_journal", &lp.dev],
    );
    assert_refused(
        &lp,
        "crash-safe",
        "ext4 without a journal (no has_journal feature): a power cut leaves its metadata",
    );
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let o = retention(
        "prepare",
        Some(&lp.dev),
        &root,
        &config(t.path()),
        &["--force"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("- crash-safe: "), "{}", stderr(&o));
}

/// What prepare makes has a journal even where mke2fs.conf would leave it out (as the
/// ext4 this suite often runs on was made).
#[test]
fn prepare_makes_an_ext4_with_a_journal_whatever_mke2fs_conf_says() {
    require!(
        can_loop() && have("dumpe2fs"),
        "needs root, losetup, mkfs.ext4, blkid, dumpe2fs"
    );
    let mut lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("mke2fs.conf");
    fs::write(
        &conf,
        "[defaults]\n\tbase_features = sparse_super,large_file,filetype,dir_index,ext_attr\n\
         [fs_types]\n\text4 = {\n\t\tfeatures = extent,flex_bg,huge_file,dir_nlink,extra_isize\n\t}\n",
    )
    .unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let cfg = config(t.path());
    lp.mounts.push(root.join("mnt/retention"));
    let o = common::mtkit()
        .env("MKE2FS_CONFIG", &conf)
        .args(["retention", "prepare", &lp.dev, "--root"])
        .arg(&root)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let head = String::from_utf8(sh("dumpe2fs", &["-h", &lp.dev]).stdout).unwrap();
    let features = head
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap();
    assert!(
        features.contains("has_journal") && features.contains("extent"),
        "{features}"
    );
    // The conf was used (no metadata_csum, which mkfs.ext4 would otherwise turn on).
    assert!(!features.contains("metadata_csum"), "{features}");
    let o = retention("check", Some(&lp.dev), &root, &cfg, &[]);
    assert!(stdout(&o).contains("ok   crash-safe"), "{}", stdout(&o));
}

fn windows(name: &str) -> std::process::Output {
    let f = fixture(&format!("windows/{name}.json"));
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("a.toml");
    fs::write(&cfg, "[retention]\nmin-size = \"100G\"\n").unwrap();
    run(&[
        "retention",
        "check",
        "--windows",
        f.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
}

#[test]
fn windows_r_drive_good_in_both_enum_forms() {
    for name in ["ok-ps51", "ok-ps7"] {
        let o = windows(name);
        assert!(o.status.success(), "{name}: {}", stdout(&o));
        assert!(
            stdout(&o).starts_with("R: eligible as the retention volume\n"),
            "{}",
            stdout(&o)
        );
        assert!(stdout(&o).contains("ok   space"));
    }
}

#[test]
fn windows_r_drive_failures() {
    for (name, rule, reason) in [
        ("missing", "exists", "R: does not exist"),
        ("fat32", "not-fat", "filesystem is FAT32"),
        ("zero-size", "size", "capacity is zero"),
        ("too-small", "min-size", "< [retention] min-size 100G"),
        ("system-volume", "not-os-disk", "R: is the system partition"),
        (
            "boot-volume",
            "not-os-disk",
            "R: is the boot (Windows) partition",
        ),
        (
            "install-volume",
            "not-install-volume",
            "holds the install R:\\mtkit",
        ),
        ("bitlocker-locked", "not-locked", "BitLocker-locked"),
        (
            "replication-target",
            "not-writer-target",
            "disk 3 (a replication target)",
        ),
    ] {
        let o = windows(name);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        let line = stdout(&o)
            .lines()
            .find(|l| l.contains(&format!("FAIL {rule} ")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{name}: no FAIL {rule}: {}", stdout(&o)));
        assert!(line.contains(reason), "{name}: {line}");
    }
}

#[test]
fn windows_facts_not_json_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("facts.json");
    fs::write(&f, "{ \"Volume\": ").unwrap();
    let o = run(&["retention", "check", "--windows", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("facts.json:1:"), "{}", stderr(&o));
}

/// Every key, at any depth.
fn json_keys(v: &serde_json::Value, into: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
            into.push(k.clone());
            json_keys(x, into)
        }),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_keys(x, into)),
        _ => {}
    }
}

/// `--json` keys are kebab-case like appliance.toml's: `fstab-line` of prepare (it was
/// `fstab_line`), and every key of check.
#[test]
fn retention_json_keys_are_kebab_case() {
    require!(
        can_loop() && have("mkfs.vfat"),
        "needs root, losetup, mkfs.ext4, blkid, mkfs.vfat"
    );
    let mut lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let cfg = config(t.path());
    lp.mounts.push(root.join("mnt/retention"));
    let o = retention("prepare", Some(&lp.dev), &root, &cfg, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["fstab-line"]
            .as_str()
            .unwrap()
            .contains(" /mnt/retention ext4 "),
        "{v}"
    );
    let fat = Loop::new(64 << 20);
    sh("mkfs.vfat", &["-F", "32", &fat.dev]);
    let o = retention("check", Some(&fat.dev), &root, &cfg, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w["ok"], false, "{w}");
    let mut keys = Vec::new();
    json_keys(&v, &mut keys);
    json_keys(&w, &mut keys);
    let snake: Vec<_> = keys.iter().filter(|k| k.contains('_')).collect();
    assert!(snake.is_empty(), "snake_case keys: {snake:?}");
}

/// Every entry under `dir` (kind, bytes, link target): "nothing changed" means this is equal.
fn tree(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else if m.is_file() {
                format!("file {:x}", crc32c::crc32c(&fs::read(&p).unwrap()))
            } else {
                "other".into()
            };
            out.push((p, what));
        }
    }
    out.sort();
    out
}

fn mounted_dev_at(p: &Path) -> Option<String> {
    read(Path::new("/proc/self/mountinfo"))
        .lines()
        .rev()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (left.split(' ').nth(4) == Some(p.to_str().unwrap()))
                .then(|| right.split(' ').nth(1).unwrap().to_string())
        })
}

/// The live retention volume mounted at the mountpoint is never mounted over, and an fstab
/// line naming another device for the mountpoint is never replaced, without `--replace`:
/// exit 2, nothing changed (device, tree, mounts), and `--dry-run` says the same. With
/// `--replace` the old volume is unmounted and the new one takes its place.
#[test]
fn the_mounted_retention_volume_is_not_replaced_without_replace() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, blkid");
    let mut live = Loop::new(64 << 20);
    let mut new = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let cfg = config(t.path());
    let target = root.join("mnt/retention");
    live.mounts.push(target.clone());
    new.mounts.push(target.clone());
    let o = retention("prepare", Some(&live.dev), &root, &cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    fs::write(target.join("mtkit/journal"), "history").unwrap();
    let fstab = read(&root.join("etc/fstab"));

    let before = (tree(t.path()), new.head(), mounted_dev_at(&target));
    for extra in [&[][..], &["--dry-run"][..], &["--force"][..]] {
        let o = retention("prepare", Some(&new.dev), &root, &cfg, extra);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        assert!(
            e.contains(&format!(
                "{} (ext4) is mounted at {}",
                live.dev,
                target.display()
            )),
            "{e}"
        );
        assert!(
            e.contains("--replace") && e.contains("nothing was changed"),
            "{e}"
        );
        assert_eq!(
            (tree(t.path()), new.head(), mounted_dev_at(&target)),
            before,
            "{extra:?}"
        );
    }
    // Nothing mounted, but fstab still names the old volume: refused too.
    sh("umount", &[target.to_str().unwrap()]);
    let before = (tree(t.path()), new.head());
    let o = retention("prepare", Some(&new.dev), &root, &cfg, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("etc/fstab mounts UUID="), "{e}");
    assert_eq!((tree(t.path()), new.head()), before);
    sh("mount", &[&live.dev, target.to_str().unwrap()]);

    let o = retention("prepare", Some(&new.dev), &root, &cfg, &["--replace"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("unmounted {} from /mnt/retention", live.dev)));
    assert_eq!(mounted_dev_at(&target).as_deref(), Some(new.dev.as_str()));
    let now = read(&root.join("etc/fstab"));
    assert_ne!(now, fstab);
    assert_eq!(read(&root.join("etc/fstab.mtkit-bak")), fstab);
    assert_eq!(now.matches(" /mnt/retention ").count(), 1, "{now}");
}

/// `prepare --dry-run` says what would be formatted, mounted and written, and changes
/// nothing: the device, the root and the mounts are as they were.
#[test]
fn prepare_dry_run_changes_nothing() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, blkid");
    let mut lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/fstab"),
        "UUID=0b6bd5a2 / ext4 defaults 1 1\n",
    )
    .unwrap();
    let cfg = config(t.path());
    lp.mounts.push(root.join("mnt/retention"));
    let before = (tree(t.path()), lp.head());
    let o = retention("prepare", Some(&lp.dev), &root, &cfg, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        format!("would format {} as ext4 labelled mt-retention", lp.dev),
        "would mount at /mnt/retention".to_string(),
        "fstab (would write): UUID=<the new filesystem's> /mnt/retention ext4 defaults,noatime,nofail 0 2".into(),
        "would create journal folder /mnt/retention/mtkit".into(),
    ] {
        assert!(out.contains(&want), "{want}: {out}");
    }
    assert_eq!((tree(t.path()), lp.head()), before);
    assert!(!is_mounted_at(&root.join("mnt/retention")));
    let o = retention(
        "prepare",
        Some(&lp.dev),
        &root,
        &cfg,
        &["--dry-run", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dry-run"], true);
    assert_eq!(v["steps"].as_array().unwrap().len(), 4);
}

/// Under `--root`, a mountpoint that is a link out of the root, `--mountpoint /../x`, and an
/// `etc` that is a link out of the root are refused: exit 2, nothing formatted, mounted or
/// written, inside or outside the root.
#[test]
fn prepare_under_root_never_leaves_it() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, blkid");
    let mut lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("etc")).unwrap();
    fs::write(outside.join("etc/fstab"), "host fstab\n").unwrap();
    fs::create_dir_all(root.join("mnt")).unwrap();
    let cfg = config(t.path());
    lp.mounts.push(outside.clone());
    lp.mounts.push(outside.join("x"));

    type Setup<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Setup, Vec<&str>)> = vec![
        (
            "mnt/retention is a symbolic link",
            Box::new(|| {
                fs::create_dir_all(root.join("etc")).unwrap();
                std::os::unix::fs::symlink(&outside, root.join("mnt/retention")).unwrap();
            }),
            vec![],
        ),
        (
            "`..` and `.` are not allowed",
            Box::new(|| {}),
            vec!["--mountpoint", "/../x"],
        ),
        (
            "root/etc is a symbolic link",
            Box::new(|| {
                let _ = fs::remove_file(root.join("mnt/retention"));
                let _ = fs::remove_dir_all(root.join("etc"));
                std::os::unix::fs::symlink(outside.join("etc"), root.join("etc")).unwrap();
            }),
            vec![],
        ),
    ];
    for (want, setup, extra) in cases {
        setup();
        let before = (tree(t.path()), lp.head());
        let o = retention("prepare", Some(&lp.dev), &root, &cfg, &extra);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{want}: {e}");
        assert!(e.contains(want), "{want}: {e}");
        assert_eq!((tree(t.path()), lp.head()), before, "{want}");
        assert!(!is_mounted_at(&outside) && !is_mounted_at(&outside.join("x")));
        assert!(!is_mounted_at(&t.path().join("x")));
    }
    assert_eq!(read(&outside.join("etc/fstab")), "host fstab\n");
}
