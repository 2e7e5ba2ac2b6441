//! JOSE requests: a JWS signed by one or several signers, a JWS verified against given keys
//! (PEM, DER, JWK, JWK Set) or trust anchors, a JWT verified (signature, then RFC 8725 claims)
//! and issued, the published JWK Set. Who signs, the gate, the policy, the anchored-signer check
//! and the audit line are the ones every signature goes through; the signing input is hashed
//! through a hashing provider, streamed for a detached payload of any size.
//!
//! `keys`: which keys a verification trusts; `payload`: the payload as the signing input needs
//! it; `jwt`: JWT verify and sign; here: JWS sign and verify.

mod jwt;
mod keys;
mod payload;

use cryptohost_client::api::{self, JwsSignResponse, JwsSignatureReport, JwsSigned, JwsVerifyResponse};
use serde_json::{Map, Value};

pub use jwt::{JwtSign, JwtVerify, jwt_sign, jwt_verify};
use keys::jose_trust;
pub use keys::{GivenJoseKey, JoseTrust, jwks};
use payload::Source;

use super::input::Input;
use super::sign::signers;
use super::{Context, KeySpec, RequestError};
use crate::jose::jwk;
use crate::jose::jws::{self, JoseKey, Jws, JwsError, Limits, Payload, Serialization, Written};
use crate::provider::SigFormat;

impl From<JwsError> for RequestError {
    fn from(e: JwsError) -> RequestError {
        RequestError::Invalid(e.to_string())
    }
}

/// A JWS signed by one or several signers.
#[derive(Debug)]
pub struct JwsSign<'a> {
    /// Each signer, with the algorithm a key reference needs.
    pub signers: Vec<(KeySpec, Option<String>)>,
    /// The `kid` to write (one signer only).
    pub kid: Option<String>,
    /// More protected header members, as JSON text.
    pub header: Option<Vec<u8>>,
    pub serialization: Serialization,
    pub detached: bool,
    pub b64: bool,
    pub payload: Input<'a>,
}

impl<'a> JwsSign<'a> {
    /// The request of `POST /v1/jws/sign`.
    ///
    /// # Errors
    /// A reference that does not parse, or an unknown serialization.
    pub fn from_wire(req: &'a api::JwsSignRequest) -> Result<JwsSign<'a>, RequestError> {
        Ok(JwsSign {
            signers: KeySpec::several(&req.keys, &req.profiles, &req.key_ids)?,
            kid: req.kid.clone(),
            header: req.header.as_ref().map(|h| h.as_bytes().to_vec()),
            serialization: Serialization::parse(req.serialization.as_deref().unwrap_or("compact"))
                .map_err(RequestError::Invalid)?,
            detached: req.detached,
            b64: req.b64.unwrap_or(true),
            payload: Input::Bytes(&req.payload),
        })
    }
}

fn header_members(text: Option<&[u8]>) -> Result<Map<String, Value>, RequestError> {
    match text {
        None => Ok(Map::new()),
        Some(t) => match crate::jose::json::parse(t, jws::MAX_HEADER, "the header").map_err(RequestError::Invalid)? {
            Value::Object(m) => Ok(m),
            _ => Err(RequestError::Invalid("the header must be a JSON object".into())),
        },
    }
}

/// Signs a payload as a JWS: each signer's protected header carries its `alg` and `kid` (the
/// profile's key id, else the RFC 7638 thumbprint of its key); each signature is audited with
/// the SHA-256 of its signing input and the digest signed.
///
/// # Errors
/// Nothing to sign with, denied, an algorithm JOSE does not register, the policy or the
/// anchors refuse, a payload the serialization cannot carry, or a signer failed.
pub fn jws_sign(ctx: &Context<'_>, req: JwsSign<'_>) -> Result<JwsSignResponse, RequestError> {
    let signers = signers(ctx, &req.signers)?;
    if signers.len() > 1 && req.serialization != Serialization::General {
        return Err(RequestError::Invalid(format!(
            "{} signers make one JWS only in the general JSON serialization (--serialization general)",
            signers.len()
        )));
    }
    if req.kid.is_some() && signers.len() > 1 {
        return Err(RequestError::Invalid("--kid names one signer's key; with several, each writes its own".into()));
    }
    if let Some(kid) = &req.kid {
        super::bounded("kid", kid)?;
    }
    let mut algs = Vec::new();
    for s in &signers {
        algs.push(jws::signature_alg(&s.algorithm).map_err(|e| RequestError::Invalid(format!("{}: {e}", s.label)))?);
    }
    let extra = header_members(req.header.as_deref())?;
    let service = ctx.keys()?;
    for s in &signers {
        service.check_sign(&s.key, &s.algorithm)?;
    }
    super::anchors::check_signers(ctx, &service, &signers)?;
    let mut source = Source::new(ctx, req.payload, req.detached, signers.len())?;
    let embedded = match (&source, req.detached) {
        (Source::Held(p), false) => Some(jws::embedded_payload(p, req.b64, req.serialization)?),
        _ => None,
    };
    let mut written = Vec::new();
    let mut reports = Vec::new();
    for (s, alg) in signers.iter().zip(algs) {
        let kid = match (&req.kid, &s.key_id) {
            (Some(k), _) | (None, Some(k)) => k.clone(),
            (None, None) => {
                let (spki, _) = service.public_key(&s.key, alg.name, 0)?;
                jwk::thumbprint(&spki).map_err(|e| RequestError::Invalid(format!("{}: {e}", s.label)))?
            }
        };
        let protected_b64 = jws::protected_for(alg.name, Some(&kid), &extra, req.b64)?;
        let prefix = format!("{protected_b64}.");
        let prepared = source.prepare(ctx, alg, prefix.as_bytes(), req.b64, true)?;
        let signed = service.sign(&s.key, alg.name, prepared.sign_input(), &prepared.audit, SigFormat::P1363)?;
        reports.push(JwsSigned {
            signer: s.label.clone(),
            alg: alg.name.to_string(),
            kid,
            provider: signed.provider,
            origin: signed.origin,
        });
        written.push(Written { protected_b64, signature: signed.signature });
    }
    Ok(JwsSignResponse {
        jws: jws::serialize(req.serialization, embedded.as_deref(), &written)?,
        serialization: req.serialization.name().to_string(),
        detached: req.detached,
        b64: req.b64,
        signatures: reports,
    })
}

/// A JWS and what it is checked against.
#[derive(Debug)]
pub struct JwsVerify<'a> {
    pub jws: std::borrow::Cow<'a, [u8]>,
    pub trust: JoseTrust,
    pub threshold: usize,
    /// The payload of a detached JWS.
    pub detached: Option<Input<'a>>,
    /// The anchors' time (RFC 3339), default now.
    pub at: Option<String>,
}

