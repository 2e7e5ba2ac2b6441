//! DSSE v1 envelopes (secure-systems-lab/dsse): signatures over
//! `PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body`, never over the raw payload.

use std::collections::HashMap;
use std::io::Cursor;

use crate::alg;
use crate::audit::{AuditInput, HashedBy};
use crate::error::RegistryError;
use crate::keys::{KeyError, KeyRef, KeyService};
use crate::provider::{Capability, SigFormat, SignInput};
use crate::registry::Registry;
pub use crate::trust::{TrustedKey, fingerprint};

pub use crate::config::{DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_SIGNATURES};

mod encoded;
pub use encoded::{Base64Text, EncodedEnvelope};

/// Pre-Authentication Encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = pae_prefix(payload_type, payload.len());
    out.reserve_exact(payload.len());
    out.extend_from_slice(payload);
    out
}

/// The PAE up to the payload: `DSSEv1 len(type) type len(body) `.
fn pae_prefix(payload_type: &str, payload_len: usize) -> Vec<u8> {
    format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload_len).into_bytes()
}

/// A DSSE signature: `keyid` is an unauthenticated hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// A parsed envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// What is wrong with an envelope or a DSSE request.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("envelope is not JSON: {0}")]
    NotJson(String),
    #[error("envelope: {0}")]
    Malformed(String),
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes (--max-payload-mib)")]
    TooLarge { size: usize, limit: usize },
    #[error("the envelope carries {count} signatures; at most {limit} are accepted ([dsse] max_signatures)")]
    TooManySignatures { count: usize, limit: usize },
    #[error("{label}: unknown signature algorithm {algorithm:?} (expected one of {})", alg::signature_names())]
    UnknownAlgorithm { label: String, algorithm: String },
    /// The PAE could not be hashed (no provider offers the algorithm's hash).
    #[error("hashing the PAE: {0}")]
    Hashing(#[source] RegistryError),
    /// Signers failed; nothing was written unless `allow_partial` kept the others.
    #[error("{}", signers_failed(.failures, *.allow_partial))]
    Signers { failures: Vec<(String, KeyError)>, allow_partial: bool },
}

fn signers_failed(failures: &[(String, KeyError)], allow_partial: bool) -> String {
    let names: Vec<&str> = failures.iter().map(|(l, _)| l.as_str()).collect();
    let list: Vec<String> = failures.iter().map(|(l, e)| format!("{l}: {e}")).collect();
    format!(
        "signing failed for {} (nothing was written{}): {}",
        names.join(", "),
        if allow_partial { "" } else { "; --allow-partial keeps the others" },
        list.join("; ")
    )
}

impl DsseError {
    /// The key error behind a failed sign: the first signer's (what an answer's class follows).
    pub fn key_error(&self) -> Option<&KeyError> {
        match self {
            DsseError::Signers { failures, .. } => failures.first().map(|(_, e)| e),
            _ => None,
        }
    }
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, DsseError> {
    crate::keyfile::decode_base64(text.as_bytes())
        .ok_or_else(|| DsseError::Malformed(format!("{field} is not base64 (standard or URL-safe)")))
}

impl Envelope {
    /// Parses envelope JSON. Unknown fields are ignored; `payload`, `payloadType` and
    /// `signatures` are required, each once; base64 may be standard or URL-safe, padded or not.
    ///
    /// # Errors
    /// Not JSON, a required field missing or of the wrong type, bad base64, a payload over
    /// `max_payload` (checked before decoding), or more than `max_signatures` signatures.
    pub fn parse(bytes: &[u8], max_payload: usize, max_signatures: usize) -> Result<Envelope, DsseError> {
        EncodedEnvelope::parse(bytes, max_payload, max_signatures).map(EncodedEnvelope::decode)
    }

    /// The envelope as JSON (standard, padded base64): the wire schema's envelope, pretty.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&Wire::from(self.clone())).unwrap_or_default()
    }
}

use cryptohost_client::api::{Envelope as Wire, EnvelopeSignature as WireSignature};

impl From<Envelope> for Wire {
    fn from(e: Envelope) -> Wire {
        Wire {
            payload: e.payload,
            payload_type: e.payload_type,
            signatures: e.signatures.into_iter().map(|s| WireSignature { keyid: s.keyid, sig: s.sig }).collect(),
        }
    }
}

