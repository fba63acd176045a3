//! `mtkit completions SHELL`: shell completion script, generated from the clap definitions.

use super::{Cli, Global};
use clap::CommandFactory;

/// Print a shell completion script (bash: /etc/bash_completion.d/mtkit)
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

impl CompletionsArgs {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        let mut cmd = Cli::command();
        clap_complete::generate(self.shell, &mut cmd, "mtkit", &mut std::io::stdout());
        Ok(())
    }
}
