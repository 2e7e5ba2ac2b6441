//! The guest boundary: arbitrary keys, signatures, messages, digests and ciphertexts into each
//! real component, straight through the provider interface the registry uses.

use std::sync::OnceLock;

use cryptohost::load::{Host, TrustMode};
use cryptohost::{Config, CryptoProvider, ProviderError, SigFormat, SignInput};

const SIGNATURE_ALGORITHMS: &[&str] = &[
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
    "ML-DSA-44",
    "ML-DSA-65",
    "ML-DSA-87",
    "HS256",
    "none",
    "",
];
const HASHES: &[&str] = &["SHA-256", "SHA-384", "SHA-512", "SHA-1", "sha256", ""];

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let config = Config::load(&super::config_file("")).expect("the fuzz config loads");
        cryptohost::load::open(&config, TrustMode::DevManifest).expect("the built components load")
    })
}

/// Splits off a part whose length the next two bytes give (big-endian).
fn take(data: &[u8]) -> (&[u8], &[u8]) {
    let [hi, lo, rest @ ..] = data else { return (&[], &[]) };
    let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    rest.split_at(n)
}

/// Byte 0 picks the algorithm, byte 1 the operation and format; then a key, a signature (or
/// ciphertext, or nonce) and the message, each but the last after its 2-byte length.
pub fn guest_boundary(data: &[u8]) {
    for (provider, op, answer) in guest_answers(data) {
        if let Err(e) = answer
            && super::is_finding(&e)
        {
            panic!("provider {provider} trapped on hostile input (op {op}): {e}");
        }
    }
}

/// What each component answered to `data`: its name, the operation, and the answer in words.
pub fn guest_answers(data: &[u8]) -> Vec<(String, u8, Result<String, ProviderError>)> {
    let [pick, op, rest @ ..] = data else { return Vec::new() };
    let alg = SIGNATURE_ALGORITHMS[usize::from(*pick) % SIGNATURE_ALGORITHMS.len()];
    let hash = HASHES[usize::from(*pick) % HASHES.len()];
    let format = if op & 0x10 == 0 { SigFormat::Der } else { SigFormat::P1363 };
    let (key, rest) = take(rest);
    let (sig, msg) = take(rest);
    let input = if op & 0x20 == 0 { SignInput::Message(msg) } else { SignInput::Digest(msg) };
    let mut answers = Vec::new();
    for p in host().registry.providers() {
        let p: &dyn CryptoProvider = p.as_ref();
        let answer = match op % 5 {
            0 => p.digest(hash, msg).map(|d| format!("digest of {} bytes", d.len())),
            1 => p.verify_once(alg, key, input, sig, format).map(|v| format!("valid: {v}")),
            2 => p.open_verifier(alg, key).and_then(|v| v.verify(input, sig, format)).map(|v| format!("valid: {v}")),
            3 => p.import_pkcs8(key).and_then(|id| {
                let signed = p.sign(&id, alg, input, format).map(|s| format!("signature of {} bytes", s.len()));
                p.delete_key(&id);
                signed
            }),
            _ => p.import_secret("A256GCM", key).and_then(|id| {
                let (nonce, ciphertext) = sig.split_at(sig.len().min(12));
                let opened = p.decrypt(&id, nonce, ciphertext, msg).map(|m| format!("opened {} bytes", m.len()));
                p.delete_key(&id);
                opened
            }),
        };
        answers.push((p.descriptor().name.clone(), op % 5, answer));
    }
    answers
}
