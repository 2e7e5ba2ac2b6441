//! C2SP signed notes (<https://c2sp.org/signed-note>) and transparency-log checkpoints
//! (<https://c2sp.org/tlog-checkpoint>).
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, and one or more signature
//! lines `— <key name> base64(4-byte key ID || signature)`. A checkpoint is a note whose text is
//! `origin\nsize\nbase64(root)\n[extension lines]`.
//!
//! This module has no signature code of its own: [`sign_note`] takes a closure that signs the
//! note text, and [`open_note`] a closure that checks one signature against one [`Verifier`].
//! It parses, formats, computes key IDs, and applies the spec's acceptance rules:
//!
//! * a note is at most [`MAX_NOTE_LEN`] bytes with at most [`MAX_SIGNATURES`] signature lines
//!   (the spec requires accepting at least 16);
//! * the text ends at the note's last blank line;
//! * signatures whose (key name, key ID) match no known verifier are ignored;
//! * a signature from a known key that fails to verify rejects the whole note;
//! * at least one signature from a known key must verify.
//!
//! Base64 is RFC 4648 §4 standard base64 with canonical padding (decoding is strict: non-zero
//! trailing bits are refused).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// The largest note [`open_note`] reads and [`sign_note`] produces: 1 MiB.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// The most signature lines [`open_note`] reads (the spec: verifiers "MUST accept at least up to
/// 16 signatures"; Go's `golang.org/x/mod/sumdb/note` also stops at 100).
pub const MAX_SIGNATURES: usize = 100;

/// The longest key name accepted, in bytes (the spec sets no limit; this bounds every input).
pub const MAX_KEY_NAME_LEN: usize = 1024;

/// The longest verifier key text [`Verifier::parse`] reads.
pub const MAX_VKEY_LEN: usize = 4096;

/// The most extension lines a [`Checkpoint`] may have.
pub const MAX_CHECKPOINT_EXTENSIONS: usize = 64;

/// The longest DER SubjectPublicKeyInfo accepted for [`SigType::Ecdsa`] (P-521, uncompressed, is
/// 158 bytes).
pub const MAX_ECDSA_SPKI_LEN: usize = 200;

/// The longest and shortest DER ECDSA signatures accepted for [`SigType::Ecdsa`]
/// (P-521 is at most 139 bytes; `SEQUENCE { INTEGER, INTEGER }` at least 8).
const ECDSA_SIG_LEN: std::ops::RangeInclusive<usize> = 8..=141;

