//! JWS (RFC 7515) and unencoded payloads (RFC 7797): reading the three serializations under the
//! header rules, building them, and deciding which trusted key may check which signature. The
//! signature bytes are never made or checked here: the request layer hands the signing input to
//! the registry (a component or the HSM), as for every other signature.
//!
//! The rules, each refusal naming its own:
//! - the algorithm comes from the key: `none`, an HMAC `alg`, an `alg` the key's type cannot
//!   have, or one the key's own `alg` (JWK, anchor) disagrees with is "algorithm confusion";
//! - `crit` and `b64` only in the protected header; `crit` non-empty, listing only names this
//!   host understands (`b64`), none of the registered ones, each present; `b64` only inside
//!   `crit`; protected and unprotected names disjoint (RFC 7515 section 7.2.1);
//! - `alg` from the protected header; an `alg` only in the unprotected header (RFC 7520 section
//!   4.8 signs one that way) is taken only by a key that fixes its own algorithm, so it never
//!   chooses anything;
//! - `jku`, `x5u`, `jwk` and `x5c` are never fetched or trusted as keys;
//! - duplicate members refused at any depth, base64url strictly without padding, every size
//!   bounded before it is decoded;
//! - JWE (five parts, `enc`, `zip`, `recipients`) is out of scope and refused by name.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::alg::{self, Family, SignatureAlgorithm};

/// The largest protected or unprotected header accepted (decoded JSON).
pub const MAX_HEADER: usize = 16 << 10;

/// Header parameter names RFC 7515, 7516 and 7518 define: never allowed in `crit`.
const REGISTERED: [&str; 20] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc", "zip", "epk", "apu",
    "apv", "iv", "tag", "p2s", "p2c",
];

/// Header parameters that would name a key to trust: read never, noted when present.
const KEY_CARRIERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// What is wrong with a JWS (always an unusable request: a bad signature is not an error).
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("JWS: {0}")]
    Malformed(String),
    #[error("{0}")]
    OutOfScope(String),
    #[error("JWS: {what} is {size} bytes; at most {limit} are accepted{hint}")]
    TooLarge { what: &'static str, size: usize, limit: usize, hint: &'static str },
}

fn malformed(message: impl Into<String>) -> JwsError {
    JwsError::Malformed(message.into())
}

/// The three serializations of RFC 7515 section 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serialization {
    Compact,
    Flattened,
    General,
}

impl Serialization {
    /// `compact`, `flattened` or `general`.
    ///
    /// # Errors
    /// Any other name.
    pub fn parse(name: &str) -> Result<Serialization, String> {
        match name {
            "compact" => Ok(Serialization::Compact),
            "flattened" => Ok(Serialization::Flattened),
            "general" => Ok(Serialization::General),
            other => Err(format!("serialization {other:?} is not compact, flattened or general")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Serialization::Compact => "compact",
            Serialization::Flattened => "flattened",
            Serialization::General => "general",
        }
    }
}

/// The limits a JWS is read under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest payload (decoded).
    pub max_payload: usize,
    /// The most signatures in a JSON serialization ([dsse] max_signatures).
    pub max_signatures: usize,
}

impl Limits {
    /// The largest JWS text worth parsing: the payload as base64url, plus headers and
    /// signatures.
    pub fn max_token(&self) -> usize {
        self.max_payload / 3 * 4 + 4 + self.max_signatures.saturating_mul(2 * MAX_HEADER + 2048) + 1024
    }
}

/// One signature's JOSE header.
#[derive(Clone, Debug)]
pub struct Header {
    /// The protected header exactly as it appears (base64url); empty when there is none.
    pub protected_b64: String,
    pub protected: Map<String, Value>,
    /// The unprotected header (JSON serializations only).
    pub unprotected: Map<String, Value>,
    /// `alg` as given.
    pub alg: String,
    /// Whether `alg` is integrity protected.
    pub alg_protected: bool,
    /// RFC 7797: false when the payload is not base64url-encoded in the signing input.
    pub b64: bool,
    pub kid: Option<String>,
}

/// One signature of a JWS.
#[derive(Clone, Debug)]
pub struct Signature {
    pub header: Header,
    pub signature: Vec<u8>,
}

