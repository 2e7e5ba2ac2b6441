//! JOSE requests: a JWS signed by one or several signers, a JWS verified against given keys
//! (PEM, DER, JWK, JWK Set) or trust anchors, a JWT verified (signature, then RFC 8725 claims)
//! and issued. Who signs, the gate, the policy, the anchored-signer check and the audit line are
//! the ones every signature goes through; the signing input is hashed through a hashing
//! provider, streamed for a detached payload of any size.

use std::io::{Cursor, Read};
use std::path::PathBuf;

use cryptohost_client::api::{
    self, JwsSignResponse, JwsSignatureReport, JwsSigned, JwsVerifyResponse, JwtVerifyResponse,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::input::{self, Input};
use super::sign::signer;
use super::verify::{TrustSpec, trusted};
use super::{Context, KeySpec, RequestError};
use crate::alg::{self, Family, KeyKind, SignatureAlgorithm};
use crate::jose::jws::{self, JoseKey, Jws, JwsError, Limits, Payload, Serialization, Written};
use crate::jose::{jwk, jwt};
use crate::provider::SigFormat;

impl From<JwsError> for RequestError {
    fn from(e: JwsError) -> RequestError {
        RequestError::Invalid(e.to_string())
    }
}

/// A public key given to verify with, as bytes: SPKI PEM or DER, a JWK or a JWK Set.
#[derive(Clone, Debug)]
pub struct GivenJoseKey {
    /// How reports name it (a file name, `public_keys[i]`, `jwks`).
    pub name: String,
    pub bytes: Vec<u8>,
    /// The algorithm given with it (`ALG:FILE`), checked against the key.
    pub algorithm: Option<String>,
}

/// Which keys a JWS or JWT is checked against.
#[derive(Clone, Debug)]
pub enum JoseTrust {
    Keys(Vec<GivenJoseKey>),
    /// Trust anchors: a directory the caller names (the CLI only), else the configured ones.
    Anchors {
        dir: Option<PathBuf>,
        purpose: Option<String>,
    },
}

impl JoseTrust {
    /// The keys of a request: its public keys and JWK Set, else the server's anchors.
    ///
    /// # Errors
    /// A purpose given with keys.
    pub fn from_wire(keys: &api::JoseKeys) -> Result<JoseTrust, RequestError> {
        let mut given = Vec::new();
        for (i, k) in keys.public_keys.iter().enumerate() {
            let text = k.public_key.trim_start();
            let bytes = if text.starts_with('{') || text.starts_with("-----BEGIN") {
                k.public_key.as_bytes().to_vec()
            } else {
                api::b64::decode(text).ok_or_else(|| {
                    RequestError::Invalid(format!("public_keys[{i}] is neither PEM, a JWK nor base64 of the DER"))
                })?
            };
            let name = k.name.clone().unwrap_or_else(|| format!("public_keys[{i}]"));
            given.push(GivenJoseKey { name, bytes, algorithm: k.algorithm.clone() });
        }
        if let Some(set) = &keys.jwks {
            given.push(GivenJoseKey { name: "jwks".into(), bytes: set.as_bytes().to_vec(), algorithm: None });
        }
        if given.is_empty() {
            return Ok(JoseTrust::Anchors { dir: None, purpose: keys.purpose.clone() });
        }
        if keys.purpose.is_some() {
            return Err(RequestError::Invalid("purpose applies to the server's anchors, not to given keys".into()));
        }
        Ok(JoseTrust::Keys(given))
    }
}

/// Every algorithm a public key can verify, in the host's table.
fn algorithms_of(spki: &[u8]) -> Result<Vec<&'static str>, String> {
    Ok(match alg::key_kind(spki)? {
        KeyKind::Fixed(a) => vec![a.name],
        KeyKind::Rsa => alg::SIGNATURE_ALGORITHMS
            .iter()
            .filter(|a| matches!(a.family, Family::RsaPkcs1 | Family::RsaPss))
            .map(|a| a.name)
            .collect(),
    })
}

