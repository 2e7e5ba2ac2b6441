//! The audit log as a transparency log: its lines are the leaves of an RFC 6962 / RFC 9162
//! Merkle tree (`merkle`), and its signed tree heads are C2SP checkpoints in the C2SP
//! signed-note format (`note`), so that tools of the transparency-log ecosystem (Go's
//! `golang.org/x/mod/sumdb/note` and `sumdb/tlog`, for one) check it as they check any log.
//!
//! Why our own code for these two formats rather than a crate: the signature must be made by
//! an audit key held anywhere the registry reaches (an HSM key included), so signing is a
//! closure here, not a private key a crate holds; the crates that cover the formats
//! (`signed_note`, `tlog_tiles`: young, one maintainer, on the previous RustCrypto generation;
//! `ct-merkle`: no C2SP notes) would add a second SHA-2 and Ed25519 stack. Both modules are
//! small, checked against the published RFC 6962 vectors and Go's note tests, and against
//! Go's implementation itself (`tests/all/audit_tlog.rs`).

pub mod merkle;
pub mod note;

use spki::SubjectPublicKeyInfoRef;
use spki::der::Decode as _;

/// The signed-note verifier for the audit key whose public key is `spki_der`, named `origin`:
/// an Ed25519 key (signature type 0x01, the raw 32-byte key) or an ECDSA P-256 key (type 0x02,
/// the DER SPKI, as C2SP signed-note assigns it).
///
/// # Errors
/// Any other key, said plainly.
pub fn verifier(origin: &str, spki_der: &[u8]) -> Result<note::Verifier, String> {
    const ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");
    const EC: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|e| format!("not a public key: {e}"))?;
    let made = if spki.algorithm.oid == ED25519 {
        let raw = spki.subject_public_key.as_bytes().ok_or("an Ed25519 key with unused bits")?;
        note::Verifier::new(origin, note::SigType::Ed25519, raw)
    } else if spki.algorithm.oid == EC
        && spki.algorithm.parameters.and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok()) == Some(P256)
    {
        note::Verifier::new(origin, note::SigType::Ecdsa, spki_der)
    } else {
        return Err(format!(
            "the audit key must be Ed25519 or ECDSA P-256 (the signed-note signature types), not {}",
            spki.algorithm.oid
        ));
    };
    made.map_err(|e| e.to_string())
}
