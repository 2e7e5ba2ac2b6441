//! `cryptohost components check`: a conformance suite run against any provider component
//! before anyone pins it. For every algorithm the component claims: known answers (FIPS 180-4
//! SHA-2, Wycheproof ECDSA / RSA PKCS#1 v1.5 / RSA-PSS / Ed25519 / AES-GCM cases, the RFC 6979
//! deterministic ECDSA signature), tampered-signature negatives, wrong-key refusals, and
//! malformed input that must be refused, never trap. The vectors ship in the binary
//! (`host/data/conformance/`).

use serde::Deserialize;

use crate::error::ProviderError;
use crate::provider::{Capability, CryptoProvider, SigFormat, SignInput};

const VECTORS: &str = include_str!("../data/conformance/vectors.json");

#[derive(Deserialize)]
struct Vectors {
    verify: Vec<VerifyCase>,
    aead: Vec<AeadCase>,
    hash: Vec<HashCase>,
    rfc6979: Vec<Rfc6979Case>,
}

#[derive(Deserialize)]
struct VerifyCase {
    alg: String,
    file: String,
    #[serde(rename = "tcId")]
    tc_id: u64,
    spki: String,
    msg: String,
    sig: String,
    valid: bool,
}

#[derive(Deserialize)]
struct AeadCase {
    alg: String,
    #[serde(rename = "tcId")]
    tc_id: u64,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
}

#[derive(Deserialize)]
struct HashCase {
    alg: String,
    name: String,
    msg: String,
    digest: String,
}

#[derive(Deserialize)]
struct Rfc6979Case {
    alg: String,
    x: String,
    msg: String,
    r: String,
    s: String,
}

/// One line of the result table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub capability: String,
    pub algorithm: String,
    pub name: String,
    /// `pass`, `fail` or `skip` (no known answers ship for this algorithm).
    pub outcome: &'static str,
    pub detail: String,
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_default()
}

struct Table(Vec<Check>);

impl Table {
    fn add(&mut self, capability: Capability, algorithm: &str, name: String, result: Result<(), String>) {
        let (outcome, detail) = match result {
            Ok(()) => ("pass", String::new()),
            Err(d) => ("fail", d),
        };
        self.0.push(Check { capability: capability.name().into(), algorithm: algorithm.into(), name, outcome, detail });
    }

    fn skip(&mut self, capability: Capability, algorithm: &str, detail: &str) {
        self.0.push(Check {
            capability: capability.name().into(),
            algorithm: algorithm.into(),
            name: "known answers".into(),
            outcome: "skip",
            detail: detail.into(),
        });
    }
}

/// A refusal is fine where a negative answer is expected; a trap never is.
fn refused_or_false(r: Result<bool, ProviderError>) -> Result<(), String> {
    match r {
        Ok(false) => Ok(()),
        Ok(true) => Err("accepted".into()),
        Err(ProviderError::Fault(m)) => Err(format!("trapped: {m}")),
        Err(_) => Ok(()),
    }
}

fn refused(r: Result<bool, ProviderError>) -> Result<(), String> {
    match r {
        Err(ProviderError::Fault(m)) => Err(format!("trapped: {m}")),
        Err(_) => Ok(()),
        Ok(v) => Err(format!("answered {v} instead of refusing")),
    }
}

fn family(alg: &str) -> &str {
    &alg[..2.min(alg.len())]
}