/// The payload of a JWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// In the JWS: `encoded` as it appears in the signing input (base64url, or the payload
    /// itself when b64 is false; borrowed from a compact JWS, never copied), checked to decode.
    Embedded { encoded: Cow<'a, [u8]>, b64: bool },
    /// Detached (RFC 7515 appendix F): the verifier supplies it.
    Detached,
}

/// A parsed JWS.
#[derive(Clone, Debug)]
pub struct Jws<'a> {
    pub serialization: Serialization,
    pub payload: Payload<'a>,
    pub signatures: Vec<Signature>,
}

fn unb64(what: &str, text: &[u8]) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(text).map_err(|e| malformed(format!("{what} is not base64url without padding: {e}")))
}

/// base64url without padding (RFC 7515 section 2).
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn header_object(what: &str, bytes: &[u8]) -> Result<Map<String, Value>, JwsError> {
    match super::json::parse(bytes, MAX_HEADER, what).map_err(malformed)? {
        Value::Object(m) => Ok(m),
        _ => Err(malformed(format!("{what} is not a JSON object"))),
    }
}

/// The protected header from its base64url text, size checked before decoding.
fn protected_header(text: &[u8]) -> Result<Map<String, Value>, JwsError> {
    if text.len() > MAX_HEADER / 3 * 4 + 4 {
        return Err(JwsError::TooLarge {
            what: "the protected header",
            size: text.len() / 4 * 3,
            limit: MAX_HEADER,
            hint: "",
        });
    }
    let bytes = unb64("the protected header", text)?;
    header_object("the protected header", &bytes)
}

/// Applies the header rules to one signature's headers.
///
/// # Errors
/// A rule broken (named), or a JWE.
fn header(protected_b64: &[u8], unprotected: Option<Map<String, Value>>) -> Result<Header, JwsError> {
    let protected = if protected_b64.is_empty() { Map::new() } else { protected_header(protected_b64)? };
    let unprotected = unprotected.unwrap_or_default();
    if protected.is_empty() && unprotected.is_empty() {
        return Err(malformed("a signature has neither a protected nor an unprotected header"));
    }
    if let Some(name) = protected.keys().find(|k| unprotected.contains_key(*k)) {
        return Err(malformed(format!(
            "header parameter {name:?} is in both the protected and the unprotected header (RFC 7515 section 7.2.1: \
             they must be disjoint)"
        )));
    }
    for jwe in ["enc", "zip"] {
        if protected.contains_key(jwe) || unprotected.contains_key(jwe) {
            return Err(JwsError::OutOfScope(format!(
                "the header has {jwe:?}: this is a JWE (or asks for compression), and JWE is out of scope here"
            )));
        }
    }
    for only_protected in ["crit", "b64"] {
        if unprotected.contains_key(only_protected) {
            return Err(malformed(format!(
                "{only_protected:?} must be in the protected header (RFC 7515 section 4.1.11, RFC 7797 section 3), \
                 not the unprotected one"
            )));
        }
    }
    let crit = match protected.get("crit") {
        None => Vec::new(),
        Some(Value::Array(names)) => {
            if names.is_empty() {
                return Err(malformed("crit is empty (RFC 7515 section 4.1.11: producers must not use [])"));
            }
            let mut out: Vec<&str> = Vec::new();
            for n in names {
                let n = n.as_str().ok_or_else(|| malformed("crit holds a non-string"))?;
                if out.contains(&n) {
                    return Err(malformed(format!("crit lists {n:?} twice (RFC 7515 section 4.1.11)")));
                }
                if REGISTERED.contains(&n) {
                    return Err(malformed(format!(
                        "crit lists {n:?}, a header parameter RFC 7515/7518 define (RFC 7515 section 4.1.11)"
                    )));
                }
                if n != "b64" {
                    return Err(malformed(format!(
                        "crit lists {n:?}, an extension this host does not understand (RFC 7515 section 4.1.11: the \
                         JWS must be refused)"
                    )));
                }
                if !protected.contains_key(n) {
                    return Err(malformed(format!("crit lists {n:?}, which the header does not carry")));
                }
                out.push(n);
            }
            out
        }
        Some(_) => return Err(malformed("crit is not an array of names")),
    };
    let b64 = match protected.get("b64") {
        None => true,
        Some(Value::Bool(b)) if crit.contains(&"b64") => *b,
        Some(Value::Bool(_)) => {
            return Err(malformed("b64 is present but not listed in crit (RFC 7797 section 6 requires it there)"));
        }
        Some(_) => return Err(malformed("b64 is not a boolean")),
    };
    let (alg, alg_protected) = match (protected.get("alg"), unprotected.get("alg")) {
        (Some(Value::String(a)), _) => (a.clone(), true),
        (None, Some(Value::String(a))) => (a.clone(), false),
        (None, None) => return Err(malformed("a signature's header has no alg")),
        _ => return Err(malformed("alg is not a string")),
    };
    let kid = match protected.get("kid").or_else(|| unprotected.get("kid")) {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(malformed("kid is not a string")),
    };
    Ok(Header {
        protected_b64: String::from_utf8(protected_b64.to_vec()).map_err(|_| malformed("the header is not ASCII"))?,
        protected,
        unprotected,
        alg,
        alg_protected,
        b64,
        kid,
    })
}

