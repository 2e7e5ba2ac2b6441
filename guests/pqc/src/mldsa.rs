//! ML-DSA (FIPS 204) keys and signatures: the three parameter sets as data, RFC 9881 SPKI and
//! PKCS#8 (seed form), pure ML-DSA with an empty context, hedged with the caller's randomness.

use core::mem::size_of;

use ml_dsa::{
    B32, EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Signature,
    VerifyingKey,
};
use pkcs8::der::asn1::{BitStringRef, ContextSpecific, OctetStringRef};
use pkcs8::der::{AnyRef, Decode, Encode, Reader, SliceReader, Tag, TagMode, TagNumber, Tagged};
use provider_core::CoreError;
use provider_core::rand_core::TryCryptoRng;
use spki::{AlgorithmIdentifierRef, ObjectIdentifier};
use zeroize::Zeroizing;

/// The length of every ML-DSA seed (FIPS 204 `xi`), whatever the parameter set.
pub const SEED_LEN: usize = 32;

/// RFC 9881's ML-DSA-PrivateKey CHOICE: `seed [0] IMPLICIT OCTET STRING (SIZE (32))`.
const SEED_TAG: TagNumber = TagNumber(0);

/// One FIPS 204 parameter set, as named by JOSE-style algorithm names and RFC 9881 OIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    MlDsa44,
    MlDsa65,
    MlDsa87,
}

impl Level {
    /// Every parameter set, in the order they are listed to people.
    pub const ALL: [Level; 3] = [Level::MlDsa44, Level::MlDsa65, Level::MlDsa87];

    pub fn name(self) -> &'static str {
        match self {
            Level::MlDsa44 => "ML-DSA-44",
            Level::MlDsa65 => "ML-DSA-65",
            Level::MlDsa87 => "ML-DSA-87",
        }
    }

    /// id-ml-dsa-44/65/87 (RFC 9881, NIST CSOR sigAlgs 17, 18, 19).
    fn oid(self) -> ObjectIdentifier {
        match self {
            Level::MlDsa44 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.17"),
            Level::MlDsa65 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18"),
            Level::MlDsa87 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19"),
        }
    }

    /// The parameter set called `name` (exact spelling).
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.oid() == oid)
    }

    fn algorithm_identifier(self) -> AlgorithmIdentifierRef<'static> {
        // RFC 9881: the parameters field is absent for all three.
        AlgorithmIdentifierRef { oid: self.oid(), parameters: None }
    }
}

/// Refusal for an algorithm name this provider does not offer.
pub fn unknown_algorithm(name: &str) -> CoreError {
    CoreError::Unsupported(format!(
        "signature algorithm {name:?} is not offered by the pqc provider ({})",
        Level::ALL.map(Level::name).join(", ")
    ))
}

/// Looks up a parameter set or refuses the name.
pub fn level(name: &str) -> Result<Level, CoreError> {
    Level::parse(name).ok_or_else(|| unknown_algorithm(name))
}

fn invalid_key(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidKey(msg.into())
}

fn invalid_input(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidInput(msg.into())
}

/// What a key's algorithm OID is, in words, for refusals.
fn describe_oid(oid: ObjectIdentifier) -> String {
    match Level::from_oid(oid) {
        Some(l) => format!("an {} key", l.name()),
        None => match oid.to_string().as_str() {
            "1.2.840.10045.2.1" => "an EC key".into(),
            "1.2.840.113549.1.1.1" => "an RSA key".into(),
            "1.3.101.112" => "an Ed25519 key".into(),
            other => format!("a key of type {other}, not ML-DSA"),
        },
    }
}

/// A signing key: the seed it came from (the only form that ever leaves), the expanded key
/// that signs, and its public key, computed once.
pub struct Pair<P: MlDsaParams> {
    seed: Zeroizing<[u8; SEED_LEN]>,
    signing: ExpandedSigningKey<P>,
    public: VerifyingKey<P>,
}

impl<P: MlDsaParams> Pair<P> {
    /// FIPS 204 ML-DSA.KeyGen_internal from a seed.
    fn from_seed(seed: &[u8; SEED_LEN]) -> Box<Pair<P>> {
        let mut xi = B32::from(*seed);
        let signing = ExpandedSigningKey::<P>::from_seed(&xi);
        zeroize::Zeroize::zeroize(&mut xi);
        let public = signing.verifying_key();
        Box::new(Pair { seed: Zeroizing::new(*seed), signing, public })
    }

