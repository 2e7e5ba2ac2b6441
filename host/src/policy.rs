//! The deployment policy (`[policy]`): which signature algorithms, hashes, curves, AEAD ciphers
//! and RSA sizes a site allows. It can only narrow what the providers offer: every rule is an
//! allowlist, the rules of a preset and the explicit lines combine by intersection, and a kit
//! or a provider never widens it.
//!
//! This module decides; it holds no key and calls nothing. The registry asks it on every call
//! it routes (so DSSE, bundles, kits and trust anchors obey it with no code of their own), the
//! key service asks it before a held key is used (and audits a refusal as `refused by policy`),
//! and the request layer asks what only a request knows (a hash named by the caller, whether
//! the caller gave its own public key). Each refusal names the policy line that refused.

use std::collections::BTreeSet;
use std::fmt;

use crate::alg::{self, Family, SignatureAlgorithm};
use crate::provider::Capability;

/// The smallest RSA modulus any policy may allow (`min_rsa_bits` below it is a config error).
pub const RSA_FLOOR: u32 = 2048;

/// The RSA size a key generation without one gets (the CLI's and the simulation's default).
pub const DEFAULT_RSA_BITS: u32 = 3072;

/// A named set of rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// FIPS 186-5 classical signatures (ECDSA, RSA PKCS#1 v1.5 and PSS, EdDSA) with SHA-2,
    /// AES-GCM.
    Nist,
    /// `nist` and ML-DSA (FIPS 204).
    NistPqc,
    /// CNSA 1.0: ECDSA P-384, RSA of at least 3072 bits with SHA-384 or more, AES-256-GCM.
    Cnsa1,
    /// CNSA 2.0 (signatures): ML-DSA-87, SHA-384 or more, AES-256-GCM.
    Cnsa2,
}

const SHA2: [&str; 3] = ["SHA-256", "SHA-384", "SHA-512"];
const SHA384_UP: [&str; 2] = ["SHA-384", "SHA-512"];

impl Preset {
    pub const ALL: [Preset; 4] = [Preset::Nist, Preset::NistPqc, Preset::Cnsa1, Preset::Cnsa2];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Nist => "nist",
            Preset::NistPqc => "nist-pqc",
            Preset::Cnsa1 => "cnsa1",
            Preset::Cnsa2 => "cnsa2",
        }
    }

    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The signature algorithms: `nist` every classical one of the host's table, `nist-pqc`
    /// all of it (the table is the one list of names).
    fn algorithms(self) -> Vec<&'static str> {
        let table = alg::SIGNATURE_ALGORITHMS.iter();
        match self {
            Preset::Nist => table.filter(|a| a.family != Family::MlDsa).map(|a| a.name).collect(),
            Preset::NistPqc => table.map(|a| a.name).collect(),
            Preset::Cnsa1 => vec!["ES384", "RS384", "RS512", "PS384", "PS512"],
            Preset::Cnsa2 => vec!["ML-DSA-87"],
        }
    }

    fn hashes(self) -> &'static [&'static str] {
        match self {
            Preset::Nist | Preset::NistPqc => &SHA2,
            Preset::Cnsa1 | Preset::Cnsa2 => &SHA384_UP,
        }
    }

    fn aead(self) -> &'static [&'static str] {
        match self {
            Preset::Nist | Preset::NistPqc => &["A128GCM", "A256GCM"],
            Preset::Cnsa1 | Preset::Cnsa2 => &["A256GCM"],
        }
    }

    fn min_rsa_bits(self) -> u32 {
        match self {
            Preset::Cnsa1 | Preset::Cnsa2 => 3072,
            Preset::Nist | Preset::NistPqc => RSA_FLOOR,
        }
    }
}