impl Header {
    /// The header parameters that would name a key to trust, present here (never used).
    pub fn key_carriers(&self) -> Vec<&'static str> {
        KEY_CARRIERS
            .iter()
            .copied()
            .filter(|k| self.protected.contains_key(*k) || self.unprotected.contains_key(*k))
            .collect()
    }

    /// The start of the signing input: `BASE64URL(protected) || '.'`.
    pub fn signing_prefix(&self) -> Vec<u8> {
        let mut out = self.protected_b64.as_bytes().to_vec();
        out.push(b'.');
        out
    }
}

/// Checks that a payload is within the limit and, when encoded, decodes: in chunks, so that a
/// large one is never decoded whole just to be checked.
fn check_payload(encoded: &[u8], b64: bool, limits: &Limits) -> Result<(), JwsError> {
    let size = if b64 { encoded.len() / 4 * 3 } else { encoded.len() };
    if size > limits.max_payload {
        return Err(JwsError::TooLarge {
            what: "the payload",
            size,
            limit: limits.max_payload,
            hint: " ([dsse] max_payload_mib)",
        });
    }
    if b64 {
        let mut out = [0u8; 3072];
        for chunk in encoded.chunks(4096) {
            URL_SAFE_NO_PAD
                .decode_slice(chunk, &mut out)
                .map_err(|e| malformed(format!("the payload is not base64url without padding: {e}")))?;
        }
    }
    Ok(())
}

impl Payload<'_> {
    /// The payload's bytes (decoded when it is base64url); `None` when detached.
    ///
    /// # Errors
    /// Never for a payload [`parse`] accepted.
    pub fn bytes(&self) -> Result<Option<Vec<u8>>, JwsError> {
        match self {
            Payload::Embedded { encoded, b64: true } => unb64("the payload", encoded).map(Some),
            Payload::Embedded { encoded, b64: false } => Ok(Some(encoded.to_vec())),
            Payload::Detached => Ok(None),
        }
    }
}

/// Reads a JWS in any serialization (JSON when it starts with `{`); `detached` says the
/// verifier has the payload, so the JWS must not carry one.
///
/// # Errors
/// Over a limit, a rule broken (named), a JWE, or a payload present and detached given.
pub fn parse<'a>(text: &'a [u8], limits: &Limits, detached: bool) -> Result<Jws<'a>, JwsError> {
    if text.len() > limits.max_token() {
        return Err(JwsError::TooLarge { what: "the JWS", size: text.len(), limit: limits.max_token(), hint: "" });
    }
    let text = text.trim_ascii();
    if text.first() == Some(&b'{') { parse_json(text, limits, detached) } else { parse_compact(text, limits, detached) }
}

