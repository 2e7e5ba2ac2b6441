//! JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037 for Ed25519) to and from the SPKI
//! every other key of the host is, and the RFC 7638 thumbprint. A JWK becomes an SPKI through
//! the checks below and then the host's one strict key classifier (`alg::key_kind`): EC points
//! on their curve, RSA of at least 2048 bits with an odd exponent, base64url without padding,
//! nothing private in a public key, an `alg` the key's type can have.
//!
//! ML-DSA keys have no JWK here: their key type (`AKP`) is an Internet-Draft without an RFC and
//! its test vectors, so such a JWK is refused by name rather than guessed at.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::Digest as _;
use spki::der::{Decode, Encode};

use crate::alg::{self, Family, KeyKind};

/// The largest JWK or JWK Set read.
pub const MAX_JWKS_BYTES: usize = 256 << 10;

/// The most keys one JWK Set may hold.
pub const MAX_KEYS: usize = 64;

/// Members that carry private or secret key material (RFC 7518 sections 6.2.2, 6.3.2, 6.4;
/// RFC 8037 `d`): never accepted where a public key is expected.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A public key read from a JWK, with the members that constrain its use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwkKey {
    /// DER SubjectPublicKeyInfo, as every other public key of the host.
    pub spki: Vec<u8>,
    pub kid: Option<String>,
    /// The JWK's `alg`, checked against the key's type (`Ed25519` is read as `EdDSA`).
    pub alg: Option<String>,
    /// `use` (`sig` or `enc`).
    pub use_: Option<String>,
    pub key_ops: Option<Vec<String>>,
}

impl JwkKey {
    /// Whether this key may verify signatures (`use` absent or `sig`, `key_ops` absent or
    /// naming `verify`).
    pub fn verifies(&self) -> bool {
        self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.key_ops.as_ref().is_none_or(|ops| ops.iter().any(|o| o == "verify"))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64url without padding, strictly (no padding, no other alphabet, no stray bits).
fn unb64(member: &str, text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(text).map_err(|e| format!("member {member:?} is not base64url without padding: {e}"))
}

fn string<'a>(jwk: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("member {member:?} is not a string")),
    }
}

fn required<'a>(jwk: &'a Map<String, Value>, member: &str) -> Result<&'a str, String> {
    string(jwk, member)?.ok_or_else(|| format!("member {member:?} is missing"))
}

/// The coordinate size of a NIST curve, and its SEC1 point checked on the curve.
fn ec_spki(crv: &str, x: &[u8], y: &[u8]) -> Result<Vec<u8>, String> {
    use p256::pkcs8::EncodePublicKey;
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        other => return Err(format!("crv {other:?} is not P-256, P-384 or P-521")),
    };
    if x.len() != size || y.len() != size {
        return Err(format!("{crv} coordinates must be {size} bytes each (got {} and {})", x.len(), y.len()));
    }
    let mut point = vec![0x04];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let off = || format!("the point is not on {crv}");
    let der = match crv {
        "P-256" => p256::PublicKey::from_sec1_bytes(&point).map_err(|_| off())?.to_public_key_der(),
        "P-384" => p384::PublicKey::from_sec1_bytes(&point).map_err(|_| off())?.to_public_key_der(),
        _ => p521::PublicKey::from_sec1_bytes(&point).map_err(|_| off())?.to_public_key_der(),
    };
    der.map(|d| d.as_bytes().to_vec()).map_err(|e| format!("encoding the {crv} key: {e}"))
}

