//! The wire schema of `cryptohost serve`: every request and response body, written once. The
//! server serializes these, this crate's client deserializes them, the CLI prints them for
//! `--json` in local and client mode alike, and the OpenAPI document is derived from them
//! (feature `openapi`). A field therefore cannot mean one thing to the server and another to a
//! client.
//!
//! Bytes travel as standard padded base64 (`format: byte`); the server also accepts URL-safe
//! and unpadded base64. Digests travel as lowercase hex.

use serde::{Deserialize, Serialize};

mod jose;
mod lifecycle;
pub use jose::*;
pub use lifecycle::*;

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// Bytes as base64: written standard and padded, read standard or URL-safe, padded or not.
pub mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Standard padded base64.
    pub fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Standard or URL-safe base64, padded or not, surrounding whitespace ignored.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        let t = text.trim().as_bytes();
        [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(t).ok())
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("is not base64 (standard or URL-safe)"))
    }

    /// The same for an optional field.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => super::serialize(b, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => super::decode(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("is not base64 (standard or URL-safe)")),
            }
        }
    }
}

/// What kind of error an answer is: each kind has exactly one HTTP status (see
/// [`ErrorKind::status`]), the same for every route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request is malformed or names something unusable (400).
    BadRequest,
    /// No rule lets the caller do this, or the key or profile does not exist: one answer (403).
    Denied,
    /// No such route (404).
    NotFound,
    /// The route exists, the method does not (405).
    MethodNotAllowed,
    /// The body is over `[service] max_body_mib` (413).
    TooLarge,
    /// The body is not `application/json` where JSON is expected (415).
    UnsupportedMediaType,
    /// The deployment policy (`[policy]`) does not allow this algorithm, key or use; the
    /// message names the policy line (403).
    RefusedByPolicy,
    /// The key version's state does not allow this: a staged or retired version asked to sign
    /// or encrypt, a promotion no anchor vouches for, destroying the current version (409).
    Conflict,
    /// The provider that holds the key failed or faulted (502).
    Provider,
    /// At the concurrency limit; retry (503, with `Retry-After`).
    Overloaded,
    /// Not ready: a configured HSM does not answer (503).
    NotReady,
    /// The request did not finish within `[service] request_timeout_ms` (504).
    Timeout,
    /// The server could not do its part, e.g. write the audit line (500).
    Internal,
    /// A kind this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// Every kind, for documentation and tests.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::BadRequest,
        ErrorKind::Denied,
        ErrorKind::RefusedByPolicy,
        ErrorKind::Conflict,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Provider,
        ErrorKind::Overloaded,
        ErrorKind::NotReady,
        ErrorKind::Timeout,
        ErrorKind::Internal,
    ];

    /// The one HTTP status of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Denied | ErrorKind::RefusedByPolicy => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Conflict => 409,
            ErrorKind::Provider => 502,
            ErrorKind::Overloaded | ErrorKind::NotReady => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal | ErrorKind::Unknown => 500,
        }
    }

    /// The name on the wire (`bad-request`, `denied`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::Denied => "denied",
            ErrorKind::RefusedByPolicy => "refused-by-policy",
            ErrorKind::NotFound => "not-found",
            ErrorKind::MethodNotAllowed => "method-not-allowed",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::UnsupportedMediaType => "unsupported-media-type",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Provider => "provider",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::NotReady => "not-ready",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The body of every error answer, whatever the route or status.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// Always `live` while the process answers.
    pub status: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Ready {
    pub ready: bool,
    /// Providers loaded.
    pub providers: usize,
    /// Whether an HSM is configured, and if so whether it answered.
    pub hsm: Option<bool>,
}

/// Where a provider's code came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// A wasm component file and the sha256 it was admitted under; `publisher`, the key id
    /// that signed the kit's component manifest, when it came that way.
    Component {
        file: String,
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publisher: Option<String>,
    },
    /// Native code in the host (the PKCS#11 backend).
    Native { module: String },
}

