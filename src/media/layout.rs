//! The media as data: the disc layout (`iso/layout.toml`) and the boot-menu entry a
//! remaster adds (`iso/boot-menu.toml`), compiled in and parsed once. The tests below
//! check both files, so a bad edit there fails the build's tests, not a user's run.

use serde::Deserialize;
use std::sync::LazyLock;

/// `iso/layout.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Layout {
    pub payload: PayloadPaths,
    pub install_disc: InstallDisc,
}

/// Where the payload goes, on both media kinds.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PayloadPaths {
    pub kickstart: String,
    pub binary: String,
    pub config: String,
    pub repo: String,
}

/// What a remaster reads and edits on a CentOS/RHEL 6 install disc.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallDisc {
    pub discinfo: String,
    pub treeinfo: String,
    pub isolinux_cfg: String,
    pub efi_grub_conf: String,
    pub efi_image: String,
    pub repomd: String,
}

impl PayloadPaths {
    /// The folder holding the binary, the config and the repo (`/mtkit`).
    pub fn folder(&self) -> &str {
        self.binary.rsplit_once('/').map_or("/", |(d, _)| d)
    }
}

impl InstallDisc {
    /// The files that make an ISO a RHEL 6-style install disc.
    pub fn required(&self) -> [&str; 3] {
        [&self.discinfo, &self.treeinfo, &self.isolinux_cfg]
    }

    /// The EFI grub config as mtools names it inside the EFI boot image (`::EFI/...`).
    pub fn efi_grub_conf_in_fat(&self) -> String {
        format!("::{}", self.efi_grub_conf.trim_start_matches('/'))
    }
}

/// `iso/boot-menu.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BootMenu {
    pub title: String,
    pub kickstart_argument: String,
    pub second_drive_argument: String,
    pub timeout_seconds: u32,
    pub isolinux: IsolinuxEntry,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IsolinuxEntry {
    pub label: String,
}

impl BootMenu {
    /// isolinux counts its timeout in tenths of a second.
    pub fn isolinux_timeout(&self) -> u32 {
        self.timeout_seconds * 10
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    // Compiled in and checked by the tests below: a failure here is a build defect.
    toml::from_str(text).unwrap_or_else(|e| panic!("{name} is not valid: {e}"))
}

static LAYOUT: LazyLock<Layout> =
    LazyLock::new(|| parse("iso/layout.toml", include_str!("../../iso/layout.toml")));
static BOOT_MENU: LazyLock<BootMenu> = LazyLock::new(|| {
    parse(
        "iso/boot-menu.toml",
        include_str!("../../iso/boot-menu.toml"),
    )
});

/// The disc layout.
pub fn layout() -> &'static Layout {
    &LAYOUT
}

/// Where the payload goes on the media.
pub fn payload() -> &'static PayloadPaths {
    &LAYOUT.payload
}

/// The boot-menu entry of a remastered disc.
pub fn boot_menu() -> &'static BootMenu {
    &BOOT_MENU
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ISO path that lands unquoted in xorriso arguments and in the kickstart's shell.
    fn plain_iso_path(p: &str) -> bool {
        p.starts_with('/')
            && p.len() > 1
            && !p.contains("//")
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    }

    #[test]
    fn layout_paths_are_plain_absolute_iso_paths() {
        let l = layout();
        let p = &l.payload;
        let d = &l.install_disc;
        let mut all = vec![&p.kickstart, &p.binary, &p.config, &p.repo];
        all.extend([&d.discinfo, &d.treeinfo, &d.isolinux_cfg]);
        all.extend([&d.efi_grub_conf, &d.efi_image, &d.repomd]);
        for path in all {
            assert!(plain_iso_path(path), "{path:?}");
        }
        // The kickstart's %post and the remaster's clean-up of an earlier payload rely on
        // the binary, the config and the repo sharing one folder.
        assert_eq!(p.folder(), "/mtkit");
        for f in [&p.config, &p.repo] {
            assert!(f.starts_with(&format!("{}/", p.folder())), "{f}");
        }
    }

    /// templates/ks.cfg.j2 spells the payload paths in its shell: they must be these.
    #[test]
    fn the_kickstart_looks_for_the_payload_where_the_media_put_it() {
        let mut config = crate::config::Config::default();
        config.packages.offline_repo = "rpms".into();
        let ks = crate::kickstart::render(&config, &Default::default()).unwrap();
        let p = payload();
        for path in [&p.binary, &p.config, &p.repo] {
            assert!(ks.contains(path.as_str()), "ks.cfg does not use {path}");
        }
    }

    #[test]
    fn boot_menu_entry_is_usable_in_both_menus() {
        let m = boot_menu();
        let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        // Both name the kickstart at its path on the media, as a single kernel word.
        for arg in [&m.kickstart_argument, &m.second_drive_argument] {
            assert!(word(arg) && arg.starts_with("ks="), "{arg:?}");
            assert!(
                arg.ends_with(&format!(":{}", payload().kickstart)),
                "{arg:?}"
            );
        }
        assert!(word(&m.isolinux.label), "{:?}", m.isolinux.label);
        // A menu title is the rest of its line: printable, no line breaks.
        assert!(!m.title.is_empty() && !m.title.chars().any(char::is_control));
        assert!((1..=60).contains(&m.timeout_seconds));
        assert_eq!(m.isolinux_timeout(), 50);
    }
}
