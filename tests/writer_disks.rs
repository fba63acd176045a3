//! The writer touches only the right disks: socket paths that are not sockets are left
//! alone; disks named by SCSI ID are found by it at every start and a path carrying
//! another ID is not served; mounted devices, the journal's device, the OS disk and swap
//! are refused; a served block device is held with O_EXCL so mkfs cannot format it.

mod support;

use support::{copy_tree, finding, free_port, sh};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{have, is_root, mtkit, stderr};

const SDB: &str = "36000c29a1b2c3d4e5f60718293a4b5c6d7e8f90";
const SDC: &str = "36000c29b2c3d4e5f60718293a4b5c6d7e8f90a1";
const SDD: &str = "36000c29c3d4e5f60718293a4b5c6d7e8f90a1b2";

/// `[writer]` on loopback (plain NBD) with its files in `dir`, plus `disks` (TOML).
fn config(dir: &Path, journal: &Path, disks: &str) -> (PathBuf, u16) {
    let port = free_port();
    let text = format!(
        // allow-unsafe-journal: the journal is in a temp folder, on whatever / is.
        "[writer]\nlisten = \"127.0.0.1:{port}\"\nmetrics-listen = \"\"\nallow-unsafe-journal = true\njournal-dir = \"{}\"\n\
         unix-socket = \"{}\"\ncontrol-socket = \"{}\"\n{disks}",
        journal.display(),
        dir.join("run/nbd.sock").display(),
        dir.join("run/control.sock").display(),
    );
    let p = dir.join("appliance.toml");
    std::fs::write(&p, text).unwrap();
    (p, port)
}

struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    /// `writer run` (under `root` when given) until `control` answers.
    fn start(config: &Path, root: Option<&Path>, control: &Path, port: u16) -> Service {
        let log = config.with_extension("log");
        let mut cmd = mtkit();
        cmd.arg("--config").arg(config).args(["writer", "run"]);
        if let Some(r) = root {
            cmd.arg("--root").arg(r);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Service { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while status(control).is_none() || TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("writer run exited {st}: {}", s.log());
            }
            assert!(Instant::now() < deadline, "not started: {}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}: {}", self.log());
        self.log()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status the running service answers on its control socket.
fn status(control: &Path) -> Option<serde_json::Value> {
    let mut c = UnixStream::connect(control).ok()?;
    writeln!(c, r#"{{"cmd":"status"}}"#).ok()?;
    let mut line = String::new();
    BufReader::new(c).read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v.get("ok").cloned()
}

fn served(st: &serde_json::Value) -> Vec<String> {
    st["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["disks"].as_array().unwrap().clone())
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

/// (name, reason) of every disk not served.
fn refused(st: &serde_json::Value) -> Vec<(String, String)> {
    st.get("refused")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        format!(
                            "{} {}",
                            r["path"].as_str().unwrap(),
                            r["reason"].as_str().unwrap()
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn socket_paths_that_are_not_sockets_are_left_alone() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (cfg, _) = config(d, &d.join("journal"), "");
    let original = std::fs::read_to_string(&cfg).unwrap();
    // unix-socket pointing at the config itself (a typo), control-socket at a folder.
    for (key, target) in [
        ("unix-socket", cfg.clone()),
        ("control-socket", d.join("somedir")),
    ] {
        std::fs::create_dir_all(d.join("somedir")).unwrap();
        let text = original.replace(
            &format!(
                "{key} = \"{}\"",
                d.join(if key == "unix-socket" {
                    "run/nbd.sock"
                } else {
                    "run/control.sock"
                })
                .display()
            ),
            &format!("{key} = \"{}\"", target.display()),
        );
        assert_ne!(text, original);
        let c = d.join(format!("{key}.toml"));
        std::fs::write(&c, &text).unwrap();
        // A writer that took the path would run on: give it a deadline, not a hang.
        let mut child = mtkit()
            .arg("--config")
            .arg(&c)
            .args(["writer", "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("writer run started with {key} = {}", target.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("[writer] {key}")), "{err}");
        assert!(err.contains(&target.display().to_string()), "{err}");
        assert!(err.contains("not a socket"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), original);
    assert!(d.join("somedir").is_dir());
}

/// A copy of the `healthy` appliance root (sdb, sdc: target disks under multipath; sdd's
/// map: the retention volume at /mnt/retention; sda: the OS disk with swap on sda6), with
/// regular files standing in for the device nodes a fixture has not.
fn fixture_root(t: &Path) -> PathBuf {
    let root = t.join("root");
    copy_tree(&support::fixture("roots/healthy"), &root);
    std::fs::create_dir_all(root.join("dev/mapper")).unwrap();
    for id in [SDB, SDC, SDD] {
        let f = std::fs::File::create(root.join("dev/mapper").join(id)).unwrap();
        f.set_len(4 << 20).unwrap();
    }
    root
}

#[test]
fn disks_are_found_by_scsi_id_and_wrong_or_busy_ones_are_not_served() {
    let t = tempfile::tempdir().unwrap();
    let root = fixture_root(t.path());
    let disks = format!(
        "[[writer.disk]]\nname = \"vm1-disk0\"\nscsi-id = \"{SDB}\"\ngroup = \"vm1\"\n\
         [[writer.disk]]\nname = \"vm2-disk0\"\npath = \"/dev/mapper/{SDD}\"\nscsi-id = \"{SDC}\"\ngroup = \"vm2\"\n\
         [[writer.disk]]\nname = \"vm3-disk0\"\nscsi-id = \"{SDD}\"\ngroup = \"vm3\"\n\
         [[writer.disk]]\nname = \"vm4-disk0\"\npath = \"/dev/sda6\"\ngroup = \"vm4\"\n"
    );
    // The journal is where the retention volume is mounted in the fixture.
    let (cfg, port) = config(t.path(), Path::new("/mnt/retention/mtkit"), &disks);
    let control = root.join(t.path().join("run/control.sock").strip_prefix("/").unwrap());
    let svc = Service::start(&cfg, Some(&root), &control, port);
    let st = status(&control).unwrap();
    assert_eq!(served(&st), ["vm1-disk0"], "{st:#}");
    let disk0 = &st["groups"][0]["disks"][0];
    assert_eq!(
        disk0["path"].as_str().unwrap(),
        root.join("dev/mapper").join(SDB).to_str().unwrap()
    );
    let r = refused(&st);
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(r[0].0, "vm2-disk0");
    assert!(
        r[0].1
            .contains(&format!("carries SCSI ID {SDD}, not scsi-id {SDC}")),
        "{}",
        r[0].1
    );
    assert_eq!(r[1].0, "vm3-disk0");
    assert!(r[1].1.contains("holds the journal"), "{}", r[1].1);
    assert!(
        r[1].1.contains("is mounted at /mnt/retention"),
        "{}",
        r[1].1
    );
    assert_eq!(r[2].0, "vm4-disk0");
    assert!(
        r[2].1.contains("is an active swap (/dev/sda6)"),
        "{}",
        r[2].1
    );
    assert!(r[2].1.contains("is the OS disk"), "{}", r[2].1);
    let log = svc.stop();
    assert!(
        log.contains("disk not served") && log.contains("vm2-disk0"),
        "{log}"
    );
    // Nothing was written to the refused disks' stand-ins.
    for id in [SDC, SDD] {
        let data = std::fs::read(root.join("dev/mapper").join(id)).unwrap();
        assert!(data.iter().all(|&b| b == 0));
    }

    // doctor shows the same verdicts, row by disk, and changes nothing.
    let out = mtkit()
        .arg("--config")
        .arg(&cfg)
        .args([
            "doctor",
            "--offline",
            "--json",
            "--root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |id: &str| finding(v.as_array().unwrap(), id).clone();
    assert_eq!(row("writer-disk:vm1-disk0")["status"], "pass");
    for (id, words) in [
        ("writer-disk:vm2-disk0", "not scsi-id"),
        ("writer-disk:vm3-disk0", "holds the journal"),
        ("writer-disk:vm4-disk0", "active swap"),
    ] {
        let f = row(id);
        assert_eq!(f["status"], "fail", "{f}");
        assert!(f["found"].as_str().unwrap().contains(words), "{f}");
    }
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_kernel_name_without_an_id_is_warned_about_with_its_location() {
    let t = tempfile::tempdir().unwrap();
    let root = fixture_root(t.path());
    std::fs::File::create(root.join("dev/sdc"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    // Without multipath on it (its map's link gone), sdc is a plain disk.
    let holders = root
        .join("sys/class/block/sdc")
        .canonicalize()
        .unwrap()
        .join("holders");
    for e in std::fs::read_dir(&holders).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let disks = "[[writer.disk]]\nname = \"vm1-disk0\"\npath = \"/dev/sdc\"\ngroup = \"vm1\"\n";
    let (cfg, _) = config(t.path(), &t.path().join("j"), disks);
    let out = mtkit()
        .arg("--config")
        .arg(&cfg)
        .args(["kickstart", "-o", "/dev/null"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let at = format!(
        "{}:10:8: [[writer.disk]] #1 path = \"/dev/sdc\"",
        cfg.display()
    );
    assert!(err.contains(&at) && err.contains("scsi-id"), "{err}");
    let out = mtkit()
        .arg("--config")
        .arg(&cfg)
        .args([
            "doctor",
            "--offline",
            "--json",
            "--root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = finding(v.as_array().unwrap(), "writer-disk:vm1-disk0");
    assert_eq!(f["status"], "warn", "{f}");
    assert!(
        f["found"].as_str().unwrap().contains("kernel name only"),
        "{f}"
    );
    assert!(f["remedy"].as_str().unwrap().contains("scsi-id"), "{f}");
}

#[test]
fn configs_the_writer_would_refuse_are_refused_by_kickstart_build_and_doctor() {
    let t = tempfile::tempdir().unwrap();
    // Valid TOML and valid keys, but the writer cannot serve an export name with '@'
    // (the view syntax) nor a request size over 4G: config validation says so, located,
    // for every command that reads the config, the service included.
    let disks = "[[writer.disk]]\nname = \"vm1@0\"\npath = \"/dev/mapper/x\"\ngroup = \"vm1\"\n";
    let (cfg, _) = config(t.path(), &t.path().join("j"), disks);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "metrics-listen = \"\"\n",
        "metrics-listen = \"\"\nmax-request-size = \"8G\"\nmax-buffer = \"8G\"\n",
    );
    std::fs::write(&cfg, &text).unwrap();
    let c = cfg.to_str().unwrap();
    // file:line:column of each value, as the config problems name them.
    let at = |needle: &str| {
        let off = text.find(needle).unwrap();
        let line = text[..off].matches('\n').count() + 1;
        let col = off - text[..off].rfind('\n').map_or(0, |n| n + 1) + 1;
        format!("{c}:{line}:{col}: ")
    };
    let size_at = format!(
        "{}[writer] max-request-size = \"8G\": must be below \"4G\"",
        at("\"8G\"\nmax-buffer")
    );
    let name_at = format!(
        "{}[[writer.disk]] #1 name = \"vm1@0\": no '@' or '/'",
        at("\"vm1@0\"")
    );
    let refused = |out: &std::process::Output, what: &str| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(&size_at), "{what}: want {size_at:?} in {err}");
        assert!(err.contains(&name_at), "{what}: want {name_at:?} in {err}");
        assert!(out.stdout.is_empty(), "{what} printed something");
    };
    let out = mtkit()
        .args(["--config", c, "kickstart", "-o", "-"])
        .output()
        .unwrap();
    refused(&out, "kickstart");
    let outdir = t.path().join("out");
    let out = mtkit()
        .args([
            "--config",
            c,
            "build",
            "--no-media",
            "--out",
            outdir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    refused(&out, "build");
    assert!(!outdir.exists(), "build wrote something");
    let out = mtkit()
        .args([
            "--config",
            c,
            "doctor",
            "--offline",
            "--json",
            "--root",
            t.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    refused(&out, "doctor");
    // The service itself: the same refusal, exit 2.
    let out = mtkit()
        .args(["--config", c, "writer", "run"])
        .output()
        .unwrap();
    refused(&out, "writer run");
}

struct Loop {
    dev: String,
    mounted: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(size: u64) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        let o = sh("losetup", &["-f", "--show", img.to_str().unwrap()]);
        let dev = String::from_utf8(o.stdout).unwrap().trim().to_string();
        Loop {
            dev,
            mounted: None,
            _dir: dir,
        }
    }

    fn mount_at(&mut self, dir: &Path) {
        sh("mkfs.ext4", &["-q", &self.dev]);
        std::fs::create_dir_all(dir).unwrap();
        sh("mount", &[&self.dev, dir.to_str().unwrap()]);
        self.mounted = Some(dir.to_path_buf());
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(m) = &self.mounted {
            let _ = Command::new("umount").arg(m).output();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
    }
}

fn can_loop() -> bool {
    is_root() && have("losetup") && have("mkfs.ext4") && have("mkfs.xfs")
}

#[test]
fn a_served_loop_device_cannot_be_formatted() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, mkfs.xfs");
    let lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let disks = format!(
        "[[writer.disk]]\nname = \"d0\"\npath = \"{}\"\ngroup = \"g\"\n",
        lp.dev
    );
    let (cfg, port) = config(t.path(), &t.path().join("journal"), &disks);
    let control = t.path().join("run/control.sock");
    let svc = Service::start(&cfg, None, &control, port);
    assert_eq!(served(&status(&control).unwrap()), ["d0"]);
    // mkfs refuses a device in use; forced twice it tries, and the kernel says busy.
    let o = Command::new("mkfs.ext4").arg(&lp.dev).output().unwrap();
    assert!(!o.status.success(), "mkfs.ext4 formatted a served disk");
    for (prog, args) in [("mkfs.ext4", &["-F", "-F"][..]), ("mkfs.xfs", &["-f"][..])] {
        let o = Command::new(prog).args(args).arg(&lp.dev).output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(
            !o.status.success(),
            "{prog} formatted a served disk: {text}"
        );
        assert!(text.contains("busy"), "{prog}: {text}");
    }
    // `retention prepare` cannot take it either.
    let rroot = t.path().join("rroot");
    std::fs::create_dir_all(rroot.join("etc")).unwrap();
    let o = mtkit()
        .arg("--config")
        .arg(&cfg)
        .args([
            "retention",
            "prepare",
            &lp.dev,
            "--force",
            "--root",
            rroot.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = stderr(&o);
    assert!(
        !o.status.success(),
        "retention prepare took a served disk: {text}"
    );
    assert!(
        text.contains("exclusive") || text.contains("busy"),
        "{text}"
    );
    svc.stop();
    // Once the writer is gone the disk is free again: the hold was the writer's.
    sh("mkfs.ext4", &["-q", "-F", &lp.dev]);
}

#[test]
fn a_mounted_loop_device_and_the_journals_device_are_refused() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, mkfs.xfs");
    let t = tempfile::tempdir().unwrap();
    let mut lp = Loop::new(64 << 20);
    let mnt = t.path().join("mnt");
    lp.mount_at(&mnt);
    let disks = format!(
        "[[writer.disk]]\nname = \"d0\"\npath = \"{}\"\ngroup = \"g\"\n",
        lp.dev
    );

    // Mounted elsewhere than the journal.
    let (cfg, port) = config(t.path(), &t.path().join("journal"), &disks);
    let control = t.path().join("run/control.sock");
    let svc = Service::start(&cfg, None, &control, port);
    let st = status(&control).unwrap();
    assert!(served(&st).is_empty(), "{st:#}");
    let r = refused(&st);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert!(
        r[0].1.contains(&format!("is mounted at {}", mnt.display())),
        "{}",
        r[0].1
    );
    assert!(!r[0].1.contains("journal"), "{}", r[0].1);
    svc.stop();

    // The journal on it.
    let (cfg, port) = config(t.path(), &mnt.join("mtkit"), &disks);
    let svc = Service::start(&cfg, None, &control, port);
    let r = refused(&status(&control).unwrap());
    assert_eq!(r.len(), 1, "{r:#?}");
    assert!(
        r[0].1.contains(&format!(
            "holds the journal ([writer] journal-dir {}",
            mnt.join("mtkit").display()
        )),
        "{}",
        r[0].1
    );
    // `writer status` says it plainly.
    let out = mtkit()
        .arg("--config")
        .arg(&cfg)
        .args(["writer", "status"])
        .output()
        .unwrap();
    let text = support::stdout(&out);
    assert!(text.contains("disk d0 (group g) NOT SERVED"), "{text}");
    assert!(text.contains("TLS: plain NBD, on loopback only"), "{text}");
    // With the default listen address, status says how a source gets a certificate.
    let own = t.path().join("own.toml");
    std::fs::write(
        &own,
        format!(
            "[writer]\njournal-dir = \"{}\"\ncontrol-socket = \"{}\"\n",
            t.path().join("j2").display(),
            t.path().join("run2/ctl.sock").display()
        ),
    )
    .unwrap();
    let out = mtkit()
        .arg("--config")
        .arg(&own)
        .args(["writer", "status"])
        .output()
        .unwrap();
    let text = support::stdout(&out);
    assert!(
        text.contains("TLS: forced TLS with the appliance's own CA in /etc/mtkit/tls")
            && text.contains("`mtkit writer certs --client NAME`"),
        "{text}{}",
        stderr(&out)
    );
    svc.stop();
    // The filesystem is intact.
    assert!(mnt.join("lost+found").is_dir());
}

/// A listing run while the service starts (its control socket not answering yet) reads the
/// journal directly: it must never claim the disks, or the service starting beside it finds
/// them busy and refuses its whole group until restarted. Here a process holding the device
/// with O_EXCL stands for the service at the moment it claims it.
#[test]
fn an_offline_listing_never_claims_the_disks_a_starting_service_needs() {
    require!(can_loop(), "needs root, losetup, mkfs.ext4, mkfs.xfs");
    require!(have("python3"), "needs python3");
    let lp = Loop::new(64 << 20);
    let t = tempfile::tempdir().unwrap();
    let disks = format!(
        "[[writer.disk]]\nname = \"d0\"\npath = \"{}\"\ngroup = \"g\"\n",
        lp.dev
    );
    let (cfg, _port) = config(t.path(), &t.path().join("journal"), &disks);
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import os,sys,time\nfd=os.open(sys.argv[1], os.O_RDWR|os.O_EXCL)\nprint('held', flush=True)\ntime.sleep(60)",
            &lp.dev,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    for args in [
        &["writer", "status", "--json"][..],
        &["points", "--json"][..],
    ] {
        let o = mtkit()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert!(o.status.success(), "{args:?}: {text}");
        assert!(
            !text.contains("busy"),
            "{args:?} tried to claim the disk: {text}"
        );
    }
    let _ = holder.kill();
    let _ = holder.wait();
}
