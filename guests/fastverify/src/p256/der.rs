//! Strict parsing of ECDSA signature encodings for P-256.
//!
//! Handles public data only (no secrets); variable time.
//!
//! DER (X.690 distinguished encoding) of `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`
//! is unique, and this parser accepts nothing else: no BER long-form lengths where the short
//! form fits, no indefinite lengths, no trailing bytes (inside or after the SEQUENCE), no
//! negative integers, no superfluous leading zero bytes. Integers must fit in 256 bits; the
//! range check `0 < v < n` is left to verification.

/// Reads one minimally encoded, non-negative INTEGER of at most 256 bits from the front of
/// `input`; returns it left-padded to 32 bytes and the rest of `input`.
fn integer(input: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag != 0x02 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    // Short-form length only: any INTEGER that fits in 256 bits is at most 33 bytes long.
    let len = len as usize;
    if len == 0 || len > 33 || rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    if content[0] & 0x80 != 0 {
        return None; // negative
    }
    let digits = if content[0] == 0 && len > 1 {
        if content[1] & 0x80 == 0 {
            return None; // leading zero not needed for the sign: non-minimal
        }
        &content[1..]
    } else {
        content
    };
    if digits.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - digits.len()..].copy_from_slice(digits);
    Some((out, rest))
}

/// Parses a strict-DER ECDSA signature into `(r, s)` as 32-byte big-endian integers.
pub fn parse_der(sig: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    let (&tag, rest) = sig.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, body) = rest.split_first()?;
    // The longest valid body is 2 × (2 + 33) = 70 bytes, so the length is always short-form.
    if len >= 0x80 || body.len() != len as usize {
        return None;
    }
    let (r, body) = integer(body)?;
    let (s, body) = integer(body)?;
    if !body.is_empty() {
        return None;
    }
    Some((r, s))
}

/// Splits an IEEE P1363 signature (`r || s`, exactly 64 bytes) into `(r, s)`.
pub fn parse_p1363(sig: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    if sig.len() != 64 {
        return None;
    }
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    s.copy_from_slice(&sig[32..]);
    Some((r, s))
}
