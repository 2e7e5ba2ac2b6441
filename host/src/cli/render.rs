//! Rendering answers for a person or a program: one function per operation, over the wire
//! schema's types, so that local mode and client mode print the same bytes on stdout (and the
//! same `--json` document, which is the server's answer). Only stderr says which way it went
//! (`via` is empty locally).

use std::path::Path;
use std::process::ExitCode;

use cryptohost::fsio;
use cryptohost_client::api::{
    DsseSignResponse, DsseVerifyResponse, HashResponse, HsmReport, KeyListing, Origin, PublicKeyResponse, ServedBy,
    SignResponse, TokenStatus, VerifyResponse,
};

use super::Outcome;

/// "offline-verification (offline-verification.wasm sha256:ab12...)"
pub(super) fn provider(s: &ServedBy) -> String {
    match &s.origin {
        Origin::Component { file, sha256, publisher: None } => format!("{} ({file} sha256:{sha256})", s.name),
        Origin::Component { file, sha256, publisher: Some(p) } => {
            format!("{} ({file} sha256:{sha256}, published by {p})", s.name)
        }
        Origin::Native { module } => format!("{} (native {module})", s.name),
    }
}

/// The providers asked first, and the one that served, on stderr.
pub(super) fn report(what: &str, s: &ServedBy, via: &str) {
    for k in &s.skipped {
        served!("cryptohost: {what}: skipped {}: {}", k.provider, k.reason);
    }
    served!("cryptohost: {what}: served by {}{via}", provider(s));
}