/// A provider asked before the one that served, and why it did not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Skipped {
    pub provider: String,
    pub reason: String,
}

/// Which provider served, and its code's origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServedBy {
    pub name: String,
    pub origin: Origin,
    /// Providers asked first that answered `unsupported` or faulted.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

/// Where the code that used a key came from, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(untagged)]
pub enum KeyOrigin {
    /// A wasm component, by file name and the sha256 it was admitted under.
    Component {
        component: String,
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publisher: Option<String>,
    },
    /// The PKCS#11 backend: module path and the serial of the token that served.
    Pkcs11 { pkcs11_module: String, token_serial: Option<String> },
    /// Code built into the host (its native hashing): what it is, with the host's version.
    Native { native: String },
    /// No provider was reached (the operation failed before one was chosen).
    None,
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Component { component, sha256, publisher: None } => write!(f, "{component} sha256:{sha256}"),
            KeyOrigin::Component { component, sha256, publisher: Some(p) } => {
                write!(f, "{component} sha256:{sha256} published by {p}")
            }
            KeyOrigin::Pkcs11 { pkcs11_module, token_serial } => {
                write!(f, "PKCS#11 {pkcs11_module} token serial {}", token_serial.as_deref().unwrap_or("?"))
            }
            KeyOrigin::Native { native } => write!(f, "native: {native}"),
            KeyOrigin::None => f.write_str("no provider"),
        }
    }
}

/// One capability of a provider and the algorithms it covers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CapabilityInfo {
    /// hashing, verification, signing, encryption.
    pub capability: String,
    /// What the provider offers and the deployment policy allows: what it is used for.
    pub algorithms: Vec<String>,
    /// What the provider offers and the deployment policy (`[policy]`) refuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_by_policy: Vec<String>,
}

/// A loaded provider (`GET /v1/providers`, `cryptohost providers --json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProviderInfo {
    /// The name given in the configuration.
    pub name: String,
    /// The name and version the provider reports for itself.
    pub reported_name: String,
    pub version: String,
    /// Higher wins.
    pub priority: i32,
    pub origin: Origin,
    pub capabilities: Vec<CapabilityInfo>,
    /// A component's world (verifier, signer, keystore); null for a native backend.
    pub world: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema, IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct HashQuery {
    /// SHA-256, SHA-384 or SHA-512.
    pub alg: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HashResponse {
    pub algorithm: String,
    /// Lowercase hex.
    pub digest: String,
    pub provider: ServedBy,
}

/// Verifies a signature with a public key sent in the request or a trust anchor's key id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// ES256 ... PS512, EdDSA, ML-DSA-44/65/87.
    pub algorithm: String,
    /// SPKI public key: PEM text, or base64 of the DER; or give `key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A key id of the server's trust anchors (`[trust] anchors` or `[kit]`), valid now and for
    /// this algorithm; when it names several keys (a rotation), any one of them verifying is
    /// enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The signature, base64 (standard or URL-safe).
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Vec<u8>,
    /// The signed data, base64; or give `digest`.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub data: Option<Vec<u8>>,
    /// The digest of the data under the algorithm's hash, hex (not for EdDSA or ML-DSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// ECDSA encoding: `der` (default) or `p1363`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VerifyResponse {
    pub algorithm: String,
    /// A signature that does not verify is `false`, not an error.
    pub valid: bool,
    /// The provider that verified.
    pub provider: ServedBy,
    /// The provider that hashed the data (absent when a digest was sent, and for EdDSA and
    /// ML-DSA, which verify whole messages).
    pub hashed_by: Option<ServedBy>,
    /// The type of the key the answer is about: `P-256`, `RSA-3072`, `Ed25519`, `ML-DSA-65`.
    #[serde(default)]
    pub key_type: Option<String>,
    /// Its SPKI fingerprint (`sha256:` + hex), which tells apart several keys under one key id.
    #[serde(default)]
    pub key_fingerprint: Option<String>,
    /// The ECDSA signature encoding read (`der` or `p1363`); absent for other algorithms.
    #[serde(default)]
    pub signature_format: Option<String>,
    /// The digest verified, when the input was hashed first or sent as a digest (absent for
    /// EdDSA and ML-DSA, which verify whole messages).
    #[serde(default)]
    pub digest: Option<Digest>,
}

