//! Signing: who signs (a key reference, a profile, or the profile behind an anchor key id), the
//! access check before any key is looked up, the anchored-signer check, and one signature or a
//! DSSE envelope of several.

use cryptohost_client::api::{self, DsseSignResponse, SignResponse};

use super::input::{self, Input};
use super::{Context, RequestError, Target, anchors, signature_alg};
use crate::config::Operation;
use crate::dsse::{self, Signer};
use crate::keyref::KeyRef;
use crate::provider::SigFormat;

/// Who signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// A key reference (with an algorithm from the request).
    Reference(KeyRef),
    /// A configured profile: its key, algorithm and key id.
    Profile(String),
    /// A trust-anchor key id: the profile with that `key_id`.
    KeyId(String),
}

impl KeySpec {
    /// Every signer a multi-signer request names: key references with their algorithm,
    /// profiles, key ids.
    ///
    /// # Errors
    /// A reference that does not parse, or a name over the length bound.
    pub fn several(
        keys: &[api::DsseKey],
        profiles: &[String],
        key_ids: &[String],
    ) -> Result<Vec<(KeySpec, Option<String>)>, RequestError> {
        let mut signers = Vec::new();
        for k in keys {
            signers.push((KeySpec::one_of(Some(&k.key), None, None)?, Some(k.algorithm.clone())));
        }
        for p in profiles {
            signers.push((KeySpec::one_of(None, Some(p), None)?, None));
        }
        for id in key_ids {
            signers.push((KeySpec::one_of(None, None, Some(id))?, None));
        }
        Ok(signers)
    }

    /// Exactly one of a reference, a profile or a key id, as a request names them.
    ///
    /// # Errors
    /// None or several given, or a reference that does not parse.
    pub fn one_of(key: Option<&str>, profile: Option<&str>, key_id: Option<&str>) -> Result<KeySpec, RequestError> {
        match (key, profile, key_id) {
            (Some(k), None, None) => Ok(KeySpec::Reference(KeyRef::parse(super::bounded("key", k)?)?)),
            (None, Some(p), None) => Ok(KeySpec::Profile(super::bounded("profile", p)?.to_string())),
            (None, None, Some(id)) => Ok(KeySpec::KeyId(super::bounded("key_id", id)?.to_string())),
            _ => Err(RequestError::Invalid("give exactly one of key, profile or key_id".into())),
        }
    }
}

/// One signature over one input.
#[derive(Debug)]
pub struct Sign<'a> {
    pub key: KeySpec,
    /// Needed with a key reference; a profile carries its own.
    pub algorithm: Option<String>,
    pub input: Input<'a>,
    pub format: SigFormat,
}

