//! The key lifecycle part of the wire schema: versions of a held key, and the steps between
//! them (rotate, promote, retire, destroy).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `POST /v1/keys/rotate`: make the next version of a held key, staged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRotateRequest {
    /// The key, without `x-version`.
    pub key: String,
    /// The new version's algorithm; default the current version's (required for a key with no
    /// recorded versions yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// RSA modulus size for an RSA key (default 3072).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_bits: Option<u32>,
}

/// `POST /v1/keys/promote`, `/v1/keys/retire`, `/v1/keys/destroy`: one version of a key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyVersionRequest {
    /// The key, without `x-version`.
    pub key: String,
    pub version: u32,
    /// Promote although no configured anchor lists the version's fingerprint (audited).
    #[serde(default)]
    pub force: bool,
    /// Destroy: must be `true` (the CLI's `--yes`).
    #[serde(default)]
    pub confirm: bool,
}

/// `POST /v1/keys/versions`: a key's versions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyVersionsRequest {
    pub key: String,
}

/// One version of a key, as the key-state file records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyVersionInfo {
    pub version: u32,
    /// `staged`, `current`, `retired` or `destroyed`.
    pub state: String,
    pub algorithm: String,
    /// When it was made (RFC 3339); for an adopted version 1, when it was first recorded.
    pub created: String,
    /// Version 1 of a key made before versions were recorded (its age counts from `created`).
    pub adopted: bool,
    /// When its state last changed.
    pub changed: String,
    /// Whole days since `created`.
    pub age_days: u64,
    pub provider: String,
    /// SHA-256 of its SubjectPublicKeyInfo, hex (absent for a secret key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_serial: Option<String>,
    /// Its `CKA_ID` on the token, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cka_id: Option<String>,
}

/// A key's versions (after a lifecycle step: as the step left them).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyVersions {
    /// The key's canonical reference, without a version.
    pub key: String,
    /// The version a reference without `x-version` means now (absent: none is current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    /// Every recorded version, oldest first (empty: the key has no recorded versions and is
    /// version 1).
    pub versions: Vec<KeyVersionInfo>,
    /// The step taken (`rotate`, `promote`, `retire`, `destroy`), absent for a listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The version the step made or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `rotate`: the new version's public key (PEM), to publish before it is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `promote --force` without an anchor that lists the version: said here, and audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// `POST /v1/keys/csr`: a PKCS#10 certificate request signed by a held key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyCsrRequest {
    /// The key (its current version, or the one `x-version` names).
    pub key: String,
    /// ES256/384/512, RS256/384/512, PS256/384/512, EdDSA, ML-DSA-44/65/87.
    pub algorithm: String,
    /// The subject as an RFC 4514 string, most specific first: `CN=signer,O=Example,C=DE`.
    pub subject: String,
    /// subjectAltNames: `dns:NAME` (or a bare name), `ip:ADDR`, `email:ADDR`, `uri:URI`.
    #[serde(default)]
    pub sans: Vec<String>,
}

/// A certificate request, and the key that signed it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyCsrResponse {
    /// PEM (`CERTIFICATE REQUEST`).
    pub csr: String,
    /// The key, with the version that signed (once the key has versions).
    pub key: String,
    pub algorithm: String,
    /// SHA-256 of the SubjectPublicKeyInfo in the request, hex.
    pub spki_sha256: String,
    pub provider: String,
}
