//! Config parsing with file:line:column errors, and the semantic checks across keys.
//!
//! Parsing collects every problem, not just the first: a value serde rejects is reported
//! and removed so the rest of the file still gets read, then the checks below run over the
//! typed model. Each problem is located with the spans of a `toml_edit` parse of the
//! original text; a key the file does not set is shown with its default value.

mod access;
mod address;
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
mod writer;
mod writer_disks;

use super::error::{ConfigError, Problem};
use super::{Config, Size};
pub use address::is_hostname;
use deserialize::deserialize_all;
use locate::{Checker, first_line, line_col, path, q};
use regex::Regex;
pub use sources::KNOWN_FILESYSTEMS;
use std::sync::LazyLock;
use toml_edit::Document;
pub use writer_disks::is_sd_path;

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

/// The longest name a Linux machine can carry: `sethostname(2)` takes at most
/// HOST_NAME_MAX = 64 bytes (the kernel's `__NEW_UTS_LEN`), and the appliance's
/// `[appliance] hostname` is set as it is written (anaconda's `network --hostname`),
/// fully qualified. Shorter than DNS's 253, so this is the limit that applies here.
pub const MACHINE_HOSTNAME_MAX: usize = 64;

/// SHA-512 crypt shape: `$6$[rounds=N$]salt$hash`, salt 1..=16 and hash 86 crypt-base64 chars.
pub fn is_sha512_crypt(s: &str) -> bool {
    let b64 = |t: &str| {
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let Some(rest) = s.strip_prefix("$6$") else {
        return false;
    };
    let rest = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let Some((n, r)) = r.split_once('$') else {
                return false;
            };
            match n.parse::<u32>() {
                Ok(n) if (1000..=999_999_999).contains(&n) => r,
                _ => return false,
            }
        }
        None => rest,
    };
    let Some((salt, hash)) = rest.split_once('$') else {
        return false;
    };
    (1..=16).contains(&salt.len()) && b64(salt) && hash.len() == 86 && b64(hash)
}

/// A locale name as RHEL 6 anaconda's `lang` takes it: `en_US.UTF-8`, `de_DE@euro`, `ja_JP`.
pub fn is_locale(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z]{2,3}(?:_[A-Z]{2})?(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,15})?(?:@[a-z][a-z0-9]{0,15})?$")
            .expect("regex")
    });
    RE.is_match(s)
}

/// A console keymap name as system-config-keyboard lists them: `us`, `de-latin1-nodeadkeys`,
/// `fr_CH-latin1`, `jp106`, `ru.map`. Starts with a letter (so never an option like `--help`).
pub fn is_keymap(s: &str) -> bool {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$").expect("regex"));
    RE.is_match(s)
}

fn check(c: &Config, ck: &mut Checker<'_>) {
    paths::check(c, ck);
    check_appliance(c, ck);
    access::check(c, ck);
    network::check(c, ck);
    configuration_server::check(c, ck);
    disks::check(c, ck);
    sources::check(c, ck);
    packages::check(c, ck);
    media::check(c, ck);
    retention::check(c, ck);
    writer::check(c, ck);
    writer_disks::check(c, ck);
    policy::check(c, ck);
}

