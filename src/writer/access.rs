//! Who a TLS client is and what it may open: the identity read from its verified
//! certificate, and the `[[writer.group]] clients` rule over it (docs/nbd-server.md, "TLS
//! and client certificates").

use super::export::ClientInfo;

/// Whether `client` may open a disk of a group whose `[[writer.group]] clients` list is
/// `group_clients`. An empty list restricts nothing beyond the CA; otherwise the client's
/// verified certificate identity must be listed, and a client without a usable identity
/// is refused. Without TLS there is no identity and no list applies (the listen policy
/// keeps such a server on loopback or the Unix socket unless `insecure`).
pub fn allowed(group_clients: &[String], client: &ClientInfo) -> bool {
    !client.tls
        || group_clients.is_empty()
        || client
            .identity
            .as_deref()
            .is_some_and(|id| group_clients.iter().any(|c| c == id))
}

/// One DER element: (tag, contents), advancing `buf`.
fn der<'a>(buf: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    *buf = after;
    Some((tag, content))
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// ASN.1 string types a CN may use and still name a client: UTF8String, PrintableString,
/// IA5String. The others (BMPString, TeletexString, UniversalString) are not UTF-8 bytes.
const CN_STRING_TAGS: [u8; 3] = [0x0c, 0x13, 0x16];
/// A subject-alternative name of type dNSName ([2] IMPLICIT IA5String).
const SAN_DNS_TAG: u8 = 0x82;

/// A name usable as an identity: UTF-8, not empty, no control characters (it is compared
/// with `[[writer.group]] clients` and written to logs).
fn usable_name(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && !s.contains(char::is_control)).then(|| s.to_owned())
}

/// The identity of a client certificate, as docs/nbd-server.md states it: the subject's
/// common name when the subject has exactly one CN, of a UTF-8-compatible string type,
/// valid UTF-8, non-empty, without control characters; a subject with any other CN (two
/// of them, a BMPString, bad bytes) has no identity at all, never a fallback. A subject
/// without CN takes the first DNS subject-alternative name under the same text rules.
/// IP, e-mail and URI names and other subject fields (O, OU) never make an identity.
/// (The certificate was already verified by webpki; this only reads names out of it.)
pub fn cert_identity(cert: &[u8]) -> Option<String> {
    let mut c = cert;
    let (_, certificate) = der(&mut c)?;
    let mut c = certificate;
    let (_, mut tbs) = der(&mut c)?;
    let mut fields = Vec::new();
    while let Some(f) = der(&mut tbs) {
        fields.push(f);
    }
    // [0] version is optional; after it: serial, signature, issuer, validity, subject.
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let subject = fields.get(skip + 4)?.1;
    let mut cns = Vec::new();
    let mut rdns = subject;
    while let Some((_, set)) = der(&mut rdns) {
        let mut set = set;
        while let Some((_, atv)) = der(&mut set) {
            let mut atv = atv;
            let (_, oid) = der(&mut atv)?;
            let value = der(&mut atv)?;
            if oid == OID_CN {
                cns.push(value);
            }
        }
    }
    match cns[..] {
        [] => {}
        [(tag, value)] if CN_STRING_TAGS.contains(&tag) => return usable_name(value),
        _ => return None,
    }
    let exts = fields.iter().find(|f| f.0 == 0xa3)?.1;
    let mut exts = exts;
    let (_, mut list) = der(&mut exts)?;
    while let Some((_, ext)) = der(&mut list) {
        let mut ext = ext;
        let (_, oid) = der(&mut ext)?;
        if oid != OID_SAN {
            continue;
        }
        let mut value = None;
        while let Some((tag, v)) = der(&mut ext) {
            if tag == 0x04 {
                value = Some(v);
            }
        }
        let mut san = value?;
        let (_, mut names) = der(&mut san)?;
        while let Some((tag, name)) = der(&mut names) {
            if tag == SAN_DNS_TAG {
                return usable_name(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: &[&str]) -> Vec<u8> {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, cn.to_string());
        }
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn identity_from_cn_then_san() {
        assert_eq!(
            cert_identity(&cert(Some("ps-azure-01"), &["x.example"])).as_deref(),
            Some("ps-azure-01")
        );
        assert_eq!(
            cert_identity(&cert(None, &["ps-02.example"])).as_deref(),
            Some("ps-02.example")
        );
        assert_eq!(cert_identity(&cert(None, &[])), None);
        assert_eq!(cert_identity(b"\x30\x82\xff"), None);
        assert_eq!(cert_identity(&[]), None);
    }

    fn cert_with(dn: &[(rcgen::DnType, rcgen::DnValue)], sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), v.clone());
        }
        p.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn unusable_names_give_no_identity_and_no_fallback() {
        use rcgen::{DnType, DnValue, SanType};
        let dns = || vec![SanType::DnsName("ps-02.example".try_into().unwrap())];
        let ip = vec![SanType::IpAddress("192.0.2.7".parse().unwrap())];
        let org = (
            DnType::OrganizationName,
            DnValue::Utf8String("Contoso".into()),
        );
        // O and an IP SAN only: nothing names the client.
        assert_eq!(
            cert_identity(&cert_with(std::slice::from_ref(&org), ip)),
            None
        );
        // A CN that is not UTF-8 text: no identity, and the DNS SAN does not stand in.
        // BMPString "ÿa": the bytes 00 ff 00 61 are not UTF-8.
        let bmp = DnValue::BmpString(
            rcgen::string::BmpString::from_utf16be(vec![0, 0xff, 0, 0x61]).unwrap(),
        );
        assert_eq!(
            cert_identity(&cert_with(&[(DnType::CommonName, bmp)], dns())),
            None
        );
        let teletex = DnValue::TeletexString("ps-01".try_into().unwrap());
        assert_eq!(
            cert_identity(&cert_with(&[(DnType::CommonName, teletex)], dns())),
            None
        );
        let ctl = DnValue::Utf8String("ps-01\n[ok]".into());
        assert_eq!(
            cert_identity(&cert_with(&[(DnType::CommonName, ctl)], dns())),
            None
        );
        // No CN at all: the DNS SAN, and O beside it changes nothing.
        assert_eq!(
            cert_identity(&cert_with(std::slice::from_ref(&org), dns())).as_deref(),
            Some("ps-02.example")
        );
        let printable = DnValue::PrintableString("ps-03".try_into().unwrap());
        assert_eq!(
            cert_identity(&cert_with(&[org, (DnType::CommonName, printable)], dns())).as_deref(),
            Some("ps-03")
        );
    }

    #[test]
    fn access_policy() {
        let c = |id: Option<&str>| ClientInfo {
            peer: None,
            tls: true,
            identity: id.map(str::to_owned),
        };
        let list = vec!["ps-azure-01".to_string()];
        assert!(allowed(&list, &c(Some("ps-azure-01"))));
        assert!(!allowed(&list, &c(Some("ps-azure-02"))));
        // Over TLS without a usable identity: refused wherever clients are listed.
        assert!(!allowed(&list, &c(None)));
        assert!(allowed(&[], &c(None)));
        // Without TLS no list applies.
        assert!(allowed(&list, &ClientInfo::default()));
    }
}
