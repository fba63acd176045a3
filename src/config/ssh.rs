//! OpenSSH public key lines for root's authorized_keys: parsed and checked, so that what
//! the kickstart writes is exactly one real key per line that CentOS 6's sshd accepts.
//!
//! The format is `sshd(8)` "AUTHORIZED_KEYS FILE FORMAT": `[options] type base64 [comment]`.
//! Options (`command=`, `from=`, ...) are refused here: a key line from a config must give
//! plain access, never a forced command smuggled in with it. The base64 blob is the
//! RFC 4253 section 6.6 / RFC 5656 section 3.1 public key encoding; its own type name must
//! match the line's.

use base64::Engine as _;
use std::fmt;

/// Key types CentOS 6.6's OpenSSH 5.3p1 accepts (ECDSA was backported in RHEL 6.5).
pub const ACCEPTED_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// Types newer OpenSSH releases know, which CentOS 6's sshd would silently ignore.
const TOO_NEW_TYPES: &[&str] = &[
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed448",
];

/// RSA keys shorter than this are refused by current clients and weak anyway.
const MIN_RSA_BITS: usize = 2048;

/// One checked public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    /// The base64 blob, as given (it decodes to a well-formed key of `kind`).
    pub blob: String,
    pub comment: String,
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.blob)?;
        if !self.comment.is_empty() {
            write!(f, " {}", self.comment)?;
        }
        Ok(())
    }
}

/// Parses one authorized_keys line; the error says what is wrong and what would be right.
pub fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    if let Some(c) = line
        .chars()
        .find(|c| c.is_control() || !c.is_ascii() || *c == '\u{7f}')
    {
        return Err(format!(
            "holds the character {c:?}: a key line is one line of printable ASCII \
             (`TYPE BASE64 [COMMENT]`, as in a .pub file)"
        ));
    }
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let Some(kind) = words.next() else {
        return Err(
            "empty: give a line of a .pub file, e.g. \"ssh-rsa AAAAB3... admin@host\"".into(),
        );
    };
    if TOO_NEW_TYPES.contains(&kind) {
        return Err(format!(
            "{kind} keys are not accepted by CentOS 6's OpenSSH 5.3: use an RSA key \
             (ssh-keygen -t rsa -b 4096) or an ECDSA key (ssh-keygen -t ecdsa)"
        ));
    }
    if !ACCEPTED_TYPES.contains(&kind) {
        let what = if kind.contains('=') || kind.contains(',') || kind.contains('"') {
            "starts with authorized_keys options; only a plain key line is accepted"
        } else {
            "does not start with a key type"
        };
        return Err(format!(
            "{what}: give `TYPE BASE64 [COMMENT]` with TYPE one of {}",
            ACCEPTED_TYPES.join(", ")
        ));
    }
    let Some(blob) = words.next() else {
        return Err(format!(
            "has the type {kind} but no key data: copy the whole line of the .pub file"
        ));
    };
    let comment = words.collect::<Vec<_>>().join(" ");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|e| {
            format!("the key data is not base64 ({e}): copy the whole line of the .pub file")
        })?;
    check_blob(kind, &bytes).map_err(|e| format!("the {kind} key data is malformed: {e}"))?;
    Ok(PublicKey {
        kind: kind.to_string(),
        blob: blob.to_string(),
        comment,
    })
}

/// Reads one SSH wire `string` (uint32 length + bytes) off the front of `b`.
fn take<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], String> {
    if b.len() < 4 {
        return Err("cut short".into());
    }
    let n = u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    let rest = &b[4..];
    if rest.len() < n {
        return Err("a field is longer than the data".into());
    }
    let (v, tail) = rest.split_at(n);
    *b = tail;
    Ok(v)
}

/// Bits of an `mpint` (RFC 4251 section 5) without its sign byte.
fn mpint_bits(v: &[u8]) -> usize {
    let v = match v.iter().position(|&x| x != 0) {
        Some(i) => &v[i..],
        None => return 0,
    };
    v.len() * 8 - v[0].leading_zeros() as usize
}

fn check_blob(kind: &str, bytes: &[u8]) -> Result<(), String> {
    let mut b = bytes;
    let inner = take(&mut b)?;
    if inner != kind.as_bytes() {
        return Err(format!(
            "it encodes a {:?} key, not {kind}",
            String::from_utf8_lossy(inner)
        ));
    }
    match kind {
        "ssh-rsa" => {
            let e = take(&mut b)?;
            let n = take(&mut b)?;
            if mpint_bits(e) == 0 {
                return Err("zero exponent".into());
            }
            let bits = mpint_bits(n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "a {bits}-bit RSA key is too short: make one of at least {MIN_RSA_BITS} bits"
                ));
            }
        }
        "ssh-dss" => {
            for _ in 0..4 {
                take(&mut b)?;
            }
        }
        _ => {
            let curve = take(&mut b)?;
            let want = kind.trim_start_matches("ecdsa-sha2-");
            if curve != want.as_bytes() {
                return Err(format!(
                    "its curve is {:?}, not {want}",
                    String::from_utf8_lossy(curve)
                ));
            }
            let point = take(&mut b)?;
            // An uncompressed point: 0x04 and two coordinates of the curve's size.
            let coord = match want {
                "nistp256" => 32,
                "nistp384" => 48,
                _ => 66,
            };
            if point.len() != 1 + 2 * coord || point[0] != 4 {
                return Err("its public point is not an uncompressed point of the curve".into());
            }
        }
    }
    if !b.is_empty() {
        return Err(format!("{} bytes after the key", b.len()));
    }
    Ok(())
}

