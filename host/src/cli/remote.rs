//! Client mode (`--socket PATH` or `CRYPTOHOST_SOCKET`): hash, sign and verify go through a
//! running `cryptohost serve`, with the same output and exit codes as local mode. The client
//! needs no config, components or HSM PIN; a file argument is read here and its bytes (or its
//! digest, hashed by the server as a stream) are sent, never its path.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use cryptohost::fsio;
use cryptohost::keyfile;
use cryptohost_client::{Client, Input, KeyName, PublicKey, SignRequest, VerifyRequest};
use serde_json::{Value, json};

use super::{HashArgs, Outcome, SignArgs, VerifyArgs};

fn served(what: &str, provider: &Value) {
    let name = provider["name"].as_str().unwrap_or("?");
    let origin = &provider["origin"];
    match (origin["file"].as_str(), origin["sha256"].as_str()) {
        (Some(f), Some(d)) => eprintln!("cryptohost: {what}: served by {name} ({f} sha256:{d}) via the server"),
        _ => eprintln!("cryptohost: {what}: served by {name} via the server"),
    }
}

fn signature_alg(alg: &str) -> anyhow::Result<&'static cryptohost::alg::SignatureAlgorithm> {
    cryptohost::alg::signature(alg).with_context(|| {
        format!("unknown signature algorithm {alg:?} (expected one of {})", cryptohost::alg::signature_names())
    })
}

/// The file streamed through the server's hash: the digest (hex) and who hashed it.
fn remote_digest(client: &Client, hash: &str, file: &Path) -> anyhow::Result<(String, Value)> {
    let mut f = fsio::open_regular(file, "input")?;
    let v = client.hash(hash, &mut f)?;
    let digest = v["digest"].as_str().context("the server's hash answer has no digest")?.to_string();
    Ok((digest, v["provider"].clone()))
}

