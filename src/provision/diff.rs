//! A small line-based unified diff for showing plans (`apply --dry-run`), and the
//! three-way merge that keeps an admin's edits of a file mtkit manages.

/// One line of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Add(usize),
}

/// Unified diff of `old` → `new` with 3 lines of context, headed `--- a` / `+++ b`;
/// empty when the texts are equal.
pub fn unified(old: &str, new: &str, a: &str, b: &str) -> String {
    if old == new {
        return String::new();
    }
    let x: Vec<&str> = old.lines().collect();
    let y: Vec<&str> = new.lines().collect();
    let ops = edit_script(&x, &y);
    let mut out = format!("--- {a}\n+++ {b}\n");
    const CTX: usize = 3;
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&i| !matches!(ops[i], Op::Same(..)))
        .collect();
    let mut i = 0;
    while i < changed.len() {
        // Grow a hunk while the next change is within 2*CTX lines of the last one.
        let start = changed[i].saturating_sub(CTX);
        let mut last = changed[i];
        while i + 1 < changed.len() && changed[i + 1] <= last + 2 * CTX {
            i += 1;
            last = changed[i];
        }
        let end = (last + CTX + 1).min(ops.len());
        let (mut ox, mut oy) = first_lines(&ops, start);
        let (mut nx, mut ny) = (0, 0);
        let mut body = String::new();
        for op in &ops[start..end] {
            match *op {
                Op::Same(p, _) => {
                    body.push_str(&format!(" {}\n", x[p]));
                    nx += 1;
                    ny += 1;
                }
                Op::Del(p) => {
                    body.push_str(&format!("-{}\n", x[p]));
                    nx += 1;
                }
                Op::Add(q) => {
                    body.push_str(&format!("+{}\n", y[q]));
                    ny += 1;
                }
            }
        }
        // An empty side starts at the line before it, as diff(1) prints it.
        if nx > 0 {
            ox += 1;
        }
        if ny > 0 {
            oy += 1;
        }
        out.push_str(&format!("@@ -{ox},{nx} +{oy},{ny} @@\n{body}"));
        i += 1;
    }
    out
}

/// 0-based positions in old and new of the first line at `ops[start]`.
fn first_lines(ops: &[Op], start: usize) -> (usize, usize) {
    let (mut ox, mut oy) = (0, 0);
    for op in &ops[..start] {
        match op {
            Op::Same(..) => {
                ox += 1;
                oy += 1;
            }
            Op::Del(_) => ox += 1,
            Op::Add(_) => oy += 1,
        }
    }
    (ox, oy)
}

/// Longest-common-subsequence edit script. Config files are at most a few thousand lines,
/// so the quadratic table stays small; common head and tail are trimmed first.
fn edit_script(x: &[&str], y: &[&str]) -> Vec<Op> {
    let head = x.iter().zip(y).take_while(|(a, b)| a == b).count();
    let tail = x[head..]
        .iter()
        .rev()
        .zip(y[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (xm, ym) = (&x[head..x.len() - tail], &y[head..y.len() - tail]);
    let (n, m) = (xm.len(), ym.len());
    let mut ops: Vec<Op> = (0..head).map(|i| Op::Same(i, i)).collect();
    if n * m > 16_000_000 {
        // Too big to align: show it as a replacement.
        ops.extend((0..n).map(|i| Op::Del(head + i)));
        ops.extend((0..m).map(|j| Op::Add(head + j)));
    } else {
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        let at = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[at(i, j)] = if xm[i] == ym[j] {
                    lcs[at(i + 1, j + 1)] + 1
                } else {
                    lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && xm[i] == ym[j] {
                ops.push(Op::Same(head + i, head + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
                ops.push(Op::Del(head + i));
                i += 1;
            } else {
                ops.push(Op::Add(head + j));
                j += 1;
            }
        }
    }
    let (xt, yt) = (x.len() - tail, y.len() - tail);
    ops.extend((0..tail).map(|k| Op::Same(xt + k, yt + k)));
    ops
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

fn hunks<'a>(base: &[&'a str], side: &[&'a str]) -> Vec<Hunk<'a>> {
    let mut out: Vec<Hunk<'a>> = Vec::new();
    let mut at = 0; // base position
    let mut open: Option<Hunk<'a>> = None;
    for op in edit_script(base, side) {
        match op {
            Op::Same(i, _) => {
                if let Some(h) = open.take() {
                    out.push(h);
                }
                at = i + 1;
            }
            Op::Del(i) => {
                let h = open.get_or_insert(Hunk {
                    start: i,
                    end: i,
                    lines: Vec::new(),
                });
                h.end = i + 1;
                at = i + 1;
            }
            Op::Add(j) => {
                open.get_or_insert(Hunk {
                    start: at,
                    end: at,
                    lines: Vec::new(),
                })
                .lines
                .push(side[j]);
            }
        }
    }
    out.extend(open);
    out
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