/// Parses a file of key lines (`#` comments and blank lines skipped); errors carry the
/// 1-based line number.
pub fn parse_key_file(text: &str) -> Result<Vec<PublicKey>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(parse_public_key(t).map_err(|e| (i + 1, e))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with ssh-keygen (OpenSSH 9.2): -t rsa -b 2048, -t ecdsa, -t ed25519.
    pub(crate) const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDM3Xac5sOfXb/BVmfbg+1onCQEZWX+1/dtKdA8eMgDgadVB4eFHXXLAvEmYrKehB+ln6+h0/oSGzdU/3zFS34TbIGAr54NbM07nqFuHAKl2MryWR+rfGDzN7D/hD4Bv512jQTGHw36vBULuJttWmLowSpl+VCx2vN5xCTg0CVpmZuxWQvuVXsmpVeh2sM2epMyioO2FPUsNakAQO15997iPF02hLFQYW4Z3Aj8pEgeybuTGBH+z4QSAe4xojm9dtKYkuzVkCUWOLjhtoyDefnB7vsU5fYypcnOkYDVvZ0Z0SLjWa79U5O2Al0kJrYLWaiBvdM0v1JCDgtE2bkDy1+H admin@example";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE+EBDKX5sckzQV+ZgSaeWwXpN3bM8EfCiFw6RMN1wZeBvrPs4LcC8paXgOeL/57dX9zhyZu/BIJkx6AMoLI0iQ= ec";
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICXJWPfzbWIXvdh+dzSN9Bw7vgeIG2lMqYFH/Oz3JiqY ed";

    #[test]
    fn real_keys_parse_and_print_back() {
        for line in [RSA, ECDSA] {
            let k = parse_public_key(line).unwrap();
            assert_eq!(k.to_string(), line);
        }
        let k = parse_public_key("ssh-rsa  AAAAB3NzaC1yc2EAAAADAQABAAABAQDM3Xac5sOfXb/BVmfbg+1onCQEZWX+1/dtKdA8eMgDgadVB4eFHXXLAvEmYrKehB+ln6+h0/oSGzdU/3zFS34TbIGAr54NbM07nqFuHAKl2MryWR+rfGDzN7D/hD4Bv512jQTGHw36vBULuJttWmLowSpl+VCx2vN5xCTg0CVpmZuxWQvuVXsmpVeh2sM2epMyioO2FPUsNakAQO15997iPF02hLFQYW4Z3Aj8pEgeybuTGBH+z4QSAe4xojm9dtKYkuzVkCUWOLjhtoyDefnB7vsU5fYypcnOkYDVvZ0Z0SLjWa79U5O2Al0kJrYLWaiBvdM0v1JCDgtE2bkDy1+H").unwrap();
        assert_eq!(k.comment, "");
    }

    #[test]
    fn options_control_characters_and_mismatches_are_refused() {
        let cases = [
            (format!("command=\"/bin/sh\" {RSA}"), "options"),
            (format!("no-pty,{RSA}"), "options"),
            (format!("{RSA}\nssh-rsa AAAA"), "'\\n'"),
            (format!("{RSA}\r"), "'\\r'"),
            (format!("{RSA} \u{e9}"), "printable ASCII"),
            (ED25519.to_string(), "OpenSSH 5.3"),
            (
                RSA.replacen("ssh-rsa", "ssh-dss", 1),
                "encodes a \"ssh-rsa\" key",
            ),
            (RSA.replacen("AAAAB3", "AAAAB4", 1), "malformed"),
            (
                RSA.replacen("AAAAB3NzaC1yc2EAAAADAQAB", "!!", 1),
                "not base64",
            ),
            ("ssh-rsa".to_string(), "no key data"),
            ("".to_string(), "empty"),
            (
                "AAAAB3NzaC1yc2E".to_string(),
                "does not start with a key type",
            ),
            (
                ECDSA.replacen("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", 1),
                "encodes",
            ),
        ];
        for (line, want) in cases {
            let e = parse_public_key(&line).unwrap_err();
            assert!(e.contains(want), "{line:?}: {e}");
        }
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        // e = 65537, n = 1024 bits of 0xff.
        let mut blob = Vec::new();
        for part in [&b"ssh-rsa"[..], &[1, 0, 1], &[0xff; 128]] {
            blob.extend((part.len() as u32).to_be_bytes());
            blob.extend(part);
        }
        let line = format!(
            "ssh-rsa {}",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        let e = parse_public_key(&line).unwrap_err();
        assert!(e.contains("1024-bit RSA key is too short"), "{e}");
    }

    #[test]
    fn key_files_skip_comments_and_name_the_bad_line() {
        let text = format!("# keys\n\n{RSA}\n  {ECDSA}  \n");
        assert_eq!(parse_key_file(&text).unwrap().len(), 2);
        let (line, e) = parse_key_file(&format!("{RSA}\n{ED25519}\n")).unwrap_err();
        assert_eq!(line, 2);
        assert!(e.contains("ssh-ed25519"), "{e}");
    }
}
