//! The boot menu edits of a remaster: a default "Install mtkit master target" entry in
//! isolinux.cfg (BIOS) and in the grub-legacy BOOTX64.conf (EFI), built from the disc's own
//! install entry, with the other entries kept. Pure text in, text out; the entry's title,
//! label, kickstart argument and timeout are data (`iso/boot-menu.toml`, [`boot_menu`]).

use super::layout::boot_menu;

/// Config file bytes as text, one char per byte (Latin-1). Every byte sequence maps to a
/// string and back unchanged, whatever the file's real encoding (Latin-1, UTF-8, CP437):
/// the edits only touch ASCII keywords and add ASCII lines.
pub fn from_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The inverse of [`from_latin1`]; a char above U+00FF (never produced by the edits)
/// becomes `?`.
pub fn to_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// The first word of a config line, lowercased, and the rest trimmed.
fn keyword(line: &str) -> (String, &str) {
    let t = line.trim_start();
    let end = t
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(t.len());
    let rest = t[end..].trim_start_matches(|c: char| c.is_whitespace() || c == '=');
    (t[..end].to_ascii_lowercase(), rest.trim_end())
}

/// Appends `ks=cdrom:/ks.cfg` to kernel arguments, replacing any `ks=` already there.
fn with_ks(args: &str) -> String {
    let mut words: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("ks="))
        .collect();
    words.push(&boot_menu().kickstart_argument);
    words.join(" ")
}

/// Splits config text into the global lines and blocks that each start at a line whose
/// keyword is `start` (`label` for isolinux, `title` for grub).
fn blocks<'a>(text: &'a str, start: &str) -> (Vec<&'a str>, Vec<Vec<&'a str>>) {
    let mut global = Vec::new();
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if keyword(line).0 == start {
            blocks.push(vec![line]);
        } else if let Some(b) = blocks.last_mut() {
            b.push(line);
        } else {
            global.push(line);
        }
    }
    (global, blocks)
}

fn join(lines: &[String], trailing_newline: bool) -> String {
    let mut out = lines.join("\n");
    if trailing_newline {
        out.push('\n');
    }
    out
}

/// Adds the mtkit entry to an isolinux.cfg: a copy of the `linux` entry (else the menu
/// default, else the first entry that boots a kernel) with `ks=cdrom:/ks.cfg`, placed
/// first, made the menu default, with a 5 s timeout. An mtkit entry from an earlier
/// remaster is replaced. Errors say what the file lacks.
pub fn edit_isolinux(text: &str) -> Result<String, String> {
    let menu = boot_menu();
    let (label, timeout) = (&menu.isolinux.label, menu.isolinux_timeout());
    let (mut global, blocks) = blocks(text, "label");
    // Global directives written after a label still apply to the whole menu: take them
    // out of the label so that they are edited like the others (a `timeout 600` and an
    // `ontimeout local` at the end of the file would otherwise win over ours).
    let blocks: Vec<Vec<&str>> = blocks
        .into_iter()
        .filter(|b| keyword(b[0]).1 != label)
        .map(|b| {
            let (moved, kept): (Vec<&str>, Vec<&str>) =
                b[1..].iter().partition(|l| is_isolinux_global(l));
            global.extend(moved);
            std::iter::once(b[0]).chain(kept).collect()
        })
        .collect();
    let boots_kernel = |b: &Vec<&str>| {
        b.iter()
            .any(|l| matches!(keyword(l).0.as_str(), "kernel" | "linux"))
    };
    let base = blocks
        .iter()
        .find(|b| keyword(b[0]).1 == "linux" && boots_kernel(b))
        .or_else(|| {
            blocks
                .iter()
                .find(|b| boots_kernel(b) && b.iter().any(|l| is_menu_default(l)))
        })
        .or_else(|| blocks.iter().find(|b| boots_kernel(b)))
        .ok_or_else(|| {
            "isolinux.cfg has no entry that boots a kernel (expected `label linux` with `kernel vmlinuz`)".to_string()
        })?;

    let mut entry = vec![
        format!("label {label}"),
        format!("  menu label {}", menu.title),
        "  menu default".to_string(),
    ];
    let mut has_append = false;
    for line in &base[1..] {
        let (kw, rest) = keyword(line);
        match kw.as_str() {
            "kernel" | "linux" | "initrd" => entry.push(format!("  {kw} {rest}")),
            "append" => {
                has_append = true;
                entry.push(format!("  append {}", with_ks(rest)));
            }
            _ => {}
        }
    }
    if !has_append {
        entry.push(format!("  append {}", menu.kickstart_argument));
    }

    let mut out: Vec<String> = Vec::new();
    let (mut saw_timeout, mut saw_ontimeout) = (false, false);
    for line in &global {
        let (kw, rest) = keyword(line);
        match kw.as_str() {
            // One of each: syslinux takes the last one it reads.
            "timeout" if saw_timeout => {}
            "timeout" => {
                saw_timeout = true;
                out.push(format!("timeout {timeout}"));
            }
            // What boots when the timeout runs out: ours, not `local`.
            "ontimeout" if saw_ontimeout => {}
            "ontimeout" => {
                saw_ontimeout = true;
                out.push(format!("ontimeout {label}"));
            }
            // `default vesamenu.c32` starts the menu (which picks `menu default`);
            // `default LABEL` boots a label directly: point it at ours.
            "default" if !rest.ends_with(".c32") => out.push(format!("default {label}")),
            _ => out.push(line.to_string()),
        }
    }
    if !saw_timeout {
        out.insert(0, format!("timeout {timeout}"));
    }
    if !global.iter().any(|l| keyword(l).0 == "default") {
        out.insert(0, format!("default {label}"));
    }
    out.extend(entry);
    for b in &blocks {
        // Only one entry may be the menu default: ours.
        out.extend(
            b.iter()
                .filter(|l| !is_menu_default(l))
                .map(|l| l.to_string()),
        );
    }
    Ok(join(&out, text.ends_with('\n')))
}

