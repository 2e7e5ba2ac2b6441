//! The errors of a request, each with one class ([`ErrorKind`]): the server answers with the
//! class's status, the CLI prints the message. Nothing here holds a secret: a key reference
//! that did not parse is already redacted, and a denial says nothing about whether the key
//! exists.

use cryptohost_client::api::ErrorKind;

use super::anchors::AnchorsError;
use crate::audit::AuditError;
use crate::dsse::DsseError;
use crate::error::{ProviderError, RegistryError};
use crate::keyfile::FileError;
use crate::keyref::KeyRefError;
use crate::keys::KeyError;

/// What every refusal to use a key says to a caller who may not see more, whether the key is
/// forbidden or absent, so that nobody learns which keys exist.
pub const DENIED: &str = "access denied: no rule lets this caller use that key or profile for this operation, \
     or there is no such key";

/// Why a request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request itself is unusable, in words (a missing field, two that exclude each other,
    /// a value out of range).
    #[error("{0}")]
    Invalid(String),
    #[error("unknown signature algorithm {0:?} (expected one of {names})", names = crate::alg::signature_names())]
    UnknownAlgorithm(String),
    /// The gate refused (and the refusal is in the audit log).
    #[error("{DENIED}")]
    Denied,
    #[error("no profile {name:?} in {config}")]
    NoProfile { name: String, config: String },
    #[error("no profile has key_id {id:?}: map it to a key in [profiles] of {config}")]
    NoKeyId { id: String, config: String },
    #[error(transparent)]
    KeyRef(#[from] KeyRefError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Dsse(#[from] DsseError),
    #[error(transparent)]
    Anchors(#[from] AnchorsError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The deployment policy refuses what the request asks (naming the policy line).
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyRefusal),
    /// The HSM refused an admin action, or there is none.
    #[error("{0}")]
    Hsm(ProviderError),
}

impl From<crate::fsio::FsError> for RequestError {
    fn from(e: crate::fsio::FsError) -> RequestError {
        RequestError::Invalid(e.to_string())
    }
}

/// The class of a provider's answer: a missing key looks like a forbidden one, a refusal is the
/// caller's input, a failure or fault is the provider's.
fn provider_kind(error: &ProviderError) -> ErrorKind {
    match error {
        ProviderError::KeyNotFound(_) => ErrorKind::Denied,
        ProviderError::Unsupported(_) | ProviderError::InvalidKey(_) | ProviderError::InvalidInput(_) => {
            ErrorKind::BadRequest
        }
        ProviderError::Failed(_) | ProviderError::Fault(_) => ErrorKind::Provider,
    }
}

fn registry_kind(error: &RegistryError) -> ErrorKind {
    match error {
        RegistryError::Provider { error, .. } => provider_kind(error),
        RegistryError::NoNamespace { .. } => ErrorKind::Denied,
        RegistryError::Policy(_) => ErrorKind::RefusedByPolicy,
        RegistryError::NoProvider { .. } | RegistryError::Input(_) | RegistryError::Io(_) => ErrorKind::BadRequest,
    }
}

fn key_kind(error: &KeyError) -> ErrorKind {
    match error {
        KeyError::Provider { error, .. } => provider_kind(error),
        KeyError::Registry(r) => registry_kind(r),
        KeyError::Reference { .. } => ErrorKind::Denied,
        KeyError::Policy(_) => ErrorKind::RefusedByPolicy,
        KeyError::Version { .. } => ErrorKind::Conflict,
        KeyError::State(_) | KeyError::Binding { .. } => ErrorKind::Internal,
        KeyError::Audit(_) | KeyError::Output { .. } => ErrorKind::Internal,
        KeyError::File(_) | KeyError::Input(_) => ErrorKind::BadRequest,
    }
}

impl RequestError {
    /// The class of this error: one table for every operation and front end.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RequestError::Invalid(_)
            | RequestError::UnknownAlgorithm(_)
            | RequestError::KeyRef(_)
            | RequestError::Anchors(_)
            | RequestError::File(_) => ErrorKind::BadRequest,
            RequestError::Denied | RequestError::NoProfile { .. } | RequestError::NoKeyId { .. } => ErrorKind::Denied,
            RequestError::Key(e) => key_kind(e),
            RequestError::Registry(e) => registry_kind(e),
            RequestError::Dsse(e) => match (e.key_error(), e) {
                (Some(k), _) => key_kind(k),
                (None, DsseError::Hashing(r)) => registry_kind(r),
                (None, _) => ErrorKind::BadRequest,
            },
            RequestError::Audit(_) => ErrorKind::Internal,
            RequestError::Policy(_) => ErrorKind::RefusedByPolicy,
            RequestError::Hsm(e) => provider_kind(e),
        }
    }

    /// The message for a caller who may not learn which keys exist: the same words for every
    /// denial, whatever its cause.
    pub fn public_message(&self) -> String {
        if self.kind() == ErrorKind::Denied { DENIED.to_string() } else { self.to_string() }
    }
}
