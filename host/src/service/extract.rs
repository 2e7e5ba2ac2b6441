//! What a handler gets from a request, and how its errors become answers: the snapshot of the
//! serving set, the peer as a [`Gate`](crate::request::Gate), JSON bodies and query strings
//! whose rejections are answered in the one error schema, and the one table from an error's
//! class to its status ([`ErrorKind::status`]), used by every route, the fallbacks for unknown
//! routes and methods, and the admission layer.

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cryptohost_client::api::{ErrorBody, ErrorDetail, ErrorKind};

use super::access::{Identity, Peer};
use super::{Inner, Shared};
use crate::audit::Caller;
use crate::config::Operation;
use crate::request::{Context, Gate, RequestError, Target};

/// An error answer: a class (whose status is fixed) and a message.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
    }

    pub fn overloaded(why: super::admission::Refusal) -> ApiError {
        ApiError::new(ErrorKind::Overloaded, why.message())
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        // A denial reads the same whatever its cause: nobody learns which keys exist.
        ApiError::new(e.kind(), e.public_message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let overloaded = self.kind == ErrorKind::Overloaded;
        let body = ErrorBody { error: ErrorDetail { kind: self.kind, message: self.message } };
        let mut response = (status, Json(body)).into_response();
        if overloaded {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The error answers of a route that uses a key, each class with its one status (the same
/// table `extract` answers with).
#[derive(utoipa::IntoResponses)]
pub enum KeyedErrors {
    /// bad-request: the request is malformed or names something unusable.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// denied: no rule lets the caller use that key or profile, or there is no such key or
    /// profile (the same answer).
    #[response(status = 403)]
    Denied(ErrorBody),
    /// too-large: the body is over `[service] max_body_mib`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// internal: the audit line could not be written, so nothing was done with the key.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// provider: the provider that holds the key failed or faulted.
    #[response(status = 502)]
    Provider(ErrorBody),
}

/// The error answers of a route that holds no key.
#[derive(utoipa::IntoResponses)]
pub enum KeylessErrors {
    /// bad-request: the request is malformed or names something unusable.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// too-large: the body is over `[service] max_body_mib`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

/// The class of a rejection axum made (a body, a query, a path), by its status.
fn rejected(status: StatusCode, message: String) -> ApiError {
    let kind = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::UnsupportedMediaType,
        // Malformed JSON, a field of the wrong type or an unknown field, a bad query string:
        // all the caller's request (axum says 422 for some; the schema says 400 for all).
        _ => ErrorKind::BadRequest,
    };
    ApiError::new(kind, message)
}

/// No route has this path.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no route {} (the routes are in /v1/openapi.json)", request.uri().path()),
    )
}

/// The route exists, but not for this method.
pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed on {} (see /v1/openapi.json)", request.method(), request.uri().path()),
    )
}

/// A JSON body whose rejections (not JSON, a wrong or unknown field, wrong content type, too
/// large) are answered in the error schema.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// A query string, its rejections (a missing or unknown parameter) answered in the error schema.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// The snapshot of the serving set a handler works on: taken when the request starts, kept
/// until it ends, whatever a reload swaps in meanwhile.
pub struct Current(pub Arc<Inner>);

impl FromRequestParts<Arc<Shared>> for Current {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        Ok(Current(shared.current()))
    }
}

/// The peer of the request's connection (SO_PEERCRED), or nobody.
pub struct Who(pub Peer);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Who(parts.extensions.get::<ConnectInfo<Peer>>().map_or_else(Peer::nobody, |c| c.0.clone())))
    }
}

/// The server's gate: the configured `[[service.allow]]` rules applied to the peer. Absent keys
/// and profiles look forbidden, and no path a client sends is ever opened.
pub struct RuleGate<'a> {
    rules: &'a [crate::config::AllowRule],
    who: Identity,
}

impl<'a> RuleGate<'a> {
    /// The gate of `peer` on the set `inner` (its identity looked up once per connection).
    pub fn new(inner: &'a Inner, peer: &Peer) -> RuleGate<'a> {
        RuleGate { rules: &inner.config.service.allow, who: Identity::resolve(peer, inner.config.service.peer_groups) }
    }
}

impl Gate for RuleGate<'_> {
    fn allows(&self, operations: &[Operation], target: &Target<'_>) -> bool {
        operations.iter().any(|op| super::access::allowed(self.rules, &self.who, *op, target))
    }

    fn caller(&self) -> Option<Caller> {
        Some(self.who.caller())
    }

    fn hides_absence(&self) -> bool {
        true
    }

    fn local_files(&self) -> bool {
        false
    }
}

/// The gate of the routes that hold no key: they never ask it (nothing they do is gated or
/// audited), so no peer identity is looked up for them; and a server opens no client path.
pub struct Keyless(pub Option<Caller>);

impl Keyless {
    /// The gate of a keyless route asked by `peer` (its verifications are recorded with it).
    pub fn of(peer: &Peer) -> Keyless {
        Keyless(Some(Caller { uid: peer.uid, gid: peer.gid, pid: peer.pid, user: None }))
    }
}

impl Gate for Keyless {
    fn allows(&self, _: &[Operation], _: &Target<'_>) -> bool {
        false
    }

    fn caller(&self) -> Option<Caller> {
        self.0.clone()
    }

    fn hides_absence(&self) -> bool {
        true
    }

    fn local_files(&self) -> bool {
        false
    }
}

impl Inner {
    /// The request layer's context for one request through `gate`.
    pub fn context<'a>(&'a self, gate: &'a dyn Gate) -> Context<'a> {
        Context::new(&self.host, &self.config, &self.sink, gate)
    }
}

/// A reader over request-body chunks handed across from the async side.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, String>>,
    current: axum::body::Bytes,
}

impl Read for ChunkReader {
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

/// Runs `work` on the blocking pool over the request body as a stream (any size; never
/// buffered). Once `work` returns (a refusal before reading, or the answer), no more of the
/// body is read.
pub async fn streamed<T: Send + 'static>(
    body: Body,
    work: impl FnOnce(&mut dyn Read) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _in = span.enter();
        let mut reader = ChunkReader { rx, current: axum::body::Bytes::new() };
        work(&mut reader)
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
    task.await.map_err(|e| ApiError::internal(e.to_string()))?
}
