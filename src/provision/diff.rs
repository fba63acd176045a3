//! The unified diff that shows plans (`apply --dry-run`), and the three-way merge that
//! keeps an admin's edits of a file mtkit manages, both on the `similar` crate's line diff
//! (Myers). The merge itself is by hand: `similar`'s `TextMerge` has no way to order two
//! insertions at one place (see [`Ties`]), which `apply` needs to replay its own edits.

use similar::{Algorithm, DiffOp, TextDiff, capture_diff_slices};

/// Unified diff of `old` → `new` with 3 lines of context, headed `--- a` / `+++ b`;
/// empty when the texts are equal. A last line without a newline is marked as diff(1)
/// marks it, so `patch` and `git apply` take the output as it is.
pub fn unified(old: &str, new: &str, a: &str, b: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(a, b)
        .to_string()
}

/// Where two sides insert lines at the same place of the base (neither order is right in
/// general, so a plain merge calls it a conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ties {
    Conflict,
    AFirst,
    BFirst,
}

/// The two sides changed the same lines of the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// 1-based line of the base where the clash starts.
    pub line: usize,
}

/// One change of a side against the base: base lines `start..end` become `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk<'a> {
    start: usize,
    end: usize,
    lines: Vec<&'a str>,
}

/// The changes `base → side`: each run of edits between equal lines is one hunk.
fn hunks<'a>(base: &[&'a str], side: &[&'a str]) -> Vec<Hunk<'a>> {
    let ops = capture_diff_slices(Algorithm::Myers, base, side);
    ops.split(|op| matches!(op, DiffOp::Equal { .. }))
        .filter(|run| !run.is_empty())
        .map(|run| {
            let (first, last) = (&run[0], &run[run.len() - 1]);
            Hunk {
                start: first.old_range().start,
                end: last.old_range().end,
                lines: side[first.new_range().start..last.new_range().end].to_vec(),
            }
        })
        .collect()
}

/// Three-way line merge: the changes `base → a` and `base → b` together, as diff3 and git
/// do it. Changes to the same base lines conflict unless they are the same change; a
/// change right next to another does not (an admin's line appended after mtkit's). Line
/// endings are kept as they are, so a file without a final newline stays without one.
pub fn merge3(base: &str, a: &str, b: &str, ties: Ties) -> Result<String, Conflict> {
    let base_l: Vec<&str> = base.split_inclusive('\n').collect();
    let a_l: Vec<&str> = a.split_inclusive('\n').collect();
    let b_l: Vec<&str> = b.split_inclusive('\n').collect();
    let ha = hunks(&base_l, &a_l);
    let hb = hunks(&base_l, &b_l);
    let clash = |x: &Hunk, y: &Hunk| {
        let (xi, yi) = (x.start == x.end, y.start == y.end);
        if x == y {
            return false;
        }
        match (xi, yi) {
            (true, true) => x.start == y.start && ties == Ties::Conflict,
            (true, false) => y.start < x.start && x.start < y.end,
            (false, true) => x.start < y.start && y.start < x.end,
            (false, false) => x.start < y.end && y.start < x.end,
        }
    };
    for x in &ha {
        if let Some(y) = hb.iter().find(|y| clash(x, y)) {
            return Err(Conflict {
                line: x.start.min(y.start) + 1,
            });
        }
    }
    // Every hunk once (a change both sides made is taken once), in base order: insertions
    // before a change starting at the same line, ties in the order asked for.
    let mut all: Vec<(usize, &Hunk)> = ha.iter().map(|h| (0, h)).collect();
    for h in &hb {
        if !ha.contains(h) {
            all.push((1, h));
        }
    }
    let first = if ties == Ties::BFirst { 1 } else { 0 };
    all.sort_by_key(|(side, h)| (h.start, h.start != h.end, *side != first));
    let mut out = String::with_capacity(base.len().max(a.len()).max(b.len()));
    let mut at = 0;
    for (_, h) in all {
        for l in &base_l[at..h.start.max(at)] {
            out.push_str(l);
        }
        for l in &h.lines {
            out.push_str(l);
        }
        at = at.max(h.end);
    }
    for l in &base_l[at.min(base_l.len())..] {
        out.push_str(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_both_sides_and_refuses_clashes() {
        let base = "a\nb\nc\nd\n";
        // a changes b, b appends after d: both kept
        assert_eq!(
            merge3(base, "a\nB\nc\nd\n", "a\nb\nc\nd\ne\n", Ties::Conflict).unwrap(),
            "a\nB\nc\nd\ne\n"
        );
        // a line deleted by one side, a line added right after it by the other
        assert_eq!(
            merge3(base, "a\nb\nc\n", "a\nb\nc\nd\ne\n", Ties::Conflict).unwrap(),
            "a\nb\nc\ne\n"
        );
        // the same line changed two ways
        assert_eq!(
            merge3(base, "a\nX\nc\nd\n", "a\nY\nc\nd\n", Ties::Conflict),
            Err(Conflict { line: 2 })
        );
        // the same change on both sides is taken once
        assert_eq!(
            merge3(base, "a\nX\nc\nd\n", "a\nX\nc\nd\n", Ties::Conflict).unwrap(),
            "a\nX\nc\nd\n"
        );
        // two insertions at one place: a conflict unless an order is given
        let (x, y) = ("a\nb\nx\nc\nd\n", "a\nb\ny\nc\nd\n");
        assert!(merge3(base, x, y, Ties::Conflict).is_err());
        assert_eq!(
            merge3(base, x, y, Ties::AFirst).unwrap(),
            "a\nb\nx\ny\nc\nd\n"
        );
        assert_eq!(
            merge3(base, x, y, Ties::BFirst).unwrap(),
            "a\nb\ny\nx\nc\nd\n"
        );
        // an insertion inside a changed range clashes
        assert!(merge3(base, "a\nd\n", "a\nb\nz\nc\nd\n", Ties::AFirst).is_err());
        // no final newline is kept
        assert_eq!(
            merge3("a\nb", "A\nb", "a\nb", Ties::Conflict).unwrap(),
            "A\nb"
        );
        assert_eq!(merge3("", "x\n", "", Ties::Conflict).unwrap(), "x\n");
    }

    #[test]
    fn equal_texts_give_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn one_changed_line_has_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n";
        let d = unified(old, new, "a/f", "b/f");
        assert_eq!(
            d,
            "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn new_file_diff_starts_at_zero() {
        let d = unified("", "a\nb\n", "/dev/null", "b/f");
        assert_eq!(d, "--- /dev/null\n+++ b/f\n@@ -0,0 +1,2 @@\n+a\n+b\n");
    }

    #[test]
    fn a_last_line_without_newline_is_marked() {
        assert_eq!(
            unified("a\nb", "a\nc", "a/f", "b/f"),
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn distant_changes_make_two_hunks() {
        let old: String = (0..30).map(|i| format!("{i}\n")).collect();
        let new: String = (0..30)
            .map(|i| match i {
                2 => "two\n".to_string(),
                25 => "x\n".to_string(),
                _ => format!("{i}\n"),
            })
            .collect();
        let d = unified(&old, &new, "a", "b");
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(d.contains("-25\n+x\n"));
    }
}
