//! Keyless operations: hashing, verifying a signature with a public key or an anchor key id,
//! and verifying a DSSE envelope against given keys or trust anchors. Nothing here uses a
//! private key, so nothing is audited and no gate is asked (but a server never opens a path).

use std::path::PathBuf;

use cryptohost_client::api::{self, DsseVerifyResponse, HashResponse, VerifyResponse};
use time::OffsetDateTime;

use super::input::{self, Input};
use super::{Context, RequestError, anchors, served_by, signature_alg};
use crate::dsse;
use crate::provider::SigFormat;
use crate::trust::TrustedKey;

/// Hashes an input through a hashing provider: a file or stream is streamed, never held whole.
///
/// # Errors
/// An unknown hash, an unusable file, or a read or provider failure.
pub fn hash(ctx: &Context<'_>, algorithm: &str, input: Input<'_>) -> Result<HashResponse, RequestError> {
    let registry = &ctx.host.registry;
    registry.policy().allows(crate::provider::Capability::Hashing, algorithm)?;
    let served = match input {
        Input::File(path) => registry.digest_file(algorithm, path)?,
        Input::Stream(reader) => registry.digest_stream(algorithm, reader)?,
        Input::Bytes(bytes) => registry.digest_stream(algorithm, &mut std::io::Cursor::new(bytes))?,
        Input::Digest(_) => return Err(RequestError::Invalid("a digest is not hashed again".into())),
    };
    Ok(HashResponse {
        algorithm: crate::alg::canonical_hash(algorithm),
        digest: hex::encode(&served.value),
        provider: served_by(&served),
    })
}

/// The key a signature is checked with.
#[derive(Clone, Debug)]
pub enum PublicKeySpec {
    /// An SPKI (DER) the caller gave.
    Spki(Vec<u8>),
    /// A key id of the configured trust anchors: every key it names now, for the algorithm.
    AnchorKeyId(String),
}

/// One signature over one input.
#[derive(Debug)]
pub struct Verify<'a> {
    pub algorithm: String,
    pub key: PublicKeySpec,
    pub signature: Vec<u8>,
    pub input: Input<'a>,
    pub format: SigFormat,
}

/// An SPKI public key sent as PEM text or base64 of the DER.
///
/// # Errors
/// Neither, or not a public key.
pub fn public_key_text(field: &str, text: &str) -> Result<Vec<u8>, RequestError> {
    let bytes = public_key_bytes(field, text)?;
    Ok(crate::keyfile::public_key_from_bytes(std::path::Path::new(field), &bytes)?)
}

/// The bytes of a public key sent as text: PEM or a JWK as they are, else base64 of the DER.
///
/// # Errors
/// None of these.
pub(super) fn public_key_bytes(field: &str, text: &str) -> Result<Vec<u8>, RequestError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN") || trimmed.starts_with('{') {
        return Ok(text.as_bytes().to_vec());
    }
    api::b64::decode(text).ok_or_else(|| {
        RequestError::Invalid(format!("{field} is neither PEM, a JWK nor base64 (standard or URL-safe) of the DER"))
    })
}

