//! Malformed and hostile input against the NBD server over socket pairs: every class gets
//! the NBD error proto.md asks for, or a closed connection, and the disk stays unchanged.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mtkit::writer::nbd::proto::{self, *};
use mtkit::writer::nbd::{Server, ServerOptions};
use support::nbd::{Files, Raw, Running, image, socketpair};

const SIZE: usize = 1 << 20;
const FILL: u8 = 0x3c;

struct Fixture {
    _dir: tempfile::TempDir,
    disk: PathBuf,
    ro: PathBuf,
    server: Server,
}

fn fixture_with(opts: ServerOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "disk.img", SIZE, |_| FILL);
    let ro = image(dir.path(), "ro.img", SIZE, |_| FILL);
    let files = Files::new(&[("disk", &disk, false), ("ro", &ro, true)]);
    Fixture {
        server: Server::new(Arc::new(files), opts),
        disk,
        ro,
        _dir: dir,
    }
}

fn fixture() -> Fixture {
    fixture_with(ServerOptions {
        max_request_size: 64 * 1024,
        ..ServerOptions::default()
    })
}

fn unchanged(p: &Path) -> bool {
    std::fs::read(p).unwrap().iter().all(|&b| b == FILL)
}

/// A client in transmission on `export` of a fresh fixture.
fn connected(
    f: &Fixture,
    export: &str,
) -> (
    Raw<std::os::unix::net::UnixStream>,
    std::thread::JoinHandle<String>,
) {
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES);
    let r = c.go(export);
    assert_eq!(r.reply, proto::REP_ACK, "GO {export}: {r:?}");
    (c, t)
}

#[test]
fn bad_request_magic_closes_without_writing() {
    let f = fixture();
    let (mut c, t) = connected(&f, "disk");
    let mut b = Vec::new();
    Request {
        flags: 0,
        command: CMD_WRITE,
        handle: 1,
        offset: 0,
        len: 512,
    }
    .encode(&mut b);
    b[0] = 0x99;
    b.extend_from_slice(&[0u8; 512]);
    c.s.write_all(&b).unwrap();
    assert!(c.closed());
    assert!(t.join().unwrap().contains("BadMagic"));
    assert!(unchanged(&f.disk));
}

#[test]
fn past_the_end_and_overflow() {
    let f = fixture();
    let (mut c, t) = connected(&f, "disk");
    // WRITE crossing the end: ENOSPC, payload consumed, nothing written.
    c.request(CMD_WRITE, 0, 1, SIZE as u64 - 256, 512);
    c.s.write_all(&[0u8; 512]).unwrap();
    c.expect_reply(1, ENOSPC);
    // READ past the end: EINVAL, no data follows.
    c.request(CMD_READ, 0, 2, SIZE as u64, 1);
    c.expect_reply(2, EINVAL);
    // offset + len wraps around 2^64.
    c.request(CMD_WRITE, 0, 3, u64::MAX - 100, 512);
    c.s.write_all(&[0u8; 512]).unwrap();
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    c.request(CMD_WRITE_ZEROES, 0, 4, u64::MAX, u32::MAX);
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    c.request(CMD_TRIM, 0, 5, 1 << 62, 4096);
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    // The connection still works afterwards.
    c.request(CMD_READ, 0, 6, 0, 16);
    assert_eq!(c.simple_reply().unwrap().error, 0);
    let mut data = [0u8; 16];
    std::io::Read::read_exact(&mut c.s, &mut data).unwrap();
    assert_eq!(data, [FILL; 16]);
    c.request(CMD_DISC, 0, 7, 0, 0);
    assert!(c.closed());
    assert_eq!(t.join().unwrap(), "ok");
    assert!(unchanged(&f.disk));
}

#[test]
fn oversized_write_gets_einval_and_close() {
    let f = fixture();
    let (mut c, t) = connected(&f, "disk");
    c.request(CMD_WRITE, 0, 9, 0, 64 * 1024 + 1);
    // Some payload follows, which the server must not take as data.
    let _ = c.s.write_all(&[0u8; 4096]);
    c.expect_reply(9, EINVAL);
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Oversized"));
    assert!(unchanged(&f.disk));
}

#[test]
fn oversized_read_gets_einval_and_goes_on() {
    let f = fixture();
    let (mut c, _t) = connected(&f, "disk");
    c.request(CMD_READ, 0, 1, 0, 64 * 1024 + 1);
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    c.request(CMD_FLUSH, 0, 2, 0, 0);
    c.expect_reply(2, 0);
}

