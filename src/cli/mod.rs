//! The command line: global options, one module per subcommand, dispatch.

pub(crate) use global::check_root;
pub use global::{DEFAULT_CONFIG, Global, LogFormat, init_logging};

use clap::{CommandFactory, Parser, Subcommand};

pub mod apply;
pub mod bookmark;
pub mod build;
pub mod commit;
pub mod completions;
pub mod doctor;
pub mod firstboot;
mod global;
pub mod init;
pub mod iso;
pub mod kickstart;
pub mod manpage;
pub mod points;
pub mod recover;
pub mod retention;
pub mod scsi_ids;
pub mod seal;
pub mod table;
pub mod vmx;
pub mod writer;
pub mod writer_certs;

/// Build and run a disaster-recovery master target appliance.
///
/// Exit codes: 0 success; 1 a check or an operation failed; 2 bad usage or bad
/// input (config, arguments, files), with nothing changed.
#[derive(Debug, Parser)]
#[command(
    name = "mtkit",
    version,
    long_version = crate::media::build_id::LONG_VERSION,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::InitArgs),
    Build(build::BuildArgs),
    Kickstart(kickstart::KickstartArgs),
    Iso(iso::IsoArgs),
    Vmx(vmx::VmxArgs),
    ScsiIds(scsi_ids::ScsiIdsArgs),
    Doctor(doctor::DoctorArgs),
    Apply(apply::ApplyArgs),
    Retention(retention::RetentionArgs),
    Writer(writer::WriterArgs),
    Points(points::PointsArgs),
    Bookmark(bookmark::BookmarkArgs),
    Recover(recover::RecoverArgs),
    Commit(commit::CommitArgs),
    Seal(seal::SealArgs),
    Firstboot(firstboot::FirstbootArgs),
    Completions(completions::CompletionsArgs),
    Manpage(manpage::ManpageArgs),
}

impl Cli {
    /// `mtkit doctor | head` ends quietly, like other Unix tools, instead of panicking on
    /// EPIPE. Not for the writer and its clients: on their sockets EPIPE must stay an error
    /// to handle, which is why Rust ignores SIGPIPE by default.
    pub fn restore_sigpipe(&self) {
        use Command::*;
        if matches!(
            self.command,
            Writer(_) | Points(_) | Bookmark(_) | Recover(_) | Commit(_)
        ) {
            return;
        }
        use nix::sys::signal::{SigHandler, Signal, signal};
        // SAFETY: called from main before any thread is started; SIG_DFL is a valid
        // disposition for SIGPIPE (and cannot fail for it).
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    }

    pub fn run(self) -> anyhow::Result<()> {
        let g = &self.global;
        match self.command {
            Command::Init(a) => a.run(g),
            Command::Build(a) => a.run(g),
            Command::Kickstart(a) => a.run(g),
            Command::Iso(a) => a.run(g),
            Command::Vmx(a) => a.run(g),
            Command::ScsiIds(a) => a.run(g),
            Command::Doctor(a) => a.run(g),
            Command::Apply(a) => a.run(g),
            Command::Retention(a) => a.run(g),
            Command::Writer(a) => a.run(g),
            Command::Points(a) => a.run(g),
            Command::Bookmark(a) => a.run(g),
            Command::Recover(a) => a.run(g),
            Command::Commit(a) => a.run(g),
            Command::Seal(a) => a.run(g),
            Command::Firstboot(a) => a.run(g),
            // They describe the whole command line, which they are part of.
            Command::Completions(a) => a.run(Cli::command()),
            Command::Manpage(a) => a.run(Cli::command()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every subcommand says what it does and every option has help text.
    #[test]
    fn every_command_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && path != " mtkit" {
                missing.push(format!("{path}: no about"));
            }
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && a.get_help().is_none() {
                    missing.push(format!("{path} {}: no help", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
