//! Pure decoders for SCSI VPD pages 0x83 (device identification) and 0x80 (unit serial
//! number), by the SPC-4 rules (section 7.8.6 and 7.8.17), tolerant of malformed pages.

use serde::Serialize;
use std::fmt;

/// Code set of a designator (SPC-4 table 590).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeSet {
    Binary,
    Ascii,
    Utf8,
    Reserved(u8),
}

impl CodeSet {
    fn from_nibble(n: u8) -> Self {
        match n {
            1 => CodeSet::Binary,
            2 => CodeSet::Ascii,
            3 => CodeSet::Utf8,
            other => CodeSet::Reserved(other),
        }
    }
}

/// What a designator identifies (SPC-4 table 591).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Association {
    LogicalUnit,
    TargetPort,
    TargetDevice,
    Reserved,
}

/// Designator type (SPC-4 table 592).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DesignatorType {
    VendorSpecific,
    T10Vendor,
    Eui64,
    Naa,
    RelativeTargetPort,
    TargetPortGroup,
    LogicalUnitGroup,
    Md5,
    ScsiName,
    ProtocolSpecificPort,
    Uuid,
    Reserved(u8),
}

impl DesignatorType {
    fn from_nibble(n: u8) -> Self {
        use DesignatorType::*;
        match n {
            0 => VendorSpecific,
            1 => T10Vendor,
            2 => Eui64,
            3 => Naa,
            4 => RelativeTargetPort,
            5 => TargetPortGroup,
            6 => LogicalUnitGroup,
            7 => Md5,
            8 => ScsiName,
            9 => ProtocolSpecificPort,
            0xa => Uuid,
            other => Reserved(other),
        }
    }
}

/// One identification descriptor of page 0x83.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Designator {
    pub protocol: u8,
    pub code_set: CodeSet,
    /// Protocol identifier valid (PIV)
    pub piv: bool,
    pub association: Association,
    pub kind: DesignatorType,
    /// The designator bytes (after the 4-byte descriptor header).
    #[serde(serialize_with = "hex_ser")]
    pub value: Vec<u8>,
    /// The descriptor claimed more bytes than the page holds; `value` is what was there.
    pub truncated: bool,
}

fn hex_ser<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(v))
}

/// Lower-case hex of `bytes`, as scsi_id and the kernel print binary designators.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Designator {
    /// The NAA field (high nibble of the first byte) of an NAA designator.
    pub fn naa_type(&self) -> Option<u8> {
        (self.kind == DesignatorType::Naa)
            .then(|| self.value.first().map(|b| b >> 4))
            .flatten()
    }

    /// Whether the length fits the type: NAA 2/3/5 are 8 bytes and NAA 6 is 16 (SPC-4
    /// 7.8.6.6), EUI-64 is 8, 12 or 16 (7.8.6.5), T10 vendor ID has at least the 8-byte vendor.
    pub fn length_ok(&self) -> bool {
        let n = self.value.len();
        match self.kind {
            DesignatorType::Naa => match self.naa_type() {
                Some(2 | 3 | 5) => n == 8,
                Some(6) => n == 16,
                _ => false,
            },
            DesignatorType::Eui64 => matches!(n, 8 | 12 | 16),
            DesignatorType::T10Vendor => n >= 8,
            DesignatorType::RelativeTargetPort
            | DesignatorType::TargetPortGroup
            | DesignatorType::LogicalUnitGroup => n == 4,
            DesignatorType::Md5 | DesignatorType::Uuid => n == 16 || n == 18,
            _ => true,
        }
    }

    /// The designator as text: binary code set as hex, ASCII/UTF-8 as text (up to a NUL,
    /// trailing spaces and NULs dropped: SPC-4 pads SCSI name strings with NULs).
    pub fn text(&self) -> String {
        match self.code_set {
            CodeSet::Ascii | CodeSet::Utf8 => {
                let end = self
                    .value
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(self.value.len());
                String::from_utf8_lossy(&self.value[..end])
                    .trim_end()
                    .to_string()
            }
            _ => hex(&self.value),
        }
    }
}

