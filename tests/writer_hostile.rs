//! Hostile clients against the real service (`mtkit writer run`), one test per attack of
//! issue 10 ("a way in", "a way down"), each asserting the defended outcome: a certificate
//! naming nobody opens no listed group, LIST and refusals tell a client nothing it may not
//! see, a slowloris negotiation is cut at its deadline without taking working clients'
//! slots, a trickled WRITE payload is cut and starves no other group, the metrics port
//! cannot take descriptors from the journal, and the service does not spin on EMFILE.
//! Timeouts are set short in the config so that every attack plays out in seconds.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::have;
use support::writer_env::{Env, Nbd, control, header, metrics, point_ids};

const MIB: u64 = 1 << 20;
const NBD_WRITE: u16 = 1;

/// Short limits: a 2 s negotiation deadline, 1 s to send a request, 4 connections
/// negotiating and 8 replicating at most, 64 KiB requests and a 256 KiB buffer budget.
const LIMITS: &str = "negotiation-timeout = \"2s\"\nrequest-timeout = \"1s\"\n\
                      max-negotiating = 4\nmax-connections = 8\n\
                      max-request-size = \"64K\"\nmax-buffer = \"256K\"\n";

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// True once the server has closed `s` (EOF or reset); reads what it sent meanwhile.
fn is_closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut sink = [0u8; 4096];
    let closed = loop {
        match s.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// Sends `bytes` one every `every` on each socket until all are closed or `total` has
/// passed; returns, per socket, how long after the start the server closed it.
fn trickle(
    socks: Vec<TcpStream>,
    bytes: &[u8],
    every: Duration,
    total: Duration,
) -> Vec<Option<Duration>> {
    let t0 = Instant::now();
    let mut socks: Vec<(TcpStream, Option<Duration>)> =
        socks.into_iter().map(|s| (s, None)).collect();
    let mut i = 0;
    while t0.elapsed() < total && socks.iter().any(|(_, c)| c.is_none()) {
        for (s, closed) in socks.iter_mut().filter(|(_, c)| c.is_none()) {
            if is_closed(s) || s.write_all(&bytes[i % bytes.len()..][..1]).is_err() {
                *closed = Some(t0.elapsed());
            }
        }
        i += 1;
        std::thread::sleep(every);
    }
    socks.into_iter().map(|(_, c)| c).collect()
}

/// A valid negotiation, sent a byte at a time: client flags, then NBD_OPT_LIST again and
/// again (each one answered, so the server never sees a malformed frame).
fn slow_negotiation() -> Vec<u8> {
    let mut b = 3u32.to_be_bytes().to_vec();
    for _ in 0..64 {
        b.extend_from_slice(b"IHAVEOPT");
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
    }
    b
}

#[test]
fn slowloris_negotiations_are_cut_at_the_deadline_and_take_no_working_slot() {
    let env = Env::with_writer(&[("d0", "vm1", MIB)], LIMITS);
    let _svc = env.start();
    let mut working = Nbd::connect(env.port, "d0").unwrap();
    working.write(0, &[1; 4096]).unwrap();
    // 12 sockets: more than the negotiating cap (4) and the connection cap (8).
    let slow: Vec<TcpStream> = (0..12).map(|_| connect(env.port)).collect();
    let attack = std::thread::spawn(|| {
        trickle(
            slow,
            &slow_negotiation(),
            Duration::from_millis(200),
            Duration::from_secs(8),
        )
    });
    // The client already replicating is served throughout.
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        working.write(4096, &[2; 4096]).unwrap();
        working.flush().unwrap();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < Duration::from_millis(1500),
        "a write took {worst:?}"
    );
    // A new client gets in while the attack goes on: negotiating sockets past their grace
    // make room, and they never count against the 8 replicating slots.
    let t = Instant::now();
    let mut late = Nbd::connect(env.port, "d0").expect("a new client is let in");
    late.write(8192, &[3; 4096]).unwrap();
    let waited = t.elapsed();
    let closed = attack.join().unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "the new client waited {waited:?}"
    );
    // Every slowloris socket was closed, none later than the 2 s deadline plus the time it
    // waited in the backlog for a slot and the accept loop's poll.
    for (i, c) in closed.iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("socket {i} still open after 8 s: {}", env.log()));
        assert!(c < Duration::from_secs(6), "socket {i} closed after {c:?}");
    }
    let log = env.log();
    assert!(log.contains("still negotiating"), "{log}");
    working.write(0, &[4; 4096]).unwrap();
    let mut b = [0u8; 4096];
    working.read(8192, &mut b).unwrap();
    assert_eq!(b, [3; 4096]);
}

