//! The server's JSON request bodies, through the real router in-process (extractors, the
//! request layer, the real components): every answer is 2xx or the error schema, never a 500.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use cryptohost::load::TrustMode;
use cryptohost::service::{Shared, Source};
use http_body_util::BodyExt as _;
use tower_service::Service as _;

/// The routes that take a JSON body.
const ROUTES: &[&str] = &[
    "/v1/verify",
    "/v1/dsse/verify",
    "/v1/sign",
    "/v1/dsse/sign",
    "/v1/keys/public",
    "/v1/keys/generate",
    "/v1/encrypt",
    "/v1/decrypt",
];

struct Server {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // No access rules: keyed routes parse the body, then refuse the caller (403); keyless
        // routes (verify, DSSE verify) do the whole work.
        let source = Source {
            config_path: super::config_file("# the server's"),
            components: None,
            trust: TrustMode::DevManifest,
        };
        let shared: Arc<Shared> = Shared::new(source).expect("the fuzz server's set loads");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        Server { runtime, router: cryptohost::service::router(shared) }
    })
}

/// Byte 0 picks the route; the rest is the body.
pub fn request_body(data: &[u8]) {
    let Some((route, status, answer)) = answer(data) else { return };
    let shown = String::from_utf8_lossy(&answer);
    assert_ne!(status, 500, "{route}: 500 for a request body: {shown}");
    if !(200..300).contains(&status) {
        let error: Result<cryptohost_client::api::ErrorBody, _> = serde_json::from_slice(&answer);
        assert!(error.is_ok(), "{route}: {status} is not the error schema: {shown}");
    }
}

/// The route `data` picks, and the server's status and body for the rest as a request body.
pub fn answer(data: &[u8]) -> Option<(&'static str, u16, Vec<u8>)> {
    let (pick, body) = data.split_first()?;
    let route = ROUTES[usize::from(*pick) % ROUTES.len()];
    let s = server();
    let request = axum::http::Request::post(route)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let (status, answer) = s.runtime.block_on(async {
        let response = s.router.clone().call(request).await.expect("the router answers");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.expect("the answer's body").to_bytes();
        (status, bytes.to_vec())
    });
    Some((route, status, answer))
}
