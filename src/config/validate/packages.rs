//! `[packages]`: extra package names and the URLs anaconda fetches from.

use super::locate::{Checker, element, path, q};
use crate::config::Config;
use regex::Regex;
use std::sync::LazyLock;

/// Package names, URLs, and an "offline" reiserfs repository only with an offline repository.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let p = &c.packages;
    for (i, name) in p.extra.iter().enumerate() {
        if !is_package_name(name) {
            ck.report(
                &element(&["packages", "extra"], i),
                q(name),
                "not a package name: one word such as \"sg3_utils\" or a group such as \"@base\"",
            );
        }
    }
    let from_offline = p.reiserfs_repo == crate::config::REISERFS_FROM_OFFLINE;
    if from_offline && p.offline_repo.is_empty() {
        ck.report(
            &path(&["packages", "reiserfs-repo"]),
            q(&p.reiserfs_repo),
            "\"offline\" takes kmod-reiserfs and reiserfs-utils from [packages] offline-repo, \
             which is not set: set it, or give an ELRepo URL",
        );
    }
    let url_hint = "not an http://, https:// or ftp:// URL that anaconda can fetch from: a host, \
                    then a path of letters, digits and -._~!$&()*+,;=:@/?% (no blanks, quotes, \
                    '#' or backslash; write others as %XX)";
    if !p.mirror.is_empty() && !is_url(&p.mirror) {
        ck.report(&path(&["packages", "mirror"]), q(&p.mirror), url_hint);
    }
    if !p.reiserfs_repo.is_empty() && !is_url(&p.reiserfs_repo) && !from_offline {
        ck.report(
            &path(&["packages", "reiserfs-repo"]),
            q(&p.reiserfs_repo),
            format!("{url_hint}, or \"offline\" to take the packages from offline-repo"),
        );
    }
}

/// An http, https or ftp URL that lands in the kickstart (`url --url=`, `repo --baseurl=`)
/// as one word: host and port, then a path of RFC 3986 characters with well-formed `%XX`
/// escapes. No quote, `#` (a kickstart comment, cutting the URL), backslash, blank or
/// control byte can get through: pykickstart splits the line shell-style, so any of those
/// would change what anaconda reads. `$basearch`-style yum variables stay allowed.
fn is_url(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(?:https?|ftp)://",
            r"(?:[A-Za-z0-9._~!$&()*+,;=:%-]+@)?",
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?",
            r"|\[[0-9A-Fa-f:.]+\])",
            r"(?::[0-9]{1,5})?",
            r"(?:[/?][A-Za-z0-9._~!$&()*+,;=:@/?%-]*)?$",
        ))
        .expect("regex")
    });
    static PCT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"%(?:[0-9A-Fa-f]{2})?").expect("regex"));
    s.len() <= 2048 && RE.is_match(s) && PCT.find_iter(s).all(|m| m.len() == 3)
}

fn is_package_name(s: &str) -> bool {
    // Compiled once: a config may list hundreds of thousands of packages.
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[-@]?[A-Za-z0-9_+][A-Za-z0-9_+.:-]*$").expect("regex"));
    RE.is_match(s)
}
