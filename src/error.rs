//! Error kinds that decide the process exit code (see ARCHITECTURE.md, "Exit codes").
//!
//! Near the bottom of the crate: it names only leaf error types (`config::error`), so every
//! module may use it without an import loop.

use std::fmt;

/// Bad usage or bad input (config, arguments, files): exit code 2, nothing changed.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Shorthand: `return Err(bad_input(format!(...)))`.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// A check found problems that were already reported: exit code 1 with no further message.
#[derive(Debug)]
pub struct ChecksFailed;

impl fmt::Display for ChecksFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one or more checks failed")
    }
}

impl std::error::Error for ChecksFailed {}

/// The exit code an error maps to: 2 for bad input, 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<BadInput>() || cause.is::<crate::config::error::ConfigError>() {
            return 2;
        }
    }
    1
}
