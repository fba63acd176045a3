//! A lossless VMX reader/editor: every line and byte is kept, keys compare
//! case-insensitively, `.encoding` decides how the bytes become text.

use std::fmt;

/// The text encodings mtkit reads (VMware writes UTF-8; hosts on Windows once wrote
/// windows-1252). Other names are decoded as UTF-8, lossily, and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Windows1252,
    Other(String),
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::Utf8 => f.write_str("UTF-8"),
            Encoding::Windows1252 => f.write_str("windows-1252"),
            Encoding::Other(s) => f.write_str(s),
        }
    }
}

impl Encoding {
    fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Encoding::Utf8,
            "windows-1252" | "cp1252" | "iso-8859-1" | "latin1" | "us-ascii" => {
                Encoding::Windows1252
            }
            _ => Encoding::Other(name.to_string()),
        }
    }

    /// Bytes to text. windows-1252 is decoded by hand: it is one fixed 256-entry table (Latin-1
    /// plus 27 characters in 0x80..0x9F), not worth a dependency like encoding_rs that carries
    /// every WHATWG encoding; only decoding is needed since mtkit only ever writes ASCII.
    pub fn decode(&self, bytes: &[u8]) -> String {
        match self {
            Encoding::Windows1252 => bytes.iter().map(|&b| cp1252(b)).collect(),
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// Characters of windows-1252 in 0x80..0x9F; the five undefined bytes map to their C1 code.
const CP1252_HIGH: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
];

fn cp1252(b: u8) -> char {
    match b {
        0x80..=0x9f => CP1252_HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// One physical line: its exact bytes (with the line ending) and what it says.
#[derive(Debug, Clone)]
pub struct Line {
    pub raw: Vec<u8>,
    pub entry: Option<Entry>,
}

/// A `key = "value"` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Byte range of the value text between the quotes (or of the bare value) in `raw`.
    value_span: (usize, usize),
}

/// A parsed .vmx (or .vmsd) file.
#[derive(Debug, Clone)]
pub struct Vmx {
    pub lines: Vec<Line>,
    pub encoding: Encoding,
}

impl Vmx {
    /// Parses `bytes`; never fails: lines that are not entries are kept as they are.
    pub fn parse(bytes: &[u8]) -> Vmx {
        // `.encoding` is ASCII in every encoding VMware uses, so find it before decoding.
        let encoding = bytes
            .split(|&b| b == b'\n')
            .filter_map(|l| parse_entry(l, &Encoding::Utf8))
            .find(|e| e.key.eq_ignore_ascii_case(".encoding"))
            .map(|e| Encoding::from_name(&e.value))
            .unwrap_or(Encoding::Utf8);
        let mut lines = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let raw = rest[..end].to_vec();
            rest = &rest[end..];
            let entry = parse_entry(&raw, &encoding);
            lines.push(Line { raw, entry });
        }
        Vmx { lines, encoding }
    }

    /// The file's bytes, exactly as read (plus any edits).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lines
            .iter()
            .flat_map(|l| l.raw.iter().copied())
            .collect()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.lines.iter().filter_map(|l| l.entry.as_ref())
    }

    /// The value of `key` (case-insensitive); the last line wins, as in VMware's reader.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries()
            .filter(|e| e.key.eq_ignore_ascii_case(key))
            .last()
            .map(|e| e.value.as_str())
    }

    /// Sets `key` to an ASCII `value`: the existing line keeps its key spelling, spacing and
    /// line ending with only the value bytes replaced; a new key is appended at the end.
    /// Returns false when the value was already exactly that.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        debug_assert!(value.is_ascii() && !value.contains(['"', '|', '\n']));
        let idx = self.lines.iter().rposition(|l| {
            l.entry
                .as_ref()
                .is_some_and(|e| e.key.eq_ignore_ascii_case(key))
        });
        if let Some(i) = idx {
            let line = &mut self.lines[i];
            let e = line.entry.as_ref().expect("found by entry");
            if e.value == value {
                return false;
            }
            let (a, b) = e.value_span;
            let quoted = line.raw.get(a.wrapping_sub(1)) == Some(&b'"');
            let mut raw = line.raw[..a].to_vec();
            if quoted {
                raw.extend_from_slice(value.as_bytes());
            } else {
                raw.extend_from_slice(format!("\"{value}\"").as_bytes());
            }
            raw.extend_from_slice(&line.raw[b..]);
            *line = Line {
                entry: parse_entry(&raw, &self.encoding),
                raw,
            };
            return true;
        }
        let crlf = self.lines.first().is_some_and(|l| l.raw.ends_with(b"\r\n"));
        let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        if let Some(last) = self.lines.last_mut()
            && !last.raw.ends_with(b"\n")
        {
            last.raw.extend_from_slice(nl);
        }
        let mut raw = format!("{key} = \"{value}\"").into_bytes();
        raw.extend_from_slice(nl);
        self.lines.push(Line {
            entry: parse_entry(&raw, &self.encoding),
            raw,
        });
        true
    }
}

