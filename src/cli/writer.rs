//! `mtkit writer run|status`: the writer service.

use super::Global;

/// The writer service (NBD target with a retention journal)
#[derive(Debug, clap::Args)]
pub struct WriterArgs {
    #[command(subcommand)]
    pub command: WriterCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum WriterCommand {
    /// Run the service in the foreground (SIGTERM drains and exits 0)
    Run,
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
        if let WriterCommand::Certs(a) = self.command {
            return a.run(g);
        }
        super::not_built("writer")
    }
}
