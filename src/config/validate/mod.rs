//! Config parsing with file:line:column errors, and the semantic checks across keys.
//!
//! Parsing collects every problem, not just the first: a value serde rejects is reported
//! and removed so the rest of the file still gets read (`deserialize`), then each
//! section's rules run over the typed model, one module per section (`appliance`,
//! `network`, `writer`, ...). Each problem is located (`locate`) with the spans of a
//! `toml_edit` parse of the original text; a key the file does not set is shown with its
//! default value.

mod access;
mod address;
mod appliance;
mod configuration_server;
mod deserialize;
mod disks;
mod locate;
mod media;
mod network;
mod packages;
mod paths;
mod policy;
mod retention;
mod sources;
#[cfg(test)]
mod testing;
mod writer;
mod writer_disks;

pub use address::is_hostname;
pub use appliance::is_sha512_crypt;
pub use sources::KNOWN_FILESYSTEMS;
pub use writer_disks::is_sd_path;

use super::Config;
use super::error::{ConfigError, Problem};
use deserialize::deserialize_all;
use locate::{Checker, first_line, line_col};
use toml_edit::Document;

/// The config's bytes as text, or a problem located at the first byte that is not UTF-8
/// (line and column counted in the valid text before it).
pub(super) fn utf8<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix");
        let (l, c) = line_col(good, good.len());
        ConfigError::Invalid {
            problems: vec![Problem {
                location: format!("{name}:{l}:{c}"),
                key: String::new(),
                message: format!(
                    "byte 0x{:02x} is not UTF-8: save the file as UTF-8 (TOML is UTF-8 only)",
                    bytes[e.valid_up_to()]
                ),
            }],
        }
    })
}

pub(super) fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
    parse_with_warnings(text, name, None).map(|(c, _)| c)
}

/// Like [`parse`], and the warnings of a valid config (located like problems). `base` is
/// the folder files named by the config are read from (`None`: not read).
pub(super) fn parse_with_warnings(
    text: &str,
    name: &str,
    base: Option<&std::path::Path>,
) -> Result<(Config, Vec<Problem>), ConfigError> {
    let doc = Document::parse(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                format!("{name}:{l}:{c}")
            }
            None => name.to_string(),
        };
        // toml_edit says "duplicate key" without naming it: add the text it points at.
        let mut message = first_line(e.message());
        if let Some(snippet) = e.span().and_then(|s| text.get(s)).map(str::trim)
            && message.starts_with("duplicate key")
            && !snippet.is_empty()
            && snippet.len() <= 40
            && !snippet.contains('\n')
            && !message.contains(snippet)
        {
            message = format!("{message} `{snippet}`");
        }
        ConfigError::Invalid {
            problems: vec![Problem {
                location,
                key: String::new(),
                message,
            }],
        }
    })?;
    let mut ck = Checker::new(text, name, doc);
    let mut config = deserialize_all(&mut ck);
    check(&config, &mut ck);
    if let Some(base) = base {
        access::read_key_file(&mut config, base, &mut ck);
    }
    let (problems, warnings) = ck.into_problems();
    if problems.is_empty() {
        Ok((config, warnings))
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// Every section's rules. Problems are shown in file order, and those the file gives no
/// place to (a default of a section it lacks) in the order they are found here.
fn check(c: &Config, ck: &mut Checker<'_>) {
    let sections: [fn(&Config, &mut Checker<'_>); 13] = [
        paths::check,
        appliance::check,
        access::check,
        network::check,
        configuration_server::check,
        disks::check,
        sources::check,
        packages::check,
        media::check,
        retention::check,
        writer::check,
        writer_disks::check,
        policy::check,
    ];
    for check_section in sections {
        check_section(c, ck);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::testing::problems;

    #[test]
    fn defaults_parse_from_empty_text() {
        assert_eq!(Config::parse("", "t.toml").unwrap(), Config::default());
    }

    #[test]
    fn semantic_problem_shows_line_and_default() {
        let p = problems("[network]\nip = \"10.0.0.5\"\nprefix = 33\n");
        assert_eq!(
            p[0],
            "t.toml:2:6: [network] ip = \"10.0.0.5\": not used with bootproto = \"dhcp\" (the \
             default): set bootproto = \"static\" to use it, or remove it"
        );
        assert_eq!(p[1], "t.toml:3:10: [network] prefix = 33: must be 0..=32");
        let p = problems("[disks]\nroot-size = \"95G\"\n");
        assert!(
            p[0].starts_with(
                "t.toml:1:1: [disks] os-disk-size = \"100G\" (default): the partitions need"
            ),
            "{p:#?}"
        );
        let (_, w) = Config::parse_with_warnings(
            "[appliance]\ntimezone = \"UTC\"\n[network]\nbootproto = \"static\"\nip = \"10.0.0.5\"\n",
            "t.toml",
        )
        .unwrap();
        assert!(
            w[0].to_string().starts_with("t.toml:1:1: [appliance] hostname = \"\" (default): with bootproto = \"static\" nothing names the machine"),
            "{w:#?}"
        );
    }

    #[test]
    fn resolved_toml_parses_back() {
        let mut c = Config::default();
        c.appliance.root_password_file = Some("/tmp/pw".into());
        c.writer.disk.push(super::super::WriterDisk {
            name: "d0".into(),
            path: "/dev/sdb".into(),
            scsi_id: "36000c29a1b2c3d4e5f60718293a4b5c6".into(),
            group: "g".into(),
            size: None,
        });
        let back = Config::parse(&c.resolved_toml(), "r.toml").unwrap();
        c.appliance.root_password_file = None;
        assert_eq!(back, c);
    }
}
