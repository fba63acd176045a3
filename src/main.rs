//! The mtkit command: logging, argument parsing and dispatch; everything else is in the library.

use clap::Parser;
use mtkit::cli::{Cli, init_logging};
use mtkit::error::{ChecksFailed, exit_code};

fn main() {
    let cli = Cli::parse();
    cli.restore_sigpipe();
    init_logging(&cli.global);
    if let Err(err) = cli.run() {
        if err.downcast_ref::<ChecksFailed>().is_none() {
            eprintln!("mtkit: error: {err:#}");
        }
        std::process::exit(exit_code(&err));
    }
}
