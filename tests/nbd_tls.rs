//! TLS for the NBD server: `mtkit writer certs`, qemu and libnbd clients with client
//! certificates, refused clients, per-group access by certificate identity.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use mtkit::config::WriterTls;
use mtkit::writer::FileExport;
use mtkit::writer::access::{allowed, cert_identity};
use mtkit::writer::certs::server_config;
use mtkit::writer::certs::{Expiry, leaf};
use mtkit::writer::export::{ClientInfo, Export, ExportInfo, ExportResolver, OpenError};
use mtkit::writer::nbd::proto::*;
use mtkit::writer::nbd::{ServerOptions, StaticResolver};
use support::have;
use support::nbd::{Raw, Running, image, socketpair};

const MIB: usize = 1 << 20;

/// Exports of group "vm1" (clients: alice) and group "open" (no list), recording who
/// opened what.
struct Groups {
    inner: StaticResolver,
    seen: Mutex<Vec<(String, Option<String>)>>,
}

impl ExportResolver for Groups {
    fn list(&self, c: &ClientInfo) -> Vec<ExportInfo> {
        self.inner.list(c)
    }
    fn open(&self, name: &str, c: &ClientInfo) -> std::result::Result<Arc<dyn Export>, OpenError> {
        self.seen
            .lock()
            .unwrap()
            .push((name.to_owned(), c.identity.clone()));
        let group_clients: Vec<String> = if name.starts_with("vm1-") {
            vec!["alice".into()]
        } else {
            vec![]
        };
        if !allowed(&group_clients, c) {
            return Err(OpenError::Refused {
                name: name.into(),
                reason: format!("{:?} may not open it", c.identity),
            });
        }
        self.inner.open(name, c)
    }
}

struct Setup {
    dir: tempfile::TempDir,
    pki: PathBuf,
    disk: PathBuf,
    groups: Arc<Groups>,
    srv: Running,
}

