//! Can the binary we embed run on CentOS 6? Reads its ELF: a dynamic one must not need a
//! glibc symbol version newer than the target's 2.12, and no binary may declare (in its
//! GNU ABI tag, as glibc-linked ones do) a newer minimum kernel than 2.6.32.

use anyhow::Result;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, Sym};
use std::fmt;
use std::path::Path;

/// The glibc of CentOS/RHEL 6, the oldest target the appliance supports.
pub const TARGET_GLIBC: GlibcVersion = GlibcVersion(2, 12, 0);

/// The kernel of CentOS/RHEL 6.
pub const TARGET_KERNEL: KernelVersion = KernelVersion(2, 6, 32);

/// A Linux version, as in the `NT_GNU_ABI_TAG` note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What the ELF file says about where it can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub linkage: Linkage,
    /// The oldest kernel glibc's start-up code accepts ("FATAL: kernel too old" below it).
    pub min_kernel: Option<KernelVersion>,
}

impl Binary {
    /// Why it will not run on CentOS 6, if it will not.
    pub fn blocker(&self) -> Option<String> {
        if let Some(need) = self.linkage.too_new_glibc() {
            let symbol = need
                .symbol
                .as_deref()
                .map(|s| format!(" (symbol {s}@{})", need.version))
                .unwrap_or_default();
            return Some(format!(
                "needs {}{symbol}, newer than CentOS 6's glibc 2.12",
                need.version
            ));
        }
        match self.min_kernel {
            Some(k) if k > TARGET_KERNEL => Some(format!(
                "declares Linux {k} as its oldest kernel (GNU ABI tag), newer than CentOS 6's {TARGET_KERNEL}"
            )),
            _ => None,
        }
    }

    /// A one-line verdict for the log and the summary.
    pub fn describe(&self) -> String {
        match self.blocker() {
            Some(why) => {
                let how = match &self.linkage {
                    Linkage::Static => "statically linked",
                    Linkage::Dynamic { .. } => "dynamically linked",
                };
                format!("{how} and {why}: it will not start there")
            }
            None => describe(&self.linkage),
        }
    }
}

/// A `GLIBC_x.y[.z]` symbol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32, pub u32);

impl GlibcVersion {
    /// Parses the name of a version requirement, `GLIBC_2.14` or `GLIBC_2.2.5`.
    pub fn parse(name: &str) -> Option<GlibcVersion> {
        let mut parts = name.strip_prefix("GLIBC_")?.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        parts
            .next()
            .is_none()
            .then_some(GlibcVersion(major, minor, patch))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GLIBC_{}.{}", self.0, self.1)?;
        if self.2 != 0 {
            write!(f, ".{}", self.2)?;
        }
        Ok(())
    }
}

/// How the binary is linked, as far as running on another machine is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// No interpreter and no shared libraries: runs on any x86-64 Linux kernel.
    Static,
    /// Needs shared libraries; `glibc` is the newest glibc version it requires, if any.
    Dynamic {
        interpreter: Option<String>,
        glibc: Option<GlibcNeed>,
    },
}

/// The newest glibc version a binary needs, and one symbol that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlibcNeed {
    pub version: GlibcVersion,
    pub symbol: Option<String>,
}

impl Linkage {
    /// The glibc requirement that the target (glibc 2.12) cannot meet, if any.
    pub fn too_new_glibc(&self) -> Option<&GlibcNeed> {
        match self {
            Linkage::Dynamic {
                glibc: Some(need), ..
            } if need.version > TARGET_GLIBC => Some(need),
            _ => None,
        }
    }
}

/// Reads the ELF file at `path` and says how it is linked and what kernel it needs.
pub fn inspect(path: &Path) -> Result<Binary> {
    let data = std::fs::read(path).map_err(|e| {
        crate::error::bad_input(format!(
            "cannot read the binary to embed {}: {e} (give it with --binary)",
            path.display()
        ))
    })?;
    inspect_bytes(&data).map_err(|e| {
        crate::error::bad_input(format!(
            "{} cannot be embedded: {e} (give the static build with --binary, e.g. target/x86_64-unknown-linux-musl/release/mtkit)",
            path.display()
        ))
    })
}