    /// Hedged ML-DSA.Sign (FIPS 204 Algorithm 2) with an empty context: fresh randomness
    /// for every signature, so a fault or side channel in one signature says less about the key.
    fn sign<R: TryCryptoRng + ?Sized>(&self, message: &[u8], rng: &mut R) -> Result<Vec<u8>, CoreError> {
        self.signing.sign_randomized(message, &[], rng).map(|s| s.encode().to_vec()).map_err(|_| {
            CoreError::Failed("ML-DSA signing failed (no randomness, or the rejection loop gave up)".into())
        })
    }

    /// Whether `expanded` is the FIPS 204 skEncode of this key (RFC 9881's `both` form).
    fn expands_to(&self, expanded: &[u8]) -> bool {
        // `to_expanded` is deprecated as a way to store keys; here it only checks that the
        // expanded half of a `both` key belongs to its seed, and the bytes are wiped after.
        #[allow(deprecated)]
        let ours = Zeroizing::new(self.signing.to_expanded().to_vec());
        ours.len() == expanded.len() && ours.iter().zip(expanded).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// A private key held inside the provider.
pub enum PrivateKey {
    MlDsa44(Box<Pair<MlDsa44>>),
    MlDsa65(Box<Pair<MlDsa65>>),
    MlDsa87(Box<Pair<MlDsa87>>),
}

/// A parsed public key.
pub enum PublicKey {
    MlDsa44(VerifyingKey<MlDsa44>),
    MlDsa65(VerifyingKey<MlDsa65>),
    MlDsa87(VerifyingKey<MlDsa87>),
}

fn public_from_raw<P: MlDsaParams>(level: Level, raw: &[u8]) -> Result<VerifyingKey<P>, CoreError> {
    let encoded = EncodedVerifyingKey::<P>::try_from(raw).map_err(|_| {
        invalid_key(format!(
            "an {} public key is {} bytes, this one is {}",
            level.name(),
            size_of::<EncodedVerifyingKey<P>>(),
            raw.len()
        ))
    })?;
    Ok(VerifyingKey::decode(&encoded))
}

fn verify_with<P: MlDsaParams>(
    level: Level,
    key: &VerifyingKey<P>,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, CoreError> {
    let encoded = EncodedSignature::<P>::try_from(signature).map_err(|_| {
        invalid_input(format!(
            "an {} signature is {} bytes, this one is {}",
            level.name(),
            size_of::<EncodedSignature<P>>(),
            signature.len()
        ))
    })?;
    // A signature of the right length whose hints or z do not decode is simply not valid.
    Ok(Signature::<P>::decode(&encoded).is_some_and(|s| key.verify_with_context(message, &[], &s)))
}

fn spki_der(level: Level, raw: &[u8]) -> Result<Vec<u8>, CoreError> {
    let bits = BitStringRef::new(0, raw).map_err(|e| CoreError::Failed(format!("SPKI encoding: {e}")))?;
    spki::SubjectPublicKeyInfoRef { algorithm: level.algorithm_identifier(), subject_public_key: bits }
        .to_der()
        .map_err(|e| CoreError::Failed(format!("SPKI encoding: {e}")))
}

impl PublicKey {
    /// Parses an RFC 9881 SubjectPublicKeyInfo for `level`, refusing any other key.
    pub fn from_spki(level: Level, der: &[u8]) -> Result<PublicKey, CoreError> {
        let info = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| invalid_key(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        let found = info.algorithm.oid;
        if Level::from_oid(found) != Some(level) {
            return Err(invalid_key(format!(
                "{} needs an {} public key, but this is {}",
                level.name(),
                level.name(),
                describe_oid(found)
            )));
        }
        if info.algorithm.parameters.is_some() {
            return Err(invalid_key("an ML-DSA AlgorithmIdentifier has no parameters (RFC 9881), this one has"));
        }
        let raw = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| invalid_key("the public key BIT STRING has unused bits"))?;
        Ok(match level {
            Level::MlDsa44 => PublicKey::MlDsa44(public_from_raw(level, raw)?),
            Level::MlDsa65 => PublicKey::MlDsa65(public_from_raw(level, raw)?),
            Level::MlDsa87 => PublicKey::MlDsa87(public_from_raw(level, raw)?),
        })
    }

    pub fn level(&self) -> Level {
        match self {
            PublicKey::MlDsa44(_) => Level::MlDsa44,
            PublicKey::MlDsa65(_) => Level::MlDsa65,
            PublicKey::MlDsa87(_) => Level::MlDsa87,
        }
    }

    /// Pure ML-DSA.Verify (FIPS 204 Algorithm 3) over the whole message, empty context.
    /// `Ok(false)` for any signature that does not verify; an error only for a wrong length.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, CoreError> {
        let level = self.level();
        match self {
            PublicKey::MlDsa44(k) => verify_with(level, k, message, signature),
            PublicKey::MlDsa65(k) => verify_with(level, k, message, signature),
            PublicKey::MlDsa87(k) => verify_with(level, k, message, signature),
        }
    }
}

/// The 32-byte seed inside RFC 9881's ML-DSA-PrivateKey (the `privateKey` OCTET STRING's
/// contents). The `seed` choice is read as is; `both` only if its expanded key matches the
/// seed (checked by the caller); `expandedKey` alone is refused: without the seed the key
/// cannot be checked and cannot be written back in seed form.
enum SeedForm {
    Seed(Zeroizing<[u8; SEED_LEN]>),
    Both(Zeroizing<[u8; SEED_LEN]>, Zeroizing<Vec<u8>>),
}

fn seed_array(level: Level, bytes: &[u8]) -> Result<Zeroizing<[u8; SEED_LEN]>, CoreError> {
    let seed: [u8; SEED_LEN] = bytes.try_into().map_err(|_| {
        invalid_key(format!("an {} seed is {SEED_LEN} bytes, this one is {}", level.name(), bytes.len()))
    })?;
    Ok(Zeroizing::new(seed))
}

fn read_seed_form(level: Level, inner: &[u8]) -> Result<SeedForm, CoreError> {
    let bad = |e: pkcs8::der::Error| {
        invalid_key(format!("the {} private key is not a DER ML-DSA-PrivateKey: {e}", level.name()))
    };
    let any = AnyRef::from_der(inner).map_err(bad)?;
    match any.tag() {
        Tag::ContextSpecific { constructed: false, number } if number == SEED_TAG => {
            Ok(SeedForm::Seed(seed_array(level, any.value())?))
        }
        Tag::Sequence => {
            let mut reader = SliceReader::new(any.value()).map_err(bad)?;
            let seed = <&OctetStringRef>::decode(&mut reader).map_err(bad)?;
            let expanded = <&OctetStringRef>::decode(&mut reader).map_err(bad)?;
            reader.finish().map_err(bad)?;
            Ok(SeedForm::Both(seed_array(level, seed.as_bytes())?, Zeroizing::new(expanded.as_bytes().to_vec())))
        }
        Tag::OctetString => Err(invalid_key(format!(
            "the {} private key is in the expandedKey form only, without its seed; give the seed form \
             (RFC 9881 `seed [0]`, what `cryptohost keygen` writes)",
            level.name()
        ))),
        other => Err(invalid_key(format!(
            "the {} private key is a {other}, not one of RFC 9881's forms (seed [0], expandedKey, both)",
            level.name()
        ))),
    }
}

impl PrivateKey {
    /// FIPS 204 ML-DSA.KeyGen: a fresh seed from `rng`.
    pub fn generate<R: TryCryptoRng + ?Sized>(level: Level, rng: &mut R) -> Result<PrivateKey, CoreError> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rng.try_fill_bytes(seed.as_mut_slice())
            .map_err(|_| CoreError::Failed("the host gave no randomness for a new ML-DSA seed".into()))?;
        Ok(PrivateKey::from_seed(level, &seed))
    }

    /// The key pair a seed determines (keygen is deterministic in the seed).
    pub fn from_seed(level: Level, seed: &[u8; SEED_LEN]) -> PrivateKey {
        match level {
            Level::MlDsa44 => PrivateKey::MlDsa44(Pair::from_seed(seed)),
            Level::MlDsa65 => PrivateKey::MlDsa65(Pair::from_seed(seed)),
            Level::MlDsa87 => PrivateKey::MlDsa87(Pair::from_seed(seed)),
        }
    }

    /// Reads an RFC 9881 PKCS#8 (OneAsymmetricKey) ML-DSA private key in the seed form (or
    /// `both`, when its expanded key is the seed's). A public key inside must be the seed's.
    pub fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, CoreError> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(der)
            .map_err(|_| invalid_key("not a DER PKCS#8 PrivateKeyInfo (unencrypted)"))?;
        let found = info.algorithm.oid;
        let level = Level::from_oid(found).ok_or_else(|| {
            invalid_key(format!(
                "the pqc provider holds ML-DSA keys only (ML-DSA-44, ML-DSA-65, ML-DSA-87); this is {}",
                describe_oid(found)
            ))
        })?;
        if info.algorithm.parameters.is_some() {
            return Err(invalid_key("an ML-DSA AlgorithmIdentifier has no parameters (RFC 9881), this one has"));
        }
        let key = match read_seed_form(level, info.private_key.as_bytes())? {
            SeedForm::Seed(seed) => PrivateKey::from_seed(level, &seed),
            SeedForm::Both(seed, expanded) => {
                let key = PrivateKey::from_seed(level, &seed);
                if !key.expands_to(&expanded) {
                    return Err(invalid_key(format!(
                        "the {} private key's expanded key does not belong to its seed (RFC 9881 `both` form)",
                        level.name()
                    )));
                }
                key
            }
        };
        if let Some(public) = &info.public_key
            && public.as_bytes() != Some(key.public_raw().as_slice())
        {
            return Err(invalid_key(format!(
                "the {} private key carries a public key that does not belong to its seed",
                level.name()
            )));
        }
        Ok(key)
    }

