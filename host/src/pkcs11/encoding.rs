//! DER through the RustCrypto crates: curves from CKA_EC_PARAMS, SPKI, ECDSA r||s to DER, DigestInfo.

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, EncodeValue, Length, Sequence, Writer};
use spki::EncodePublicKey;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

/// secp256r1 (1.2.840.10045.3.1.7).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (1.3.132.0.34).
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The named curves the backend signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The curve an ECDSA algorithm needs (the algorithm table says which; the backend
    /// knows P-256 and P-384).
    pub(super) fn for_alg(alg: &str) -> Option<Curve> {
        let named = crate::alg::signature(alg).filter(|a| a.family == crate::alg::Family::Ecdsa)?.key_type?;
        [Curve::P256, Curve::P384].into_iter().find(|c| c.name() == named)
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => SECP256R1,
            Curve::P384 => SECP384R1,
        }
    }

    /// CKA_EC_PARAMS for generating a key on this curve: the DER namedCurve OID.
    pub(super) fn ec_params(self) -> Result<Vec<u8>, String> {
        self.oid().to_der().map_err(|e| format!("encoding the {} OID: {e}", self.name()))
    }
}

/// The named curve in CKA_EC_PARAMS; `None` for anything else (explicit parameters, other
/// curves, garbage).
pub(super) fn curve_of(ec_params: &[u8]) -> Option<Curve> {
    match ObjectIdentifier::from_der(ec_params).ok()? {
        oid if oid == SECP256R1 => Some(Curve::P256),
        oid if oid == SECP384R1 => Some(Curve::P384),
        _ => None,
    }
}

