//! The ID udev's `scsi_id --whitelisted --replace-whitespace` prints for a device, computed
//! from the same INQUIRY data it reads (standard INQUIRY, VPD pages 0x00, 0x83, 0x80).
//!
//! This follows systemd's src/udev/scsi_id/scsi_serial.c behaviour, including its quirks:
//! it asks for at most 254 bytes of each page, looks only at logical-unit designators
//! (target-port ones serve the target port group), ranks them NAA 6 > NAA 5 > other NAA >
//! EUI-64 > T10 vendor ID > vendor specific (binary before ASCII each time), prefixes the
//! designator type as a hex digit, puts vendor+model before a vendor-specific designator,
//! falls back to page 0x80 as "S" + vendor + model + serial, and never uses SCSI name strings.

use serde::Serialize;

/// scsi_id's INQUIRY buffer (SCSI_INQ_BUFF_LEN): longer pages are cut here.
const INQ_BUF: usize = 254;
/// scsi_id's MAX_SERIAL_LEN: an ID longer than this is refused.
const MAX_SERIAL: usize = 256;
const VENDOR_LEN: usize = 8;
const MODEL_LEN: usize = 16;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// What scsi_id reads from a device.
#[derive(Debug, Clone, Default)]
pub struct InquiryData {
    /// Bytes 8..16 of the standard INQUIRY (NULs kept: a short vendor disables some forms).
    pub vendor: Vec<u8>,
    /// Bytes 16..32 of the standard INQUIRY.
    pub model: Vec<u8>,
    /// VPD page 0x00 (supported pages); `None` when it could not be read.
    pub page0: Option<Vec<u8>>,
    pub page83: Option<Vec<u8>>,
    pub page80: Option<Vec<u8>>,
}

/// Where the ID came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdSource {
    /// NAA designator of the logical unit; the number is the NAA type (2, 3, 5, 6).
    Naa(u8),
    Eui64,
    T10Vendor,
    /// Vendor-specific designator: "0" + vendor + model + designator.
    VendorSpecific,
    /// SCSI-2 style page 0x83 (old EMC Symmetrix): "3" + hex of the page body.
    PreSpc3,
    /// Page 0x80 fallback: "S" + vendor + model + serial.
    UnitSerial,
    /// Taken from the udev database (no VPD pages readable here).
    Udev,
    /// No ID at all.
    None,
}

impl IdSource {
    /// IDs that are not globally unique by construction: a vendor-specific designator or a
    /// serial number, made unique only by the vendor and model put before it.
    pub fn is_weak(self) -> bool {
        matches!(self, IdSource::VendorSpecific | IdSource::UnitSerial)
    }

    pub fn label(self) -> String {
        match self {
            IdSource::Naa(t) => format!("vpd83-naa{t}"),
            IdSource::Eui64 => "vpd83-eui64".into(),
            IdSource::T10Vendor => "vpd83-t10".into(),
            IdSource::VendorSpecific => "vpd83-vendor".into(),
            IdSource::PreSpc3 => "vpd83-scsi2".into(),
            IdSource::UnitSerial => "vpd80-serial".into(),
            IdSource::Udev => "udev".into(),
            IdSource::None => "-".into(),
        }
    }
}

/// scsi_id's answer: the raw serial (before whitespace replacement) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiId {
    pub raw: Vec<u8>,
    pub source: IdSource,
}

impl ScsiId {
    /// The ID as `--replace-whitespace` prints it (and udev stores as ID_SERIAL).
    pub fn formatted(&self) -> String {
        replace_chars(&replace_whitespace(&self.raw))
    }
}

/// A page as scsi_id sees it: at most 254 bytes, zero beyond what the device returned.
struct Buf(Vec<u8>);