#[test]
fn unknown_command_and_flags_get_einval() {
    let f = fixture();
    let (mut c, _t) = connected(&f, "disk");
    c.request(0x55, 0, 1, 0, 0);
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    c.request(CMD_READ, 1 << 9, 2, 0, 512);
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    // NO_HOLE only belongs to WRITE_ZEROES.
    c.request(CMD_TRIM, CMD_FLAG_NO_HOLE, 3, 0, 512);
    assert_eq!(c.simple_reply().unwrap().error, EINVAL);
    c.request(CMD_FLUSH, 0, 4, 0, 0);
    assert_eq!(c.simple_reply().unwrap().error, 0);
    assert!(unchanged(&f.disk));
}

#[test]
fn writes_to_read_only_get_eperm() {
    let f = fixture();
    let (mut c, _t) = connected(&f, "ro");
    c.request(CMD_WRITE, 0, 1, 0, 512);
    c.s.write_all(&[0u8; 512]).unwrap();
    c.expect_reply(1, EPERM);
    c.request(CMD_TRIM, 0, 2, 0, 512);
    assert_eq!(c.simple_reply().unwrap().error, EPERM);
    c.request(CMD_WRITE_ZEROES, 0, 3, 0, 512);
    assert_eq!(c.simple_reply().unwrap().error, EPERM);
    c.request(CMD_READ, 0, 4, 0, 512);
    assert_eq!(c.simple_reply().unwrap().error, 0);
    let mut data = [0u8; 512];
    std::io::Read::read_exact(&mut c.s, &mut data).unwrap();
    assert_eq!(data, [FILL; 512]);
    assert!(unchanged(&f.ro));
}

#[test]
fn truncated_frames_close_and_write_nothing() {
    let f = fixture();
    // Half a request header.
    let (mut c, t) = connected(&f, "disk");
    let mut b = Vec::new();
    Request {
        flags: 0,
        command: CMD_WRITE,
        handle: 1,
        offset: 0,
        len: 4096,
    }
    .encode(&mut b);
    c.s.write_all(&b[..10]).unwrap();
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Truncated"));
    // A WRITE whose payload stops halfway.
    let (mut c, t) = connected(&f, "disk");
    c.s.write_all(&b).unwrap();
    c.s.write_all(&[0u8; 1000]).unwrap();
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Truncated"));
    // A truncated option.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    let mut o = Vec::new();
    OptionHeader {
        option: OPT_GO,
        len: 100,
    }
    .encode(&mut o);
    c.s.write_all(&o).unwrap();
    c.s.write_all(&[0u8; 20]).unwrap();
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Negotiate"));
    assert!(unchanged(&f.disk));
}

#[test]
fn option_errors() {
    let f = fixture();
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    // Unknown option.
    c.send_option(0x4242, b"junk");
    let r = c.reply().unwrap();
    assert_eq!((r.option, r.reply), (0x4242, REP_ERR_UNSUP));
    // Structured replies are declined.
    c.send_option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ERR_UNSUP);
    // STARTTLS on a server without TLS.
    c.send_option(OPT_STARTTLS, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ERR_UNSUP);
    // LIST with data.
    c.send_option(OPT_LIST, b"x");
    assert_eq!(c.reply().unwrap().reply, REP_ERR_INVALID);
    // GO with a malformed body (name length beyond the data).
    c.send_option(OPT_GO, &[0, 0, 1, 0, b'a']);
    assert_eq!(c.reply().unwrap().reply, REP_ERR_INVALID);
    // Unknown and refused exports.
    assert_eq!(c.go("nosuch").reply, REP_ERR_UNKNOWN);
    let r = c.go("refused");
    assert_eq!(r.reply, REP_ERR_POLICY);
    assert!(String::from_utf8_lossy(&r.data).contains("group under recovery"));
    // INFO answers NAME and DESCRIPTION when asked, and stays in negotiation.
    let mut d = Vec::new();
    ExportRequest {
        name: "disk".into(),
        info: vec![INFO_NAME, INFO_DESCRIPTION],
    }
    .encode(&mut d);
    c.send_option(OPT_INFO, &d);
    let mut infos = Vec::new();
    loop {
        let r = c.reply().unwrap();
        if r.reply == REP_ACK {
            break;
        }
        assert_eq!(r.reply, REP_INFO);
        infos.push(Info::decode(&mut &r.data[..]).unwrap());
    }
    assert!(infos.contains(&Info::Name("disk".into())));
    assert!(infos.contains(&Info::Description("test disk disk".into())));
    assert!(
        infos
            .iter()
            .any(|i| matches!(i, Info::Export { size, .. } if *size == SIZE as u64))
    );
    // Still negotiating: GO now works.
    assert_eq!(c.go("disk").reply, REP_ACK);
    c.request(CMD_DISC, 0, 1, 0, 0);
    assert!(c.closed());
    assert_eq!(t.join().unwrap(), "ok");
}

