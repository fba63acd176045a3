//! What the unit tests of every section check configs with: the lines a parse reports.

use crate::config::Config;
use crate::config::ConfigError;

/// Each problem of `text` (as file `t.toml`) as the user sees it; none for a valid config.
pub(super) fn problems(text: &str) -> Vec<String> {
    match Config::parse(text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems }) => problems.iter().map(|p| p.to_string()).collect(),
        Err(e) => panic!("{e}"),
    }
}