const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("note contains control character 0x{byte:02x} at byte {offset}: only newline (0x0a) is allowed")]
    ControlCharacter { offset: usize, byte: u8 },
    #[error("note text is empty or does not end with a newline")]
    TextMissingNewline,
    #[error("note has no blank line separating the text from the signatures")]
    NoSignatureBlock,
    #[error("note has no signature lines after its last blank line, or they do not end with a newline")]
    EmptySignatureBlock,
    #[error("note has {count} signature lines, more than the limit of {max}")]
    TooManySignatures { count: usize, max: usize },
    #[error("signature line {line}: {reason}")]
    BadSignatureLine { line: usize, reason: &'static str },
    #[error("invalid key name: {reason}")]
    InvalidKeyName { reason: &'static str },
    #[error("invalid verifier key: {reason}")]
    BadVerifierKey { reason: &'static str },
    #[error("verifier key for {name} states key ID {stated:08x} but its key's ID is {computed:08x}")]
    KeyIdMismatch { name: String, stated: u32, computed: u32 },
    #[error("signature type 0x{0:02x} is not supported (supported: 0x01 Ed25519, 0x02 ECDSA)")]
    UnsupportedSigType(u8),
    #[error("invalid {sig_type:?} public key: {reason}")]
    BadPublicKey { sig_type: SigType, reason: &'static str },
    #[error("more than one verifier has key name {name} and key ID {key_id:08x}")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("signature by known key {name}+{key_id:08x} is {len} bytes, but a {sig_type:?} signature is {expected}")]
    SignatureLength { name: String, key_id: u32, sig_type: SigType, len: usize, expected: &'static str },
    #[error("signature by known key {name}+{key_id:08x} does not verify: the note is rejected")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("no signature from a known key ({ignored} signature(s) from unknown keys ignored)")]
    NoVerifiedSignature { ignored: usize },
    #[error("the signer failed: {0}")]
    SignerFailed(String),
    #[error("the signer returned a {len}-byte signature, but a {sig_type:?} signature is {expected}")]
    SignerOutput { sig_type: SigType, len: usize, expected: &'static str },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// Why a checkpoint body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("body is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("body does not end with a newline")]
    MissingFinalNewline,
    #[error("body has {lines} lines; a checkpoint has at least origin, size and root hash")]
    TooFewLines { lines: usize },
    #[error("line {line} is empty; checkpoint lines must be non-empty")]
    EmptyLine { line: usize },
    #[error("line {line} contains a control character or newline")]
    ControlCharacter { line: usize },
    #[error("origin is empty")]
    EmptyOrigin,
    #[error("tree size: {0}")]
    BadSize(&'static str),
    #[error("root hash: {0}")]
    BadRoot(&'static str),
    #[error("{count} extension lines, more than the limit of {max}")]
    TooManyExtensions { count: usize, max: usize },
}

/// A signature type identifier byte, as assigned in the C2SP signed-note spec, section
/// "Signature types". Only the two types below are understood; any other byte in a verifier key
/// is [`NoteError::UnsupportedSigType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigType {
    /// `0x01`: "Ed25519 signatures as specified by this document" (section "Ed25519
    /// signatures"): RFC 8032 Ed25519 over the note text; the public key is the 32-byte RFC 8032
    /// encoding; the signature is 64 bytes; key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte
    /// Ed25519 public key)[:4].
    Ed25519,
    /// `0x02`. The spec (section "Signature types") says, in full:
    ///
    /// > `0x02` — ECDSA signatures as implemented by github.com/transparency-dev/witness.
    /// >
    /// > * The ECDSA curve MUST be one of NIST P-256, NIST P-384, or NIST P-521, and SHOULD be
    /// >   NIST P-256.
    /// > * Note that the key ID for these signatures is the truncated SHA-256 hash of the DER
    /// >   encoded public key in SPKI format.
    ///
    /// The spec defines nothing more. The encodings below are those of that implementation
    /// (transparency-dev/witness `internal/note/note_verifier.go`, since moved to
    /// transparency-dev/formats): the public key is the DER SubjectPublicKeyInfo; the vkey's
    /// base64 part is `0x02 || DER SPKI`; the key ID is SHA-256(DER SPKI)[:4] (no name, no type
    /// byte); the signature is ASN.1 DER `ECDSA-Sig-Value` over SHA-256(note text). This module
    /// checks only the outer DER framing of the key and signature; the `verify` closure must
    /// parse the key, enforce the curve, and verify.
    Ecdsa,
}

impl SigType {
    /// The identifier byte.
    pub fn byte(self) -> u8 {
        match self {
            SigType::Ed25519 => 0x01,
            SigType::Ecdsa => 0x02,
        }
    }

    /// The type for an identifier byte, or [`NoteError::UnsupportedSigType`].
    pub fn from_byte(byte: u8) -> Result<Self, NoteError> {
        match byte {
            0x01 => Ok(SigType::Ed25519),
            0x02 => Ok(SigType::Ecdsa),
            other => Err(NoteError::UnsupportedSigType(other)),
        }
    }

    /// Checks the public key's encoding for this type (length; for ECDSA the outer DER framing).
    fn check_public_key(self, key: &[u8]) -> Result<(), NoteError> {
        let bad = |reason| Err(NoteError::BadPublicKey { sig_type: self, reason });
        match self {
            SigType::Ed25519 if key.len() != 32 => bad("an Ed25519 public key is exactly 32 bytes"),
            SigType::Ed25519 => Ok(()),
            SigType::Ecdsa if key.len() > MAX_ECDSA_SPKI_LEN => bad("longer than any P-256/P-384/P-521 SPKI"),
            SigType::Ecdsa if !der_sequence_spans(key) => bad("not a single DER SEQUENCE (SubjectPublicKeyInfo)"),
            SigType::Ecdsa => Ok(()),
        }
    }

    /// Checks a signature's length (and for ECDSA its outer DER framing); on failure returns what
    /// was expected.
    fn check_signature(self, sig: &[u8]) -> Result<(), &'static str> {
        match self {
            SigType::Ed25519 if sig.len() == 64 => Ok(()),
            SigType::Ed25519 => Err("exactly 64 bytes"),
            SigType::Ecdsa if ECDSA_SIG_LEN.contains(&sig.len()) && der_sequence_spans(sig) => Ok(()),
            SigType::Ecdsa => Err("a DER SEQUENCE of 8 to 141 bytes"),
        }
    }
}

/// Whether `der` is exactly one DER SEQUENCE with a definite length of at most 255 bytes.
fn der_sequence_spans(der: &[u8]) -> bool {
    match der {
        [0x30, len, rest @ ..] if *len < 0x80 => rest.len() == usize::from(*len),
        [0x30, 0x81, len, rest @ ..] => *len >= 0x80 && rest.len() == usize::from(*len),
        _ => false,
    }
}

/// Checks a key name: non-empty, at most [`MAX_KEY_NAME_LEN`] bytes, no Unicode white space
/// (`char::is_whitespace`, the same set as Go's `unicode.IsSpace`), no `+` (signed-note spec,
/// section "Format"), and no ASCII control character (which no note may contain).
pub fn check_key_name(name: &str) -> Result<(), NoteError> {
    let bad = |reason| Err(NoteError::InvalidKeyName { reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_KEY_NAME_LEN {
        return bad("it is longer than 1024 bytes");
    }
    if name.contains('+') {
        return bad("it contains '+'");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("it contains white space");
    }
    if name.bytes().any(|b| b < 0x20) {
        return bad("it contains an ASCII control character");
    }
    Ok(())
}

/// The key ID of a key, as a big-endian `u32` (the first 4 bytes of a SHA-256 hash).
///
/// * [`SigType::Ed25519`]: `SHA-256(name || 0x0A || 0x01 || public_key)[:4]` (the spec's
///   recommended construction).
/// * [`SigType::Ecdsa`]: `SHA-256(DER SPKI)[:4]` (the spec: "the truncated SHA-256 hash of the
///   DER encoded public key in SPKI format"); the name does not enter it.
///
/// Fails if the name or the public key's encoding is invalid for the type.
pub fn key_id(name: &str, sig_type: SigType, public_key: &[u8]) -> Result<u32, NoteError> {
    check_key_name(name)?;
    sig_type.check_public_key(public_key)?;
    let mut h = Sha256::new();
    if sig_type == SigType::Ed25519 {
        h.update(name.as_bytes());
        h.update([0x0A, sig_type.byte()]);
    }
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    Ok(u32::from_be_bytes([a, b, c, d]))
}

/// A known public key: name, key ID, type and key bytes. Always valid: built only by
/// [`Verifier::new`] (which computes the key ID) or [`Verifier::parse`] (which checks it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verifier {
    name: String,
    key_id: u32,
    sig_type: SigType,
    public_key: Vec<u8>,
}

impl Verifier {
    /// A verifier for `public_key` under `name`; computes the key ID with [`key_id`].
    pub fn new(name: &str, sig_type: SigType, public_key: &[u8]) -> Result<Self, NoteError> {
        let key_id = key_id(name, sig_type, public_key)?;
        Ok(Self { name: name.to_owned(), key_id, sig_type, public_key: public_key.to_vec() })
    }

    /// Parses a verifier key `<name>+<hex(key ID)>+<base64(type byte || public key)>` (spec
    /// section "Verifier keys"). The key ID must be exactly 8 hex digits (either case) and must
    /// equal the ID computed from the key; the type must be one this module supports.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::BadVerifierKey { reason };
        if vkey.len() > MAX_VKEY_LEN {
            return Err(bad("longer than 4096 bytes"));
        }
        let (name, rest) = vkey.split_once('+').ok_or(bad("no '+' after the key name"))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(bad("no '+' after the key ID"))?;
        check_key_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key ID is not exactly 8 hex digits"));
        }
        let stated = u32::from_str_radix(id_hex, 16).map_err(|_| bad("the key ID is not exactly 8 hex digits"))?;
        let raw = B64.decode(key_b64).map_err(|_| bad("the key is not valid standard base64"))?;
        let (&type_byte, public_key) = raw.split_first().ok_or(bad("the key is empty"))?;
        let verifier = Self::new(name, SigType::from_byte(type_byte)?, public_key)?;
        if verifier.key_id != stated {
            return Err(NoteError::KeyIdMismatch { name: name.to_owned(), stated, computed: verifier.key_id });
        }
        Ok(verifier)
    }

    /// The verifier key text `<name>+<8 lowercase hex digits>+<base64(type || key)>`.
    pub fn to_vkey(&self) -> String {
        let mut typed = Vec::with_capacity(1 + self.public_key.len());
        typed.push(self.sig_type.byte());
        typed.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.key_id, B64.encode(typed))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn sig_type(&self) -> SigType {
        self.sig_type
    }

    /// The public key bytes, without the type byte (Ed25519: 32 bytes; ECDSA: DER SPKI).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

/// Refuses ASCII control characters other than newline. Multi-byte UTF-8 sequences contain no
/// byte below 0x80, so a byte scan is exact.
fn check_no_controls(text: &str) -> Result<(), NoteError> {
    match text.bytes().enumerate().find(|&(_, b)| b < 0x20 && b != b'\n') {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { offset, byte }),
        None => Ok(()),
    }
}

/// Signs `text` as a note with one signature: returns `text + "\n" + "— name base64(keyid || sig)\n"`.
///
/// `sign` receives exactly the text's bytes and returns the raw signature (Ed25519: 64 bytes;
/// ECDSA: DER). Guarantees: the result opens with [`open_note`] given
/// `Verifier::new(name, sig_type, public_key)` and a verifier that accepts the signature. Fails,
/// without calling `sign`, if the text is empty, does not end with a newline, contains a control
/// character other than newline, or is too large; if the name or key is invalid. Fails after
/// calling it if it errs or returns a signature of the wrong size for the type.
pub fn sign_note<E: std::fmt::Display>(
    text: &str,
    name: &str,
    sig_type: SigType,
    public_key: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<String, NoteError> {
    let signer = Verifier::new(name, sig_type, public_key)?;
    sign_note_as(text, &signer, sign)
}

/// [`sign_note`] with the key given as a [`Verifier`].
pub fn sign_note_as<E: std::fmt::Display>(
    text: &str,
    signer: &Verifier,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    check_no_controls(text)?;
    // Room for the blank line and one signature line of the largest supported signature.
    let max_sig_b64 = (4 + *ECDSA_SIG_LEN.end()).div_ceil(3) * 4;
    let budget = 1 + SIG_PREFIX.len() + signer.name.len() + 1 + max_sig_b64 + 1;
    if text.len() > MAX_NOTE_LEN.saturating_sub(budget) {
        return Err(NoteError::TooLarge { len: text.len(), max: MAX_NOTE_LEN.saturating_sub(budget) });
    }
    let sig = sign(text.as_bytes()).map_err(|e| NoteError::SignerFailed(e.to_string()))?;
    signer.sig_type.check_signature(&sig).map_err(|expected| NoteError::SignerOutput {
        sig_type: signer.sig_type,
        len: sig.len(),
        expected,
    })?;
    let mut blob = Vec::with_capacity(4 + sig.len());
    blob.extend_from_slice(&signer.key_id.to_be_bytes());
    blob.extend_from_slice(&sig);
    Ok(format!("{text}\n{SIG_PREFIX}{} {}\n", signer.name, B64.encode(blob)))
}

/// Opens a signed note: checks its format and signatures and returns its text (with the final
/// newline, without the blank line) and the names of the known keys whose signatures verified
/// (each once, in order of appearance).
///
/// `verify(verifier, text, signature)` is called once for every signature line whose key name
/// and key ID match exactly one of `verifiers`, with the signature bytes after the key ID (whose
/// length has been checked for the key's type); it must return whether the signature is valid.
///
/// Rules (signed-note spec, sections "Format" and "Signatures"): the note is at most
/// [`MAX_NOTE_LEN`] bytes of UTF-8 with no control character but newline; the text ends at the
/// note's last blank line and must be followed by 1 to [`MAX_SIGNATURES`] well-formed signature
/// lines; signatures from unknown keys are ignored; a signature from a known key that does not
/// verify rejects the note ([`NoteError::InvalidSignature`]); two verifiers with the same name
/// and key ID are refused ([`NoteError::AmbiguousKey`]); at least one known signature must
/// verify ([`NoteError::NoVerifiedSignature`]).
pub fn open_note(
    note: &str,
    verifiers: &[Verifier],
    verify: impl Fn(&Verifier, &[u8], &[u8]) -> bool,
) -> Result<(String, Vec<String>), NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: note.len(), max: MAX_NOTE_LEN });
    }
    check_no_controls(note)?;
    let split = note.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
    // `split` is a byte index of an ASCII newline, so both slices fall on char boundaries.
    let (text, sigs) = match (note.get(..split + 1), note.get(split + 2..)) {
        (Some(text), Some(sigs)) => (text, sigs),
        _ => return Err(NoteError::NoSignatureBlock),
    };
    let Some(sigs) = sigs.strip_suffix('\n') else { return Err(NoteError::EmptySignatureBlock) };
    if sigs.is_empty() {
        return Err(NoteError::EmptySignatureBlock);
    }
    let count = sigs.split('\n').count();
    if count > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures { count, max: MAX_SIGNATURES });
    }

    let mut verified: Vec<String> = Vec::new();
    let mut ignored = 0usize;
    for (i, line) in sigs.split('\n').enumerate() {
        let bad = |reason| NoteError::BadSignatureLine { line: i + 1, reason };
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(bad("does not start with an em dash (U+2014) and a space"))?;
        let (name, b64) = rest.split_once(' ').ok_or(bad("no space between the key name and the signature"))?;
        check_key_name(name).map_err(|_| bad("the key name is empty or contains white space, '+' or controls"))?;
        if b64.is_empty() {
            return Err(bad("the signature is empty"));
        }
        let blob = B64.decode(b64).map_err(|_| bad("the signature is not valid standard base64"))?;
        let Some((id_bytes, sig)) = blob.split_first_chunk::<4>() else {
            return Err(bad("the signature is shorter than its 4-byte key ID"));
        };
        if sig.is_empty() {
            return Err(bad("the signature has a key ID but no signature bytes"));
        }
        let id = u32::from_be_bytes(*id_bytes);

        let mut matching = verifiers.iter().filter(|v| v.name == name && v.key_id == id);
        let Some(v) = matching.next() else {
            ignored += 1;
            continue;
        };
        if matching.next().is_some() {
            return Err(NoteError::AmbiguousKey { name: name.to_owned(), key_id: id });
        }
        v.sig_type.check_signature(sig).map_err(|expected| NoteError::SignatureLength {
            name: name.to_owned(),
            key_id: id,
            sig_type: v.sig_type,
            len: sig.len(),
            expected,
        })?;
        if !verify(v, text.as_bytes(), sig) {
            return Err(NoteError::InvalidSignature { name: name.to_owned(), key_id: id });
        }
        if !verified.iter().any(|n| n == name) {
            verified.push(name.to_owned());
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoVerifiedSignature { ignored });
    }
    Ok((text.to_owned(), verified))
}