/// SPKI of an RSA public key from CKA_MODULUS and CKA_PUBLIC_EXPONENT.
///
/// # Errors
/// The integers cannot be encoded (empty or absurdly long).
pub(super) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |e: der::Error| format!("RSA public key from CKA_MODULUS/CKA_PUBLIC_EXPONENT: {e}");
    let key = pkcs1::RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(bad)?,
        public_exponent: UintRef::new(exponent).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)?;
    SubjectPublicKeyInfoRef {
        algorithm: pkcs1::ALGORITHM_ID,
        subject_public_key: BitStringRef::from_bytes(&key).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// SPKI of an EC public key from CKA_EC_PARAMS and CKA_EC_POINT. PKCS#11 wraps the point in a
/// DER OCTET STRING; some modules return the raw point, which is accepted too. The point is
/// checked to be on the curve.
///
/// # Errors
/// Not P-256/P-384, or the point is not a valid point of the curve.
pub(super) fn ec_spki(ec_params: &[u8], ec_point: &[u8]) -> Result<Vec<u8>, String> {
    let curve = curve_of(ec_params).ok_or("CKA_EC_PARAMS names neither P-256 nor P-384")?;
    let point = match <&OctetStringRef>::from_der(ec_point) {
        Ok(inner) => inner.as_bytes(),
        Err(_) => ec_point,
    };
    let bad = |what: &str| format!("CKA_EC_POINT is not a valid {} point: {what}", curve.name());
    let doc = match curve {
        Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
            .map_err(|e| bad(&e.to_string()))?
            .to_public_key_der()
            .map_err(|e| bad(&e.to_string()))?,
        Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
            .map_err(|e| bad(&e.to_string()))?
            .to_public_key_der()
            .map_err(|e| bad(&e.to_string()))?,
    };
    Ok(doc.into_vec())
}

/// ECDSA r||s (what CKM_ECDSA returns) as DER `SEQUENCE { r, s }`, after checking that r and
/// s are in range for the curve.
///
/// # Errors
/// The signature has the wrong length for the curve, or r or s is zero or out of range.
pub(super) fn ecdsa_p1363_to_der(curve: Curve, sig: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || format!("CKM_ECDSA returned {} bytes that are not a {} r||s signature", sig.len(), curve.name());
    Ok(match curve {
        Curve::P256 => p256::ecdsa::Signature::from_slice(sig).map_err(|_| bad())?.to_der().as_bytes().to_vec(),
        Curve::P384 => p384::ecdsa::Signature::from_slice(sig).map_err(|_| bad())?.to_der().as_bytes().to_vec(),
    })
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`
/// (RFC 8017 §9.2), which CKM_RSA_PKCS signs.
struct DigestInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    digest: &'a OctetStringRef,
}

impl EncodeValue for DigestInfo<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.algorithm.encoded_len()? + self.digest.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.algorithm.encode(writer)?;
        self.digest.encode(writer)
    }
}

impl<'a> Sequence<'a> for DigestInfo<'a> {}

/// The DER DigestInfo of a digest made with `hash` (SHA-256/384/512), with NULL parameters.
///
/// # Errors
/// An unknown hash, or a digest of the wrong length for it.
pub(super) fn digest_info(hash: &str, digest: &[u8]) -> Result<Vec<u8>, String> {
    let (oid, len) = match hash {
        "SHA-256" => (SHA256, 32),
        "SHA-384" => (SHA384, 48),
        "SHA-512" => (SHA512, 64),
        other => return Err(format!("no DigestInfo for {other}")),
    };
    if digest.len() != len {
        return Err(format!("a {hash} digest is {len} bytes, got {}", digest.len()));
    }
    let bad = |e: der::Error| format!("encoding DigestInfo: {e}");
    DigestInfo {
        algorithm: AlgorithmIdentifierRef { oid, parameters: Some(AnyRef::NULL) },
        digest: OctetStringRef::new(digest).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_matches_rfc8017_prefixes() {
        // The fixed prefixes of RFC 8017 §9.2, note 1.
        let prefixes: [(&str, &str, usize); 3] = [
            ("SHA-256", "3031300d060960864801650304020105000420", 32),
            ("SHA-384", "3041300d060960864801650304020205000430", 48),
            ("SHA-512", "3051300d060960864801650304020305000440", 64),
        ];
        for (hash, prefix, len) in prefixes {
            let digest = vec![0xabu8; len];
            let info = digest_info(hash, &digest).unwrap();
            assert_eq!(hex::encode(&info[..info.len() - len]), prefix, "{hash}");
            assert_eq!(&info[info.len() - len..], &digest[..]);
        }
        assert!(digest_info("SHA-256", &[0u8; 31]).is_err());
        assert!(digest_info("MD5", &[0u8; 16]).is_err());
    }

    #[test]
    fn curves_from_ec_params() {
        assert_eq!(curve_of(&hex::decode("06082a8648ce3d030107").unwrap()), Some(Curve::P256));
        assert_eq!(curve_of(&hex::decode("06052b81040022").unwrap()), Some(Curve::P384));
        assert_eq!(curve_of(&Curve::P256.ec_params().unwrap()), Some(Curve::P256));
        assert_eq!(curve_of(&hex::decode("06052b81040023").unwrap()), None, "P-521 is not offered");
        assert_eq!(curve_of(&[0x30, 0x00]), None);
        assert_eq!(curve_of(&[]), None);
    }

    #[test]
    fn ecdsa_der_is_checked_and_minimal() {
        let mut sig = vec![0u8; 64];
        sig[0] = 0x80;
        sig[63] = 1;
        sig[31] = 1;
        let der = ecdsa_p1363_to_der(Curve::P256, &sig).unwrap();
        assert_eq!(der[0], 0x30);
        // r has its top bit set: a leading zero keeps it positive.
        assert_eq!(der[2..5], [0x02, 0x21, 0x00]);
        assert!(ecdsa_p1363_to_der(Curve::P256, &[1, 2, 3]).is_err(), "wrong length");
        assert!(ecdsa_p1363_to_der(Curve::P256, &[0u8; 64]).is_err(), "r = s = 0");
        assert!(ecdsa_p1363_to_der(Curve::P384, &sig).is_err(), "a P-256 length for P-384");
    }

    #[test]
    fn spki_from_attributes_round_trips_through_rustcrypto() {
        use p256::pkcs8::DecodePublicKey;
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let point = secret.public_key().to_sec1_bytes().into_vec();
        assert_eq!((point[0], point.len()), (0x04, 65), "uncompressed, as CKA_EC_POINT holds it");
        let wrapped = OctetStringRef::new(&point).unwrap().to_der().unwrap();
        let params = Curve::P256.ec_params().unwrap();
        for ck_point in [&wrapped[..], &point[..]] {
            let spki = ec_spki(&params, ck_point).unwrap();
            assert_eq!(p256::PublicKey::from_public_key_der(&spki).unwrap(), secret.public_key());
        }
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        assert!(ec_spki(&params, &off_curve).is_err());
        assert!(ec_spki(&hex::decode("06052b81040023").unwrap(), &wrapped).is_err());

        let n = [0xc5u8; 256];
        let spki = rsa_spki(&n, &[1, 0, 1]).unwrap();
        let parsed = SubjectPublicKeyInfoRef::from_der(&spki).unwrap();
        assert_eq!(parsed.algorithm.oid, pkcs1::ALGORITHM_OID);
        let key = pkcs1::RsaPublicKey::<UintRef<'_>>::from_der(parsed.subject_public_key.raw_bytes()).unwrap();
        assert_eq!(key.modulus.as_bytes(), &n[..]);
        assert_eq!(key.public_exponent.as_bytes(), &[1, 0, 1]);
    }
}
