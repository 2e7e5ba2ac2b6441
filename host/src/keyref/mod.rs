//! Key references: one syntax for every key, whichever backend holds it: `pkcs11:` URIs (RFC
//! 7512, parsed in `pkcs11_uri`), `PREFIX:NAME` for a provider's key namespace, and `file:PATH`
//! (or a plain path) for a PKCS#8 file. Pure parsing: nothing here touches a backend.
//!
//! A held key may name a version of a rotated key with the vendor attribute `x-version=N`:
//! `pkcs11:token=T;object=org-es256;x-version=3`, `sim:demo;x-version=2`. Without it a
//! reference means the current version. Version 1 is the key under its own name (every key
//! made before versions existed is version 1); version N >= 2 lives under the name with the
//! suffix `#vN` ([`versioned_name`]): a token label `org-es256#v3`, a simulation name `demo#v2`
//! (so the seeded derivation includes the version). A reference that names such an object
//! directly is refused ([`names_a_version`]): a staged or retired version is reached only
//! through `x-version`, where its state is checked.

mod pkcs11_uri;

use std::path::{Path, PathBuf};

pub use pkcs11_uri::Pkcs11Uri;

/// A parsed key reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    Pkcs11(Pkcs11Uri),
    /// `PREFIX:NAME[;x-version=N]`, held by the provider configured with that `key_prefix`.
    Named {
        prefix: String,
        name: String,
        version: Option<u32>,
    },
    /// A PKCS#8 file (`file:PATH`, or a path with no scheme).
    File(PathBuf),
}

/// A key reference that does not parse. Its Display shows the reference with any PIN a person
/// typed into a `pkcs11:` URI removed, so it can be printed, logged or answered as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key reference {shown:?}: {message}")]
pub struct KeyRefError {
    /// The reference as given, redacted.
    pub shown: String,
    pub message: String,
}

impl KeyRef {
    /// # Errors
    /// A malformed `pkcs11:` URI, or an empty name or path; the error never shows a PIN.
    pub fn parse(text: &str) -> Result<KeyRef, KeyRefError> {
        KeyRef::parse_inner(text).map_err(|message| KeyRefError {
            shown: Pkcs11Uri::redacted(text),
            message: Pkcs11Uri::scrubbed(&message, text),
        })
    }

    /// As [`KeyRef::parse`]; a relative `file:` path is taken relative to `base` (the directory
    /// of the config file that names it), never to the working directory.
    ///
    /// # Errors
    /// As [`KeyRef::parse`].
    pub fn parse_relative_to(text: &str, base: &Path) -> Result<KeyRef, KeyRefError> {
        Ok(match KeyRef::parse(text)? {
            KeyRef::File(p) if p.is_relative() => KeyRef::File(base.join(p)),
            other => other,
        })
    }

    fn parse_inner(text: &str) -> Result<KeyRef, String> {
        if text.starts_with("pkcs11:") {
            return Pkcs11Uri::parse(text).map(KeyRef::Pkcs11);
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path".into());
            }
            return Ok(KeyRef::File(PathBuf::from(path)));
        }
        match text.split_once(':') {
            Some((prefix, name))
                if !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_lowercase()) && prefix.len() > 1 =>
            {
                let (name, version) = match name.rsplit_once(";x-version=") {
                    Some((name, v)) => (name, Some(parse_version(v)?)),
                    None => (name, None),
                };
                if name.is_empty() {
                    return Err(format!("{prefix}: needs a key name"));
                }
                Ok(KeyRef::Named { prefix: prefix.to_string(), name: name.to_string(), version })
            }
            _ if text.is_empty() => Err("empty key reference".into()),
            _ => Ok(KeyRef::File(PathBuf::from(text))),
        }
    }

    /// Whether a backend holds the key (`pkcs11:`, `PREFIX:NAME`), rather than a file.
    pub fn is_held(&self) -> bool {
        !matches!(self, KeyRef::File(_))
    }

    /// The version the reference names (`x-version`), if any.
    pub fn version(&self) -> Option<u32> {
        match self {
            KeyRef::Pkcs11(u) => u.version,
            KeyRef::Named { version, .. } => *version,
            KeyRef::File(_) => None,
        }
    }

    /// The same key at `version` (`None`: the key itself, whatever version is current).
    #[must_use]
    pub fn at_version(&self, version: Option<u32>) -> KeyRef {
        match self {
            KeyRef::Pkcs11(u) => KeyRef::Pkcs11(Pkcs11Uri { version, ..u.clone() }),
            KeyRef::Named { prefix, name, .. } => KeyRef::Named { prefix: prefix.clone(), name: name.clone(), version },
            KeyRef::File(p) => KeyRef::File(p.clone()),
        }
    }
}

