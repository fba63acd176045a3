//! A small line-based unified diff for showing plans (`apply --dry-run`).

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

#[cfg(test)]
mod tests {
    use super::*;

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