fn parse_compact<'a>(text: &'a [u8], limits: &Limits, detached: bool) -> Result<Jws<'a>, JwsError> {
    if text.is_empty() {
        return Err(malformed("the JWS is empty"));
    }
    if let Some(b) = text.iter().find(|b| !b.is_ascii_graphic()) {
        return Err(malformed(format!("a compact JWS is printable ASCII; it holds byte 0x{b:02x}")));
    }
    let parts: Vec<&[u8]> = text.split(|b| *b == b'.').collect();
    match parts.len() {
        3 => {}
        5 => return Err(JwsError::OutOfScope("five parts: this is a JWE, and JWE is out of scope here".into())),
        n => return Err(malformed(format!("a compact JWS has 3 parts separated by '.'; this one has {n}"))),
    }
    if parts[0].is_empty() {
        return Err(malformed("the protected header is empty (a compact JWS must carry alg in it)"));
    }
    let header = header(parts[0], None)?;
    let payload = match (parts[1].is_empty(), detached) {
        (true, true) => Payload::Detached,
        (false, true) => {
            return Err(malformed(
                "the JWS carries a payload; a detached payload is for a JWS whose payload part is empty",
            ));
        }
        (_, false) => {
            check_payload(parts[1], header.b64, limits)?;
            Payload::Embedded { encoded: Cow::Borrowed(parts[1]), b64: header.b64 }
        }
    };
    let signature = unb64("the signature", parts[2])?;
    Ok(Jws { serialization: Serialization::Compact, payload, signatures: vec![Signature { header, signature }] })
}

fn string_member<'a>(obj: &'a Map<String, Value>, name: &str, what: &str) -> Result<Option<&'a str>, JwsError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!("{what}: {name:?} is not a string"))),
    }
}

fn signature_object(obj: &Map<String, Value>, what: &str) -> Result<Signature, JwsError> {
    let protected = string_member(obj, "protected", what)?.unwrap_or_default();
    let unprotected = match obj.get("header") {
        None => None,
        Some(Value::Object(h)) => {
            let size = serde_json::to_vec(h).map_or(usize::MAX, |v| v.len());
            if size > MAX_HEADER {
                return Err(JwsError::TooLarge { what: "an unprotected header", size, limit: MAX_HEADER, hint: "" });
            }
            Some(h.clone())
        }
        Some(_) => return Err(malformed(format!("{what}: \"header\" is not an object"))),
    };
    let header = header(protected.as_bytes(), unprotected)?;
    let sig =
        string_member(obj, "signature", what)?.ok_or_else(|| malformed(format!("{what} has no \"signature\"")))?;
    Ok(Signature { header, signature: unb64("a signature", sig.as_bytes())? })
}

fn parse_json(text: &[u8], limits: &Limits, detached: bool) -> Result<Jws<'static>, JwsError> {
    let mut value = super::json::parse(text, limits.max_token(), "the JWS").map_err(malformed)?;
    let obj = value.as_object_mut().ok_or_else(|| malformed("the JWS is not a JSON object"))?;
    // The payload is taken out of the document, not copied.
    let payload = match obj.remove("payload") {
        None => None,
        Some(Value::String(p)) => Some(p),
        Some(_) => return Err(malformed("the JWS: \"payload\" is not a string")),
    };
    let obj = &*obj;
    for jwe in ["recipients", "ciphertext", "encrypted_key", "iv", "tag"] {
        if obj.contains_key(jwe) {
            return Err(JwsError::OutOfScope(format!("{jwe:?}: this is a JWE, and JWE is out of scope here")));
        }
    }
    let general = obj.contains_key("signatures");
    let flattened = ["protected", "header", "signature"].iter().any(|k| obj.contains_key(*k));
    let (serialization, signatures) = match (general, flattened) {
        (true, true) => {
            return Err(malformed("a JSON JWS is either general (signatures) or flattened (signature), not both"));
        }
        (false, false) => return Err(malformed("a JSON JWS needs \"signatures\" or \"signature\"")),
        (false, true) => (Serialization::Flattened, vec![signature_object(obj, "the JWS")?]),
        (true, false) => {
            let list = obj["signatures"].as_array().ok_or_else(|| malformed("\"signatures\" is not an array"))?;
            if list.is_empty() {
                return Err(malformed("\"signatures\" is empty"));
            }
            if list.len() > limits.max_signatures {
                return Err(malformed(format!(
                    "the JWS carries {} signatures; at most {} are accepted ([dsse] max_signatures)",
                    list.len(),
                    limits.max_signatures
                )));
            }
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                let what = format!("signatures[{i}]");
                let s = s.as_object().ok_or_else(|| malformed(format!("{what} is not an object")))?;
                out.push(signature_object(s, &what)?);
            }
            (Serialization::General, out)
        }
    };
    let b64 = signatures[0].header.b64;
    if signatures.iter().any(|s| s.header.b64 != b64) {
        return Err(malformed("the signatures disagree on b64 (RFC 7797 section 3: one payload, one encoding)"));
    }
    let payload = match (payload, detached) {
        (None, true) => Payload::Detached,
        (Some(_), true) => {
            return Err(malformed("the JWS carries a payload; a detached payload is for a JWS without one"));
        }
        (None, false) => return Err(malformed("the JWS has no payload, and no detached payload was given")),
        (Some(p), false) => {
            check_payload(p.as_bytes(), b64, limits)?;
            Payload::Embedded { encoded: Cow::Owned(p.into_bytes()), b64 }
        }
    };
    Ok(Jws { serialization, payload, signatures })
}