/// The highest version a key may reach.
pub const MAX_VERSION: u32 = 9999;

/// A version number: decimal, 1 to [`MAX_VERSION`], no sign or leading zero.
///
/// # Errors
/// Anything else, said plainly.
pub fn parse_version(text: &str) -> Result<u32, String> {
    let ok = !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    match text.parse::<u32>() {
        Ok(v) if ok && v <= MAX_VERSION => Ok(v),
        _ => Err(format!(
            "x-version must be a number from 1 to {MAX_VERSION}, not {:?}",
            text.chars().take(16).collect::<String>()
        )),
    }
}

/// The name (token label or provider key name) version `version` of the key named `base`
/// lives under: `base` itself for version 1, `base#vN` after.
pub fn versioned_name(base: &str, version: u32) -> String {
    if version <= 1 { base.to_string() } else { format!("{base}#v{version}") }
}

/// Whether `name` is the name of a version >= 2 (`...#vN`): such a name is reached only
/// through `x-version`, never directly.
pub fn names_a_version(name: &str) -> bool {
    name.rsplit_once("#v").is_some_and(|(base, n)| !base.is_empty() && parse_version(n).is_ok_and(|v| v >= 2))
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::Pkcs11(u) => write!(f, "{u}"),
            KeyRef::Named { prefix, name, version: None } => write!(f, "{prefix}:{name}"),
            KeyRef::Named { prefix, name, version: Some(v) } => write!(f, "{prefix}:{name};x-version={v}"),
            KeyRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_show_a_pin_and_files_follow_the_config() {
        let e = KeyRef::parse("pkcs11:token=t;object=k?pin-value=123456&x").unwrap_err();
        assert!(!e.to_string().contains("123456"), "{e}");
        assert_eq!(
            KeyRef::parse_relative_to("file:keys/a.pem", Path::new("/etc/ch")).unwrap(),
            KeyRef::File(PathBuf::from("/etc/ch/keys/a.pem"))
        );
        assert_eq!(KeyRef::parse_relative_to("/abs.pem", Path::new("/etc")).unwrap(), KeyRef::File("/abs.pem".into()));
        assert!(KeyRef::parse_relative_to("sim:k", Path::new("/etc")).unwrap().is_held());
    }

    #[test]
    fn versions_parse_print_and_map_to_names() {
        let k = KeyRef::parse("sim:demo;x-version=2").unwrap();
        assert_eq!(k.version(), Some(2));
        assert_eq!(k.to_string(), "sim:demo;x-version=2");
        assert_eq!(k.at_version(None).to_string(), "sim:demo");
        let u = KeyRef::parse("pkcs11:token=T;object=org-es256;x-version=3").unwrap();
        assert_eq!(u.version(), Some(3));
        assert_eq!(KeyRef::parse(&u.to_string()).unwrap(), u);
        assert_eq!(u.at_version(None).to_string(), "pkcs11:token=T;object=org-es256");
        for bad in [
            "sim:d;x-version=0",
            "sim:d;x-version=01",
            "sim:d;x-version=10000",
            "sim:d;x-version=-1",
            "sim:d;x-version=",
        ] {
            assert!(KeyRef::parse(bad).unwrap_err().message.contains("x-version"), "{bad}");
        }
        assert!(KeyRef::parse("pkcs11:object=a;x-version=x").is_err());
        assert!(KeyRef::parse("pkcs11:object=a;x-version=1;x-version=2").unwrap_err().message.contains("twice"));
        assert_eq!(versioned_name("org", 1), "org");
        assert_eq!(versioned_name("org", 3), "org#v3");
        assert!(names_a_version("org#v3") && !names_a_version("org#v1") && !names_a_version("org#vx"));
        assert!(!names_a_version("#v2") && !names_a_version("org"));
    }
}
