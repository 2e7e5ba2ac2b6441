//! The audit log as a transparency log, for a person checking it: the audit key's note
//! verifier, the latest checkpoint, verifying log files, proving one line, checking a proof.
//! Signatures are checked through the registry (the components' Ed25519 and ECDSA verifiers).

use std::path::Path;

use super::{Context, RequestError};
use crate::audit::tlog::note::{SigType, Verifier};
use crate::audit::verify::{self, InclusionProof, LogReport};
use crate::provider::{SigFormat, SignInput};

/// A key given to check checkpoints with: a note verifier key (`name+id+base64`, as Go's
/// `note.NewVerifier` reads it) or a public key (PEM or DER SPKI; the note's origin names it).
pub enum AuditTrust {
    Vkey(Verifier),
    Spki(Vec<u8>),
}

impl AuditTrust {
    /// Reads a `--pub` file's contents.
    ///
    /// # Errors
    /// Neither a verifier key nor a public key.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<AuditTrust, RequestError> {
        let text = String::from_utf8_lossy(bytes);
        let line = text.trim();
        if !line.contains("-----BEGIN") && line.contains('+') && !line.contains('\n') {
            return Verifier::parse(line)
                .map(AuditTrust::Vkey)
                .map_err(|e| RequestError::Invalid(format!("not a note verifier key: {e}")));
        }
        Ok(AuditTrust::Spki(crate::keyfile::public_key_from_bytes(path, bytes)?))
    }
}

/// The verifiers a log's checkpoints are checked with: those given, else the configured audit
/// key's.
fn trusted(ctx: &Context<'_>, given: &[AuditTrust]) -> Result<impl Fn(&str) -> Vec<Verifier>, RequestError> {
    let mut fixed = Vec::new();
    let mut spkis = Vec::new();
    for g in given {
        match g {
            AuditTrust::Vkey(v) => fixed.push(v.clone()),
            AuditTrust::Spki(s) => spkis.push(s.clone()),
        }
    }
    if given.is_empty() {
        let key = audit_key(ctx)?;
        fixed.push(ctx.keys()?.audit_verifier(&key)?);
    }
    Ok(move |origin: &str| {
        let mut all = fixed.clone();
        all.extend(spkis.iter().filter_map(|s| crate::audit::tlog::verifier(origin, s).ok()));
        all
    })
}

fn audit_key(ctx: &Context<'_>) -> Result<crate::keys::AuditKey, RequestError> {
    let key = ctx.config.audit_key.clone().ok_or_else(|| {
        RequestError::Invalid(format!(
            "no [audit] key in {}: give the audit key's public key (--pub)",
            ctx.config.path.display()
        ))
    })?;
    Ok(crate::keys::AuditKey {
        key,
        algorithm: ctx.config.audit_key_algorithm.clone(),
        origin: ctx.config.audit_origin.clone(),
    })
}

/// The signature check of one note signature, through the registry.
fn signature_check(ctx: &Context<'_>) -> impl Fn(&Verifier, &[u8], &[u8]) -> bool {
    let registry = &ctx.host.registry;
    move |v: &Verifier, text: &[u8], sig: &[u8]| match v.sig_type() {
        SigType::Ed25519 => {
            let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
            spki.extend_from_slice(v.public_key());
            registry.verify("EdDSA", &spki, SignInput::Message(text), sig, SigFormat::Der).is_ok_and(|s| s.value)
        }
        SigType::Ecdsa => registry.digest("SHA-256", text).is_ok_and(|d| {
            registry
                .verify("ES256", v.public_key(), SignInput::Digest(&d.value), sig, SigFormat::Der)
                .is_ok_and(|s| s.value)
        }),
    }
}

/// The configured audit key's note verifier key (`name+id+base64`), for Go's
/// `note.NewVerifier` and for `--pub` elsewhere.
///
/// # Errors
/// No audit key, or it cannot be read or is of another type.
pub fn audit_vkey(ctx: &Context<'_>) -> Result<String, RequestError> {
    let key = audit_key(ctx)?;
    Ok(ctx.keys()?.audit_verifier(&key)?.to_vkey())
}

