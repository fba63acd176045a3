//! `mtkit kickstart`: render ks.cfg for the CentOS 6.6 minimal master target.

use super::Global;
use crate::kickstart::{self, RenderOptions};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Render the CentOS 6.6 master-target kickstart
#[derive(Debug, clap::Args)]
pub struct KickstartArgs {
    /// Where to write it; `-` prints to stdout
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Replace the output file if it exists
    #[arg(long)]
    pub force: bool,
}

impl KickstartArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        if self.output != Path::new("-") {
            crate::files::check_new_output(&self.output, self.force)?;
        }
        let loaded = g.load_config()?;
        // The kickstart installs the writer service: refuse a config it would not start with.
        crate::writer::preflight::check(&loaded.config)?;
        let text = kickstart::render(&loaded.config, &RenderOptions::default())?;
        // Not refused here (pipelines render kickstarts for other uses), but said.
        for b in crate::config::reach::blockers(&loaded.config) {
            tracing::warn!("{b} (`mtkit build` refuses this)");
        }
        write_output(&self.output, &text)?;
        if self.output != Path::new("-") {
            tracing::info!(path = %self.output.display(), origin = %loaded.origin(), "kickstart written");
        }
        Ok(())
    }
}

/// Writes `text` to `path` atomically, or to stdout for `-`.
pub(crate) fn write_output(path: &Path, text: &str) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .context("writing to stdout")
    } else if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        // A device or FIFO (/dev/null, /dev/stdout): write into it. A rename would
        // replace the device node with a regular file.
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    } else {
        crate::files::check_output(path)?;
        crate::files::write_atomic(path, text.as_bytes(), 0o644)
    }
}
