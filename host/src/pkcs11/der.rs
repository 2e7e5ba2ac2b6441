//! The little DER the HSM backend needs: SPKI from token attributes, ECDSA r||s to DER, and
//! the PKCS#1 DigestInfo prefixes. Encoding only; nothing here parses untrusted input except
//! the EC point wrapper, which is length-checked.

/// OID ecPublicKey (1.2.840.10045.2.1), DER.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID rsaEncryption (1.2.840.113549.1.1.1) followed by NULL parameters.
const RSA_ALG_ID_BODY: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
/// Named-curve parameters (DER OIDs), as CKA_EC_PARAMS holds them.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes (minimal encoding).
pub fn integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|&&b| b == 0).count();
    let mut body = magnitude[skip..].to_vec();
    if body.is_empty() || body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    tlv(0x02, &body)
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(bytes);
    tlv(0x03, &body)
}

/// SPKI of an RSA public key from its modulus and exponent.
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let key = seq(&[&integer(modulus), &integer(exponent)]);
    seq(&[&tlv(0x30, RSA_ALG_ID_BODY), &bit_string(&key)])
}

/// SPKI of an EC public key from CKA_EC_PARAMS and CKA_EC_POINT (which PKCS#11 wraps in a DER
/// OCTET STRING; some modules return the raw point).
///
/// # Errors
/// The point is neither a raw uncompressed point nor an OCTET STRING holding one.
pub fn ec_spki(params: &[u8], ec_point: &[u8]) -> Result<Vec<u8>, String> {
    let point = match ec_point {
        [0x04, len, rest @ ..] if *len as usize == rest.len() && rest.first() == Some(&0x04) => rest,
        [0x04, 0x81, len, rest @ ..] if *len as usize == rest.len() && rest.first() == Some(&0x04) => rest,
        [0x04, ..] => ec_point,
        _ => return Err("CKA_EC_POINT is not an uncompressed point".into()),
    };
    Ok(seq(&[&seq(&[OID_EC_PUBLIC_KEY, params]), &bit_string(point)]))
}

/// ECDSA r||s (what CKM_ECDSA returns) as DER `SEQUENCE { r, s }`.
///
/// # Errors
/// The signature has an odd length.
pub fn ecdsa_p1363_to_der(sig: &[u8]) -> Result<Vec<u8>, String> {
    if sig.is_empty() || sig.len() % 2 != 0 {
        return Err(format!("CKM_ECDSA returned {} bytes, not r||s", sig.len()));
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    Ok(seq(&[&integer(r), &integer(s)]))
}

/// The DER DigestInfo prefix that CKM_RSA_PKCS needs before a raw digest (RFC 8017 §9.2).
pub fn digest_info_prefix(hash: &str) -> Option<&'static [u8]> {
    match hash {
        "SHA-256" => Some(&[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
            0x20,
        ]),
        "SHA-384" => Some(&[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04,
            0x30,
        ]),
        "SHA-512" => Some(&[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04,
            0x40,
        ]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(integer(&[0, 0, 1]), [0x02, 0x01, 0x01]);
        assert_eq!(integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 0]), [0x02, 0x01, 0x00]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
    }

    #[test]
    fn ecdsa_der_round_trip_shape() {
        let mut sig = vec![0u8; 64];
        sig[0] = 0x80;
        sig[63] = 1;
        let der = ecdsa_p1363_to_der(&sig).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(der[2..5], [0x02, 0x21, 0x00]);
        assert!(ecdsa_p1363_to_der(&[1, 2, 3]).is_err());
    }
}