/// Why a signature's `alg` is never verified, or the algorithm it names.
///
/// # Errors
/// `none`, HMAC, ML-DSA (no JOSE registration), a JWE algorithm or an unknown name: the
/// reason, for the report.
pub fn signature_alg(name: &str) -> Result<&'static SignatureAlgorithm, String> {
    let known = if name == "Ed25519" { alg::signature("EdDSA") } else { alg::signature(name) };
    match (name, known) {
        ("none", _) => Err("algorithm confusion: alg \"none\" is never accepted".into()),
        ("HS256" | "HS384" | "HS512", _) => Err(format!(
            "algorithm confusion: {name} is an HMAC alg, never verified with a public key (HMAC is unsupported here)"
        )),
        (_, Some(a)) if a.family == Family::MlDsa => {
            Err(format!("{name}: ML-DSA has no JOSE registration with test vectors yet (an Internet-Draft); refused"))
        }
        (_, Some(a)) => Ok(a),
        _ if name.starts_with("RSA") || name.starts_with("ECDH") || name.starts_with('A') || name == "dir" => {
            Err(format!("{name:?} is a JWE algorithm, and JWE is out of scope here"))
        }
        _ => Err(format!("unknown alg {name:?} (refused: the algorithm comes from the key, never the token alone)")),
    }
}

/// The length of a JOSE ECDSA signature: R || S, each the curve's size (RFC 7518 section 3.4).
pub fn ecdsa_length(alg: &SignatureAlgorithm) -> Option<usize> {
    match alg.key_type? {
        "P-256" => Some(64),
        "P-384" => Some(96),
        "P-521" => Some(132),
        _ => None,
    }
}

/// The protected header a signer writes: `alg`, `kid`, the caller's extra members, and for an
/// unencoded payload `b64: false` with `crit: ["b64"]`.
///
/// # Errors
/// Extra members that would override `alg`, `kid`, `crit` or `b64`, or name a key to trust.
pub fn protected_for(alg: &str, kid: Option<&str>, extra: &Map<String, Value>, b64: bool) -> Result<String, JwsError> {
    for name in ["alg", "kid", "crit", "b64", "enc", "zip", "jku", "x5u", "jwk", "x5c"] {
        if extra.contains_key(name) {
            return Err(malformed(format!(
                "--header may not set {name:?} (alg, kid and b64 have their own options; crit is written by the \
                 host; jku, x5u, jwk, x5c would name a key no verifier here trusts)"
            )));
        }
    }
    let mut header = extra.clone();
    header.insert("alg".into(), Value::String(alg.into()));
    if let Some(k) = kid {
        header.insert("kid".into(), Value::String(k.into()));
    }
    if !b64 {
        header.insert("b64".into(), Value::Bool(false));
        header.insert("crit".into(), Value::Array(vec![Value::String("b64".into())]));
    }
    let json = serde_json::to_string(&header).map_err(|e| malformed(e.to_string()))?;
    if json.len() > MAX_HEADER {
        return Err(JwsError::TooLarge { what: "the protected header", size: json.len(), limit: MAX_HEADER, hint: "" });
    }
    Ok(self::b64(json.as_bytes()))
}

