//! Where a problem in appliance.toml is: key paths into the document, their
//! `file:line:column` from the spans of a `toml_edit` parse of the original text, and the
//! [`Checker`] that collects located problems and warnings for every section's rules.

use crate::config::error::Problem;
use std::fmt;
use toml_edit::{Document, Item};

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One step of a path into the document: a key or an array index.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// The key at `keys`: `path(&["network", "prefix"])` is `[network] prefix`.
pub(super) fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key(k.to_string())).collect()
}

/// Element `i` of the list at `keys`: `element(&["network", "dns"], 1)` is `[network] dns[1]`.
pub(super) fn element(keys: &[&str], i: usize) -> Vec<Seg> {
    let mut p = path(keys);
    p.push(Seg::Index(i));
    p
}

/// `key` of table `i` in the list of tables at `keys`: `entry(&["writer", "disk"], 2,
/// "path")` is `[[writer.disk]] #3 path`.
pub(super) fn entry(keys: &[&str], i: usize, key: &str) -> Vec<Seg> {
    let mut p = element(keys, i);
    p.push(Seg::Key(key.into()));
    p
}

pub(super) fn lookup<'d>(root: &'d Item, p: &[Seg]) -> Option<&'d Item> {
    p.iter().try_fold(root, |item, seg| match seg {
        Seg::Key(k) => item.get(k.as_str()),
        Seg::Index(i) => item.get(*i),
    })
}

/// `[network] prefix`, `[[writer.disk]] #2 path`, `[network] dns[0]`.
pub(super) fn key_name(p: &[Seg]) -> String {
    let last_key = p.iter().rposition(|s| matches!(s, Seg::Key(_)));
    let Some(last_key) = last_key else {
        return String::new();
    };
    let mut header = Vec::new();
    let mut aot_index = None;
    for seg in &p[..last_key] {
        match seg {
            Seg::Key(k) => header.push(k.as_str()),
            Seg::Index(i) => aot_index = Some(*i),
        }
    }
    let Seg::Key(key) = &p[last_key] else {
        unreachable!()
    };
    let mut key = key.clone();
    for seg in &p[last_key + 1..] {
        if let Seg::Index(i) = seg {
            key.push_str(&format!("[{i}]"));
        }
    }
    match (header.is_empty(), aot_index) {
        (true, _) => key,
        (false, Some(i)) => format!("[[{}]] #{} {key}", header.join("."), i + 1),
        (false, None) => format!("[{}] {key}", header.join(".")),
    }
}

/// The checks' view of the original file: spans, and the problems found so far.
pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    name: &'a str,
    doc: Document<&'a str>,
    found: Vec<(Option<usize>, Problem)>,
    /// Things that work but are risky (a disk named by its kernel name): shown, not refused.
    warnings: Vec<(Option<usize>, Problem)>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(text: &'a str, name: &'a str, doc: Document<&'a str>) -> Self {
        Checker {
            text,
            name,
            doc,
            found: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records a problem whose location and key the caller worked out.
    pub(super) fn record(&mut self, offset: Option<usize>, problem: Problem) {
        self.found.push((offset, problem));
    }

    /// Byte offset of `p`'s value, or of the nearest ancestor the file has, and whether
    /// the file sets `p` at all.
    pub(super) fn offset(&self, p: &[Seg]) -> (Option<usize>, bool) {
        let root = self.doc.as_item();
        let offset = (1..=p.len())
            .rev()
            .find_map(|n| lookup(root, &p[..n]).and_then(|i| i.span()))
            .map(|s| s.start);
        (offset, lookup(root, p).is_some())
    }

    pub(super) fn location(&self, offset: Option<usize>) -> String {
        match offset {
            Some(o) => {
                let (l, c) = line_col(self.text, o);
                format!("{}:{l}:{c}", self.name)
            }
            None => self.name.to_string(),
        }
    }

    /// Byte offset of the key (not the value) at `p`, when the file has it.
    fn key_offset(&self, p: &[Seg]) -> Option<usize> {
        let (Seg::Key(k), parent) = p.split_last()? else {
            return None;
        };
        let t = lookup(self.doc.as_item(), parent)?.as_table_like()?;
        t.key(k)?.span().map(|s| s.start)
    }

    /// Records a problem at `p`; `shown` is the value as TOML, used when the file lacks it.
    pub(super) fn report(
        &mut self,
        p: &[Seg],
        shown: impl fmt::Display,
        message: impl Into<String>,
    ) {
        self.report_inner(p, shown, message.into(), false)
    }

    /// Records a warning at `p`, located like a problem.
    pub(super) fn warn(&mut self, p: &[Seg], shown: impl fmt::Display, message: impl Into<String>) {
        let before = self.found.len();
        self.report_inner(p, shown, message.into(), false);
        let w = self.found.split_off(before);
        self.warnings.extend(w);
    }

    pub(super) fn report_inner(
        &mut self,
        p: &[Seg],
        shown: impl fmt::Display,
        message: String,
        at_key: bool,
    ) {
        let (mut offset, present) = self.offset(p);
        if at_key {
            offset = self.key_offset(p).or(offset);
        }
        let raw = lookup(self.doc.as_item(), p)
            .and_then(|i| i.span())
            .map(|s| self.text[s].trim().to_string());
        // Someone may have pasted a plain password where the hash goes: never echo it.
        let secret = p == path(&["appliance", "root-password-hash"]).as_slice();
        let raw = if secret {
            raw.map(|_| "\"(hidden)\"".to_string())
        } else {
            raw
        };
        let value = match (present, raw) {
            (true, Some(raw)) => raw,
            (true, None) => shown.to_string(),
            (false, _) => format!("{shown} (default)"),
        };
        let is_table = lookup(self.doc.as_item(), p).is_some_and(|i| i.is_table());
        let key = if is_table {
            // A whole table: its header says it all.
            let names: Vec<_> = p
                .iter()
                .filter_map(|s| match s {
                    Seg::Key(k) => Some(k.as_str()),
                    Seg::Index(_) => None,
                })
                .collect();
            format!("[{}]", names.join("."))
        } else {
            format!("{} = {value}", key_name(p))
        };
        let location = self.location(offset);
        self.found.push((
            offset,
            Problem {
                location,
                key,
                message,
            },
        ));
    }

    pub(super) fn into_problems(self) -> (Vec<Problem>, Vec<Problem>) {
        // File order, then problems without a location (defaults the file does not set).
        let sorted = |mut v: Vec<(Option<usize>, Problem)>| {
            v.sort_by_key(|(o, _)| (o.is_none(), o.unwrap_or(usize::MAX)));
            v.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
        };
        (sorted(self.found), sorted(self.warnings))
    }
}

/// TOML basic-string form of `s`, for messages.
pub(super) fn q(s: &str) -> String {
    format!("{s:?}")
}

/// The first line of a parser's message (toml's carry the source excerpt after it).
pub(super) fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::problems;
    use super::*;

    #[test]
    fn key_names_read_like_the_file() {
        assert_eq!(key_name(&path(&["network", "prefix"])), "[network] prefix");
        assert_eq!(
            key_name(&element(&["network", "dns"], 1)),
            "[network] dns[1]"
        );
        assert_eq!(
            key_name(&entry(&["writer", "disk"], 2, "path")),
            "[[writer.disk]] #3 path"
        );
        assert_eq!(
            key_name(&path(&["writer", "tls", "dir"])),
            "[writer.tls] dir"
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
}
