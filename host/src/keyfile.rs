//! Reading key and signature files: PEM or DER keys, binary or base64 signatures.
//! Pure format handling; every cryptographic check happens in a provider.

use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

/// A key or signature file that cannot be used, with the reason in words.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FileError {
    pub path: String,
    pub message: String,
}

fn fail(path: &Path, message: impl Into<String>) -> FileError {
    FileError { path: path.display().to_string(), message: message.into() }
}

fn read(path: &Path, what: &str, limit: u64) -> Result<Zeroizing<Vec<u8>>, FileError> {
    // Bounded before reading, and only a regular file: a 3 GiB "signature" or a fifo as a key
    // is refused, not read.
    let bytes = Zeroizing::new(crate::fsio::read_bounded(path, limit, what).map_err(|e| fail(path, e.message))?);
    if bytes.is_empty() {
        return Err(fail(path, format!("{what} file is empty")));
    }
    Ok(bytes)
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
}

/// Decodes PEM text, or takes the bytes as DER when they start like a DER SEQUENCE.
fn pem_or_der(path: &Path, bytes: &[u8], what: &str) -> Result<(Option<String>, Zeroizing<Vec<u8>>), FileError> {
    if looks_like_pem(bytes) {
        let text =
            std::str::from_utf8(bytes.trim_ascii()).map_err(|_| fail(path, format!("{what} PEM is not text")))?;
        let (label, der) = pem_rfc7468::decode_vec(text.as_bytes())
            .map_err(|e| fail(path, format!("{what} is not valid PEM: {e}")))?;
        Ok((Some(label.to_string()), Zeroizing::new(der)))
    } else if bytes.first() == Some(&0x30) {
        Ok((None, Zeroizing::new(bytes.to_vec())))
    } else {
        Err(fail(path, format!("{what} is neither PEM nor DER")))
    }
}

/// Reads a PKCS#8 private key (PEM `PRIVATE KEY`, or DER). Other key formats are refused with
/// the command that converts them.
///
/// # Errors
/// Unreadable, empty, not PEM/DER, or a PEM label other than `PRIVATE KEY`.
pub fn read_private_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let bytes = read(path, "private key", crate::fsio::limits::KEY)?;
    private_key_from_bytes(path, &bytes)
}

/// As [`read_private_key`], from bytes already read (`path` names them in errors).
///
/// # Errors
/// As [`read_private_key`].
pub fn private_key_from_bytes(path: &Path, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let (label, der) = pem_or_der(path, bytes, "private key")?;
    match label.as_deref() {
        None | Some("PRIVATE KEY") => Ok(der),
        Some(l @ ("EC PRIVATE KEY" | "RSA PRIVATE KEY")) => Err(fail(
            path,
            format!(
                "is a legacy {l}; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8.pem`"
            ),
        )),
        Some("ENCRYPTED PRIVATE KEY") => {
            Err(fail(path, "is an encrypted PKCS#8 key; decrypt it first (`openssl pkcs8 -in KEY -out PLAIN.pem`)"))
        }
        Some("PUBLIC KEY") => Err(fail(path, "is a public key, not a private key")),
        Some(other) => Err(fail(path, format!("PEM label {other:?} is not a PKCS#8 PRIVATE KEY"))),
    }
}

/// Reads an SPKI public key (PEM `PUBLIC KEY`, or DER).
///
/// # Errors
/// Unreadable, empty, not PEM/DER, or a PEM label other than `PUBLIC KEY`.
pub fn read_public_key(path: &Path) -> Result<Vec<u8>, FileError> {
    let bytes = read(path, "public key", crate::fsio::limits::KEY)?;
    public_key_from_bytes(path, &bytes)
}

/// As [`read_public_key`], from bytes already read (`path` names them in errors).
///
/// # Errors
/// Empty, not PEM/DER, or a PEM label other than `PUBLIC KEY`.
pub fn public_key_from_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    if bytes.is_empty() {
        return Err(fail(path, "public key file is empty"));
    }
    let (label, der) = pem_or_der(path, bytes, "public key")?;
    match label.as_deref() {
        None | Some("PUBLIC KEY") => Ok(der.to_vec()),
        Some("RSA PUBLIC KEY") => Err(fail(
            path,
            "is a PKCS#1 RSA PUBLIC KEY; convert it with `openssl rsa -RSAPublicKey_in -in KEY -pubout`",
        )),
        Some("CERTIFICATE") => Err(fail(path, "is a certificate; extract its key with `openssl x509 -pubkey -noout`")),
        Some(l) if l.contains("PRIVATE KEY") => Err(fail(path, "is a private key; give the public key (SPKI PEM)")),
        Some(other) => Err(fail(path, format!("PEM label {other:?} is not a PUBLIC KEY"))),
    }
}

/// Reads a signature: base64 (standard or URL-safe, whitespace ignored) when the file is
/// only base64 text, raw bytes otherwise.
///
/// # Errors
/// Unreadable or empty.
pub fn read_signature(path: &Path) -> Result<Vec<u8>, FileError> {
    let bytes = read(path, "signature", crate::fsio::limits::SIGNATURE)?;
    Ok(signature_from_bytes(&bytes))
}

/// As [`read_signature`], from bytes already read.
#[must_use]
pub fn signature_from_bytes(bytes: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let b64_alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
    if !text.is_empty()
        && text.iter().all(b64_alphabet)
        && let Some(decoded) = decode_base64(&text)
    {
        return decoded;
    }
    bytes.to_vec()
}

/// Decodes standard or URL-safe base64, padded or not.
pub fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(text).ok())
}

/// PEM-encodes DER under a label (LF line endings).
///
/// # Errors
/// Only if the label is invalid.
pub fn to_pem(label: &str, der: &[u8]) -> Result<Zeroizing<String>, FileError> {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map(Zeroizing::new)
        .map_err(|e| FileError { path: String::new(), message: format!("PEM encoding failed: {e}") })
}