/// The parser behind [`inspect`], on bytes; errors say what is wrong with the file.
pub fn inspect_bytes(data: &[u8]) -> Result<Binary, String> {
    let file = ElfFile64::<object::Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF file ({e})"))?;
    let endian = file.endian();
    let machine = file.elf_header().e_machine(endian);
    if machine != elf::EM_X86_64 {
        return Err(format!(
            "an ELF file for machine {machine:?}, not x86-64 (the appliance is CentOS 6 x86_64)"
        ));
    }
    let mut interpreter = None;
    let mut has_dynamic = false;
    let mut min_kernel = None;
    for ph in file.elf_program_headers() {
        match ph.p_type(endian) {
            elf::PT_INTERP => {
                let bytes = ph
                    .data(endian, data)
                    .map_err(|_| "a broken PT_INTERP segment".to_string())?;
                let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
                interpreter = Some(String::from_utf8_lossy(name).into_owned());
            }
            elf::PT_DYNAMIC => has_dynamic = true,
            elf::PT_NOTE => {
                if let Some(k) = abi_tag(ph, endian, data) {
                    min_kernel = Some(k);
                }
            }
            _ => {}
        }
    }
    let needs_libraries = has_dynamic && has_needed(&file, data).unwrap_or(true);
    // A static-pie (musl's default for static Rust) has PT_DYNAMIC for its own
    // relocations but no interpreter and no DT_NEEDED: it is self-contained.
    let linkage = if interpreter.is_none() && !needs_libraries {
        Linkage::Static
    } else {
        let glibc =
            newest_glibc(&file, data).map_err(|e| format!("unreadable symbol versions ({e})"))?;
        Linkage::Dynamic { interpreter, glibc }
    };
    Ok(Binary {
        linkage,
        min_kernel,
    })
}

/// The minimum Linux version of a `GNU` `NT_GNU_ABI_TAG` note in a PT_NOTE segment.
fn abi_tag(
    ph: &elf::ProgramHeader64<object::Endianness>,
    endian: object::Endianness,
    data: &[u8],
) -> Option<KernelVersion> {
    let mut notes = ph.notes(endian, data).ok()??;
    while let Ok(Some(note)) = notes.next() {
        let desc = note.desc();
        if note.name() == elf::ELF_NOTE_GNU
            && note.n_type(endian) == elf::NT_GNU_ABI_TAG
            && desc.len() >= 16
        {
            // x86-64 is little-endian (checked by the caller).
            let word = |i: usize| u32::from_le_bytes(desc[i * 4..i * 4 + 4].try_into().unwrap());
            if word(0) == elf::ELF_NOTE_OS_LINUX {
                return Some(KernelVersion(word(1), word(2), word(3)));
            }
        }
    }
    None
}

/// True when the dynamic section names at least one shared library.
fn has_needed(file: &ElfFile64<object::Endianness>, data: &[u8]) -> object::Result<bool> {
    let endian = file.endian();
    let Some((entries, _)) = file.elf_section_table().dynamic(endian, data)? else {
        return Ok(false);
    };
    Ok(entries
        .iter()
        .any(|d| d.d_tag.get(endian) == elf::DT_NEEDED))
}

/// The newest `GLIBC_*` version the binary requires, preferring one a symbol is bound to.
fn newest_glibc(
    file: &ElfFile64<object::Endianness>,
    data: &[u8],
) -> object::Result<Option<GlibcNeed>> {
    let endian = file.endian();
    let sections = file.elf_section_table();
    let mut best: Option<GlibcNeed> = None;
    let mut consider = |version: GlibcVersion, symbol: Option<String>| {
        let better = match &best {
            None => true,
            Some(b) => version > b.version || (version == b.version && b.symbol.is_none()),
        };
        if better {
            best = Some(GlibcNeed { version, symbol });
        }
    };
    // Every requirement, even one no symbol refers to, is checked by the loader.
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((_need, mut aux)) = needs.next()? {
            while let Some(a) = aux.next()? {
                let name = String::from_utf8_lossy(a.name(endian, strings)?).into_owned();
                if let Some(v) = GlibcVersion::parse(&name) {
                    consider(v, None);
                }
            }
        }
    }
    // Then name a symbol bound to each version, so the warning is actionable.
    if let Some(versions) = sections.versions(endian, data)? {
        let symbols = file.elf_dynamic_symbol_table();
        for (index, sym) in symbols.enumerate() {
            if !sym.is_undefined(endian) {
                continue;
            }
            let Ok(Some(version)) = versions.version(versions.version_index(endian, index).index())
            else {
                continue;
            };
            let Some(v) = GlibcVersion::parse(&String::from_utf8_lossy(version.name())) else {
                continue;
            };
            let name = symbols.symbol_name(endian, sym)?;
            consider(v, Some(String::from_utf8_lossy(name).into_owned()));
        }
    }
    Ok(best)
}