fn jose_key(
    ctx: &Context<'_>,
    name: String,
    spki: Vec<u8>,
    algorithm: Option<&str>,
    kid: Option<String>,
) -> Result<JoseKey, RequestError> {
    let bad = |m: String| RequestError::Invalid(format!("{name}: {m}"));
    let algorithms = match algorithm {
        Some(a) => vec![alg::algorithm_for_key(&spki, Some(a)).map_err(bad)?],
        None => algorithms_of(&spki).map_err(bad)?,
    };
    let fingerprint = crate::trust::fingerprint(&ctx.host.registry, &spki)?;
    let mut hints = vec![fingerprint.clone()];
    hints.extend(kid);
    hints.extend(jwk::thumbprint(&spki).ok());
    Ok(JoseKey { name, fingerprint, spki, algorithms, hints })
}

/// The given keys as JOSE keys. A JWK's `alg` binds its algorithm and its `kid` is a hint; a
/// key whose `use` or `key_ops` says it does not verify is left out (noted). One key given
/// twice counts once; given with two different algorithm sets, it is refused.
fn given_keys(
    ctx: &Context<'_>,
    given: Vec<GivenJoseKey>,
    notes: &mut Vec<String>,
) -> Result<Vec<JoseKey>, RequestError> {
    ctx.host.registry.policy().caller_key("verifying with public keys the caller gives")?;
    let mut keys: Vec<JoseKey> = Vec::new();
    for g in given {
        if g.bytes.trim_ascii_start().first() == Some(&b'{') {
            let set = jwk::read_keys(&g.bytes).map_err(|e| RequestError::Invalid(format!("{}: {e}", g.name)))?;
            let many = set.len() > 1;
            for (i, k) in set.into_iter().enumerate() {
                let name = match (&k.kid, many) {
                    (Some(kid), _) => format!("{} kid {kid:?}", g.name),
                    (None, true) => format!("{}[{i}]", g.name),
                    (None, false) => g.name.clone(),
                };
                if !k.verifies() {
                    notes.push(format!("{name}: its use or key_ops do not include verifying signatures: left out"));
                    continue;
                }
                if let (Some(a), Some(b)) = (&g.algorithm, &k.alg)
                    && a != b
                {
                    return Err(RequestError::Invalid(format!("{name}: given as {a} but its JWK alg is {b}")));
                }
                let algorithm = g.algorithm.as_deref().or(k.alg.as_deref());
                keys.push(jose_key(ctx, name, k.spki, algorithm, k.kid)?);
            }
        } else {
            let spki = crate::keyfile::public_key_from_bytes(std::path::Path::new(&g.name), &g.bytes)?;
            keys.push(jose_key(ctx, g.name, spki, g.algorithm.as_deref(), None)?);
        }
    }
    let mut out: Vec<JoseKey> = Vec::new();
    for k in keys {
        match out.iter_mut().find(|o| o.fingerprint == k.fingerprint) {
            Some(o) if o.algorithms != k.algorithms => {
                return Err(RequestError::Invalid(format!(
                    "{} and {} are one key ({}) with two algorithm sets; give it once",
                    o.name, k.name, k.fingerprint
                )));
            }
            Some(o) => {
                o.name = format!("{} = {}", o.name, k.name);
                for h in k.hints {
                    if !o.hints.contains(&h) {
                        o.hints.push(h);
                    }
                }
            }
            None => out.push(k),
        }
    }
    if out.is_empty() {
        return Err(RequestError::Invalid("no key given may verify signatures".into()));
    }
    Ok(out)
}

/// The keys a request trusts, the anchors refused (with their rule), and notes.
fn jose_trust(
    ctx: &Context<'_>,
    trust: JoseTrust,
    at: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<(Vec<JoseKey>, Vec<String>), RequestError> {
    match trust {
        JoseTrust::Keys(given) => Ok((given_keys(ctx, given, notes)?, Vec::new())),
        JoseTrust::Anchors { dir, purpose } => {
            let (anchored, refused) = trusted(ctx, TrustSpec::Anchors { dir, at: at.map(str::to_string), purpose })?;
            let mut keys = Vec::new();
            for k in anchored {
                let Some(a) = alg::signature(&k.algorithm) else { continue };
                let mut hints = k.hints.clone();
                hints.extend(jwk::thumbprint(&k.spki).ok());
                keys.push(JoseKey {
                    name: k.name,
                    fingerprint: k.fingerprint,
                    spki: k.spki,
                    algorithms: vec![a.name],
                    hints,
                });
            }
            Ok((keys, refused))
        }
    }
}

/// Base64url (no padding) of everything `inner` yields, as a reader: a detached payload of any
/// size enters the signing input encoded without ever being held whole.
struct B64Reader<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    carry: Vec<u8>,
    done: bool,
}

