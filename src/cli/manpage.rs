//! `mtkit manpage`: man pages generated from the clap definitions.

use anyhow::Context;
use std::path::PathBuf;

/// Print the mtkit(1) man page, or write one page per command into a folder
#[derive(Debug, clap::Args)]
pub struct ManpageArgs {
    /// Write mtkit.1 and mtkit-COMMAND.1 for every command into DIR (e.g.
    /// /usr/local/share/man/man1) instead of printing mtkit.1
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

impl ManpageArgs {
    /// `cmd`: the whole command line, as clap describes it.
    pub fn run(self, cmd: clap::Command) -> anyhow::Result<()> {
        match self.out_dir {
            None => {
                let mut out = std::io::stdout().lock();
                clap_mangen::Man::new(cmd)
                    .render(&mut out)
                    .context("writing the man page to stdout")
            }
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(crate::error::bad_input(format!(
                        "--out-dir {}: not a folder (create it first)",
                        dir.display()
                    )));
                }
                clap_mangen::generate_to(cmd, &dir)
                    .with_context(|| format!("writing man pages into {}", dir.display()))?;
                tracing::info!(dir = %dir.display(), "man pages written");
                Ok(())
            }
        }
    }
}
