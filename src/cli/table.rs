//! Plain-text tables for the commands' human output (columns padded to their widest cell).

/// Cells longer than this wrap at spaces onto continuation lines, so that one long finding
/// does not push every row of a doctor or vmx table off an 80-column console.
pub const MAX_CELL: usize = 60;

/// `text` broken at spaces into lines of at most `max` characters (a longer word stays whole).
fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        let len = last.chars().count();
        if len > 0 && len + 1 + word.chars().count() > max {
            lines.push(word.to_string());
        } else {
            if len > 0 {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Renders `head` and `rows` as left-aligned columns separated by two spaces; cells longer
/// than [`MAX_CELL`] wrap, the row going on over the next lines with the other cells blank.
pub fn render(head: &[&str], rows: &[Vec<String>]) -> String {
    let head: Vec<Vec<String>> = head.iter().map(|h| vec![h.to_string()]).collect();
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| wrap(c, MAX_CELL)).collect())
        .collect();
    let mut width: Vec<usize> = vec![0; head.len()];
    for r in std::iter::once(&head).chain(&rows) {
        for (w, c) in width.iter_mut().zip(r) {
            for l in c {
                *w = (*w).max(l.chars().count());
            }
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let height = r.iter().map(Vec::len).max().unwrap_or(1);
        for i in 0..height {
            let mut l = String::new();
            for (col, c) in r.iter().enumerate() {
                if col > 0 {
                    l.push_str("  ");
                }
                let cell = c.get(i).map_or("", String::as_str);
                l.push_str(cell);
                let pad = width[col].saturating_sub(cell.chars().count());
                l.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(l.trim_end());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = render(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
    }

    #[test]
    fn long_cells_wrap_and_keep_the_columns() {
        let long = "word ".repeat(20).trim_end().to_string(); // 99 characters
        let t = render(
            &["ID", "FOUND", "REMEDY"],
            &[vec!["a".into(), long.clone(), "fix it".into()]],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= 4 + MAX_CELL + 2 + 6),
            "{t}"
        );
        assert_eq!(lines[1].find("fix it"), lines[0].find("REMEDY"), "{t}");
        assert!(lines[2].starts_with("    word"), "{t}");
        // Nothing is lost: the wrapped words read back as the cell.
        let back: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l[4..].split("  ").next().unwrap().trim())
            .collect();
        assert_eq!(back.join(" "), long);
        assert_eq!(
            wrap("a-word-longer-than-the-cap", 5),
            ["a-word-longer-than-the-cap"]
        );
    }
}