/// One JSON document on one line.
pub(super) fn json_line(v: &impl serde::Serialize) -> Outcome {
    outln!("{}", serde_json::to_string(v)?);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verdict(valid: bool) -> ExitCode {
    if valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

pub(super) fn hash(h: &HashResponse, json: bool, via: &str) -> Outcome {
    if json {
        return json_line(h);
    }
    report("hash", &h.provider, via);
    outln!("{}", h.digest);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn sign(s: &SignResponse, json: bool, out: Option<&Path>, via: &str) -> Outcome {
    super::stdio::one_stdout_writer(out, json)?;
    if let Some(path) = out {
        // A fresh file renamed into place: a symlink planted at --out is replaced, not followed.
        super::stdio::write(path, &s.signature, |p, b| fsio::replace_atomic(p, b, 0o644))?;
    }
    if json {
        return json_line(s);
    }
    if let Some(h) = &s.hashed_by {
        report("hash", h, via);
    }
    served!("cryptohost: sign: served by {} ({}){via}", s.provider, s.origin);
    if out.is_none() {
        outln!("{}", cryptohost_client::api::b64::encode(&s.signature));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(v: &VerifyResponse, json: bool, verbose: bool, via: &str) -> Outcome {
    if json {
        json_line(v)?;
        return Ok(verdict(v.valid));
    }
    if let Some(h) = &v.hashed_by {
        report("hash", h, via);
    }
    report("verify", &v.provider, via);
    if verbose {
        // What was used, never a secret: nothing here is one.
        let unknown = || "?".to_string();
        eprintln!(
            "cryptohost: verify: key {} {}, algorithm {}, signature encoding {}",
            v.key_type.clone().unwrap_or_else(unknown),
            v.key_fingerprint.clone().unwrap_or_else(unknown),
            v.algorithm,
            v.signature_format.as_deref().unwrap_or("raw (not ECDSA)")
        );
        match &v.digest {
            Some(d) => eprintln!("cryptohost: verify: digest {} {}", d.hash, d.hex),
            None => eprintln!("cryptohost: verify: the whole message was verified (no prehash)"),
        }
    }
    outln!("{}", if v.valid { "valid" } else { "invalid" });
    Ok(verdict(v.valid))
}

pub(super) fn dsse_sign(s: &DsseSignResponse, out: Option<&Path>, json: bool, via: &str) -> Outcome {
    super::stdio::one_stdout_writer(out, json)?;
    if json {
        if let Some(out) = out {
            let envelope = serde_json::to_string_pretty(&s.envelope)? + "\n";
            super::stdio::write(out, envelope.as_bytes(), |p, b| fsio::replace_atomic(p, b, 0o644))?;
        }
        // The answer: the envelope and the signers that failed (with --allow-partial).
        return json_line(s);
    }
    for f in &s.failures {
        let (label, why) = f.split_once(": ").unwrap_or((f.as_str(), ""));
        eprintln!("cryptohost: dsse sign: {label} FAILED (kept the others, --allow-partial): {why}");
    }
    let json = serde_json::to_string_pretty(&s.envelope)?;
    match out {
        // A fresh file renamed into place: never written through a symlink at --out.
        Some(out) => super::stdio::write(out, (json + "\n").as_bytes(), |p, b| fsio::replace_atomic(p, b, 0o644))?,
        None => outln!("{json}"),
    }
    eprintln!("cryptohost: dsse sign: {} signature(s){via}", s.envelope.signatures.len());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn dsse_verify(v: &DsseVerifyResponse, json: bool, payload_out: Option<&Path>) -> Outcome {
    if let (Some(out), Some(payload)) = (payload_out, v.payload.as_ref().filter(|_| v.valid)) {
        // A fresh file renamed into place: never written through a symlink.
        fsio::replace_atomic(out, payload, 0o644)?;
    }
    if json {
        // The answer without the payload (which --payload-out writes, exactly).
        json_line(&DsseVerifyResponse { payload: None, ..v.clone() })?;
        return Ok(verdict(v.valid));
    }
    for r in &v.refused_anchors {
        eprintln!("cryptohost: dsse verify: {r}");
    }
    for n in &v.notes {
        eprintln!("cryptohost: dsse verify: {n}");
    }
    if v.valid {
        eprintln!("cryptohost: dsse verify: verified by {}", v.verified_by.join(", "));
    }
    outln!("{}", if v.valid { "valid" } else { "invalid" });
    Ok(verdict(v.valid))
}

pub(super) fn key_public(k: &PublicKeyResponse, json: bool, via: &str) -> Outcome {
    if json {
        return json_line(k);
    }
    served!("cryptohost: keys public: served by {}{via}", k.provider);
    if let Some(jwk) = &k.jwk {
        outln!("{}", serde_json::to_string_pretty(jwk)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", k.public_key);
    Ok(ExitCode::SUCCESS)
}

/// A key's versions, after a lifecycle step or as a listing.
pub(super) fn key_versions(k: &cryptohost_client::api::KeyVersions, json: bool) -> Outcome {
    if json {
        return json_line(k);
    }
    if let Some(w) = &k.warning {
        eprintln!("cryptohost: warning: {w}");
    }
    match (&k.step, k.version) {
        (Some(step), Some(v)) => outln!("{step}: {} version {v}", k.key),
        _ => outln!("{}", k.key),
    }
    if k.versions.is_empty() {
        outln!("  no recorded versions: version 1 (current)");
    }
    for v in &k.versions {
        let fp = v.spki_sha256.as_deref().map_or(String::new(), |f| format!("  sha256:{f}"));
        let adopted = if v.adopted { " (recorded then; made earlier)" } else { "" };
        outln!(
            "  version {:<4} {:<9} {:<9} created {}{adopted}  age {} d  {}{fp}",
            v.version,
            v.state,
            v.algorithm,
            v.created,
            v.age_days,
            v.provider
        );
    }
    if let Some(pem) = &k.public_key {
        out!("{pem}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn key_generated(
    reference: &str,
    alg: &str,
    k: &PublicKeyResponse,
    public: Option<&Path>,
    json: bool,
) -> Outcome {
    if let Some(p) = public.filter(|_| !k.public_key.is_empty()) {
        fsio::write_new(p, k.public_key.as_bytes(), 0o644)?;
    }
    if json {
        return json_line(&super::reports::KeyGenerated {
            key: reference.to_string(),
            algorithm: alg.to_string(),
            public_key: k.public_key.clone(),
            public_key_file: public.filter(|_| !k.public_key.is_empty()).map(Path::to_path_buf),
            provider: k.provider.clone(),
        });
    }
    outln!("generated {reference} ({alg})");
    if !k.public_key.is_empty() && public.is_none() {
        out!("{}", k.public_key);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn keys_list(keys: &[KeyListing], json: bool) -> Outcome {
    if json {
        outln!("{}", serde_json::to_string_pretty(keys)?);
        return Ok(ExitCode::SUCCESS);
    }
    for key in keys {
        let version = match (key.version, &key.state, key.age_days) {
            (Some(v), Some(state), Some(age)) => format!("  version {v} {state}, {age} d old"),
            _ => String::new(),
        };
        outln!("{}  {} {}  (token serial {}){version}", key.uri, key.key_type, key.class, key.token_serial);
    }
    Ok(ExitCode::SUCCESS)
}

fn token_line(t: &TokenStatus) -> String {
    if !t.present {
        // A configured token the module does not have: listed, never left out.
        let named = if t.label.is_empty() { format!("serial {}", t.serial) } else { t.label.clone() };
        return format!(
            "{named}: MISSING (configured, not found{})",
            t.last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    format!(
        "{} (serial {}, slot {}): {}, {}, {} session(s) open, {} idle{}",
        t.label,
        t.serial,
        t.slot.map_or_else(|| "?".to_string(), |s| s.to_string()),
        if t.healthy { "healthy" } else { "UNHEALTHY" },
        if t.logged_in { "logged in" } else { "not logged in" },
        t.sessions_open,
        t.sessions_idle,
        t.last_error.as_ref().map(|e| format!(", last error: {e}")).unwrap_or_default()
    )
}

pub(super) fn hsm(r: &HsmReport, json: bool) -> Outcome {
    if r.action == "disconnect" && json {
        // The whole report: whether there was a connection to end is its point.
        return json_line(r);
    }
    if r.action == "disconnect" {
        if r.was_connected {
            outln!("disconnected from {}", r.hsm);
        } else {
            outln!("{}: not connected; nothing to disconnect (no login was attempted)", r.hsm);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&r.tokens)?);
        return Ok(ExitCode::SUCCESS);
    }
    for t in &r.tokens {
        outln!("{}", token_line(t));
    }
    Ok(ExitCode::SUCCESS)
}