    pub fn level(&self) -> Level {
        match self {
            PrivateKey::MlDsa44(_) => Level::MlDsa44,
            PrivateKey::MlDsa65(_) => Level::MlDsa65,
            PrivateKey::MlDsa87(_) => Level::MlDsa87,
        }
    }

    fn expands_to(&self, expanded: &[u8]) -> bool {
        match self {
            PrivateKey::MlDsa44(k) => k.expands_to(expanded),
            PrivateKey::MlDsa65(k) => k.expands_to(expanded),
            PrivateKey::MlDsa87(k) => k.expands_to(expanded),
        }
    }

    fn seed(&self) -> &[u8; SEED_LEN] {
        match self {
            PrivateKey::MlDsa44(k) => &k.seed,
            PrivateKey::MlDsa65(k) => &k.seed,
            PrivateKey::MlDsa87(k) => &k.seed,
        }
    }

    /// The FIPS 204 pkEncode of the public key.
    fn public_raw(&self) -> Vec<u8> {
        match self {
            PrivateKey::MlDsa44(k) => k.public.encode().to_vec(),
            PrivateKey::MlDsa65(k) => k.public.encode().to_vec(),
            PrivateKey::MlDsa87(k) => k.public.encode().to_vec(),
        }
    }

    /// The public key as an RFC 9881 SubjectPublicKeyInfo.
    pub fn public_spki(&self) -> Result<Vec<u8>, CoreError> {
        spki_der(self.level(), &self.public_raw())
    }

