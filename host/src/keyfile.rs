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

const BEGIN: &[u8] = b"-----BEGIN ";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first PEM block in `bytes`, read as RFC 7468 section 2 lets a parser (and as OpenSSL
/// does): text before `-----BEGIN LABEL-----` and after `-----END LABEL-----` is ignored, and so
/// is whitespace of any kind inside (lines of any length, or all on one line).
fn pem_block(bytes: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), String> {
    let start = find(bytes, BEGIN).ok_or("no -----BEGIN line")? + BEGIN.len();
    let label_len = find(&bytes[start..], b"-----").ok_or("the -----BEGIN line does not end with -----")?;
    let label = std::str::from_utf8(&bytes[start..start + label_len])
        .ok()
        .filter(|l| l.len() <= 64 && l.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .ok_or("the PEM label is not printable text")?
        .to_string();
    let body_start = start + label_len + 5;
    let end_marker = format!("-----END {label}-----");
    let body_len = find(&bytes[body_start..], end_marker.as_bytes()).ok_or_else(|| format!("no {end_marker} line"))?;
    let body: Zeroizing<Vec<u8>> = Zeroizing::new(
        bytes[body_start..body_start + body_len].iter().copied().filter(|b| !b.is_ascii_whitespace()).collect(),
    );
    if body.contains(&b':') {
        return Err(format!("{label} has PEM headers (an encrypted legacy key?); convert it to PKCS#8 with openssl"));
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let der = STANDARD
        .decode(&*body)
        .or_else(|_| STANDARD_NO_PAD.decode(&*body))
        .map_err(|e| format!("the base64 inside {label} is invalid: {e}"))?;
    Ok((label, Zeroizing::new(der)))
}

/// Decodes PEM text, or takes the bytes as DER when they start like a DER SEQUENCE.
fn pem_or_der(path: &Path, bytes: &[u8], what: &str) -> Result<(Option<String>, Zeroizing<Vec<u8>>), FileError> {
    if find(bytes, BEGIN).is_some() {
        let (label, der) = pem_block(bytes).map_err(|e| fail(path, format!("{what} is not valid PEM: {e}")))?;
        Ok((Some(label), der))
    } else if bytes.first() == Some(&0x30) {
        Ok((None, Zeroizing::new(bytes.to_vec())))
    } else {
        Err(fail(path, format!("{what} is neither PEM nor DER")))
    }
}

/// What a DER private key that is not PKCS#8 is, by its shape: SEC1 `EC PRIVATE KEY`
/// (version 1, then an OCTET STRING) or PKCS#1 `RSA PRIVATE KEY` (version 0, then INTEGERs).
/// PKCS#8 has version 0 and then a SEQUENCE, and is `None` here.
fn legacy_der_kind(der: &[u8]) -> Option<&'static str> {
    use der::{Decode, Reader, SliceReader, Tag, Tagged, asn1::AnyRef};
    let mut outer = SliceReader::new(der).ok()?;
    let seq = AnyRef::decode(&mut outer).ok()?;
    if seq.tag() != Tag::Sequence {
        return None;
    }
    let mut inner = SliceReader::new(seq.value()).ok()?;
    let version = AnyRef::decode(&mut inner).ok()?;
    if version.tag() != Tag::Integer || inner.is_finished() {
        return None;
    }
    let next = AnyRef::decode(&mut inner).ok()?;
    match (version.value(), next.tag()) {
        ([1], Tag::OctetString) => Some("EC PRIVATE KEY"),
        ([0], Tag::Integer) => Some("RSA PRIVATE KEY"),
        _ => None,
    }
}

fn legacy_hint(l: &str) -> String {
    format!("is a legacy {l}; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8.pem`")
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
        None => match legacy_der_kind(&der) {
            Some(l) => Err(fail(path, format!("{} (DER)", legacy_hint(l)))),
            None => Ok(der),
        },
        Some("PRIVATE KEY") => Ok(der),
        Some(l @ ("EC PRIVATE KEY" | "RSA PRIVATE KEY")) => Err(fail(path, legacy_hint(l))),
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
    // A JWK (RFC 7517), or a JWK Set holding exactly one key.
    if bytes.trim_ascii_start().first() == Some(&b'{') {
        let mut keys = crate::jose::jwk::read_keys(bytes).map_err(|e| fail(path, format!("JWK: {e}")))?;
        if keys.len() != 1 {
            return Err(fail(path, format!("a JWK Set of {} keys: give one key here", keys.len())));
        }
        return Ok(keys.remove(0).spki);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An SPKI in DER: any bytes that start like a SEQUENCE serve the format tests.
    const DER: &[u8] = &[0x30, 0x0b, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x04, 0x00, 0xde, 0xad, 0xbe, 0xef];

    fn pem(lines_of: usize, before: &str, after: &str, newline: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(DER);
        let body: Vec<String> =
            b64.as_bytes().chunks(lines_of.max(1)).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        format!(
            "{before}-----BEGIN PUBLIC KEY-----{newline}{}{newline}-----END PUBLIC KEY-----{after}",
            body.join(newline)
        )
        .into_bytes()
    }

    #[test]
    fn pem_of_any_line_length_on_one_line_and_with_text_around_it_is_read() {
        let p = Path::new("k.pem");
        for text in [
            pem(64, "", "\n", "\n"),
            pem(4, "", "", "\n"),
            pem(1000, "", "", ""),
            pem(76, "Subject: test key\nIssuer: nobody\n", "\ntrailing words\n", "\r\n"),
            pem(16, "  ", "  ", " \t\n"),
        ] {
            assert_eq!(public_key_from_bytes(p, &text).unwrap(), DER, "{}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn broken_pem_says_what_is_wrong() {
        let p = Path::new("k.pem");
        let e = |t: &str| public_key_from_bytes(p, t.as_bytes()).unwrap_err().to_string();
        assert!(e("-----BEGIN PUBLIC KEY-----\nAAAA\n").contains("no -----END PUBLIC KEY----- line"));
        assert!(
            e("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----").contains("no -----END PUBLIC KEY-----")
        );
        assert!(e("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----").contains("base64"));
        assert!(
            e("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----")
                .contains("PEM headers")
        );
        assert!(e("not a key").contains("neither PEM nor DER"));
    }

    #[test]
    fn a_legacy_der_private_key_gets_the_conversion_hint() {
        let p = Path::new("k.der");
        // SEC1: SEQUENCE { INTEGER 1, OCTET STRING ... }
        let sec1 = [0x30, 0x07, 0x02, 0x01, 0x01, 0x04, 0x02, 0xaa, 0xbb];
        let e = private_key_from_bytes(p, &sec1).unwrap_err().to_string();
        assert!(
            e.contains("legacy EC PRIVATE KEY") && e.contains("openssl pkcs8 -topk8") && e.contains("(DER)"),
            "{e}"
        );
        // PKCS#1: SEQUENCE { INTEGER 0, INTEGER n, ... }
        let pkcs1 = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x05];
        assert!(private_key_from_bytes(p, &pkcs1).unwrap_err().to_string().contains("legacy RSA PRIVATE KEY"));
        // PKCS#8: SEQUENCE { INTEGER 0, SEQUENCE ..., OCTET STRING } is taken as it is.
        let pkcs8 = [0x30, 0x0a, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x03, 0x01, 0x02, 0x03];
        assert_eq!(&*private_key_from_bytes(p, &pkcs8).unwrap(), &pkcs8);
    }
}
