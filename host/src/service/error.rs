//! Errors as the socket's clients see them: `{"error": {"kind", "message"}}` with a status that
//! says whose fault it is. A bad request never takes the server down.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ProviderError, RegistryError};
use crate::keys::KeyError;

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `bad-request`, `denied`, `too-large`, `overloaded`, `not-ready`, `provider`, `internal`.
    pub kind: String,
    pub message: String,
}

/// An error a handler returns.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

/// What every refusal to use a key says, whether the key is forbidden or absent, so that
/// nobody learns which keys exist.
pub const DENIED: &str = "access denied: no rule lets this caller use that key or profile for this operation, \
     or there is no such key";

impl ApiError {
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, kind: "bad-request", message: message.into() }
    }

    pub fn denied() -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, kind: "denied", message: DENIED.into() }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, kind: "internal", message: message.into() }
    }

    pub fn overloaded(per_uid: bool) -> ApiError {
        let message = if per_uid {
            "this uid is at its limit of concurrent requests ([service] max_per_uid); retry shortly"
        } else {
            "the server is at its limit of concurrent requests ([service] max_concurrent); retry shortly"
        };
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, kind: "overloaded", message: message.into() }
    }

    pub fn not_ready(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, kind: "not-ready", message: message.into() }
    }
}

fn from_provider(error: &ProviderError, message: String) -> ApiError {
    match error {
        ProviderError::KeyNotFound(_) => ApiError::denied(),
        ProviderError::Unsupported(_) | ProviderError::InvalidKey(_) | ProviderError::InvalidInput(_) => {
            ApiError::bad(message)
        }
        ProviderError::Failed(_) | ProviderError::Fault(_) => {
            ApiError { status: StatusCode::BAD_GATEWAY, kind: "provider", message }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match &e {
            RegistryError::Provider { error, .. } => from_provider(error, e.to_string()),
            RegistryError::NoNamespace { .. } => ApiError::denied(),
            RegistryError::NoProvider { .. } | RegistryError::Input(_) | RegistryError::Io(_) => {
                ApiError::bad(e.to_string())
            }
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> ApiError {
        match e {
            KeyError::Provider { ref error, .. } => from_provider(error, e.to_string()),
            KeyError::Registry(r) => r.into(),
            KeyError::Reference { .. } => ApiError::denied(),
            KeyError::Audit(a) => ApiError::internal(a.to_string()),
            KeyError::File(f) => ApiError::bad(f.to_string()),
            KeyError::Input(m) => ApiError::bad(m),
            KeyError::Output { .. } => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let overloaded = self.kind == "overloaded";
        let body = ErrorBody { error: ErrorDetail { kind: self.kind.into(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if overloaded {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON body whose rejections (not JSON, wrong content type, too large) are answered in the
/// same `{"error": ...}` form as every other error.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let status = rejection.status();
                let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "too-large" } else { "bad-request" };
                Err(ApiError { status, kind, message: rejection.body_text() })
            }
        }
    }
}