/// A one-line verdict for the log and the summary.
pub fn describe(linkage: &Linkage) -> String {
    match linkage {
        Linkage::Static => "statically linked: runs on CentOS 6".into(),
        Linkage::Dynamic { glibc: None, .. } => {
            "dynamically linked, no glibc symbol versions required".into()
        }
        Linkage::Dynamic {
            glibc: Some(need), ..
        } => {
            let symbol = need
                .symbol
                .as_deref()
                .map(|s| format!(" (symbol {s}@{})", need.version))
                .unwrap_or_default();
            if need.version > TARGET_GLIBC {
                format!(
                    "dynamically linked and needs {}{symbol}, newer than CentOS 6's glibc 2.12: it will not start there",
                    need.version
                )
            } else {
                format!(
                    "dynamically linked, needs at most {}{symbol}: fine with glibc 2.12",
                    need.version
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_parse_and_order() {
        assert_eq!(
            GlibcVersion::parse("GLIBC_2.2.5"),
            Some(GlibcVersion(2, 2, 5))
        );
        assert_eq!(
            GlibcVersion::parse("GLIBC_2.14"),
            Some(GlibcVersion(2, 14, 0))
        );
        assert_eq!(GlibcVersion::parse("GLIBC_PRIVATE"), None);
        assert_eq!(GlibcVersion::parse("GCC_3.0"), None);
        assert!(GlibcVersion(2, 14, 0) > TARGET_GLIBC);
        assert!(GlibcVersion(2, 2, 5) < TARGET_GLIBC);
        assert!(GlibcVersion(2, 12, 1) > TARGET_GLIBC);
        assert_eq!(GlibcVersion(2, 2, 5).to_string(), "GLIBC_2.2.5");
        assert_eq!(GlibcVersion(2, 34, 0).to_string(), "GLIBC_2.34");
    }

    #[test]
    fn this_test_binary_is_read() {
        // The test binary is built for the host: dynamic glibc, or static under musl.
        let exe = std::env::current_exe().unwrap();
        let linkage = inspect(&exe).unwrap().linkage;
        if cfg!(target_env = "gnu") {
            let Linkage::Dynamic { interpreter, glibc } = &linkage else {
                panic!("expected dynamic, got {linkage:?}");
            };
            assert!(interpreter.as_deref().unwrap().contains("ld-linux"));
            let need = glibc.as_ref().expect("a glibc build needs GLIBC_ versions");
            assert!(need.version >= GlibcVersion(2, 2, 5));
            assert!(need.symbol.is_some(), "{need:?}");
        }
    }

    #[test]
    fn non_elf_and_foreign_machines_are_refused() {
        let e = inspect_bytes(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(e.contains("not a 64-bit ELF"), "{e}");
        let mut header = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        header[18] = 183; // e_machine = EM_AARCH64 (little-endian low byte)
        header[19] = 0;
        let e = inspect_bytes(&header).unwrap_err();
        assert!(e.contains("not x86-64"), "{e}");
    }

    #[test]
    fn verdicts_name_the_version_and_symbol() {
        let too_new = Linkage::Dynamic {
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
            glibc: Some(GlibcNeed {
                version: GlibcVersion(2, 34, 0),
                symbol: Some("__libc_start_main".into()),
            }),
        };
        assert!(too_new.too_new_glibc().is_some());
        let text = describe(&too_new);
        assert!(text.contains("GLIBC_2.34") && text.contains("__libc_start_main@GLIBC_2.34"));
        assert!(Linkage::Static.too_new_glibc().is_none());
        let b = Binary {
            linkage: too_new,
            min_kernel: Some(KernelVersion(3, 2, 0)),
        };
        assert!(
            b.blocker()
                .unwrap()
                .contains("__libc_start_main@GLIBC_2.34")
        );
        // A static glibc binary from a modern distribution: no symbol versions, but
        // its start-up code refuses kernels older than its ABI tag.
        let static_glibc = Binary {
            linkage: Linkage::Static,
            min_kernel: Some(KernelVersion(3, 2, 0)),
        };
        let why = static_glibc.blocker().unwrap();
        assert!(
            why.contains("Linux 3.2.0") && why.contains("2.6.32"),
            "{why}"
        );
        assert!(static_glibc.describe().contains("will not start"));
        let musl = Binary {
            linkage: Linkage::Static,
            min_kernel: None,
        };
        assert_eq!(musl.blocker(), None);
        let old_glibc = Binary {
            linkage: Linkage::Static,
            min_kernel: Some(KernelVersion(2, 6, 18)),
        };
        assert_eq!(old_glibc.blocker(), None);
    }
}
