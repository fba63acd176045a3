//! Windows `R:`: the facts `scripts/Get-RetentionFacts.ps1` collects (Get-Volume,
//! Get-Partition, Get-BitLockerVolume, the install location) mapped onto the same rules.
//!
//! ConvertTo-Json writes CIM enum properties as numbers (Windows PowerShell 5.1) or, with
//! `-EnumsAsStrings` (PowerShell 7), as names; both forms are read.

use super::rules::VolumeFacts;
use anyhow::Result;
use serde_json::Value;
use std::path::Path;

/// Reads a facts file; malformed JSON is bad input naming the file and position.
pub fn load(path: &Path) -> Result<Value> {
    // The facts file is the user's input: a wrong path is bad input (exit 2).
    let text = crate::files::read_text(path).map_err(|e| {
        crate::error::bad_input(format!(
            "cannot read {}: {e} (give the JSON file Get-RetentionFacts.ps1 wrote)",
            path.display()
        ))
    })?;
    // PowerShell's Out-File writes UTF-8 with a byte order mark.
    let text = text.trim_start_matches('\u{feff}');
    serde_json::from_str(text).map_err(|e| {
        crate::error::bad_input(format!(
            "{}:{}:{}: not the JSON Get-RetentionFacts.ps1 writes: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// `MSFT_Volume.FileSystemType` values (for facts carrying only the number).
fn fs_type_name(n: u64) -> &'static str {
    match n {
        4 => "FAT",
        5 => "FAT16",
        6 => "FAT32",
        7 | 8 | 14 => "NTFS",
        15 => "ReFS",
        0x8000 => "CSVFS_NTFS",
        0x8001 => "CSVFS_ReFS",
        _ => "Unknown",
    }
}

fn enum_is(v: Option<&Value>, number: u64, name: &str) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_u64() == Some(number),
        Some(Value::String(s)) => s.eq_ignore_ascii_case(name),
        _ => false,
    }
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        // A [char] DriveLetter can come out as its code point.
        Value::Number(n) => n
            .as_u64()
            .and_then(|c| char::from_u32(c as u32))
            .map(String::from),
        _ => None,
    }
}

/// Present and not null.
fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// Maps the facts of drive `letter` onto the rules' input.
pub fn facts(v: &Value, letter: char) -> VolumeFacts {
    let drive = format!("{}:", letter.to_ascii_uppercase());
    let mut f = VolumeFacts {
        name: drive.clone(),
        allowed_fs: vec!["ntfs", "refs"],
        used_as_is: true,
        ..VolumeFacts::default()
    };
    let Some(vol) = obj(v, "Volume") else {
        return f;
    };
    f.exists = true;
    f.size = u64_of(vol.get("Size")).unwrap_or(0);
    f.free = u64_of(vol.get("SizeRemaining"));
    let fs = str_of(vol.get("FileSystem")).or_else(|| match vol.get("FileSystemType") {
        Some(Value::Number(n)) => n.as_u64().map(|n| fs_type_name(n).to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    });
    f.fs_version = fs.clone();
    f.filesystem = Some(fs.unwrap_or_else(|| "RAW".into()).to_ascii_lowercase());
    f.label = str_of(vol.get("FileSystemLabel"));
    if let Some(part) = obj(v, "Partition") {
        let flag = |k: &str| part.get(k).and_then(Value::as_bool).unwrap_or(false);
        if flag("IsSystem") {
            f.os_disk = Some(format!("{drive} is the system partition"));
        } else if flag("IsBoot") {
            f.os_disk = Some(format!("{drive} is the boot (Windows) partition"));
        }
        let id = (
            u64_of(part.get("DiskNumber")),
            u64_of(part.get("PartitionNumber")),
        );
        for (key, what) in [
            ("SystemPartitions", "system"),
            ("BootPartitions", "boot (Windows)"),
        ] {
            let listed = v.get(key).and_then(Value::as_array).is_some_and(|l| {
                l.iter().any(|p| {
                    id.0.is_some()
                        && (
                            u64_of(p.get("DiskNumber")),
                            u64_of(p.get("PartitionNumber")),
                        ) == id
                })
            });
            if listed && f.os_disk.is_none() {
                f.os_disk = Some(format!("{drive} is the {what} partition"));
            }
        }
        if let Some(n) = u64_of(part.get("DiskNumber"))
            && let Some(targets) = v.get("ReplicationTargetDisks").and_then(Value::as_array)
            && targets.iter().any(|t| t.as_u64() == Some(n))
        {
            f.writer_target = Some(format!("disk {n} (a replication target)"));
        }
    }
    if let Some(sys) = str_of(v.get("SystemDrive"))
        && sys.eq_ignore_ascii_case(&drive)
    {
        f.os_disk = Some(format!("{drive} is the system drive"));
    }
    if let Some(install) = str_of(v.get("InstallPath"))
        && install.to_ascii_uppercase().starts_with(&drive)
    {
        f.install_volume = Some(format!("holds the install {install} (cache volume)"));
    }
    if let Some(bl) = obj(v, "BitLocker") {
        f.locked = enum_is(bl.get("LockStatus"), 1, "Locked");
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_as_numbers_or_strings() {
        let n =
            json!({"Volume": {"Size": 10, "FileSystemType": 6}, "BitLocker": {"LockStatus": 1}});
        let f = facts(&n, 'R');
        assert_eq!(f.filesystem.as_deref(), Some("fat32"));
        assert!(f.locked);
        let s = json!({"Volume": {"Size": 10, "FileSystem": "NTFS"}, "BitLocker": {"LockStatus": "Unlocked"}});
        let f = facts(&s, 'R');
        assert_eq!(f.filesystem.as_deref(), Some("ntfs"));
        assert!(!f.locked);
    }

    #[test]
    fn missing_volume_does_not_exist() {
        let f = facts(&json!({"Volume": null}), 'R');
        assert!(!f.exists);
    }
}