impl<'a> JwsVerify<'a> {
    /// The request of `POST /v1/jws/verify`.
    ///
    /// # Errors
    /// As [`JoseTrust::from_wire`].
    pub fn from_wire(req: &'a api::JwsVerifyRequest) -> Result<JwsVerify<'a>, RequestError> {
        Ok(JwsVerify {
            jws: std::borrow::Cow::Borrowed(req.jws.as_bytes()),
            trust: JoseTrust::from_wire(&req.keys)?,
            threshold: req.threshold.unwrap_or(1),
            detached: req.detached_payload.as_deref().map(Input::Bytes),
            at: req.at.clone(),
        })
    }
}

fn limits(ctx: &Context<'_>) -> Limits {
    Limits { max_payload: ctx.config.max_payload, max_signatures: ctx.config.max_signatures }
}

/// At most 64 characters of a name a token chose, for a note (a header may be 16 KiB).
fn short(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// What checking a JWS's signatures came to.
struct Checked {
    reports: Vec<JwsSignatureReport>,
    counted: Vec<(String, String)>,
}

/// Checks every signature of `jws` under `keys`: the algorithm from the key (never the token
/// alone), ECDSA as R||S of the curve's size, each key counted once (by fingerprint), each
/// signature at most once.
fn check_signatures(
    ctx: &Context<'_>,
    jws: &Jws,
    keys: &[JoseKey],
    detached: Option<Input<'_>>,
    notes: &mut Vec<String>,
) -> Result<Checked, RequestError> {
    let mut source = match (&jws.payload, detached) {
        (Payload::Embedded { encoded, .. }, _) => Some(Source::Held(std::borrow::Cow::Borrowed(&encoded[..]))),
        (Payload::Detached, Some(input)) => Some(Source::new(ctx, input, true, jws.signatures.len())?),
        (Payload::Detached, None) => None,
    };
    let embedded = matches!(jws.payload, Payload::Embedded { .. });
    let mut counted: Vec<(String, String)> = Vec::new();
    let mut reports = Vec::new();
    for (i, sig) in jws.signatures.iter().enumerate() {
        let h = &sig.header;
        let mut report = JwsSignatureReport {
            alg: h.alg.clone(),
            kid: h.kid.clone(),
            verified_by: None,
            protected: Value::Object(h.protected.clone()),
        };
        let carriers = h.key_carriers();
        if !carriers.is_empty() {
            notes.push(format!(
                "signature {i}: header {} never names a trusted key here (ignored)",
                carriers.join(", ")
            ));
        }
        let verdict = (|| -> Result<Option<&JoseKey>, String> {
            let alg = jws::signature_alg(&h.alg)?;
            if let Some(n) = jws::ecdsa_length(alg)
                && sig.signature.len() != n
            {
                return Err(format!(
                    "a {} signature is R||S of {n} bytes (RFC 7518 section 3.4); this one is {}",
                    alg.name,
                    sig.signature.len()
                ));
            }
            let candidates: Vec<&JoseKey> = jws::candidates(keys, h, alg)?
                .into_iter()
                .filter(|k| !counted.iter().any(|(_, fp)| *fp == k.fingerprint))
                .collect();
            if candidates.is_empty() {
                return Err("every key it could be checked with has already counted".into());
            }
            let Some(source) = source.as_mut() else {
                return Err("the payload is detached and none was given (--detached FILE)".into());
            };
            // An embedded payload is already its encoded self: it goes in as it stands.
            let b64 = h.b64 && !embedded;
            let prepared = source.prepare(ctx, alg, &h.signing_prefix(), b64, false).map_err(|e| e.to_string())?;
            for k in candidates {
                match ctx.host.registry.verify(
                    alg.name,
                    &k.spki,
                    prepared.sign_input(),
                    &sig.signature,
                    SigFormat::P1363,
                ) {
                    Ok(v) if v.value => return Ok(Some(k)),
                    Ok(_) => {}
                    Err(e) => notes.push(format!("signature {i} with {}: {e}", k.name)),
                }
            }
            Ok(None)
        })();
        match verdict {
            Ok(Some(k)) => {
                report.verified_by = Some(k.name.clone());
                counted.push((k.name.clone(), k.fingerprint.clone()));
            }
            Ok(None) => notes.push(format!(
                "signature {i} (alg {}, kid {}) is not valid under any trusted key",
                short(&h.alg),
                h.kid.as_deref().map_or("none".to_string(), |k| format!("{:?}", short(k)))
            )),
            Err(reason) => notes.push(format!("signature {i}: {reason}")),
        }
        reports.push(report);
    }
    Ok(Checked { reports, counted })
}

/// Verifies a JWS: the threshold counts distinct keys by SPKI fingerprint, as DSSE does.
///
/// # Errors
/// A threshold of 0, a JWS that breaks a rule or a limit, unusable keys or anchors; a JWS that
/// does not verify is `valid: false` (with each signature's reason), not an error.
pub fn jws_verify(ctx: &Context<'_>, req: JwsVerify<'_>) -> Result<JwsVerifyResponse, RequestError> {
    let answer = super::record_refusal(ctx, jws_verify_one(ctx, req))?;
    super::record_verification(ctx, || {
        format!(
            "JWS {} ({} of threshold {}) by {}",
            if answer.valid { "valid" } else { "invalid" },
            answer.verified_fingerprints.len(),
            answer.threshold,
            answer.verified_fingerprints.join(", ")
        )
    });
    Ok(answer)
}

fn jws_verify_one(ctx: &Context<'_>, req: JwsVerify<'_>) -> Result<JwsVerifyResponse, RequestError> {
    if req.threshold == 0 {
        return Err(RequestError::Invalid("the threshold must be at least 1".into()));
    }
    let jws = jws::parse(&req.jws, &limits(ctx), req.detached.is_some())?;
    let mut notes = Vec::new();
    let (keys, refused_anchors) = jose_trust(ctx, req.trust, req.at.as_deref(), &mut notes)?;
    let checked = check_signatures(ctx, &jws, &keys, req.detached, &mut notes)?;
    let valid = checked.counted.len() >= req.threshold;
    if !valid {
        notes.push(format!(
            "{} distinct trusted key(s) verified; the threshold is {}",
            checked.counted.len(),
            req.threshold
        ));
        if matches!(&jws.payload, Payload::Embedded { encoded, .. } if encoded.is_empty()) {
            notes
                .push("the JWS carries an empty payload: if its payload is detached, give it (--detached FILE)".into());
        }
    }
    let payload = match (&jws.payload, valid) {
        (Payload::Embedded { .. }, true) => jws.payload.bytes()?,
        _ => None,
    };
    Ok(JwsVerifyResponse {
        valid,
        serialization: jws.serialization.name().to_string(),
        payload,
        signatures: checked.reports,
        verified_by: checked.counted.iter().map(|(n, _)| n.clone()).collect(),
        verified_fingerprints: checked.counted.into_iter().map(|(_, f)| f).collect(),
        threshold: req.threshold,
        notes,
        refused_anchors,
    })
}
