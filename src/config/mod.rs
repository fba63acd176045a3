//! appliance.toml: loading it, the model of every section and key with its embedded
//! defaults (`model`), validation with located errors (`validate`).

pub mod error;
mod model;
pub mod partitions;
pub mod reach;
pub mod ssh;
pub mod units;
mod validate;
pub mod writer_names;

pub use error::{ConfigError, Problem};
pub use model::*;
pub use units::{AutoSize, Size, Span};
pub use validate::{KNOWN_FILESYSTEMS, is_hostname, is_sd_path, is_sha512_crypt};

use std::path::{Path, PathBuf};

/// The largest config file read (300k package names take ~4 MiB).
pub const MAX_CONFIG: u64 = 64 << 20;
/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `None` for the embedded defaults.
    pub path: Option<PathBuf>,
    /// What works but is risky (located like problems); commands log them.
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// Where the config came from, for messages.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "embedded defaults".into(),
        }
    }

    /// A path the config names: a relative one is next to the config file (like
    /// `root-password-file`), wherever mtkit runs from.
    pub fn beside(&self, value: &str) -> PathBuf {
        let p = PathBuf::from(value);
        match self.path.as_deref().and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        }
    }
}

impl Config {
    /// Parses and validates config text; `name` is used in error locations.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        validate::parse(text, name)
    }

    /// Like [`Config::parse`], with the warnings of a valid config.
    pub fn parse_with_warnings(
        text: &str,
        name: &str,
    ) -> Result<(Config, Vec<Problem>), ConfigError> {
        validate::parse_with_warnings(text, name, None)
    }

    /// Loads the config file at `path`, or the embedded defaults for `None` (which file
    /// `--config` defaults to is the command line's business, not the model's).
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        let Some(path) = path.map(Path::to_path_buf) else {
            return Ok(Loaded {
                config: Config::default(),
                path: None,
                warnings: Vec::new(),
            });
        };
        // Only a regular file, at most 64 MiB: a FIFO at the config would hang every
        // command, /dev/zero would be read until memory runs out.
        let bytes = crate::files::read_input(&path, MAX_CONFIG).map_err(|e| ConfigError::Read {
            path: path.clone(),
            source: e,
        })?;
        let name = path.display().to_string();
        let text = validate::utf8(&bytes, &name)?;
        // Files the config names (the SSH key file) are read from its folder.
        let base = path.parent().unwrap_or(Path::new(""));
        let (mut config, warnings) = validate::parse_with_warnings(text, &name, Some(base))?;
        // A relative root-password-file is next to the config, wherever mtkit runs from.
        if let Some(f) = config.appliance.root_password_file.as_mut()
            && f.is_relative()
            && let Some(dir) = path.parent()
        {
            *f = dir.join(&*f);
        }
        Ok(Loaded {
            config,
            path: Some(path),
            warnings,
        })
    }

    /// The config as TOML with every default filled in (the "resolved" appliance.toml).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    /// The appliance.toml carried to the machine: every default filled in, and no
    /// `root-password-file` (a path on the build host; its hash goes in the kickstart only).
    /// A `root-password-hash` given as a hash is kept; a plain password never appears.
    pub fn resolved_toml(&self) -> String {
        let mut c = self.clone();
        c.appliance.root_password_file = None;
        // Its keys were added to ssh-authorized-keys when the config was loaded.
        c.access.ssh_authorized_keys_file = None;
        format!(
            "# appliance.toml resolved by mtkit {}: every key with its value.\n{}",
            env!("CARGO_PKG_VERSION"),
            c.to_toml()
        )
    }
}
