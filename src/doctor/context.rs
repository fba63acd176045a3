//! Where and how the doctor's checks run: the root they read through and the config they
//! judge. Its own module so that every group of checks (`checks`, `writer`) looks down at it.

use crate::config::Config;
use std::path::{Path, PathBuf};

/// Where and how the checks run.
pub struct Context<'a> {
    pub root: &'a Path,
    pub config: &'a Config,
    /// Skip checks that need the network
    pub offline: bool,
}

impl Context<'_> {
    pub(super) fn live(&self) -> bool {
        self.root == Path::new("/")
    }
    /// A path of the target system (given relative to its `/`) under the root.
    pub(super) fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}