/// isolinux directives that act on the whole menu wherever they appear (syslinux's
/// doc/syslinux.txt and doc/menu.txt): everything but what describes one label.
fn is_isolinux_global(line: &str) -> bool {
    let (kw, rest) = keyword(line);
    match kw.as_str() {
        "timeout" | "totaltimeout" | "ontimeout" | "onerror" | "default" | "prompt" | "display"
        | "ui" | "implicit" | "allowoptions" | "noescape" | "nocomplete" | "serial" | "console"
        | "font" | "kbdmap" | "say" => true,
        // F1 ... F12 help screens.
        k if k.len() > 1 && k.starts_with('f') && k[1..].parse::<u8>().is_ok() => true,
        "menu" => {
            let sub = rest.split_whitespace().next().unwrap_or("");
            [
                "title",
                "background",
                "color",
                "msgcolor",
                "hidden",
                "clear",
                "shiftkey",
                "resolution",
                "margin",
                "width",
                "rows",
                "vshift",
                "hshift",
                "tabmsg",
                "tabmsgrow",
                "cmdlinerow",
                "endrow",
                "passwordrow",
                "timeoutrow",
                "helpmsgrow",
                "helpmsgendrow",
                "hiddenrow",
                "autoboot",
                "notabmsg",
                "passprompt",
                "save",
                "nosave",
                "immediate",
                "noimmediate",
                "master",
            ]
            .iter()
            .any(|g| sub.eq_ignore_ascii_case(g))
        }
        _ => false,
    }
}

fn is_menu_default(line: &str) -> bool {
    let (kw, rest) = keyword(line);
    kw == "menu" && rest.eq_ignore_ascii_case("default")
}