/// `[policy]` as written, before it is checked (the config parser fills it).
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    pub preset: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub sign_algorithms: Option<Vec<String>>,
    pub verify_algorithms: Option<Vec<String>>,
    pub hashes: Option<Vec<String>>,
    pub curves: Option<Vec<String>>,
    pub aead: Option<Vec<String>>,
    pub min_rsa_bits: Option<u32>,
    pub components_only: bool,
    pub require_anchors_for_verify: bool,
}

/// A field of `[policy]` that cannot be used, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

/// One allowlist and the line that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// How a refusal names it: `preset = "cnsa1"`, `sign_algorithms`.
    line: String,
    allowed: BTreeSet<&'static str>,
}

impl Rule {
    fn refuses(&self, name: &str) -> bool {
        !self.allowed.contains(name)
    }
}

/// The curves a `curves` line may name: the ECDSA curves and Ed25519.
pub const CURVES: [&str; 4] = ["P-256", "P-384", "P-521", "Ed25519"];

/// A checked policy. The default allows everything the providers offer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    preset: Option<Preset>,
    /// Rules every signature algorithm must pass, signing or verifying.
    algorithms: Vec<Rule>,
    sign: Vec<Rule>,
    verify: Vec<Rule>,
    hashes: Vec<Rule>,
    curves: Vec<Rule>,
    aead: Vec<Rule>,
    /// The smallest RSA modulus, and the line that set it; `None`: the providers' own floor.
    min_rsa: Option<(u32, String)>,
    components_only: bool,
    require_anchors_for_verify: bool,
    /// Names the config spelled out (not from a preset), by capability: each must be offered
    /// by a loaded provider.
    named: Vec<(Capability, &'static str)>,
}

/// A use the policy refuses: what was asked, and the line that refused it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused by policy: {what} is not allowed by [policy] {line}")]
pub struct PolicyRefusal {
    pub what: String,
    pub line: String,
}

fn refusal(what: impl Into<String>, line: &str) -> PolicyRefusal {
    PolicyRefusal { what: what.into(), line: line.to_string() }
}

/// The names of a list field, each checked against `known`.
fn names(
    field: &'static str,
    list: &[String],
    known: &[&'static str],
    what: &str,
) -> Result<BTreeSet<&'static str>, SpecError> {
    let mut out = BTreeSet::new();
    for n in list {
        let canonical = if what == "hash" { alg::canonical_hash(n) } else { n.clone() };
        let Some(k) = known.iter().find(|k| **k == canonical) else {
            return Err(SpecError {
                field,
                message: format!("{n:?} is not a {what} this host knows (one of {})", known.join(", ")),
            });
        };
        out.insert(*k);
    }
    if out.is_empty() {
        return Err(SpecError { field, message: "an empty list allows nothing; leave the line out instead".into() });
    }
    Ok(out)
}