/// A digest and the hash that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Digest {
    /// `SHA-256`, `SHA-384`, `SHA-512`.
    pub hash: String,
    /// Lowercase hex.
    pub hex: String,
}

/// Signs with a key the server holds: a key reference, a profile, or the profile of a trust
/// anchor key id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// A server-side key reference (`pkcs11:...`, `sim:NAME`); never a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Or a configured signing profile (which carries its own key and algorithm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Or a trust-anchor key id: the profile with that `key_id` signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Needed with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The data, base64; or give `digest`.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub data: Option<Vec<u8>>,
    /// The digest under the algorithm's hash, hex (not for EdDSA or ML-DSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// ECDSA encoding: `der` (default) or `p1363`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
}

/// The same request for `POST /v1/sign/stream`, whose body is the data itself (streamed through
/// the algorithm's hash, any size).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema, IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SignQuery {
    pub key: Option<String>,
    pub profile: Option<String>,
    pub key_id: Option<String>,
    pub algorithm: Option<String>,
    pub signature_format: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignResponse {
    pub algorithm: String,
    /// The signature, standard base64.
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Vec<u8>,
    /// The provider that signed.
    pub provider: String,
    /// Where its code came from (component and sha256, or PKCS#11 module and token serial).
    pub origin: KeyOrigin,
    /// The provider that hashed the data (absent when a digest was sent, and for EdDSA and
    /// ML-DSA, which sign whole messages).
    pub hashed_by: Option<ServedBy>,
}

/// A DSSE envelope (DSSE v1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Envelope {
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub payload: Vec<u8>,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// A DSSE signature: `keyid` is an unauthenticated hint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub sig: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DsseKey {
    /// A server-side key reference.
    pub key: String,
    pub algorithm: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DsseSignRequest {
    pub payload_type: String,
    /// The payload, base64.
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub payload: Vec<u8>,
    #[serde(default)]
    pub keys: Vec<DsseKey>,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Trust-anchor key ids: the profile with that `key_id` signs, and writes the id as keyid.
    #[serde(default)]
    pub key_ids: Vec<String>,
    /// ECDSA encoding: `der` (default) or `p1363`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
    /// Keep the signatures that worked when one signer fails.
    #[serde(default)]
    pub allow_partial: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DsseSignResponse {
    pub envelope: Envelope,
    /// Signers that failed, `LABEL: why` (only with `allow_partial`).
    pub failures: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DssePublicKey {
    /// SPKI PEM, or base64 of the DER.
    pub public_key: String,
    /// For an RSA key: RS256 ... PS512 (EC, Ed25519 and ML-DSA keys use their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// How the answer names this key (default `public_keys[i]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DsseVerifyRequest {
    /// The envelope, as JSON (parsed with the server's payload and signature limits).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub envelope: serde_json::Value,
    /// The keys to trust; none: the server's trust anchors.
    #[serde(default)]
    pub public_keys: Vec<DssePublicKey>,
    /// The algorithm of RSA `public_keys` given without one (never applied to an EC, Ed25519
    /// or ML-DSA key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_algorithm: Option<String>,
    /// Distinct keys (by SPKI fingerprint) that must have signed; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
    /// With the server's anchors: only anchors with this purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// With the server's anchors: the verification time (RFC 3339), default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DsseVerifyResponse {
    pub valid: bool,
    pub payload_type: String,
    /// Exactly the verified payload, base64 (only when valid).
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub payload: Option<Vec<u8>>,
    pub verified_fingerprints: Vec<String>,
    /// The names of the keys that verified (anchor key ids, or the public keys given).
    pub verified_by: Vec<String>,
    /// Distinct trusted keys that had to sign.
    pub threshold: usize,
    pub notes: Vec<String>,
    /// With anchors: each anchor not used, and the rule it failed.
    pub refused_anchors: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub key: String,
    pub algorithm: String,
    /// RSA modulus size (default 3072).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_bits: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PublicKeyResponse {
    /// SPKI PEM (empty for a secret key: it has no public half).
    pub public_key: String,
    /// The provider that holds the key.
    pub provider: String,
    /// With `format=jwk`: the key as a JWK (RFC 7517; kid its RFC 7638 thumbprint, use sig,
    /// alg when the key's type decides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub jwk: Option<serde_json::Value>,
}

/// How `/v1/keys/public` answers: `pem` (default) or `jwk` (the PEM and a JWK).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema, IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct KeyFormatQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One key on an HSM token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyListing {
    pub uri: String,
    pub class: String,
    pub key_type: String,
    pub token_serial: String,
    /// The key version this object is, when the key-state file records its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// That version's state (`staged`, `current`, `retired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Whole days since that version was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_days: Option<u64>,
}

/// One configured HSM token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenStatus {
    /// The token's label; for a missing token, the label it was configured by (or empty).
    pub label: String,
    /// The token's serial; for a missing token, the serial it was configured by (or empty).
    pub serial: String,
    /// `None` when the token is missing.
    pub slot: Option<u64>,
    /// False when no token in the module matches the configured label or serial.
    pub present: bool,
    pub healthy: bool,
    /// Whether this process has logged in to it (status itself never logs in).
    pub logged_in: bool,
    pub last_error: Option<String>,
    pub sessions_open: usize,
    pub sessions_idle: usize,
}

