//! The key-holding and admin routes: DSSE, keys, AES-GCM, HSM admin. Each names its keys by
//! server-side references or profiles; each checks the caller's rules before any key is looked
//! up; each key use is audited with the caller, each denial and admin operation as an event.

use axum::Json;
use axum::extract::{ConnectInfo, State};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::{self, Identity, Peer, Target};
use super::api::b64_field;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::{Current, State as AppState};
use crate::audit::{EventRecord, now_rfc3339};
use crate::config::Operation;
use crate::dsse::{self, Envelope, Signer, TrustedKey};
use crate::keyref::KeyRef;
use crate::keys::KeyService;
use crate::provider::SigFormat;

fn std_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A reference a client names: parsed, never a file, its PIN (if someone typed one) never echoed.
pub(super) fn held_reference(text: &str) -> Result<KeyRef, ApiError> {
    let reference = KeyRef::parse(text)
        .map_err(|m| ApiError::bad(format!("key reference {:?}: {m}", crate::pkcs11::Pkcs11Uri::redacted(text))))?;
    if let KeyRef::File(_) = reference {
        return Err(ApiError::bad(
            "the server never opens a file a client names: use a key reference the server holds (pkcs11:, sim:) or a profile",
        ));
    }
    Ok(reference)
}

/// Audits an event (fail-closed) and hands back `then`.
fn event(state: &AppState, who: &Identity, event: &str, detail: String, then: ApiError) -> ApiError {
    let record = EventRecord { time: now_rfc3339(), event: event.into(), caller: Some(who.caller()), detail };
    match state.audit.event(&record) {
        Ok(()) => then,
        Err(e) => ApiError::internal(e.to_string()),
    }
}

/// Audits a denial (fail-closed: if the line cannot be written, 500 rather than unrecorded)
/// and returns the 403 that absent and forbidden keys share.
pub(super) fn denied(state: &AppState, who: &Identity, detail: String) -> ApiError {
    event(state, who, "denied", detail, ApiError::denied())
}

/// The caller may do `op` with this key reference, or the denial is audited and returned.
fn permit(state: &AppState, who: &Identity, op: Operation, reference: &KeyRef) -> Result<(), ApiError> {
    let canonical = reference.to_string();
    if access::allowed(&state.config.service.allow, who, op, &Target::Key(&canonical)) {
        Ok(())
    } else {
        Err(event(state, who, "denied", format!("{} with {canonical}", op.name()), ApiError::denied()))
    }
}

/// The caller, and the held key it names, once a rule lets it do `op` with that key.
fn permitted_key(state: &AppState, peer: &Peer, key: &str, op: Operation) -> Result<(Identity, KeyRef), ApiError> {
    let who = Identity::resolve(peer);
    let key = held_reference(key)?;
    permit(state, &who, op, &key)?;
    Ok((who, key))
}

fn permit_admin(state: &AppState, who: &Identity, what: &str) -> Result<(), ApiError> {
    if access::allowed(&state.config.service.allow, who, Operation::Admin, &Target::Any) {
        Ok(())
    } else {
        Err(event(state, who, "denied", format!("admin: {what}"), ApiError::denied()))
    }
}

use super::blocking;