/// Checks each log file (see `crate::audit::verify`), and `recorded` (a checkpoint kept
/// elsewhere) against the first file... the last: the one it was taken from, the newest.
///
/// # Errors
/// A file cannot be read, or no key to check with.
pub fn audit_verify(
    ctx: &Context<'_>,
    files: &[&Path],
    given: &[AuditTrust],
    recorded: Option<&str>,
) -> Result<Vec<LogReport>, RequestError> {
    let trusted = trusted(ctx, given)?;
    let check = signature_check(ctx);
    let recorded = recorded
        .map(|r| verify::recorded(r, &trusted, &check))
        .transpose()
        .map_err(|e| RequestError::Invalid(format!("the recorded checkpoint does not verify: {e}")))?;
    let mut reports: Vec<LogReport> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let (mut report, _) = verify::check_file(f, &trusted, &check, recorded.as_ref().filter(|_| last))
            .map_err(RequestError::Invalid)?;
        // Files given in order: each one's genesis must name the one before, whole.
        if let Some(before) = reports.last()
            && let Err(why) = follows(f, before)
        {
            report.problems.insert(0, why);
            report.first_bad_line = Some(1);
            report.valid = false;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The inclusion proof of line `line` of `log`.
///
/// # Errors
/// No such line, or no checkpoint covers it.
pub fn audit_prove(log: &Path, line: u64) -> Result<InclusionProof, RequestError> {
    verify::prove(log, line).map_err(RequestError::Invalid)
}

/// Checks an inclusion proof without the log; returns the checkpoint's size.
///
/// # Errors
/// The checkpoint's signature or the proof does not check.
pub fn audit_check_proof(ctx: &Context<'_>, proof: &InclusionProof, given: &[AuditTrust]) -> Result<u64, RequestError> {
    let trusted = trusted(ctx, given)?;
    verify::check_proof(proof, &trusted, &signature_check(ctx)).map(|cp| cp.size).map_err(RequestError::Invalid)
}

/// The genesis line of `file` names the file `before` was checked as: its line count and root.
fn follows(file: &Path, before: &LogReport) -> Result<(), String> {
    use std::io::{BufRead as _, Read as _};
    let opened = crate::fsio::open_regular(file, "audit log").map_err(|e| e.to_string())?;
    let mut first = Vec::new();
    std::io::BufReader::new(opened.take(verify::MAX_LINE as u64))
        .read_until(b'\n', &mut first)
        .map_err(|e| e.to_string())?;
    let genesis: serde_json::Value = serde_json::from_slice(first.trim_ascii_end()).unwrap_or_default();
    let previous = &genesis["previous"];
    let (lines, root) = (previous["lines"].as_u64(), previous["root"].as_str());
    if genesis["event"] != "genesis" || lines.is_none() {
        return Err(format!("line 1: no genesis naming the file before ({})", before.file));
    }
    if lines != Some(before.lines) || root != Some(before.root.as_str()) {
        return Err(format!(
            "line 1: its genesis names a file of {} lines with root {}, but {} has {} lines with root {}: a file \
             between them is missing, or the one before was changed",
            lines.unwrap_or(0),
            root.unwrap_or("?"),
            before.file,
            before.lines,
            before.root
        ));
    }
    Ok(())
}

/// The keys of the trust anchors in `dir` valid now for the purpose `audit-log`, to check
/// checkpoints with (an installed kit is checked first, as every use of anchors checks it).
///
/// # Errors
/// The anchors do not load, or none is valid for the purpose.
pub fn audit_anchors(ctx: &Context<'_>, dir: &Path) -> Result<Vec<AuditTrust>, RequestError> {
    let set = super::anchors::in_dir(ctx, dir, time::OffsetDateTime::now_utc(), Some("audit-log"))?;
    if set.keys.is_empty() {
        return Err(RequestError::Invalid(format!(
            "no anchor in {} is valid now for the purpose audit-log{}",
            dir.display(),
            if set.refused.is_empty() { String::new() } else { format!(" ({})", set.refused.join("; ")) }
        )));
    }
    Ok(set.keys.into_iter().map(|k| AuditTrust::Spki(k.spki)).collect())
}