impl Policy {
    /// Checks a `[policy]` section: every name known, `min_rsa_bits` at least [`RSA_FLOOR`].
    ///
    /// # Errors
    /// The field that cannot be used, and why.
    pub fn new(spec: &PolicySpec) -> Result<Policy, SpecError> {
        let sig_names: Vec<&'static str> = alg::SIGNATURE_ALGORITHMS.iter().map(|a| a.name).collect();
        let hash_names = SHA2;
        let aead_names: Vec<&'static str> = alg::AEAD_ALGORITHMS.iter().map(|a| a.name).collect();
        let mut p = Policy {
            components_only: spec.components_only,
            require_anchors_for_verify: spec.require_anchors_for_verify,
            ..Policy::default()
        };
        if let Some(name) = &spec.preset {
            let preset = Preset::parse(name).ok_or_else(|| SpecError {
                field: "preset",
                message: format!("{name:?} is not a preset (one of {})", Preset::ALL.map(Preset::name).join(", ")),
            })?;
            let line = format!("preset = {:?}", preset.name());
            let set = |l: &[&'static str]| Rule { line: line.clone(), allowed: l.iter().copied().collect() };
            p.algorithms.push(set(&preset.algorithms()));
            p.hashes.push(set(preset.hashes()));
            p.aead.push(set(preset.aead()));
            if preset.min_rsa_bits() > RSA_FLOOR {
                p.min_rsa = Some((preset.min_rsa_bits(), line.clone()));
            }
            p.preset = Some(preset);
        }
        let mut list = |field: &'static str,
                        given: &Option<Vec<String>>,
                        known: &[&'static str],
                        what: &str,
                        capabilities: &[Capability]|
         -> Result<Option<Rule>, SpecError> {
            let Some(given) = given else { return Ok(None) };
            let allowed = names(field, given, known, what)?;
            for c in capabilities {
                p.named.extend(allowed.iter().map(|n| (*c, *n)));
            }
            Ok(Some(Rule { line: field.to_string(), allowed }))
        };
        let both = [Capability::Signing, Capability::Verification];
        let algorithms = list("algorithms", &spec.algorithms, &sig_names, "signature algorithm", &both)?;
        let sign = list("sign_algorithms", &spec.sign_algorithms, &sig_names, "signature algorithm", &both[..1])?;
        let verify = list("verify_algorithms", &spec.verify_algorithms, &sig_names, "signature algorithm", &both[1..])?;
        let hashes = list("hashes", &spec.hashes, &hash_names, "hash", &[Capability::Hashing])?;
        let curves = list("curves", &spec.curves, &CURVES, "curve", &[])?;
        let aead = list("aead", &spec.aead, &aead_names, "AEAD algorithm", &[Capability::Encryption])?;
        p.algorithms.extend(algorithms);
        p.sign.extend(sign);
        p.verify.extend(verify);
        p.hashes.extend(hashes);
        p.curves.extend(curves);
        p.aead.extend(aead);
        if let Some(bits) = spec.min_rsa_bits {
            if bits < RSA_FLOOR {
                return Err(SpecError {
                    field: "min_rsa_bits",
                    message: format!("{bits} is below {RSA_FLOOR}, which no policy may go under"),
                });
            }
            if p.min_rsa.as_ref().is_none_or(|(b, _)| bits > *b) {
                p.min_rsa = Some((bits, format!("min_rsa_bits = {bits}")));
            }
        }
        if p.sign_set().is_empty() && p.verify_set().is_empty() {
            return Err(SpecError {
                field: "algorithms",
                message: "the rules together allow no signature algorithm at all".into(),
            });
        }
        Ok(p)
    }

    /// Whether this is the default policy (no `[policy]`, or one that narrows nothing).
    pub fn is_open(&self) -> bool {
        *self == Policy::default()
    }

    pub fn preset(&self) -> Option<Preset> {
        self.preset
    }

    /// `components_only = true`: no native provider but the HSM.
    pub fn components_only(&self) -> bool {
        self.components_only
    }

    /// The smallest RSA modulus the policy allows, when it sets one above the floor.
    pub fn min_rsa_bits(&self) -> Option<u32> {
        self.min_rsa.as_ref().map(|(b, _)| *b)
    }

    /// `require_anchors_for_verify = true`: a caller's own public key is refused.
    ///
    /// # Errors
    /// The rule is on.
    pub fn caller_key(&self, what: &str) -> Result<(), PolicyRefusal> {
        if self.require_anchors_for_verify {
            return Err(refusal(
                format!("{what} (only the configured trust anchors verify)"),
                "require_anchors_for_verify = true",
            ));
        }
        Ok(())
    }

    /// The first rule among `rules` that refuses `name`.
    fn first<'r>(rules: impl IntoIterator<Item = &'r Rule>, name: &str) -> Option<&'r Rule> {
        rules.into_iter().find(|r| r.refuses(name))
    }