impl Buf {
    fn new(page: &[u8]) -> Self {
        let mut v = page[..page.len().min(INQ_BUF)].to_vec();
        v.resize(INQ_BUF, 0);
        Buf(v)
    }
    /// Bytes past the buffer read as zero (scsi_id would read past its array there).
    fn at(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

/// Computes scsi_id's ID for the default page order (page 0x83, then 0x80).
pub fn scsi_id(inq: &InquiryData) -> Option<ScsiId> {
    let page0 = Buf::new(inq.page0.as_deref()?);
    if page0.at(1) != 0 || page0.at(3) as usize > INQ_BUF {
        return None;
    }
    // Some devices answer the page-0 request with the standard INQUIRY data.
    if page0.at(3) as usize > MODEL_LEN && strneq(&page0.0[VENDOR_LEN..], &inq.vendor, VENDOR_LEN) {
        return None;
    }
    let listed: Vec<u8> = (4..=page0.at(3) as usize + 3)
        .map(|i| page0.at(i))
        .collect();
    if listed.contains(&0x83)
        && let Some(id) = inq.page83.as_deref().and_then(|p| page83_id(inq, p))
    {
        return Some(id);
    }
    if listed.contains(&0x80)
        && let Some(id) = inq.page80.as_deref().and_then(|p| page80_id(inq, p))
    {
        return Some(id);
    }
    None
}

/// C `strncmp(a, b, n) == 0` over NUL-terminated byte strings.
fn strneq(a: &[u8], b: &[u8], n: usize) -> bool {
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return false;
        }
        if x == 0 {
            return true;
        }
    }
    true
}

/// vendor + model, only when both are full length (no NUL inside), as scsi_id insists.
fn vendor_model(inq: &InquiryData) -> Option<Vec<u8>> {
    let v = &inq.vendor;
    let m = &inq.model;
    if v.len() < VENDOR_LEN || m.len() < MODEL_LEN {
        return None;
    }
    if v[..VENDOR_LEN].contains(&0) || m[..MODEL_LEN].contains(&0) {
        return None;
    }
    let mut out = v[..VENDOR_LEN].to_vec();
    out.extend_from_slice(&m[..MODEL_LEN]);
    Some(out)
}

/// The search order of scsi_id: (designator type, NAA type or any, code set).
const SEARCH: [(u8, Option<u8>, u8); 12] = [
    (3, Some(6), 1),
    (3, Some(6), 2),
    (3, Some(5), 1),
    (3, Some(5), 2),
    (3, None, 1),
    (3, None, 2),
    (2, None, 1),
    (2, None, 2),
    (1, None, 1),
    (1, None, 2),
    (0, None, 1),
    (0, None, 2),
];

fn page83_id(inq: &InquiryData, page: &[u8]) -> Option<ScsiId> {
    let p = Buf::new(page);
    if p.at(1) != 0x83 {
        return None;
    }
    // A SCSI-2 reply has no descriptors: byte 6 (reserved in SPC-2/3) holds part of an OUI.
    if p.at(6) != 0 {
        let mut serial = vec![b'3'];
        let mut i = 0;
        while i < p.at(3) as usize && serial.len() < MAX_SERIAL - 3 {
            let b = p.at(4 + i);
            serial.push(HEX[(b >> 4) as usize]);
            serial.push(HEX[(b & 15) as usize]);
            i += 1;
        }
        return Some(ScsiId {
            raw: cstr(serial),
            source: IdSource::PreSpc3,
        });
    }
    let last = ((p.at(2) as usize) << 8) + p.at(3) as usize + 3;
    for &(dtype, naa, code_set) in &SEARCH {
        let mut j = 4;
        while j <= last {
            if let Some(id) = fill_from_descriptor(inq, &p, j, dtype, naa, code_set) {
                return Some(id);
            }
            j += p.at(j + 3) as usize + 4;
        }
    }
    None
}

fn fill_from_descriptor(
    inq: &InquiryData,
    p: &Buf,
    j: usize,
    dtype: u8,
    naa: Option<u8>,
    code_set: u8,
) -> Option<ScsiId> {
    // Only logical-unit designators name the disk (target-port ones name a path).
    if p.at(j + 1) & 0x30 != 0 {
        return None;
    }
    if p.at(j + 1) & 0x0f != dtype || p.at(j) & 0x0f != code_set {
        return None;
    }
    if naa.is_some_and(|t| p.at(j + 4) >> 4 != t) {
        return None;
    }
    let idlen = p.at(j + 3) as usize;
    let mut need = if code_set == 2 { idlen } else { idlen * 2 } + 2;
    if dtype == 0 {
        need += VENDOR_LEN + MODEL_LEN;
    }
    if need > MAX_SERIAL {
        return None;
    }
    let mut serial = vec![HEX[dtype as usize]];
    if dtype == 0 {
        serial.extend(vendor_model(inq)?);
    }
    for i in 0..idlen {
        let b = p.at(j + 4 + i);
        if code_set == 2 {
            serial.push(b);
        } else {
            serial.push(HEX[(b >> 4) as usize]);
            serial.push(HEX[(b & 15) as usize]);
        }
    }
    let source = match dtype {
        3 => IdSource::Naa(p.at(j + 4) >> 4),
        2 => IdSource::Eui64,
        1 => IdSource::T10Vendor,
        _ => IdSource::VendorSpecific,
    };
    Some(ScsiId {
        raw: cstr(serial),
        source,
    })
}