#[test]
fn negotiation_violations_close() {
    let f = fixture();
    // Unknown client flags.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, 1 << 7);
    assert!(c.closed());
    assert!(t.join().unwrap().contains("ClientFlags"));
    // Bad option magic.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    c.s.write_all(&[0u8; 16]).unwrap();
    assert!(c.closed());
    assert!(t.join().unwrap().contains("BadMagic"));
    // Huge option data: hard disconnect rather than buffering it.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    let mut o = Vec::new();
    OptionHeader {
        option: OPT_GO,
        len: u32::MAX,
    }
    .encode(&mut o);
    c.s.write_all(&o).unwrap();
    assert!(c.closed());
    assert!(t.join().unwrap().contains("OptionTooLong"));
    // EXPORT_NAME of an unknown export cannot be answered with an error: close.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    c.send_option(OPT_EXPORT_NAME, b"nosuch");
    assert!(c.closed());
    assert!(t.join().unwrap().contains("ExportNameRefused"));
    // ABORT gets its ACK and ends the session cleanly.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    c.send_option(OPT_ABORT, &[]);
    assert_eq!(c.reply().unwrap().reply, REP_ACK);
    assert!(c.closed());
    assert_eq!(t.join().unwrap(), "ok");
}

#[test]
fn export_name_with_and_without_zeroes() {
    let f = fixture();
    for (flags, len) in [
        (FLAG_C_FIXED_NEWSTYLE, 134),
        (FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES, 10),
    ] {
        let (s, _t) = socketpair(&f.server);
        let mut c = Raw::greet(s, flags);
        c.send_option(OPT_EXPORT_NAME, b"disk");
        let mut b = vec![0u8; len];
        std::io::Read::read_exact(&mut c.s, &mut b).unwrap();
        assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), SIZE as u64);
        // Transmission follows right after: a flush answers.
        c.request(CMD_FLUSH, 0, 5, 0, 0);
        c.expect_reply(5, 0);
    }
}

#[test]
fn pipelined_requests_and_disc_drain() {
    let f = fixture();
    let (mut c, t) = connected(&f, "disk");
    // 64 writes of 4 KiB sent back to back, then DISC before reading any reply.
    let mut b = Vec::new();
    for i in 0..64u64 {
        Request {
            flags: 0,
            command: CMD_WRITE,
            handle: 1000 + i,
            offset: i * 4096,
            len: 4096,
        }
        .encode(&mut b);
        b.extend(std::iter::repeat_n(i as u8, 4096));
    }
    Request {
        flags: 0,
        command: CMD_DISC,
        handle: 0,
        offset: 0,
        len: 0,
    }
    .encode(&mut b);
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&b).unwrap());
    let mut seen = std::collections::BTreeSet::new();
    while let Some(r) = c.simple_reply() {
        assert_eq!(r.error, 0);
        assert!(seen.insert(r.handle), "duplicate reply {}", r.handle);
    }
    writer.join().unwrap();
    assert_eq!(seen.len(), 64, "every request before DISC is answered");
    assert_eq!(t.join().unwrap(), "ok");
    let data = std::fs::read(&f.disk).unwrap();
    for i in 0..64 {
        assert!(data[i * 4096..(i + 1) * 4096].iter().all(|&x| x == i as u8));
    }
    assert!(data[64 * 4096..].iter().all(|&x| x == FILL));
}

#[test]
fn shutdown_drains_and_stops_accepting() {
    let f = fixture();
    let (mut c, t) = connected(&f, "disk");
    c.request(CMD_WRITE, CMD_FLAG_FUA, 1, 0, 512);
    c.s.write_all(&[7u8; 512]).unwrap();
    assert_eq!(c.simple_reply().unwrap().error, 0);
    f.server.shutdown_handle().shutdown();
    assert!(c.closed());
    assert_eq!(t.join().unwrap(), "ok");
    assert_eq!(f.server.connections(), 0);
    // After shutdown a new connection is not served.
    let (s, t) = socketpair(&f.server);
    drop(s);
    assert_eq!(t.join().unwrap(), "ok");
    assert!(
        std::fs::read(&f.disk).unwrap()[..512]
            .iter()
            .all(|&b| b == 7)
    );
}

#[test]
fn idle_connections_are_closed() {
    let f = fixture_with(ServerOptions {
        idle_timeout: Some(Duration::from_millis(300)),
        ..ServerOptions::default()
    });
    // Idle in transmission.
    let (mut c, t) = connected(&f, "disk");
    std::thread::sleep(Duration::from_millis(700));
    assert!(c.closed());
    assert_eq!(t.join().unwrap(), "ok");
    // Idle during negotiation.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Negotiate"));
}

