//! Signing keys on the token: sign (ECDSA, PKCS#1 v1.5, PSS), public keys as SPKI, generate under a free label.

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use sha2::Digest;

use super::Pkcs11Provider;
use super::connection::Token;
use super::encoding::{self, Curve};
use super::errors::OpError;
use crate::error::ProviderError;
use crate::keyref::Pkcs11Uri;
use crate::provider::{KeyId, SigFormat, SignInput};

pub(super) const SIGNING: [&str; 8] = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

fn hash_of(alg: &str) -> Result<&'static str, ProviderError> {
    crate::alg::signature_hash(alg).ok_or_else(|| ProviderError::Unsupported(format!("unknown algorithm {alg:?}")))
}

fn host_digest(hash: &str, data: &[u8]) -> Vec<u8> {
    match hash {
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => sha2::Sha256::digest(data).to_vec(),
    }
}

fn mech_type_for(hash: &str) -> (MechanismType, PkcsMgfType, u64) {
    match hash {
        "SHA-384" => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
        "SHA-512" => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
        _ => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
    }
}

fn check_signing_alg(algorithm: &str) -> Result<(), ProviderError> {
    if SIGNING.contains(&algorithm) {
        Ok(())
    } else {
        Err(ProviderError::Unsupported(format!("the PKCS#11 backend does not sign {algorithm}")))
    }
}