/// The server's own trust anchors (an installed kit's, re-checked now, or `[trust] anchors`);
/// without any, the answer says to send `instead` in the request.
pub(super) fn server_anchors(
    state: &AppState,
    at: time::OffsetDateTime,
    purpose: Option<&str>,
    instead: &str,
) -> Result<crate::trust::AnchorSet, ApiError> {
    if state.config.trust_anchors.is_none() && state.config.kit.is_none() {
        return Err(ApiError::bad(format!(
            "this server has no trust anchors ([trust] anchors or [kit]); send {instead}"
        )));
    }
    crate::load::configured_anchors(&state.config, &state.host, at, purpose).map_err(ApiError::bad)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseKey {
    /// A server-side key reference.
    pub key: String,
    pub algorithm: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseSignRequest {
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    #[serde(default)]
    pub keys: Vec<DsseKey>,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Trust-anchor key ids: the profile with that `key_id` signs, and writes the id as keyid.
    #[serde(default)]
    pub key_ids: Vec<String>,
    /// ECDSA encoding: `der` (default) or `p1363`.
    pub signature_format: Option<String>,
    /// Keep the signatures that worked when one signer fails.
    #[serde(default)]
    pub allow_partial: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DsseSignResponse {
    /// The DSSE envelope.
    #[schema(value_type = Object)]
    pub envelope: serde_json::Value,
    /// Signers that failed (only with `allow_partial`).
    pub failures: Vec<String>,
}

/// Signs a payload as a DSSE envelope with every key and profile at once.
#[utoipa::path(
    post,
    path = "/v1/dsse/sign",
    request_body = DsseSignRequest,
    responses((status = 200, body = DsseSignResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn dsse_sign(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ApiJson(req): ApiJson<DsseSignRequest>,
) -> Result<Json<DsseSignResponse>, ApiError> {
    blocking(move || {
        let who = Identity::resolve(&peer);
        let payload = b64_field("payload", &req.payload)?;
        if payload.len() > state.config.max_payload {
            return Err(ApiError::bad(format!("payload of {} bytes is over the DSSE limit", payload.len())));
        }
        let mut signers = Vec::new();
        for k in &req.keys {
            let key = held_reference(&k.key)?;
            permit(&state, &who, Operation::Sign, &key)?;
            signers.push(Signer { label: key.to_string(), key, algorithm: k.algorithm.clone(), key_id: None });
        }
        for name in &req.profiles {
            if !access::allowed(&state.config.service.allow, &who, Operation::Sign, &Target::Profile(name)) {
                return Err(event(&state, &who, "denied", format!("sign with profile {name:?}"), ApiError::denied()));
            }
            let p = state.config.profiles.get(name).ok_or_else(ApiError::denied)?;
            let key = KeyRef::parse(&p.key).map_err(|_| ApiError::denied())?;
            signers.push(Signer { label: name.clone(), key, algorithm: p.algorithm.clone(), key_id: p.key_id.clone() });
        }
        for id in &req.key_ids {
            // The profile behind a key id is the server's business; the rule names the profile,
            // and an unknown key id is answered like a forbidden one.
            let found = state.config.profiles.iter().find(|(_, p)| p.key_id.as_deref() == Some(id.as_str()));
            let allowed = found.is_some_and(|(name, _)| {
                access::allowed(&state.config.service.allow, &who, Operation::Sign, &Target::Profile(name))
            });
            let Some((name, p)) = found.filter(|_| allowed) else {
                return Err(event(&state, &who, "denied", format!("sign as key id {id:?}"), ApiError::denied()));
            };
            let key = KeyRef::parse(&p.key).map_err(|_| ApiError::denied())?;
            signers.push(Signer { label: name.clone(), key, algorithm: p.algorithm.clone(), key_id: Some(id.clone()) });
        }
        if signers.is_empty() {
            return Err(ApiError::bad("nothing to sign with: give keys, profiles or key_ids"));
        }
        let format: SigFormat = req.signature_format.as_deref().unwrap_or("der").parse().map_err(ApiError::bad)?;
        let service = KeyService::for_caller(&state.host, state.audit.clone(), who.caller());
        crate::load::check_anchored_signers(&state.config, &state.host, &service, &signers).map_err(ApiError::bad)?;
        let (envelope, failures) =
            dsse::sign(&state.host, &service, &req.payload_type, &payload, &signers, format, req.allow_partial)
                .map_err(|e| ApiError::bad(e.to_string()))?;
        let envelope: serde_json::Value =
            serde_json::from_str(&envelope.to_json()).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Json(DsseSignResponse {
            envelope,
            failures: failures.into_iter().map(|(l, e)| format!("{l}: {e}")).collect(),
        }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DssePublicKey {
    /// SPKI PEM, or base64 of the DER.
    pub public_key: String,
    /// For an RSA key: RS256 ... PS512 (EC, Ed25519 and ML-DSA keys use their own).
    pub algorithm: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseVerifyRequest {
    /// The envelope, as JSON.
    #[schema(value_type = Object)]
    pub envelope: serde_json::Value,
    /// The keys to trust; none: the server's trust anchors (`[trust] anchors`).
    #[serde(default)]
    pub public_keys: Vec<DssePublicKey>,
    /// Distinct keys (by SPKI fingerprint) that must have signed; default 1.
    pub threshold: Option<usize>,
    pub signature_format: Option<String>,
    /// With the server's anchors: only anchors with this purpose.
    pub purpose: Option<String>,
    /// With the server's anchors: the verification time (RFC 3339), default now.
    pub at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DsseVerifyResponse {
    pub valid: bool,
    pub payload_type: String,
    /// Exactly the verified payload, base64 (only when valid).
    pub payload: Option<String>,
    pub verified_fingerprints: Vec<String>,
    /// The names of the keys that verified (anchor key ids, or `public_keys[i]`).
    pub verified_by: Vec<String>,
    pub notes: Vec<String>,
    /// With the server's anchors: each anchor not used, and the rule it failed.
    pub refused_anchors: Vec<String>,
}

/// Verifies a DSSE envelope against public keys sent in the request, or the server's trust
/// anchors.
#[utoipa::path(
    post,
    path = "/v1/dsse/verify",
    request_body = DsseVerifyRequest,
    responses((status = 200, body = DsseVerifyResponse), (status = 400, body = ErrorBody))
)]
pub async fn dsse_verify(
    Current(state): Current,
    ApiJson(req): ApiJson<DsseVerifyRequest>,
) -> Result<Json<DsseVerifyResponse>, ApiError> {
    blocking(move || {
        let raw = serde_json::to_vec(&req.envelope).map_err(|e| ApiError::bad(e.to_string()))?;
        let env = Envelope::parse(&raw, state.config.max_payload, state.config.max_signatures)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let threshold = req.threshold.unwrap_or(1);
        if threshold == 0 {
            return Err(ApiError::bad("threshold must be at least 1"));
        }
        let mut keys = Vec::new();
        let mut refused_anchors = Vec::new();
        if req.public_keys.is_empty() {
            let at = match &req.at {
                Some(t) => crate::trust::parse_time(t).map_err(|e| ApiError::bad(format!("at: {e}")))?,
                None => time::OffsetDateTime::now_utc(),
            };
            let set = server_anchors(&state, at, req.purpose.as_deref(), "public_keys")?;
            keys = set.keys;
            refused_anchors = set.refused;
        } else if req.purpose.is_some() || req.at.is_some() {
            return Err(ApiError::bad("purpose and at apply to the server's anchors, not to public_keys"));
        }
        for (i, k) in req.public_keys.iter().enumerate() {
            let spki = super::api::public_key_of(&k.public_key)?;
            // EC, Ed25519 and ML-DSA keys verify only their own algorithm; an RSA key needs one named.
            let algorithm = crate::alg::algorithm_for_key(&spki, k.algorithm.as_deref())
                .map_err(|e| ApiError::bad(format!("public_keys[{i}] {e}")))?;
            let fingerprint = dsse::fingerprint(&state.host, &spki).map_err(ApiError::internal)?;
            keys.push(TrustedKey {
                name: format!("public_keys[{i}]"),
                fingerprint: fingerprint.clone(),
                spki,
                algorithm: algorithm.to_string(),
                hints: vec![fingerprint],
            });
        }
        let format: SigFormat = req.signature_format.as_deref().unwrap_or("der").parse().map_err(ApiError::bad)?;
        let result =
            dsse::verify(&state.host, &env, &keys, threshold, format).map_err(|e| ApiError::bad(e.to_string()))?;
        Ok(Json(DsseVerifyResponse {
            valid: result.valid,
            payload_type: result.payload_type,
            payload: result.valid.then(|| std_b64(&result.payload)),
            verified_fingerprints: result.verified_fingerprints,
            verified_by: result.verified_by,
            notes: result.notes,
            refused_anchors,
        }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub key: String,
    pub algorithm: String,
    /// RSA modulus size (default 3072).
    pub rsa_bits: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct PublicKeyResponse {
    /// SPKI PEM.
    pub public_key: String,
    pub provider: String,
}

/// The public key of a held key (the caller needs a rule for that key, any operation: the
/// answer says the key exists).
#[utoipa::path(
    post,
    path = "/v1/keys/public",
    request_body = KeyRequest,
    responses((status = 200, body = PublicKeyResponse), (status = 403, body = ErrorBody))
)]
pub async fn key_public(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<Json<PublicKeyResponse>, ApiError> {
    blocking(move || {
        let who = Identity::resolve(&peer);
        let key = held_reference(&req.key)?;
        let canonical = key.to_string();
        let any = [Operation::Sign, Operation::Encrypt, Operation::Decrypt, Operation::Generate]
            .into_iter()
            .any(|op| access::allowed(&state.config.service.allow, &who, op, &Target::Key(&canonical)));
        if !any {
            return Err(event(&state, &who, "denied", format!("public key of {canonical}"), ApiError::denied()));
        }
        let service = KeyService::for_caller(&state.host, state.audit.clone(), who.caller());
        let (spki, provider) = service.public_key(&key, &req.algorithm, req.rsa_bits.unwrap_or(3072))?;
        let pem = crate::keyfile::to_pem("PUBLIC KEY", &spki).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Json(PublicKeyResponse { public_key: pem.to_string(), provider }))
    })
    .await
}

/// Generates a key under a reference (refused if the HSM already holds the label).
#[utoipa::path(
    post,
    path = "/v1/keys/generate",
    request_body = KeyRequest,
    responses((status = 200, body = PublicKeyResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn key_generate(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<Json<PublicKeyResponse>, ApiError> {
    blocking(move || {
        let (who, key) = permitted_key(&state, &peer, &req.key, Operation::Generate)?;
        let service = KeyService::for_caller(&state.host, state.audit.clone(), who.caller());
        let spki = service.generate(&key, &req.algorithm, req.rsa_bits.unwrap_or(3072))?;
        let public_key = if spki.is_empty() {
            String::new()
        } else {
            crate::keyfile::to_pem("PUBLIC KEY", &spki).map_err(|e| ApiError::internal(e.to_string()))?.to_string()
        };
        Ok(Json(PublicKeyResponse { public_key, provider: String::new() }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    pub key: String,
    /// A128GCM or A256GCM (default A256GCM).
    pub algorithm: Option<String>,
    /// Base64.
    pub plaintext: String,
    /// Additional authenticated data, base64.
    pub aad: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Sealed {
    /// 12 bytes, base64.
    pub nonce: String,
    /// Ciphertext || 16-byte tag, base64.
    pub ciphertext: String,
}

/// AES-GCM encryption with a held secret key.
#[utoipa::path(
    post,
    path = "/v1/encrypt",
    request_body = EncryptRequest,
    responses((status = 200, body = Sealed), (status = 403, body = ErrorBody))
)]
pub async fn encrypt(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ApiJson(req): ApiJson<EncryptRequest>,
) -> Result<Json<Sealed>, ApiError> {
    blocking(move || {
        let (who, key) = permitted_key(&state, &peer, &req.key, Operation::Encrypt)?;
        let plaintext = b64_field("plaintext", &req.plaintext)?;
        let aad = req.aad.as_deref().map(|a| b64_field("aad", a)).transpose()?.unwrap_or_default();
        let service = KeyService::for_caller(&state.host, state.audit.clone(), who.caller());
        let (sealed, _) = service.encrypt(&key, req.algorithm.as_deref().unwrap_or("A256GCM"), &plaintext, &aad)?;
        Ok(Json(Sealed { nonce: std_b64(&sealed.nonce), ciphertext: std_b64(&sealed.ciphertext) }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    pub key: String,
    pub algorithm: Option<String>,
    pub nonce: String,
    pub ciphertext: String,
    pub aad: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Plaintext {
    /// Base64.
    pub plaintext: String,
}

/// AES-GCM decryption with a held secret key; a wrong tag, nonce or AAD is 400.
#[utoipa::path(
    post,
    path = "/v1/decrypt",
    request_body = DecryptRequest,
    responses((status = 200, body = Plaintext), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn decrypt(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> Result<Json<Plaintext>, ApiError> {
    blocking(move || {
        let (who, key) = permitted_key(&state, &peer, &req.key, Operation::Decrypt)?;
        let nonce = b64_field("nonce", &req.nonce)?;
        let ciphertext = b64_field("ciphertext", &req.ciphertext)?;
        let aad = req.aad.as_deref().map(|a| b64_field("aad", a)).transpose()?.unwrap_or_default();
        let service = KeyService::for_caller(&state.host, state.audit.clone(), who.caller());
        let (plain, _) =
            service.decrypt(&key, req.algorithm.as_deref().unwrap_or("A256GCM"), &nonce, &ciphertext, &aad)?;
        Ok(Json(Plaintext { plaintext: std_b64(&plain) }))
    })
    .await
}

/// Every key on the HSM's tokens (admin).
#[utoipa::path(get, path = "/v1/keys", responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
pub async fn keys_list(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        let who = Identity::resolve(&peer);
        permit_admin(&state, &who, "keys list")?;
        let hsm = state.host.hsm().ok_or_else(|| ApiError::bad("no [hsm] is configured"))?;
        let listed = hsm.list_keys().map_err(|e| ApiError::bad(e.to_string()))?;
        serde_json::to_value(listed).map(Json).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
}

/// HSM status, connect or disconnect (admin; each audited).
#[utoipa::path(
    post,
    path = "/v1/hsm/{action}",
    params(("action" = String, Path, description = "status, connect or disconnect")),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody))
)]
pub async fn hsm_admin(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    axum::extract::Path(action): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        let who = Identity::resolve(&peer);
        permit_admin(&state, &who, &format!("hsm {action}"))?;
        let hsm = state.host.hsm().ok_or_else(|| ApiError::bad("no [hsm] is configured"))?;
        let result = match action.as_str() {
            "status" => Ok(()),
            "connect" => hsm.connect().map_err(|e| ApiError::bad(e.to_string())),
            "disconnect" => {
                hsm.disconnect();
                Ok(())
            }
            other => return Err(ApiError::bad(format!("unknown HSM action {other:?} (status, connect, disconnect)"))),
        };
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {}", e.message),
        };
        let record = EventRecord {
            time: now_rfc3339(),
            event: format!("hsm-{action}"),
            caller: Some(who.caller()),
            detail: outcome,
        };
        state.audit.event(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        result?;
        serde_json::to_value(hsm.status()).map(Json).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
}

/// Re-reads the config and component directory, loads and checks the new set completely, and
/// swaps it in; a set that fails its checks is refused and the old one keeps serving (admin;
/// audited). SIGHUP does the same.
#[utoipa::path(post, path = "/v1/reload", responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn reload(
    State(shared): State<std::sync::Arc<super::Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = shared.current();
    let who = tokio::task::spawn_blocking(move || Identity::resolve(&peer))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let s = state.clone();
    let w = who.clone();
    blocking(move || permit_admin(&s, &w, "reload")).await?;
    shared
        .reload(Some(who.caller()))
        .await
        .map_err(|e| ApiError::bad(format!("reload refused; the previous set keeps serving: {e}")))?;
    Ok(Json(serde_json::json!({"reloaded": true, "providers": shared.current().host.providers().len()})))
}
