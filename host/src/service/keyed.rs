//! The routes that use a key or administer the host: signing (JSON or a streamed body), DSSE
//! signing, a key's public half, key generation, AES-GCM, the HSM's key list and admin actions,
//! reload. Each passes the peer's [`RuleGate`] to the request layer, which checks the caller's
//! rules before any key is looked up and audits every key use, denial and admin action. They
//! run on the blocking pool: a key use writes and syncs an audit line and may wait on an HSM.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use cryptohost_client::api::{
    DecryptRequest, DsseSignRequest, DsseSignResponse, EncryptRequest, HsmReport, JwsSignRequest, JwsSignResponse,
    JwtSignRequest, KeyCsrRequest, KeyCsrResponse, KeyFormatQuery, KeyListing, KeyRequest, KeyRotateRequest,
    KeyVersionRequest, KeyVersions, KeyVersionsRequest, Plaintext, PublicKeyResponse, Reloaded, Sealed, SignQuery,
    SignRequest, SignResponse,
};

use super::blocking;
use super::extract::{ApiError, ApiJson, ApiQuery, Current, KeyedErrors, RuleGate, Who};
use super::{Inner, access::Peer};
use crate::request::{
    self, Context, DsseSign, HsmAction, Input, JwsSign, JwtSign, RequestError, Sign, parse_held_reference,
};

/// Runs `op` through the request layer on the blocking pool, behind the peer's gate.
async fn gated<T: Send + 'static>(
    state: std::sync::Arc<Inner>,
    peer: Peer,
    op: impl FnOnce(&Context<'_>) -> Result<T, RequestError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    blocking(move || {
        let gate = RuleGate::new(&state, &peer);
        Ok(Json(op(&state.context(&gate))?))
    })
    .await
}

/// A keyed route with a JSON body: declared once here, each one a line that names its path,
/// request and answer types, and the request-layer call.
macro_rules! keyed_json {
    ($(#[doc = $doc:literal])* $name:ident, $path:literal, $req:ty => $ok:ty, |$ctx:ident, $r:ident| $call:expr) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path, request_body = $req, responses((status = 200, body = $ok), KeyedErrors))]
        pub async fn $name(
            Current(state): Current,
            Who(peer): Who,
            ApiJson($r): ApiJson<$req>,
        ) -> Result<Json<$ok>, ApiError> {
            gated(state, peer, move |$ctx| $call).await
        }
    };
}

keyed_json!(
    /// Signs data or a digest with a key the server holds, if a rule lets the caller use it.
    sign, "/v1/sign", SignRequest => SignResponse,
    |ctx, req| request::sign(ctx, Sign::from_wire(&req)?)
);

/// Signs the request body, streamed through the algorithm's hash as it arrives (any size; the
/// audit line records the SHA-256 of exactly these bytes). The caller's rules are checked
/// before any of the body is read.
#[utoipa::path(
    post,
    path = "/v1/sign/stream",
    params(SignQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = SignResponse), KeyedErrors)
)]
pub async fn sign_stream(
    Current(state): Current,
    Who(peer): Who,
    ApiQuery(q): ApiQuery<SignQuery>,
    body: Body,
) -> Result<Json<SignResponse>, ApiError> {
    super::extract::streamed(body, move |reader| {
        let gate = RuleGate::new(&state, &peer);
        Ok(Json(request::sign(&state.context(&gate), Sign::from_query(&q, Input::Stream(reader))?)?))
    })
    .await
}

keyed_json!(
    /// Signs a payload as a DSSE envelope with every key, profile and key id at once.
    dsse_sign, "/v1/dsse/sign", DsseSignRequest => DsseSignResponse,
    |ctx, req| request::dsse_sign(ctx, DsseSign::from_wire(&req)?)
);

keyed_json!(
    /// Signs a payload as a JWS with every key, profile and key id at once (several signers:
    /// the general JSON serialization).
    jws_sign, "/v1/jws/sign", JwsSignRequest => JwsSignResponse,
    |ctx, req| request::jws_sign(ctx, JwsSign::from_wire(&req)?)
);

keyed_json!(
    /// Issues a JWT: the claims signed as a compact JWS with `typ: JWT`.
    jwt_sign, "/v1/jwt/sign", JwtSignRequest => JwsSignResponse,
    |ctx, req| request::jwt_sign(ctx, JwtSign::from_wire(&req)?)
);

