//! The JOSE part of the wire schema: JWS signing and verification, JWT verification and
//! issuing. A JWS, a JWK Set and a header travel as text, never as parsed JSON, so that the
//! server reads them with its strict reader (a member given twice is refused, not resolved).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{DsseKey, DssePublicKey, KeyOrigin, b64};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JwsSignRequest {
    /// The payload, base64.
    #[serde(with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub payload: Vec<u8>,
    /// Server-side key references, each with its algorithm.
    #[serde(default)]
    pub keys: Vec<DsseKey>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub key_ids: Vec<String>,
    /// `compact` (default), `flattened` or `general` (several signers need `general`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization: Option<String>,
    /// Leave the payload out of the JWS (RFC 7515 appendix F).
    #[serde(default)]
    pub detached: bool,
    /// `false`: an unencoded payload (RFC 7797, with `crit: ["b64"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<bool>,
    /// The `kid` to write (one signer only); default the profile's key id, else the RFC 7638
    /// thumbprint of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// More protected header members, as a JSON object's text (`typ`, `cty`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// One signature a JWS sign made.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JwsSigned {
    /// The profile or key reference that signed.
    pub signer: String,
    pub alg: String,
    pub kid: String,
    pub provider: String,
    pub origin: KeyOrigin,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JwsSignResponse {
    /// The JWS exactly as written: a compact token, or JSON text.
    pub jws: String,
    pub serialization: String,
    pub detached: bool,
    pub b64: bool,
    pub signatures: Vec<JwsSigned>,
}

/// The keys a JWS or JWT is checked with; none at all: the server's trust anchors.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JoseKeys {
    /// Public keys: SPKI PEM, base64 of the DER, or a JWK's text. An RSA key without an
    /// algorithm verifies RS256 ... PS512.
    #[serde(default)]
    pub public_keys: Vec<DssePublicKey>,
    /// A JWK Set's text: its signature keys (`use` sig or absent) are trusted, by `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// With the server's anchors: only anchors with this purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JwsVerifyRequest {
    /// The JWS: a compact token or JSON text (flattened or general).
    pub jws: String,
    /// The keys to trust; none: the server's trust anchors.
    #[serde(default)]
    pub keys: JoseKeys,
    /// Distinct keys (by SPKI fingerprint) that must have signed; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<usize>,
    /// The payload of a detached JWS, base64.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub detached_payload: Option<Vec<u8>>,
    /// With the server's anchors: the verification time (RFC 3339), default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What one signature of a JWS came to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JwsSignatureReport {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The trusted key it verified under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// Its protected header (decoded).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub protected: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JwsVerifyResponse {
    pub valid: bool,
    pub serialization: String,
    /// Exactly the verified payload, base64 (only when valid and not detached).
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub payload: Option<Vec<u8>>,
    pub signatures: Vec<JwsSignatureReport>,
    pub verified_fingerprints: Vec<String>,
    pub verified_by: Vec<String>,
    pub threshold: usize,
    /// Why signatures did not count (each naming its rule).
    pub notes: Vec<String>,
    /// With anchors: each anchor not used, and the rule it failed.
    pub refused_anchors: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtVerifyRequest {
    /// The JWT (a compact JWS).
    pub jwt: String,
    /// The keys to trust; none: the server's trust anchors.
    #[serde(default)]
    pub keys: JoseKeys,
    /// The issuer `iss` must equal; required unless `any_issuer` (RFC 8725 section 3.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default)]
    pub any_issuer: bool,
    /// An audience `aud` must hold; required unless `any_audience` (RFC 8725 section 3.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default)]
    pub any_audience: bool,
    /// With several audiences, `azp` must be present and equal this (default `aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The header `typ` required (RFC 8725 section 3.11), compared case-insensitively, with
    /// or without `application/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Seconds of clock skew allowed for exp, nbf and iat; default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway: Option<u64>,
    /// The time to check at (RFC 3339; also the anchors' time), default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Claims that must be present.
    #[serde(default)]
    pub require: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JwtVerifyResponse {
    pub valid: bool,
    /// The verified claims (only when valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub claims: Option<serde_json::Value>,
    /// The protected header.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub header: serde_json::Value,
    pub verified_fingerprints: Vec<String>,
    pub verified_by: Vec<String>,
    pub notes: Vec<String>,
    pub refused_anchors: Vec<String>,
}

/// The public keys a server publishes (`[jose] publish`): a JWK Set (RFC 7517 section 5).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Jwks {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub keys: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtSignRequest {
    /// The claims, as a JSON object's text.
    pub claims: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Seconds from now for `exp` (sets `iat` too when the claims have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}