fn check_appliance(c: &Config, ck: &mut Checker<'_>) {
    let a = &c.appliance;
    // Empty: the name DHCP gives (a static network needs one, see check_network).
    if !a.hostname.is_empty() && !is_hostname(&a.hostname) {
        ck.report(
            &path(&["appliance", "hostname"]),
            q(&a.hostname),
            "not an RFC 1123 host name: dot-separated labels of 1-63 letters, digits and \
             inner hyphens, e.g. \"mt01.example.local\"",
        );
    } else if a.hostname.len() > MACHINE_HOSTNAME_MAX {
        ck.report(
            &path(&["appliance", "hostname"]),
            q(&a.hostname),
            format!(
                "{} characters: a Linux host name is at most {MACHINE_HOSTNAME_MAX} \
                 (HOST_NAME_MAX; DNS allows 253, the kernel does not); shorten the domain",
                a.hostname.len()
            ),
        );
    }
    if a.timezone.parse::<chrono_tz::Tz>().is_err() {
        ck.report(
            &path(&["appliance", "timezone"]),
            q(&a.timezone),
            "not a known Olson time zone: write e.g. \"UTC\", \"Europe/Berlin\", \"America/New_York\"",
        );
    }
    if !is_locale(&a.lang) {
        ck.report(
            &path(&["appliance", "lang"]),
            q(&a.lang),
            "not a locale name: language_TERRITORY[.codeset][@modifier], e.g. \"en_US.UTF-8\", \
             \"de_DE@euro\"",
        );
    }
    if !is_keymap(&a.keyboard) {
        ck.report(
            &path(&["appliance", "keyboard"]),
            q(&a.keyboard),
            "not a keymap name: a letter, then letters, digits, '.', '_' or '-', e.g. \"us\", \
             \"de-latin1-nodeadkeys\"",
        );
    }
    if !a.root_password_hash.is_empty() && !is_sha512_crypt(&a.root_password_hash) {
        ck.report(
            &path(&["appliance", "root-password-hash"]),
            "\"(hidden)\"",
            "not a SHA-512 crypt hash ($6$salt$ and 86 characters): make one with \
             `openssl passwd -6`, or set root-password-file instead",
        );
    }
    if let Some(file) = &a.root_password_file {
        if !a.root_password_hash.is_empty() {
            ck.report(
                &path(&["appliance", "root-password-file"]),
                q(&file.display().to_string()),
                "root-password-hash is set too: keep only one of them",
            );
        } else if file.as_os_str().is_empty() {
            ck.report(
                &path(&["appliance", "root-password-file"]),
                "\"\"",
                "empty path: name a file whose first line is the password, or remove the key",
            );
        }
    }
    if a.memory < Size::from_mib(512) {
        ck.report(
            &path(&["appliance", "memory"]),
            q(&a.memory.to_string()),
            "a CentOS 6 master target needs at least \"512M\" of RAM (the sizing guide says \"16G\")",
        );
    }
    if a.cpus == 0 {
        ck.report(&path(&["appliance", "cpus"]), 0, "must be at least 1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn problems(text: &str) -> Vec<String> {
        match Config::parse(text, "t.toml") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems }) => {
                problems.iter().map(|p| p.to_string()).collect()
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_parse_from_empty_text() {
        assert_eq!(Config::parse("", "t.toml").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_located() {
        let e = Config::parse("[network]\nprefx = 3\n", "t.toml").unwrap_err();
        assert!(e.to_string().starts_with("t.toml:2:1:"), "{e}");
    }

    #[test]
    fn every_bad_key_is_reported() {
        let p = problems(
            "[network]\nprefix = 300\nbootproto = \"statik\"\n[disks]\nroot-size = \"40\"\n",
        );
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(
            p[0].starts_with("t.toml:2:10: [network] prefix = 300: "),
            "{}",
            p[0]
        );
        assert!(
            p[1].starts_with("t.toml:3:13: [network] bootproto = \"statik\": "),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with("t.toml:5:13: [disks] root-size = \"40\": "),
            "{}",
            p[2]
        );
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
    fn inline_tables_are_located_too() {
        let p = problems("writer = { disk = [{ name = \"a\", path = \"rel\", group = \"g\" }] }\n");
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with(
                "t.toml:1:41: [[writer.disk]] #1 path = \"rel\": must be an absolute path"
            ),
            "{}",
            p[0]
        );
    }

    #[test]
    fn crypt_shapes() {
        let h = format!("$6$saltsalt${}", "a".repeat(86));
        assert!(is_sha512_crypt(&h));
        assert!(is_sha512_crypt(&format!(
            "$6$rounds=5000$salt${}",
            "b".repeat(86)
        )));
        assert!(!is_sha512_crypt(&format!("$5$salt${}", "a".repeat(43))));
        assert!(!is_sha512_crypt(&format!("$6$salt${}", "a".repeat(85))));
        assert!(!is_sha512_crypt(&format!(
            "$6$rounds=10$salt${}",
            "a".repeat(86)
        )));
        assert!(!is_sha512_crypt("plaintext"));
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
