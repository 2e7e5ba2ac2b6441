//! Where a servable command runs: in this process (the request layer over the loaded host, the
//! CLI's gate) or through a running `cryptohost serve` (`--socket`, the typed client). Every
//! operation answers with the same wire type either way, which `render` prints; this file is
//! the only place the two ways differ. In client mode no config, component or PIN is needed
//! here, and a file is read here and its bytes (streamed where they can be) are sent, never its
//! path.

use std::path::Path;

use super::stdio;

mod jose;
mod lifecycle;
pub(super) use jose::{JoseKeyArgs, JwsSignOptions};
pub(super) use lifecycle::VersionStep;

use anyhow::{Context as _, Result};
use cryptohost::fsio;
use cryptohost::keyfile;
use cryptohost::keys::KeyRef;
use cryptohost::provider::SigFormat;
use cryptohost::request::{
    self, Allow, Audit, Context, DsseSign, DsseVerify, GivenKey, Input, KeySpec, PayloadOut, TrustSpec,
};
use cryptohost::{Config, Host};
use cryptohost_client::api::{
    self, DsseSignResponse, DsseVerifyResponse, HashResponse, HsmReport, KeyListing, Plaintext, PublicKeyResponse,
    Sealed, SignResponse, VerifyResponse,
};
use cryptohost_client::{Client, HsmAction};

/// The host loaded in this process.
pub(super) struct Local {
    pub config: Config,
    pub host: Host,
    audit: Audit,
}

impl Local {
    pub fn new(config: Config, host: Host) -> Local {
        let audit = Audit::at(config.audit_path.clone(), config.audit_options());
        Local { config, host, audit }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context::new(&self.host, &self.config, &self.audit, &Allow)
    }
}

pub(super) enum Backend {
    Local(Box<Local>),
    Remote(Client),
}

/// The most a client reads to send whole (a DSSE payload, EdDSA and ML-DSA messages, AES-GCM
/// input): the server's own default payload limit; the server applies its configured one.
pub(super) const MAX_WHOLE: u64 = 64 << 20;

/// Who signs, as the command line names it.
pub(super) struct Signers<'a> {
    pub keys: &'a [String],
    pub alg: Option<&'a str>,
    pub profiles: &'a [String],
    pub key_ids: &'a [String],
}

impl Signers<'_> {
    /// Each signer as the request layer names it (key references with the one --alg).
    pub fn specs(&self) -> Result<Vec<(KeySpec, Option<String>)>> {
        let mut signers = Vec::new();
        for k in self.keys {
            signers.push((KeySpec::Reference(reference(k, false)?), self.alg.map(str::to_string)));
        }
        signers.extend(self.profiles.iter().map(|p| (KeySpec::Profile(p.clone()), None)));
        signers.extend(self.key_ids.iter().map(|id| (KeySpec::KeyId(id.clone()), None)));
        Ok(signers)
    }

    /// The server's form: key references (checked to be the server's) with their algorithm.
    pub fn wire_keys(&self) -> Result<Vec<api::DsseKey>> {
        let mut keys = Vec::new();
        for k in self.keys {
            reference(k, true)?;
            keys.push(api::DsseKey { key: k.clone(), algorithm: self.alg.unwrap_or_default().to_string() });
        }
        Ok(keys)
    }
}

/// The key a signature is verified with, as the command line names it.
pub(super) enum VerifyKey<'a> {
    Pub(&'a Path),
    KeyId(&'a str),
}

/// The trust of `dsse verify`, as the command line names it.
pub(super) struct DsseTrust<'a> {
    /// `[ALG:]PATH` each.
    pub public: &'a [String],
    pub alg: Option<&'a str>,
    pub anchors: Option<&'a Path>,
    pub at: Option<&'a str>,
    pub purpose: Option<&'a str>,
}

fn format_name(f: SigFormat) -> String {
    match f {
        SigFormat::Der => "der".into(),
        SigFormat::P1363 => "p1363".into(),
    }
}

fn one(v: &[String]) -> Option<&str> {
    v.first().map(String::as_str)
}

/// A key reference from the command line; in client mode it must be one the server holds.
fn reference(text: &str, remote: bool) -> Result<KeyRef> {
    let key = KeyRef::parse(text)?;
    if remote && let KeyRef::File(p) = &key {
        anyhow::bail!(
            "{}: a key file stays on this machine; in client mode keys are the server's (pkcs11:, sim:). Run \
             locally without --socket",
            p.display()
        );
    }
    Ok(key)
}

