//! Key references: one syntax for every key, whichever backend holds it.

use std::path::PathBuf;

use crate::pkcs11::Pkcs11Uri;

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

impl KeyRef {
    /// # Errors
    /// A malformed `pkcs11:` URI, or an empty name or path.
    pub fn parse(text: &str) -> Result<KeyRef, String> {
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