/// The public key of a held key (the caller needs a rule for that key, any operation: the
/// answer says the key exists); with `format=jwk` also as a JWK.
#[utoipa::path(
    post,
    path = "/v1/keys/public",
    params(KeyFormatQuery),
    request_body = KeyRequest,
    responses((status = 200, body = PublicKeyResponse), KeyedErrors)
)]
pub async fn key_public(
    Current(state): Current,
    Who(peer): Who,
    ApiQuery(q): ApiQuery<KeyFormatQuery>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<Json<PublicKeyResponse>, ApiError> {
    let jwk = match q.format.as_deref() {
        None | Some("pem") => false,
        Some("jwk") => true,
        Some(other) => {
            return Err(RequestError::Invalid(format!("format {other:?} is not pem or jwk")).into());
        }
    };
    gated(state, peer, move |ctx| {
        let key = parse_held_reference(&req.key)?;
        request::key_public(ctx, &key, &req.algorithm, req.rsa_bits.unwrap_or(3072), jwk)
    })
    .await
}

keyed_json!(
    /// Generates a key under a reference (refused if the HSM already holds the label).
    key_generate, "/v1/keys/generate", KeyRequest => PublicKeyResponse,
    |ctx, req| request::key_generate(ctx, &parse_held_reference(&req.key)?, &req.algorithm, req.rsa_bits.unwrap_or(3072))
);

keyed_json!(
    /// Makes the next version of a held key, staged: used for nothing until promoted.
    key_rotate, "/v1/keys/rotate", KeyRotateRequest => KeyVersions,
    |ctx, req| request::key_rotate(ctx, &parse_held_reference(&req.key)?, req.algorithm.as_deref(), req.rsa_bits.unwrap_or(3072))
);

keyed_json!(
    /// Makes a version current (the current one retired); refused while no configured anchor
    /// lists its fingerprint, unless `force`.
    key_promote, "/v1/keys/promote", KeyVersionRequest => KeyVersions,
    |ctx, req| request::key_promote(ctx, &parse_held_reference(&req.key)?, req.version, req.force)
);

keyed_json!(
    /// Retires a staged version.
    key_retire, "/v1/keys/retire", KeyVersionRequest => KeyVersions,
    |ctx, req| request::key_retire(ctx, &parse_held_reference(&req.key)?, req.version)
);

keyed_json!(
    /// Destroys a version that is not current (`confirm` must be true).
    key_destroy, "/v1/keys/destroy", KeyVersionRequest => KeyVersions,
    |ctx, req| request::key_destroy(ctx, &parse_held_reference(&req.key)?, req.version, req.confirm)
);

keyed_json!(
    /// A PKCS#10 certificate request signed by a held key (gated and audited as a sign).
    key_csr, "/v1/keys/csr", KeyCsrRequest => KeyCsrResponse,
    |ctx, req| request::key_csr(ctx, &parse_held_reference(&req.key)?, &req.algorithm, &req.subject, &req.sans)
);

keyed_json!(
    /// A key's versions and their states.
    key_versions, "/v1/keys/versions", KeyVersionsRequest => KeyVersions,
    |ctx, req| request::key_versions(ctx, &parse_held_reference(&req.key)?)
);

keyed_json!(
    /// AES-GCM encryption with a held secret key.
    encrypt, "/v1/encrypt", EncryptRequest => Sealed,
    |ctx, req| {
        let (alg, aad) = (req.algorithm.as_deref().unwrap_or("A256GCM"), req.aad.as_deref().unwrap_or_default());
        request::encrypt(ctx, &parse_held_reference(&req.key)?, alg, &req.plaintext, aad)
    }
);

keyed_json!(
    /// AES-GCM decryption with a held secret key; a wrong tag, nonce or AAD is 400.
    decrypt, "/v1/decrypt", DecryptRequest => Plaintext,
    |ctx, req| {
        let (alg, aad) = (req.algorithm.as_deref().unwrap_or("A256GCM"), req.aad.as_deref().unwrap_or_default());
        request::decrypt(ctx, &parse_held_reference(&req.key)?, alg, &req.nonce, &req.ciphertext, aad)
    }
);

/// Every key on the HSM's tokens (admin).
#[utoipa::path(
    get,
    path = "/v1/keys",
    responses((status = 200, body = Vec<KeyListing>), KeyedErrors)
)]
pub async fn keys_list(Current(state): Current, Who(peer): Who) -> Result<Json<Vec<KeyListing>>, ApiError> {
    gated(state, peer, request::keys_list).await
}

/// HSM status (never logs in), connect or disconnect (admin; each audited).
#[utoipa::path(
    post,
    path = "/v1/hsm/{action}",
    params(("action" = String, Path, description = "status, connect or disconnect")),
    responses((status = 200, body = HsmReport), KeyedErrors)
)]
pub async fn hsm_admin(
    Current(state): Current,
    Who(peer): Who,
    axum::extract::Path(action): axum::extract::Path<String>,
) -> Result<Json<HsmReport>, ApiError> {
    let action = match action.as_str() {
        "status" => HsmAction::Status,
        "connect" => HsmAction::Connect,
        "disconnect" => HsmAction::Disconnect,
        other => return Err(ApiError::bad(format!("unknown HSM action {other:?} (status, connect, disconnect)"))),
    };
    gated(state, peer, move |ctx| request::hsm(ctx, action)).await
}

/// Re-reads the config and component directory, loads and checks the new set completely, and
/// swaps it in; a set that fails its checks is refused and the old one keeps serving (admin;
/// audited). SIGHUP does the same.
#[utoipa::path(
    post,
    path = "/v1/reload",
    responses((status = 200, body = Reloaded), KeyedErrors)
)]
pub async fn reload(
    State(shared): State<std::sync::Arc<super::Shared>>,
    Who(peer): Who,
) -> Result<Json<Reloaded>, ApiError> {
    let state = shared.current();
    let caller = blocking(move || {
        let gate = RuleGate::new(&state, &peer);
        request::permit_admin(&state.context(&gate), "reload")?;
        Ok(crate::request::Gate::caller(&gate))
    })
    .await?;
    shared
        .reload(caller)
        .await
        .map_err(|e| ApiError::bad(format!("reload refused; the previous set keeps serving: {e}")))?;
    Ok(Json(Reloaded { reloaded: true, providers: shared.current().host.providers().len() }))
}
