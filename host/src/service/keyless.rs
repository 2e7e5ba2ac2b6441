//! The routes that hold no key: health, readiness, providers, hashing, verification (by a
//! public key, an anchor key id, or a DSSE envelope against keys or the server's anchors).
//! Each parses, calls the request layer, and answers with the wire schema's type.

use axum::Json;
use axum::body::Body;
use cryptohost_client::api::{
    DsseVerifyRequest, DsseVerifyResponse, ErrorBody, HashQuery, HashResponse, Health, Jwks, JwsVerifyRequest,
    JwsVerifyResponse, JwtVerifyRequest, JwtVerifyResponse, ProviderInfo, Ready, VerifyRequest, VerifyResponse,
};

use super::extract::{ApiError, ApiJson, ApiQuery, Current, Keyless, KeylessErrors, Who, streamed};
use crate::request::{self, DsseVerify, Input, JwsVerify, JwtVerify, Verify};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "live".into() })
}

/// Readiness: components loaded, and the HSM reachable when one is configured.
#[utoipa::path(get, path = "/v1/ready", responses((status = 200, body = Ready), (status = 503, body = ErrorBody)))]
pub async fn ready(Current(state): Current) -> Result<Json<Ready>, ApiError> {
    let s = state.clone();
    let hsm = tokio::task::spawn_blocking(move || s.host.hsm().map(|h| h.connect().map_err(|e| e.to_string())))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match hsm {
        Some(Err(e)) => Err(ApiError::new(
            cryptohost_client::ErrorKind::NotReady,
            format!("the HSM is configured and not reachable: {e}"),
        )),
        other => {
            Ok(Json(Ready { ready: true, providers: state.host.providers().len(), hsm: other.map(|r| r.is_ok()) }))
        }
    }
}

/// Every loaded provider: name, origin (component and sha256, or PKCS#11 module), priority,
/// capabilities.
#[utoipa::path(get, path = "/v1/providers", responses((status = 200, body = Vec<ProviderInfo>)))]
pub async fn providers(Current(state): Current) -> Json<Vec<ProviderInfo>> {
    Json(request::providers(&state.context(&Keyless(None))))
}

/// Hashes the request body, streamed through a hashing provider (any size; never buffered).
#[utoipa::path(
    post,
    path = "/v1/hash",
    params(HashQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = HashResponse), KeylessErrors)
)]
pub async fn hash(
    Current(state): Current,
    ApiQuery(q): ApiQuery<HashQuery>,
    body: Body,
) -> Result<Json<HashResponse>, ApiError> {
    streamed(body, move |reader| {
        Ok(Json(request::hash(&state.context(&Keyless(None)), &q.alg, Input::Stream(reader))?))
    })
    .await
}

/// Verifies a signature with a public key sent in the request, or the server's trust anchors by
/// key id.
#[utoipa::path(
    post,
    path = "/v1/verify",
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), KeylessErrors)
)]
pub async fn verify(
    Current(state): Current,
    Who(peer): Who,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    // Anchors are read and checked (a kit re-verified) from disk: never on a connection thread.
    let size = if req.key_id.is_some() { usize::MAX } else { req.data.as_ref().map_or(0, Vec::len) };
    super::compute(size, move || {
        Ok(Json(request::verify(&state.context(&Keyless::of(&peer)), Verify::from_wire(&req)?)?))
    })
    .await
}

/// Verifies a DSSE envelope against public keys sent in the request, or the server's trust
/// anchors.
#[utoipa::path(
    post,
    path = "/v1/dsse/verify",
    request_body = DsseVerifyRequest,
    responses((status = 200, body = DsseVerifyResponse), KeylessErrors)
)]
pub async fn dsse_verify(
    Current(state): Current,
    Who(peer): Who,
    ApiJson(req): ApiJson<DsseVerifyRequest>,
) -> Result<Json<DsseVerifyResponse>, ApiError> {
    super::blocking(move || {
        Ok(Json(request::dsse_verify(&state.context(&Keyless::of(&peer)), DsseVerify::from_wire(&req)?)?))
    })
    .await
}

/// The JWK Set of the profiles the config publishes (`[jose] publish`; empty when none is).
#[utoipa::path(get, path = "/v1/jwks", responses((status = 200, body = Jwks), KeylessErrors))]
pub async fn jwks(Current(state): Current) -> Result<Json<Jwks>, ApiError> {
    super::blocking(move || Ok(Json(request::jwks(&state.context(&Keyless(None)))?))).await
}

/// Verifies a JWS (compact, flattened or general JSON) against public keys or a JWK Set sent in
/// the request, or the server's trust anchors.
#[utoipa::path(
    post,
    path = "/v1/jws/verify",
    request_body = JwsVerifyRequest,
    responses((status = 200, body = JwsVerifyResponse), KeylessErrors)
)]
pub async fn jws_verify(
    Current(state): Current,
    Who(peer): Who,
    ApiJson(req): ApiJson<JwsVerifyRequest>,
) -> Result<Json<JwsVerifyResponse>, ApiError> {
    super::blocking(move || {
        Ok(Json(request::jws_verify(&state.context(&Keyless::of(&peer)), JwsVerify::from_wire(&req)?)?))
    })
    .await
}

/// Verifies a JWT: its signature under the keys sent or the server's anchors, then its claims
/// (issuer and audience required unless waived, times with a leeway; RFC 8725).
#[utoipa::path(
    post,
    path = "/v1/jwt/verify",
    request_body = JwtVerifyRequest,
    responses((status = 200, body = JwtVerifyResponse), KeylessErrors)
)]
pub async fn jwt_verify(
    Current(state): Current,
    Who(peer): Who,
    ApiJson(req): ApiJson<JwtVerifyRequest>,
) -> Result<Json<JwtVerifyResponse>, ApiError> {
    super::blocking(move || {
        Ok(Json(request::jwt_verify(&state.context(&Keyless::of(&peer)), JwtVerify::from_wire(&req)?)?))
    })
    .await
}
