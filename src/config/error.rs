//! The errors of reading and checking appliance.toml: every problem located at
//! `file:line:column`. A leaf (std and thiserror only), so that the exit-code mapping of
//! the crate's `error` module can name it without depending on the rest of config.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a config, located at a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `file:line:column` of the offending value (or key).
    pub location: String,
    /// `[network] prefix = 33`
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.location, self.message)
        } else {
            write!(f, "{}: {}: {}", self.location, self.key, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}
