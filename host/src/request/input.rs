//! The input of a sign or verify, whatever the front end had: a file (the CLI), a stream (a
//! request body), bytes (a JSON field) or a digest a client computed. Decided once, here: an
//! algorithm with a host-side hash (ES*, RS*, PS*) gets the digest, streamed through a hashing
//! provider; EdDSA and ML-DSA get the whole message, read within the payload limit. What the
//! audit line records is decided here too: the digest signed with its hash, and the SHA-256 of
//! exactly the bytes the host saw, from the same read.

use std::io::{Cursor, Read};
use std::path::Path;

use cryptohost_client::api::ServedBy;
use sha2::{Digest, Sha256};

use super::{Context, RequestError, served_by};
use crate::alg::SignatureAlgorithm;
use crate::audit::AuditInput;
use crate::fsio;
use crate::provider::{Capability, SignInput};

/// What is signed or verified.
pub enum Input<'a> {
    /// A file the front end may open (the CLI's own); streamed, never read whole unless the
    /// algorithm signs whole messages.
    File(&'a Path),
    /// A stream that cannot be rewound (a request body).
    Stream(&'a mut dyn Read),
    /// Bytes already in memory.
    Bytes(&'a [u8]),
    /// A digest under the algorithm's hash, computed by the caller.
    Digest(Vec<u8>),
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(p) => write!(f, "File({})", p.display()),
            Input::Stream(_) => f.write_str("Stream"),
            Input::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Input::Digest(d) => write!(f, "Digest({})", hex::encode(d)),
        }
    }
}

impl<'a> Input<'a> {
    /// A digest given as hex.
    ///
    /// # Errors
    /// Not hex.
    pub fn digest_hex(text: &str) -> Result<Input<'a>, RequestError> {
        hex::decode(text.trim()).map(Input::Digest).map_err(|_| RequestError::Invalid("digest is not hex".into()))
    }
}

/// The input made ready for one algorithm.
pub(super) struct Prepared {
    /// The whole message, or its digest.
    bytes: Vec<u8>,
    is_digest: bool,
    /// The provider that hashed, when the host hashed.
    pub hashed_by: Option<ServedBy>,
    pub audit: AuditInput,
}

impl Prepared {
    /// The digest signed or verified, when there is one (a prehashing algorithm).
    pub fn digest(&self, alg: &crate::alg::SignatureAlgorithm) -> Option<cryptohost_client::api::Digest> {
        match (self.is_digest, alg.hash) {
            (true, Some(h)) => {
                Some(cryptohost_client::api::Digest { hash: h.to_string(), hex: hex::encode(&self.bytes) })
            }
            _ => None,
        }
    }

    pub fn sign_input(&self) -> SignInput<'_> {
        if self.is_digest { SignInput::Digest(&self.bytes) } else { SignInput::Message(&self.bytes) }
    }
}

/// A reader that also feeds every byte it reads to a native SHA-256 (what the audit line
/// records), so both digests come from one read.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    sha: Option<Sha256>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.sha.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Prepares `input` for `alg`; with `audited`, also what the audit line records (a verify
/// writes no audit line, so nothing extra is hashed for one).
///
/// # Errors
/// A digest for an algorithm that signs whole messages, a digest of the wrong length, an
/// unusable file, a message over the payload limit, or no provider for the hash.
pub(super) fn prepare(
    ctx: &Context<'_>,
    alg: &SignatureAlgorithm,
    input: Input<'_>,
    audited: bool,
) -> Result<Prepared, RequestError> {
    let limit = ctx.config.max_payload;
    match (alg.hash, input) {
        (Some(hash), Input::Digest(digest)) => {
            let expected = crate::alg::hash_len(hash);
            if Some(digest.len()) != expected {
                return Err(RequestError::Invalid(format!(
                    "digest is {} bytes; a {hash} digest is {} bytes",
                    digest.len(),
                    expected.unwrap_or(0)
                )));
            }
            let audit = AuditInput::none().with_digest(hash, &digest);
            Ok(Prepared { bytes: digest, is_digest: true, hashed_by: None, audit })
        }
        (None, input) => whole_message(alg, input, limit, audited),
        (Some(hash), Input::File(path)) => {
            let mut file = fsio::open_regular(path, "input")?;
            digest_of(ctx, hash, &mut file, audited, true)
        }
        (Some(hash), Input::Stream(mut reader)) => digest_of(ctx, hash, &mut reader, audited, false),
        (Some(hash), Input::Bytes(bytes)) => digest_of(ctx, hash, &mut Cursor::new(bytes), audited, true),
    }
}

