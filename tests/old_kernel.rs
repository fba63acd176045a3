//! The static binary the media carry, run as CentOS 6.6's kernel 2.6.32 would run it: under
//! a seccomp filter that fails every system call added after 2.6.32 with ENOSYS and the
//! fallocate modes 2.6.32 lacks with EOPNOTSUPP (support/old_kernel/filter.rs says which and
//! why). The writer serving real NBD clients over TLS, points, recover and commit; apply,
//! doctor and scsi-ids on CentOS 6 fixture roots; build --no-media; and scsi-ids on a root
//! whose sysfs has no VPD pages, so the IDs come from udev 147's database.

mod support;

use support::{installed_root, writer_env};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::old_kernel::filter::{Fallocate, HIGHEST_LISTED, LAST_2_6_32, OldKernelFilter};
use support::old_kernel::{old_mtkit, seccomp_unavailable, static_mtkit, under, under_filter};
use support::{copy_tree, fixture, free_port, have};

/// The static binary, or skip (fail under MTKIT_REQUIRE_ALL) with the reason.
macro_rules! static_bin {
    () => {{
        let why = seccomp_unavailable();
        require!(why.is_none(), "{}", why.unwrap_or_default());
        let bin = static_mtkit();
        require!(bin.is_ok(), "{}", bin.as_ref().unwrap_err());
        bin.unwrap()
    }};
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs `f` on a fresh thread under the filter (filters are per thread: the test harness
/// and the other tests are not touched).
fn in_filtered_thread<T: Send + 'static>(fallocate: Fallocate, f: fn() -> T) -> T {
    let filter = OldKernelFilter::new(fallocate);
    std::thread::spawn(move || {
        filter.install().expect("installing the filter");
        f()
    })
    .join()
    .unwrap()
}

/// fallocate on a fresh 64 KiB file of 0xaa bytes: (result, errno, whether the first
/// 4 KiB read back as zeros).
fn fallocate_probe(mode: i32) -> (i32, i32, bool) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let f = tempfile::tempfile().unwrap();
    f.write_all_at(&[0xaa; 65536], 0).unwrap();
    // SAFETY: fallocate on a file we own; no memory is passed.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, 0, 4096) };
    let e = errno();
    let mut b = [0u8; 4096];
    f.read_exact_at(&mut b, 0).unwrap();
    (r, e, b.iter().all(|&x| x == 0))
}