/// An RSA SPKI from `n` and `e` (minimal big-endian, as RFC 7518 section 6.3.1 requires).
fn rsa_spki(n: &[u8], e: &[u8]) -> Result<Vec<u8>, String> {
    if n.first() == Some(&0) || e.first() == Some(&0) {
        return Err("n and e must use the minimum number of octets (no leading zero)".into());
    }
    if e.len() > 8 || e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
        return Err("e must be an odd public exponent greater than 1".into());
    }
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if bits < 2048 {
        return Err(format!("a {bits}-bit RSA key; at least 2048 bits are required"));
    }
    let bad = |e: spki::der::Error| format!("encoding the RSA key: {e}");
    let key = pkcs1::RsaPublicKey {
        modulus: spki::der::asn1::UintRef::new(n).map_err(bad)?,
        public_exponent: spki::der::asn1::UintRef::new(e).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)?;
    spki::SubjectPublicKeyInfoRef {
        algorithm: pkcs1::ALGORITHM_ID,
        subject_public_key: spki::der::asn1::BitStringRef::from_bytes(&key).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// The DER prefix of an Ed25519 SPKI (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Reads one public JWK.
///
/// # Errors
/// Not an object, a private member, an unknown or unsupported key type or curve, a bad
/// encoding, a point off its curve, a small RSA key, or an `alg` the key cannot have.
pub fn to_spki(jwk: &Value) -> Result<JwkKey, String> {
    let jwk = jwk.as_object().ok_or("a JWK must be a JSON object")?;
    if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!("the member {m:?} is private key material: a public key is expected (refused)"));
    }
    let spki = match required(jwk, "kty")? {
        "EC" => {
            let crv = required(jwk, "crv")?;
            ec_spki(crv, &unb64("x", required(jwk, "x")?)?, &unb64("y", required(jwk, "y")?)?)?
        }
        "RSA" => rsa_spki(&unb64("n", required(jwk, "n")?)?, &unb64("e", required(jwk, "e")?)?)?,
        "OKP" => match required(jwk, "crv")? {
            "Ed25519" => {
                let x = unb64("x", required(jwk, "x")?)?;
                if x.len() != 32 {
                    return Err(format!("an Ed25519 key is 32 bytes, not {}", x.len()));
                }
                [ED25519_SPKI_PREFIX.as_slice(), &x].concat()
            }
            other => return Err(format!("OKP crv {other:?} is not supported (only Ed25519 signs here)")),
        },
        "oct" => return Err("kty \"oct\" is a secret key: HMAC is never used with public keys (refused)".into()),
        "AKP" => {
            return Err("kty \"AKP\" (ML-DSA, an Internet-Draft with no RFC and test vectors yet) is refused; \
                 give the ML-DSA key as an SPKI (RFC 9881) PEM"
                .into());
        }
        other => return Err(format!("kty {other:?} is not EC, RSA or OKP")),
    };
    let kind = alg::key_kind(&spki)?;
    let alg = match string(jwk, "alg")? {
        None => None,
        Some(a) => Some(checked_alg(kind, a)?),
    };
    let key_ops = match jwk.get("key_ops") {
        None => None,
        Some(Value::Array(ops)) => Some(
            ops.iter()
                .map(|o| o.as_str().map(str::to_string).ok_or("key_ops holds a non-string".to_string()))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err("member \"key_ops\" is not an array".into()),
    };
    Ok(JwkKey {
        spki,
        kid: string(jwk, "kid")?.map(str::to_string),
        alg,
        use_: string(jwk, "use")?.map(str::to_string),
        key_ops,
    })
}

/// A JWK `alg` the key's type can have, in the host's spelling (`Ed25519`, RFC 9864, is
/// `EdDSA` here).
fn checked_alg(kind: KeyKind, given: &str) -> Result<String, String> {
    let name = if given == "Ed25519" { "EdDSA" } else { given };
    let known =
        alg::signature(name).ok_or_else(|| format!("alg {given:?} is not a signature algorithm this host knows"))?;
    let fits = match kind {
        KeyKind::Fixed(a) => a.name == known.name,
        KeyKind::Rsa => matches!(known.family, Family::RsaPkcs1 | Family::RsaPss),
    };
    if !fits {
        return Err(format!("alg {given:?} does not fit this key's type (algorithm confusion: refused)"));
    }
    Ok(known.name.to_string())
}

