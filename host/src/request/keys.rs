//! Keys and the HSM: a held key's public half, generating a named key, the HSM's key list,
//! AES-GCM with a secret key, and the HSM admin actions. Each asks the gate first and audits
//! (key uses through the key service, admin actions as events).

use cryptohost_client::api::{HsmReport, KeyListing, Plaintext, PublicKeyResponse, Sealed};

use super::sign::{event, permit, permitted_reference};
use super::{Context, RequestError, Target};
use crate::CryptoProvider;
use crate::config::Operation;
use crate::error::ProviderError;
use crate::keyref::KeyRef;

pub use cryptohost_client::HsmAction;

/// A key reference a request names, parsed (a `pkcs11:` URI's PIN never shown in the error).
///
/// # Errors
/// The reference does not parse.
pub fn parse_held_reference(text: &str) -> Result<KeyRef, RequestError> {
    Ok(KeyRef::parse(super::bounded("key", text)?)?)
}

fn pem(spki: &[u8]) -> Result<String, RequestError> {
    if spki.is_empty() {
        return Ok(String::new());
    }
    Ok(crate::keyfile::to_pem("PUBLIC KEY", spki)?.to_string())
}

/// The public key of a key. A caller needs a rule for the key with any operation: the answer
/// says the key exists.
///
/// # Errors
/// Denied, or the provider refuses.
pub fn key_public(
    ctx: &Context<'_>,
    key: &KeyRef,
    algorithm: &str,
    rsa_bits: u32,
    jwk: bool,
) -> Result<PublicKeyResponse, RequestError> {
    let any = [Operation::Sign, Operation::Encrypt, Operation::Decrypt, Operation::Generate];
    permitted_reference(ctx, key, &any, "public key")?;
    let (spki, provider) = ctx.keys()?.public_key(key, algorithm, rsa_bits)?;
    let jwk = match jwk {
        true => {
            Some(crate::jose::jwk::publish(&spki, None).map(serde_json::Value::Object).map_err(RequestError::Invalid)?)
        }
        false => None,
    };
    Ok(PublicKeyResponse { public_key: pem(&spki)?, provider, jwk })
}

/// Generates a key under a reference (refused if the HSM already holds the label); an AES key
/// for A128GCM/A256GCM, which has no public half.
///
/// # Errors
/// Denied, a file reference, or the provider refuses.
pub fn key_generate(
    ctx: &Context<'_>,
    key: &KeyRef,
    algorithm: &str,
    rsa_bits: u32,
) -> Result<PublicKeyResponse, RequestError> {
    permitted_reference(ctx, key, &[Operation::Generate], "generate")?;
    let (spki, provider) = ctx.keys()?.generate(key, algorithm, rsa_bits)?;
    Ok(PublicKeyResponse { public_key: pem(&spki)?, provider, jwk: None })
}

fn no_hsm(what: &str) -> RequestError {
    RequestError::Invalid(format!("{what}: no [hsm] is configured"))
}

/// Every private and secret key on the configured HSM tokens (admin).
///
/// # Errors
/// Denied, no HSM, or the HSM refuses.
pub fn keys_list(ctx: &Context<'_>) -> Result<Vec<KeyListing>, RequestError> {
    permit(ctx, &[Operation::Admin], Target::Any, || "admin: keys list".into())?;
    let hsm = ctx.host.hsm().ok_or_else(|| no_hsm("`keys list` lists HSM keys"))?;
    let mut listed = hsm.list_keys().map_err(RequestError::Hsm)?;
    // Each object that is a recorded key version: which, its state and its age.
    let states = ctx.host.key_states.snapshot().map_err(crate::keys::KeyError::from)?;
    let now = time::OffsetDateTime::now_utc();
    for item in &mut listed {
        let Ok(crate::keyref::KeyRef::Pkcs11(uri)) = KeyRef::parse(&item.uri) else { continue };
        let Some(label) = uri.object.as_deref() else { continue };
        let (base, version) = match label.rsplit_once("#v") {
            Some((b, n)) if crate::keyref::names_a_version(label) => (b, n.parse().unwrap_or(1)),
            _ => (label, 1),
        };
        let entry = states.keys.iter().find(|e| match KeyRef::parse(&e.key) {
            Ok(KeyRef::Pkcs11(u)) => {
                u.object.as_deref() == Some(base) && u.token.as_ref().is_none_or(|t| Some(t) == uri.token.as_ref())
            }
            _ => false,
        });
        if let Some(v) = entry.and_then(|e| e.version(version)) {
            item.version = Some(v.version);
            item.state = Some(v.state.name().to_string());
            item.age_days =
                crate::trust::parse_time(&v.created).ok().map(|c| u64::try_from((now - c).whole_days()).unwrap_or(0));
        }
    }
    Ok(listed)
}

/// The versioned header of AES-GCM output: [`SEALED_MAGIC`] and the key version (u16, big
/// endian), in front of the ciphertext and bound into the AAD (`header || aad`), so that a
/// ciphertext names the key version that sealed it and cannot be moved to another.
///
/// Detection: a ciphertext made before versions existed (no header) begins with the magic by
/// chance once in 2^32; such a ciphertext fails to authenticate as headed output and is then
/// decrypted as headerless output with version 1 (it was made before any rotation). Headed
/// output never authenticates as headerless: its AAD differs.
pub const SEALED_MAGIC: [u8; 4] = *b"chv1";
const HEADER_LEN: usize = 6;

