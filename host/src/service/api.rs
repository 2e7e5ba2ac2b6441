//! The `/v1/` routes: the same operations, semantics and error classes as the CLI, over JSON.
//! No route opens a file path a client sends: keys, signatures and data travel in the request,
//! and keys are named by server-side references or profiles.

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{OpenApi, ToSchema};

use super::access::{self, Identity, Peer, Target};
use super::error::{ApiError, ApiJson, ErrorBody};
use super::{Current, State as AppState};
use crate::config::Operation;
use crate::keyref::KeyRef;
use crate::keys::KeyService;
use crate::provider::{Capability, SigFormat, SignInput};

/// The OpenAPI document of these routes (served at `/v1/openapi.json`, checked in under docs/).
#[derive(OpenApi)]
#[openapi(
    info(title = "cryptohost", description = "The long-running crypto provider host, over a Unix socket."),
    paths(
        health,
        ready,
        providers,
        hash,
        verify,
        sign,
        openapi,
        super::ops::dsse_sign,
        super::ops::dsse_verify,
        super::ops::key_public,
        super::ops::key_generate,
        super::ops::encrypt,
        super::ops::decrypt,
        super::ops::keys_list,
        super::ops::hsm_admin,
        super::ops::reload
    ),
    components(schemas(
        ErrorBody,
        super::error::ErrorDetail,
        Health,
        Ready,
        HashQuery,
        HashResponse,
        VerifyRequest,
        VerifyResponse,
        SignRequest,
        SignResponse,
        ServedBy,
        super::ops::DsseKey,
        super::ops::DsseSignRequest,
        super::ops::DsseSignResponse,
        super::ops::DssePublicKey,
        super::ops::DsseVerifyRequest,
        super::ops::DsseVerifyResponse,
        super::ops::KeyRequest,
        super::ops::PublicKeyResponse,
        super::ops::EncryptRequest,
        super::ops::Sealed,
        super::ops::DecryptRequest,
        super::ops::Plaintext
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `live` while the process answers.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "live".into() })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// Providers loaded.
    pub providers: usize,
    /// Whether an HSM is configured, and if so whether it answered.
    pub hsm: Option<bool>,
}

/// Readiness: components loaded, and the HSM reachable when one is configured.
#[utoipa::path(get, path = "/v1/ready", responses((status = 200, body = Ready), (status = 503, body = ErrorBody)))]
pub async fn ready(Current(state): Current) -> Result<Json<Ready>, ApiError> {
    let s = state.clone();
    let hsm = tokio::task::spawn_blocking(move || s.host.hsm().map(|h| h.connect().map_err(|e| e.to_string())))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match hsm {
        Some(Err(e)) => Err(ApiError::not_ready(format!("the HSM is configured and not reachable: {e}"))),
        other => {
            Ok(Json(Ready { ready: true, providers: state.host.providers().len(), hsm: other.map(|r| r.is_ok()) }))
        }
    }
}

/// Every loaded provider: name, origin (component and sha256, or PKCS#11 module), priority,
/// capabilities.
#[utoipa::path(get, path = "/v1/providers", responses((status = 200, body = Object)))]
pub async fn providers(Current(state): Current) -> Response {
    let list: Vec<_> = state.host.providers().iter().map(|p| p.descriptor().clone()).collect();
    Json(list).into_response()
}

/// Which provider served, and its code's origin.
#[derive(Serialize, ToSchema)]
pub struct ServedBy {
    pub name: String,
    /// `{"kind": "component", "file", "sha256"}` or `{"kind": "native", "module"}`.
    #[schema(value_type = Object)]
    pub origin: serde_json::Value,
}