/// The public members of an SPKI as a JWK (kty and its key members only).
///
/// # Errors
/// Not a key type a JWK represents here (ML-DSA), or an SPKI that does not parse.
pub fn from_spki(spki: &[u8]) -> Result<Map<String, Value>, String> {
    let kind = alg::key_kind(spki)?;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).map_err(|e| format!("not a DER SPKI: {e}"))?;
    let raw = info.subject_public_key.raw_bytes();
    let mut jwk = Map::new();
    let mut put = |k: &str, v: String| {
        jwk.insert(k.to_string(), Value::String(v));
    };
    match kind {
        KeyKind::Rsa => {
            let key = pkcs1::RsaPublicKey::<spki::der::asn1::UintRef<'_>>::from_der(raw)
                .map_err(|e| format!("not an RSA public key: {e}"))?;
            put("kty", "RSA".into());
            put("n", b64(key.modulus.as_bytes()));
            put("e", b64(key.public_exponent.as_bytes()));
        }
        KeyKind::Fixed(a) if a.family == Family::Ecdsa => {
            let crv = a.key_type.unwrap_or_default();
            let size = (raw.len().saturating_sub(1)) / 2;
            put("kty", "EC".into());
            put("crv", crv.into());
            put("x", b64(&raw[1..1 + size]));
            put("y", b64(&raw[1 + size..]));
        }
        KeyKind::Fixed(a) if a.family == Family::EdDsa => {
            put("kty", "OKP".into());
            put("crv", "Ed25519".into());
            put("x", b64(raw));
        }
        KeyKind::Fixed(a) => {
            return Err(format!(
                "a {} key has no JWK here (its key type is an Internet-Draft without test vectors)",
                a.name
            ));
        }
    }
    Ok(jwk)
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public key: the hash of its required
/// members, in lexicographic order, with no whitespace.
///
/// # Errors
/// As [`from_spki`].
pub fn thumbprint(spki: &[u8]) -> Result<String, String> {
    let jwk = from_spki(spki)?;
    // serde_json's Map is ordered by key (no `preserve_order`), which is the order RFC 7638
    // asks for; the members are ASCII.
    let canonical = serde_json::to_string(&jwk).map_err(|e| e.to_string())?;
    Ok(b64(&sha2::Sha256::digest(canonical.as_bytes())))
}

/// A public key as a JWK for publishing: its members, `kid` (given, else the thumbprint),
/// `use: sig`, and `alg` when the key's type decides it.
///
/// # Errors
/// As [`from_spki`].
pub fn publish(spki: &[u8], kid: Option<&str>) -> Result<Map<String, Value>, String> {
    let mut jwk = from_spki(spki)?;
    let kid = match kid {
        Some(k) => k.to_string(),
        None => thumbprint(spki)?,
    };
    jwk.insert("kid".into(), Value::String(kid));
    jwk.insert("use".into(), Value::String("sig".into()));
    if let Some(a) = alg::algorithm_of_spki(spki) {
        jwk.insert("alg".into(), Value::String(a.into()));
    }
    Ok(jwk)
}

