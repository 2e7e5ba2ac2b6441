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
use cryptohost_client::{Client, Input, KeyName, SignRequest, VerifyRequest};
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
        println!("{v}");
    } else {
        served("hash", &v["provider"]);
        println!("{}", v["digest"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// The most a client reads to send whole (EdDSA): the server's own default payload limit.
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
        println!(
            "{}",
            json!({"algorithm": a.alg, "signature": b64, "hashed_by": hashed_by, "signed_by": {"name": v["provider"], "origin": v["origin"]}})
        );
    } else {
        if let Some(by) = &hashed_by {
            served("hash", by);
        }
        eprintln!("cryptohost: sign: served by {} via the server", v["provider"].as_str().unwrap_or("?"));
        if a.out.is_none() {
            println!("{b64}");
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
    let spki = keyfile::read_public_key(&a.public)?;
    let pem = keyfile::to_pem("PUBLIC KEY", &spki)?;
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
        public_key_pem: &pem,
        signature: &signature,
        input,
        signature_format: sig_format_name(a.sig_format),
    })?;
    let valid = v["valid"].as_bool().context("the server's verify answer has no verdict")?;
    if a.json {
        println!(
            "{}",
            json!({"algorithm": a.alg, "valid": valid, "hashed_by": hashed_by, "verified_by": v["provider"]})
        );
    } else {
        if let Some(by) = &hashed_by {
            served("hash", by);
        }
        served("verify", &v["provider"]);
        println!("{}", if valid { "valid" } else { "invalid" });
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
