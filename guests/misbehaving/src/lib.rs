//! A test-only provider that misbehaves on request, to prove the host's sandbox limits.
//!
//! `hashing.digest("SHA-256", data)` reads `data` as a command: `loop` spins forever, `grow`
//! allocates without end, `panic` panics, `recurse` overflows the stack, `spam` writes 100,000
//! long log lines at error level that pretend to be the host's; anything else answers
//! `unsupported`, so a registry falls back to the next provider. `SHA-512` is served honestly
//! (so a test can see this provider win on priority). `open-verifier` always panics (a trap in
//! the middle of a registry call). ES256 signing takes any imported key and then traps while
//! holding it (the registry must not carry that key on to another provider). It is built with
//! the real guests but never configured.

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "signer",
    });
}

use bindings::cryptohost::provider::types::{Capability, CapabilitySupport, CryptoError, SignatureFormat};
use bindings::exports::cryptohost::provider::{hashing, metadata, signing, verification};

struct Misbehaving;

fn no() -> CryptoError {
    CryptoError::Unsupported("the misbehaving test provider declines".into())
}

impl metadata::Guest for Misbehaving {
    fn info() -> metadata::ProviderInfo {
        metadata::ProviderInfo {
            name: "misbehaving".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                CapabilitySupport {
                    capability: Capability::Hashing,
                    algorithms: vec!["SHA-256".into(), "SHA-512".into()],
                },
                CapabilitySupport { capability: Capability::Verification, algorithms: vec!["ES256".into()] },
                CapabilitySupport { capability: Capability::Signing, algorithms: vec!["ES256".into()] },
            ],
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), CryptoError> {
        Ok(())
    }
}

/// Recursion on scalars only: every frame lives on the wasm stack (not Rust's shadow stack in
/// linear memory), so this hits the host's `max_wasm_stack` limit.
#[inline(never)]
#[allow(unconditional_recursion, reason = "overflowing the stack is the point")]
fn recurse(depth: u64) -> u64 {
    recurse(std::hint::black_box(depth + 1)).wrapping_mul(3) ^ depth
}

pub struct NoHasher;

impl hashing::GuestHasher for NoHasher {
    fn update(&self, _data: Vec<u8>) {}
    fn finish(&self) -> Result<Vec<u8>, CryptoError> {
        Err(no())
    }
}

impl hashing::Guest for Misbehaving {
    type Hasher = NoHasher;

    fn digest(algorithm: String, data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if algorithm == "SHA-512" {
            use sha2::Digest;
            return Ok(sha2::Sha512::digest(&data).to_vec());
        }
        match data.as_slice() {
            b"loop" => loop {
                std::hint::black_box(&data);
            },
            b"grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            b"panic" => panic!("the misbehaving provider panics on request"),
            b"recurse" => Ok(recurse(0).to_le_bytes().to_vec()),
            b"spam" => {
                use bindings::cryptohost::provider::host::{LogLevel, log};
                let line = format!("cryptohost: error: forged by a guest {}", "x".repeat(4096));
                for _ in 0..100_000 {
                    log(LogLevel::Error, &line);
                }
                Err(no())
            }
            _ => Err(no()),
        }
    }

    fn open_hasher(_algorithm: String) -> Result<hashing::Hasher, CryptoError> {
        Err(no())
    }
}

pub struct NoVerifier;

impl verification::GuestVerifier for NoVerifier {
    fn verify(&self, _m: Vec<u8>, _s: Vec<u8>, _f: SignatureFormat) -> Result<bool, CryptoError> {
        Ok(true)
    }
    fn verify_digest(&self, _d: Vec<u8>, _s: Vec<u8>, _f: SignatureFormat) -> Result<bool, CryptoError> {
        Ok(true)
    }
    fn algorithm(&self) -> String {
        "ES256".into()
    }
}

impl verification::Guest for Misbehaving {
    type Verifier = NoVerifier;

    fn open_verifier(_algorithm: String, _spki_der: Vec<u8>) -> Result<verification::Verifier, CryptoError> {
        panic!("the misbehaving provider traps in open-verifier")
    }
}

impl signing::Guest for Misbehaving {
    fn import_pkcs8(_der: Vec<u8>) -> Result<String, CryptoError> {
        Ok("held".into())
    }
    fn generate(_a: String, _b: u32, _e: bool) -> Result<String, CryptoError> {
        Err(no())
    }
    fn public_key(_k: String) -> Result<Vec<u8>, CryptoError> {
        Err(no())
    }
    fn export_pkcs8(_k: String) -> Result<Vec<u8>, CryptoError> {
        Err(no())
    }
    fn sign(_k: String, _a: String, _m: Vec<u8>, _f: SignatureFormat) -> Result<Vec<u8>, CryptoError> {
        panic!("the misbehaving provider traps while holding an imported key")
    }
    fn sign_digest(_k: String, _a: String, _d: Vec<u8>, _f: SignatureFormat) -> Result<Vec<u8>, CryptoError> {
        panic!("the misbehaving provider traps while holding an imported key")
    }
    fn named_key(_n: String, _a: String, _b: u32, _c: bool) -> Result<String, CryptoError> {
        Err(no())
    }
    fn delete_key(_k: String) {}
}

bindings::export!(Misbehaving with_types_in bindings);
