//! `mtkit writer run|status`: the writer service.

use super::Global;
use crate::writer::control::{Request, request_or_offline};
use crate::writer::service::Status;

/// The writer service (NBD target with a retention journal)
#[derive(Debug, clap::Args)]
pub struct WriterArgs {
    #[command(subcommand)]
    pub command: WriterCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum WriterCommand {
    /// Run the service in the foreground (SIGTERM drains and exits 0)
    Run {
        /// The system is here: disks, journal, sockets, /etc/mtkit/tls, /sys and /proc are
        /// read under DIR (tests, images)
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
    },
    /// Groups, disks, clients, journal and RPO of the running service
    Status {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    Certs(super::writer_certs::CertsArgs),
}

impl WriterArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self.command {
            WriterCommand::Certs(a) => a.run(g),
            WriterCommand::Run { root } => {
                super::check_root(&root)?;
                crate::writer::service::run_at(&g.load_config()?.config, &root)
            }
            WriterCommand::Status { json } => {
                let cfg = g.load_config()?.config;
                let v = request_or_offline(&cfg, &Request::Status, &mut |_, _| {})?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(());
                }
                let s: Status = serde_json::from_value(v)?;
                print!("{}", render_status(&s));
                // How clients connect, from the same rules the service starts with.
                if let Ok(plan) = crate::writer::preflight::tls_plan(&cfg.writer) {
                    println!("TLS: {}", plan.describe(&cfg));
                }
                Ok(())
            }
        }
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// The plain-text status: a paragraph per group.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    for g in &s.groups {
        let newest = g
            .newest_point
            .as_ref()
            .map_or("none".into(), |p| format!("{} at {}", p.id, p.time));
        out += &format!(
            "group {}: {}{}\n  points: {} (newest {newest}; history {}s)\n  journal: {} in {} segment(s)\n  RPO lag: {}s\n",
            g.name,
            g.state,
            g.recovered_to.map_or(String::new(), |p| format!(
                " (at point {p}, awaiting commit)"
            )),
            if g.lost_points > 0 {
                format!("{}, {} LOST", g.points, g.lost_points)
            } else {
                g.points.to_string()
            },
            g.history_secs,
            mib(g.journal_bytes),
            g.journal_segments,
            g.rpo_lag_secs
        );
        for d in &g.disks {
            out += &format!(
                "  disk {}: {} ({}), {} client(s), {} written\n",
                d.name,
                d.path,
                mib(d.size),
                d.clients,
                mib(d.bytes_written)
            );
        }
        for w in &g.warnings {
            out += &format!("  WARNING: {w}\n");
        }
    }
    for r in &s.refused {
        out += &format!(
            "disk {} (group {}) NOT SERVED: {} {}\n",
            r.name, r.group, r.path, r.reason
        );
    }
    for c in &s.closed {
        out += &format!("group {} CLOSED: {}\n", c.name, c.reason);
    }
    if s.groups.is_empty() && s.refused.is_empty() && s.closed.is_empty() {
        out += "no [[writer.disk]] configured\n";
    }
    out
}