pub(super) fn hash(client: &Client, a: &HashArgs) -> Outcome {
    let mut f = fsio::open_regular(&a.file, "input")?;
    let v = client.hash(&a.alg, &mut f)?;
    if a.json {
        outln!("{v}");
    } else {
        served("hash", &v["provider"]);
        outln!("{}", v["digest"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// The most a client reads to send whole (EdDSA, ML-DSA): the server's own default payload limit.
const MAX_WHOLE: u64 = 64 << 20;

pub(super) fn sign(client: &Client, a: &SignArgs) -> Outcome {
    let alg = signature_alg(&a.alg)?;
    let key = cryptohost::keys::KeyRef::parse(&a.key)
        .map_err(|m| anyhow::anyhow!("key reference {:?}: {m}", cryptohost::pkcs11::Pkcs11Uri::redacted(&a.key)))?;
    if let cryptohost::keys::KeyRef::File(p) = &key {
        return Err(anyhow::anyhow!(
            "{}: a key file stays on this machine; in client mode keys are the server's (pkcs11:, sim:). Sign locally without --socket",
            p.display()
        )
        .into());
    }
    let format = sig_format_name(a.sig_format);
    let (input_owned, hashed_by) = match alg.hash {
        Some(h) => {
            let (digest, by) = remote_digest(client, h, &a.file)?;
            (Err(digest), Some(by))
        }
        None => (Ok(fsio::read_bounded(&a.file, MAX_WHOLE, "message to sign whole")?), None),
    };
    let input = match &input_owned {
        Ok(data) => Input::Data(data),
        Err(digest) => Input::DigestHex(digest),
    };
    let v = client.sign(&SignRequest {
        key: KeyName::Reference(&a.key),
        algorithm: alg.name,
        input,
        signature_format: format,
    })?;
    let b64 = v["signature"].as_str().context("the server's sign answer has no signature")?;
    let signature =
        base64::engine::general_purpose::STANDARD.decode(b64).context("the server's signature is not base64")?;
    if let Some(out) = &a.out {
        fsio::replace_atomic(out, &signature, 0o644)?;
    }
    if a.json {
        outln!(
            "{}",
            json!({"algorithm": a.alg, "signature": b64, "hashed_by": hashed_by, "signed_by": {"name": v["provider"], "origin": v["origin"]}})
        );
    } else {
        if let Some(by) = &hashed_by {
            served("hash", by);
        }
        eprintln!("cryptohost: sign: served by {} via the server", v["provider"].as_str().unwrap_or("?"));
        if a.out.is_none() {
            outln!("{b64}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn sig_format_name(f: cryptohost::SigFormat) -> &'static str {
    match f {
        cryptohost::SigFormat::Der => "der",
        cryptohost::SigFormat::P1363 => "p1363",
    }
}

pub(super) fn verify(client: &Client, a: &VerifyArgs) -> Outcome {
    let alg = signature_alg(&a.alg)?;
    let pem = match &a.public {
        Some(path) => Some(keyfile::to_pem("PUBLIC KEY", &keyfile::read_public_key(path)?)?),
        None => None,
    };
    let key = match (&pem, &a.key_id) {
        (Some(pem), _) => PublicKey::Pem(pem.as_str()),
        (None, Some(id)) => PublicKey::AnchorKeyId(id),
        (None, None) => return Err(anyhow::anyhow!("give --pub or --key-id").into()),
    };
    let signature = keyfile::read_signature(&a.sig)?;
    let (input_owned, hashed_by) = match alg.hash {
        Some(h) => {
            let (digest, by) = remote_digest(client, h, &a.file)?;
            (Err(digest), Some(by))
        }
        None => (Ok(fsio::read_bounded(&a.file, MAX_WHOLE, "message to verify whole")?), None),
    };
    let input = match &input_owned {
        Ok(data) => Input::Data(data),
        Err(digest) => Input::DigestHex(digest),
    };
    let v = client.verify(&VerifyRequest {
        algorithm: alg.name,
        key,
        signature: &signature,
        input,
        signature_format: sig_format_name(a.sig_format),
    })?;
    let valid = v["valid"].as_bool().context("the server's verify answer has no verdict")?;
    if a.json {
        outln!("{}", json!({"algorithm": a.alg, "valid": valid, "hashed_by": hashed_by, "verified_by": v["provider"]}));
    } else {
        if let Some(by) = &hashed_by {
            served("hash", by);
        }
        served("verify", &v["provider"]);
        outln!("{}", if valid { "valid" } else { "invalid" });
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(super) fn dsse_sign(client: &Client, a: &super::DsseSignArgs) -> Outcome {
    let alg = a.alg.as_deref();
    let mut keys = Vec::new();
    for k in &a.key {
        let alg = alg.context("--key needs --alg (profiles carry their own)")?;
        keys.push(json!({"key": k, "algorithm": alg}));
    }
    if keys.is_empty() && a.profile.is_empty() && a.key_id.is_empty() {
        return Err(anyhow::anyhow!("nothing to sign with: give --key (with --alg), --profile or --key-id").into());
    }
    let payload = fsio::read_bounded(&a.file, MAX_WHOLE, "DSSE payload")?;
    let v = client.post_json(
        "/v1/dsse/sign",
        json!({
            "payload_type": a.payload_type,
            "payload": base64::engine::general_purpose::STANDARD.encode(&payload),
            "keys": keys,
            "profiles": a.profile,
            "key_ids": a.key_id,
            "signature_format": sig_format_name(a.sig_format),
            "allow_partial": a.allow_partial,
        }),
    )?;
    for f in v["failures"].as_array().into_iter().flatten() {
        eprintln!("cryptohost: dsse sign: {} FAILED (kept the others, --allow-partial)", f.as_str().unwrap_or("?"));
    }
    let text = serde_json::to_string_pretty(&v["envelope"])?;
    match &a.out {
        Some(out) => fsio::replace_atomic(out, (text + "\n").as_bytes(), 0o644)?,
        None => outln!("{text}"),
    }
    let n = v["envelope"]["signatures"].as_array().map_or(0, Vec::len);
    eprintln!("cryptohost: dsse sign: {n} signature(s) via the server");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn dsse_verify(client: &Client, a: &super::DsseVerifyArgs) -> Outcome {
    if a.anchors.is_some() {
        return Err(anyhow::anyhow!(
            "--anchors names a directory, and a server never opens a client's paths: through a server, \
             leave out --pub and --anchors to use the server's own [trust] anchors, or give --pub keys"
        )
        .into());
    }
    let raw = fsio::read_bounded(&a.envelope, MAX_WHOLE / 3 * 4 + (1 << 20), "DSSE envelope")?;
    let envelope: Value =
        serde_json::from_slice(&raw).with_context(|| format!("{}: not JSON", a.envelope.display()))?;
    let mut keys = Vec::new();
    for given in &a.public {
        let (alg, path) = super::dsse::split_alg(given);
        let spki = keyfile::read_public_key(Path::new(path))?;
        // As in local mode: --alg names an RSA key's algorithm, never an EC key's.
        let alg = match cryptohost::alg::key_kind(&spki).map_err(|e| anyhow::anyhow!("{path}: {e}"))? {
            cryptohost::alg::KeyKind::Rsa => alg.or(a.alg.as_deref()),
            cryptohost::alg::KeyKind::Fixed(_) => alg,
        };
        keys.push(json!({"public_key": keyfile::to_pem("PUBLIC KEY", &spki)?.as_str(), "algorithm": alg}));
    }
    let mut request = json!({"envelope": envelope, "public_keys": keys, "threshold": a.threshold, "signature_format": sig_format_name(a.sig_format)});
    if a.public.is_empty() {
        request["purpose"] = json!(a.purpose);
        request["at"] = json!(a.at);
    }
    let v = client.post_json("/v1/dsse/verify", request)?;
    let valid = v["valid"].as_bool().context("the server's answer has no verdict")?;
    if valid && let (Some(out), Some(p)) = (&a.payload_out, v["payload"].as_str()) {
        let payload = base64::engine::general_purpose::STANDARD.decode(p).context("payload is not base64")?;
        fsio::replace_atomic(out, &payload, 0o644)?;
    }
    if a.json {
        // The same document as local mode.
        outln!(
            "{}",
            json!({"valid": valid, "payloadType": v["payload_type"], "verifiedBy": v["verified_by"],
                   "verifiedFingerprints": v["verified_fingerprints"], "threshold": a.threshold,
                   "notes": v["notes"], "refusedAnchors": v["refused_anchors"]})
        );
    } else {
        for r in v["refused_anchors"].as_array().into_iter().flatten() {
            eprintln!("cryptohost: dsse verify: {}", r.as_str().unwrap_or(""));
        }
        for n in v["notes"].as_array().into_iter().flatten() {
            eprintln!("cryptohost: dsse verify: {}", n.as_str().unwrap_or(""));
        }
        if valid {
            let by: Vec<&str> = v["verified_by"].as_array().into_iter().flatten().filter_map(|b| b.as_str()).collect();
            eprintln!("cryptohost: dsse verify: verified by {}", by.join(", "));
        }
        outln!("{}", if valid { "valid" } else { "invalid" });
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(super) fn keys(client: &Client, k: &super::KeysCommand) -> Outcome {
    match k {
        super::KeysCommand::List(f) => {
            let v = client.call_get("/v1/keys")?;
            if f.json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for key in v.as_array().into_iter().flatten() {
                    outln!(
                        "{}  {} {}  (token serial {})",
                        key["uri"].as_str().unwrap_or("?"),
                        key["key_type"].as_str().unwrap_or("?"),
                        key["class"].as_str().unwrap_or("?"),
                        key["token_serial"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        super::KeysCommand::Generate { reference, alg, rsa_bits, public } => {
            let v = client
                .post_json("/v1/keys/generate", json!({"key": reference, "algorithm": alg, "rsa_bits": rsa_bits}))?;
            outln!("generated {reference} ({alg})");
            let pem = v["public_key"].as_str().unwrap_or_default();
            if !pem.is_empty() {
                match public {
                    Some(p) => fsio::write_new(p, pem.as_bytes(), 0o644)?,
                    None => out!("{pem}"),
                }
            }
        }
        super::KeysCommand::Public { reference, alg, rsa_bits } => {
            let v = client
                .post_json("/v1/keys/public", json!({"key": reference, "algorithm": alg, "rsa_bits": rsa_bits}))?;
            eprintln!("cryptohost: keys public: via the server");
            out!("{}", v["public_key"].as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn crypt(client: &Client, a: &super::CryptArgs, encrypt: bool) -> Outcome {
    let b64 = base64::engine::general_purpose::STANDARD;
    let input = fsio::read_bounded(&a.file, MAX_WHOLE, if encrypt { "plaintext" } else { "ciphertext" })?;
    if encrypt {
        let v = client.post_json(
            "/v1/encrypt",
            json!({"key": a.key, "algorithm": a.alg, "plaintext": b64.encode(&input), "aad": b64.encode(a.aad.as_bytes())}),
        )?;
        let mut out = b64.decode(v["nonce"].as_str().unwrap_or_default()).context("nonce is not base64")?;
        out.extend(b64.decode(v["ciphertext"].as_str().unwrap_or_default()).context("ciphertext is not base64")?);
        fsio::write_new(&a.out, &out, 0o644)?;
    } else {
        if input.len() < 12 + 16 {
            return Err(anyhow::anyhow!("{} is too short to be nonce || ciphertext || tag", a.file.display()).into());
        }
        let (nonce, ciphertext) = input.split_at(12);
        let v = client.post_json(
            "/v1/decrypt",
            json!({"key": a.key, "algorithm": a.alg, "nonce": b64.encode(nonce), "ciphertext": b64.encode(ciphertext),
                   "aad": b64.encode(a.aad.as_bytes())}),
        )?;
        let plain = zeroize::Zeroizing::new(
            b64.decode(v["plaintext"].as_str().unwrap_or_default()).context("plaintext is not base64")?,
        );
        fsio::write_new(&a.out, &plain, 0o600)?;
    }
    outln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn hsm(client: &Client, h: &super::HsmCommand) -> Outcome {
    let (action, as_json) = match h {
        super::HsmCommand::Connect(f) => ("connect", f.json),
        super::HsmCommand::Status(f) => ("status", f.json),
        super::HsmCommand::Disconnect => ("disconnect", false),
    };
    let v = client.post_json(&format!("/v1/hsm/{action}"), Value::Null)?;
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for t in v.as_array().into_iter().flatten() {
            outln!("{}", serde_json::to_string(t)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