impl<R: Read> B64Reader<R> {
    fn new(inner: R) -> Self {
        B64Reader { inner, out: Vec::new(), pos: 0, carry: Vec::new(), done: false }
    }

    fn refill(&mut self) -> std::io::Result<()> {
        let mut buf = vec![0u8; 48 << 10];
        while !self.done {
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                self.done = true;
                self.out = jws::b64(&self.carry).into_bytes();
                self.carry.clear();
                break;
            }
            self.carry.extend_from_slice(&buf[..n]);
            let whole = self.carry.len() / 3 * 3;
            if whole > 0 {
                self.out = jws::b64(&self.carry[..whole]).into_bytes();
                self.carry.drain(..whole);
                break;
            }
        }
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for B64Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A payload read whole within the payload limit (one that goes into the JWS, or one signed
/// by several signers from a stream that cannot be read twice).
fn whole(ctx: &Context<'_>, input: Input<'_>) -> Result<Vec<u8>, RequestError> {
    let limit = ctx.config.max_payload;
    let over = |n: usize| {
        RequestError::Invalid(format!(
            "the payload of {n} bytes is over the limit of {limit} bytes ([dsse] max_payload_mib)"
        ))
    };
    match input {
        Input::File(path) => crate::fsio::read_bounded(path, limit as u64, "JWS payload")
            .map_err(|e| RequestError::Invalid(format!("{e} (the limit is [dsse] max_payload_mib)"))),
        Input::Bytes(b) if b.len() > limit => Err(over(b.len())),
        Input::Bytes(b) => Ok(b.to_vec()),
        Input::Stream(r) => {
            let mut out = Vec::new();
            r.take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| RequestError::Invalid(format!("reading the payload: {e}")))?;
            if out.len() > limit {
                return Err(over(out.len()));
            }
            Ok(out)
        }
        Input::Digest(_) => Err(RequestError::Invalid("a JWS signs its payload: give the bytes, not a digest".into())),
    }
}

/// The payload as the signing input needs it, held or streamed.
enum Source<'a> {
    Held(Vec<u8>),
    File(&'a std::path::Path),
    Stream(&'a mut dyn Read),
}

impl<'a> Source<'a> {
    /// A detached payload may stay streamed; anything else, or a stream read by several
    /// signatures, is read whole.
    fn new(ctx: &Context<'_>, input: Input<'a>, streamed: bool, uses: usize) -> Result<Source<'a>, RequestError> {
        Ok(match input {
            Input::File(p) if streamed => Source::File(p),
            Input::Stream(r) if streamed && uses == 1 => Source::Stream(r),
            other => Source::Held(whole(ctx, other)?),
        })
    }

    /// The signing input of one signature, `prefix || payload part`, prepared for `alg` (hashed
    /// through a provider, streamed; or whole for EdDSA within the payload limit).
    fn prepare(
        &mut self,
        ctx: &Context<'_>,
        alg: &SignatureAlgorithm,
        prefix: &[u8],
        b64: bool,
        audited: bool,
    ) -> Result<input::Prepared, RequestError> {
        match self {
            Source::Held(payload) => {
                let mut signing = prefix.to_vec();
                if b64 {
                    signing.extend_from_slice(jws::b64(payload).as_bytes());
                } else {
                    signing.extend_from_slice(payload);
                }
                input::prepare(ctx, alg, Input::Bytes(&signing), audited)
            }
            Source::File(path) => {
                let file = crate::fsio::open_regular(path, "payload")?;
                streamed(ctx, alg, prefix, b64, file, audited)
            }
            Source::Stream(reader) => streamed(ctx, alg, prefix, b64, reader, audited),
        }
    }
}

fn streamed(
    ctx: &Context<'_>,
    alg: &SignatureAlgorithm,
    prefix: &[u8],
    b64: bool,
    payload: impl Read,
    audited: bool,
) -> Result<input::Prepared, RequestError> {
    let mut chained: Box<dyn Read> = if b64 {
        Box::new(Cursor::new(prefix).chain(B64Reader::new(payload)))
    } else {
        Box::new(Cursor::new(prefix).chain(payload))
    };
    input::prepare(ctx, alg, Input::Stream(&mut chained), audited)
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
        let mut signers = Vec::new();
        for k in &req.keys {
            signers.push((KeySpec::one_of(Some(&k.key), None, None)?, Some(k.algorithm.clone())));
        }
        for p in &req.profiles {
            signers.push((KeySpec::one_of(None, Some(p), None)?, None));
        }
        for id in &req.key_ids {
            signers.push((KeySpec::one_of(None, None, Some(id))?, None));
        }
        Ok(JwsSign {
            signers,
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
    let mut signers = Vec::new();
    for (spec, algorithm) in &req.signers {
        signers.push(signer(ctx, spec, algorithm.as_deref())?);
    }
    if signers.is_empty() {
        return Err(RequestError::Invalid(
            "nothing to sign with: give a key (with its algorithm), a profile or a key id".into(),
        ));
    }
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
    pub jws: Vec<u8>,
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
            jws: req.jws.as_bytes().to_vec(),
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
        (Payload::Embedded { encoded, .. }, _) => Some(Source::Held(encoded.clone())),
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
                h.alg,
                h.kid.as_deref().map_or("none".to_string(), |k| format!("{k:?}"))
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
        (Payload::Embedded { bytes, .. }, true) => Some(bytes.clone()),
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

/// A JWT and what a relying party expects of it.
#[derive(Debug)]
pub struct JwtVerify {
    pub jwt: Vec<u8>,
    pub trust: JoseTrust,
    pub expect: jwt::Expect,
    /// The time to check at (RFC 3339), default now; also the anchors' time.
    pub at: Option<String>,
}

impl JwtVerify {
    /// The request of `POST /v1/jwt/verify`.
    ///
    /// # Errors
    /// As [`JoseTrust::from_wire`].
    pub fn from_wire(req: &api::JwtVerifyRequest) -> Result<JwtVerify, RequestError> {
        Ok(JwtVerify {
            jwt: req.jwt.as_bytes().to_vec(),
            trust: JoseTrust::from_wire(&req.keys)?,
            expect: jwt::Expect {
                iss: req.iss.clone(),
                any_issuer: req.any_issuer,
                aud: req.aud.clone(),
                any_audience: req.any_audience,
                azp: req.azp.clone(),
                sub: req.sub.clone(),
                typ: req.typ.clone(),
                nonce: req.nonce.clone(),
                leeway: req.leeway.unwrap_or(60),
                require: req.require.clone(),
            },
            at: req.at.clone(),
        })
    }
}

/// Verifies a JWT: a compact JWS under the keys (one signature), then its claims.
///
/// # Errors
/// Expectations not stated (no issuer or audience and no waiver), a JSON serialization, a
/// nested or encrypted JWT, a rule or limit broken, unusable keys; a JWT that does not verify or
/// whose claims fail is `valid: false`, each reason in `notes`.
pub fn jwt_verify(ctx: &Context<'_>, req: JwtVerify) -> Result<JwtVerifyResponse, RequestError> {
    let expect = req.expect.checked().map_err(RequestError::Invalid)?;
    let at = match &req.at {
        Some(t) => crate::trust::parse_time(t).map_err(|e| RequestError::Invalid(format!("at: {e}")))?,
        None => OffsetDateTime::now_utc(),
    };
    if req.jwt.trim_ascii_start().first() == Some(&b'{') {
        return Err(RequestError::Invalid("a JWT is a compact JWS (RFC 7519 section 7.2), not JSON".into()));
    }
    let limits = Limits { max_payload: jwt::MAX_CLAIMS, max_signatures: 1 };
    let jws = jws::parse(&req.jwt, &limits, false)?;
    let header = &jws.signatures[0].header;
    jwt::check_header(header).map_err(RequestError::Invalid)?;
    let mut notes = Vec::new();
    let (keys, refused_anchors) = jose_trust(ctx, req.trust, req.at.as_deref(), &mut notes)?;
    let checked = check_signatures(ctx, &jws, &keys, None, &mut notes)?;
    let mut valid = !checked.counted.is_empty();
    let mut claims = None;
    if valid && let Payload::Embedded { bytes, .. } = &jws.payload {
        match jwt::claims(bytes) {
            Ok(c) => {
                let fails = jwt::check(&c, header, &expect, at);
                valid = fails.is_empty();
                notes.extend(fails);
                claims = valid.then_some(Value::Object(c));
            }
            Err(e) => {
                valid = false;
                notes.push(e);
            }
        }
    }
    Ok(JwtVerifyResponse {
        valid,
        claims,
        header: Value::Object(header.protected.clone()),
        verified_by: checked.counted.iter().map(|(n, _)| n.clone()).collect(),
        verified_fingerprints: checked.counted.into_iter().map(|(_, f)| f).collect(),
        notes,
        refused_anchors,
    })
}

/// The JWK Set of the profiles `[jose] publish` lists: each key's public members, `kid` (the
/// profile's key id, else the RFC 7638 thumbprint), `use: sig` and the profile's `alg`. No gate
/// is asked: these keys are public by the operator's choice, and no other profile is named.
///
/// # Errors
/// A published key's public half cannot be read (its provider refuses, or no HSM).
pub fn jwks(ctx: &Context<'_>) -> Result<api::Jwks, RequestError> {
    let service = ctx.keys()?;
    let mut keys = Vec::new();
    for name in &ctx.config.jose_publish {
        let Some(p) = ctx.config.profiles.get(name) else { continue };
        let (spki, _) = service.public_key(&p.key, &p.algorithm, 0)?;
        let mut jwk =
            jwk::publish(&spki, p.key_id.as_deref()).map_err(|e| RequestError::Invalid(format!("{name}: {e}")))?;
        jwk.insert("alg".into(), Value::String(p.algorithm.clone()));
        keys.push(Value::Object(jwk));
    }
    Ok(api::Jwks { keys })
}

/// A JWT to issue.
#[derive(Debug)]
pub struct JwtSign {
    pub key: KeySpec,
    pub algorithm: Option<String>,
    pub kid: Option<String>,
    /// The claims, as JSON text.
    pub claims: Vec<u8>,
    /// Seconds from now for `exp`.
    pub expires_in: Option<u64>,
}

impl JwtSign {
    /// The request of `POST /v1/jwt/sign`.
    ///
    /// # Errors
    /// Not exactly one key, profile or key id.
    pub fn from_wire(req: &api::JwtSignRequest) -> Result<JwtSign, RequestError> {
        Ok(JwtSign {
            key: KeySpec::one_of(req.key.as_deref(), req.profile.as_deref(), req.key_id.as_deref())?,
            algorithm: req.algorithm.clone(),
            kid: req.kid.clone(),
            claims: req.claims.as_bytes().to_vec(),
            expires_in: req.expires_in,
        })
    }
}

/// Issues a JWT: the claims (strictly read, `iat`/`exp` added for `expires_in`) signed as a
/// compact JWS with `typ: JWT`.
///
/// # Errors
/// Claims that are not a JSON object (or give `exp` beside `expires_in`), or as [`jws_sign`].
pub fn jwt_sign(ctx: &Context<'_>, req: JwtSign) -> Result<JwsSignResponse, RequestError> {
    let mut claims = jwt::claims(&req.claims).map_err(RequestError::Invalid)?;
    if let Some(secs) = req.expires_in {
        if claims.contains_key("exp") {
            return Err(RequestError::Invalid("the claims already have exp; leave out --expires-in".into()));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let secs = i64::try_from(secs).map_err(|_| RequestError::Invalid("expires_in is too large".into()))?;
        claims.entry("iat").or_insert(Value::from(now));
        claims.insert("exp".into(), Value::from(now.saturating_add(secs)));
    }
    let payload = serde_json::to_vec(&claims).map_err(|e| RequestError::Invalid(e.to_string()))?;
    jws_sign(
        ctx,
        JwsSign {
            signers: vec![(req.key, req.algorithm)],
            kid: req.kid,
            header: Some(br#"{"typ":"JWT"}"#.to_vec()),
            serialization: Serialization::Compact,
            detached: false,
            b64: true,
            payload: Input::Bytes(&payload),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_reader_matches_the_one_shot_encoding() {
        for len in [0usize, 1, 2, 3, 4, 5, 100, 49_151, 49_152, 49_153, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut out = String::new();
            B64Reader::new(Cursor::new(&data)).read_to_string(&mut out).unwrap();
            assert_eq!(out, jws::b64(&data), "{len}");
        }
    }
}