impl fmt::Display for Designator {
    /// A short form like the kernel's `wwid` (`naa.`, `eui.`, `t10.`) or sg_vpd's wording.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let assoc = match self.association {
            Association::LogicalUnit => "lu",
            Association::TargetPort => "port",
            Association::TargetDevice => "target",
            Association::Reserved => "reserved",
        };
        let v = self.text();
        match self.kind {
            DesignatorType::Naa => write!(f, "{assoc}:naa.{v}"),
            DesignatorType::Eui64 => write!(f, "{assoc}:eui.{v}"),
            DesignatorType::T10Vendor => write!(f, "{assoc}:t10.{v}"),
            DesignatorType::ScsiName => write!(f, "{assoc}:name.{v}"),
            DesignatorType::VendorSpecific => write!(f, "{assoc}:vendor.{v}"),
            DesignatorType::Uuid => write!(f, "{assoc}:uuid.{v}"),
            DesignatorType::Md5 => write!(f, "{assoc}:md5.{v}"),
            DesignatorType::RelativeTargetPort => write!(f, "{assoc}:rtp.{v}"),
            DesignatorType::TargetPortGroup => write!(f, "{assoc}:tpg.{v}"),
            DesignatorType::LogicalUnitGroup => write!(f, "{assoc}:lug.{v}"),
            DesignatorType::ProtocolSpecificPort => write!(f, "{assoc}:proto.{v}"),
            DesignatorType::Reserved(t) => write!(f, "{assoc}:type{t:x}.{v}"),
        }
    }
}

/// A decoded page 0x83.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Page83 {
    pub designators: Vec<Designator>,
    /// Problems met while decoding (the page is still used as far as it goes).
    pub problems: Vec<String>,
}

impl Page83 {
    /// The best logical-unit designator by SPC-4 preference (NAA 6 > 5 > other NAA >
    /// EUI-64 > SCSI name > T10 vendor ID), used for display, not for the scsi_id ID.
    pub fn best_lu(&self) -> Option<&Designator> {
        let rank = |d: &Designator| -> Option<u8> {
            if d.association != Association::LogicalUnit || !d.length_ok() {
                return None;
            }
            Some(match (d.kind, d.naa_type()) {
                (DesignatorType::Naa, Some(6)) => 0,
                (DesignatorType::Naa, Some(5)) => 1,
                (DesignatorType::Naa, _) => 2,
                (DesignatorType::Eui64, _) => 3,
                (DesignatorType::ScsiName, _) => 4,
                (DesignatorType::T10Vendor, _) => 5,
                _ => return None,
            })
        };
        self.designators
            .iter()
            .filter_map(|d| rank(d).map(|r| (r, d)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, d)| d)
    }
}

/// The page length a VPD page's 4-byte header declares, once the header is there and names
/// page `code`.
fn page_length(page: &[u8], code: u8) -> Result<usize, String> {
    if page.len() < 4 {
        return Err(format!(
            "page {code:#04x} is {} bytes, shorter than its header",
            page.len()
        ));
    }
    if page[1] != code {
        return Err(format!("page code is {:#04x}, not {code:#04x}", page[1]));
    }
    Ok(u16::from_be_bytes([page[2], page[3]]) as usize)
}

/// Decodes page 0x83. Never panics: descriptors that run past the end are kept truncated and
/// reported; a page that is not 0x83 or is shorter than its header is an error.
pub fn decode_pg83(page: &[u8]) -> Result<Page83, String> {
    let declared = page_length(page, 0x83)?;
    let mut out = Page83::default();
    let end = if 4 + declared > page.len() {
        out.problems.push(format!(
            "page length {} runs past the {} bytes read",
            declared,
            page.len() - 4
        ));
        page.len()
    } else {
        4 + declared
    };
    let mut at = 4;
    while at < end {
        if at + 4 > end {
            out.problems.push(format!(
                "{} stray bytes after the last descriptor",
                end - at
            ));
            break;
        }
        let h = &page[at..at + 4];
        let len = h[3] as usize;
        let start = at + 4;
        let stop = start + len;
        let truncated = stop > end;
        if truncated {
            out.problems.push(format!(
                "descriptor at byte {at} claims {len} bytes, only {} left",
                end - start
            ));
        }
        out.designators.push(Designator {
            protocol: h[0] >> 4,
            code_set: CodeSet::from_nibble(h[0] & 0x0f),
            piv: h[1] & 0x80 != 0,
            association: match (h[1] >> 4) & 3 {
                0 => Association::LogicalUnit,
                1 => Association::TargetPort,
                2 => Association::TargetDevice,
                _ => Association::Reserved,
            },
            kind: DesignatorType::from_nibble(h[1] & 0x0f),
            value: page[start..stop.min(end)].to_vec(),
            truncated,
        });
        at = stop;
    }
    for d in &out.designators {
        if !d.truncated && !d.length_ok() {
            out.problems.push(format!(
                "{:?} designator of {} bytes has the wrong length for its type",
                d.kind,
                d.value.len()
            ));
        }
    }
    Ok(out)
}