#[test]
fn a_trickled_write_payload_is_cut_and_starves_no_other_group() {
    let env = Env::with_writer(&[("d0", "vm1", MIB), ("d1", "vm2", MIB)], LIMITS);
    let _svc = env.start();
    for g in ["vm1", "vm2"] {
        control(
            &env.control(),
            &format!(r#"{{"cmd":"bookmark","group":"{g}","label":"base"}}"#),
        )
        .unwrap();
    }
    // Four connections of group vm1 each send a 64 KiB WRITE header and then its payload
    // a byte at a time: together the whole 256 KiB budget.
    let mut attackers = Vec::new();
    for i in 0..4u64 {
        let mut s = Nbd::connect(env.port, "d0").unwrap().into_stream();
        s.write_all(&header(NBD_WRITE, i, i * 65536, 65536))
            .unwrap();
        s.write_all(&[0xee; 16]).unwrap();
        attackers.push(s);
    }
    let attack = std::thread::spawn(|| {
        trickle(
            attackers,
            &[0xee],
            Duration::from_millis(200),
            Duration::from_secs(12),
        )
    });
    // Group vm2's client is answered at once, every time.
    let mut victim = Nbd::connect(env.port, "d1").unwrap();
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        victim.write(0, &[7; 4096]).unwrap();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    victim.flush().unwrap();
    assert!(
        worst < Duration::from_millis(1500),
        "vm2's write took {worst:?}"
    );
    // The payloads have a deadline: 1 s plus 1 s for 64 KiB at 64 KiB/s, counted from when
    // the server starts reading them. vm1's share (half the budget while alone: room is
    // kept for one more group, a third once vm2 is in) holds two, then one at a time: they
    // are cut at about 2, 2, 4 and 6 s, or 2, 4, 6 and 8 s when vm2 came in first.
    let mut closed: Vec<Duration> = attack
        .join()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.unwrap_or_else(|| panic!("attacker {i} still open after 12 s: {}", env.log()))
        })
        .collect();
    closed.sort();
    for (k, c) in closed.iter().enumerate() {
        let bound = Duration::from_millis(2000 * (k as u64 + 1) + 1500);
        assert!(
            *c < bound,
            "attacker {k} (by closing order) closed after {c:?}: {closed:?}"
        );
    }
    // Nothing of the cut WRITEs reached the disk.
    let d0 = std::fs::read(env.disk("d0")).unwrap();
    assert!(d0.iter().all(|&b| b == 0), "a partial payload was written");
    // The budget is free again: vm1 is served.
    let mut back = Nbd::connect(env.port, "d0").unwrap();
    back.write(0, &[9; 65536]).unwrap();
    back.flush().unwrap();
}