/// One JWK or a JWK Set (`{"keys": [...]}`), read strictly: duplicate members refused at any
/// depth, at most [`MAX_JWKS_BYTES`] and [`MAX_KEYS`]. In a set, one `kid` on two different
/// keys refuses the whole set (a token naming that kid could not say which key it means); the
/// same key given twice counts once.
///
/// # Errors
/// As [`to_spki`] for any key (naming which), or the set's own rules.
pub fn read_keys(bytes: &[u8]) -> Result<Vec<JwkKey>, String> {
    let value = super::json::parse(bytes, MAX_JWKS_BYTES, "the JWK")?;
    let Some(keys) = value.get("keys") else {
        return Ok(vec![to_spki(&value)?]);
    };
    let keys = keys.as_array().ok_or("a JWK Set's \"keys\" must be an array")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("a JWK Set holds 1 to {MAX_KEYS} keys; this one holds {}", keys.len()));
    }
    let mut out: Vec<JwkKey> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let key = to_spki(k).map_err(|e| format!("keys[{i}]: {e}"))?;
        if let Some(kid) = &key.kid
            && let Some(other) = out.iter().find(|o| o.kid.as_ref() == Some(kid))
            && other.spki != key.spki
        {
            return Err(format!("kid {kid:?} names two different keys in this set (refused: ambiguous)"));
        }
        if !out.contains(&key) {
            out.push(key);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// RFC 7638 section 3.1: the example RSA key and its thumbprint.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_and_rfc8037_thumbprints() {
        let rsa =
            to_spki(&jwk(&format!(r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB","alg":"RS256","kid":"2011-04-29"}}"#)))
                .unwrap();
        assert_eq!(thumbprint(&rsa.spki).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!((rsa.alg.as_deref(), rsa.kid.as_deref()), (Some("RS256"), Some("2011-04-29")));
        // RFC 8037 appendix A.2 and A.3.
        let ed = to_spki(&jwk(r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#))
            .unwrap();
        assert_eq!(thumbprint(&ed.spki).unwrap(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        // And back: the same members.
        let back = from_spki(&ed.spki).unwrap();
        assert_eq!(back["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    }

    #[test]
    fn rfc7515_es256_key_round_trips_and_is_checked_on_its_curve() {
        let text = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let key = to_spki(&jwk(text)).unwrap();
        assert_eq!(alg::algorithm_of_spki(&key.spki), Some("ES256"));
        let back = from_spki(&key.spki).unwrap();
        assert_eq!(Value::Object(back), jwk(text));
        // y changed: not on the curve.
        let off = text.replace("x_FEz", "x_FEy");
        assert!(to_spki(&jwk(&off)).unwrap_err().contains("not on P-256"));
        // Stray bits in the last character are not canonical base64url: refused.
        let stray = text.replace("a0\"}", "a1\"}");
        assert!(to_spki(&jwk(&stray)).unwrap_err().contains("not base64url"));
        // An alg the key cannot have is algorithm confusion.
        let confused = text.replace("\"kty\"", "\"alg\":\"ES384\",\"kty\"");
        assert!(to_spki(&jwk(&confused)).unwrap_err().contains("algorithm confusion"));
        let hs = text.replace("\"kty\"", "\"alg\":\"HS256\",\"kty\"");
        assert!(to_spki(&jwk(&hs)).is_err());
    }

    #[test]
    fn what_is_refused() {
        let refused = |t: &str, why: &str| {
            let e = to_spki(&jwk(t)).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        };
        refused(r#"{"kty":"oct","k":"AAAA"}"#, "private key material");
        refused(r#"{"kty":"oct"}"#, "HMAC is never used");
        refused(r#"{"kty":"AKP","alg":"ML-DSA-65","pub":"AAAA"}"#, "Internet-Draft");
        refused(r#"{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#, "only Ed25519");
        refused(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=="}"#,
            "without padding",
        );
        refused(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"x"}"#,
            "private",
        );
        refused(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#, "at least 2048 bits");
        refused(&format!(r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQA"}}"#), "odd public exponent");
        refused(&format!(r#"{{"kty":"RSA","n":"AA{RFC7638_N}","e":"AQAB"}}"#), "");
        refused(r#"{"kty":"EC","crv":"P-256K","x":"AA","y":"AA"}"#, "not P-256");
        refused(r#"[]"#, "JSON object");
    }

    #[test]
    fn sets_refuse_an_ambiguous_kid_and_duplicates() {
        let ed = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}"#;
        let ec = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"a"}"#;
        assert_eq!(read_keys(format!(r#"{{"keys":[{ed},{ed}]}}"#).as_bytes()).unwrap().len(), 1);
        let e = read_keys(format!(r#"{{"keys":[{ed},{ec}]}}"#).as_bytes()).unwrap_err();
        assert!(e.contains("names two different keys"), "{e}");
        let e = read_keys(br#"{"kty":"OKP","kty":"OKP"}"#).unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        assert!(read_keys(br#"{"keys":[]}"#).is_err());
    }
}
