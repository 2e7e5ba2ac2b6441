//! PKCS#11 URIs (RFC 7512), the subset that names a key: token, serial, object, id, type.

use std::fmt;

/// A parsed `pkcs11:` URI. Unknown path attributes are refused; `pin-value` and `pin-source`
/// are refused outright: a PIN never travels in a key reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    /// `private`, `public` or `secret-key`.
    pub kind: Option<String>,
}

fn pct_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("truncated percent escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad percent escape %{hex} in {s:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_encode(bytes: &[u8], all: bool) -> String {
    let mut s = String::new();
    for &c in bytes {
        let plain = !all && (c.is_ascii_alphanumeric() || b"-._~".contains(&c));
        if plain {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

impl Pkcs11Uri {
    /// Parses `pkcs11:token=...;object=...;id=%01` (query part ignored except PIN attributes,
    /// which are refused).
    ///
    /// # Errors
    /// Not a `pkcs11:` URI, an unknown or repeated attribute, a bad escape, or a PIN in it.
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, String> {
        let rest = uri.strip_prefix("pkcs11:").ok_or_else(|| format!("{uri:?} is not a pkcs11: URI"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.split('&').any(|q| q.starts_with("pin-value") || q.starts_with("pin-source")) {
            return Err(
                "a PKCS#11 URI must not carry a PIN (pin-value/pin-source); configure pin_env or pin_file".into()
            );
        }
        let mut u = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| format!("attribute {attr:?} has no value"))?;
            let text = || -> Result<String, String> {
                String::from_utf8(pct_decode(v)?).map_err(|_| format!("{k} is not UTF-8"))
            };
            let slot = match k {
                "token" => u.token.replace(text()?).is_some(),
                "serial" => u.serial.replace(text()?).is_some(),
                "object" => u.object.replace(text()?).is_some(),
                "id" => u.id.replace(pct_decode(v)?).is_some(),
                "type" => u.kind.replace(text()?).is_some(),
                "manufacturer" | "model" | "library-manufacturer" | "library-description" | "library-version" => false,
                other => return Err(format!("unknown PKCS#11 URI attribute {other:?}")),
            };
            if slot {
                return Err(format!("attribute {k:?} given twice"));
            }
        }
        if u.object.is_none() && u.id.is_none() {
            return Err(format!("{uri:?} names no key: give object= (label) or id="));
        }
        Ok(u)
    }

    /// The canonical text form (used as the key's identifier and in the audit log).
    pub fn to_uri(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", pct_encode(t.as_bytes(), false)));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial={}", pct_encode(s.as_bytes(), false)));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object={}", pct_encode(o.as_bytes(), false)));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", pct_encode(id, true)));
        }
        if let Some(k) = &self.kind {
            parts.push(format!("type={k}"));
        }
        format!("pkcs11:{}", parts.join(";"))
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_examples() {
        let u = Pkcs11Uri::parse("pkcs11:token=org-signing;object=release-key").unwrap();
        assert_eq!(u.token.as_deref(), Some("org-signing"));
        assert_eq!(u.object.as_deref(), Some("release-key"));
        let u = Pkcs11Uri::parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;id=%01;type=private").unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.id.as_deref(), Some(&[1u8][..]));
        assert_eq!(Pkcs11Uri::parse(&u.to_uri()).unwrap(), u);
    }

    #[test]
    fn refuses_pins_and_nonsense() {
        assert!(Pkcs11Uri::parse("pkcs11:object=k?pin-value=1234").unwrap_err().contains("PIN"));
        assert!(Pkcs11Uri::parse("pkcs11:token=t").unwrap_err().contains("names no key"));
        assert!(Pkcs11Uri::parse("pkcs11:object=a;object=b").unwrap_err().contains("twice"));
        assert!(Pkcs11Uri::parse("pkcs11:colour=red;object=a").unwrap_err().contains("unknown"));
        assert!(Pkcs11Uri::parse("pkcs11:id=%zz").unwrap_err().contains("escape"));
        assert!(Pkcs11Uri::parse("file:x").is_err());
    }
}
