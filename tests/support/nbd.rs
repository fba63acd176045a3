//! Shared by the NBD tests: an in-process server over FileExports and a raw test client.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use mtkit::writer::FileExport;
use mtkit::writer::export::{ClientInfo, Export, ExportInfo, ExportResolver, OpenError};
use mtkit::writer::nbd::proto::{self, OptionHeader, OptionReply, Request, SimpleReply};
use mtkit::writer::nbd::{Server, ServerOptions, ShutdownHandle, StaticResolver};

/// A disk image in a tempdir filled with a recognisable pattern.
pub fn image(dir: &Path, name: &str, size: usize, fill: impl Fn(usize) -> u8) -> PathBuf {
    let p = dir.join(name);
    let data: Vec<u8> = (0..size).map(fill).collect();
    std::fs::write(&p, data).unwrap();
    p
}

/// A resolver over files, plus one name that is always refused (NBD_REP_ERR_POLICY).
pub struct Files {
    inner: StaticResolver,
}

impl Files {
    pub fn new(exports: &[(&str, &Path, bool)]) -> Files {
        let mut r = StaticResolver::new();
        for (name, path, ro) in exports {
            let e = FileExport::open(path, *ro).unwrap();
            r = r.with(name, &format!("test disk {name}"), Arc::new(e));
        }
        Files { inner: r }
    }
}

impl ExportResolver for Files {
    fn list(&self, c: &ClientInfo) -> Vec<ExportInfo> {
        self.inner.list(c)
    }
    fn open(&self, name: &str, c: &ClientInfo) -> Result<Arc<dyn Export>, OpenError> {
        if name == "refused" {
            return Err(OpenError::Refused {
                name: name.into(),
                reason: "group under recovery".into(),
            });
        }
        self.inner.open(name, c)
    }
}

/// A server running on 127.0.0.1:0 and on a Unix socket; shut down (drained) on drop.
pub struct Running {
    pub server: Server,
    pub port: u16,
    pub socket: PathBuf,
    stop: ShutdownHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn start(resolver: Arc<dyn ExportResolver>, opts: ServerOptions, dir: &Path) -> Running {
        let server = Server::new(resolver, opts);
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let socket = dir.join("nbd.sock");
        let unix = UnixListener::bind(&socket).unwrap();
        let s1 = server.clone();
        let s2 = server.clone();
        let threads = vec![
            std::thread::spawn(move || s1.serve_tcp(tcp).unwrap()),
            std::thread::spawn(move || s2.serve_unix(unix).unwrap()),
        ];
        Running {
            stop: server.shutdown_handle(),
            server,
            port,
            socket,
            threads,
        }
    }

    pub fn uri(&self, name: &str) -> String {
        format!("nbd://127.0.0.1:{}/{name}", self.port)
    }

    pub fn unix_uri(&self, name: &str) -> String {
        format!("nbd+unix:///{name}?socket={}", self.socket.display())
    }

    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.stop.shutdown();
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Serves one connection over a socketpair in a thread; the other end is returned.
pub fn socketpair(server: &Server) -> (UnixStream, JoinHandle<String>) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let s = server.clone();
    let t = std::thread::spawn(move || match s.handle(b, ClientInfo::default()) {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    });
    (a, t)
}

/// A raw NBD client for driving the server by hand.
pub struct Raw<S> {
    pub s: S,
}

impl<S: Read + Write> Raw<S> {
    /// Reads the greeting and answers with `flags`.
    pub fn greet(s: S, flags: u32) -> Raw<S> {
        let mut r = Raw { s };
        let mut g = [0u8; proto::Greeting::LEN];
        r.s.read_exact(&mut g).unwrap();
        let greeting = proto::Greeting::decode(&mut &g[..]).unwrap();
        assert_eq!(
            greeting.flags,
            proto::FLAG_FIXED_NEWSTYLE | proto::FLAG_NO_ZEROES
        );
        r.s.write_all(&flags.to_be_bytes()).unwrap();
        r
    }

    pub fn send_option(&mut self, option: u32, data: &[u8]) {
        let mut b = Vec::new();
        OptionHeader {
            option,
            len: data.len() as u32,
        }
        .encode(&mut b);
        b.extend_from_slice(data);
        self.s.write_all(&b).unwrap();
    }

    /// One option reply, or None when the server closed the connection.
    pub fn reply(&mut self) -> Option<OptionReply> {
        let mut h = [0u8; 20];
        if self.s.read_exact(&mut h).is_err() {
            return None;
        }
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize;
        let mut all = h.to_vec();
        all.resize(20 + len, 0);
        self.s.read_exact(&mut all[20..]).ok()?;
        Some(OptionReply::decode(&mut &all[..]).unwrap())
    }

    /// NBD_OPT_GO for `name`; returns the final reply (ACK or an error).
    pub fn go(&mut self, name: &str) -> OptionReply {
        let mut d = Vec::new();
        proto::ExportRequest {
            name: name.into(),
            info: vec![],
        }
        .encode(&mut d);
        self.send_option(proto::OPT_GO, &d);
        loop {
            let r = self.reply().expect("reply to GO");
            if r.reply != proto::REP_INFO {
                return r;
            }
        }
    }

    pub fn request(&mut self, command: u16, flags: u16, handle: u64, offset: u64, len: u32) {
        let mut b = Vec::new();
        Request {
            flags,
            command,
            handle,
            offset,
            len,
        }
        .encode(&mut b);
        self.s.write_all(&b).unwrap();
    }

    /// A simple reply (without READ data), or None at EOF.
    pub fn simple_reply(&mut self) -> Option<SimpleReply> {
        let mut b = [0u8; proto::SIMPLE_REPLY_LEN];
        self.s.read_exact(&mut b).ok()?;
        Some(SimpleReply::decode(&mut &b[..]).unwrap())
    }

    /// Reads one simple reply and asserts its handle and error code.
    #[track_caller]
    pub fn expect_reply(&mut self, handle: u64, error: u32) {
        let got = self.simple_reply().expect("a reply, not EOF");
        assert_eq!(got, SimpleReply { error, handle });
    }

    /// True when the server closed the connection (EOF or reset) within the read timeout.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}
