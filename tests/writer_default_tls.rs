//! A default appliance works and is secure: the `mtkit init` starter, with only its ports
//! moved off the well-known ones and the system at a temp `--root`, starts `writer run`
//! with forced TLS on a CA the appliance made for itself; a client certificate from
//! `mtkit writer certs --client x` lets qemu-img and nbdinfo in over TLS, and a plain
//! client is answered NBD_REP_ERR_TLS_REQD.

mod common;
mod nbd_support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, mtkit, stderr};
use mtkit::writer::nbd::proto::*;
use nbd_support::Raw;

const MIB: usize = 1 << 20;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(prog: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(prog).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The starter config with its ports moved (tests run side by side) and one target disk.
fn starter(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("appliance.toml");
    let out = mtkit()
        .args(["init", "--out", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&config).unwrap();
    // The defaults this test is about: a network listen address, no [writer.tls], secure.
    assert!(text.contains("\nlisten = \"0.0.0.0:10809\"\n"), "{text}");
    assert!(text.contains("\ninsecure = false\n"), "{text}");
    assert!(text.contains("\nallow-unsafe-journal = false\n"), "{text}");
    assert!(!text.contains("\n[writer.tls]"), "{text}");
    let text = text
        .replace(
            "\nlisten = \"0.0.0.0:10809\"\n",
            &format!("\nlisten = \"0.0.0.0:{port}\"\n"),
        )
        .replace(
            "\nmetrics-listen = \"127.0.0.1:9810\"\n",
            "\nmetrics-listen = \"\"\n",
        )
        // The journal is under a temp --root, on whatever / is (with no mount table there
        // to judge it by): started anyway, as the escape allows.
        .replace(
            "\nallow-unsafe-journal = false\n",
            "\nallow-unsafe-journal = true\n",
        )
        // A way to log in, without which `build` refuses the appliance.
        .replace(
            "\nssh-authorized-keys = []\n",
            &format!("\nssh-authorized-keys = [\"{}\"]\n", common::SSH_KEY),
        );
    let text = format!(
        "{text}\n[[writer.disk]]\nname = \"vm1-disk0\"\npath = \"/srv/vm1-disk0.img\"\ngroup = \"vm1\"\nsize = \"8M\"\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn the_init_defaults_serve_over_tls_with_the_appliances_own_ca() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("srv")).unwrap();
    let port = free_port();
    let config = starter(t.path(), port);
    let cfg = config.to_str().unwrap();
    let r = root.to_str().unwrap();

    // `kickstart` accepts the defaults: the same checks the service starts with.
    let out = mtkit()
        .args(["--config", cfg, "kickstart", "-o", "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let log = t.path().join("service.log");
    let child = mtkit()
        .args(["--config", cfg, "writer", "run", "--root", r])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut svc = Service(child);
    let control = root.join("run/mtkit/writer.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(control.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        if let Some(st) = svc.0.try_wait().unwrap() {
            panic!("writer run exited {st}: {}", common::read(&log));
        }
        assert!(
            Instant::now() < deadline,
            "not started: {}",
            common::read(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = common::read(&log);
    assert!(
        text.contains("forced TLS with the appliance's own CA"),
        "{text}"
    );

    // The CA and server certificate it made: private folder, private keys.
    use std::os::unix::fs::PermissionsExt;
    let tls = root.join("etc/mtkit/tls");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tls), 0o700);
    assert_eq!(mode(&tls.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&tls.join("server-key.pem")), 0o600);
    let ca = std::fs::read(tls.join("ca-cert.pem")).unwrap();

    // A plain client: every option but ABORT gets TLS_REQD, nothing is served in the clear.
    let plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut c = Raw::greet(plain, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    c.send_option(OPT_LIST, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ERR_TLS_REQD);
    assert_eq!(c.go("vm1-disk0").reply, REP_ERR_TLS_REQD);

    // A client certificate, by default from the appliance's CA, which is reused.
    let out = mtkit()
        .args([
            "--config", cfg, "writer", "certs", "--root", r, "--client", "x",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(tls.join("ca-cert.pem")).unwrap(), ca);
    let x = tls.join("clients/x");
    assert_eq!(std::fs::read(x.join("ca-cert.pem")).unwrap(), ca);

    require!(
        have("nbdinfo") && have("qemu-img"),
        "nbdinfo/qemu-img not installed (libnbd-bin, qemu-utils)"
    );
    let uri = format!(
        "nbds://127.0.0.1:{port}/vm1-disk0?tls-certificates={}",
        x.display()
    );
    let (ok, json) = output("nbdinfo", &["--json", &uri]);
    assert!(ok, "{json}\n{}", common::read(&log));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["TLS"], true);
    assert_eq!(v["exports"][0]["export-size"], 8 * MIB as u64);
    // Without the certificate the same URI fails.
    let (ok, text) = output("nbdinfo", &[&format!("nbd://127.0.0.1:{port}/vm1-disk0")]);
    assert!(!ok, "{text}");

    let src = nbd_support::image(t.path(), "src.img", 8 * MIB, |i| (i % 251) as u8);
    let creds = format!("tls-creds-x509,id=tls0,dir={},endpoint=client", x.display());
    let opts = format!("driver=nbd,host=127.0.0.1,port={port},export=vm1-disk0,tls-creds=tls0");
    let (ok, text) = output(
        "qemu-img",
        &[
            "convert",
            "-n",
            "--object",
            &creds,
            "-f",
            "raw",
            "--target-image-opts",
            src.to_str().unwrap(),
            &opts,
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = output(
        "qemu-img",
        &[
            "compare",
            "--object",
            &creds,
            "--image-opts",
            &format!(
                "driver=raw,file.driver=file,file.filename={}",
                src.display()
            ),
            &opts,
        ],
    );
    assert!(ok && text.contains("identical"), "{text}");

    // SIGTERM drains and exits 0; the data is on the target file under the root.
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(svc.0.id() as i32, libc::SIGTERM) };
    let st = svc.0.wait().unwrap();
    assert!(st.success(), "{st}: {}", common::read(&log));
    assert!(std::fs::read(root.join("srv/vm1-disk0.img")).unwrap() == std::fs::read(&src).unwrap());
}

#[test]
fn apply_makes_the_ca_the_service_reuses_it_and_every_guide_says_how_to_get_a_client_cert() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    let st = Command::new("bash")
        .arg(common::fixture("make-centos66-root.sh"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success(), "make-centos66-root.sh failed");
    let r = root.to_str().unwrap();
    let port = free_port();
    let config = starter(t.path(), port);
    let cfg = config.to_str().unwrap();

    // The dry run lists the TLS files and writes none; the real run makes them.
    let out = mtkit()
        .args(["--config", cfg, "apply", "--root", r, "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("would create etc/mtkit/tls/ca-key.pem (tls)"),
        "{text}"
    );
    assert!(!root.join("etc/mtkit/tls").exists());
    let out = mtkit()
        .args(["--config", cfg, "apply", "--root", r])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let tls = root.join("etc/mtkit/tls");
    let ca = std::fs::read(tls.join("ca-cert.pem")).unwrap();
    let server = std::fs::read(tls.join("server-cert.pem")).unwrap();

    // doctor: the writer starts with this config, and how sources get certificates.
    let out = mtkit()
        .args([
            "--config",
            cfg,
            "doctor",
            "--offline",
            "--json",
            "--root",
            r,
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("no {id}: {v:#}"))
            .clone()
    };
    assert_eq!(row("writer-config")["status"], "pass");
    let f = row("writer-tls");
    assert_eq!(f["status"], "pass", "{f}");
    assert!(f["found"].as_str().unwrap().contains("own CA"), "{f}");
    assert!(
        f["remedy"]
            .as_str()
            .unwrap()
            .contains("mtkit writer certs --client NAME"),
        "{f}"
    );

    // The service starts on what apply made, and replaces nothing.
    std::fs::create_dir_all(root.join("srv")).unwrap();
    let log = t.path().join("service.log");
    let child = mtkit()
        .args(["--config", cfg, "writer", "run", "--root", r])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut svc = Service(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = svc.0.try_wait().unwrap() {
            panic!("writer run exited {st}: {}", common::read(&log));
        }
        assert!(Instant::now() < deadline, "{}", common::read(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(svc.0.id() as i32, libc::SIGTERM) };
    assert!(svc.0.wait().unwrap().success(), "{}", common::read(&log));
    assert!(!common::read(&log).contains("first start"));
    assert_eq!(std::fs::read(tls.join("ca-cert.pem")).unwrap(), ca);
    assert_eq!(std::fs::read(tls.join("server-cert.pem")).unwrap(), server);

    // The build's summary says it too.
    let out_dir = t.path().join("out");
    let out = mtkit()
        .args([
            "--config",
            cfg,
            "build",
            "--no-media",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = common::read(&out_dir.join("SUMMARY.txt"));
    assert!(
        summary.contains("Forced TLS with client certificates"),
        "{summary}"
    );
    assert!(
        summary.contains("mtkit writer certs --client NAME"),
        "{summary}"
    );
    assert!(
        summary.contains("/etc/mtkit/tls/clients/NAME/"),
        "{summary}"
    );
}
