//! The writer service's process: the NBD listeners, the metrics endpoint, the control
//! socket and the policy pass over one opened [`Writer`], until SIGTERM or SIGINT.

use super::service::Writer;
use crate::config::Config;
use crate::host::under;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// Runs the service until SIGTERM or SIGINT: NBD on TCP and the Unix socket, the control
/// socket, and the policy pass every `tick`.
pub fn run(cfg: &Config) -> anyhow::Result<()> {
    run_at(cfg, Path::new("/"))
}

/// [`run`] on the system under `root`: disks, journal, sockets, TLS files, sysfs and the
/// mount table are all read under it (tests and images; the service itself runs at `/`).
pub fn run_at(written: &Config, root: &Path) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    // The checks `kickstart`, `build` and `doctor` make too: they cannot disagree.
    let tls = super::preflight::check(written)?;
    super::preflight::check_journal_filesystem(written, root)?;
    let mut rebased = written.clone();
    rebased.writer.tls = super::preflight::tls_for_start(written, &tls, root)?;
    for p in [
        &mut rebased.writer.unix_socket,
        &mut rebased.writer.control_socket,
    ] {
        if !p.as_os_str().is_empty() {
            *p = under(root, p);
        }
    }
    let cfg = &rebased;
    // Block the stop signals before any thread starts, so that only sigwait sees them.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    stop.thread_block().context("blocking signals")?;

    // Many clients and the journal's files need more than a shell's soft limit of 1024;
    // the unit and the init script raise the hard limit.
    let nofile = super::fds::raise_nofile_limit();
    let mut opts = super::nbd::ServerOptions::from_config(&cfg.writer)?;
    // More requests in flight per connection make bigger group-commit batches: one journal
    // sync per batch is the cost of the undo log, so its size sets the throughput.
    opts.workers_per_connection = opts.workers_per_connection.max(16);
    let writer = Arc::new(Writer::open_at(written, root)?);
    // The journal still holds the points a pass before the crash or stop had pruned (their
    // segment stayed for newer records): drop them again before anyone can list them.
    let now = super::group::now_us();
    for g in writer.groups.values() {
        super::policy::prune(g, &writer.policy, now);
    }
    let disks = writer.groups.values().map(|g| g.disks.len()).sum();
    let fds = super::fds::FdBudget::new(nofile, disks);
    tracing::info!(
        open_files = nofile,
        for_clients = fds.limit(),
        "open-file limit"
    );
    opts.fds = Some(fds);
    let server = super::nbd::Server::new(writer.clone(), opts);
    let mut threads = Vec::new();
    if !cfg.writer.listen.is_empty() {
        let l = std::net::TcpListener::bind(&cfg.writer.listen)
            .with_context(|| format!("listening on [writer] listen {}", cfg.writer.listen))?;
        tracing::info!(listen = %l.local_addr()?, "NBD server listening");
        let s = server.clone();
        threads.push(spawn("nbd-tcp", move || {
            if let Err(e) = s.serve_tcp(l) {
                tracing::error!(error = %e, "NBD TCP listener failed");
            }
        })?);
    }
    let unix = &cfg.writer.unix_socket;
    if !unix.as_os_str().is_empty() {
        super::control::prepare_socket_path(unix, "unix-socket")?;
        let l = std::os::unix::net::UnixListener::bind(unix)
            .with_context(|| format!("listening on [writer] unix-socket {}", unix.display()))?;
        let s = server.clone();
        threads.push(spawn("nbd-unix", move || {
            if let Err(e) = s.serve_unix(l) {
                tracing::error!(error = %e, "NBD Unix listener failed");
            }
        })?);
    }
    if !cfg.writer.metrics_listen.is_empty() {
        let l = std::net::TcpListener::bind(&cfg.writer.metrics_listen).with_context(|| {
            format!(
                "listening on [writer] metrics-listen {}",
                cfg.writer.metrics_listen
            )
        })?;
        tracing::info!(listen = %l.local_addr()?, "metrics on /metrics");
        let (w, s) = (writer.clone(), server.clone());
        spawn("metrics", move || super::metrics::serve(l, w, s))?;
    }
    let control = super::control::Control::bind(&cfg.writer.control_socket, writer.clone())?;
    spawn("control", move || control.serve())?;
    {
        let w = writer.clone();
        spawn("policy", move || {
            let groups: Vec<_> = w.groups.values().cloned().collect();
            let mut seen = Vec::new();
            loop {
                super::policy::tick(&groups, &w.policy, &mut seen);
                std::thread::sleep(super::policy::tick_period(&w.policy));
            }
        })?;
    }
    tracing::info!(
        groups = writer.groups.len(),
        refused = writer.refused.len(),
        tls = tls.forced(),
        "writer service running"
    );
    let sig = stop.wait().context("waiting for signals")?;
    tracing::info!(signal = ?sig, "stopping: draining connections");
    server.shutdown_handle().shutdown();
    for t in threads {
        let _ = t.join();
    }
    writer.sync_all();
    let _ = std::fs::remove_file(&cfg.writer.control_socket);
    if !unix.as_os_str().is_empty() {
        let _ = std::fs::remove_file(unix);
    }
    tracing::info!("writer service stopped");
    Ok(())
}

/// Starts a named service thread; failing to (out of threads or memory) fails the start
/// with a message instead of the panic of `std::thread::spawn`.
fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .with_context(|| format!("starting the {name} thread"))
}