/// Adds the mtkit entry to a grub-legacy config (CentOS 6 `EFI/BOOT/BOOTX64.conf`): a copy
/// of the entry that was the default with `ks=cdrom:/ks.cfg` on its kernel line, placed
/// first, `default=0`, `timeout=5`. An mtkit entry from an earlier remaster is replaced.
pub fn edit_grub_legacy(text: &str) -> Result<String, String> {
    let menu = boot_menu();
    let (global, blocks) = blocks(text, "title");
    let old_default: usize = global
        .iter()
        .find(|l| keyword(l).0 == "default")
        .and_then(|l| keyword(l).1.parse().ok())
        .unwrap_or(0);
    let is_ours = |b: &Vec<&str>| keyword(b[0]).1 == menu.title;
    let had_ours = blocks.first().is_some_and(is_ours);
    let old_default = if had_ours {
        old_default.saturating_sub(1)
    } else {
        old_default
    };
    let blocks: Vec<Vec<&str>> = blocks.into_iter().filter(|b| !is_ours(b)).collect();
    let has_kernel = |b: &Vec<&str>| b.iter().any(|l| keyword(l).0 == "kernel");
    let base = blocks
        .get(old_default)
        .filter(|b| has_kernel(b))
        .or_else(|| blocks.iter().find(|b| has_kernel(b)))
        .ok_or_else(|| {
            "the EFI grub config has no `title` entry with a `kernel` line".to_string()
        })?;

    let mut entry = vec![format!("title {}", menu.title)];
    for line in &base[1..] {
        let (kw, rest) = keyword(line);
        match kw.as_str() {
            "kernel" => {
                let mut words = rest.splitn(2, char::is_whitespace);
                let image = words.next().unwrap_or_default();
                let args = with_ks(words.next().unwrap_or_default());
                entry.push(format!("\tkernel {image} {args}"));
            }
            "initrd" | "root" => entry.push(format!("\t{kw} {rest}")),
            _ => {}
        }
    }

    let mut out: Vec<String> = Vec::new();
    let (mut saw_default, mut saw_timeout) = (false, false);
    for line in &global {
        match keyword(line).0.as_str() {
            "default" => {
                saw_default = true;
                out.push("default=0".into());
            }
            "timeout" => {
                saw_timeout = true;
                out.push(format!("timeout={}", menu.timeout_seconds));
            }
            _ => out.push(line.to_string()),
        }
    }
    if !saw_default {
        out.push("default=0".into());
    }
    if !saw_timeout {
        out.push(format!("timeout={}", menu.timeout_seconds));
    }
    out.extend(entry);
    for b in &blocks {
        out.extend(b.iter().map(|l| l.to_string()));
    }
    Ok(join(&out, text.ends_with('\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISOLINUX: &str = "default vesamenu.c32
#prompt 1
timeout 600

display boot.msg

menu title Welcome to CentOS 6.6!

label linux
  menu label ^Install or upgrade an existing system
  menu default
  kernel vmlinuz
  append initrd=initrd.img
label vesa
  menu label Install system with ^basic video driver
  kernel vmlinuz
  append initrd=initrd.img xdriver=vesa nomodeset
label rescue
  menu label ^Rescue installed system
  kernel vmlinuz
  append initrd=initrd.img rescue
label local
  menu label Boot from ^local drive
  localboot 0xffff
";

    const GRUB: &str = "#debug --graphics
default=0
splashimage=/EFI/BOOT/splash.xpm.gz
timeout 5
hiddenmenu
title CentOS 6.6
\tkernel /images/pxeboot/vmlinuz
\tinitrd /images/pxeboot/initrd.img
title rescue
\tkernel /images/pxeboot/vmlinuz rescue askmethod
\tinitrd /images/pxeboot/initrd.img
";

    #[test]
    fn isolinux_gets_a_default_ks_entry_first_and_keeps_the_others() {
        let out = edit_isolinux(ISOLINUX).unwrap();
        let expected_entry = "label mtkit
  menu label Install mtkit master target
  menu default
  kernel vmlinuz
  append initrd=initrd.img ks=cdrom:/ks.cfg
label linux
  menu label ^Install or upgrade an existing system
  kernel vmlinuz
";
        assert!(out.contains(expected_entry), "{out}");
        assert!(
            out.starts_with("default vesamenu.c32\n#prompt 1\ntimeout 50\n"),
            "{out}"
        );
        assert_eq!(out.matches("menu default").count(), 1, "{out}");
        for label in [
            "label vesa",
            "label rescue",
            "label local",
            "localboot 0xffff",
        ] {
            assert!(out.contains(label), "{label} lost:\n{out}");
        }
        assert!(out.contains("append initrd=initrd.img xdriver=vesa nomodeset\n"));
    }

    #[test]
    fn isolinux_edit_is_stable_on_an_already_remastered_file() {
        let once = edit_isolinux(ISOLINUX).unwrap();
        let twice = edit_isolinux(&once).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn isolinux_default_label_is_repointed_and_old_ks_replaced() {
        let cfg = "default linux\ntimeout 100\nlabel linux\n kernel vmlinuz\n append initrd=initrd.img ks=http://x/ks.cfg\n";
        let out = edit_isolinux(cfg).unwrap();
        assert!(out.starts_with("default mtkit\ntimeout 50\n"), "{out}");
        assert!(
            out.contains("  append initrd=initrd.img ks=cdrom:/ks.cfg\n"),
            "{out}"
        );
        assert!(
            out.contains(" append initrd=initrd.img ks=http://x/ks.cfg\n"),
            "original kept"
        );
    }

    #[test]
    fn global_directives_after_the_labels_are_global_and_edited() {
        // timeout/ontimeout written after the labels (as some respins do): they would
        // keep the 60 s wait and boot the local disk.
        let cfg = "default vesamenu.c32\nlabel linux\n  menu label ^Install\n  kernel vmlinuz\n  append initrd=initrd.img\nlabel local\n  menu label Boot from ^local drive\n  localboot 0xffff\ntimeout 600\nontimeout local\nmenu title Welcome\n";
        let out = edit_isolinux(cfg).unwrap();
        assert_eq!(
            out,
            "default vesamenu.c32\ntimeout 50\nontimeout mtkit\nmenu title Welcome\nlabel mtkit\n  menu label Install mtkit master target\n  menu default\n  kernel vmlinuz\n  append initrd=initrd.img ks=cdrom:/ks.cfg\nlabel linux\n  menu label ^Install\n  kernel vmlinuz\n  append initrd=initrd.img\nlabel local\n  menu label Boot from ^local drive\n  localboot 0xffff\n"
        );
        assert_eq!(edit_isolinux(&out).unwrap(), out, "stable");
        // Duplicates: one of each is left.
        let twice = edit_isolinux(&format!("timeout 10\n{cfg}timeout 300\n")).unwrap();
        let globals: Vec<&str> = twice
            .lines()
            .take_while(|l| !l.starts_with("label"))
            .collect();
        assert_eq!(
            globals,
            [
                "timeout 50",
                "default vesamenu.c32",
                "ontimeout mtkit",
                "menu title Welcome"
            ]
        );
    }

    #[test]
    fn latin1_bytes_survive_the_edit() {
        let mut cfg = b"default vesamenu.c32\nmenu title Bienvenue \xe0 CentOS\nlabel linux\n  menu label ^Install\xe9\n  kernel vmlinuz\n  append initrd=initrd.img\n".to_vec();
        let out = to_latin1(&edit_isolinux(&from_latin1(&cfg)).unwrap());
        let has = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"menu title Bienvenue \xe0 CentOS\n"), "{out:?}");
        assert!(has(b"  menu label ^Install\xe9\n  kernel"), "{out:?}");
        // UTF-8 goes through byte for byte as well.
        cfg = "menu title Willkommen \u{2013} CentOS\nlabel linux\n kernel vmlinuz\n"
            .as_bytes()
            .to_vec();
        let out = to_latin1(&edit_isolinux(&from_latin1(&cfg)).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Willkommen \u{2013} CentOS"), "{text}");
    }

    #[test]
    fn isolinux_without_a_kernel_entry_is_refused() {
        let e = edit_isolinux("default local\nlabel local\n localboot 0\n").unwrap_err();
        assert!(e.contains("no entry that boots a kernel"), "{e}");
    }

    #[test]
    fn grub_gets_a_first_default_entry_with_ks() {
        let out = edit_grub_legacy(GRUB).unwrap();
        let expected = "#debug --graphics
default=0
splashimage=/EFI/BOOT/splash.xpm.gz
timeout=5
hiddenmenu
title Install mtkit master target
\tkernel /images/pxeboot/vmlinuz ks=cdrom:/ks.cfg
\tinitrd /images/pxeboot/initrd.img
title CentOS 6.6
\tkernel /images/pxeboot/vmlinuz
";
        assert!(out.starts_with(expected), "{out}");
        assert!(out.contains("title rescue\n\tkernel /images/pxeboot/vmlinuz rescue askmethod\n"));
        assert_eq!(
            edit_grub_legacy(&out).unwrap(),
            out,
            "second edit changes nothing"
        );
    }

    #[test]
    fn grub_bases_the_entry_on_the_old_default() {
        let cfg = "default 1\ntitle a\n\tkernel /a\ntitle b\n\tkernel /b quiet\n\tinitrd /b.img\n";
        let out = edit_grub_legacy(cfg).unwrap();
        assert!(out.contains("title Install mtkit master target\n\tkernel /b quiet ks=cdrom:/ks.cfg\n\tinitrd /b.img\n"), "{out}");
        assert!(out.starts_with("default=0\n"));
        assert!(edit_grub_legacy("default=0\n").is_err());
    }
}