/// The outcome of verifying an envelope.
#[derive(Debug)]
pub struct Verification {
    pub payload_type: String,
    /// The distinct keys (by SPKI fingerprint) with a valid signature, by name.
    pub verified_by: Vec<String>,
    /// Their fingerprints, in the same order.
    pub verified_fingerprints: Vec<String>,
    pub threshold: usize,
    pub valid: bool,
    /// Why signatures did not count, for the person reading the report.
    pub notes: Vec<String>,
}

/// The PAE a signature covers: whole in memory (signing, a bundle's small manifest), or its
/// prefix and the payload's base64, decoded as it is read (verifying an envelope).
#[derive(Clone, Copy)]
enum Pae<'a> {
    Whole(&'a [u8]),
    Encoded { prefix: &'a [u8], body: &'a Base64Text<'a> },
}

impl<'a> Pae<'a> {
    fn reader(self) -> Box<dyn std::io::Read + 'a> {
        match self {
            Pae::Whole(p) => Box::new(Cursor::new(p)),
            Pae::Encoded { prefix, body } => Box::new(std::io::Read::chain(prefix, body.reader())),
        }
    }
}

/// Hashes the PAE through a hashing provider, streamed (a 64 MiB PAE never enters a guest
/// whole, nor the host decoded).
fn digest_streamed(registry: &Registry, hash: &str, pae: Pae<'_>) -> Result<(Vec<u8>, HashedBy), DsseError> {
    registry
        .serve(Capability::Hashing, hash, |p, a| p.digest_reader(a, &mut pae.reader()))
        .map(|s| (s.value, HashedBy::of(s.provider.as_ref())))
        .map_err(DsseError::Hashing)
}

/// What a signer or verifier is handed for an algorithm: the PAE itself (EdDSA, ML-DSA), or its
/// digest.
struct PaeInputs<'a> {
    registry: &'a Registry,
    pae: Pae<'a>,
    digests: HashMap<&'static str, (Vec<u8>, HashedBy)>,
    /// The whole PAE of an encoded envelope, decoded once an algorithm needs it whole.
    whole: Option<Vec<u8>>,
}

impl<'a> PaeInputs<'a> {
    fn new(registry: &'a Registry, pae: Pae<'a>) -> Self {
        PaeInputs { registry, pae, digests: HashMap::new(), whole: None }
    }

    fn prepare(&mut self, algorithm: &str) -> Result<(), DsseError> {
        match alg::signature_hash(algorithm) {
            Some(h) if !self.digests.contains_key(h) => {
                let d = digest_streamed(self.registry, h, self.pae)?;
                self.digests.insert(h, d);
            }
            Some(_) => {}
            None => {
                if let (Pae::Encoded { prefix, body }, None) = (self.pae, &self.whole) {
                    let mut whole = Vec::with_capacity(prefix.len() + body.len());
                    whole.extend_from_slice(prefix);
                    // Decoded straight after the prefix (checked when parsed: cannot fail).
                    let _ = std::io::Read::read_to_end(&mut body.reader(), &mut whole);
                    self.whole = Some(whole);
                }
            }
        }
        Ok(())
    }

    fn input(&self, algorithm: &str) -> SignInput<'_> {
        match alg::signature_hash(algorithm).and_then(|h| self.digests.get(h)) {
            Some((d, _)) => SignInput::Digest(d),
            None => SignInput::Message(match self.pae {
                Pae::Whole(p) => p,
                // Prepared for every algorithm before any input is asked for.
                Pae::Encoded { .. } => self.whole.as_deref().unwrap_or_default(),
            }),
        }
    }

    /// What the audit line of a signature with `algorithm` records: the PAE's SHA-256 (the
    /// host holds all of it) and the digest signed, if one was.
    fn audit(&self, algorithm: &str, pae_sha256: &[u8]) -> AuditInput {
        let whole = AuditInput::whole(pae_sha256);
        match alg::signature_hash(algorithm).and_then(|h| self.digests.get(h).map(|d| (h, d))) {
            Some((h, (d, by))) => whole.with_digest(h, d).hashed_by(Some(by.clone())),
            None => whole,
        }
    }
}