/// The answer of an HSM admin action.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HsmReport {
    /// The HSM provider's configured name.
    pub hsm: String,
    /// status, connect or disconnect.
    pub action: String,
    /// Whether the module was loaded before the action.
    pub was_connected: bool,
    /// Every configured token after the action (empty after a disconnect).
    pub tokens: Vec<TokenStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    pub key: String,
    /// A128GCM or A256GCM (default A256GCM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub plaintext: Vec<u8>,
    /// Additional authenticated data, base64.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub aad: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Sealed {
    /// 12 bytes, base64.
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub nonce: Vec<u8>,
    /// Ciphertext || 16-byte tag, base64.
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub ciphertext: Vec<u8>,
    /// The provider that holds the key.
    #[serde(default)]
    pub provider: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub nonce: Vec<u8>,
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub ciphertext: Vec<u8>,
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub aad: Option<Vec<u8>>,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Plaintext {
    /// Base64.
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub plaintext: Vec<u8>,
    /// The provider that holds the key.
    #[serde(default)]
    pub provider: String,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plaintext").field("plaintext", &"<redacted>").field("provider", &self.provider).finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Reloaded {
    pub reloaded: bool,
    /// Providers serving after the reload.
    pub providers: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_standard_base64_out_and_any_base64_in() {
        let e = Envelope {
            payload: b"hi?>".to_vec(),
            payload_type: "t".into(),
            signatures: vec![EnvelopeSignature { keyid: String::new(), sig: vec![0xfb, 0xff] }],
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, r#"{"payload":"aGk/Pg==","payloadType":"t","signatures":[{"keyid":"","sig":"+/8="}]}"#);
        let url_safe: Envelope =
            serde_json::from_str(r#"{"payload":"aGk_Pg","payloadType":"t","signatures":[{"sig":"-_8"}]}"#).unwrap();
        assert_eq!(url_safe, e);
        let bad = serde_json::from_str::<Envelope>(r#"{"payload":"!!","payloadType":"t","signatures":[]}"#);
        assert!(bad.unwrap_err().to_string().contains("is not base64"));
    }

    #[test]
    fn every_error_kind_has_one_status_and_its_wire_name() {
        for k in ErrorKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert!((400..600).contains(&k.status()));
        }
        let unknown: ErrorKind = serde_json::from_str("\"from-the-future\"").unwrap();
        assert_eq!(unknown, ErrorKind::Unknown);
    }
}
