//! `[writer]` and `[writer.tls]`: the NBD service's addresses, sockets, journal and limits.

use super::locate::{Checker, path, q};
use crate::config::Config;
use crate::config::Size;
use std::net::SocketAddr;

/// Addresses that parse, absolute paths, limits in range, TLS given one way.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let w = &c.writer;
    if w.allow_unsafe_journal {
        ck.warn(
            &path(&["writer", "allow-unsafe-journal"]),
            "true",
            "the writer starts even with its journal on a filesystem that a power cut can \
             corrupt or empty (ext2, ext4 without has_journal, vfat, tmpfs): points can be lost \
             or recover the wrong data; for tests and labs only",
        );
    }
    // Port 0 (any free port) is allowed: tests and local setups use it.
    if w.listen.parse::<SocketAddr>().is_err() {
        ck.report(
            &path(&["writer", "listen"]),
            q(&w.listen),
            "not an address:port, e.g. \"0.0.0.0:10809\"",
        );
    }
    if !w.metrics_listen.is_empty() && w.metrics_listen.parse::<SocketAddr>().is_err() {
        ck.report(
            &path(&["writer", "metrics-listen"]),
            q(&w.metrics_listen),
            "not an address:port, e.g. \"127.0.0.1:9810\", or \"\" to disable metrics",
        );
    }
    for (key, p, may_be_empty) in [
        ("unix-socket", &w.unix_socket, true),
        ("control-socket", &w.control_socket, false),
    ] {
        let empty = p.as_os_str().is_empty();
        if (empty && !may_be_empty) || (!empty && !p.is_absolute()) {
            ck.report(
                &path(&["writer", key]),
                q(&p.display().to_string()),
                "must be an absolute path",
            );
        }
    }
    if !w.journal_dir.is_empty() && !w.journal_dir.starts_with('/') {
        ck.report(
            &path(&["writer", "journal-dir"]),
            q(&w.journal_dir),
            "must be an absolute path, or \"\" for <retention mountpoint>/mtkit",
        );
    }
    if w.max_connections == 0 {
        ck.report(
            &path(&["writer", "max-connections"]),
            0,
            "must be at least 1",
        );
    }
    if w.max_request_size < Size(4096) {
        ck.report(
            &path(&["writer", "max-request-size"]),
            q(&w.max_request_size.to_string()),
            "must be at least \"4K\" (the default is \"32M\")",
        );
    } else if w.max_request_size.bytes() > u64::from(u32::MAX) {
        ck.report(
            &path(&["writer", "max-request-size"]),
            q(&w.max_request_size.to_string()),
            "must be below \"4G\": an NBD request length is 32 bits (the default is \"32M\")",
        );
    }
    if w.max_buffer < w.max_request_size {
        ck.report(
            &path(&["writer", "max-buffer"]),
            q(&w.max_buffer.to_string()),
            format!(
                "must be at least max-request-size ({}): one request must fit (the default is \"256M\")",
                w.max_request_size
            ),
        );
    }
    if w.journal_segment_size < Size(Size::MIB) || w.journal_segment_size > Size(Size::GIB) {
        ck.report(
            &path(&["writer", "journal-segment-size"]),
            q(&w.journal_segment_size.to_string()),
            "must be from \"1M\" to \"1G\" (the default is \"64M\")",
        );
    }
    if w.idle_timeout.secs() == 0 {
        ck.report(
            &path(&["writer", "idle-timeout"]),
            q(&w.idle_timeout.to_string()),
            "must be above zero, e.g. \"15m\"",
        );
    }
    for (key, span, example) in [
        ("negotiation-timeout", w.negotiation_timeout, "30s"),
        ("request-timeout", w.request_timeout, "30s"),
    ] {
        if span.secs() == 0 {
            ck.report(
                &path(&["writer", key]),
                q(&span.to_string()),
                format!("must be above zero, e.g. \"{example}\""),
            );
        }
    }
    if w.max_negotiating == 0 {
        ck.report(
            &path(&["writer", "max-negotiating"]),
            0,
            "must be at least 1 (the default is 16)",
        );
    }
    if let Some(tls) = &w.tls {
        let files = [("cert", &tls.cert), ("key", &tls.key), ("ca", &tls.ca)];
        let given: Vec<_> = files
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if tls.dir.is_none() && given.len() < 3 {
            let missing: Vec<_> = files
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            ck.report(
                &path(&["writer", "tls"]),
                "{}",
                format!(
                    "TLS needs dir (holding ca-cert.pem, server-cert.pem, server-key.pem) or all of \
                     cert, key and ca; missing: {}",
                    missing.join(", ")
                ),
            );
        } else if tls.dir.is_some() && !given.is_empty() {
            ck.report(
                &path(&["writer", "tls", "dir"]),
                q(&tls.dir.as_ref().expect("checked").display().to_string()),
                format!(
                    "give either dir or cert/key/ca, not both (also set: {})",
                    given.join(", ")
                ),
            );
        }
    }
}