/// Merges trusted keys that are one key (same SPKI fingerprint) under several names: a key
/// given twice, as PEM and DER, or by two anchors, is still one signer. Names and hints are
/// kept, joined; a key named with two different algorithms is refused.
///
/// # Errors
/// One key with two different algorithms.
pub fn distinct_keys(keys: &[TrustedKey]) -> Result<Vec<TrustedKey>, DsseError> {
    let mut out: Vec<TrustedKey> = Vec::new();
    for k in keys {
        match out.iter_mut().find(|o| o.fingerprint == k.fingerprint) {
            Some(o) if o.algorithm != k.algorithm => {
                return Err(DsseError::Malformed(format!(
                    "trusted keys {} and {} are one key ({}) with two algorithms ({} and {}); give it once",
                    o.name, k.name, k.fingerprint, o.algorithm, k.algorithm
                )));
            }
            Some(o) => {
                o.name = format!("{} = {}", o.name, k.name);
                for h in &k.hints {
                    if !o.hints.contains(h) {
                        o.hints.push(h.clone());
                    }
                }
            }
            None => out.push(k.clone()),
        }
    }
    Ok(out)
}

/// Verifies an envelope against trusted keys. The threshold counts distinct keys by SPKI
/// fingerprint: each key counts at most once, each signature at most once, and identical
/// signatures once. A signature whose keyid names trusted keys is tried under those only;
/// one without a matching keyid under every key not yet counted. The work is therefore at
/// most signatures x keys verifications, with both bounded (`Envelope::parse` caps
/// signatures).
///
/// # Errors
/// Never for bad signatures (they are reported in `notes`); for a hashing failure, or one key
/// given with two algorithms.
pub fn verify(
    registry: &Registry,
    env: &Envelope,
    keys: &[TrustedKey],
    threshold: usize,
    format: SigFormat,
) -> Result<Verification, DsseError> {
    let pae = pae(&env.payload_type, &env.payload);
    verify_pae(registry, Pae::Whole(&pae), &env.payload_type, &env.signatures, keys, threshold, format)
}

/// As [`verify`], for an envelope whose payload is still base64: the PAE is hashed as it is
/// decoded, and the payload is never held decoded (but for EdDSA and ML-DSA, which take it
/// whole).
///
/// # Errors
/// As [`verify`].
pub fn verify_encoded(
    registry: &Registry,
    env: &EncodedEnvelope<'_>,
    keys: &[TrustedKey],
    threshold: usize,
    format: SigFormat,
) -> Result<Verification, DsseError> {
    let prefix = env.pae_prefix();
    let pae = Pae::Encoded { prefix: &prefix, body: &env.payload };
    verify_pae(registry, pae, &env.payload_type, &env.signatures, keys, threshold, format)
}

fn verify_pae(
    registry: &Registry,
    pae: Pae<'_>,
    payload_type: &str,
    signatures: &[Signature],
    keys: &[TrustedKey],
    threshold: usize,
    format: SigFormat,
) -> Result<Verification, DsseError> {
    let keys = distinct_keys(keys)?;
    let mut inputs = PaeInputs::new(registry, pae);
    for k in &keys {
        inputs.prepare(&k.algorithm)?;
    }
    let mut counted: Vec<&TrustedKey> = Vec::new();
    let mut notes = Vec::new();
    if signatures.is_empty() {
        notes.push("the envelope has no signatures".into());
    }
    let mut seen: Vec<&[u8]> = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        if seen.contains(&s.sig.as_slice()) {
            notes.push(format!("signature {i} repeats an earlier one; counted once"));
            continue;
        }
        seen.push(&s.sig);
        let named: Vec<&TrustedKey> =
            keys.iter().filter(|k| !s.keyid.is_empty() && k.hints.contains(&s.keyid)).collect();
        // The keyid is an unauthenticated hint: it narrows which keys are tried, never which
        // are trusted. Without a match every key is tried.
        let candidates: Vec<&TrustedKey> = if named.is_empty() { keys.iter().collect() } else { named };
        let mut matched = false;
        for k in candidates {
            if counted.iter().any(|c| c.fingerprint == k.fingerprint) {
                continue;
            }
            match registry.verify(&k.algorithm, &k.spki, inputs.input(&k.algorithm), &s.sig, format) {
                Ok(served) if served.value => {
                    counted.push(k);
                    matched = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("signature {i} with {}: {e}", k.name)),
            }
        }
        if !matched {
            notes.push(format!(
                "signature {i} (keyid {:?}) is not valid under any trusted key not already counted",
                s.keyid
            ));
        }
    }
    let valid = threshold > 0 && counted.len() >= threshold;
    if !valid {
        notes.push(format!("{} distinct trusted key(s) verified; the threshold is {threshold}", counted.len()));
    }
    Ok(Verification {
        payload_type: payload_type.to_string(),
        verified_by: counted.iter().map(|k| k.name.clone()).collect(),
        verified_fingerprints: counted.iter().map(|k| k.fingerprint.clone()).collect(),
        threshold,
        valid,
        notes,
    })
}

