//! Typed errors of the host library; the binary turns them into messages and exit codes.

use std::path::PathBuf;

/// What a provider answered, or why it could not answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The provider does not offer this algorithm or capability; the registry tries the next.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The key is malformed or unacceptable for the algorithm.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// An argument is malformed (wrong signature length, bad digest size, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The provider holds no such key (or lost it when its instance was reset).
    #[error("key not found: {0}")]
    KeyNotFound(String),
    /// The provider reported a failure of its own.
    #[error("provider failure: {0}")]
    Failed(String),
    /// The provider trapped or hit a sandbox limit; its instance was thrown away.
    #[error("provider fault: {0}")]
    Fault(String),
}

impl ProviderError {
    /// Whether the registry should try the next provider after this answer.
    pub fn falls_back(&self) -> bool {
        matches!(self, ProviderError::Unsupported(_) | ProviderError::Fault(_))
    }
}

/// Errors of loading configuration and components.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "component {file} does not match its pin: expected sha256 {expected}, actual {actual} (refused; if this build was reviewed, run `just pin`)"
    )]
    PinMismatch { file: PathBuf, expected: String, actual: String },
    #[error("component {file}: {message}")]
    Component { file: PathBuf, message: String },
    #[error("precompiled cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
}

/// Errors of a registry call: no provider could serve it, or the serving provider refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no configured provider offers {capability} with {algorithm}{}", tried_note(.tried))]
    NoProvider { capability: String, algorithm: String, tried: Vec<(String, ProviderError)> },
    #[error("{provider}: {error}")]
    Provider { provider: String, error: ProviderError },
    #[error("{}", namespace_note(.prefix))]
    NoNamespace { prefix: String },
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// An input file that cannot be used (not a regular file, too large), in words.
    #[error("{0}")]
    Input(String),
    /// The deployment policy refuses the algorithm or the key.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyRefusal),
}

fn namespace_note(prefix: &str) -> String {
    if prefix == "pkcs11" {
        "a pkcs11: key, but no [hsm] is configured".into()
    } else {
        format!("no configured provider holds {prefix}: keys (set key_prefix = {prefix:?} on one)")
    }
}

fn tried_note(tried: &[(String, ProviderError)]) -> String {
    if tried.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = tried.iter().map(|(p, e)| format!("{p}: {e}")).collect();
    format!(" (tried {})", parts.join("; "))
}
