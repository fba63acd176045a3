//! `[appliance]`: the machine itself (host name, time zone, language, keyboard, root
//! password, memory and CPUs).

use super::address::is_hostname;
use super::locate::{Checker, path, q};
use crate::config::Config;
use crate::config::Size;
use regex::Regex;
use std::sync::LazyLock;

/// The longest name a Linux machine can carry: `sethostname(2)` takes at most
/// HOST_NAME_MAX = 64 bytes (the kernel's `__NEW_UTS_LEN`), and the appliance's
/// `[appliance] hostname` is set as it is written (anaconda's `network --hostname`),
/// fully qualified. Shorter than DNS's 253, so this is the limit that applies here.
const MACHINE_HOSTNAME_MAX: usize = 64;

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
fn is_locale(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z]{2,3}(?:_[A-Z]{2})?(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,15})?(?:@[a-z][a-z0-9]{0,15})?$")
            .expect("regex")
    });
    RE.is_match(s)
}

/// A console keymap name as system-config-keyboard lists them: `us`, `de-latin1-nodeadkeys`,
/// `fr_CH-latin1`, `jp106`, `ru.map`. Starts with a letter (so never an option like `--help`).
fn is_keymap(s: &str) -> bool {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$").expect("regex"));
    RE.is_match(s)
}

/// Names the installer and the kernel take, a root password given one way, enough memory.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
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
}