    fn signature(&self, a: &SignatureAlgorithm, verb: &str, own: &[Rule]) -> Result<(), PolicyRefusal> {
        if let Some(r) = Self::first(self.algorithms.iter().chain(own), a.name) {
            return Err(refusal(format!("{verb} with {}", a.name), &r.line));
        }
        if let Some(h) = a.hash
            && let Some(r) = Self::first(&self.hashes, h)
        {
            return Err(refusal(format!("{verb} with {} (it hashes with {h})", a.name), &r.line));
        }
        if let Some(curve) = a.key_type.filter(|k| CURVES.contains(k))
            && let Some(r) = Self::first(&self.curves, curve)
        {
            return Err(refusal(format!("{verb} with {} (a {curve} key)", a.name), &r.line));
        }
        Ok(())
    }

    /// Whether `algorithm` may be used for `capability` (names this host does not know pass:
    /// the registry refuses them on its own).
    ///
    /// # Errors
    /// The rule that refuses it.
    pub fn allows(&self, capability: Capability, algorithm: &str) -> Result<(), PolicyRefusal> {
        match capability {
            Capability::Signing => match alg::signature(algorithm) {
                Some(a) => self.signature(a, "signing", &self.sign),
                None => Ok(()),
            },
            Capability::Verification => match alg::signature(algorithm) {
                Some(a) => self.signature(a, "verifying", &self.verify),
                None => Ok(()),
            },
            Capability::Hashing => {
                let h = alg::canonical_hash(algorithm);
                match Self::first(&self.hashes, &h) {
                    Some(r) => Err(refusal(format!("hashing with {h}"), &r.line)),
                    None => Ok(()),
                }
            }
            Capability::Encryption => match Self::first(&self.aead, algorithm) {
                Some(r) => Err(refusal(algorithm, &r.line)),
                None => Ok(()),
            },
        }
    }

    /// Whether an RSA key of `bits` may be used (or made).
    ///
    /// # Errors
    /// Below `min_rsa_bits` (or the preset's minimum).
    pub fn rsa_bits(&self, bits: u32) -> Result<(), PolicyRefusal> {
        match &self.min_rsa {
            Some((min, line)) if bits < *min => {
                Err(refusal(format!("a {bits}-bit RSA key (at least {min} bits are required)"), line))
            }
            _ => Ok(()),
        }
    }

    /// Whether a public key (DER SPKI) may be used: an RSA key's size. Other key types are
    /// decided by their algorithm (their curve is in it).
    ///
    /// # Errors
    /// An RSA key below the minimum.
    pub fn public_key(&self, spki: &[u8]) -> Result<(), PolicyRefusal> {
        if self.min_rsa.is_none() {
            return Ok(());
        }
        match rsa_modulus_bits(spki) {
            Some(bits) => self.rsa_bits(bits),
            None => Ok(()),
        }
    }

    /// Whether a key may be generated for `algorithm` (an AEAD key, or a key pair that must
    /// then be allowed to sign), RSA with `rsa_bits` (0: [`DEFAULT_RSA_BITS`]).
    ///
    /// # Errors
    /// The rule that refuses it.
    pub fn generate(&self, algorithm: &str, rsa_bits: u32) -> Result<(), PolicyRefusal> {
        if alg::aead(algorithm).is_some() {
            return self.allows(Capability::Encryption, algorithm);
        }
        self.allows(Capability::Signing, algorithm)?;
        if alg::signature(algorithm).is_some_and(|a| matches!(a.family, Family::RsaPkcs1 | Family::RsaPss)) {
            self.rsa_bits(if rsa_bits == 0 { DEFAULT_RSA_BITS } else { rsa_bits })?;
        }
        Ok(())
    }

    /// Every signature algorithm the rules let sign (before asking what providers offer).
    pub fn sign_set(&self) -> Vec<&'static str> {
        alg::SIGNATURE_ALGORITHMS
            .iter()
            .filter(|a| self.allows(Capability::Signing, a.name).is_ok())
            .map(|a| a.name)
            .collect()
    }

    /// Every signature algorithm the rules let verify.
    pub fn verify_set(&self) -> Vec<&'static str> {
        alg::SIGNATURE_ALGORITHMS
            .iter()
            .filter(|a| self.allows(Capability::Verification, a.name).is_ok())
            .map(|a| a.name)
            .collect()
    }

    /// The names the config spelled out, by capability (each must be offered by a provider).
    pub fn named(&self) -> &[(Capability, &'static str)] {
        &self.named
    }
}

