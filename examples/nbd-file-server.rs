//! Serves files over NBD with mtkit's server (no journal): for scripts/bench-nbd.
//!
//! Usage: nbd-file-server [--tls-dir DIR] LISTEN NAME=FILE...
//! LISTEN is HOST:PORT or a Unix socket path (containing '/'). Stops on SIGINT/SIGTERM
//! (the default action: the benchmark kills it).

use std::sync::Arc;

use mtkit::config::WriterTls;
use mtkit::writer::FileExport;
use mtkit::writer::nbd::{Server, ServerOptions, StaticResolver};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = ServerOptions::default();
    if args.first().map(String::as_str) == Some("--tls-dir") {
        let dir = args.get(1).cloned().unwrap_or_default();
        args.drain(..2);
        opts.tls = Some(mtkit::writer::certs::server_config(&WriterTls {
            dir: Some(dir.into()),
            ..WriterTls::default()
        })?);
    }
    let (listen, exports) = args.split_first().ok_or_else(|| {
        anyhow::anyhow!("usage: nbd-file-server [--tls-dir DIR] LISTEN NAME=FILE...")
    })?;
    let mut resolver = StaticResolver::new();
    for e in exports {
        let (name, path) = e
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected NAME=FILE, got {e:?}"))?;
        let export = FileExport::open(path.as_ref(), false)?;
        resolver = resolver.with(name, path, Arc::new(export));
    }
    let server = Server::new(Arc::new(resolver), opts);
    if listen.contains('/') {
        let _ = std::fs::remove_file(listen);
        server.serve_unix(std::os::unix::net::UnixListener::bind(listen)?)?;
    } else {
        server.serve_tcp(std::net::TcpListener::bind(listen)?)?;
    }
    Ok(())
}
