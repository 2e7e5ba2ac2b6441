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
    /// `x-version=N` (a vendor attribute, RFC 7512 section 2.3): which version of a rotated
    /// key. Resolved by the key service before the HSM backend sees the URI.
    pub version: Option<u32>,
}

fn pct_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // The value is not echoed: it may hold anything a person typed, a PIN included.
            let hex = s.get(i + 1..i + 3).ok_or_else(|| "a truncated percent escape".to_string())?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| format!("a bad percent escape at byte {i}"))?;
            out.push(byte);
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

/// Whether an attribute name (percent-decoded, any case) carries a PIN.
fn is_pin_attribute(name: &str) -> bool {
    // Whitespace, control characters and quotes around a name do not make it another name
    // for a person reading the echo (found by fuzzing: `\n\npin-value=1234` was shown).
    let name = name.trim_matches(|c: char| c.is_whitespace() || c.is_control() || c == '"' || c == '\'');
    let decoded = pct_decode(name).ok().map(|b| String::from_utf8_lossy(&b).to_ascii_lowercase());
    // An undecodable name is treated as a PIN attribute: refusing is safe, echoing is not.
    decoded.is_none_or(|n| n == "pin-value" || n == "pin-source")
}

const PIN_REFUSED: &str =
    "a PKCS#11 URI must not carry a PIN (pin-value/pin-source); configure pin_env or pin_file in [hsm]";

