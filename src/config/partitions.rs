//! The OS disk's partition layout, with the `auto` sizes resolved from the RAM the config
//! states: what the kickstart creates, and what validation checks fits `os-disk-size`.
//!
//! Rules (also in docs/config-and-kickstart.md):
//! - `/boot` is a fixed 500 MiB ext4 partition. CentOS 6's grub legacy can boot from an ext4
//!   root, but anaconda for RHEL 6 expects a separate /boot and a small one keeps the kernel
//!   out of the (large) root filesystem's fsck and resize path.
//! - swap `auto`: RAM <= 2 GiB gives 2 x RAM; RAM <= 8 GiB gives RAM; above that 8 GiB
//!   (the RHEL 6 guide's sizes; the writer keeps its working set in the page cache, not swap).
//! - /var/crash `auto`: RAM + 1 GiB, rounded up to a whole GiB, so that a full, uncompressed
//!   vmcore of this machine fits with room for its dmesg and a second partial dump.
//! - Every size is rounded up to a whole MiB, the unit of the kickstart's `part --size`.
//! - The layout, plus [`SLACK`] for the partition table and alignment, must fit in
//!   `[disks] os-disk-size`.

use super::{AutoSize, Config, Size};

/// Size of the /boot partition.
pub const BOOT: Size = Size(500 * Size::MIB);

/// Room kept free for the MBR, the extended partition's EBRs and 1 MiB alignment.
pub const SLACK: Size = Size(16 * Size::MIB);

/// One partition of the OS disk, in kickstart terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    /// Mount point, or `swap`.
    pub mountpoint: &'static str,
    /// Empty for swap.
    pub fstype: &'static str,
    pub size_mib: u64,
}

/// swap for `ram` under the `auto` rule.
pub fn auto_swap(ram: Size) -> Size {
    let r = ram.bytes();
    if r <= 2 * Size::GIB {
        Size(2 * r)
    } else if r <= 8 * Size::GIB {
        Size(r)
    } else {
        Size::from_gib(8)
    }
}

/// /var/crash for `ram` under the `auto` rule.
pub fn auto_var_crash(ram: Size) -> Size {
    let need = ram.bytes().saturating_add(Size::GIB);
    Size(need.div_ceil(Size::GIB).saturating_mul(Size::GIB))
}

fn resolve(size: AutoSize, auto: impl Fn(Size) -> Size, ram: Size) -> Size {
    match size {
        AutoSize::Auto => auto(ram),
        AutoSize::Fixed(s) => s,
    }
}

fn mib_up(s: Size) -> u64 {
    s.bytes().div_ceil(Size::MIB)
}

/// The partitions, in the order the kickstart creates them.
pub fn partitions(config: &Config) -> Vec<Part> {
    let d = &config.disks;
    let ram = config.appliance.memory;
    let part = |mountpoint, fstype, size| Part {
        mountpoint,
        fstype,
        size_mib: mib_up(size),
    };
    vec![
        part("/boot", "ext4", BOOT),
        part("/", "ext4", d.root_size),
        part(
            "/var/crash",
            "ext4",
            resolve(d.var_crash_size, auto_var_crash, ram),
        ),
        part("/home", "ext4", d.home_size),
        part("swap", "", resolve(d.swap_size, auto_swap, ram)),
    ]
}

/// Total space the layout needs on the OS disk, slack included; `None` when the sizes add
/// up to more than a u64 of bytes (16 EiB), which no disk is: every step is checked, so
/// `root-size = "16777215T"` plus a `/home` cannot wrap around to a small total.
pub fn required(config: &Config) -> Option<Size> {
    let mib = partitions(config)
        .iter()
        .try_fold(0u64, |acc, p| acc.checked_add(p.size_mib))?;
    mib.checked_mul(Size::MIB)?
        .checked_add(SLACK.bytes())
        .map(Size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_overflow_are_not_a_small_total() {
        let mut c = Config::default();
        c.disks.root_size = "16777215T".parse().unwrap();
        c.disks.home_size = "1T".parse().unwrap();
        assert_eq!(required(&c), None);
        // Just under 16E: a (huge) total, larger than any disk, still compared honestly.
        c.disks.home_size = "4G".parse().unwrap();
        assert!(required(&c).unwrap() > Size(16_777_214 * Size::TIB));
    }

    #[test]
    fn auto_rules() {
        let g = Size::from_gib;
        assert_eq!(auto_swap(g(1)), g(2));
        assert_eq!(auto_swap(g(2)), g(4));
        assert_eq!(auto_swap(g(4)), g(4));
        assert_eq!(auto_swap(g(8)), g(8));
        assert_eq!(auto_swap(g(64)), g(8));
        assert_eq!(auto_var_crash(g(8)), g(9));
        assert_eq!(auto_var_crash(Size::from_mib(1536)), g(3));
    }

    #[test]
    fn default_layout_fits_the_default_disk() {
        let c = Config::default();
        let parts = partitions(&c);
        let sizes: Vec<_> = parts.iter().map(|p| (p.mountpoint, p.size_mib)).collect();
        assert_eq!(
            sizes,
            [
                ("/boot", 500),
                ("/", 40 * 1024),
                ("/var/crash", 9 * 1024),
                ("/home", 4 * 1024),
                ("swap", 8 * 1024)
            ]
        );
        assert!(required(&c).unwrap() <= c.disks.os_disk_size);
    }
}