#[test]
fn metrics_connections_are_capped_and_cut_at_their_deadline() {
    let env = Env::new(&[("d0", "vm1", MIB)]);
    let _svc = env.start();
    let mut socks: Vec<TcpStream> = (0..40).map(|_| connect(env.metrics_port)).collect();
    for s in &mut socks {
        s.write_all(b"G").unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let open: Vec<TcpStream> = socks
        .into_iter()
        .filter_map(|mut s| (!is_closed(&mut s)).then_some(s))
        .collect();
    assert!(
        open.len() <= 8,
        "{} metrics connections held open",
        open.len()
    );
    // The held ones trickle a request: the 5 s deadline is for the whole request.
    let closed = trickle(
        open,
        b"ET /metrics",
        Duration::from_millis(500),
        Duration::from_secs(9),
    );
    for (i, c) in closed.iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("metrics connection {i} still open after 9 s"));
        assert!(
            c < Duration::from_secs(7),
            "metrics connection {i} closed after {c:?}"
        );
    }
    assert!(metrics(env.metrics_port).contains("mtkit_buffer_limit_bytes"));
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_descriptor_flood_leaves_the_journal_working_and_nothing_spinning() {
    // 1 MiB segments: the overwrite below needs new segment files during the flood.
    let env = Env::with_writer(&[("d0", "vm1", 4 * MIB)], "journal-segment-size = \"1M\"\n");
    let svc = env.start_with_nofile(Some(256));
    let mut working = Nbd::connect(env.port, "d0").unwrap();
    // Initial sync writes 2 MiB straight through; after the baseline, overwriting them
    // saves 2 MiB of old data in the journal.
    let old: Vec<u8> = (0..65536u32).map(|i| (i % 253) as u8).collect();
    let new: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    for k in 0..32u64 {
        working.write(k * 65536, &old).unwrap();
    }
    working.flush().unwrap();
    control(
        &env.control(),
        r#"{"cmd":"bookmark","group":"vm1","label":"base"}"#,
    )
    .unwrap();
    // More metrics connections than the service has descriptors, each sending a byte now
    // and then (as in the report), and NBD clients connecting while they are held.
    let connect = |port: u16| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
    };
    let mut held: Vec<TcpStream> = (0..300).filter_map(|_| connect(env.metrics_port)).collect();
    held.extend((0..20).filter_map(|_| connect(env.port)));
    let flooded = held.len();
    assert!(flooded > 256, "only {flooded} connections made");
    let stop = Arc::new(AtomicBool::new(false));
    let keep = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &mut held {
                    let _ = s.write_all(b"G");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(svc.child.id());
    let t = Instant::now();
    // Replication goes on: 2 MiB overwritten (two new journal segments), and a point.
    for k in 0..32u64 {
        working
            .write(k * 65536, &new)
            .unwrap_or_else(|e| panic!("write {k}: {e}: {}", env.log()));
    }
    working
        .flush()
        .unwrap_or_else(|e| panic!("flush: {e}: {}", env.log()));
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t.elapsed()));
    let ticks = cpu_ticks(svc.child.id()) - before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let secs = t.elapsed().as_secs_f64();
    assert!(
        (ticks as f64 / hz as f64) < 0.5 * secs,
        "the service used {ticks} ticks in {secs:.1} s under the flood"
    );
    stop.store(true, Ordering::Relaxed);
    keep.join().unwrap();
    // Everything answers again: a new client, the control socket, metrics.
    let mut fresh = Nbd::connect(env.port, "d0").unwrap();
    let mut b = vec![0u8; 65536];
    fresh.read(31 * 65536, &mut b).unwrap();
    assert_eq!(b, new);
    assert_eq!(point_ids(&env.control(), "vm1").len(), 2, "{}", env.log());
    assert!(metrics(env.metrics_port).contains("mtkit_points{group=\"vm1\"} 2"));
    assert!(env.log().contains("open-file limit"), "{}", env.log());
}

#[test]
fn a_label_with_control_characters_is_refused_and_changes_nothing() {
    let env = Env::new(&[("d0", "vm1", MIB)]);
    for label in ["a\u{1b}[2Jb", "two\nlines", "bell\u{7}"] {
        let out = env.mtkit(&["bookmark", "--group", "vm1", "--label", label]);
        assert_eq!(out.status.code(), Some(2), "{label:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("control character"), "{err}");
    }
    assert!(
        !env.path("journal").exists(),
        "a refused bookmark touched the journal"
    );
    let out = env.mtkit(&["bookmark", "--group", "vm1", "--label", "vor-Änderung 1"]);
    assert!(out.status.success(), "{out:?}");
}

/// NBD_OPT_LIST in the clear: (name, description) of each export.
fn list(port: u16) -> Vec<(String, String)> {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = [0u8; 18];
    s.read_exact(&mut hello).unwrap();
    s.write_all(&3u32.to_be_bytes()).unwrap();
    let mut opt = b"IHAVEOPT".to_vec();
    opt.extend_from_slice(&3u32.to_be_bytes());
    opt.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&opt).unwrap();
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 20];
        s.read_exact(&mut h).unwrap();
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let mut data = vec![0u8; u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize];
        s.read_exact(&mut data).unwrap();
        if kind == 1 {
            return out;
        }
        let n = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        out.push((
            String::from_utf8(data[4..4 + n].to_vec()).unwrap(),
            String::from_utf8(data[4 + n..].to_vec()).unwrap(),
        ));
    }
}

#[test]
fn list_names_exports_without_their_target_paths() {
    let env = Env::new(&[("d0", "vm1", MIB), ("d1", "vm2", MIB)]);
    let _svc = env.start();
    let got = list(env.port);
    assert_eq!(
        got,
        [
            ("d0".to_string(), "group vm1".to_string()),
            ("d1".to_string(), "group vm2".to_string())
        ]
    );
}