#[test]
fn filter_fails_new_system_calls_with_enosys_and_new_fallocate_modes_with_eopnotsupp() {
    let why = seccomp_unavailable();
    require!(why.is_none(), "{}", why.unwrap_or_default());
    // Every call the issue names is in the denied range; the 2.6.27..2.6.30 ones are not.
    for nr in [
        libc::SYS_statx,
        libc::SYS_getrandom,
        libc::SYS_copy_file_range,
        libc::SYS_clone3,
        libc::SYS_prlimit64,
        libc::SYS_recvmmsg,
        libc::SYS_sendmmsg,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_send_signal,
        libc::SYS_pidfd_getfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_openat2,
        libc::SYS_close_range,
        libc::SYS_memfd_create,
        libc::SYS_renameat2,
        libc::SYS_faccessat2,
        libc::SYS_preadv2,
        libc::SYS_pwritev2,
        libc::SYS_pkey_mprotect,
        libc::SYS_pkey_alloc,
        libc::SYS_pkey_free,
        libc::SYS_membarrier,
        libc::SYS_userfaultfd,
        libc::SYS_execveat,
        libc::SYS_mlock2,
        libc::SYS_seccomp,
        libc::SYS_rseq,
        libc::SYS_futex_waitv,
    ] {
        assert!(OldKernelFilter::denies(nr), "{nr} not denied");
        assert!(nr <= HIGHEST_LISTED);
    }
    for nr in [
        libc::SYS_getdents64,
        libc::SYS_fallocate,
        libc::SYS_accept4,
        libc::SYS_dup3,
        libc::SYS_pipe2,
        libc::SYS_epoll_create1,
        libc::SYS_eventfd2,
        libc::SYS_signalfd4,
        libc::SYS_inotify_init1,
        libc::SYS_preadv,
        libc::SYS_pwritev,
        libc::SYS_perf_event_open,
    ] {
        assert!(!OldKernelFilter::denies(nr), "{nr} denied");
    }
    assert_eq!(LAST_2_6_32, libc::SYS_perf_event_open);
    assert_eq!(libc::SYS_recvmmsg, LAST_2_6_32 + 1);

    // What the filter does to a thread: the new calls fail with ENOSYS without running.
    let got = in_filtered_thread(Fallocate::Unsupported, || {
        let mut buf = [0u8; 256];
        let mut out = BTreeMap::new();
        // SAFETY (all below): raw system calls with valid or null pointers; the filter
        // answers before the kernel runs them (and each would fail harmlessly otherwise).
        unsafe {
            let r = libc::syscall(
                libc::SYS_statx,
                libc::AT_FDCWD,
                c".".as_ptr(),
                0,
                0x7ff,
                buf.as_mut_ptr(),
            );
            out.insert("statx", (r, errno()));
            let r = libc::syscall(libc::SYS_getrandom, buf.as_mut_ptr(), 16usize, 0);
            out.insert("getrandom", (r, errno()));
            let how = [0u64; 3];
            let r = libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c".".as_ptr(),
                how.as_ptr(),
                24usize,
            );
            out.insert("openat2", (r, errno()));
            let r = libc::syscall(libc::SYS_memfd_create, c"x".as_ptr(), 0);
            out.insert("memfd_create", (r, errno()));
            let r = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
            out.insert("pidfd_open", (r, errno()));
            let r = libc::syscall(libc::SYS_close_range, 1000u32, 1001u32, 0);
            out.insert("close_range", (r, errno()));
            let r = libc::syscall(
                libc::SYS_prlimit64,
                0,
                libc::RLIMIT_NOFILE,
                0,
                buf.as_mut_ptr(),
            );
            out.insert("prlimit64", (r, errno()));
            // The 2.6.32 fallbacks still work.
            let r = libc::syscall(libc::SYS_getrlimit, libc::RLIMIT_NOFILE, buf.as_mut_ptr());
            out.insert("getrlimit", (r, errno()));
            let mut fds = [0i32; 2];
            let r = libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) as i64;
            out.insert("pipe2", (r, 0));
            // 2.6.32's sendfile writes only to sockets.
            let r = libc::sendfile(fds[1], fds[0], std::ptr::null_mut(), 1) as i64;
            out.insert("sendfile", (r, errno()));
            // Flags it does not know.
            let tmp =
                std::ffi::CString::new(std::env::temp_dir().into_os_string().into_encoded_bytes())
                    .unwrap();
            let r = libc::open(tmp.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o600) as i64;
            out.insert("O_TMPFILE", (r, errno()));
            let mut st: libc::stat = std::mem::zeroed();
            let r = libc::fstatat(fds[0], c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) as i64;
            out.insert("AT_EMPTY_PATH", (r, errno()));
            // (glibc's fstat is that newfstatat: only the fstat call is left.)
            let r = libc::syscall(libc::SYS_fstat, fds[0], &mut st);
            out.insert("fstat", (r, errno()));
        }
        // tempfile falls back from O_TMPFILE to a named, unlinked file.
        out.insert("tempfile", (tempfile::tempfile().map_or(-1, |_| 0), 0));
        // getdents64 (2.4): a folder's entries.
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        // SAFETY: getdents64 into a buffer of the length given.
        let n = unsafe {
            use std::os::fd::AsRawFd;
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        out.insert("getdents64", (i64::from(n <= 0), errno()));
        out
    });
    for name in [
        "statx",
        "getrandom",
        "openat2",
        "memfd_create",
        "pidfd_open",
        "close_range",
        "prlimit64",
    ] {
        assert_eq!(got[name], (-1, libc::ENOSYS), "{name}");
    }
    assert_eq!(got["sendfile"], (-1, libc::EINVAL));
    assert_eq!(got["O_TMPFILE"], (-1, libc::EISDIR));
    assert_eq!(got["AT_EMPTY_PATH"], (-1, libc::EINVAL));
    for name in ["fstat", "tempfile"] {
        assert_eq!(got[name].0, 0, "{name}: {:?}", got[name]);
    }
    for name in ["getrlimit", "pipe2", "getdents64"] {
        assert_eq!(got[name].0, 0, "{name}: {:?}", got[name]);
    }

    // fallocate: mode 0 and KEEP_SIZE run; PUNCH_HOLE and ZERO_RANGE fail, data kept.
    let modes = || {
        [
            0,
            libc::FALLOC_FL_KEEP_SIZE,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            libc::FALLOC_FL_ZERO_RANGE,
        ]
        .map(fallocate_probe)
    };
    let unfiltered = modes();
    assert_eq!(
        unfiltered[2],
        (0, unfiltered[2].1, true),
        "this kernel punches holes"
    );
    let rhel6 = in_filtered_thread(Fallocate::Unsupported, modes);
    assert_eq!(rhel6[0].0, 0);
    assert_eq!(rhel6[1].0, 0);
    for r in &rhel6[2..] {
        assert_eq!(*r, (-1, libc::EOPNOTSUPP, false));
    }
    // Vanilla 2.6.32 on ext4/xfs: with KEEP_SIZE the call "succeeds" and zeroes nothing.
    let vanilla = in_filtered_thread(Fallocate::SilentNoop, modes);
    assert_eq!(vanilla[2], (0, vanilla[2].1, false));
    assert_eq!(vanilla[3], (0, vanilla[3].1, false));
    assert_eq!(vanilla[4], (-1, libc::EOPNOTSUPP, false));
}

