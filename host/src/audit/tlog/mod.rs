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