/// One line saying what the policy allows, for `doctor` and logs.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_open() {
            return f.write_str("none: every algorithm the providers offer");
        }
        if let Some(p) = self.preset {
            write!(f, "preset {}; ", p.name())?;
        }
        write!(f, "sign {}; verify {}", self.sign_set().join(" "), self.verify_set().join(" "))?;
        let hashes: Vec<&str> = SHA2.into_iter().filter(|h| self.allows(Capability::Hashing, h).is_ok()).collect();
        write!(f, "; hashes {}", hashes.join(" "))?;
        let aead: Vec<&str> = alg::AEAD_ALGORITHMS
            .iter()
            .map(|a| a.name)
            .filter(|a| self.allows(Capability::Encryption, a).is_ok())
            .collect();
        write!(f, "; aead {}", if aead.is_empty() { "none".to_string() } else { aead.join(" ") })?;
        if let Some(b) = self.min_rsa_bits() {
            write!(f, "; RSA >= {b} bits")?;
        }
        if self.components_only {
            f.write_str("; components only")?;
        }
        if self.require_anchors_for_verify {
            f.write_str("; verify with anchors only")?;
        }
        Ok(())
    }
}

/// The modulus size of an RSA SPKI, `None` for any other key (or one that does not parse: the
/// provider refuses those).
pub fn rsa_modulus_bits(spki: &[u8]) -> Option<u32> {
    use spki::der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).ok()?;
    if info.algorithm.oid != spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1") {
        return None;
    }
    let key =
        pkcs1::RsaPublicKey::<spki::der::asn1::UintRef<'_>>::from_der(info.subject_public_key.raw_bytes()).ok()?;
    let m = key.modulus.as_bytes();
    let lead = m.iter().position(|b| *b != 0)?;
    let bytes = &m[lead..];
    Some(u32::try_from(bytes.len() * 8).ok()? - bytes[0].leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PolicySpec {
        PolicySpec::default()
    }

    #[test]
    fn the_default_allows_everything() {
        let p = Policy::new(&spec()).unwrap();
        assert!(p.is_open());
        assert_eq!(p.sign_set().len(), alg::SIGNATURE_ALGORITHMS.len());
        assert!(p.rsa_bits(2048).is_ok() && p.generate("RS256", 2048).is_ok());
    }

    #[test]
    fn the_nist_presets_follow_the_host_table_and_cnsa2_is_ml_dsa_87() {
        let preset = |name: &str| Policy::new(&PolicySpec { preset: Some(name.into()), ..spec() }).unwrap();
        let nist = preset("nist");
        assert_eq!(
            nist.sign_set(),
            ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"]
        );
        assert_eq!(nist.allows(Capability::Signing, "ML-DSA-65").unwrap_err().line, "preset = \"nist\"");
        assert_eq!(preset("nist-pqc").sign_set().len(), alg::SIGNATURE_ALGORITHMS.len());
        let cnsa2 = preset("cnsa2");
        assert_eq!((cnsa2.sign_set(), cnsa2.verify_set()), (vec!["ML-DSA-87"], vec!["ML-DSA-87"]));
        assert!(cnsa2.allows(Capability::Encryption, "A128GCM").is_err());
    }

    #[test]
    fn cnsa1_allows_exactly_its_set_and_names_itself() {
        let p = Policy::new(&PolicySpec { preset: Some("cnsa1".into()), ..spec() }).unwrap();
        assert_eq!(p.sign_set(), ["ES384", "RS384", "RS512", "PS384", "PS512"]);
        let e = p.allows(Capability::Signing, "ES256").unwrap_err();
        assert_eq!(
            e.to_string(),
            "refused by policy: signing with ES256 is not allowed by [policy] preset = \"cnsa1\""
        );
        assert!(p.allows(Capability::Hashing, "sha256").is_err() && p.allows(Capability::Hashing, "SHA-384").is_ok());
        assert!(p.allows(Capability::Encryption, "A128GCM").is_err());
        assert!(p.rsa_bits(2048).is_err() && p.rsa_bits(3072).is_ok());
        assert!(p.generate("RS384", 0).is_ok() && p.generate("RS384", 2048).is_err());
    }

    #[test]
    fn explicit_lines_only_narrow_and_each_names_itself() {
        let p = Policy::new(&PolicySpec {
            preset: Some("nist".into()),
            sign_algorithms: Some(vec!["ES256".into(), "ML-DSA-65".into()]),
            hashes: Some(vec!["sha384".into(), "SHA-256".into()]),
            curves: Some(vec!["P-256".into(), "P-384".into()]),
            min_rsa_bits: Some(4096),
            ..spec()
        })
        .unwrap();
        // ML-DSA-65 is named but the preset does not allow it: the preset refuses.
        assert_eq!(p.sign_set(), ["ES256"]);
        let e = p.allows(Capability::Signing, "ML-DSA-65").unwrap_err();
        assert_eq!(e.line, "preset = \"nist\"");
        assert_eq!(p.allows(Capability::Signing, "ES384").unwrap_err().line, "sign_algorithms");
        assert_eq!(p.allows(Capability::Verification, "ES512").unwrap_err().line, "hashes");
        assert_eq!(p.allows(Capability::Verification, "EdDSA").unwrap_err().line, "curves");
        assert!(p.allows(Capability::Verification, "RS384").is_ok());
        assert_eq!(p.rsa_bits(3072).unwrap_err().line, "min_rsa_bits = 4096");
    }

    #[test]
    fn bad_lines_are_config_errors() {
        let bad = |s: PolicySpec| Policy::new(&s).unwrap_err();
        assert_eq!(bad(PolicySpec { preset: Some("fips".into()), ..spec() }).field, "preset");
        assert_eq!(bad(PolicySpec { algorithms: Some(vec!["HS256".into()]), ..spec() }).field, "algorithms");
        assert_eq!(bad(PolicySpec { hashes: Some(vec!["MD5".into()]), ..spec() }).field, "hashes");
        assert_eq!(bad(PolicySpec { aead: Some(vec![]), ..spec() }).field, "aead");
        assert_eq!(bad(PolicySpec { min_rsa_bits: Some(1024), ..spec() }).field, "min_rsa_bits");
        let none = PolicySpec { preset: Some("cnsa2".into()), algorithms: Some(vec!["ES256".into()]), ..spec() };
        assert!(bad(none).message.contains("no signature algorithm"));
    }

    #[test]
    fn an_rsa_modulus_is_measured_from_the_spki() {
        // A DER SPKI with a 2048-bit modulus (leading byte 0xC1 after the sign byte).
        let mut modulus = vec![0x00, 0xC1];
        modulus.extend(vec![0x55; 255]);
        use spki::der::Encode;
        use spki::der::asn1::{BitStringRef, UintRef};
        let key = pkcs1::RsaPublicKey {
            modulus: UintRef::new(&modulus).unwrap(),
            public_exponent: UintRef::new(&[1, 0, 1]).unwrap(),
        }
        .to_der()
        .unwrap();
        let spki = spki::SubjectPublicKeyInfoRef {
            algorithm: pkcs1::ALGORITHM_ID,
            subject_public_key: BitStringRef::from_bytes(&key).unwrap(),
        };
        assert_eq!(rsa_modulus_bits(&spki.to_der().unwrap()), Some(2048));
        assert_eq!(rsa_modulus_bits(b"junk"), None);
    }
}