fn sealed_header(version: u32) -> Result<[u8; HEADER_LEN], RequestError> {
    let v =
        u16::try_from(version).map_err(|_| RequestError::Invalid(format!("key version {version} is over 65535")))?;
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&SEALED_MAGIC);
    h[4..].copy_from_slice(&v.to_be_bytes());
    Ok(h)
}

/// AES-GCM encryption with a secret key (a fresh nonce from the provider). The ciphertext
/// starts with the versioned header naming the key version that sealed it.
///
/// # Errors
/// Denied, or the provider refuses.
pub fn encrypt(
    ctx: &Context<'_>,
    key: &KeyRef,
    algorithm: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Sealed, RequestError> {
    permitted_reference(ctx, key, &[Operation::Encrypt], "encrypt")?;
    input_limit(ctx, "plaintext", plaintext.len())?;
    let service = ctx.keys()?;
    // One version for the header and the key that seals, even if a promotion happens between.
    let v = service.version_of(key, crate::lifecycle::Use::Make)?;
    let header = sealed_header(v.version)?;
    let bound = [&header[..], aad].concat();
    let pinned = if v.entry.is_some() { v.shown } else { key.clone() };
    let (sealed, provider) = service.encrypt(&pinned, algorithm, plaintext, &bound)?;
    Ok(Sealed { nonce: sealed.nonce, ciphertext: [&header[..], &sealed.ciphertext].concat(), provider })
}

/// AES-GCM decryption; a wrong key, nonce, AAD or tag is a bad request. A ciphertext with the
/// versioned header is decrypted with the version it names; one without (made before key
/// versions) with version 1 (see [`SEALED_MAGIC`] for the detection rule).
///
/// # Errors
/// Denied, too short, or the ciphertext does not authenticate.
pub fn decrypt(
    ctx: &Context<'_>,
    key: &KeyRef,
    algorithm: &str,
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Plaintext, RequestError> {
    permitted_reference(ctx, key, &[Operation::Decrypt], "decrypt")?;
    input_limit(ctx, "ciphertext", ciphertext.len())?;
    let service = ctx.keys()?;
    let at = |version: u32| key.version().map_or_else(|| key.at_version(Some(version)), |_| key.clone());
    let headed = ciphertext.len() >= HEADER_LEN + 16 && ciphertext[..4] == SEALED_MAGIC;
    if headed {
        let version = u32::from(u16::from_be_bytes([ciphertext[4], ciphertext[5]]));
        let bound = [&ciphertext[..HEADER_LEN], aad].concat();
        let first = service.decrypt(&at(version), algorithm, nonce, &ciphertext[HEADER_LEN..], &bound);
        match first {
            Ok((plain, provider)) => return Ok(Plaintext { plaintext: plain.to_vec(), provider }),
            Err(e) => {
                // Headerless output that begins with the magic by chance (once in 2^32).
                return match service.decrypt(&at(1), algorithm, nonce, ciphertext, aad) {
                    Ok((plain, provider)) => Ok(Plaintext { plaintext: plain.to_vec(), provider }),
                    Err(_) => Err(e.into()),
                };
            }
        }
    }
    let (plain, provider) = service.decrypt(&at(1), algorithm, nonce, ciphertext, aad)?;
    Ok(Plaintext { plaintext: plain.to_vec(), provider })
}

/// AES-GCM here is one-shot: its input is bounded like every whole input.
fn input_limit(ctx: &Context<'_>, what: &str, len: usize) -> Result<(), RequestError> {
    let limit = ctx.config.max_payload;
    if len > limit {
        return Err(RequestError::Invalid(format!(
            "the {what} of {len} bytes is over the limit of {limit} bytes ([dsse] max_payload_mib)"
        )));
    }
    Ok(())
}

/// An HSM admin action (admin; audited as an event, and not taken unless it can be).
/// `status` never logs in: it loads the module and finds the tokens if that has not happened
/// in this process, and reports each configured token. `connect` logs in; `disconnect` never
/// does (a wrong PIN must not cost a try).
///
/// # Errors
/// Denied, no HSM, the module does not load, or a token refuses the PIN (`connect`).
pub fn hsm(ctx: &Context<'_>, action: HsmAction) -> Result<HsmReport, RequestError> {
    let name = action.name();
    permit(ctx, &[Operation::Admin], Target::Any, || format!("admin: hsm {name}"))?;
    let hsm = ctx.host.hsm().ok_or_else(|| no_hsm(&format!("hsm {name}")))?;
    let was_connected = hsm.is_connected();
    let result: Result<(), ProviderError> = match action {
        HsmAction::Status => hsm.probe(),
        HsmAction::Connect => hsm.connect(),
        HsmAction::Disconnect => {
            hsm.disconnect();
            Ok(())
        }
    };
    let outcome = match &result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    event(ctx, &format!("hsm-{name}"), outcome)?;
    result.map_err(RequestError::Hsm)?;
    Ok(HsmReport { hsm: hsm.descriptor().name.clone(), action: name.to_string(), was_connected, tokens: hsm.status() })
}

/// The caller may administer the host (reload), or the refusal is audited and returned.
///
/// # Errors
/// Denied (or the denial cannot be recorded).
pub fn permit_admin(ctx: &Context<'_>, what: &str) -> Result<(), RequestError> {
    permit(ctx, &[Operation::Admin], Target::Any, || format!("admin: {what}"))
}
