//! The OpenAPI document of the routes (served at `/v1/openapi.json`, checked in under docs/):
//! the paths from the handlers, the schemas from the wire types themselves.

use cryptohost_client::api;
use utoipa::OpenApi;

use super::{keyed, keyless};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cryptohost",
        description = "The long-running crypto provider host, over a Unix socket. \
        Every error is an ErrorBody whose kind fixes the status: bad-request 400, denied 403, not-found 404, \
        method-not-allowed 405, too-large 413, unsupported-media-type 415, internal 500, provider 502, \
        overloaded 503 (with Retry-After), not-ready 503, timeout 504."
    ),
    paths(
        keyless::health,
        keyless::ready,
        keyless::providers,
        keyless::hash,
        keyless::verify,
        keyless::dsse_verify,
        keyless::jwks,
        keyless::jws_verify,
        keyless::jwt_verify,
        openapi,
        keyed::sign,
        keyed::sign_stream,
        keyed::dsse_sign,
        keyed::jws_sign,
        keyed::jwt_sign,
        keyed::key_public,
        keyed::key_generate,
        keyed::key_rotate,
        keyed::key_promote,
        keyed::key_retire,
        keyed::key_destroy,
        keyed::key_versions,
        keyed::key_csr,
        keyed::encrypt,
        keyed::decrypt,
        keyed::keys_list,
        keyed::hsm_admin,
        keyed::reload
    ),
    components(schemas(
        api::ErrorBody,
        api::ErrorDetail,
        api::ErrorKind,
        api::Health,
        api::Ready,
        api::Origin,
        api::Skipped,
        api::ServedBy,
        api::KeyOrigin,
        api::CapabilityInfo,
        api::ProviderInfo,
        api::HashQuery,
        api::HashResponse,
        api::VerifyRequest,
        api::VerifyResponse,
        api::SignRequest,
        api::SignQuery,
        api::SignResponse,
        api::Envelope,
        api::EnvelopeSignature,
        api::DsseKey,
        api::DsseSignRequest,
        api::DsseSignResponse,
        api::DssePublicKey,
        api::DsseVerifyRequest,
        api::DsseVerifyResponse,
        api::Jwks,
        api::KeyFormatQuery,
        api::KeyRotateRequest,
        api::KeyVersionRequest,
        api::KeyVersionsRequest,
        api::KeyVersionInfo,
        api::KeyVersions,
        api::KeyCsrRequest,
        api::KeyCsrResponse,
        api::JwsSignRequest,
        api::JwsSigned,
        api::JwsSignResponse,
        api::JoseKeys,
        api::JwsVerifyRequest,
        api::JwsSignatureReport,
        api::JwsVerifyResponse,
        api::JwtVerifyRequest,
        api::JwtVerifyResponse,
        api::JwtSignRequest,
        api::KeyRequest,
        api::PublicKeyResponse,
        api::KeyListing,
        api::TokenStatus,
        api::HsmReport,
        api::EncryptRequest,
        api::Sealed,
        api::DecryptRequest,
        api::Plaintext,
        api::Reloaded
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, body = Object)))]
pub async fn openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (axum::http::StatusCode::OK, json, self::json()).into_response()
}
