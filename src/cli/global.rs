//! The options every command takes (`--config`, `-v`, `-q`, `--log-format`), what they set
//! up (the config, logging), and the `--root` check the commands share.

use std::path::{Path, PathBuf};

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