impl<'a> Verify<'a> {
    /// The request of `POST /v1/verify`.
    ///
    /// # Errors
    /// Not exactly one key or key id, not exactly one of data or digest, a bad key or format.
    pub fn from_wire(req: &'a api::VerifyRequest) -> Result<Verify<'a>, RequestError> {
        signature_alg(&req.algorithm)?;
        let key = match (&req.public_key, &req.key_id) {
            (Some(k), None) => PublicKeySpec::Spki(public_key_text("public_key", k)?),
            (None, Some(id)) => PublicKeySpec::AnchorKeyId(id.clone()),
            _ => return Err(RequestError::Invalid("give exactly one of public_key or key_id".into())),
        };
        let input = match (&req.data, &req.digest) {
            (Some(d), None) => Input::Bytes(d),
            (None, Some(h)) => Input::digest_hex(h)?,
            _ => return Err(RequestError::Invalid("give exactly one of data (base64) or digest (hex)".into())),
        };
        Ok(Verify {
            algorithm: req.algorithm.clone(),
            key,
            signature: req.signature.clone(),
            input,
            format: super::sig_format(req.signature_format.as_deref())?,
        })
    }
}

/// Verifies a signature. Under a key id that names several keys (a rotation), any one of them
/// verifying is enough. A provider refuses a key of another type for the algorithm (never
/// substituted).
///
/// # Errors
/// An unknown algorithm, unusable input or key, no usable anchor; a signature that does not
/// verify is `valid: false`, not an error.
pub fn verify(ctx: &Context<'_>, req: Verify<'_>) -> Result<VerifyResponse, RequestError> {
    let answer = super::record_refusal(ctx, verify_one(ctx, req))?;
    super::record_verification(ctx, || {
        format!(
            "{} {} by key {}",
            answer.algorithm,
            if answer.valid { "valid" } else { "invalid" },
            answer.key_fingerprint.as_deref().unwrap_or("?")
        )
    });
    Ok(answer)
}

fn verify_one(ctx: &Context<'_>, req: Verify<'_>) -> Result<VerifyResponse, RequestError> {
    let alg = signature_alg(&req.algorithm)?;
    let keys = match req.key {
        PublicKeySpec::Spki(spki) => {
            ctx.host.registry.policy().caller_key("verifying with a public key the caller gives")?;
            vec![spki]
        }
        PublicKeySpec::AnchorKeyId(id) => {
            anchors::keys_for_id(ctx, &id, alg.name)?.into_iter().map(|k| k.spki).collect()
        }
    };
    let prepared = input::prepare(ctx, alg, req.input, false)?;
    let mut answer = None;
    for spki in &keys {
        let verified = ctx.host.registry.verify(alg.name, spki, prepared.sign_input(), &req.signature, req.format)?;
        let valid = verified.value;
        answer = Some(VerifyResponse {
            algorithm: alg.name.to_string(),
            valid,
            provider: served_by(&verified),
            hashed_by: prepared.hashed_by.clone(),
            key_type: key_type(spki),
            key_fingerprint: crate::trust::fingerprint(&ctx.host.registry, spki).ok(),
            signature_format: (alg.family == crate::alg::Family::Ecdsa).then(|| req.format.to_string()),
            digest: prepared.digest(alg),
        });
        if valid {
            break;
        }
    }
    answer.ok_or_else(|| RequestError::Invalid("no key to verify with".into()))
}

/// `P-256`, `RSA-3072`, `Ed25519`, `ML-DSA-65`: what a verbose answer says of a key.
pub fn key_type(spki: &[u8]) -> Option<String> {
    match crate::alg::key_kind(spki).ok()? {
        crate::alg::KeyKind::Fixed(a) => a.key_type.map(str::to_string),
        crate::alg::KeyKind::Rsa => crate::policy::rsa_modulus_bits(spki).map(|b| format!("RSA-{b}")),
    }
}

/// A public key given to verify an envelope with.
#[derive(Clone, Debug)]
pub struct GivenKey {
    /// How reports name it (a file name, or `public_keys[i]`).
    pub name: String,
    pub spki: Vec<u8>,
    /// Its algorithm, when given with it (checked against an EC, Ed25519 or ML-DSA key).
    pub algorithm: Option<String>,
}

/// Which keys an envelope is checked against.
#[derive(Clone, Debug)]
pub enum TrustSpec {
    /// Exactly these keys; `rsa_default` for RSA keys given without an algorithm.
    Keys { keys: Vec<GivenKey>, rsa_default: Option<String> },
    /// Trust anchors: a directory the caller names (the CLI only), else the configured ones;
    /// valid `at` (default now), only those for `purpose` when given.
    Anchors { dir: Option<PathBuf>, at: Option<String>, purpose: Option<String> },
}

/// An envelope and what it is checked against.
#[derive(Debug)]
pub struct DsseVerify {
    /// The envelope's JSON, parsed here with the payload and signature limits.
    pub envelope: Vec<u8>,
    pub trust: TrustSpec,
    pub threshold: usize,
    pub format: SigFormat,
    /// A payload limit below the configured one (the CLI's `--max-payload-mib`).
    pub max_payload: Option<usize>,
    /// What becomes of the payload once verified.
    pub payload: PayloadOut,
}

/// What becomes of a verified envelope's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadOut {
    /// Decoded into the answer (the server's JSON carries it).
    Answer,
    /// Nowhere.
    Omit,
    /// Decoded into this file as it is written (a temporary file renamed into place, never
    /// through a symlink), never held whole: a local front end's `--payload-out`.
    File(PathBuf),
}

impl DsseVerify {
    /// The request of `POST /v1/dsse/verify`.
    ///
    /// # Errors
    /// A key that is not a public key, anchors' options given with keys, or a bad format.
    pub fn from_wire(req: &api::DsseVerifyRequest) -> Result<DsseVerify, RequestError> {
        let trust = if req.public_keys.is_empty() {
            TrustSpec::Anchors { dir: None, at: req.at.clone(), purpose: req.purpose.clone() }
        } else {
            if req.purpose.is_some() || req.at.is_some() {
                return Err(RequestError::Invalid(
                    "purpose and at apply to the server's anchors, not to public_keys".into(),
                ));
            }
            let mut keys = Vec::new();
            for (i, k) in req.public_keys.iter().enumerate() {
                let name = k.name.clone().unwrap_or_else(|| format!("public_keys[{i}]"));
                keys.push(GivenKey {
                    spki: public_key_text(&format!("public_keys[{i}]"), &k.public_key)?,
                    name,
                    algorithm: k.algorithm.clone(),
                });
            }
            TrustSpec::Keys { keys, rsa_default: req.rsa_algorithm.clone() }
        };
        let envelope = serde_json::to_vec(&req.envelope).map_err(|e| RequestError::Invalid(e.to_string()))?;
        Ok(DsseVerify {
            envelope,
            trust,
            threshold: req.threshold.unwrap_or(1),
            format: super::sig_format(req.signature_format.as_deref())?,
            max_payload: None,
            payload: PayloadOut::Answer,
        })
    }
}