impl Pkcs11Uri {
    /// Parses `pkcs11:token=...;object=...;id=%01` (query part ignored except PIN attributes,
    /// which are refused). No error message contains the PIN of a refused URI: a message
    /// echoes at most the URI's path, and only once the path is known to carry no PIN.
    ///
    /// # Errors
    /// Not a `pkcs11:` URI, an unknown or repeated attribute, a bad escape, or a PIN in it.
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, String> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| "not a pkcs11: URI (it must start with \"pkcs11:\")".to_string())?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let attr_name = |a: &str| a.split_once('=').map_or(a, |(k, _)| k).to_string();
        if query.split('&').chain(path.split(';')).any(|a| is_pin_attribute(&attr_name(a))) {
            return Err(PIN_REFUSED.into());
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
                "x-version" => u.version.replace(super::parse_version(&text()?)?).is_some(),
                "manufacturer" | "model" | "library-manufacturer" | "library-description" | "library-version" => false,
                other => return Err(format!("unknown PKCS#11 URI attribute {other:?}")),
            };
            if slot {
                return Err(format!("attribute {k:?} given twice"));
            }
        }
        if u.object.is_none() && u.id.is_none() {
            return Err(format!("\"pkcs11:{path}\" names no key: give object= (label) or id="));
        }
        Ok(u)
    }

    /// `text` with the value of every PIN attribute (`pin-value`, `pin-source`, in the path or
    /// the query) replaced by `REDACTED`, for echoing a key reference a person typed. Text that
    /// is not a `pkcs11:` URI comes back unchanged.
    pub fn redacted(text: &str) -> String {
        let Some(rest) = text.get(..7).filter(|p| p.eq_ignore_ascii_case("pkcs11:")).map(|_| &text[7..]) else {
            return text.to_string();
        };
        // Every separator at once, wherever it stands: a second `?`, or a `;` inside the
        // query, must not hide a PIN attribute inside what looks like another attribute's
        // value (found by fuzzing: `pkcs11:a?pin-value:b?pin-value=1234`).
        let mut out = String::from(&text[..7]);
        let separators = rest.char_indices().filter(|(_, c)| matches!(c, ';' | '?' | '&'));
        let mut start = 0;
        for (at, sep) in separators.map(|(i, c)| (i, Some(c))).chain(std::iter::once((rest.len(), None))) {
            let part = &rest[start..at];
            match part.split_once('=') {
                Some((k, _)) if is_pin_attribute(k) => out.push_str(&format!("{k}=REDACTED")),
                None if is_pin_attribute(part) => out.push_str("REDACTED"),
                _ => out.push_str(part),
            }
            if let Some(c) = sep {
                out.push(c);
            }
            start = at + 1;
        }
        out
    }

    /// `message` with every value a PIN attribute has in `text` (as [`Pkcs11Uri::redacted`]
    /// finds them) replaced by `REDACTED`: a parse error about some other attribute must not
    /// carry a PIN typed into its value either.
    pub fn scrubbed(message: &str, text: &str) -> String {
        let Some(rest) = text.get(..7).filter(|p| p.eq_ignore_ascii_case("pkcs11:")).map(|_| &text[7..]) else {
            return message.to_string();
        };
        let mut out = message.to_string();
        for part in rest.split([';', '?', '&']) {
            if let Some((k, v)) = part.split_once('=')
                && is_pin_attribute(k)
                && !v.is_empty()
            {
                out = out.replace(v, "REDACTED");
            }
        }
        out
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
        if let Some(v) = self.version {
            parts.push(format!("x-version={v}"));
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
    fn refuses_pins_without_echoing_them() {
        let pin = "Zq7pinSECRET";
        for uri in [
            format!("pkcs11:object=k?pin-value={pin}"),
            format!("pkcs11:token=t?module-name=x&pin-value={pin}"),
            format!("pkcs11:token=t?PIN-VALUE={pin}"),
            format!("pkcs11:token=t?pin%2Dvalue={pin}"),
            format!("pkcs11:token=t?pin-source=file:/run/{pin}"),
            format!("pkcs11:token=t;pin-value={pin}"),
            format!("pkcs11:pin-value={pin};object=k"),
            format!("pkcs11:token=t?pin-value={pin}"),
            format!("pkcs11:id=%zz?pin-value={pin}"),
            format!("pkcs11:colour=red?pin-value={pin}"),
            format!("pkcs11:object=k;pin-value=%{pin}"),
        ] {
            let err = Pkcs11Uri::parse(&uri).expect_err(&uri);
            assert!(err.contains("must not carry a PIN"), "{uri}: {err}");
            assert!(!err.contains(pin), "{uri}: the error echoes the PIN: {err}");
            let shown = Pkcs11Uri::redacted(&uri);
            assert!(!shown.contains(pin), "{uri}: redacted() still shows the PIN: {shown}");
        }
        // Other errors do not echo a query either.
        for uri in [format!("PKCS11:object=k?pin-value={pin}"), format!("file:k?pin-value={pin}")] {
            let err = Pkcs11Uri::parse(&uri).expect_err(&uri);
            assert!(!err.contains(pin), "{uri}: {err}");
        }
        assert!(!Pkcs11Uri::redacted(&format!("PKCS11:object=k?pin-value={pin}")).contains(pin));
        assert_eq!(
            Pkcs11Uri::redacted("pkcs11:token=t;object=k?pin-value=1&x=2"),
            "pkcs11:token=t;object=k?pin-value=REDACTED&x=2"
        );
        assert_eq!(Pkcs11Uri::redacted("sim:k"), "sim:k");
        // A PIN attribute after a second `?` or a `;` in the query is found all the same.
        for uri in [
            "pkcs11:to1%02?pin-value:to1%02?pin-value=24=246912",
            "pkcs11:a?b=1;pin-value=246912",
            "pkcs11:a?x&pin-source=246912?y",
        ] {
            assert!(!Pkcs11Uri::redacted(uri).contains("246912"), "{uri}: {}", Pkcs11Uri::redacted(uri));
        }
        assert_eq!(Pkcs11Uri::redacted("pkcs11:a=1;b=2?c=3&d=4"), "pkcs11:a=1;b=2?c=3&d=4");
        // A PIN inside another attribute's value never reaches the message either (fuzzing
        // found a bad-escape message echoing the whole value).
        for uri in ["pkcs11:a?\n\npin-value=246912", "pkcs11:a;\"pin-value=246912", "pkcs11:a? PIN-VALUE=246912"] {
            assert!(!Pkcs11Uri::redacted(uri).contains("246912"), "{uri:?}: {}", Pkcs11Uri::redacted(uri));
        }
        let typed = "pkcs11:token=1&%zz&pin-value=1234n=ab";
        let e = crate::keyref::KeyRef::parse(typed).unwrap_err().to_string();
        assert!(!e.contains("1234n=ab"), "{e}");
    }

    #[test]
    fn refuses_nonsense() {
        assert!(Pkcs11Uri::parse("pkcs11:token=t").unwrap_err().contains("names no key"));
        assert!(Pkcs11Uri::parse("pkcs11:object=a;object=b").unwrap_err().contains("twice"));
        assert!(Pkcs11Uri::parse("pkcs11:colour=red;object=a").unwrap_err().contains("unknown"));
        assert!(Pkcs11Uri::parse("pkcs11:id=%zz").unwrap_err().contains("escape"));
        assert!(Pkcs11Uri::parse("file:x").is_err());
    }
}