impl<'a> Sign<'a> {
    /// The request of `POST /v1/sign`.
    ///
    /// # Errors
    /// Not exactly one key, profile or key id; not exactly one of data or digest; a bad format.
    pub fn from_wire(req: &'a api::SignRequest) -> Result<Sign<'a>, RequestError> {
        let input = match (&req.data, &req.digest) {
            (Some(d), None) => Input::Bytes(d),
            (None, Some(h)) => Input::digest_hex(h)?,
            _ => return Err(RequestError::Invalid("give exactly one of data (base64) or digest (hex)".into())),
        };
        Sign::from_query(
            &api::SignQuery {
                key: req.key.clone(),
                profile: req.profile.clone(),
                key_id: req.key_id.clone(),
                algorithm: req.algorithm.clone(),
                signature_format: req.signature_format.clone(),
            },
            input,
        )
    }

    /// The request of `POST /v1/sign/stream`, whose body is `input`.
    ///
    /// # Errors
    /// As [`Sign::from_wire`].
    pub fn from_query(q: &api::SignQuery, input: Input<'a>) -> Result<Sign<'a>, RequestError> {
        Ok(Sign {
            key: KeySpec::one_of(q.key.as_deref(), q.profile.as_deref(), q.key_id.as_deref())?,
            algorithm: q.algorithm.clone(),
            input,
            format: super::sig_format(q.signature_format.as_deref())?,
        })
    }
}

/// The caller may do `operations` on `target`, or the refusal is audited (fail-closed: a denial
/// that cannot be recorded is an error, not a silent refusal) and returned.
pub(super) fn permit(
    ctx: &Context<'_>,
    operations: &[Operation],
    target: Target<'_>,
    detail: impl FnOnce() -> String,
) -> Result<(), RequestError> {
    if ctx.gate.allows(operations, &target) {
        return Ok(());
    }
    event(ctx, "denied", detail())?;
    Err(RequestError::Denied)
}

/// Writes an event line (a denial, an admin action) on behalf of the gate's caller.
pub(super) fn event(ctx: &Context<'_>, event: &str, detail: String) -> Result<(), RequestError> {
    record_event(ctx.audit, ctx.gate.caller(), event, detail)
}

/// Writes an event line that is not a key use (a denial, an admin action, a reload): the one
/// place besides the key service that writes the audit log.
///
/// # Errors
/// The line cannot be written (the caller then refuses what it was about to do).
pub fn record_event(
    audit: &super::Audit,
    caller: Option<crate::audit::Caller>,
    event: &str,
    detail: String,
) -> Result<(), RequestError> {
    let log = audit.log()?;
    if event == "denied"
        && let Some(uid) = caller.as_ref().map(|c| c.uid)
    {
        match audit.denial(uid) {
            super::Denial::Suppress => return Ok(()),
            super::Denial::Write { suppressed: 0 } => {}
            super::Denial::Write { suppressed } => {
                let detail = format!(
                    "{suppressed} denial(s) of this caller in the last minute were not written (at most {} a minute are)",
                    super::DENIALS_PER_MINUTE
                );
                let summary = crate::audit::EventRecord {
                    time: crate::audit::now_rfc3339(),
                    event: "denied-not-written".into(),
                    caller: caller.clone(),
                    detail,
                };
                log.event(&summary)?;
            }
        }
    }
    let record = crate::audit::EventRecord { time: crate::audit::now_rfc3339(), event: event.into(), caller, detail };
    log.event(&record)?;
    Ok(())
}

/// A held key reference for `operation`: never a file the caller names unless the gate lets
/// the caller name its own files, and only once a rule allows it.
pub(super) fn permitted_reference(
    ctx: &Context<'_>,
    reference: &KeyRef,
    operations: &[Operation],
    what: &str,
) -> Result<(), RequestError> {
    if !reference.is_held() && !ctx.gate.local_files() {
        return Err(RequestError::Invalid(
            "the server never opens a file a client names: use a key reference the server holds (pkcs11:, sim:) \
             or a profile"
                .into(),
        ));
    }
    let canonical = reference.to_string();
    // A rule for a key covers each of its versions; a rule may also name one version.
    let base = reference.at_version(None).to_string();
    if base != canonical && ctx.gate.allows(operations, &Target::Key(&base)) {
        return Ok(());
    }
    permit(ctx, operations, Target::Key(&canonical), || format!("{what} with {canonical}"))
}

/// Who signs for `spec`, once the gate lets the caller use it. A profile is checked by name
/// before it is looked up, so an unknown profile and a forbidden one get the same answer from a
/// gate that hides absence; the same for the profile behind a key id.
pub(super) fn signer(ctx: &Context<'_>, spec: &KeySpec, algorithm: Option<&str>) -> Result<Signer, RequestError> {
    let profiles = &ctx.config.profiles;
    let config = || ctx.config.path.display().to_string();
    match spec {
        KeySpec::Reference(key) => {
            permitted_reference(ctx, key, &[Operation::Sign], "sign")?;
            let algorithm = algorithm.ok_or_else(|| {
                RequestError::Invalid("a key reference needs an algorithm (--alg; profiles carry their own)".into())
            })?;
            let alg = signature_alg(algorithm)?;
            Ok(Signer { label: key.to_string(), key: key.clone(), algorithm: alg.name.to_string(), key_id: None })
        }
        KeySpec::Profile(name) => {
            permit(ctx, &[Operation::Sign], Target::Profile(name), || format!("sign with profile {name:?}"))?;
            let p =
                profiles.get(name).ok_or_else(|| RequestError::NoProfile { name: name.clone(), config: config() })?;
            Ok(Signer {
                label: name.clone(),
                key: p.key.clone(),
                algorithm: p.algorithm.clone(),
                key_id: p.key_id.clone(),
            })
        }
        KeySpec::KeyId(id) => {
            let found = profiles.iter().find(|(_, p)| p.key_id.as_deref() == Some(id.as_str()));
            let detail = || format!("sign as key id {id:?}");
            let Some((name, p)) = found else {
                if ctx.gate.hides_absence() {
                    event(ctx, "denied", detail())?;
                    return Err(RequestError::Denied);
                }
                return Err(RequestError::NoKeyId { id: id.clone(), config: config() });
            };
            permit(ctx, &[Operation::Sign], Target::Profile(name), detail)?;
            Ok(Signer {
                label: name.clone(),
                key: p.key.clone(),
                algorithm: p.algorithm.clone(),
                key_id: Some(id.clone()),
            })
        }
    }
}

/// Who signs for each spec (each through the gate), at least one.
///
/// # Errors
/// None given, or as [`signer`] for any.
pub(super) fn signers(ctx: &Context<'_>, specs: &[(KeySpec, Option<String>)]) -> Result<Vec<Signer>, RequestError> {
    let mut signers = Vec::new();
    for (spec, algorithm) in specs {
        signers.push(signer(ctx, spec, algorithm.as_deref())?);
    }
    if signers.is_empty() {
        return Err(RequestError::Invalid(
            "nothing to sign with: give a key (with its algorithm), a profile or a key id".into(),
        ));
    }
    Ok(signers)
}

/// Signs one input with one key: the input hashed (streamed) or read whole as the algorithm
/// needs, the key used through the registry, the use audited with exactly what was signed.
///
/// # Errors
/// Denied, an unknown algorithm, unusable input, the anchors refuse the key, the provider
/// refuses or faults, or the audit line cannot be written.
pub fn sign(ctx: &Context<'_>, req: Sign<'_>) -> Result<SignResponse, RequestError> {
    let signer = signer(ctx, &req.key, req.algorithm.as_deref())?;
    let alg = signature_alg(&signer.algorithm)?;
    if let KeyRef::File(path) = &signer.key {
        // A bad key file is refused before any input is read.
        crate::keyfile::read_private_key(path)?;
    }
    let service = ctx.keys()?;
    // The policy before the anchors and before any input is read (a refusal is audited).
    service.check_sign(&signer.key, alg.name)?;
    anchors::check_signers(ctx, &service, std::slice::from_ref(&signer))?;
    let prepared = input::prepare(ctx, alg, req.input, true)?;
    let signed = service.sign(&signer.key, alg.name, prepared.sign_input(), &prepared.audit, req.format)?;
    Ok(SignResponse {
        algorithm: alg.name.to_string(),
        signature: signed.signature,
        provider: signed.provider,
        origin: signed.origin,
        hashed_by: prepared.hashed_by,
    })
}

/// A DSSE envelope signed by several signers at once.
#[derive(Debug)]
pub struct DsseSign<'a> {
    /// Each signer, with the algorithm a key reference needs.
    pub signers: Vec<(KeySpec, Option<String>)>,
    pub payload_type: String,
    /// A file (the CLI's) or bytes, read whole within the payload limit.
    pub payload: Input<'a>,
    pub format: SigFormat,
    pub allow_partial: bool,
}

impl<'a> DsseSign<'a> {
    /// The request of `POST /v1/dsse/sign`.
    ///
    /// # Errors
    /// A key reference that does not parse, or a bad format.
    pub fn from_wire(req: &'a api::DsseSignRequest) -> Result<DsseSign<'a>, RequestError> {
        Ok(DsseSign {
            signers: KeySpec::several(&req.keys, &req.profiles, &req.key_ids)?,
            payload_type: req.payload_type.clone(),
            payload: Input::Bytes(&req.payload),
            format: super::sig_format(req.signature_format.as_deref())?,
            allow_partial: req.allow_partial,
        })
    }
}

/// The DSSE payload, read whole within the payload limit.
fn payload(ctx: &Context<'_>, input: Input<'_>) -> Result<Vec<u8>, RequestError> {
    let limit = ctx.config.max_payload;
    match input {
        Input::File(path) => crate::fsio::read_bounded(path, limit as u64, "DSSE payload")
            .map_err(|e| RequestError::Invalid(format!("{e} (the limit is [dsse] max_payload_mib)"))),
        Input::Bytes(b) if b.len() > limit => Err(RequestError::Invalid(format!(
            "payload of {} bytes is over the DSSE limit of {limit} bytes ([dsse] max_payload_mib)",
            b.len()
        ))),
        Input::Bytes(b) => Ok(b.to_vec()),
        Input::Stream(_) | Input::Digest(_) => {
            Err(RequestError::Invalid("a DSSE payload is signed whole: give its bytes".into()))
        }
    }
}

/// Signs a payload as one DSSE envelope with every signer concurrently (each signature
/// audited). Without `allow_partial` any failure fails the whole sign, naming which.
///
/// # Errors
/// Nothing to sign with, denied, an unknown algorithm, the anchors refuse a key, or a signer
/// failed (its class is the answer's).
pub fn dsse_sign(ctx: &Context<'_>, req: DsseSign<'_>) -> Result<DsseSignResponse, RequestError> {
    let signers = signers(ctx, &req.signers)?;
    let service = ctx.keys()?;
    for s in &signers {
        service.check_sign(&s.key, &s.algorithm)?;
    }
    let payload = payload(ctx, req.payload)?;
    anchors::check_signers(ctx, &service, &signers)?;
    let (envelope, failures) =
        dsse::sign(&service, &req.payload_type, &payload, &signers, req.format, req.allow_partial)?;
    Ok(DsseSignResponse {
        envelope: envelope.into(),
        failures: failures.into_iter().map(|(label, e)| format!("{label}: {e}")).collect(),
    })
}