#[test]
fn max_connections_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "disk.img", SIZE, |_| 0);
    let srv = Running::start(
        Arc::new(Files::new(&[("disk", &disk, false)])),
        ServerOptions {
            max_connections: 1,
            ..ServerOptions::default()
        },
        dir.path(),
    );
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let mut first = Raw::greet(connect(), FLAG_C_FIXED_NEWSTYLE);
    assert_eq!(first.go("disk").reply, REP_ACK);
    let mut second = Raw { s: connect() };
    assert!(
        second.closed(),
        "a connection over the limit is closed at once"
    );
    first.request(CMD_DISC, 0, 0, 0, 0);
    assert!(first.closed());
    // The slot is free again once the first client is gone (its thread may take a moment).
    let mut third = None;
    for _ in 0..100 {
        let mut s = connect();
        let mut greeting = [0u8; proto::Greeting::LEN];
        if std::io::Read::read_exact(&mut s, &mut greeting).is_ok() {
            s.write_all(&FLAG_C_FIXED_NEWSTYLE.to_be_bytes()).unwrap();
            third = Some(Raw { s });
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut third = third.expect("a new connection is served after the first left");
    assert_eq!(third.go("disk").reply, REP_ACK);
    srv.shutdown();
}

#[test]
fn phase_confusion_closes() {
    let f = fixture();
    // An option sent after transmission began is a request with a bad magic (seen once a
    // whole 28-byte header is in).
    let (mut c, t) = connected(&f, "disk");
    c.send_option(OPT_LIST, &[0; 12]);
    assert!(c.closed());
    assert!(t.join().unwrap().contains("BadMagic"));
    // A request sent while still negotiating is an option with a bad magic.
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    c.request(CMD_WRITE, 0, 1, 0, 4);
    // The server may have closed on the header already: the payload then meets EPIPE.
    let _ = c.s.write_all(b"evil");
    assert!(c.closed());
    assert!(t.join().unwrap().contains("BadMagic"));
    assert!(unchanged(&f.disk));
}

#[test]
fn stalled_negotiation_is_closed_but_quiet_transmission_is_not() {
    let f = fixture_with(ServerOptions {
        negotiation_timeout: Some(Duration::from_millis(300)),
        idle_timeout: None,
        ..ServerOptions::default()
    });
    let (s, t) = socketpair(&f.server);
    let mut c = Raw::greet(s, FLAG_C_FIXED_NEWSTYLE);
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Negotiate"));
    // Once an export is chosen only the idle timeout (none here) applies.
    let (mut c, _t) = connected(&f, "disk");
    std::thread::sleep(Duration::from_millis(700));
    c.request(CMD_FLUSH, 0, 3, 0, 0);
    c.expect_reply(3, 0);
}

#[test]
fn a_client_stalled_inside_a_request_is_closed_and_its_buffer_released() {
    // No idle timeout at all: only the stall limit can end this connection.
    let f = fixture_with(ServerOptions {
        idle_timeout: None,
        stall_timeout: Some(Duration::from_millis(300)),
        ..ServerOptions::default()
    });
    let (mut c, t) = connected(&f, "disk");
    c.request(CMD_WRITE, 0, 1, 0, 4096);
    c.s.write_all(&[9; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // The cut-off WRITE holds its reservation of the server-wide budget...
    assert_eq!(f.server.buffer_stats().used, 4096);
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Stalled"));
    // ...until the stall limit throws the client out.
    assert_eq!(f.server.buffer_stats().used, 0);
    assert!(unchanged(&f.disk));
}

#[test]
fn a_trickled_payload_is_cut_at_its_deadline_and_its_buffer_released() {
    // A byte every 100 ms never trips the 300 ms stall limit: only the deadline of the
    // whole payload (300 ms + 4 KiB at 64 KiB/s) ends it.
    let f = fixture_with(ServerOptions {
        idle_timeout: None,
        stall_timeout: Some(Duration::from_millis(300)),
        ..ServerOptions::default()
    });
    let (mut c, t) = connected(&f, "disk");
    c.request(CMD_WRITE, 0, 1, 0, 4096);
    let start = std::time::Instant::now();
    let mut cut = None;
    while start.elapsed() < Duration::from_secs(3) {
        if c.s.write_all(&[9]).is_err() {
            cut = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if f.server.buffer_stats().used == 0 {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickled payload was not cut within 3 s");
    assert!(cut < Duration::from_millis(1000), "cut after {cut:?}");
    assert!(c.closed());
    assert!(t.join().unwrap().contains("Late"));
    assert!(unchanged(&f.disk));
}