/// A client certificate signed by the CA in `pki` with `dn` as its subject and `sans`,
/// in a folder libnbd's `tls-certificates=` reads.
fn client_cert(
    pki: &Path,
    out: &Path,
    dn: &[(rcgen::DnType, rcgen::DnValue)],
    sans: Vec<rcgen::SanType>,
) {
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca_key = rcgen::KeyPair::from_pem(&read("ca-key.pem")).unwrap();
    // The CA's subject is its CN alone (src/writer/certs.rs): the issuer name to sign with.
    let ca_der = CertificateDer::from_pem_slice(read("ca-cert.pem").as_bytes()).unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name.push(
        rcgen::DnType::CommonName,
        mtkit::writer::access::cert_identity(&ca_der).unwrap(),
    );
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in dn {
        p.distinguished_name.push(t.clone(), v.clone());
    }
    p.subject_alt_names = sans;
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("ca-cert.pem"), read("ca-cert.pem")).unwrap();
    std::fs::write(out.join("client-cert.pem"), cert.pem()).unwrap();
    std::fs::write(out.join("client-key.pem"), key.serialize_pem()).unwrap();
}

fn nbdinfo(args: &[&str]) -> (bool, String) {
    let out = Command::new("nbdinfo").args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_certificate_without_a_usable_identity_opens_no_listed_group() {
    require!(have("nbdinfo"), "nbdinfo not installed (libnbd-bin)");
    use rcgen::{DnType, DnValue, SanType};
    let keys = tempfile::tempdir().unwrap();
    let pki = keys.path().join("pki");
    let made = Command::new(env!("CARGO_BIN_EXE_mtkit"))
        .args([
            "writer",
            "certs",
            "--out",
            pki.to_str().unwrap(),
            "--client",
            "alice",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let env = Env::with_writer(
        &[("d0", "vm1", MIB), ("d1", "vm2", MIB)],
        &format!(
            "[writer.tls]\ndir = \"{}\"\n[[writer.group]]\nname = \"vm1\"\nclients = [\"alice\"]\n",
            pki.display()
        ),
    );
    let _svc = env.start();
    let org = (
        DnType::OrganizationName,
        DnValue::Utf8String("Contoso".into()),
    );
    // As in the report: O= only and an IP SAN.
    let nameless = keys.path().join("nameless");
    client_cert(
        &pki,
        &nameless,
        std::slice::from_ref(&org),
        vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
    );
    // A CN that is not UTF-8 (a BMPString "ÿa": bytes 00 ff 00 61), beside a DNS SAN
    // naming the listed client: the SAN must not stand in for the unusable CN.
    let bad_cn = keys.path().join("bad-cn");
    let bmp = rcgen::string::BmpString::from_utf16be(vec![0, 0xff, 0, 0x61]).unwrap();
    client_cert(
        &pki,
        &bad_cn,
        &[org, (DnType::CommonName, DnValue::BmpString(bmp))],
        vec![SanType::DnsName("alice".try_into().unwrap())],
    );
    let uri = |export: &str, certs: &Path| {
        format!(
            "nbds://127.0.0.1:{}/{export}?tls-certificates={}",
            env.port,
            certs.display()
        )
    };
    for certs in [&nameless, &bad_cn] {
        let (ok, text) = nbdinfo(&["--list", &uri("", certs)]);
        assert!(ok, "{text}");
        assert!(
            text.contains("d1") && !text.contains("d0"),
            "{certs:?} lists: {text}"
        );
        assert!(
            !text.contains(env.dir.path().to_str().unwrap()),
            "a target path: {text}"
        );
        let (ok, text) = nbdinfo(&[&uri("d0", certs)]);
        assert!(!ok, "{certs:?} opened vm1's disk: {text}");
        assert!(!text.contains("vm1"), "the refusal names the group: {text}");
        let (ok, text) = nbdinfo(&[&uri("d1", certs)]);
        assert!(
            ok,
            "an unlisted group stays open to the CA's clients: {text}"
        );
    }
    let alice = pki.join("clients/alice");
    let (ok, text) = nbdinfo(&["--list", &uri("", &alice)]);
    assert!(ok && text.contains("d0") && text.contains("d1"), "{text}");
    let (ok, text) = nbdinfo(&[&uri("d0", &alice)]);
    assert!(ok, "{text}");
    assert!(env.log().contains("not allowed"), "{}", env.log());
}