/// The payload as it goes into a JWS that carries it, checked for what its serialization
/// allows (RFC 7797 section 5: an unencoded compact payload holds no '.'; in JSON it is a
/// string).
///
/// # Errors
/// An unencoded payload a serialization cannot carry.
pub fn embedded_payload(payload: &[u8], b64: bool, serialization: Serialization) -> Result<String, JwsError> {
    if b64 {
        return Ok(self::b64(payload));
    }
    let text = std::str::from_utf8(payload).map_err(|_| {
        malformed("an unencoded payload (b64=false) that is not UTF-8 can only be detached (--detached)")
    })?;
    if serialization == Serialization::Compact && (text.contains('.') || !text.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(malformed(
            "an unencoded payload in a compact JWS may hold no '.' and only printable ASCII (RFC 7797 section 5.2): \
             detach it (--detached) or use a JSON serialization",
        ));
    }
    Ok(text.to_string())
}

/// One signature as written: its protected header (base64url), unprotected header, signature.
pub struct Written {
    pub protected_b64: String,
    pub signature: Vec<u8>,
}

/// The JWS text: a compact token, or JSON (flattened or general). `payload` is `None` when
/// detached.
///
/// # Errors
/// Several signatures in a serialization that holds one.
pub fn serialize(
    serialization: Serialization,
    payload: Option<&str>,
    signatures: &[Written],
) -> Result<String, JwsError> {
    let one = || -> Result<&Written, JwsError> {
        match signatures {
            [s] => Ok(s),
            _ => Err(malformed(format!(
                "{} signatures need the general JSON serialization (--serialization general)",
                signatures.len()
            ))),
        }
    };
    let entry = |s: &Written| {
        let mut m = Map::new();
        m.insert("protected".into(), Value::String(s.protected_b64.clone()));
        m.insert("signature".into(), Value::String(b64(&s.signature)));
        m
    };
    let with_payload = |mut m: Map<String, Value>| {
        if let Some(p) = payload {
            m.insert("payload".into(), Value::String(p.into()));
        }
        Value::Object(m).to_string()
    };
    Ok(match serialization {
        Serialization::Compact => {
            let s = one()?;
            format!("{}.{}.{}", s.protected_b64, payload.unwrap_or_default(), b64(&s.signature))
        }
        Serialization::Flattened => with_payload(entry(one()?)),
        Serialization::General => {
            let mut m = Map::new();
            m.insert("signatures".into(), Value::Array(signatures.iter().map(|s| Value::Object(entry(s))).collect()));
            with_payload(m)
        }
    })
}

/// A key a JWS may be verified with.
#[derive(Clone, Debug)]
pub struct JoseKey {
    /// How reports name it.
    pub name: String,
    /// `sha256:` + hex of the SPKI: what makes two keys one.
    pub fingerprint: String,
    pub spki: Vec<u8>,
    /// The algorithms this key verifies: one when the key, its JWK `alg` or its anchor decides
    /// it; RS*/PS* for an RSA key that says nothing.
    pub algorithms: Vec<&'static str>,
    /// What a signature's `kid` may match: the JWK `kid` or anchor key id, the fingerprint and
    /// the RFC 7638 thumbprint.
    pub hints: Vec<String>,
}

