//! Shared by the writer tests: a temp config, the service as a child process, the control
//! socket, and a minimal NBD client with exact ack tracking.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub metrics_port: u16,
    pub config: PathBuf,
}

/// A disk of the test config: (name, group, size).
pub type DiskDef<'a> = (&'a str, &'a str, u64);

impl Env {
    pub fn new(disks: &[DiskDef]) -> Env {
        Env::with_writer(disks, "")
    }

    /// Like [`Env::new`], with more `[writer]` keys (lines of TOML).
    pub fn with_writer(disks: &[DiskDef], writer: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, metrics_port) = (free(), free());
        let d = dir.path();
        // The journal sits in a temp folder, on whatever the machine's / is (often ext4
        // without a journal, which the writer refuses): the tests of crash safety write
        // their own configs (tests/writer_journal_fs.rs).
        let mut cfg = format!(
            "[writer]\nlisten = \"127.0.0.1:{port}\"\ninsecure = true\nallow-unsafe-journal = true\n\
             journal-dir = \"{}\"\nunix-socket = \"{}\"\ncontrol-socket = \"{}\"\nmetrics-listen = \"127.0.0.1:{metrics_port}\"\n",
            d.join("journal").display(),
            d.join("run/nbd.sock").display(),
            d.join("run/control.sock").display()
        );
        cfg += writer;
        for (name, group, size) in disks {
            cfg += &format!(
                "\n[[writer.disk]]\nname = \"{name}\"\npath = \"{}\"\ngroup = \"{group}\"\nsize = \"{size}B\"\n",
                d.join(format!("{name}.img")).display()
            );
        }
        let config = d.join("appliance.toml");
        std::fs::write(&config, cfg).unwrap();
        Env {
            dir,
            port,
            metrics_port,
            config,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn disk(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.img"))
    }

    pub fn uri(&self, export: &str) -> String {
        format!("nbd://127.0.0.1:{}/{export}", self.port)
    }

    pub fn control(&self) -> PathBuf {
        self.path("run/control.sock")
    }

    pub fn mtkit(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_mtkit"))
            .env_remove("MTKIT_CONFIG")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts `mtkit writer run` and waits until its control socket answers.
    pub fn start(&self) -> Service {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("service.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mtkit"))
            .env_remove("MTKIT_CONFIG")
            .arg("--config")
            .arg(&self.config)
            .args(["writer", "run"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut svc = Service { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if control(&self.control(), r#"{"cmd":"status"}"#).is_ok()
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return svc;
            }
            if let Some(st) = svc.child.try_wait().unwrap() {
                panic!("service exited with {st}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "service did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("service.log")).unwrap_or_default()
    }
}

pub struct Service {
    pub child: Child,
}

impl Service {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET /metrics.
pub fn metrics(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert!(s.starts_with("HTTP/1.0 200"), "{s}");
    s
}

/// The value of one metric line (`name{labels}`), 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// One control request (a JSON line); the final answer, `Err` for an error answer.
pub fn control(sock: &Path, req: &str) -> Result<serde_json::Value, String> {
    let mut c = UnixStream::connect(sock).map_err(|e| e.to_string())?;
    writeln!(c, "{req}").map_err(|e| e.to_string())?;
    for line in BufReader::new(c).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if let Some(ok) = v.get("ok") {
            return Ok(ok.clone());
        }
        if let Some(e) = v.get("error") {
            return Err(e.to_string());
        }
    }
    Err("no answer".into())
}

/// Point ids of a group, oldest first.
pub fn point_ids(sock: &Path, group: &str) -> Vec<u64> {
    let v = control(sock, &format!(r#"{{"cmd":"points","group":"{group}"}}"#)).unwrap();
    v[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect()
}

/// A request header: NBD_REQUEST_MAGIC, no flags.
pub fn header(cmd: u16, handle: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(28);
    r.extend_from_slice(&0x2560_9513u32.to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&cmd.to_be_bytes());
    r.extend_from_slice(&handle.to_be_bytes());
    r.extend_from_slice(&offset.to_be_bytes());
    r.extend_from_slice(&len.to_be_bytes());
    r
}

/// Reads one simple reply header: (error, handle).
pub fn reply(s: &mut TcpStream) -> std::io::Result<(u32, u64)> {
    let mut r = [0u8; 16];
    s.read_exact(&mut r)?;
    assert_eq!(u32::from_be_bytes(r[..4].try_into().unwrap()), 0x6744_6698);
    Ok((
        u32::from_be_bytes(r[4..8].try_into().unwrap()),
        u64::from_be_bytes(r[8..].try_into().unwrap()),
    ))
}

/// A minimal NBD client: fixed newstyle, NBD_OPT_EXPORT_NAME, one request at a time.
pub struct Nbd {
    s: TcpStream,
    pub size: u64,
    handle: u64,
}

impl Nbd {
    pub fn connect(port: u16, export: &str) -> std::io::Result<Nbd> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        let mut hello = [0u8; 18];
        s.read_exact(&mut hello)?;
        assert_eq!(&hello[..8], b"NBDMAGIC");
        assert_eq!(&hello[8..16], b"IHAVEOPT");
        s.write_all(&3u32.to_be_bytes())?; // FIXED_NEWSTYLE | NO_ZEROES
        let mut opt = Vec::new();
        opt.extend_from_slice(b"IHAVEOPT");
        opt.extend_from_slice(&1u32.to_be_bytes()); // NBD_OPT_EXPORT_NAME
        opt.extend_from_slice(&(export.len() as u32).to_be_bytes());
        opt.extend_from_slice(export.as_bytes());
        s.write_all(&opt)?;
        let mut info = [0u8; 10];
        s.read_exact(&mut info)?;
        let size = u64::from_be_bytes(info[..8].try_into().unwrap());
        Ok(Nbd { s, size, handle: 0 })
    }

    fn request(&mut self, cmd: u16, offset: u64, len: u32, data: &[u8]) -> std::io::Result<u32> {
        self.handle += 1;
        let mut r = header(cmd, self.handle, offset, len);
        r.extend_from_slice(data);
        self.s.write_all(&r)?;
        let mut reply = [0u8; 16];
        self.s.read_exact(&mut reply)?;
        assert_eq!(
            u32::from_be_bytes(reply[..4].try_into().unwrap()),
            0x6744_6698
        );
        assert_eq!(
            u64::from_be_bytes(reply[8..].try_into().unwrap()),
            self.handle
        );
        Ok(u32::from_be_bytes(reply[4..8].try_into().unwrap()))
    }

    /// The socket, past negotiation, for hand-made requests.
    pub fn into_stream(self) -> TcpStream {
        self.s
    }

    /// Ok(()) only when the server acknowledged the write with no error.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        match self.request(1, offset, data.len() as u32, data)? {
            0 => Ok(()),
            e => Err(std::io::Error::other(format!("NBD error {e}"))),
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.request(3, 0, 0, &[])? {
            0 => Ok(()),
            e => Err(std::io::Error::other(format!("NBD error {e}"))),
        }
    }

    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self.request(0, offset, buf.len() as u32, &[])? {
            0 => self.s.read_exact(buf),
            e => Err(std::io::Error::other(format!("NBD error {e}"))),
        }
    }
}