/// Decodes page 0x80: the unit serial number, ASCII, with the padding spaces trimmed.
pub fn decode_pg80(page: &[u8]) -> Result<String, String> {
    let declared = page_length(page, 0x80)?;
    let body = &page[4..page.len().min(4 + declared)];
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    Ok(String::from_utf8_lossy(&body[..end]).trim().to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A VMware disk with disk.EnableUUID: 16-byte NAA 6 for the LU, with target-port
    /// designators (NAA 5 port name, relative port) and a T10 vendor ID beside it.
    pub(crate) fn vmware_like_page() -> Vec<u8> {
        let mut d = Vec::new();
        d.extend([0x01, 0x03, 0x00, 0x10]);
        d.extend([
            0x60, 0x00, 0xc2, 0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0x82, 0x93, 0xa4,
            0xb5, 0xc6,
        ]);
        d.extend([0x61, 0x93, 0x00, 0x08, 0x50, 0x00, 0xc2, 0x90, 0, 0, 0, 1]);
        d.extend([0x61, 0x94, 0x00, 0x04, 0, 0, 0, 1]);
        d.extend([0x02, 0x01, 0x00, 0x18]);
        d.extend(b"VMware  6000c29a1b2c3d4e");
        let mut p = vec![0x00, 0x83];
        p.extend((d.len() as u16).to_be_bytes());
        p.extend(d);
        p
    }

    #[test]
    fn decodes_lu_and_port_designators() {
        let p = decode_pg83(&vmware_like_page()).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.designators.len(), 4);
        let naa = &p.designators[0];
        assert_eq!(naa.naa_type(), Some(6));
        assert!(naa.length_ok());
        assert_eq!(naa.association, Association::LogicalUnit);
        assert_eq!(naa.text(), "6000c29a1b2c3d4e5f60718293a4b5c6");
        assert_eq!(p.designators[1].association, Association::TargetPort);
        assert_eq!(p.designators[1].naa_type(), Some(5));
        assert!(p.designators[1].piv);
        assert_eq!(p.designators[2].kind, DesignatorType::RelativeTargetPort);
        assert_eq!(p.designators[3].kind, DesignatorType::T10Vendor);
        assert_eq!(p.designators[3].code_set, CodeSet::Ascii);
        assert_eq!(
            p.best_lu().unwrap().to_string(),
            "lu:naa.6000c29a1b2c3d4e5f60718293a4b5c6"
        );
    }

    #[test]
    fn eui64_lengths_and_scsi_name() {
        for n in [8usize, 12, 16] {
            let mut page = vec![0, 0x83, 0, (4 + n) as u8, 0x01, 0x02, 0, n as u8];
            page.extend(std::iter::repeat_n(0xab, n));
            let p = decode_pg83(&page).unwrap();
            assert!(p.designators[0].length_ok(), "EUI-64 of {n} bytes");
            assert_eq!(
                p.designators[0].to_string(),
                format!("lu:eui.{}", "ab".repeat(n))
            );
        }
        let name = b"iqn.2001-04.com.example:disk1\0\0\0";
        let mut page = vec![
            0,
            0x83,
            0,
            (4 + name.len()) as u8,
            0x53,
            0x08,
            0,
            name.len() as u8,
        ];
        page.extend(name);
        let p = decode_pg83(&page).unwrap();
        assert_eq!(p.designators[0].code_set, CodeSet::Utf8);
        assert_eq!(p.designators[0].protocol, 5);
        assert_eq!(p.designators[0].text(), "iqn.2001-04.com.example:disk1");
    }

    #[test]
    fn truncated_and_overlong_pages_are_reported_not_fatal() {
        let full = vmware_like_page();
        let p = decode_pg83(&full[..10]).unwrap();
        assert!(p.designators[0].truncated);
        assert_eq!(p.designators[0].value.len(), 2);
        assert!(!p.designators[0].length_ok());
        assert!(!p.problems.is_empty());
        assert!(decode_pg83(&full[..3]).is_err());
        assert!(decode_pg83(&[0, 0x80, 0, 0]).is_err());
    }

    #[test]
    fn pg80_serial_is_trimmed() {
        assert_eq!(
            decode_pg80(b"\0\x80\0\x0c  SERIAL01  ").unwrap(),
            "SERIAL01"
        );
        assert_eq!(decode_pg80(b"\0\x80\0\x40abc").unwrap(), "abc");
        assert!(decode_pg80(b"\0\x83\0\0").is_err());
    }

    proptest! {
        #[test]
        fn pg83_decoder_never_panics(page in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = decode_pg83(&page) {
                for d in &p.designators {
                    let _ = d.to_string();
                    let _ = d.length_ok();
                }
                let _ = p.best_lu();
            }
        }

        #[test]
        fn pg83_with_valid_header_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            declared in any::<u16>(),
        ) {
            let mut page = vec![0, 0x83];
            page.extend(declared.to_be_bytes());
            page.extend(body);
            let p = decode_pg83(&page).unwrap();
            let covered: usize = p.designators.iter().map(|d| 4 + d.value.len()).sum();
            prop_assert!(covered <= page.len() - 4);
        }

        #[test]
        fn pg80_decoder_never_panics(page in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_pg80(&page);
        }
    }
}
