//! Prometheus text metrics of the writer: per-disk request counters and latency histograms,
//! journal and point gauges per group, served by a tiny HTTP/1.0 responder.
//!
//! No HTTP crate: the endpoint answers one GET with one text body and closes, which a
//! std TcpListener does in a few lines; a server framework would add a runtime and dozens
//! of dependencies to a binary that must also link statically for CentOS 6.

use super::group::{Point, Target};
use super::nbd::Server;
use super::service::{GroupState, GroupStatus, Writer};
use super::stats::{BUCKETS, Command, CommandStats};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
                for c in Command::ALL {
                    let v = pick(t.stats.command(c)).load(Ordering::Relaxed);
                    let _ = writeln!(
                        o,
                        "{name}{{group=\"{}\",disk=\"{}\",command=\"{}\"}} {v}",
                        esc(&g.name),
                        esc(&t.name),
                        c.name()
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
            for c in Command::ALL {
                let s = t.stats.command(c);
                let labels = format!(
                    "group=\"{}\",disk=\"{}\",command=\"{}\"",
                    esc(&g.name),
                    esc(&t.name),
                    c.name()
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
    type OfDisk = fn(&Target) -> u64;
    let per_disk: [(&str, &str, &str, OfDisk); 2] = [
        (
            "mtkit_fua_requests_total",
            "counter",
            "Writes with the FUA flag by disk",
            |t| t.stats.fua.load(Ordering::Relaxed),
        ),
        ("mtkit_clients", "gauge", "Connected clients by disk", |t| {
            t.clients.load(Ordering::Relaxed) as u64
        }),
    ];
    for (name, kind, help, value) in per_disk {
        head(&mut o, name, kind, help);
        for g in w.groups.values() {
            for t in &g.disks {
                let _ = writeln!(
                    o,
                    "{name}{{group=\"{}\",disk=\"{}\"}} {}",
                    esc(&g.name),
                    esc(&t.name),
                    value(t)
                );
            }
        }
    }
    let status = w.status();
    type Gauge = fn(&GroupStatus) -> u64;
    let gauges: [(&str, &str, Gauge); 8] = [
        ("mtkit_journal_bytes", "Undo journal size by group", |g| {
            g.journal_bytes
        }),
        (
            "mtkit_journal_segments",
            "Undo journal segment files by group",
            |g| g.journal_segments as u64,
        ),
        ("mtkit_points", "Recovery points kept by group", |g| {
            g.points as u64
        }),
        (
            "mtkit_oldest_point_timestamp_seconds",
            "Time of the oldest recovery point",
            |g| unix_secs(&g.oldest_point),
        ),
        (
            "mtkit_newest_point_timestamp_seconds",
            "Time of the newest recovery point",
            |g| unix_secs(&g.newest_point),
        ),
        (
            "mtkit_rpo_lag_seconds",
            "Time since the last point while writes wait for the next",
            |g| g.rpo_lag_secs,
        ),
        (
            "mtkit_recovering",
            "1 while the group is under recovery",
            |g| u64::from(g.state == GroupState::Recovering),
        ),
        (
            "mtkit_points_lost",
            "Recovery points that journal damage makes unrecoverable",
            |g| g.lost_points as u64,
        ),
    ];
    for (name, help, value) in gauges {
        head(&mut o, name, "gauge", help);
        for g in &status.groups {
            let _ = writeln!(o, "{name}{{group=\"{}\"}} {}", esc(&g.name), value(g));
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

/// A point's time in seconds since the epoch; 0 without a point.
fn unix_secs(p: &Option<Point>) -> u64 {
    p.as_ref().map_or(0, |p| p.time.timestamp()) as u64
}

/// Scrapes answered at once; more connections are closed as soon as they are accepted. A
/// scraper needs one; a flood of connections must not take threads or descriptors.
pub const MAX_CONNECTIONS: usize = 8;
/// A request must be read and answered within this, whole: a client trickling bytes
/// gets no more time than one that sends nothing.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// A live scrape, counted until dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub fn serve(listener: TcpListener, w: Arc<Writer>, server: Server) {
    let live = Arc::new(AtomicUsize::new(0));
    let fds = server.options().fds.clone();
    loop {
        if fds.as_ref().is_some_and(|b| !b.fits(1)) {
            // Descriptors are kept for the journal: the scraper waits in the backlog.
            std::thread::sleep(super::fds::ACCEPT_BACKOFF);
            continue;
        }
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) => {
                // Out of fds (EMFILE) accept fails at once again: pause, don't spin.
                if super::fds::exhausted(&e) {
                    tracing::warn!(error = %e, "metrics: accept");
                    std::thread::sleep(super::fds::ACCEPT_BACKOFF);
                }
                continue;
            }
        };
        if live.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            tracing::debug!("metrics: connection closed, {MAX_CONNECTIONS} already open");
            continue;
        }
        let lease = match &fds {
            Some(b) => match b.take(1) {
                Some(l) => Some(l),
                None => continue,
            },
            None => None,
        };
        live.fetch_add(1, Ordering::AcqRel);
        let counted = Live(live.clone());
        let (w, server) = (w.clone(), server.clone());
        // Out of threads, the scraper sees the connection closed; no panic.
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                let _held = (counted, lease);
                answer(conn, &w, &server);
            });
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
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|x| x == b"\r\n\r\n") && buf.len() < MAX_HEAD {
        // Each read gets what is left of the deadline, never a fresh timeout.
        let Some(t) = left() else { return };
        if conn.set_read_timeout(Some(t)).is_err() {
            return;
        }
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
    // The answer goes out within what is left of the deadline (a scraper that reads it
    // slowly gets cut off, and a write timeout cannot be zero).
    let Some(t) = left() else { return };
    let _ = conn.set_write_timeout(Some(t));
    let _ = conn.write_all(reply.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer of three disks in two groups (one disk named with a quote), a point made
    /// on vm1, and counters set so that every (disk, command, counter) has its own value.
    fn counted(dir: &std::path::Path) -> Writer {
        let mut text = format!("[writer]\njournal-dir = \"{}\"\n", dir.join("j").display());
        for (name, group, file) in [("d0", "vm1", "a"), ("d1", "vm1", "b"), ("d\"2", "vm2", "c")] {
            text += &format!(
                "[[writer.disk]]\nname = '{name}'\ngroup = \"{group}\"\npath = \"{}\"\nsize = \"1M\"\n",
                dir.join(file).display()
            );
        }
        let w = Writer::open(&toml::from_str(&text).unwrap()).unwrap();
        let d0 = super::super::ExportResolver::open(&w, "d0", &Default::default()).unwrap();
        d0.write_at(&[1; 8192], 0, false).unwrap();
        w.bookmark("vm1", "base").unwrap();
        d0.write_at(&[2; 8192], 0, false).unwrap();
        d0.flush().unwrap();
        let disks = w.groups.values().flat_map(|g| &g.disks);
        for (d, t) in (0u64..).zip(disks) {
            for (i, c) in (0u64..).zip(Command::ALL) {
                let s = t.stats.command(c);
                s.requests.store(1000 * d + 10 * i + 1, Ordering::Relaxed);
                s.bytes.store(1000 * d + 10 * i + 2, Ordering::Relaxed);
                s.errors.store(1000 * d + 10 * i + 3, Ordering::Relaxed);
                s.sum_us
                    .store((d * 10 + i) * 1_500_000 + 7, Ordering::Relaxed);
                for (b, n) in (0u64..).zip(&s.buckets) {
                    n.store(b + i + d, Ordering::Relaxed);
                }
            }
            t.stats.fua.store(d + 7, Ordering::Relaxed);
        }
        w
    }

    /// The text as it was when the commands were indexes into a name array (lines taken
    /// from that code's output for the same writer).
    #[test]
    fn every_command_of_every_disk_is_listed_as_before() {
        let t = tempfile::tempdir().unwrap();
        let text = render(&counted(t.path()), None);
        let lines: Vec<&str> = text.lines().collect();
        let run = |want: &[&str]| {
            let at = lines.iter().position(|l| *l == want[0]);
            let at = at.unwrap_or_else(|| panic!("{} missing:\n{text}", want[0]));
            assert_eq!(&lines[at..at + want.len()], want, "{text}");
        };
        run(&[
            "mtkit_requests_total{group=\"vm1\",disk=\"d1\",command=\"read\"} 1001",
            "mtkit_requests_total{group=\"vm1\",disk=\"d1\",command=\"write\"} 1011",
            "mtkit_requests_total{group=\"vm1\",disk=\"d1\",command=\"write_zeroes\"} 1021",
            "mtkit_requests_total{group=\"vm1\",disk=\"d1\",command=\"trim\"} 1031",
            "mtkit_requests_total{group=\"vm1\",disk=\"d1\",command=\"flush\"} 1041",
            "mtkit_requests_total{group=\"vm2\",disk=\"d\\\"2\",command=\"read\"} 2001",
        ]);
        run(&[
            "mtkit_errors_total{group=\"vm2\",disk=\"d\\\"2\",command=\"flush\"} 2043",
            "# HELP mtkit_request_duration_seconds Request latency by disk and command",
            "# TYPE mtkit_request_duration_seconds histogram",
        ]);
        let wz = "group=\"vm1\",disk=\"d1\",command=\"write_zeroes\"";
        let bucket = |le: &str, n: u64| {
            format!("mtkit_request_duration_seconds_bucket{{{wz},le=\"{le}\"}} {n}")
        };
        let mut hist: Vec<String> = [
            ("0.0001", 3),
            ("0.0005", 7),
            ("0.001", 12),
            ("0.005", 18),
            ("0.01", 25),
            ("0.05", 33),
            ("0.1", 42),
            ("0.5", 52),
            ("1", 63),
            ("5", 75),
            ("+Inf", 88),
        ]
        .iter()
        .map(|(le, n)| bucket(le, *n))
        .collect();
        hist.push(format!(
            "mtkit_request_duration_seconds_sum{{{wz}}} 18.000007"
        ));
        hist.push(format!("mtkit_request_duration_seconds_count{{{wz}}} 88"));
        run(&hist.iter().map(String::as_str).collect::<Vec<_>>());
        run(&[
            "mtkit_fua_requests_total{group=\"vm1\",disk=\"d0\"} 7",
            "mtkit_fua_requests_total{group=\"vm1\",disk=\"d1\"} 8",
            "mtkit_fua_requests_total{group=\"vm2\",disk=\"d\\\"2\"} 9",
        ]);
        run(&[
            "# HELP mtkit_points Recovery points kept by group",
            "# TYPE mtkit_points gauge",
            "mtkit_points{group=\"vm1\"} 2",
            "mtkit_points{group=\"vm2\"} 0",
            "# HELP mtkit_oldest_point_timestamp_seconds Time of the oldest recovery point",
        ]);
        run(&[
            "mtkit_recovering{group=\"vm2\"} 0",
            "# HELP mtkit_points_lost Recovery points that journal damage makes unrecoverable",
            "# TYPE mtkit_points_lost gauge",
            "mtkit_points_lost{group=\"vm1\"} 0",
        ]);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("vm1-disk0"), "vm1-disk0");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
