//! Prometheus text metrics of the writer: per-disk request counters and latency histograms,
//! journal and point gauges per group, served by a tiny HTTP/1.0 responder.
//!
//! No HTTP crate: the endpoint answers one GET with one text body and closes, which a
//! std TcpListener does in a few lines; a server framework would add a runtime and dozens
//! of dependencies to a binary that must also link statically for CentOS 6.

use super::nbd::Server;
use super::service::{GroupState, Writer};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The commands counted per disk.
pub const COMMANDS: [&str; 5] = ["read", "write", "write_zeroes", "trim", "flush"];

#[derive(Default)]
pub struct CommandStats {
    requests: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    sum_us: AtomicU64,
    /// Non-cumulative counts per bucket; the last is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
}

/// Counters of one disk, one entry per [`COMMANDS`].
#[derive(Default)]
pub struct DiskStats {
    pub commands: [CommandStats; COMMANDS.len()],
    /// Writes and write-zeroes that carried NBD_CMD_FLAG_FUA (the kernel client's REQ_FUA).
    pub fua: AtomicU64,
}

impl DiskStats {
    /// Times `f` and counts it under command `cmd` (an index into [`COMMANDS`]).
    pub fn observe<T, E>(
        &self,
        cmd: usize,
        bytes: u64,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let t0 = Instant::now();
        let r = f();
        let c = &self.commands[cmd];
        let secs = t0.elapsed().as_secs_f64();
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.sum_us.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        let b = BUCKETS
            .iter()
            .position(|&ub| secs <= ub)
            .unwrap_or(BUCKETS.len());
        c.buckets[b].fetch_add(1, Ordering::Relaxed);
        match &r {
            Ok(_) => {
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    /// Counts a write that asked for FUA.
    pub fn count_fua(&self, fua: bool) {
        if fua {
            self.fua.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A label value as the text format wants it: a disk named with `"` or `\` (the config
/// allows it) would otherwise end the label early and break the whole scrape.
fn esc(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// Renders every metric of `w` (and of the NBD server's buffers, with `server`) in the
/// Prometheus text format.
pub fn render(w: &Writer, server: Option<&Server>) -> String {
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Pick = fn(&CommandStats) -> &AtomicU64;
    let counters: [(&str, &str, Pick); 3] = [
        (
            "mtkit_requests_total",
            "NBD requests by disk and command",
            |s| &s.requests,
        ),
        (
            "mtkit_bytes_total",
            "Payload bytes by disk and command",
            |s| &s.bytes,
        ),
        (
            "mtkit_errors_total",
            "Failed requests by disk and command",
            |s| &s.errors,
        ),
    ];
    for (name, help, pick) in counters {
        head(&mut o, name, "counter", help);
        for g in w.groups.values() {
            for t in &g.disks {
                for (i, c) in COMMANDS.iter().enumerate() {
                    let v = pick(&t.stats.commands[i]).load(Ordering::Relaxed);
                    let _ = writeln!(
                        o,
                        "{name}{{group=\"{}\",disk=\"{}\",command=\"{c}\"}} {v}",
                        esc(&g.name),
                        esc(&t.name)
                    );
                }
            }
        }
    }
    head(
        &mut o,
        "mtkit_request_duration_seconds",
        "histogram",
        "Request latency by disk and command",
    );
    for g in w.groups.values() {
        for t in &g.disks {
            for (i, c) in COMMANDS.iter().enumerate() {
                let s = &t.stats.commands[i];
                let labels = format!(
                    "group=\"{}\",disk=\"{}\",command=\"{c}\"",
                    esc(&g.name),
                    esc(&t.name)
                );
                let mut cum = 0;
                for (b, ub) in BUCKETS.iter().enumerate() {
                    cum += s.buckets[b].load(Ordering::Relaxed);
                    let _ = writeln!(
                        o,
                        "mtkit_request_duration_seconds_bucket{{{labels},le=\"{ub}\"}} {cum}"
                    );
                }
                cum += s.buckets[BUCKETS.len()].load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "mtkit_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cum}"
                );
                let _ = writeln!(
                    o,
                    "mtkit_request_duration_seconds_sum{{{labels}}} {}",
                    s.sum_us.load(Ordering::Relaxed) as f64 / 1e6
                );
                let _ = writeln!(o, "mtkit_request_duration_seconds_count{{{labels}}} {cum}");
            }
        }
    }
    head(
        &mut o,
        "mtkit_fua_requests_total",
        "counter",
        "Writes with the FUA flag by disk",
    );
    for g in w.groups.values() {
        for t in &g.disks {
            let _ = writeln!(
                o,
                "mtkit_fua_requests_total{{group=\"{}\",disk=\"{}\"}} {}",
                esc(&g.name),
                esc(&t.name),
                t.stats.fua.load(Ordering::Relaxed)
            );
        }
    }
    head(
        &mut o,
        "mtkit_clients",
        "gauge",
        "Connected clients by disk",
    );
    for g in w.groups.values() {
        for t in &g.disks {
            let _ = writeln!(
                o,
                "mtkit_clients{{group=\"{}\",disk=\"{}\"}} {}",
                esc(&g.name),
                esc(&t.name),
                t.clients.load(Ordering::Relaxed)
            );
        }
    }
    let status = w.status();
    let gauges: [(&str, &str); 8] = [
        ("mtkit_journal_bytes", "Undo journal size by group"),
        (
            "mtkit_journal_segments",
            "Undo journal segment files by group",
        ),
        ("mtkit_points", "Recovery points kept by group"),
        (
            "mtkit_oldest_point_timestamp_seconds",
            "Time of the oldest recovery point",
        ),
        (
            "mtkit_newest_point_timestamp_seconds",
            "Time of the newest recovery point",
        ),
        (
            "mtkit_rpo_lag_seconds",
            "Time since the last point while writes wait for the next",
        ),
        ("mtkit_recovering", "1 while the group is under recovery"),
        (
            "mtkit_points_lost",
            "Recovery points that journal damage makes unrecoverable",
        ),
    ];
    for (k, (name, help)) in gauges.iter().enumerate() {
        head(&mut o, name, "gauge", help);
        for g in &status.groups {
            let ts = |p: &Option<super::group::Point>| {
                p.as_ref().map_or(0, |p| p.time.timestamp()) as u64
            };
            let v = match k {
                0 => g.journal_bytes,
                1 => g.journal_segments as u64,
                2 => g.points as u64,
                3 => ts(&g.oldest_point),
                4 => ts(&g.newest_point),
                5 => g.rpo_lag_secs,
                6 => u64::from(g.state == GroupState::Recovering),
                _ => g.lost_points as u64,
            };
            let _ = writeln!(o, "{name}{{group=\"{}\"}} {v}", esc(&g.name));
        }
    }
    head(
        &mut o,
        "mtkit_group_closed",
        "gauge",
        "1 for a group whose journal or recovery session could not be opened",
    );
    let open = status.groups.iter().map(|g| (&g.name, 0));
    for (name, v) in open.chain(status.closed.iter().map(|c| (&c.name, 1))) {
        let _ = writeln!(o, "mtkit_group_closed{{group=\"{}\"}} {v}", esc(name));
    }
    if let Some(b) = server.map(Server::buffer_stats) {
        let buffers: [(&str, &str, &str, u64); 4] = [
            (
                "mtkit_buffer_bytes",
                "gauge",
                "Request payload buffered by all connections now",
                b.used as u64,
            ),
            (
                "mtkit_buffer_peak_bytes",
                "gauge",
                "Most request payload ever buffered at once",
                b.peak as u64,
            ),
            (
                "mtkit_buffer_limit_bytes",
                "gauge",
                "The server-wide payload budget ([writer] max-buffer)",
                b.limit as u64,
            ),
            (
                "mtkit_buffer_waits_total",
                "counter",
                "Requests that waited for the server-wide payload budget",
                b.waits,
            ),
        ];
        for (name, kind, help, v) in buffers {
            head(&mut o, name, kind, help);
            let _ = writeln!(o, "{name} {v}");
        }
    }
    o
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub fn serve(listener: TcpListener, w: Arc<Writer>, server: Server) {
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                // Out of fds (EMFILE) accept fails at once again: pause, don't spin.
                tracing::warn!(error = %e, "metrics: accept");
                std::thread::sleep(super::control::ACCEPT_BACKOFF);
                continue;
            }
        };
        let (w, server) = (w.clone(), server.clone());
        // Out of threads, the scraper sees the connection closed; no panic.
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || answer(conn, &w, &server));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "metrics: no thread for a connection");
        }
    }
}

/// Largest request head read: a GET is a few hundred bytes, and whatever a client sends
/// must not grow the service's memory.
const MAX_HEAD: usize = 8192;

/// Answers one HTTP/1.0 request on `conn` and closes it: no keep-alive, so the body
/// needs no chunking and a connection never outlives its answer.
fn answer(mut conn: TcpStream, w: &Writer, server: &Server) {
    // A scraper that stalls (or a port scanner that never sends) must not pin a thread.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|x| x == b"\r\n\r\n") && buf.len() < MAX_HEAD {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let reply = if line.starts_with("GET ") && (path == "/metrics" || path == "/") {
        let body = render(w, Some(server));
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
    };
    let _ = conn.write_all(reply.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("vm1-disk0"), "vm1-disk0");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
