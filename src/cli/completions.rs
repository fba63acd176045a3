//! `mtkit completions SHELL`: shell completion script, generated from the clap definitions.

/// Print a shell completion script (bash: /etc/bash_completion.d/mtkit)
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// `cmd`: the whole command line, as clap describes it.
    pub fn run(self, mut cmd: clap::Command) -> anyhow::Result<()> {
        clap_complete::generate(self.shell, &mut cmd, "mtkit", &mut std::io::stdout());
        Ok(())
    }
}