impl Pkcs11Provider {
    pub(super) fn sign_with(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<(Vec<u8>, String), ProviderError> {
        check_signing_alg(algorithm)?;
        let uri = super::parse_key(key)?;
        let hash = hash_of(algorithm)?;
        let digest = match input {
            SignInput::Message(m) => host_digest(hash, m),
            SignInput::Digest(d) => {
                let want = host_digest(hash, b"").len();
                if d.len() != want {
                    return Err(ProviderError::InvalidInput(format!(
                        "{algorithm} needs a {want}-byte {hash} digest, got {}",
                        d.len()
                    )));
                }
                d.to_vec()
            }
        };
        self.run_served(&format!("sign with {uri}"), Some(&uri), |session, token| {
            let handle = self.find(session, token, &uri, ObjectClass::PRIVATE_KEY)?;
            self.check_key(session, token, handle, &uri, algorithm)?;
            if let Some(curve) = Curve::for_alg(algorithm) {
                // CKM_ECDSA signs with a fresh random k (not RFC 6979): HSM signatures differ
                // from call to call, and all of them verify.
                let raw = session.sign(&Mechanism::Ecdsa, handle, &digest)?;
                return match format {
                    SigFormat::P1363 => Ok(raw),
                    SigFormat::Der => encoding::ecdsa_p1363_to_der(curve, &raw)
                        .map_err(|m| OpError::Refused(ProviderError::Failed(m))),
                };
            }
            if crate::alg::signature(algorithm).is_some_and(|a| a.family == crate::alg::Family::RsaPkcs1) {
                let info =
                    encoding::digest_info(hash, &digest).map_err(|m| OpError::Refused(ProviderError::Failed(m)))?;
                return Ok(session.sign(&Mechanism::RsaPkcs, handle, &info)?);
            }
            let (hash_alg, mgf, s_len) = mech_type_for(hash);
            let params = PkcsPssParams { hash_alg, mgf, s_len: s_len.into() };
            Ok(session.sign(&Mechanism::RsaPkcsPss(params), handle, &digest)?)
        })
    }

    /// The key pair a URI names; with `create`, a new key pair generated under it, refused
    /// when any key (of any type) already holds that label or id on an eligible token.
    pub(super) fn named_key_pair(
        &self,
        name: &str,
        algorithm: &str,
        rsa_bits: u32,
        create: bool,
    ) -> Result<KeyId, ProviderError> {
        check_signing_alg(algorithm)?;
        let uri = Pkcs11Uri::parse(name).map_err(ProviderError::InvalidKey)?;
        if !create {
            self.run(&format!("find {uri}"), Some(&uri), |s, t| {
                self.find(s, t, &uri, ObjectClass::PRIVATE_KEY).map(|_| ())
            })?;
            return Ok(KeyId(uri.to_uri()));
        }
        if uri.object.is_none() {
            return Err(ProviderError::InvalidKey("a key to generate needs object= (its label)".into()));
        }
        self.refuse_if_taken(&uri)?;
        self.run(&format!("generate {uri}"), Some(&uri), |s, t| {
            // Checked again on the session that generates: another process may have been quicker.
            if let Some(existing) = self.existing_key(s, t, &uri)? {
                return Err(OpError::Refused(taken(&uri, &existing)));
            }
            self.generate_pair(s, &uri, algorithm, rsa_bits)
        })?;
        Ok(KeyId(uri.to_uri()))
    }

    /// Refuses a URI to generate under when a key already holds its label or id on any token
    /// it could land on, naming that key.
    pub(super) fn refuse_if_taken(&self, uri: &Pkcs11Uri) -> Result<(), ProviderError> {
        let found = self.run(&format!("look for keys under {uri}"), Some(uri), |s, t| {
            self.existing_key(s, t, uri)?.ok_or_else(|| OpError::Missing(format!("nothing under {uri}")))
        });
        match found {
            Ok(existing) => Err(taken(uri, &existing)),
            Err(ProviderError::KeyNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn generate_pair(&self, session: &Session, uri: &Pkcs11Uri, alg: &str, rsa_bits: u32) -> Result<(), OpError> {
        let label = uri.object.clone().unwrap_or_default().into_bytes();
        let id = uri.id.clone().unwrap_or_else(|| sha2::Sha256::digest(&label)[..8].to_vec());
        let common_pub = vec![
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let common_priv = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(label),
            Attribute::Id(id),
        ];
        let (mech, mut pub_t) = match Curve::for_alg(alg) {
            Some(curve) => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(curve.ec_params().map_err(|m| OpError::Refused(ProviderError::Failed(m)))?)],
            ),
            None => {
                let bits = if rsa_bits == 0 { 3072 } else { rsa_bits };
                if !(2048..=8192).contains(&bits) {
                    return Err(OpError::Refused(ProviderError::InvalidInput(format!(
                        "RSA key size {bits} not supported (2048..=8192)"
                    ))));
                }
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![Attribute::ModulusBits(u64::from(bits).into()), Attribute::PublicExponent(vec![1, 0, 1])],
                )
            }
        };
        pub_t.extend(common_pub);
        session.generate_key_pair(&mech, &pub_t, &common_priv)?;
        Ok(())
    }

    pub(super) fn public_spki(&self, session: &Session, token: &Token, uri: &Pkcs11Uri) -> Result<Vec<u8>, OpError> {
        let handle = self.find(session, token, uri, ObjectClass::PUBLIC_KEY)?;
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )?;
        let (mut kt, mut n, mut e, mut params, mut point) = (None, Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for a in attrs {
            match a {
                Attribute::KeyType(k) => kt = Some(k),
                Attribute::Modulus(v) => n = v,
                Attribute::PublicExponent(v) => e = v,
                Attribute::EcParams(v) => params = v,
                Attribute::EcPoint(v) => point = v,
                _ => {}
            }
        }
        let invalid = |m: String| OpError::Refused(ProviderError::InvalidKey(format!("{uri}: {m}")));
        match kt {
            Some(KeyType::RSA) => encoding::rsa_spki(&n, &e).map_err(invalid),
            Some(KeyType::EC) => encoding::ec_spki(&params, &point).map_err(invalid),
            other => Err(invalid(format!("public key type {other:?} not supported"))),
        }
    }
}

/// The refusal to generate under a name that is taken.
pub(super) fn taken(uri: &Pkcs11Uri, existing: &str) -> ProviderError {
    ProviderError::InvalidKey(format!(
        "{uri}: not generated: a key already exists under this name: {existing}. Nothing was changed; use that key, \
         or choose another object= label"
    ))
}
