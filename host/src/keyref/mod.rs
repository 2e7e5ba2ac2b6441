//! Key references: one syntax for every key, whichever backend holds it: `pkcs11:` URIs (RFC
//! 7512, parsed in `pkcs11_uri`), `PREFIX:NAME` for a provider's key namespace, and `file:PATH`
//! (or a plain path) for a PKCS#8 file. Pure parsing: nothing here touches a backend.

mod pkcs11_uri;

use std::path::{Path, PathBuf};

pub use pkcs11_uri::Pkcs11Uri;

/// A parsed key reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    Pkcs11(Pkcs11Uri),
    /// `PREFIX:NAME`, held by the provider configured with that `key_prefix`.
    Named {
        prefix: String,
        name: String,
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
                if name.is_empty() {
                    return Err(format!("{prefix}: needs a key name"));
                }
                Ok(KeyRef::Named { prefix: prefix.to_string(), name: name.to_string() })
            }
            _ if text.is_empty() => Err("empty key reference".into()),
            _ => Ok(KeyRef::File(PathBuf::from(text))),
        }
    }

    /// Whether a backend holds the key (`pkcs11:`, `PREFIX:NAME`), rather than a file.
    pub fn is_held(&self) -> bool {
        !matches!(self, KeyRef::File(_))
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::Pkcs11(u) => write!(f, "{u}"),
            KeyRef::Named { prefix, name } => write!(f, "{prefix}:{name}"),
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
}