/// The trusted keys of a request, and the anchors refused (with the rule each one failed).
pub(super) fn trusted(ctx: &Context<'_>, trust: TrustSpec) -> Result<(Vec<TrustedKey>, Vec<String>), RequestError> {
    let policy = ctx.host.registry.policy();
    match trust {
        TrustSpec::Keys { keys, rsa_default } => {
            policy.caller_key("verifying with public keys the caller gives")?;
            let mut trusted = Vec::new();
            for k in keys {
                let key = crate::trust::trusted_key(
                    &ctx.host.registry,
                    &k.name,
                    k.spki,
                    k.algorithm.as_deref(),
                    rsa_default.as_deref(),
                )
                .map_err(|e| RequestError::Invalid(e.to_string()))?;
                trusted.push(key);
            }
            Ok((trusted, Vec::new()))
        }
        TrustSpec::Anchors { dir, at, purpose } => {
            let at = match at {
                Some(t) => crate::trust::parse_time(&t).map_err(|e| RequestError::Invalid(format!("at: {e}")))?,
                None => OffsetDateTime::now_utc(),
            };
            let set = match dir {
                Some(_) if !ctx.gate.local_files() => {
                    return Err(RequestError::Invalid("the server never opens a directory a client names".into()));
                }
                Some(dir) => {
                    policy.caller_key("verifying with anchors from a directory the caller names")?;
                    anchors::in_dir(ctx, &dir, at, purpose.as_deref())?
                }
                None => anchors::configured(ctx, at, purpose.as_deref())?,
            };
            Ok((set.keys, set.refused))
        }
    }
}

/// Verifies an envelope: the threshold counts distinct keys by SPKI fingerprint.
///
/// # Errors
/// A threshold of 0, an envelope that does not parse or is over the limits, unusable keys or
/// anchors; an envelope that does not verify is `valid: false`, not an error.
pub fn dsse_verify(ctx: &Context<'_>, req: DsseVerify) -> Result<DsseVerifyResponse, RequestError> {
    let answer = super::record_refusal(ctx, dsse_verify_one(ctx, req))?;
    super::record_verification(ctx, || {
        format!(
            "DSSE {} ({} of threshold {}) payload type {:?} by {}",
            if answer.valid { "valid" } else { "invalid" },
            answer.verified_fingerprints.len(),
            answer.threshold,
            answer.payload_type,
            answer.verified_fingerprints.join(", ")
        )
    });
    Ok(answer)
}

fn dsse_verify_one(ctx: &Context<'_>, req: DsseVerify) -> Result<DsseVerifyResponse, RequestError> {
    if req.threshold == 0 {
        return Err(RequestError::Invalid("the threshold must be at least 1".into()));
    }
    let limit = req.max_payload.unwrap_or(ctx.config.max_payload);
    if matches!(req.payload, PayloadOut::File(_)) && !ctx.gate.local_files() {
        return Err(RequestError::Invalid(
            "a server never writes a client's paths: the payload comes in the answer".into(),
        ));
    }
    // The payload stays base64 in the envelope's bytes: hashed as it is decoded, decoded whole
    // only for an answer that carries it (or an algorithm that signs whole messages).
    let envelope = dsse::EncodedEnvelope::parse(&req.envelope, limit, ctx.config.max_signatures)?;
    let (keys, refused_anchors) = trusted(ctx, req.trust)?;
    let result = dsse::verify_encoded(&ctx.host.registry, &envelope, &keys, req.threshold, req.format)?;
    let payload = match (&req.payload, result.valid) {
        (PayloadOut::Answer, true) => Some(envelope.payload.decode()),
        (PayloadOut::File(path), true) => {
            crate::fsio::replace_atomic_with(path, 0o644, |w| {
                std::io::copy(&mut envelope.payload.reader(), w).map(|_| ())
            })?;
            None
        }
        _ => None,
    };
    Ok(DsseVerifyResponse {
        valid: result.valid,
        payload_type: result.payload_type,
        payload,
        verified_fingerprints: result.verified_fingerprints,
        verified_by: result.verified_by,
        threshold: result.threshold,
        notes: result.notes,
        refused_anchors,
    })
}
