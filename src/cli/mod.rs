//! The command line: global options, one module per subcommand, dispatch.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

pub mod apply;
pub mod bookmark;
pub mod build;
pub mod commit;
pub mod completions;
pub mod doctor;
pub mod firstboot;
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

/// Where `--config` points when it is not given and the file exists.
pub const DEFAULT_CONFIG: &str = "/etc/mtkit/appliance.toml";

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// appliance.toml to use [default: /etc/mtkit/appliance.toml when it exists, else the embedded defaults]
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "MTKIT_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v debug, -vv trace)
    #[arg(long, short, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

impl Global {
    /// Loads the config named by `--config` (or the default path, or the embedded defaults).
    pub fn load_config(&self) -> anyhow::Result<crate::config::Loaded> {
        let default = Path::new(DEFAULT_CONFIG);
        let path = match &self.config {
            Some(p) => Some(p.as_path()),
            None => default.exists().then_some(default),
        };
        let loaded = crate::config::Config::load(path)?;
        tracing::debug!(origin = %loaded.origin(), "config loaded");
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(loaded)
    }
}

/// `--root` must be a folder: a typo there would otherwise read as an empty system.
pub(crate) fn check_root(root: &Path) -> anyhow::Result<()> {
    if !root.is_dir() {
        return Err(crate::error::bad_input(format!(
            "--root {}: not a folder (give the folder the system is mounted at)",
            root.display()
        )));
    }
    Ok(())
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
            Command::Completions(a) => a.run(g),
            Command::Manpage(a) => a.run(g),
        }
    }
}

/// Sets up logging to stderr from `-v`/`-q`/`--log-format` (RUST_LOG overrides).
pub fn init_logging(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: a kickstart %post log or a pipeline's captured stderr
    // must not fill up with escape codes.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.without_time().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