/// Which keys may check a signature with `alg`, or why none may (for the report).
///
/// # Errors
/// No key can have the algorithm (algorithm confusion), or the algorithm is unprotected and no
/// key fixes its own.
pub fn candidates<'k>(
    keys: &'k [JoseKey],
    header: &Header,
    alg: &SignatureAlgorithm,
) -> Result<Vec<&'k JoseKey>, String> {
    let fitting: Vec<&JoseKey> = keys.iter().filter(|k| k.algorithms.contains(&alg.name)).collect();
    if fitting.is_empty() {
        let have: Vec<String> = keys.iter().map(|k| format!("{} ({})", k.name, k.algorithms.join("/"))).collect();
        return Err(format!(
            "algorithm confusion: alg {} is not an algorithm of any trusted key: {}",
            header.alg,
            have.join(", ")
        ));
    }
    let fitting: Vec<&JoseKey> =
        if header.alg_protected { fitting } else { fitting.into_iter().filter(|k| k.algorithms.len() == 1).collect() };
    if fitting.is_empty() {
        return Err(format!(
            "alg {} is only in the unprotected header, and no trusted key fixes its own algorithm (give the key's \
             algorithm, ALG:FILE or a JWK alg)",
            header.alg
        ));
    }
    let named: Vec<&JoseKey> = match &header.kid {
        Some(kid) => fitting.iter().copied().filter(|k| k.hints.contains(kid)).collect(),
        None => Vec::new(),
    };
    // The kid is an unprotected hint at worst: it narrows which keys are tried, never which
    // are trusted.
    Ok(if named.is_empty() { fitting } else { named })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_payload: 1 << 20, max_signatures: 16 }
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.AAAA", b64(header.as_bytes()), payload)
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes(), &limits(), false).unwrap_err().to_string()
    }

    #[test]
    fn header_rules_name_themselves() {
        assert!(err(&token(r#"{"alg":"ES256","crit":[]}"#, "e30")).contains("crit is empty"));
        assert!(err(&token(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, "e30")).contains("does not understand"));
        assert!(err(&token(r#"{"alg":"ES256","crit":["alg"]}"#, "e30")).contains("RFC 7515/7518 define"));
        assert!(err(&token(r#"{"alg":"ES256","crit":["b64"]}"#, "e30")).contains("does not carry"));
        assert!(err(&token(r#"{"alg":"ES256","b64":false}"#, "e30")).contains("not listed in crit"));
        assert!(err(&token(r#"{"alg":"ES256","alg":"none"}"#, "e30")).contains("given twice"));
        assert!(err(&token(r#"{"alg":"A128KW","enc":"A128GCM"}"#, "e30")).contains("JWE is out of scope"));
        assert!(err("a.b.c.d.e").contains("JWE"));
        assert!(err("a.b").contains("3 parts"));
        assert!(err(&format!("{}=.e30.AAAA", b64(br#"{"alg":"ES256"}"#))).contains("base64url"));
        let json = format!(
            r#"{{"payload":"e30","protected":"{}","header":{{"alg":"ES256"}},"signature":"AAAA"}}"#,
            b64(br#"{"alg":"ES256"}"#)
        );
        assert!(err(&json).contains("disjoint"));
        let json = r#"{"payload":"e30","header":{"alg":"ES256","crit":["b64"],"b64":false},"signature":"AAAA"}"#;
        assert!(err(json).contains("must be in the protected header"));
        let big = format!("{}.e30.AAAA", "A".repeat(MAX_HEADER * 2));
        assert!(err(&big).contains("protected header is"));
    }

    #[test]
    fn unencoded_payloads_and_serializations() {
        let h = protected_for("ES256", Some("k1"), &Map::new(), false).unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&h).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg":"ES256","kid":"k1","b64":false,"crit":["b64"]}));
        assert!(embedded_payload(b"$.02", false, Serialization::Compact).unwrap_err().to_string().contains("5.2"));
        assert_eq!(embedded_payload(b"$.02", false, Serialization::Flattened).unwrap(), "$.02");
        let w = [Written { protected_b64: h.clone(), signature: vec![1, 2, 3] }];
        let compact = serialize(Serialization::Compact, None, &w).unwrap();
        assert_eq!(compact, format!("{h}..AQID"));
        let jws = parse(compact.as_bytes(), &limits(), true).unwrap();
        assert_eq!(jws.payload, Payload::Detached);
        assert!(!jws.signatures[0].header.b64);
        let two = [
            Written { protected_b64: h.clone(), signature: vec![1] },
            Written { protected_b64: h, signature: vec![2] },
        ];
        assert!(serialize(Serialization::Flattened, Some("x"), &two).is_err());
        let general = serialize(Serialization::General, Some("$.02"), &two).unwrap();
        let jws = parse(general.as_bytes(), &limits(), false).unwrap();
        assert_eq!(jws.signatures.len(), 2);
        assert_eq!(jws.payload, Payload::Embedded { encoded: Cow::Borrowed(b"$.02"), b64: false });
        assert_eq!(jws.payload.bytes().unwrap().unwrap(), b"$.02");
    }

    #[test]
    fn algorithms_from_the_token_alone_are_refused() {
        assert!(signature_alg("none").unwrap_err().contains("algorithm confusion"));
        assert!(signature_alg("HS256").unwrap_err().contains("HMAC"));
        assert!(signature_alg("ML-DSA-65").unwrap_err().contains("ML-DSA"));
        assert!(signature_alg("RSA-OAEP").unwrap_err().contains("JWE"));
        assert_eq!(signature_alg("Ed25519").unwrap().name, "EdDSA");
        assert_eq!(ecdsa_length(signature_alg("ES512").unwrap()), Some(132));
    }
}