fn served_by(p: &dyn crate::CryptoProvider) -> ServedBy {
    let d = p.descriptor();
    ServedBy { name: d.name.clone(), origin: serde_json::to_value(&d.origin).unwrap_or_default() }
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HashQuery {
    /// SHA-256, SHA-384 or SHA-512.
    pub alg: String,
}

#[derive(Serialize, ToSchema)]
pub struct HashResponse {
    pub algorithm: String,
    /// Lowercase hex.
    pub digest: String,
    pub provider: ServedBy,
}

/// A reader over request-body chunks handed across from the async side.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, String>>,
    current: axum::body::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Hashes the request body, streamed through a hashing provider (any size; never buffered).
#[utoipa::path(
    post,
    path = "/v1/hash",
    params(HashQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = HashResponse), (status = 400, body = ErrorBody))
)]
pub async fn hash(
    Current(state): Current,
    Query(q): Query<HashQuery>,
    body: Body,
) -> Result<Json<HashResponse>, ApiError> {
    use http_body_util::BodyExt;
    let algorithm = crate::alg::canonical_hash(&q.alg);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let s = state.clone();
    let alg = algorithm.clone();
    let span = tracing::Span::current();
    let work = tokio::task::spawn_blocking(move || {
        let _in = span.enter();
        let mut reader = ChunkReader { rx, current: axum::body::Bytes::new() };
        s.host.digest_stream(&alg, &mut reader)
    });
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => Ok(d),
                Err(_) => continue,
            },
            Err(e) => Err(format!("reading the request body: {e}")),
        };
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let served = work.await.map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(HashResponse {
        algorithm,
        digest: hex::encode(&served.value),
        provider: served_by(served.provider.as_ref()),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// ES256 ... PS512, EdDSA, ML-DSA-44/65/87.
    pub algorithm: String,
    /// SPKI public key: PEM text, or base64 of the DER; or give `key_id`.
    pub public_key: Option<String>,
    /// A key id of the server's trust anchors (`[trust] anchors`), valid now and for this
    /// algorithm; when it names several keys (a rotation), any one of them verifying is enough.
    pub key_id: Option<String>,
    /// The signature, base64 (standard or URL-safe).
    pub signature: String,
    /// The signed data, base64; or give `digest`.
    pub data: Option<String>,
    /// The digest of the data under the algorithm's hash, hex (not for EdDSA or ML-DSA).
    pub digest: Option<String>,
    /// ECDSA encoding: `der` (default) or `p1363`.
    pub signature_format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    /// A signature that does not verify is `false`, not an error.
    pub valid: bool,
    pub provider: ServedBy,
}

/// A base64 field of a request (standard or URL-safe), or a 400 naming it.
pub(super) fn b64_field(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    crate::keyfile::decode_base64(text.trim().as_bytes())
        .ok_or_else(|| ApiError::bad(format!("{field} is not base64 (standard or URL-safe)")))
}

fn format_of(text: &Option<String>) -> Result<SigFormat, ApiError> {
    text.as_deref().unwrap_or("der").parse().map_err(ApiError::bad)
}

/// The input to sign or verify: the whole message for EdDSA and ML-DSA, the digest (computed
/// here through a hashing provider, or given) otherwise; and, for a signature (`audited`), what
/// the audit log records about it (a verify writes no audit line, so nothing is hashed for one).
fn input_of(
    state: &AppState,
    alg: &crate::alg::SignatureAlgorithm,
    data: &Option<String>,
    digest: &Option<String>,
    audited: bool,
) -> Result<(Vec<u8>, bool, String), ApiError> {
    let audit_of = |message: &[u8]| if audited { hex::encode(Sha256::digest(message)) } else { String::new() };
    match (data, digest, alg.hash) {
        (Some(d), None, None) => {
            let message = b64_field("data", d)?;
            let audit = audit_of(&message);
            Ok((message, false, audit))
        }
        (Some(d), None, Some(hash)) => {
            let message = b64_field("data", d)?;
            let audit = audit_of(&message);
            let digest = state.host.serve(Capability::Hashing, hash, |p, a| p.digest(a, &message))?.value;
            Ok((digest, true, audit))
        }
        (None, Some(_), None) => {
            Err(ApiError::bad(format!("{} signs whole messages: send data, not a digest", alg.name)))
        }
        (None, Some(h), Some(hash)) => {
            let digest = hex::decode(h.trim()).map_err(|_| ApiError::bad("digest is not hex"))?;
            // The audit log records the SHA-256 of the data; a SHA-256 digest is exactly that.
            let audit = if hash == "SHA-256" { hex::encode(&digest) } else { String::new() };
            Ok((digest, true, audit))
        }
        _ => Err(ApiError::bad("give exactly one of data (base64) or digest (hex)")),
    }
}

/// An SPKI public key given as PEM text or base64 DER.
pub(super) fn public_key_of(text: &str) -> Result<Vec<u8>, ApiError> {
    let bytes = if text.trim_start().starts_with("-----BEGIN") {
        text.as_bytes().to_vec()
    } else {
        b64_field("public_key", text)?
    };
    crate::keyfile::public_key_from_bytes(std::path::Path::new("public_key"), &bytes)
        .map_err(|e| ApiError::bad(e.to_string()))
}

fn signature_alg(name: &str) -> Result<&'static crate::alg::SignatureAlgorithm, ApiError> {
    crate::alg::signature(name).ok_or_else(|| {
        ApiError::bad(format!(
            "unknown signature algorithm {name:?} (expected one of {})",
            crate::alg::signature_names()
        ))
    })
}