/// Parses one line as `key = "value"` (spaces optional, value quoted or bare); `|XX` in a
/// quoted value is VMware's hex escape for a byte (`|22` is '"', `|7C` is '|').
fn parse_entry(raw: &[u8], enc: &Encoding) -> Option<Entry> {
    let line = trim_eol(raw);
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    if line[start] == b'#' {
        return None;
    }
    let eq = start + line[start..].iter().position(|&b| b == b'=')?;
    let key = std::str::from_utf8(&line[start..eq]).ok()?.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let mut v = eq + 1;
    while v < line.len() && matches!(line[v], b' ' | b'\t') {
        v += 1;
    }
    let (a, b) = if line.get(v) == Some(&b'"') {
        let close = line[v + 1..].iter().position(|&c| c == b'"')?;
        (v + 1, v + 1 + close)
    } else {
        let mut e = line.len();
        while e > v && matches!(line[e - 1], b' ' | b'\t') {
            e -= 1;
        }
        (v, e)
    };
    Some(Entry {
        key: key.to_string(),
        value: unescape(&line[a..b], enc),
        value_span: (a, b),
    })
}

fn trim_eol(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

/// VMware writes `"`, `|` and some other bytes of a value as `|XX` (hex); an escaped byte
/// may be part of a multi-byte character, so decode only after unescaping.
fn unescape(v: &[u8], enc: &Encoding) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'|'
            && let Some(b) = v
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    enc.decode(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"#!/usr/bin/vmware\r\n.encoding = \"UTF-8\"\r\nconfig.version = \"8\"\r\n\r\n# a comment\r\nDisk.EnableUUID=\"false\"\r\ndisplayName = \"mt |22one|22\"\r\nbare = yes  \r\n";

    #[test]
    fn keys_are_case_insensitive_and_escapes_decoded() {
        let v = Vmx::parse(SAMPLE);
        assert_eq!(v.get("disk.enableuuid"), Some("false"));
        assert_eq!(v.get("DISPLAYNAME"), Some("mt \"one\""));
        assert_eq!(v.get("bare"), Some("yes"));
        assert_eq!(v.to_bytes(), SAMPLE);
        assert_eq!(v.lines.len(), 8);
    }

    #[test]
    fn set_replaces_only_the_value_bytes() {
        let mut v = Vmx::parse(SAMPLE);
        assert!(v.set("disk.EnableUUID", "TRUE"));
        let want = String::from_utf8_lossy(SAMPLE).replace("=\"false\"", "=\"TRUE\"");
        assert_eq!(String::from_utf8(v.to_bytes()).unwrap(), want);
        assert!(!v.set("DISK.ENABLEUUID", "TRUE"));
    }

    #[test]
    fn set_appends_with_the_files_line_ending() {
        let mut v = Vmx::parse(b"a = \"1\"\r\nb = \"2\"");
        assert!(v.set("disk.EnableUUID", "TRUE"));
        assert_eq!(
            v.to_bytes(),
            b"a = \"1\"\r\nb = \"2\"\r\ndisk.EnableUUID = \"TRUE\"\r\n"
        );
    }

    proptest::proptest! {
        /// Lossless: any bytes parse (no panic) and come back identical; setting a key
        /// changes nothing before the line it edits.
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let v = Vmx::parse(&bytes);
            proptest::prop_assert_eq!(v.to_bytes(), bytes.clone());
            let mut e = v.clone();
            e.set("disk.EnableUUID", "TRUE");
            let out = e.to_bytes();
            proptest::prop_assert_eq!(e.get("disk.enableuuid"), Some("TRUE"));
            let first = v.lines.iter().position(|l| {
                l.entry.as_ref().is_some_and(|x| x.key.eq_ignore_ascii_case("disk.EnableUUID"))
            });
            let keep: usize = match first {
                Some(_) => 0,
                None => bytes.len(),
            };
            proptest::prop_assert_eq!(&out[..keep], &bytes[..keep]);
        }
    }

    #[test]
    fn windows_1252_is_decoded_by_table() {
        let v =
            Vmx::parse(b".encoding = \"windows-1252\"\ndisplayName = \"Caf\xe9 \x80 \x93x\x94\"\n");
        assert_eq!(v.encoding, Encoding::Windows1252);
        assert_eq!(
            v.get("displayname"),
            Some("Caf\u{e9} \u{20ac} \u{201c}x\u{201d}")
        );
        let u = Vmx::parse(".encoding = \"UTF-8\"\ndisplayName = \"Café\"\n".as_bytes());
        assert_eq!(u.get("displayName"), Some("Café"));
    }
}
