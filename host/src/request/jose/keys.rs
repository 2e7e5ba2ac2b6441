//! Which keys a JWS or JWT is checked with: given keys (PEM, DER, JWK, JWK Set) classified
//! strictly, or trust anchors; and the JWK Set the config publishes.

use cryptohost_client::api;
use serde_json::Value;

use std::path::PathBuf;

use super::super::verify::{TrustSpec, trusted};
use super::{Context, RequestError};
use crate::alg::{self, Family, KeyKind};
use crate::jose::jwk;
use crate::jose::jws::JoseKey;

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
            let bytes = super::super::verify::public_key_bytes(&format!("public_keys[{i}]"), &k.public_key)?;
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
pub(super) fn jose_trust(
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