#[test]
fn filter_holds_across_exec() {
    let why = seccomp_unavailable();
    require!(why.is_none(), "{}", why.unwrap_or_default());
    require!(have("python3"), "python3 is needed as an exec'd probe");
    // Python's own start-up survives (its hash seed falls back from getrandom to
    // /dev/urandom); then its direct wrappers of new calls fail with ENOSYS.
    let probe = r#"
import errno, os, sys
out = []
for name, call in [
    ("getrandom", lambda: os.getrandom(4)),
    ("memfd_create", lambda: os.memfd_create("x")),
    ("pidfd_open", lambda: os.pidfd_open(os.getpid())),
    ("copy_file_range", lambda: os.copy_file_range(0, 1, 1)),
]:
    try:
        call()
        out.append(name + "=ok")
    except OSError as e:
        out.append(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
print(" ".join(out))
"#;
    // Python is linked against Debian's glibc, which needs a newer kernel itself (its
    // fstat is newfstatat with AT_EMPTY_PATH): the flag checks are left out for it.
    let o = under(
        Path::new("python3"),
        OldKernelFilter::without_flag_checks(Fallocate::Unsupported),
    )
    .args(["-c", probe])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "getrandom=ENOSYS memfd_create=ENOSYS pidfd_open=ENOSYS copy_file_range=ENOSYS"
    );
}

