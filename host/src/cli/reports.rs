//! What the commands that run only here (no server route answers them) print with `--json`:
//! one type each, snake_case like the wire schema's, with a JSON Schema derived from the type
//! (`docs/cli-json/`). The commands a server answers print the wire schema's own types.

use std::path::PathBuf;

use serde::Serialize;
use utoipa::ToSchema;

/// `pin --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinReport {
    /// The config rewritten.
    #[schema(value_type = String)]
    pub config: PathBuf,
    /// The build manifest the digests came from.
    #[schema(value_type = String)]
    pub manifest: PathBuf,
    /// The toolchain the manifest names.
    pub toolchain: String,
    /// Each pin that changed, in words (empty: none did).
    pub changes: Vec<String>,
}

/// `keys generate --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyGenerated {
    /// The key reference the key was made under.
    pub key: String,
    pub algorithm: String,
    /// The SPKI PEM public key (empty for an AES key, which has none).
    pub public_key: String,
    /// Where `--pub` wrote it.
    #[schema(value_type = Option<String>)]
    pub public_key_file: Option<PathBuf>,
    /// The provider that holds the key.
    pub provider: String,
}

/// `keygen --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeygenReport {
    pub algorithm: String,
    /// The PKCS#8 PEM private key file written (mode 0600).
    #[schema(value_type = String)]
    pub private_key: PathBuf,
    #[schema(value_type = Option<String>)]
    pub public_key: Option<PathBuf>,
    /// The provider that generated it.
    pub provider: String,
}

/// `encrypt --json` and `decrypt --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Crypted {
    /// `encrypt` or `decrypt`.
    pub operation: String,
    /// The file written.
    #[schema(value_type = String)]
    pub out: PathBuf,
    /// How many bytes were written (nonce and ciphertext with tag, or plaintext).
    pub bytes: u64,
    pub provider: String,
}

/// `trust fingerprint --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fingerprint {
    /// The public key file.
    #[schema(value_type = String)]
    pub public_key: PathBuf,
    /// `sha256:` + lowercase hex of its SPKI DER.
    pub fingerprint: String,
    /// `P-256`, `RSA-3072`, `Ed25519`, `ML-DSA-65`.
    pub key_type: Option<String>,
    /// The RFC 7638 JWK thumbprint (SHA-256, base64url); absent for ML-DSA keys, which have
    /// no JWK here.
    pub jwk_thumbprint: Option<String>,
}

/// `bundle create --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BundleCreated {
    #[schema(value_type = String)]
    pub archive: PathBuf,
    /// Files the signed manifest lists.
    pub files: usize,
    pub created_at: String,
}

/// `bundle verify --json` (only a valid bundle gets here: any failure is an error, exit 2).
#[derive(Debug, Serialize, ToSchema)]
pub struct BundleVerified {
    #[schema(value_type = String)]
    pub archive: PathBuf,
    pub valid: bool,
    pub files: usize,
    pub created_at: String,
}

/// `bundle install --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BundleInstalled {
    #[schema(value_type = String)]
    pub archive: PathBuf,
    #[schema(value_type = String)]
    pub into: PathBuf,
    /// The kit's state file (the newest kit installed, the revocations seen).
    #[schema(value_type = String)]
    pub state: PathBuf,
    pub files: usize,
    pub created_at: String,
}

/// `serve --json`: one line once every component is loaded and the socket is open.
#[derive(Debug, Serialize, ToSchema)]
pub struct Serving {
    /// The Unix socket it answers on.
    #[schema(value_type = String)]
    pub socket: PathBuf,
    /// The loopback address of `/metrics`, when configured.
    pub metrics: Option<String>,
    /// Providers loaded.
    pub providers: usize,
    pub pid: u32,
    pub version: String,
}

/// `components inspect --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentInspected {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// `verifier`, `signer` or `keystore`, when the exports name exactly one.
    pub world: Option<String>,
    /// Why no world could be inferred, when none could.
    pub world_error: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Why the host would refuse it (an import it does not provide).
    pub refused: Vec<String>,
    /// The key ids of a signed component manifest beside it that lists these bytes, as
    /// claimed (checked when its kit loads).
    pub publisher_claimed: Option<String>,
    /// The build manifest beside it, when it lists these very bytes.
    pub manifest: Option<ManifestSeen>,
}

