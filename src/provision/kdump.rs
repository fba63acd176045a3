//! kdump: where vmcores go and how they are collected (`/etc/kdump.conf`), and memory
//! reserved for the capture kernel (`crashkernel=auto` on every grub kernel line).

pub const CONF: &str = "etc/kdump.conf";
pub const GRUB: &str = "boot/grub/grub.conf";

/// The directives mtkit sets, in the order they are looked for.
const DIRECTIVES: [(&str, &str); 2] = [
    ("path", "path /var/crash"),
    (
        "core_collector",
        "core_collector makedumpfile -c --message-level 1 -d 31",
    ),
];

/// New kdump.conf text, or `None` when both directives are already set.
///
/// An active directive is replaced in place; otherwise the wanted line goes right after the
/// shipped commented example (`#path /var/crash`), or at the end.
pub fn plan_conf(current: &str) -> Option<String> {
    let mut lines: Vec<String> = current.lines().map(str::to_string).collect();
    for (key, want) in DIRECTIVES {
        let active: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].split_whitespace().next() == Some(key))
            .collect();
        if let Some(&first) = active.first() {
            lines[first] = want.to_string();
            // kdump reads the last one of a directive: keep exactly one.
            for &i in active[1..].iter().rev() {
                lines.remove(i);
            }
        } else {
            let example = lines.iter().rposition(|l| {
                l.strip_prefix('#')
                    .and_then(|r| r.split_whitespace().next())
                    == Some(key)
            });
            match example {
                Some(i) => lines.insert(i + 1, want.to_string()),
                None => lines.push(want.to_string()),
            }
        }
    }
    let text = lines.join("\n") + "\n";
    (text != current).then_some(text)
}

/// New grub.conf text with `crashkernel=auto` on every `kernel` line (any other
/// `crashkernel=` value replaced, every other argument kept), or `None`.
pub fn plan_grub(current: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(current.len() + 32);
    for line in current.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let indent = &body[..body.len() - body.trim_start().len()];
        let mut words = body.split_whitespace();
        if words.next() == Some("kernel") {
            let args: Vec<&str> = words.collect();
            let has_auto = args
                .iter()
                .filter(|a| a.starts_with("crashkernel="))
                .count()
                == 1
                && args.contains(&"crashkernel=auto");
            if !has_auto {
                let mut kept: Vec<&str> = args
                    .into_iter()
                    .filter(|a| !a.starts_with("crashkernel="))
                    .collect();
                kept.push("crashkernel=auto");
                out.push_str(&format!("{indent}kernel {}", kept.join(" ")));
                if line.ends_with('\n') {
                    out.push('\n');
                }
                changed = true;
                continue;
            }
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_go_after_their_commented_examples() {
        let cur =
            "# a comment\n#path /var/crash\n#core_collector makedumpfile -c\n#default shell\n";
        let new = plan_conf(cur).unwrap();
        assert_eq!(
            new,
            "# a comment\n#path /var/crash\npath /var/crash\n#core_collector makedumpfile -c\ncore_collector makedumpfile -c --message-level 1 -d 31\n#default shell\n"
        );
        assert_eq!(plan_conf(&new), None);
    }

    #[test]
    fn active_directives_are_replaced_and_deduplicated() {
        let cur = "path /srv\ncore_collector cp\npath /other\n";
        let new = plan_conf(cur).unwrap();
        assert_eq!(
            new,
            "path /var/crash\ncore_collector makedumpfile -c --message-level 1 -d 31\n"
        );
    }

    #[test]
    fn crashkernel_auto_on_every_kernel_line() {
        let cur = "default=0\ntitle A\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro root=/dev/x crashkernel=128M quiet\n\tinitrd /i1\ntitle B\n\tkernel /vmlinuz-2 ro rhgb\n";
        let new = plan_grub(cur).unwrap();
        assert!(new.contains("\tkernel /vmlinuz-1 ro root=/dev/x quiet crashkernel=auto\n"));
        assert!(new.contains("\tkernel /vmlinuz-2 ro rhgb crashkernel=auto\n"));
        assert!(new.contains("\troot (hd0,0)\n") && new.contains("\tinitrd /i1\n"));
        assert_eq!(plan_grub(&new), None);
    }

    #[test]
    fn grub_line_already_right_is_left_alone() {
        let cur = "\tkernel /vmlinuz ro crashkernel=auto  rhgb quiet\n";
        assert_eq!(
            plan_grub(cur),
            None,
            "double spaces as anaconda writes them stay"
        );
    }
}
