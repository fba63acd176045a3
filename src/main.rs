//! The mtkit command: logging, argument parsing and dispatch; everything else is in the library.

use clap::Parser;
use mtkit::cli::{Cli, Global, LogFormat, init_logging};
use mtkit::error::{ChecksFailed, exit_code};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    cli.restore_sigpipe();
    init_logging(&cli.global);
    let format = cli.global.log_format;
    if let Err(err) = cli.run() {
        if err.downcast_ref::<ChecksFailed>().is_none() {
            match format {
                // A pipeline reading JSON log lines gets the fatal error as one too.
                LogFormat::Json => tracing::error!("exit-code" = exit_code(&err), "{err:#}"),
                LogFormat::Plain => eprintln!("mtkit: error: {err:#}"),
            }
        }
        std::process::exit(exit_code(&err));
    }
}

/// A command line clap rejects: its own message and exit code 2, as a JSON log line when
/// `--log-format json` was asked for (help and --version print as they are).
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
    let args: Vec<String> = std::env::args().collect();
    let json = args
        .windows(2)
        .any(|w| w[0] == "--log-format" && w[1] == "json")
        || args.iter().any(|a| a == "--log-format=json");
    if !json || matches!(e.kind(), DisplayHelp | DisplayVersion) {
        e.exit();
    }
    init_logging(&Global {
        config: None,
        verbose: 0,
        quiet: false,
        log_format: LogFormat::Json,
    });
    let text = e.render().to_string();
    tracing::error!("exit-code" = e.exit_code(), "{}", text.trim_end());
    std::process::exit(e.exit_code());
}