    /// The private key as RFC 9881 PKCS#8 in the seed form: `privateKey` holds
    /// `[0] IMPLICIT OCTET STRING` with the 32-byte seed, and nothing else.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, CoreError> {
        let fail = |e: pkcs8::der::Error| CoreError::Failed(format!("PKCS#8 encoding: {e}"));
        let seed = OctetStringRef::new(self.seed()).map_err(fail)?;
        let choice = ContextSpecific { tag_number: SEED_TAG, tag_mode: TagMode::Implicit, value: seed };
        let inner = Zeroizing::new(choice.to_der().map_err(fail)?);
        let private_key = OctetStringRef::new(&inner).map_err(fail)?;
        pkcs8::PrivateKeyInfoRef::new(self.level().algorithm_identifier(), private_key).to_der().map_err(fail)
    }

    /// Signs the whole message under `level`, which must be the key's own parameter set.
    pub fn sign<R: TryCryptoRng + ?Sized>(
        &self,
        level: Level,
        message: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, CoreError> {
        if level != self.level() {
            return Err(invalid_key(format!(
                "{} needs an {} key, but this is an {} key",
                level.name(),
                level.name(),
                self.level().name()
            )));
        }
        match self {
            PrivateKey::MlDsa44(k) => k.sign(message, rng),
            PrivateKey::MlDsa65(k) => k.sign(message, rng),
            PrivateKey::MlDsa87(k) => k.sign(message, rng),
        }
    }
}