/// One signer of a multi-profile sign.
#[derive(Clone, Debug)]
pub struct Signer {
    /// Profile name or key reference, for reports.
    pub label: String,
    pub key: KeyRef,
    pub algorithm: String,
    /// Written into the signature's keyid (default: the key's SPKI fingerprint).
    pub key_id: Option<String>,
}

/// Signs `payload` with every signer concurrently, into one envelope, through the key service
/// (which routes, and audits each signature). Without `allow_partial`, any failure fails the
/// whole sign (naming which); with it, the signers that failed are returned beside the envelope.
///
/// # Errors
/// An unknown algorithm, the PAE cannot be hashed, or a signer failed (and `allow_partial` is
/// off, or every signer failed).
pub fn sign(
    service: &KeyService<'_>,
    payload_type: &str,
    payload: &[u8],
    signers: &[Signer],
    format: SigFormat,
    allow_partial: bool,
) -> Result<(Envelope, Vec<(String, KeyError)>), DsseError> {
    let registry = service.registry();
    let pae = pae(payload_type, payload);
    let mut inputs = PaeInputs::new(registry, Pae::Whole(&pae));
    for s in signers {
        if !alg::is_signature_algorithm(&s.algorithm) {
            return Err(DsseError::UnknownAlgorithm { label: s.label.clone(), algorithm: s.algorithm.clone() });
        }
        inputs.prepare(&s.algorithm)?;
    }
    let pae_sha256 = sha256_native(&pae);
    let inputs = &inputs;
    let results: Vec<Result<Signature, KeyError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = signers
            .iter()
            .map(|s| {
                let pae_sha256 = &pae_sha256;
                scope.spawn(move || -> Result<Signature, KeyError> {
                    let audit = inputs.audit(&s.algorithm, pae_sha256);
                    let signed = service.sign(&s.key, &s.algorithm, inputs.input(&s.algorithm), &audit, format)?;
                    let keyid = match &s.key_id {
                        Some(k) => k.clone(),
                        None => {
                            let (spki, _) = service.public_key(&s.key, &s.algorithm, 0)?;
                            fingerprint(registry, &spki)?
                        }
                    };
                    Ok(Signature { keyid, sig: signed.signature })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(KeyError::Input("signer thread panicked".into()))))
            .collect()
    });
    let mut signatures = Vec::new();
    let mut failures = Vec::new();
    for (s, r) in signers.iter().zip(results) {
        match r {
            Ok(sig) => signatures.push(sig),
            Err(e) => failures.push((s.label.clone(), e)),
        }
    }
    if signatures.is_empty() || (!failures.is_empty() && !allow_partial) {
        return Err(DsseError::Signers { failures, allow_partial });
    }
    Ok((Envelope { payload: payload.to_vec(), payload_type: payload_type.to_string(), signatures }, failures))
}

fn sha256_native(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn parse_refuses_what_it_must() {
        assert!(matches!(Envelope::parse(b"not json", 100, 16), Err(DsseError::NotJson(_))));
        assert!(
            Envelope::parse(br#"{"payloadType":"t","signatures":[]}"#, 100, 16)
                .unwrap_err()
                .to_string()
                .contains("payload")
        );
        assert!(matches!(
            Envelope::parse(br#"{"payload":"AAAAAAAA","payloadType":"t","signatures":[]}"#, 3, 16),
            Err(DsseError::TooLarge { .. })
        ));
        let e =
            Envelope::parse(br#"{"payload":"aGk","payloadType":"t","signatures":[{"sig":"AQ"}],"extra":1}"#, 100, 16)
                .unwrap();
        assert_eq!(e.payload, b"hi");
        assert_eq!(e.signatures[0].keyid, "");
    }
}