/// `PS256:path` -> (Some("PS256"), "path"); anything else is a plain path (a path that
/// happens to contain a colon still works when its prefix is not an algorithm name).
pub(super) fn split_alg(given: &str) -> (Option<&str>, &str) {
    match given.split_once(':') {
        Some((alg, path)) if cryptohost::alg::is_signature_algorithm(alg) && !path.is_empty() => (Some(alg), path),
        _ => (None, given),
    }
}

impl Backend {
    /// What stderr adds to "served by": nothing locally.
    pub fn via(&self) -> &'static str {
        match self {
            Backend::Local(_) => "",
            Backend::Remote(_) => " via the server",
        }
    }

    pub fn hash(&self, alg: &str, file: &Path) -> Result<HashResponse> {
        match self {
            Backend::Local(l) => Ok(stdio::with_input(file, |input| request::hash(&l.ctx(), alg, input))?),
            Backend::Remote(c) => Ok(c.hash(alg, &mut stdio::open(file)?)?),
        }
    }

    /// One key, profile or key id signs a file (streamed to the server in client mode, which
    /// hashes it as it arrives and audits what it saw, as a local sign does).
    pub fn sign(&self, who: &Signers<'_>, file: &Path, format: SigFormat) -> Result<SignResponse> {
        let count = who.keys.len() + who.profiles.len() + who.key_ids.len();
        if count != 1 {
            anyhow::bail!("give exactly one of --key (with --alg), --profile or --key-id");
        }
        match self {
            Backend::Local(l) => {
                let key = match (one(who.keys), one(who.profiles), one(who.key_ids)) {
                    (Some(k), _, _) => KeySpec::Reference(reference(k, false)?),
                    (_, Some(p), _) => KeySpec::Profile(p.to_string()),
                    (_, _, id) => KeySpec::KeyId(id.unwrap_or_default().to_string()),
                };
                let algorithm = who.alg.map(str::to_string);
                Ok(stdio::with_input(file, |input| {
                    request::sign(&l.ctx(), request::Sign { key, algorithm, input, format })
                })?)
            }
            Backend::Remote(c) => {
                if let Some(k) = one(who.keys) {
                    reference(k, true)?;
                }
                let q = api::SignQuery {
                    key: one(who.keys).map(str::to_string),
                    profile: one(who.profiles).map(str::to_string),
                    key_id: one(who.key_ids).map(str::to_string),
                    algorithm: who.alg.map(str::to_string),
                    signature_format: Some(format_name(format)),
                };
                Ok(c.sign_stream(&q, &mut stdio::open(file)?)?)
            }
        }
    }

    pub fn verify(
        &self,
        alg: &str,
        key: VerifyKey<'_>,
        signature: Vec<u8>,
        file: &Path,
        format: SigFormat,
    ) -> Result<VerifyResponse> {
        let algorithm = request::signature_alg(alg)?;
        match self {
            Backend::Local(l) => {
                let key = match key {
                    VerifyKey::Pub(path) => request::PublicKeySpec::Spki(keyfile::read_public_key(path)?),
                    VerifyKey::KeyId(id) => request::PublicKeySpec::AnchorKeyId(id.to_string()),
                };
                Ok(stdio::with_input(file, |input| {
                    request::verify(
                        &l.ctx(),
                        request::Verify { algorithm: alg.to_string(), key, signature, input, format },
                    )
                })?)
            }
            Backend::Remote(c) => {
                let mut req = api::VerifyRequest {
                    algorithm: alg.to_string(),
                    signature,
                    signature_format: Some(format_name(format)),
                    ..Default::default()
                };
                match key {
                    VerifyKey::Pub(path) => {
                        let pem = keyfile::to_pem("PUBLIC KEY", &keyfile::read_public_key(path)?)?;
                        req.public_key = Some(pem.to_string());
                    }
                    VerifyKey::KeyId(id) => req.key_id = Some(id.to_string()),
                }
                // The file is hashed by the server as a stream, and only its digest sent; a whole
                // message (EdDSA, ML-DSA) is sent as it is.
                let hashed = match algorithm.hash {
                    Some(h) => {
                        let hashed = c.hash(h, &mut stdio::open(file)?)?;
                        req.digest = Some(hashed.digest);
                        Some(hashed.provider)
                    }
                    None => {
                        req.data = Some(stdio::read_whole(file, MAX_WHOLE, "message to verify whole")?);
                        None
                    }
                };
                let mut answer = c.verify(&req)?;
                answer.hashed_by = answer.hashed_by.or(hashed);
                Ok(answer)
            }
        }
    }

    pub fn dsse_sign(
        &self,
        who: &Signers<'_>,
        payload_type: &str,
        file: &Path,
        format: SigFormat,
        allow_partial: bool,
    ) -> Result<DsseSignResponse> {
        if !who.keys.is_empty() && who.alg.is_none() {
            anyhow::bail!("--key needs --alg (profiles carry their own)");
        }
        match self {
            Backend::Local(l) => {
                let signers = who.specs()?;
                let payload_type = payload_type.to_string();
                // A DSSE payload is signed whole: from standard input it is read within the limit.
                let piped = if stdio::is_std(file) {
                    Some(stdio::read_whole(file, l.config.max_payload as u64, "DSSE payload")?)
                } else {
                    None
                };
                let payload = piped.as_deref().map_or(Input::File(file), Input::Bytes);
                Ok(request::dsse_sign(&l.ctx(), DsseSign { signers, payload_type, payload, format, allow_partial })?)
            }
            Backend::Remote(c) => {
                let keys = who.wire_keys()?;
                let req = api::DsseSignRequest {
                    payload_type: payload_type.to_string(),
                    payload: stdio::read_whole(file, MAX_WHOLE, "DSSE payload")?,
                    keys,
                    profiles: who.profiles.to_vec(),
                    key_ids: who.key_ids.to_vec(),
                    signature_format: Some(format_name(format)),
                    allow_partial,
                };
                Ok(c.dsse_sign(&req)?)
            }
        }
    }

    pub fn dsse_verify(
        &self,
        envelope: &Path,
        trust: &DsseTrust<'_>,
        threshold: usize,
        format: SigFormat,
        max_payload: Option<usize>,
        payload_out: Option<&Path>,
    ) -> Result<DsseVerifyResponse> {
        if !trust.public.is_empty() && trust.anchors.is_some() {
            anyhow::bail!("give either --pub (repeatable) or --anchors DIR, not both");
        }
        let limit = match (self, max_payload) {
            (_, Some(m)) => m as u64,
            (Backend::Local(l), None) => l.config.max_payload as u64,
            (Backend::Remote(_), None) => MAX_WHOLE,
        };
        // The envelope is base64 of the payload plus its signatures: bound it before reading.
        let raw = fsio::read_bounded(envelope, limit / 3 * 4 + (1 << 20), "DSSE envelope")?;
        let mut keys = Vec::new();
        for given in trust.public {
            let (alg, path) = split_alg(given);
            let spki = keyfile::read_public_key(Path::new(path))?;
            keys.push(GivenKey { name: path.to_string(), spki, algorithm: alg.map(str::to_string) });
        }
        match self {
            Backend::Local(l) => {
                let trust = if keys.is_empty() {
                    TrustSpec::Anchors {
                        dir: trust.anchors.map(Path::to_path_buf),
                        at: trust.at.map(str::to_string),
                        purpose: trust.purpose.map(str::to_string),
                    }
                } else {
                    TrustSpec::Keys { keys, rsa_default: trust.alg.map(str::to_string) }
                };
                // Locally the payload is decoded straight into its file, never held whole.
                let payload = payload_out.map_or(PayloadOut::Omit, |p| PayloadOut::File(p.to_path_buf()));
                let req = DsseVerify { envelope: raw, trust, threshold, format, max_payload, payload };
                Ok(request::dsse_verify(&l.ctx(), req).with_context(|| envelope.display().to_string())?)
            }
            Backend::Remote(c) => {
                if trust.anchors.is_some() {
                    anyhow::bail!(
                        "--anchors names a directory, and a server never opens a client's paths: through a server, \
                         leave out --pub and --anchors to use the server's own anchors, or give --pub keys"
                    );
                }
                let envelope_json: serde_json::Value = serde_json::from_slice(&raw)
                    .with_context(|| format!("{}: envelope is not JSON", envelope.display()))?;
                let mut public_keys = Vec::new();
                for k in keys {
                    public_keys.push(api::DssePublicKey {
                        public_key: keyfile::to_pem("PUBLIC KEY", &k.spki)?.to_string(),
                        algorithm: k.algorithm,
                        name: Some(k.name),
                    });
                }
                let anchored = public_keys.is_empty();
                let req = api::DsseVerifyRequest {
                    envelope: envelope_json,
                    public_keys,
                    rsa_algorithm: trust.alg.map(str::to_string),
                    threshold: Some(threshold),
                    signature_format: Some(format_name(format)),
                    purpose: trust.purpose.filter(|_| anchored).map(str::to_string),
                    at: trust.at.filter(|_| anchored).map(str::to_string),
                };
                Ok(c.dsse_verify(&req)?)
            }
        }
    }

    pub fn key_public(&self, reference_text: &str, alg: &str, rsa_bits: u32, jwk: bool) -> Result<PublicKeyResponse> {
        match self {
            Backend::Local(l) => {
                Ok(request::key_public(&l.ctx(), &reference(reference_text, false)?, alg, rsa_bits, jwk)?)
            }
            Backend::Remote(c) => {
                reference(reference_text, true)?;
                let req =
                    api::KeyRequest { key: reference_text.into(), algorithm: alg.into(), rsa_bits: Some(rsa_bits) };
                Ok(if jwk { c.key_public_jwk(&req)? } else { c.key_public(&req)? })
            }
        }
    }

    pub fn key_generate(&self, reference_text: &str, alg: &str, rsa_bits: u32) -> Result<PublicKeyResponse> {
        match self {
            Backend::Local(l) => {
                Ok(request::key_generate(&l.ctx(), &reference(reference_text, false)?, alg, rsa_bits)?)
            }
            Backend::Remote(c) => {
                let req =
                    api::KeyRequest { key: reference_text.into(), algorithm: alg.into(), rsa_bits: Some(rsa_bits) };
                Ok(c.key_generate(&req)?)
            }
        }
    }

    pub fn keys_list(&self) -> Result<Vec<KeyListing>> {
        match self {
            Backend::Local(l) => Ok(request::keys_list(&l.ctx())?),
            Backend::Remote(c) => Ok(c.keys_list()?),
        }
    }

    fn whole_limit(&self) -> u64 {
        match self {
            Backend::Local(l) => l.config.max_payload as u64,
            Backend::Remote(_) => MAX_WHOLE,
        }
    }

    pub fn encrypt(&self, key: &str, alg: &str, file: &Path, aad: &[u8]) -> Result<Sealed> {
        let plaintext = zeroize::Zeroizing::new(stdio::read_whole(file, self.whole_limit(), "plaintext")?);
        match self {
            Backend::Local(l) => Ok(request::encrypt(&l.ctx(), &reference(key, false)?, alg, &plaintext, aad)?),
            Backend::Remote(c) => {
                let req = api::EncryptRequest {
                    key: key.into(),
                    algorithm: Some(alg.into()),
                    plaintext: plaintext.to_vec(),
                    aad: Some(aad.to_vec()),
                };
                Ok(c.encrypt(&req)?)
            }
        }
    }

    pub fn decrypt(&self, key: &str, alg: &str, file: &Path, aad: &[u8]) -> Result<Plaintext> {
        let input = stdio::read_whole(file, self.whole_limit(), "ciphertext")?;
        if input.len() < 12 + 16 {
            anyhow::bail!("{} is too short to be nonce || ciphertext || tag", file.display());
        }
        let (nonce, ciphertext) = input.split_at(12);
        match self {
            Backend::Local(l) => Ok(request::decrypt(&l.ctx(), &reference(key, false)?, alg, nonce, ciphertext, aad)?),
            Backend::Remote(c) => {
                let req = api::DecryptRequest {
                    key: key.into(),
                    algorithm: Some(alg.into()),
                    nonce: nonce.to_vec(),
                    ciphertext: ciphertext.to_vec(),
                    aad: Some(aad.to_vec()),
                };
                Ok(c.decrypt(&req)?)
            }
        }
    }

    pub fn hsm(&self, action: HsmAction) -> Result<HsmReport> {
        match self {
            Backend::Local(l) => Ok(request::hsm(&l.ctx(), action)?),
            Backend::Remote(c) => Ok(c.hsm(action)?),
        }
    }
}

/// A key reference with `--version N` applied (as `x-version=N`); a reference that names
/// another version already is refused.
pub(super) fn versioned(reference: &str, version: Option<u32>) -> Result<String> {
    let Some(v) = version else { return Ok(reference.to_string()) };
    let parsed = cryptohost::keys::KeyRef::parse(reference)?;
    match parsed.version() {
        Some(given) if given != v => {
            anyhow::bail!("{reference} names version {given}, and --version {v} another: give one")
        }
        _ if !parsed.is_held() => anyhow::bail!("--version: a key file has no versions"),
        _ => Ok(parsed.at_version(Some(v)).to_string()),
    }
}
