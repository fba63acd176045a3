//! `mtkit writer certs`: the arguments; the certificates are made by `writer::certs`.

use std::path::PathBuf;

use super::Global;
use crate::error::bad_input;
use crate::writer::certs::{self, Expiry, Pki, ServerIdentity};

/// Make TLS certificates for the writer: CA, server, one per client
///
/// Writes DIR/ca-cert.pem, DIR/ca-key.pem, DIR/server-cert.pem, DIR/server-key.pem and
/// DIR/clients/NAME/{ca-cert,client-cert,client-key}.pem. DIR is /etc/mtkit/tls by default,
/// where the appliance keeps its own CA when `[writer.tls]` is not set (or `[writer.tls]
/// dir` when it is). Give each replication source its DIR/clients/NAME folder (qemu:
/// `--object tls-creds-x509,dir=...,endpoint=client`; libnbd: `tls-certificates=...`).
/// Run again with more --client names to add clients: an existing CA and server
/// certificate are reused, existing files are never replaced without --force.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Folder to write the certificates to [default: [writer.tls] dir, else /etc/mtkit/tls]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The system is mounted here: the default folder is DIR/etc/mtkit/tls
    #[arg(long, value_name = "DIR", default_value = "/", conflicts_with = "out")]
    pub root: PathBuf,
    /// Client identity (certificate CN) to make a certificate for; repeat for more
    #[arg(long = "client", value_name = "NAME")]
    pub clients: Vec<String>,
    /// Validity of new certificates, in days
    #[arg(long, default_value_t = certs::DEFAULT_DAYS)]
    pub days: u32,
    /// Replace existing server and client certificates (the CA is kept)
    #[arg(long)]
    pub force: bool,
}

impl CertsArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let loaded = g.load_config()?;
        let c = &loaded.config;
        for name in &self.clients {
            certs::check_client_name(name)?;
        }
        let not_after = Expiry::days_from_now(self.days)?;
        let pki = match (&self.out, &c.writer.tls) {
            (Some(out), _) => Pki::open(out)?,
            (None, Some(tls)) => match &tls.dir {
                Some(dir) => Pki::open(&crate::host::under(&self.root, dir))?,
                None => {
                    return Err(bad_input(
                        "[writer.tls] names its files one by one, so the folder of the CA key \
                         is not known: give --out DIR",
                    ));
                }
            },
            (None, None) => {
                super::check_root(&self.root)?;
                Pki::open_under(&self.root, certs::default_rel())?
            }
        };
        let id = ServerIdentity::of(c, certs::machine_hostname().as_deref());
        pki.ensure_server(&id, not_after, self.force)?;
        for name in &self.clients {
            pki.issue_client(name, not_after, self.force)?;
        }
        println!("{}", pki.dir().display());
        Ok(())
    }
}