fn ok(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// (exit code, stdout) of the host build and of the static one under the filter.
fn both(bin: &Path, args: &[&str]) -> ((Option<i32>, String), (Option<i32>, String)) {
    let host = support::run(args);
    let old = old_mtkit(bin).args(args).output().unwrap();
    let pick = |o: &Output| {
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert!(
        !String::from_utf8_lossy(&old.stderr).contains("panicked"),
        "{args:?}: {}",
        String::from_utf8_lossy(&old.stderr)
    );
    (pick(&host), pick(&old))
}

#[test]
fn static_binary_reads_centos6_roots_as_the_host_build_does() {
    let bin = static_bin!();
    let o = ok(
        old_mtkit(&bin).arg("--version").output().unwrap(),
        "--version",
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("mtkit "));

    // Every doctor fixture root (CentOS 6.6 as its sysfs and udev 147 db show it) and every
    // real sysfs capture: same exit code, same JSON.
    let mut roots: Vec<PathBuf> = std::fs::read_dir(fixture("roots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    roots.sort();
    assert!(roots.len() >= 10, "{roots:?}");
    for case in ["vmware-like", "no-uuid", "mixed"] {
        roots.push(fixture(&format!("scsi/{case}")));
    }
    let mut saw_udev = false;
    for root in &roots {
        let r = root.to_str().unwrap();
        let (host, old) = both(&bin, &["scsi-ids", "--root", r, "--json"]);
        assert_eq!(old, host, "scsi-ids --root {r}");
        assert!(
            old.0 == Some(0) || old.0 == Some(1),
            "scsi-ids --root {r}: {old:?}"
        );
        saw_udev |= old.1.contains(r#""id-source": "udev""#);
        let (host, old) = both(&bin, &["doctor", "--root", r, "--json"]);
        assert_eq!(old, host, "doctor --root {r}");
        let v: serde_json::Value = serde_json::from_str(&old.1).unwrap();
        assert!(v.as_array().unwrap().len() > 10, "doctor --root {r}: {v}");
    }
    assert!(saw_udev, "no root took an ID from udev 147's database");
}

/// Asserts two trees are equal, naming the paths that differ.
fn assert_same_tree(
    got: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
    want: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
) {
    let keys: std::collections::BTreeSet<_> = got.keys().chain(want.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            let show = |e: Option<&(u32, Vec<u8>)>| {
                e.map(|(m, b)| format!("{m:o} {}", String::from_utf8_lossy(b)))
            };
            format!(
                "{}:\n  got  {:?}\n  want {:?}",
                k.display(),
                show(got.get(k)),
                show(want.get(k))
            )
        })
        .collect();
    assert!(differ.is_empty(), "trees differ:\n{}", differ.join("\n"));
}

/// Every entry under `root`: file bytes, link target, or a folder, with its mode.
fn tree(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.permissions().mode();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, (mode, t.into_os_string().into_encoded_bytes()));
            } else if m.is_dir() {
                out.insert(rel, (mode, vec![]));
                walk(root, &p, out);
            } else {
                out.insert(rel, (mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

const APPLY_CONFIG: &str = r#"
[appliance]
hostname = "mt07.dr.example"
[network]
device = "eth0"
bootproto = "static"
ip = "192.0.2.77"
prefix = 24
gateway = "192.0.2.1"
[disks]
os-disk = "sda"
[writer]
listen = "0.0.0.0:10809"
"#;

#[test]
fn static_binary_applies_to_a_centos66_root_and_builds_without_media() {
    let bin = static_bin!();
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("appliance.toml");
    std::fs::write(&cfg, APPLY_CONFIG).unwrap();
    let make = |name: &str| {
        let root = d.path().join(name);
        let st = Command::new("bash")
            .arg(fixture("make-centos66-root.sh"))
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success(), "make-centos66-root.sh failed");
        root
    };
    let (host_root, old_root) = (make("host"), make("old"));
    let apply = |root: &Path, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "apply".into(),
            "--root".into(),
            root.display().to_string(),
            "--config".into(),
            cfg.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    ok(
        support::mtkit()
            .args(apply(&host_root, &[]))
            .output()
            .unwrap(),
        "host apply",
    );
    let o = ok(
        old_mtkit(&bin)
            .args(apply(&old_root, &[]))
            .output()
            .unwrap(),
        "static apply under the filter",
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("etc/multipath.conf"));
    // Byte for byte what the host build made (backups and state included), modes too.
    // The apply log's lines start with the time of the run; the appliance's own CA and
    // server key are new random keys each time (made through ring's RNG: getrandom fails
    // here, /dev/urandom serves), so of those only the kind of PEM is compared.
    let untimed = |root: &Path| {
        let mut t = tree(root);
        for (p, (_, bytes)) in t.iter_mut() {
            if p.starts_with("etc/mtkit/tls") && p.extension().is_some_and(|e| e == "pem") {
                let text = String::from_utf8_lossy(bytes).into_owned();
                assert!(text.ends_with("-----\n"), "{}: {text}", p.display());
                *bytes = text.lines().next().unwrap_or_default().as_bytes().to_vec();
            }
        }
        let log = t.get_mut(Path::new("var/log/mtkit-apply.log")).unwrap();
        let re = regex::Regex::new(r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ").unwrap();
        log.1 = re
            .replace_all(&String::from_utf8_lossy(&log.1), "")
            .into_owned()
            .into_bytes();
        t
    };
    assert_same_tree(&untimed(&old_root), &untimed(&host_root));
    // Again: nothing to change; doctor agrees; revert gives the fresh root back.
    let o = ok(
        old_mtkit(&bin)
            .args(apply(&old_root, &["--json"]))
            .output()
            .unwrap(),
        "second apply",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["changed"].as_array().unwrap().len(), 0, "{v}");
    let (host, old) = both(
        &bin,
        &[
            "doctor",
            "--root",
            old_root.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(old.1, host.1);
    ok(
        old_mtkit(&bin)
            .args(apply(&old_root, &["--revert"]))
            .output()
            .unwrap(),
        "apply --revert",
    );
    let fresh = make("fresh");
    let without_log = |t: BTreeMap<PathBuf, (u32, Vec<u8>)>| {
        t.into_iter()
            .filter(|(p, _)| p != Path::new("var/log/mtkit-apply.log"))
            .collect::<BTreeMap<_, _>>()
    };
    assert_same_tree(&without_log(tree(&old_root)), &without_log(tree(&fresh)));

    // vmx patch keeps a backup made by std::fs::copy: copy_file_range fails with ENOSYS
    // here, sendfile to a file with EINVAL, and std copies with read/write as on 2.6.32.
    let vmx = d.path().join("mt03.vmx");
    std::fs::copy(fixture("vmx/uuid-false/mt03.vmx"), &vmx).unwrap();
    let o = ok(
        old_mtkit(&bin)
            .args(["vmx", "patch", vmx.to_str().unwrap()])
            .output()
            .unwrap(),
        "vmx patch",
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("disk.EnableUUID"));
    let backup = d.path().join("mt03.vmx.mtkit-bak");
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        std::fs::read(fixture("vmx/uuid-false/mt03.vmx")).unwrap()
    );

    // build --no-media with a root password file: the SHA-512 crypt salt comes from the
    // getrandom crate, which must fall back to /dev/urandom.
    let pw = d.path().join("root.pw");
    std::fs::write(&pw, "s3cret-Pass\n").unwrap();
    let bcfg = d.path().join("build.toml");
    std::fs::write(
        &bcfg,
        format!("[appliance]\nroot-password-file = \"{}\"\n", pw.display()),
    )
    .unwrap();
    let build = |out: &Path| {
        vec![
            "build".to_string(),
            "--no-media".into(),
            "--json".into(),
            "--config".into(),
            bcfg.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let (host_out, old_out) = (d.path().join("out-host"), d.path().join("out-old"));
    ok(
        support::mtkit().args(build(&host_out)).output().unwrap(),
        "host build",
    );
    let o = ok(
        old_mtkit(&bin).args(build(&old_out)).output().unwrap(),
        "static build --no-media under the filter",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["root"], "password-file", "{v}");
    assert!(v["media"].is_null());
    let (host_ks, old_ks) = (
        std::fs::read_to_string(host_out.join("ks.cfg")).unwrap(),
        std::fs::read_to_string(old_out.join("ks.cfg")).unwrap(),
    );
    let hash = |ks: &str| {
        ks.lines()
            .find_map(|l| l.strip_prefix("rootpw --iscrypted "))
            .unwrap_or_else(|| panic!("no rootpw line: {ks}"))
            .to_string()
    };
    let (hh, oh) = (hash(&host_ks), hash(&old_ks));
    assert!(oh.starts_with("$6$") && oh.len() > 90, "{oh}");
    assert_ne!(hh, oh, "salts are random");
    assert_eq!(host_ks.replace(&hh, "HASH"), old_ks.replace(&oh, "HASH"));
    for f in ["SUMMARY.txt", "appliance.toml"] {
        let h = std::fs::read_to_string(host_out.join(f)).unwrap();
        let o = std::fs::read_to_string(old_out.join(f)).unwrap();
        let norm = |s: &str, hash: &str, out: &Path| {
            s.replace(hash, "HASH")
                .replace(&out.display().to_string(), "OUT")
        };
        assert_eq!(norm(&o, &oh, &old_out), norm(&h, &hh, &host_out), "{f}");
    }
}

const MIB: u64 = 1 << 20;

/// qemu-io/qemu-img/nbdinfo arguments for export `name` over TLS with client `src`'s
/// certificate.
struct Tls {
    pki: PathBuf,
    port: u16,
}

impl Tls {
    fn object(&self) -> String {
        format!(
            "tls-creds-x509,id=tls0,dir={},endpoint=client",
            self.pki.join("clients/src").display()
        )
    }
    fn opts(&self, export: &str) -> String {
        format!(
            "driver=nbd,host=127.0.0.1,port={},export={export},tls-creds=tls0",
            self.port
        )
    }
    fn qemu_io(&self, export: &str, cmds: &[&str]) -> String {
        let mut c = Command::new("qemu-io");
        c.args([
            "--object",
            &self.object(),
            "--image-opts",
            &self.opts(export),
        ]);
        for x in cmds {
            c.args(["-c", x]);
        }
        let o = ok(c.output().unwrap(), "qemu-io");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(!out.contains("Pattern verification failed"), "{out}");
        out
    }
    fn qemu_img(&self, args: &[&str]) {
        let mut c = Command::new("qemu-img");
        c.args([args[0], "--object", &self.object()]);
        c.args(&args[1..]);
        ok(c.output().unwrap(), &format!("qemu-img {args:?}"));
    }
}

#[test]
fn static_writer_serves_nbd_clients_over_tls_recovers_and_commits() {
    let bin = static_bin!();
    require!(
        have("qemu-io") && have("qemu-img") && have("nbdinfo"),
        "qemu-utils and libnbd-bin are needed"
    );
    let port = free_port();
    // A writer config of the usual shape, TLS with client certificates on.
    let env = writer_env::Env::with_writer(
        &[("vm1-d0", "vm1", 4 * MIB), ("vm1-d1", "vm1", 2 * MIB)],
        "",
    );
    let pki = env.path("pki");
    ok(
        old_mtkit(&bin)
            .args([
                "writer",
                "certs",
                "--out",
                pki.to_str().unwrap(),
                "--client",
                "src",
            ])
            .output()
            .unwrap(),
        "writer certs under the filter (ring's RNG without getrandom)",
    );
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let (writer, disks) = cfg.split_once("\n[[writer.disk]]").unwrap();
    let writer = writer
        .replace("insecure = true\n", "")
        .replace(&format!(":{}\"", env.port), &format!(":{port}\""));
    std::fs::write(
        &env.config,
        format!(
            "{writer}\n[writer.tls]\ndir = \"{}\"\n\n[[writer.group]]\nname = \"vm1\"\nclients = [\"src\"]\n\n[[writer.disk]]{disks}",
            pki.display()
        ),
    )
    .unwrap();
    let mtkit = |args: &[&str]| {
        old_mtkit(&bin)
            .arg("--config")
            .arg(&env.config)
            .args(args)
            .output()
            .unwrap()
    };
    let svc = OldWriter::start(&bin, &env, port, Fallocate::Unsupported);
    let tls = Tls {
        pki: pki.clone(),
        port,
    };

    // nbdinfo lists the exports with their sizes, over TLS.
    let uri = format!(
        "nbds://127.0.0.1:{port}/vm1-d0?tls-certificates={}",
        pki.join("clients/src").display()
    );
    let o = ok(
        Command::new("nbdinfo")
            .args(["--json", &uri])
            .output()
            .unwrap(),
        "nbdinfo",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exports"][0]["export-size"], 4 * MIB, "{v}");

    // Initial sync with qemu-img convert, then a baseline bookmark.
    let src = env.path("src.img");
    let img = |args: &[&str]| {
        ok(
            Command::new("qemu-img").args(args).output().unwrap(),
            "qemu-img",
        )
    };
    img(&["create", "-f", "raw", src.to_str().unwrap(), "4M"]);
    ok(
        Command::new("qemu-io")
            .args([
                "-f",
                "raw",
                "-c",
                "write -P 0x5a 0 3M",
                src.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
        "qemu-io on the source",
    );
    tls.qemu_img(&[
        "convert",
        "-n",
        "-f",
        "raw",
        src.to_str().unwrap(),
        "--target-image-opts",
        &tls.opts("vm1-d0"),
    ]);
    assert_eq!(
        std::fs::read(env.disk("vm1-d0")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    ok(
        mtkit(&["bookmark", "--group", "vm1", "--label", "baseline"]),
        "bookmark",
    );

    // Writes, zeroing by punching (-u: may trim) and by zero range (NO_HOLE), flushes: the
    // fallocate modes fail here, so the writer must write zeros instead.
    tls.qemu_io(
        "vm1-d0",
        &[
            "write -P 0x11 0 256k",
            "write -z -u 1M 128k",
            "write -z 2M 64k",
            "flush",
            "read -P 0x11 0 256k",
            "read -P 0 1M 128k",
            "read -P 0 2M 64k",
            "read -P 0x5a 2112k 64k",
        ],
    );
    tls.qemu_io("vm1-d1", &["write -P 0x22 0 64k", "flush"]);
    ok(
        mtkit(&["bookmark", "--group", "vm1", "--label", "app1"]),
        "bookmark",
    );
    let at_app1 = (
        std::fs::read(env.disk("vm1-d0")).unwrap(),
        std::fs::read(env.disk("vm1-d1")).unwrap(),
    );
    assert!(
        at_app1.0[1 << 20..(1 << 20) + (128 << 10)]
            .iter()
            .all(|&b| b == 0)
    );
    assert!(
        at_app1.0[2 << 20..(2 << 20) + (64 << 10)]
            .iter()
            .all(|&b| b == 0)
    );

    // More writes after the bookmark, a crash point, then recover to it and commit.
    tls.qemu_io(
        "vm1-d0",
        &["write -P 0x33 128k 1M", "write -z -u 0 64k", "flush"],
    );
    tls.qemu_io("vm1-d1", &["write -P 0x44 1M 512k", "flush"]);
    assert_ne!(std::fs::read(env.disk("vm1-d0")).unwrap(), at_app1.0);
    let o = ok(mtkit(&["points", "--group", "vm1", "--json"]), "points");
    let pts: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pts[0]["points"].as_array().unwrap().len() >= 3, "{pts}");
    let o = ok(
        mtkit(&["recover", "--group", "vm1", "--to", "latest-app"]),
        "recover",
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("100%"));
    assert!(
        std::fs::read(env.disk("vm1-d0")).unwrap() == at_app1.0,
        "vm1-d0 is not at app1"
    );
    assert!(
        std::fs::read(env.disk("vm1-d1")).unwrap() == at_app1.1,
        "vm1-d1 is not at app1"
    );
    ok(mtkit(&["commit", "--group", "vm1"]), "commit");

    // The host reads back through the writer what it holds, bit for bit.
    let back = env.path("back.img");
    tls.qemu_img(&[
        "convert",
        "--image-opts",
        &tls.opts("vm1-d0"),
        "-O",
        "raw",
        back.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&back).unwrap() == at_app1.0,
        "read back differs from app1"
    );
    // Replication resumes after the commit.
    tls.qemu_io(
        "vm1-d0",
        &["write -P 0x77 0 64k", "flush", "read -P 0x77 0 64k"],
    );
    let o = ok(mtkit(&["writer", "status", "--json"]), "writer status");
    assert!(String::from_utf8_lossy(&o.stdout).contains("vm1"));

    svc.stop();
}

/// `mtkit writer run` of the static binary under the filter, its log in service.log.
struct OldWriter {
    child: std::process::Child,
    log: PathBuf,
}

impl OldWriter {
    fn start(bin: &Path, env: &writer_env::Env, port: u16, fallocate: Fallocate) -> OldWriter {
        let log = env.path("service.log");
        let child = under_filter(bin, fallocate)
            .arg("--config")
            .arg(&env.config)
            .args(["writer", "run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut w = OldWriter { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while writer_env::control(&env.control(), r#"{"cmd":"status"}"#).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            if let Some(st) = w.child.try_wait().unwrap() {
                panic!("writer exited with {st}: {}", w.log());
            }
            assert!(
                Instant::now() < deadline,
                "writer did not start: {}",
                w.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: the writer drains and exits 0, without a panic in its log.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}: {}", self.log());
        assert!(!self.log().contains("panicked"), "{}", self.log());
    }
}

impl Drop for OldWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn static_writer_zeroes_where_a_vanilla_2_6_32_fallocate_would_only_pretend() {
    let bin = static_bin!();
    require!(have("qemu-io"), "qemu-io is needed (qemu-utils)");
    // fallocate(PUNCH_HOLE|KEEP_SIZE) returns 0 and changes nothing, as on 2.6.32's ext4.
    let env = writer_env::Env::new(&[("d0", "g", 4 * MIB)]);
    let svc = OldWriter::start(&bin, &env, env.port, Fallocate::SilentNoop);
    let io = |cmds: &[&str]| {
        let mut c = Command::new("qemu-io");
        c.args(["-f", "raw"]);
        for x in cmds {
            c.args(["-c", x]);
        }
        let o = ok(c.arg(env.uri("d0")).output().unwrap(), "qemu-io");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(!out.contains("Pattern verification failed"), "{out}");
    };
    // Initial sync (straight through), then journaled after the baseline: WRITE_ZEROES that
    // may punch (-u) and that must not (NO_HOLE) read back as zeros both times.
    io(&[
        "write -P 1 0 2M",
        "write -z -u 64k 64k",
        "flush",
        "read -P 0 64k 64k",
    ]);
    ok(
        old_mtkit(&bin)
            .arg("--config")
            .arg(&env.config)
            .args(["bookmark", "--group", "g"])
            .output()
            .unwrap(),
        "bookmark",
    );
    let at_bookmark = std::fs::read(env.disk("d0")).unwrap();
    io(&[
        "write -z -u 1M 256k",
        "write -z 1536k 4k",
        "flush",
        "read -P 0 1M 256k",
        "read -P 0 1536k 4k",
        "read -P 1 1540k 4k",
    ]);
    // Found out on a scratch file (made without O_TMPFILE, which fails here too).
    assert!(
        svc.log().contains("returned 0 but does not zero"),
        "{}",
        svc.log()
    );
    // Recover puts back what the zeroing overwrote.
    ok(
        old_mtkit(&bin)
            .arg("--config")
            .arg(&env.config)
            .args(["recover", "--group", "g", "--to", "latest-app"])
            .output()
            .unwrap(),
        "recover",
    );
    assert!(std::fs::read(env.disk("d0")).unwrap() == at_bookmark);
    svc.stop();
}

/// One disk of `scsi-ids --json`: name, id, id-source, status.
type Row = (String, String, String, String);

/// `scsi-ids --json` as rows per disk, and the exit code.
fn ids(o: &Output) -> (Option<i32>, Vec<Row>) {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let s = |d: &serde_json::Value, k: &str| d[k].as_str().unwrap_or("-").to_string();
    let rows = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (s(d, "name"), s(d, "id"), s(d, "id-source"), s(d, "status")))
        .collect();
    (o.status.code(), rows)
}

#[test]
fn scsi_ids_without_vpd_pages_take_the_ids_from_udev_147s_database() {
    let bin = static_bin!();
    for case in ["vmware-like", "no-uuid", "mixed"] {
        let capture = fixture(&format!("scsi/{case}"));
        let d = tempfile::tempdir().unwrap();
        // The scsi_id --export outputs the capture guest wrote, one per disk.
        let exports = d.path().join("exports");
        std::fs::create_dir(&exports).unwrap();
        let st = Command::new("tar")
            .arg("xzf")
            .arg(capture.join("full-capture.tar.gz"))
            .arg("-C")
            .arg(&exports)
            .args([
                "--strip-components=2",
                "--wildcards",
                "guest/scsi_id/*.export",
            ])
            .status()
            .unwrap();
        assert!(st.success());
        let root = d.path().join("root");
        let o = Command::new("sh")
            .arg(fixture("old-kernel/make-udev147-root.sh"))
            .arg(capture.join("sys"))
            .arg(&exports)
            .arg(&root)
            .output()
            .unwrap();
        ok(o, "make-udev147-root.sh");
        // A 2.6.32 sysfs: no VPD pages, no inquiry, no wwid anywhere.
        let left: Vec<_> = tree(&root.join("sys"))
            .into_keys()
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("vpd_pg") || n == "inquiry" || n == "wwid"
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");

        let from_vpd = ids(&support::run(&[
            "scsi-ids",
            "--root",
            capture.to_str().unwrap(),
            "--json",
        ]));
        let from_db = ids(&old_mtkit(&bin)
            .args(["scsi-ids", "--root", root.to_str().unwrap(), "--json"])
            .output()
            .unwrap());
        assert_eq!(from_db.0, from_vpd.0, "{case}: exit code");
        assert_eq!(from_db.1.len(), from_vpd.1.len(), "{case}");
        for (db, vpd) in from_db.1.iter().zip(&from_vpd.1) {
            // Same disk, same ID and status; only the source differs.
            assert_eq!((&db.0, &db.1, &db.3), (&vpd.0, &vpd.1, &vpd.3), "{case}");
            let want = if vpd.1 == "-" { "-" } else { "udev" };
            assert_eq!(db.2, want, "{case} {}", db.0);
        }
        // And what udev's own scsi_id printed in the capture guest.
        let summary = std::fs::read_to_string(capture.join("expected/summary.tsv")).unwrap();
        for line in summary.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            if f[2] != "0" {
                continue; // not a disk
            }
            let want = if f[10] == "0" { f[9] } else { "-" };
            let got = from_db.1.iter().find(|r| r.0 == f[0]).unwrap();
            assert_eq!(got.1, want, "{case} {}", f[0]);
        }
    }
    // (mixed's vendor-specific and serial-only IDs are "weak" from either source.)
}

#[test]
fn static_binary_seals_an_installed_centos6_mt_as_the_host_build_does() {
    let bin = static_bin!();
    // One installed, applied CentOS 6.6 master target, copied: the host build seals one
    // copy, the static binary under the filter the other.
    let d = installed_root::installed(installed_root::Kind::CentOs6);
    let (host_root, old_root) = (d.path().join("r"), d.path().join("old"));
    copy_tree(&host_root, &old_root);
    let seal = |root: &Path| {
        vec![
            "seal".to_string(),
            "--root".into(),
            root.display().to_string(),
        ]
    };
    ok(
        support::mtkit().args(seal(&host_root)).output().unwrap(),
        "host seal",
    );
    let o = ok(
        old_mtkit(&bin).args(seal(&old_root)).output().unwrap(),
        "static seal under the filter",
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    // Logs carry the time of the run.
    let untimed = |root: &Path| {
        let re = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
        let mut t = tree(root);
        for (_, (_, bytes)) in t.iter_mut() {
            if let Ok(text) = std::str::from_utf8(bytes) {
                *bytes = re.replace_all(text, "TIME").into_owned().into_bytes();
            }
        }
        t
    };
    assert_same_tree(&untimed(&old_root), &untimed(&host_root));
    // Sealed: the machine's SSH host keys are gone.
    assert!(!old_root.join("etc/ssh/ssh_host_rsa_key").exists());
}