fn certs(out: &Path, clients: &[&str]) -> std::process::Output {
    let mut args = vec!["writer", "certs", "--out", out.to_str().unwrap()];
    for c in clients {
        args.extend(["--client", c]);
    }
    support::run(&args)
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = certs(&pki, &["alice", "bob"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let disk = image(dir.path(), "disk.img", 8 * MIB, |_| 0);
    let open = image(dir.path(), "open.img", MIB, |_| 0);
    let groups = Arc::new(Groups {
        inner: StaticResolver::new()
            .with(
                "vm1-disk0",
                "vm1",
                Arc::new(FileExport::open(&disk, false).unwrap()),
            )
            .with(
                "open",
                "open",
                Arc::new(FileExport::open(&open, false).unwrap()),
            ),
        seen: Mutex::new(Vec::new()),
    });
    let config = server_config(&WriterTls {
        dir: Some(pki.clone()),
        ..WriterTls::default()
    })
    .unwrap();
    let srv = Running::start(
        groups.clone(),
        ServerOptions {
            tls: Some(config),
            ..ServerOptions::default()
        },
        dir.path(),
    );
    Setup {
        dir,
        pki,
        disk,
        groups,
        srv,
    }
}

fn output(prog: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(prog).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn nbds(s: &Setup, export: &str, certs: &Path) -> String {
    format!(
        "nbds://127.0.0.1:{}/{export}?tls-certificates={}",
        s.srv.port,
        certs.display()
    )
}

#[test]
fn certs_layout_modes_and_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    assert!(certs(&pki, &["ps-azure-01"]).status.success());
    for f in [
        "ca-cert.pem",
        "ca-key.pem",
        "server-cert.pem",
        "server-key.pem",
    ] {
        assert!(pki.join(f).is_file(), "{f}");
    }
    let client = pki.join("clients/ps-azure-01");
    for f in ["ca-cert.pem", "client-cert.pem", "client-key.pem"] {
        assert!(client.join(f).is_file(), "{f}");
    }
    for key in [
        pki.join("ca-key.pem"),
        pki.join("server-key.pem"),
        client.join("client-key.pem"),
    ] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let ca = std::fs::read(pki.join("ca-cert.pem")).unwrap();
    assert_eq!(std::fs::read(client.join("ca-cert.pem")).unwrap(), ca);
    // The client certificate names the client.
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_file(client.join("client-cert.pem")).unwrap();
    assert_eq!(cert_identity(&der).as_deref(), Some("ps-azure-01"));

    // Adding a client later keeps the CA, the server cert and the existing client.
    let server = std::fs::read(pki.join("server-cert.pem")).unwrap();
    let old = std::fs::read(client.join("client-cert.pem")).unwrap();
    assert!(certs(&pki, &["ps-azure-02"]).status.success());
    assert_eq!(std::fs::read(pki.join("ca-cert.pem")).unwrap(), ca);
    assert_eq!(std::fs::read(pki.join("server-cert.pem")).unwrap(), server);
    assert_eq!(std::fs::read(client.join("client-cert.pem")).unwrap(), old);
    assert!(pki.join("clients/ps-azure-02/client-cert.pem").is_file());
    // ... and the new client is signed by the same CA: the server accepts it.
    server_config(&WriterTls {
        dir: Some(pki.clone()),
        ..WriterTls::default()
    })
    .unwrap();

    // Existing client without --force, and a bad name: exit 2, nothing changed.
    let out = certs(&pki, &["ps-azure-01"]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(support::stderr(&out).contains("--force"));
    assert_eq!(std::fs::read(client.join("client-cert.pem")).unwrap(), old);
    let out = certs(&pki, &["../evil"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("evil").exists());
}

#[test]
fn qemu_io_and_qemu_img_over_tls() {
    require!(
        have("qemu-io") && have("qemu-img"),
        "qemu-io/qemu-img not installed (qemu-utils)"
    );
    let s = setup();
    let creds = format!(
        "tls-creds-x509,id=tls0,dir={},endpoint=client",
        s.pki.join("clients/alice").display()
    );
    let opts = format!(
        "driver=nbd,host=127.0.0.1,port={},export=vm1-disk0,tls-creds=tls0",
        s.srv.port
    );
    let (ok, text) = output(
        "qemu-io",
        &[
            "--object",
            &creds,
            "--image-opts",
            &opts,
            "-c",
            "write -P 0x61 0 1M",
            "-c",
            "read -P 0x61 0 1M",
        ],
    );
    assert!(ok && !text.contains("fail"), "{text}");
    let src = image(s.dir.path(), "src.img", 8 * MIB, |i| (i % 253) as u8);
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
    let seen = s.groups.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, id)| id.as_deref() == Some("alice")),
        "{seen:?}"
    );
    let Setup { srv, disk, .. } = s;
    srv.shutdown();
    assert!(std::fs::read(&disk).unwrap() == std::fs::read(&src).unwrap());
}

#[test]
fn nbdinfo_and_nbdcopy_over_tls() {
    require!(
        have("nbdinfo") && have("nbdcopy"),
        "nbdinfo/nbdcopy not installed (libnbd-bin)"
    );
    let s = setup();
    let alice = s.pki.join("clients/alice");
    let (ok, json) = output("nbdinfo", &["--json", &nbds(&s, "vm1-disk0", &alice)]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["TLS"], true);
    assert_eq!(v["exports"][0]["export-size"], 8 * MIB as u64);
    let src = image(s.dir.path(), "src.img", 8 * MIB, |i| (i / 512) as u8);
    let (ok, text) = output(
        "nbdcopy",
        &[
            "--connections=2",
            src.to_str().unwrap(),
            &nbds(&s, "vm1-disk0", &alice),
        ],
    );
    assert!(ok, "{text}");
    // Read it back over TLS: big READ replies from several workers share one session.
    let back = s.dir.path().join("back.img");
    std::fs::write(&back, []).unwrap();
    let (ok, text) = output(
        "nbdcopy",
        &[
            "--connections=2",
            "--requests=16",
            &nbds(&s, "vm1-disk0", &alice),
            back.to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    let Setup { srv, disk, .. } = s;
    srv.shutdown();
    let want = std::fs::read(&src).unwrap();
    assert!(std::fs::read(&disk).unwrap() == want);
    assert!(
        std::fs::read(&back).unwrap() == want,
        "read back over TLS differs"
    );
}

#[test]
fn clients_without_valid_certificates_are_refused() {
    require!(have("nbdinfo"), "nbdinfo not installed (libnbd-bin)");
    let s = setup();
    // No client certificate: only the CA in the folder.
    let nocert = s.dir.path().join("nocert");
    std::fs::create_dir(&nocert).unwrap();
    std::fs::copy(s.pki.join("ca-cert.pem"), nocert.join("ca-cert.pem")).unwrap();
    // A certificate from another CA (the server's CA also copied, so the client trusts us).
    let other = s.dir.path().join("other");
    assert!(certs(&other, &["alice"]).status.success());
    let foreign = other.join("clients/alice");
    std::fs::copy(s.pki.join("ca-cert.pem"), foreign.join("ca-cert.pem")).unwrap();
    // An expired certificate from the right CA.
    let expired = s.dir.path().join("expired");
    std::fs::create_dir(&expired).unwrap();
    let ca_pem = std::fs::read_to_string(s.pki.join("ca-cert.pem")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(s.pki.join("ca-key.pem")).unwrap())
            .unwrap();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca_cn = cert_identity(&CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_cn);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let (cert, key) = leaf("alice", vec![], false, Expiry(2021, 1, 1), &issuer).unwrap();
    std::fs::write(expired.join("ca-cert.pem"), &ca_pem).unwrap();
    std::fs::write(expired.join("client-cert.pem"), cert).unwrap();
    std::fs::write(expired.join("client-key.pem"), key).unwrap();

    for (what, dir) in [
        ("no client cert", &nocert),
        ("unknown CA", &foreign),
        ("expired", &expired),
    ] {
        let (ok, text) = output("nbdinfo", &[&nbds(&s, "vm1-disk0", dir)]);
        assert!(!ok, "{what}: {text}");
        assert!(
            text.to_lowercase().contains("tls") || text.contains("handshake"),
            "{what}: {text}"
        );
    }
    // Plain text against the TLS server.
    let (ok, text) = output("nbdinfo", &[&s.srv.uri("vm1-disk0")]);
    assert!(!ok, "{text}");
    // Another group's client.
    let (ok, text) = output(
        "nbdinfo",
        &[&nbds(&s, "vm1-disk0", &s.pki.join("clients/bob"))],
    );
    assert!(!ok, "bob may not open vm1's disks: {text}");
    let (ok, text) = output("nbdinfo", &[&nbds(&s, "open", &s.pki.join("clients/bob"))]);
    assert!(
        ok,
        "a group without a client list is open to the CA's clients: {text}"
    );
    // A client added later (CA loaded back from ca-key.pem, as for the expired one above)
    // is accepted: so the expired one failed for its dates, not its signature.
    assert!(certs(&s.pki, &["carol"]).status.success());
    let (ok, text) = output(
        "nbdinfo",
        &[&nbds(&s, "open", &s.pki.join("clients/carol"))],
    );
    assert!(ok, "{text}");
    let seen = s.groups.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&("vm1-disk0".into(), Some("bob".into()))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("open".into(), Some("carol".into()))),
        "{seen:?}"
    );
    // None of the refused TLS clients got as far as opening an export.
    assert!(seen.iter().all(|(_, id)| id.is_some()), "{seen:?}");
}

#[test]
fn forced_tls_answers_plain_options_with_tls_reqd() {
    let s = setup();
    let (c, t) = socketpair(&s.srv.server);
    let mut c = Raw::greet(c, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    c.send_option(OPT_LIST, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ERR_TLS_REQD);
    assert_eq!(c.go("vm1-disk0").reply, REP_ERR_TLS_REQD);
    c.send_option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ERR_TLS_REQD);
    c.send_option(OPT_ABORT, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ACK);
    assert!(c.closed());
    assert_eq!(t.join().unwrap(), "ok");
    // EXPORT_NAME cannot be refused with an error: the session ends.
    let (c, t) = socketpair(&s.srv.server);
    let mut c = Raw::greet(c, FLAG_C_FIXED_NEWSTYLE);
    c.send_option(OPT_EXPORT_NAME, b"vm1-disk0");
    assert!(c.closed());
    assert!(t.join().unwrap().contains("TLS required"));
    assert!(
        s.groups.seen.lock().unwrap().is_empty(),
        "nothing opened in the clear"
    );
}

#[test]
fn rustls_client_starttls_twice_and_identity() {
    let s = setup();
    let (sock, t) = socketpair(&s.srv.server);
    let mut c = Raw::greet(sock, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    c.send_option(OPT_STARTTLS, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ACK);

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let alice = s.pki.join("clients/alice");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(alice.join("ca-cert.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(alice.join("client-cert.pem")).unwrap()],
            PrivateKeyDer::from_pem_file(alice.join("client-key.pem")).unwrap(),
        )
        .unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = Raw {
        s: rustls::StreamOwned::new(conn, c.s),
    };
    tls.send_option(OPT_STARTTLS, &[]);
    assert_eq!(tls.reply().unwrap().reply, REP_ERR_INVALID);
    assert_eq!(tls.go("vm1-disk0").reply, REP_ACK);
    tls.request(CMD_WRITE, CMD_FLAG_FUA, 1, 4096, 512);
    tls.s.write_all(&[0x77; 512]).unwrap();
    assert_eq!(
        tls.simple_reply().unwrap(),
        SimpleReply {
            error: 0,
            handle: 1
        }
    );
    tls.request(CMD_DISC, 0, 2, 0, 0);
    tls.s.flush().unwrap();
    assert!(tls.closed());
    assert_eq!(t.join().unwrap(), "ok");
    assert_eq!(
        s.groups.seen.lock().unwrap().as_slice(),
        &[("vm1-disk0".to_string(), Some("alice".to_string()))]
    );
    assert!(
        std::fs::read(&s.disk).unwrap()[4096..4608]
            .iter()
            .all(|&b| b == 0x77)
    );
}

#[test]
fn server_options_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    assert!(certs(&pki, &[]).status.success());
    let mut w = mtkit::config::Writer {
        tls: Some(WriterTls {
            dir: Some(pki.clone()),
            ..WriterTls::default()
        }),
        ..mtkit::config::Writer::default()
    };
    let o = ServerOptions::from_config(&w).unwrap();
    assert!(o.tls.is_some());
    assert_eq!(o.max_request_size, 32 << 20);
    assert_eq!(o.max_connections, 64);
    assert_eq!(
        o.idle_timeout,
        Some(std::time::Duration::from_secs(15 * 60))
    );
    // A missing key file is the user's mistake: exit code 2, with the path.
    w.tls.as_mut().unwrap().key = Some(dir.path().join("nope.pem"));
    let e = ServerOptions::from_config(&w).unwrap_err();
    assert_eq!(mtkit::error::exit_code(&e), 2);
    assert!(format!("{e:#}").contains("nope.pem"), "{e:#}");
}
