//! Reading the typed model out of the TOML document: each key serde rejects is reported
//! and dropped, so the rest of the file still gets read and one run shows every bad key.

use super::locate::{Checker, Seg, first_line, key_name, lookup};
use crate::config::Config;
use crate::config::error::Problem;
use toml_edit::{Document, DocumentMut, Item};

/// Deserializes the typed model, reporting and dropping each key serde rejects until the
/// rest parses (so one run shows every bad key). Dropped keys take their defaults.
pub(super) fn deserialize_all(ck: &mut Checker<'_>) -> Config {
    let mut current: DocumentMut = ck.text.parse().expect("already parsed once");
    // Each round removes one key; a file has far fewer bad keys than this.
    for round in 0..200 {
        let text = current.to_string();
        let err = match toml::from_str::<Config>(&text) {
            Ok(c) => return c,
            Err(e) => e,
        };
        let reparsed: Document<&str> = Document::parse(text.as_str()).expect("serialized TOML");
        let mut p = Vec::new();
        let found = err
            .span()
            .is_some_and(|s| path_at(reparsed.as_item(), s.start, &mut p));
        // A bad element of a value array: report it, then drop the whole array, as
        // removing one element would shift the indexes of the next reports.
        let mut drop = p.clone();
        while matches!(drop.last(), Some(Seg::Index(_)))
            && lookup(reparsed.as_item(), &drop[..drop.len() - 1]).is_some_and(|i| i.is_array())
        {
            drop.pop();
        }
        if !found || !remove_path(&mut current, &drop) {
            // Nothing to drop (a wrong kind of table, say): report it and stop here. Until
            // a key was dropped the text is the original, so its span is still right.
            let offset = if round == 0 {
                err.span().map(|s| s.start)
            } else {
                ck.offset(&p).0
            };
            let location = ck.location(offset);
            let key = if p.is_empty() {
                String::new()
            } else {
                key_name(&p)
            };
            let mut message = first_line(err.message());
            if message.contains("map, expected a sequence") {
                message.push_str(": a list of tables is written [[name]], e.g. [[writer.disk]]");
            }
            ck.record(
                offset,
                Problem {
                    location,
                    key,
                    message,
                },
            );
            return Config::default();
        }
        // Unknown keys are pointed at by their name, bad values by the value.
        let at_key = err.message().starts_with("unknown field");
        ck.report_inner(&p, "", first_line(err.message()), at_key);
    }
    Config::default()
}
/// Finds the deepest key path whose key or value span holds `offset`.
fn path_at(item: &Item, offset: usize, out: &mut Vec<Seg>) -> bool {
    let inside = |span: Option<std::ops::Range<usize>>| {
        span.is_some_and(|r| r.start <= offset && offset < r.end.max(r.start + 1))
    };
    if let Some(t) = item.as_table_like() {
        for (k, child) in t.iter() {
            out.push(Seg::Key(k.to_string()));
            if path_at(child, offset, out) {
                return true;
            }
            let key_span = t.key(k).and_then(|k| k.span());
            let whole = match (key_span.clone(), child.span()) {
                (Some(a), Some(b)) if !child.is_table() => Some(a.start..b.end),
                (a, b) => a.or(b),
            };
            if inside(whole) {
                return true;
            }
            out.pop();
        }
    } else if let Some(len) = item
        .as_array_of_tables()
        .map(|a| a.len())
        .or_else(|| item.as_array().map(|a| a.len()))
    {
        for i in 0..len {
            out.push(Seg::Index(i));
            let child = item.get(i).expect("index in range");
            if path_at(child, offset, out) || inside(child.span()) {
                return true;
            }
            out.pop();
        }
    }
    false
}

fn remove_path(doc: &mut DocumentMut, p: &[Seg]) -> bool {
    let Some((last, parent)) = p.split_last() else {
        return false;
    };
    let mut item = doc.as_item_mut();
    for seg in parent {
        let next = match seg {
            Seg::Key(k) => item.get_mut(k.as_str()),
            Seg::Index(i) => item.get_mut(*i),
        };
        match next {
            Some(n) => item = n,
            None => return false,
        }
    }
    match last {
        Seg::Key(k) => item.as_table_like_mut().and_then(|t| t.remove(k)).is_some(),
        Seg::Index(i) => {
            if let Some(a) = item.as_array_mut().filter(|a| *i < a.len()) {
                a.remove(*i);
                true
            } else if let Some(a) = item.as_array_of_tables_mut().filter(|a| *i < a.len()) {
                a.remove(*i);
                true
            } else {
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::problems;
    use crate::config::Config;

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
}