/// A transparency-log checkpoint: the note text of c2sp.org/tlog-checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity; non-empty, one line. The spec recommends a schema-less URL without
    /// spaces or `+` but tells clients not to assume it; this module only requires non-empty.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash of the tree at `size`.
    pub root: [u8; 32],
    /// Opaque, non-empty extension lines (the spec: "NOT RECOMMENDED").
    pub extensions: Vec<String>,
}

/// Checks one checkpoint line: non-empty, no control characters (hence no newline).
fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::EmptyLine { line: number });
    }
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::ControlCharacter { line: number });
    }
    Ok(())
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root: [u8; 32]) -> Self {
        Self { origin: origin.to_owned(), size, root, extensions: Vec::new() }
    }

    /// The note text: `origin\nsize\nbase64(root)\n` followed by each extension line and `\n`.
    ///
    /// Guarantees: the result parses back with [`Checkpoint::parse`] to an equal checkpoint.
    /// Fails if the origin is empty, any line is empty or holds a control character (newline
    /// included), or there are more than [`MAX_CHECKPOINT_EXTENSIONS`] extension lines.
    pub fn body(&self) -> Result<String, CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        check_line(&self.origin, 1)?;
        if self.extensions.len() > MAX_CHECKPOINT_EXTENSIONS {
            return Err(CheckpointError::TooManyExtensions {
                count: self.extensions.len(),
                max: MAX_CHECKPOINT_EXTENSIONS,
            });
        }
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root));
        for (i, ext) in self.extensions.iter().enumerate() {
            check_line(ext, i + 4)?;
            body.push_str(ext);
            body.push('\n');
        }
        if body.len() > MAX_NOTE_LEN {
            return Err(CheckpointError::TooLarge { len: body.len(), max: MAX_NOTE_LEN });
        }
        Ok(body)
    }

    /// Parses a checkpoint's note text (as returned by [`open_note`]) strictly: at most
    /// [`MAX_NOTE_LEN`] bytes ending in a newline; at least three lines, all non-empty and free of
    /// control characters; a decimal size with no sign and no leading zero (except `0`) that fits
    /// a `u64`; a root that is canonical standard base64 of exactly 32 bytes; at most
    /// [`MAX_CHECKPOINT_EXTENSIONS`] extension lines.
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        if body.len() > MAX_NOTE_LEN {
            return Err(CheckpointError::TooLarge { len: body.len(), max: MAX_NOTE_LEN });
        }
        let body = body.strip_suffix('\n').ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        for (i, line) in lines.iter().enumerate() {
            check_line(line, i + 1)?;
        }
        if extensions.len() > MAX_CHECKPOINT_EXTENSIONS {
            return Err(CheckpointError::TooManyExtensions { count: extensions.len(), max: MAX_CHECKPOINT_EXTENSIONS });
        }
        Ok(Self {
            origin: (*origin).to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
            extensions: extensions.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

fn parse_size(text: &str) -> Result<u64, CheckpointError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::BadSize("not a plain decimal number"));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(CheckpointError::BadSize("leading zero"));
    }
    text.parse::<u64>().map_err(|_| CheckpointError::BadSize("larger than 2^64 - 1"))
}

fn parse_root(text: &str) -> Result<[u8; 32], CheckpointError> {
    if text.len() != 44 {
        return Err(CheckpointError::BadRoot("not 44 base64 characters (32 bytes)"));
    }
    let bytes = B64.decode(text).map_err(|_| CheckpointError::BadRoot("not canonical standard base64"))?;
    bytes.try_into().map_err(|_| CheckpointError::BadRoot("does not decode to 32 bytes"))
}

/// Opens a signed checkpoint: [`open_note`], then [`Checkpoint::parse`] of its text. Returns the
/// checkpoint and the names of the keys whose signatures verified. Whether the origin must
/// match a key name ("SHOULD" in the spec) is left to the caller.
pub fn open_checkpoint(
    note: &str,
    verifiers: &[Verifier],
    verify: impl Fn(&Verifier, &[u8], &[u8]) -> bool,
) -> Result<(Checkpoint, Vec<String>), NoteError> {
    let (text, names) = open_note(note, verifiers, verify)?;
    Ok((Checkpoint::parse(&text)?, names))
}

#[cfg(test)]
#[path = "note_tests.rs"]
mod tests;