/// The build facts of a component, from its manifest.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManifestSeen {
    pub wit_package: String,
    pub toolchain: String,
    pub build_mode: String,
}

/// `components check --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentChecked {
    pub file: String,
    /// The name and version the component reports.
    pub provider: String,
    pub world: Option<String>,
    pub checks: Vec<ConformanceCheck>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// One conformance check.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConformanceCheck {
    pub capability: String,
    pub algorithm: String,
    pub name: String,
    /// `pass`, `fail` or `skip` (no known answers ship for this algorithm).
    pub outcome: String,
    pub detail: String,
}

/// The JSON Schema (2020-12) of `T`, standalone: the types it refers to under `$defs`.
fn schema_of<T: ToSchema>(title: &str, array: bool) -> serde_json::Value {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ArrayBuilder, Schema};
    let mut defs: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut defs);
    let own = T::schema();
    let root: RefOr<Schema> = if array { ArrayBuilder::new().items(own).build().into() } else { own };
    let mut doc = serde_json::to_value(&root).unwrap_or_default();
    let mut all = serde_json::Map::new();
    for (name, schema) in defs {
        all.insert(name, serde_json::to_value(&schema).unwrap_or_default());
    }
    if let Some(map) = doc.as_object_mut() {
        map.insert("$schema".into(), "https://json-schema.org/draft/2020-12/schema".into());
        map.insert("title".into(), title.into());
        if !all.is_empty() {
            map.insert("$defs".into(), serde_json::Value::Object(all));
        }
    }
    // The OpenAPI document's reference form, made standalone.
    let text = serde_json::to_string(&doc).unwrap_or_default().replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).unwrap_or_default()
}

/// The JSON Schema of every command's `--json` output, by file name (`docs/cli-json/NAME.json`).
/// Commands a server answers print the wire schema's types; the rest print this module's.
#[must_use]
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    use cryptohost_client::api;
    macro_rules! one {
        ($name:literal, [$t:ty]) => {
            ($name, schema_of::<$t>(concat!("cryptohost ", $name, " --json"), true))
        };
        ($name:literal, $t:ty) => {
            ($name, schema_of::<$t>(concat!("cryptohost ", $name, " --json"), false))
        };
    }
    vec![
        one!("doctor", [cryptohost::doctor::Check]),
        one!("providers", [api::ProviderInfo]),
        one!("hash", api::HashResponse),
        one!("sign", api::SignResponse),
        one!("verify", api::VerifyResponse),
        one!("keygen", KeygenReport),
        one!("pin", PinReport),
        one!("keys-list", [api::KeyListing]),
        one!("keys-generate", KeyGenerated),
        one!("keys-public", api::PublicKeyResponse),
        one!("keys-versions", api::KeyVersions),
        one!("keys-csr", api::KeyCsrResponse),
        one!("keys-rotate", api::KeyVersions),
        one!("keys-promote", api::KeyVersions),
        one!("keys-retire", api::KeyVersions),
        one!("keys-destroy", api::KeyVersions),
        one!("encrypt", Crypted),
        one!("decrypt", Crypted),
        one!("hsm-connect", [api::TokenStatus]),
        one!("hsm-status", [api::TokenStatus]),
        one!("hsm-disconnect", api::HsmReport),
        one!("dsse-sign", api::DsseSignResponse),
        one!("dsse-verify", api::DsseVerifyResponse),
        one!("jws-sign", api::JwsSignResponse),
        one!("jws-verify", api::JwsVerifyResponse),
        one!("jwt-sign", api::JwsSignResponse),
        one!("jwt-verify", api::JwtVerifyResponse),
        one!("trust-fingerprint", Fingerprint),
        one!("bundle-create", BundleCreated),
        one!("bundle-verify", BundleVerified),
        one!("bundle-install", BundleInstalled),
        one!("serve", Serving),
        one!("components-inspect", ComponentInspected),
        one!("components-check", ComponentChecked),
    ]
}
