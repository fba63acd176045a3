//! Config parsing with file:line:column errors, and the semantic checks across keys.

use super::Config;
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

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

pub(super) fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                format!("{name}:{l}:{c}")
            }
            None => name.to_string(),
        };
        ConfigError::Invalid {
            problems: vec![Problem {
                location,
                key: String::new(),
                message: e.message().trim().to_string(),
            }],
        }
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_from_empty_text() {
        assert_eq!(Config::parse("", "t.toml").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_located() {
        let e = Config::parse("[network]\nprefx = 3\n", "t.toml").unwrap_err();
        assert!(e.to_string().starts_with("t.toml:2:1:"), "{e}");
    }
}