/// How long the whole suite may run; what is left after it is reported as not run.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// The algorithms a provider claims for a capability, each once, in the order first claimed
/// (a component that lists SHA-256 two thousand times is checked once for it).
fn claims(d: &crate::provider::Descriptor, cap: Capability) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in d.capabilities.iter().filter(|c| c.capability == cap).flat_map(|c| &c.algorithms) {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

/// Runs every check that applies to what `p` claims.
///
/// # Panics
/// Never: the vectors are built into the binary and parse (a test keeps it so).
pub fn run(p: &dyn CryptoProvider) -> Vec<Check> {
    let vectors: Vectors = serde_json::from_str(VECTORS).unwrap_or(Vectors {
        verify: Vec::new(),
        aead: Vec::new(),
        hash: Vec::new(),
        rfc6979: Vec::new(),
    });
    let claims = |cap: Capability| claims(p.descriptor(), cap);
    let mut t = Table(Vec::new());
    let started = std::time::Instant::now();
    // Checked between algorithms: each check is itself bounded by the call limits.
    let late = |t: &mut Table, cap: Capability, alg: &str| {
        let over = started.elapsed() > DEADLINE;
        if over {
            t.add(cap, alg, "not run".into(), Err(format!("the suite's deadline of {} s passed", DEADLINE.as_secs())));
        }
        over
    };
    for alg in claims(Capability::Hashing) {
        if !late(&mut t, Capability::Hashing, &alg) {
            hashing(p, &vectors, &alg, &mut t);
        }
    }
    for alg in claims(Capability::Verification) {
        if !late(&mut t, Capability::Verification, &alg) {
            verification(p, &vectors, &alg, &mut t);
        }
    }
    for alg in claims(Capability::Signing) {
        if late(&mut t, Capability::Signing, &alg) {
            continue;
        }
        if let Some(k) = vectors.rfc6979.iter().find(|k| k.alg == alg) {
            t.add(Capability::Signing, &alg, "RFC 6979 A.2.5 deterministic signature".into(), rfc6979(p, k));
        }
        t.add(Capability::Signing, &alg, "generate, sign, verify, tampered".into(), round_trip(p, &alg));
    }
    for alg in claims(Capability::Encryption) {
        if late(&mut t, Capability::Encryption, &alg) {
            continue;
        }
        let cases: Vec<&AeadCase> = vectors.aead.iter().filter(|a| a.alg == alg).collect();
        if cases.is_empty() {
            t.skip(Capability::Encryption, &alg, "no known answers ship for this algorithm");
        }
        for a in cases {
            t.add(Capability::Encryption, &alg, format!("Wycheproof aes_gcm_test tcId {}", a.tc_id), aead(p, a));
        }
    }
    t.0
}

/// FIPS 180-4 known answers, one-shot and streamed, and an unknown hash refused.
fn hashing(p: &dyn CryptoProvider, vectors: &Vectors, alg: &str, t: &mut Table) {
    let alg = alg.to_string();
    let cases: Vec<&HashCase> = vectors.hash.iter().filter(|h| h.alg == alg).collect();
    if cases.is_empty() {
        t.skip(Capability::Hashing, &alg, "no known answers ship for this hash");
    }
    for h in cases {
        let want = hex(&h.digest);
        let one = p.digest(&alg, &hex(&h.msg)).map_err(|e| e.to_string());
        t.add(
            Capability::Hashing,
            &alg,
            format!("FIPS 180-4 {:?} one-shot", h.name),
            match one {
                Ok(d) if d == want => Ok(()),
                Ok(d) => Err(format!("digest {} != {}", hex::encode(d), h.digest)),
                Err(e) => Err(e),
            },
        );
        let streamed = p.digest_reader(&alg, &mut std::io::Cursor::new(hex(&h.msg))).map_err(|e| e.to_string());
        t.add(
            Capability::Hashing,
            &alg,
            format!("FIPS 180-4 {:?} streamed", h.name),
            match streamed {
                Ok(d) if d == want => Ok(()),
                Ok(d) => Err(format!("digest {} != {}", hex::encode(d), h.digest)),
                Err(e) => Err(e),
            },
        );
    }
    t.add(
        Capability::Hashing,
        &alg,
        "an unknown hash is refused, not trapped".into(),
        match p.digest("SHA-1", b"x") {
            Err(ProviderError::Fault(m)) => Err(format!("trapped: {m}")),
            Err(_) => Ok(()),
            Ok(_) => Err("SHA-1 answered".into()),
        },
    );
}

/// The Wycheproof verify cases, then tampered signatures and messages, a key of another family,
/// an empty signature and a malformed key.
fn verification(p: &dyn CryptoProvider, vectors: &Vectors, alg: &str, t: &mut Table) {
    let alg = alg.to_string();
    let cases: Vec<&VerifyCase> = vectors.verify.iter().filter(|v| v.alg == alg).collect();
    if cases.is_empty() {
        t.skip(Capability::Verification, &alg, "no known answers ship for this algorithm");
        return;
    }
    for v in &cases {
        let r = p.verify_once(&alg, &hex(&v.spki), SignInput::Message(&hex(&v.msg)), &hex(&v.sig), SigFormat::Der);
        let name = format!("Wycheproof {} tcId {} ({})", v.file, v.tc_id, if v.valid { "valid" } else { "invalid" });
        t.add(
            Capability::Verification,
            &alg,
            name,
            if v.valid {
                match r {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("a valid signature did not verify".into()),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                refused_or_false(r)
            },
        );
    }
    if let Some(v) = cases.iter().find(|v| v.valid) {
        let mut sig = hex(&v.sig);
        if let Some(last) = sig.last_mut() {
            *last ^= 0x01;
        }
        let r = p.verify_once(&alg, &hex(&v.spki), SignInput::Message(&hex(&v.msg)), &sig, SigFormat::Der);
        t.add(Capability::Verification, &alg, "tampered signature is not accepted".into(), refused_or_false(r));
        let mut msg = hex(&v.msg);
        msg.push(b'!');
        let r = p.verify_once(&alg, &hex(&v.spki), SignInput::Message(&msg), &hex(&v.sig), SigFormat::Der);
        t.add(Capability::Verification, &alg, "tampered message is not accepted".into(), refused_or_false(r));
        // A key of another family for this algorithm must be refused.
        if let Some(other) = vectors.verify.iter().find(|o| family(&o.alg) != family(&alg)) {
            let r =
                p.verify_once(&alg, &hex(&other.spki), SignInput::Message(&hex(&v.msg)), &hex(&v.sig), SigFormat::Der);
            t.add(Capability::Verification, &alg, format!("a {} key is refused", other.alg), refused(r));
        }
        let r = p.verify_once(&alg, &hex(&v.spki), SignInput::Message(&hex(&v.msg)), &[], SigFormat::Der);
        t.add(Capability::Verification, &alg, "an empty signature is not accepted".into(), refused_or_false(r));
        let r = p.verify_once(&alg, b"not a key", SignInput::Message(b"m"), &hex(&v.sig), SigFormat::Der);
        t.add(Capability::Verification, &alg, "a malformed key is refused".into(), refused(r));
    }
}

fn rfc6979(p: &dyn CryptoProvider, k: &Rfc6979Case) -> Result<(), String> {
    use p256::pkcs8::EncodePrivateKey;
    let secret = p256::SecretKey::from_slice(&hex(&k.x)).map_err(|e| e.to_string())?;
    let der = secret.to_pkcs8_der().map_err(|e| e.to_string())?;
    let id = p.import_pkcs8(der.as_bytes()).map_err(|e| e.to_string())?;
    let signed = p.sign(&id, &k.alg, SignInput::Message(&hex(&k.msg)), SigFormat::P1363);
    p.delete_key(&id);
    let sig = signed.map_err(|e| e.to_string())?;
    let want = [hex(&k.r), hex(&k.s)].concat();
    if sig == want { Ok(()) } else { Err(format!("signature {} is not RFC 6979's {}{}", hex::encode(sig), k.r, k.s)) }
}

fn round_trip(p: &dyn CryptoProvider, alg: &str) -> Result<(), String> {
    let id = p.generate(alg, 2048, false).map_err(|e| format!("generate: {e}"))?;
    let result = (|| {
        let msg = b"cryptohost components check";
        let sig = p.sign(&id, alg, SignInput::Message(msg), SigFormat::Der).map_err(|e| format!("sign: {e}"))?;
        let spki = p.public_key(&id).map_err(|e| format!("public key: {e}"))?;
        match p.verify_once(alg, &spki, SignInput::Message(msg), &sig, SigFormat::Der) {
            Ok(true) => {}
            Ok(false) => return Err("its own signature did not verify".into()),
            Err(ProviderError::Unsupported(_)) => {}
            Err(e) => return Err(format!("verify: {e}")),
        }
        let mut bad = sig.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        match p.verify_once(alg, &spki, SignInput::Message(msg), &bad, SigFormat::Der) {
            Ok(true) => Err("a tampered signature verified".into()),
            Err(ProviderError::Fault(m)) => Err(format!("trapped: {m}")),
            _ => Ok(()),
        }
    })();
    p.delete_key(&id);
    result
}

fn aead(p: &dyn CryptoProvider, a: &AeadCase) -> Result<(), String> {
    let id = p.import_secret(&a.alg, &hex(&a.key)).map_err(|e| format!("import: {e}"))?;
    let ct = [hex(&a.ct), hex(&a.tag)].concat();
    let plain = p.decrypt(&id, &hex(&a.iv), &ct, &hex(&a.aad)).map_err(|e| format!("decrypt: {e}"))?;
    if *plain != hex(&a.msg) {
        return Err("decrypted to other bytes".into());
    }
    let mut tampered = ct.clone();
    if let Some(b) = tampered.last_mut() {
        *b ^= 1;
    }
    match p.decrypt(&id, &hex(&a.iv), &tampered, &hex(&a.aad)) {
        Ok(_) => return Err("a tampered tag decrypted".into()),
        Err(ProviderError::Fault(m)) => return Err(format!("trapped: {m}")),
        Err(_) => {}
    }
    let sealed = p.encrypt(&id, b"round trip", b"aad").map_err(|e| format!("encrypt: {e}"))?;
    let back = p.decrypt(&id, &sealed.nonce, &sealed.ciphertext, b"aad").map_err(|e| format!("decrypt: {e}"))?;
    if *back != *b"round trip" {
        return Err("round trip gave other bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectors_parse_and_cover_every_algorithm() {
        let v: super::Vectors = serde_json::from_str(super::VECTORS).unwrap();
        for alg in [
            "ES256",
            "ES384",
            "ES512",
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "EdDSA",
            "ML-DSA-44",
            "ML-DSA-65",
            "ML-DSA-87",
        ] {
            assert!(v.verify.iter().any(|c| c.alg == alg && c.valid), "{alg}");
            assert!(v.verify.iter().any(|c| c.alg == alg && !c.valid), "{alg}");
        }
        assert!(v.aead.iter().any(|a| a.alg == "A128GCM") && v.aead.iter().any(|a| a.alg == "A256GCM"));
        assert_eq!(v.hash.iter().filter(|h| h.alg == "SHA-256").count(), 4);
    }

    #[test]
    fn a_claim_listed_many_times_is_checked_once() {
        let p = crate::provider::fake::fake("twice", 1, Err(ProviderError::Failed("no".into())));
        let mut d = p.descriptor().clone();
        d.capabilities[0].algorithms = vec!["ES256".to_string(); 2000];
        assert_eq!(claims(&d, Capability::Signing), vec!["ES256".to_string()]);
        let fake = crate::provider::fake::Fake(d, Err(ProviderError::Failed("no".into())), Default::default());
        let checks = run(&fake);
        assert!(checks.len() <= 2, "one algorithm, checked once: {}", checks.len());
    }
}