fn page80_id(inq: &InquiryData, page: &[u8]) -> Option<ScsiId> {
    let p = Buf::new(page);
    if p.at(1) != 0x80 {
        return None;
    }
    let len = p.at(3) as usize;
    if 1 + VENDOR_LEN + MODEL_LEN + len > MAX_SERIAL {
        return None;
    }
    let mut serial = vec![b'S'];
    serial.extend(vendor_model(inq)?);
    serial.extend((0..len).map(|i| p.at(4 + i)));
    Some(ScsiId {
        raw: cstr(serial),
        source: IdSource::UnitSerial,
    })
}

/// The serial is a C string in scsi_id: it ends at the first NUL.
fn cstr(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(n) = v.iter().position(|&b| b == 0) {
        v.truncate(n);
    }
    v
}

/// C isspace() in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// udev's whitespace rule: drop leading and trailing whitespace, turn each inner run of
/// whitespace into one '_'. The output is capped at 255 bytes like scsi_id's buffer.
pub fn replace_whitespace(s: &[u8]) -> Vec<u8> {
    let cap = MAX_SERIAL - 1;
    let mut len = s.len().min(cap);
    while len > 0 && is_space(s[len - 1]) {
        len -= 1;
    }
    let mut i = s
        .iter()
        .take(len)
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(len);
    let mut out = Vec::new();
    let mut pending = false;
    while out.len() < len && i < len {
        if is_space(s[i]) {
            pending = true;
            i += 1;
            continue;
        }
        if pending {
            if out.len() + 1 >= len {
                break;
            }
            out.push(b'_');
            pending = false;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// udev's character rule for device names: keep ASCII letters, digits, `#+-.:=@_`, `\x`
/// escapes and valid UTF-8; every other byte becomes '_'.
pub fn replace_chars(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b) {
            out.push(b);
            i += 1;
        } else if b == b'\\' && s.get(i + 1) == Some(&b'x') {
            out.extend_from_slice(b"\\x");
            i += 2;
        } else if let Some(n) = utf8_char_len(&s[i..]) {
            out.extend_from_slice(&s[i..i + n]);
            i += n;
        } else {
            out.push(b'_');
            i += 1;
        }
    }
    // Every byte kept is ASCII or part of a checked UTF-8 sequence.
    String::from_utf8(out).unwrap_or_default()
}

/// Length of a valid multi-byte UTF-8 character at the start of `s`, with udev's extra
/// exclusions (non-characters U+FDD0..U+FDEF and U+xFFFE/U+xFFFF).
fn utf8_char_len(s: &[u8]) -> Option<usize> {
    let n = match s.first()? {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(..n)?).ok()?.chars().next()? as u32;
    if (0xfdd0..=0xfdef).contains(&c) || c & 0xfffe == 0xfffe {
        return None;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inq(vendor: &str, model: &str) -> InquiryData {
        InquiryData {
            vendor: format!("{vendor:<8}").into_bytes(),
            model: format!("{model:<16}").into_bytes(),
            page0: Some(vec![0, 0, 0, 3, 0, 0x80, 0x83]),
            ..Default::default()
        }
    }

    fn page(descs: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = descs.concat();
        let mut p = vec![0, 0x83];
        p.extend((body.len() as u16).to_be_bytes());
        p.extend(body);
        p
    }

    #[test]
    fn vmware_16_byte_naa6_beats_port_and_t10_designators() {
        let mut d = inq("VMware", "Virtual disk");
        d.page83 = Some(crate::host::vpd::tests::vmware_like_page());
        let id = scsi_id(&d).unwrap();
        assert_eq!(id.formatted(), "36000c29a1b2c3d4e5f60718293a4b5c6");
        assert_eq!(id.source, IdSource::Naa(6));
    }

    #[test]
    fn target_port_naa_is_ignored_even_alone() {
        let mut d = inq("X", "Y");
        d.page83 = Some(page(&[&[0x61, 0x93, 0, 8, 0x50, 0, 0, 0, 0, 0, 0, 1]]));
        assert_eq!(scsi_id(&d), None);
    }

    #[test]
    fn naa5_before_naa6_in_page_order_still_loses() {
        let mut d = inq("X", "Y");
        let naa5: &[u8] = &[1, 3, 0, 8, 0x50, 1, 2, 3, 4, 5, 6, 7];
        let naa6: &[u8] = &[
            1, 3, 0, 16, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
        ];
        d.page83 = Some(page(&[naa5, naa6]));
        let id = scsi_id(&d).unwrap();
        assert_eq!(id.formatted(), format!("36{}09", "0".repeat(29)));
        let naa3: &[u8] = &[1, 3, 0, 8, 0x3a, 1, 2, 3, 4, 5, 6, 7];
        let eui: &[u8] = &[1, 2, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        d.page83 = Some(page(&[eui, naa3]));
        assert_eq!(scsi_id(&d).unwrap().formatted(), "33a01020304050607");
        d.page83 = Some(page(&[eui]));
        assert_eq!(scsi_id(&d).unwrap().formatted(), "20102030405060708");
    }

    #[test]
    fn t10_vendor_id_keeps_vendor_and_collapses_spaces() {
        let mut d = inq("LIO-ORG", "disk");
        let mut t10 = vec![2, 1, 0, 28];
        t10.extend(b"LIO-ORG disk0   1234  abcd  ");
        d.page83 = Some(page(&[&t10]));
        let id = scsi_id(&d).unwrap();
        assert_eq!(id.source, IdSource::T10Vendor);
        assert_eq!(id.formatted(), "1LIO-ORG_disk0_1234_abcd");
    }

    #[test]
    fn scsi_name_string_is_not_used_and_serial_falls_back() {
        let mut d = inq("ACME", "Array");
        let mut name = vec![0x53, 0x08, 0, 8];
        name.extend(b"iqn.x:1\0");
        d.page83 = Some(page(&[&name]));
        d.page80 = Some(b"\0\x80\0\x06 AB C ".to_vec());
        let id = scsi_id(&d).unwrap();
        assert_eq!(id.source, IdSource::UnitSerial);
        assert_eq!(id.formatted(), "SACME_Array_AB_C");
    }

    #[test]
    fn pages_not_listed_in_page0_are_not_read() {
        let mut d = inq("VMware", "Virtual disk");
        d.page0 = Some(vec![0, 0, 0, 3, 0, 0xb0, 0xb1]);
        d.page83 = Some(crate::host::vpd::tests::vmware_like_page());
        assert_eq!(scsi_id(&d), None);
        d.page0 = None;
        assert_eq!(scsi_id(&d), None);
    }

    #[test]
    fn scsi2_page83_is_hex_of_the_body() {
        let mut d = inq("EMC", "SYMMETRIX");
        d.page83 = Some(vec![0, 0x83, 0, 4, 0x60, 0x06, 0x48, 0x01]);
        let id = scsi_id(&d).unwrap();
        assert_eq!(id.source, IdSource::PreSpc3);
        assert_eq!(id.formatted(), "360064801");
    }

    #[test]
    fn whitespace_and_chars_like_udev() {
        assert_eq!(replace_whitespace(b"  a  b\tc  "), b"a_b_c");
        assert_eq!(replace_chars(b"a/b*c\\xd\xc3\xa9"), "a_b_c\\xd\u{e9}");
        assert_eq!(replace_chars(b"\xff\xef\xbf\xbe"), "____");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_pages(
            p0 in proptest::collection::vec(any::<u8>(), 0..40),
            p83 in proptest::collection::vec(any::<u8>(), 0..400),
            p80 in proptest::collection::vec(any::<u8>(), 0..300),
            vendor in proptest::collection::vec(any::<u8>(), 0..10),
        ) {
            let mut d = InquiryData {
                vendor,
                model: b"Virtual disk    ".to_vec(),
                page0: Some(p0),
                page83: Some(p83.clone()),
                page80: Some(p80),
            };
            let _ = scsi_id(&d).map(|i| i.formatted());
            d.page0 = Some(vec![0, 0, 0, 2, 0x83, 0x80]);
            if p83.len() > 1 { d.page83.as_mut().unwrap()[1] = 0x83; }
            if let Some(id) = scsi_id(&d) {
                prop_assert!(id.formatted().len() <= 255);
            }
        }
    }
}