/// Verifies a signature with a public key sent in the request.
#[utoipa::path(
    post,
    path = "/v1/verify",
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody))
)]
pub async fn verify(
    Current(state): Current,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    // Anchors are read and checked (a kit re-verified) from disk: never on a runtime worker.
    let size = if req.key_id.is_some() { usize::MAX } else { req.data.as_ref().map_or(0, String::len) };
    super::compute(size, move || {
        let alg = signature_alg(&req.algorithm)?;
        let keys = match (&req.public_key, &req.key_id) {
            (Some(k), None) => vec![public_key_of(k)?],
            (None, Some(id)) => {
                let set = super::ops::server_anchors(&state, time::OffsetDateTime::now_utc(), None, "public_key")?;
                crate::trust::keys_for_id(set, id, alg.name)
                    .map_err(ApiError::bad)?
                    .into_iter()
                    .map(|k| k.spki)
                    .collect()
            }
            _ => return Err(ApiError::bad("give exactly one of public_key or key_id")),
        };
        let signature = b64_field("signature", &req.signature)?;
        let format = format_of(&req.signature_format)?;
        let (input, is_digest, _) = input_of(&state, alg, &req.data, &req.digest, false)?;
        let input = if is_digest { SignInput::Digest(&input) } else { SignInput::Message(&input) };
        let mut answer = None;
        for spki in &keys {
            // As in local mode, the provider refuses a key of another type for this algorithm
            // (never substituted), in the same words.
            let served = state.host.verify(alg.name, spki, input, &signature, format)?;
            let valid = served.value;
            answer = Some(VerifyResponse { valid, provider: served_by(served.provider.as_ref()) });
            if valid {
                break;
            }
        }
        answer.map(Json).ok_or_else(|| ApiError::bad("no key to verify with"))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// A server-side key reference (`pkcs11:...`, `sim:NAME`); never a file.
    pub key: Option<String>,
    /// Or a configured signing profile (which carries its own key and algorithm).
    pub profile: Option<String>,
    /// Needed with `key`.
    pub algorithm: Option<String>,
    /// The data, base64; or give `digest`.
    pub data: Option<String>,
    /// The digest under the algorithm's hash, hex (not for EdDSA or ML-DSA).
    pub digest: Option<String>,
    /// ECDSA encoding: `der` (default) or `p1363`.
    pub signature_format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SignResponse {
    pub algorithm: String,
    /// The signature, standard base64.
    pub signature: String,
    /// The provider that signed.
    pub provider: String,
    /// Where its code came from (component and sha256, or PKCS#11 module and token serial).
    #[schema(value_type = Object)]
    pub origin: serde_json::Value,
}

/// Signs with a key the server holds, if a rule lets the caller use it.
#[utoipa::path(
    post,
    path = "/v1/sign",
    request_body = SignRequest,
    responses(
        (status = 200, body = SignResponse),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden, or no such key: the same answer"),
        (status = 413, body = ErrorBody)
    )
)]
pub async fn sign(
    Current(state): Current,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ApiJson(req): ApiJson<SignRequest>,
) -> Result<Json<SignResponse>, ApiError> {
    // Signing writes (and syncs) an audit line and may wait on an HSM: off the runtime's threads.
    super::blocking(move || {
        let who = Identity::resolve(&peer);
        let (reference, algorithm, target_text, by_profile) = match (&req.key, &req.profile) {
            (Some(k), None) => {
                let reference = super::ops::held_reference(k)?;
                let alg = req.algorithm.clone().ok_or_else(|| ApiError::bad("key needs algorithm"))?;
                let canonical = reference.to_string();
                (reference, alg, canonical, false)
            }
            (None, Some(name)) => {
                // The rule is checked before the profile is looked up: an unknown profile and
                // a forbidden one get the same answer.
                if !access::allowed(&state.config.service.allow, &who, Operation::Sign, &Target::Profile(name)) {
                    return Err(super::ops::denied(&state, &who, format!("sign with profile {name:?}")));
                }
                let p = state.config.profiles.get(name).ok_or_else(ApiError::denied)?;
                let reference = KeyRef::parse(&p.key).map_err(|_| ApiError::denied())?;
                (reference, p.algorithm.clone(), name.clone(), true)
            }
            _ => return Err(ApiError::bad("give exactly one of key or profile")),
        };
        if !by_profile
            && !access::allowed(&state.config.service.allow, &who, Operation::Sign, &Target::Key(&target_text))
        {
            return Err(super::ops::denied(&state, &who, format!("sign with {target_text}")));
        }
        let alg = signature_alg(&algorithm)?;
        let format = format_of(&req.signature_format)?;
        let (input, is_digest, audit_hex) = input_of(&state, alg, &req.data, &req.digest, true)?;
        let input = if is_digest { SignInput::Digest(&input) } else { SignInput::Message(&input) };
        let audit_input = hex::decode(audit_hex).unwrap_or_default();
        let service = KeyService::for_caller(&state.host, state.audit.clone(), who.caller());
        let signed = service.sign(&reference, alg.name, input, &audit_input, format)?;
        Ok(Json(SignResponse {
            algorithm: alg.name.to_string(),
            signature: base64::engine::general_purpose::STANDARD.encode(&signed.signature),
            provider: signed.provider,
            origin: serde_json::to_value(&signed.origin).unwrap_or_default(),
        }))
    })
    .await
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, body = Object)))]
pub async fn openapi() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