/// EdDSA and ML-DSA: the whole message, read within `limit`.
fn whole_message(
    alg: &SignatureAlgorithm,
    input: Input<'_>,
    limit: usize,
    audited: bool,
) -> Result<Prepared, RequestError> {
    let why = |e: String| RequestError::Invalid(format!("{e} ({} signs and verifies whole messages)", alg.name));
    let message = match input {
        Input::File(path) => {
            fsio::read_bounded(path, limit as u64, "message to sign whole").map_err(|e| why(e.to_string()))?
        }
        Input::Bytes(b) if b.len() > limit => {
            return Err(why(format!("the message of {} bytes is over the limit of {limit} bytes", b.len())));
        }
        Input::Bytes(b) => b.to_vec(),
        Input::Stream(r) => {
            let mut message = Vec::new();
            r.take(limit as u64 + 1).read_to_end(&mut message).map_err(|e| why(format!("reading the message: {e}")))?;
            if message.len() > limit {
                return Err(why(format!("the message is over the limit of {limit} bytes")));
            }
            message
        }
        Input::Digest(_) => {
            return Err(RequestError::Invalid(format!(
                "{} signs whole messages: send the data, not a digest",
                alg.name
            )));
        }
    };
    let audit = if audited { AuditInput::whole(&Sha256::digest(&message)) } else { AuditInput::none() };
    Ok(Prepared { bytes: message, is_digest: false, hashed_by: None, audit })
}

/// Streams `reader` through a hashing provider for `hash` (and, when audited, a native SHA-256
/// of the same bytes). A reader that `rewinds` (a file, bytes) may be retried on the next
/// provider after a fault halfway; a stream may not (the bytes are gone), so its fault is the
/// answer.
fn digest_of(
    ctx: &Context<'_>,
    hash: &'static str,
    reader: &mut dyn ReadSeekOrNot,
    audited: bool,
    rewinds: bool,
) -> Result<Prepared, RequestError> {
    let registry = &ctx.host.registry;
    let mut sha = None;
    let mut whole_is_digest = false;
    let falls_back = |e: &crate::ProviderError| {
        matches!(e, crate::ProviderError::Unsupported(_)) || (rewinds && matches!(e, crate::ProviderError::Fault(_)))
    };
    let served = registry.serve_with(Capability::Hashing, hash, falls_back, |p, a| {
        reader.rewind_if_possible().map_err(|e| crate::ProviderError::InvalidInput(format!("rewinding input: {e}")))?;
        // The host's own SHA-256 is what the audit line's whole-input digest would compute
        // again over the same bytes: then it is taken once. A component's digest is never
        // taken for it (the line records what the host itself saw).
        whole_is_digest = audited && a == "SHA-256" && crate::native::NativeHashing::is(p.descriptor());
        let mut tee = Tee { inner: reader.as_read(), sha: (audited && !whole_is_digest).then(Sha256::new) };
        let digest = p.digest_reader(a, &mut tee);
        sha = tee.sha;
        digest
    })?;
    let mut audit = match sha {
        Some(h) => AuditInput::whole(&h.finalize()),
        None if whole_is_digest => AuditInput::whole(&served.value),
        None => AuditInput::none(),
    };
    if audited {
        audit = audit
            .with_digest(hash, &served.value)
            .hashed_by(Some(crate::audit::HashedBy::of(served.provider.as_ref())));
    }
    Ok(Prepared { hashed_by: Some(served_by(&served)), bytes: served.value, is_digest: true, audit })
}

/// A reader that may be rewound for a second provider (a file, bytes) or not (a stream).
pub(super) trait ReadSeekOrNot {
    fn as_read(&mut self) -> &mut dyn Read;
    fn rewind_if_possible(&mut self) -> std::io::Result<()>;
}

impl ReadSeekOrNot for std::fs::File {
    fn as_read(&mut self) -> &mut dyn Read {
        self
    }
    fn rewind_if_possible(&mut self) -> std::io::Result<()> {
        std::io::Seek::rewind(self)
    }
}

impl ReadSeekOrNot for Cursor<&[u8]> {
    fn as_read(&mut self) -> &mut dyn Read {
        self
    }
    fn rewind_if_possible(&mut self) -> std::io::Result<()> {
        self.set_position(0);
        Ok(())
    }
}

impl ReadSeekOrNot for &mut dyn Read {
    fn as_read(&mut self) -> &mut dyn Read {
        &mut **self
    }
    fn rewind_if_possible(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
