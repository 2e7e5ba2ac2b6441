//! `jws sign`, `jws verify`, `jwt sign`, `jwt verify`: the command lines, and their rendering.
//! The operations are the request layer's (through `Backend`, here or through a server).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgAction, Args, Subcommand};
use cryptohost::fsio;
use cryptohost_client::api::{JwsSignResponse, JwsVerifyResponse, JwtVerifyResponse};

use super::backend::{Backend, JoseKeyArgs, Signers};
use super::render::{json_line, verdict};
use super::{Outcome, stdio};

#[derive(Subcommand)]
pub(super) enum JwsCommand {
    /// Sign FILE as a JWS (RFC 7515): compact by default; flattened or general JSON; several
    /// signers in one general JWS; detached and unencoded (RFC 7797) payloads.
    Sign(JwsSignArgs),
    /// Verify a JWS (any serialization) against --pub keys, a --jwks set, an --anchors
    /// directory, or the configured anchors.
    Verify(JwsVerifyArgs),
}

#[derive(Subcommand)]
pub(super) enum JwtCommand {
    /// Issue a JWT: the claims of --claims FILE signed as a compact JWS with typ JWT.
    Sign(JwtSignArgs),
    /// Verify a JWT (RFC 7519) and its claims as RFC 8725 asks; prints the verified claims.
    Verify(JwtVerifyArgs),
}

/// Who signs a JWS.
#[derive(Args)]
pub(super) struct JoseSigners {
    /// A key reference to sign with (repeatable; needs --alg).
    #[arg(long)]
    key: Vec<String>,
    /// Algorithm for --key references: ES256/384/512, RS256/384/512, PS256/384/512, EdDSA.
    #[arg(long)]
    alg: Option<String>,
    /// A configured signing profile (repeatable).
    #[arg(long)]
    profile: Vec<String>,
    /// A trust-anchor key id: the profile with that key_id signs, and the kid is that id.
    #[arg(long)]
    key_id: Vec<String>,
    /// The kid to write (one signer; default the profile's key id, else the key's RFC 7638
    /// thumbprint).
    #[arg(long)]
    kid: Option<String>,
}

impl JoseSigners {
    fn signers(&self) -> Signers<'_> {
        Signers { keys: &self.key, alg: self.alg.as_deref(), profiles: &self.profile, key_ids: &self.key_id }
    }
}

#[derive(Args)]
pub(super) struct JwsSignArgs {
    #[command(flatten)]
    who: JoseSigners,
    /// More protected header members, as a JSON object (e.g. '{"typ":"JOSE"}').
    #[arg(long, value_name = "JSON")]
    header: Option<String>,
    /// compact (one signer), flattened (one signer) or general (any number).
    #[arg(long, default_value = "compact", value_name = "compact|flattened|general")]
    serialization: String,
    /// Leave the payload out of the JWS (the verifier gives it with --detached FILE).
    #[arg(long)]
    detached: bool,
    /// --b64=false: an unencoded payload (RFC 7797), with crit ["b64"]. A detached ES/RS/PS
    /// payload of any size is then hashed as it is read.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    b64: bool,
    /// Write the JWS here (default: stdout; - is stdout too).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The payload file, or - for standard input.
    file: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// The keys a JWS or JWT is checked with.
#[derive(Args)]
pub(super) struct JoseKeyOptions {
    /// Trust this public key (repeatable): SPKI PEM or DER, a JWK, or a JWK Set; [ALG:]PATH
    /// binds an algorithm (an RSA key without one verifies RS256 ... PS512).
    #[arg(long = "pub", value_name = "[ALG:]PATH")]
    public: Vec<String>,
    /// Trust the signature keys of this JWK Set (RFC 7517), by kid.
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Trust the anchors of an installed bundle directory. Without --pub, --jwks and
    /// --anchors: the config's anchors (through a server: the server's).
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// Only anchors with this purpose.
    #[arg(long)]
    purpose: Option<String>,
}

impl JoseKeyOptions {
    fn args(&self) -> JoseKeyArgs<'_> {
        JoseKeyArgs {
            public: &self.public,
            jwks: self.jwks.as_deref(),
            anchors: self.anchors.as_deref(),
            purpose: self.purpose.as_deref(),
        }
    }
}

#[derive(Args)]
pub(super) struct JwsVerifyArgs {
    /// The JWS file (compact, or JSON), or - for standard input.
    jws: PathBuf,
    #[command(flatten)]
    keys: JoseKeyOptions,
    /// The payload of a detached JWS (streamed through the hash for ES/RS/PS).
    #[arg(long, value_name = "FILE")]
    detached: Option<PathBuf>,
    /// Distinct trusted keys (by SPKI fingerprint) that must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// The anchors' time (RFC 3339), default now.
    #[arg(long)]
    at: Option<String>,
    /// Write exactly the verified payload bytes here (only when valid).
    #[arg(long)]
    payload_out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct JwtVerifyArgs {
    /// The JWT file, or - for standard input.
    jwt: PathBuf,
    #[command(flatten)]
    keys: JoseKeyOptions,
    /// The issuer iss must equal (required unless --any-issuer).
    #[arg(long)]
    iss: Option<String>,
    /// Waive the issuer check (RFC 8725 section 3.8 asks for it: say so explicitly).
    #[arg(long)]
    any_issuer: bool,
    /// An audience aud must hold (required unless --any-audience).
    #[arg(long)]
    aud: Option<String>,
    /// Waive the audience check.
    #[arg(long)]
    any_audience: bool,
    /// With several audiences, azp must equal this (default --aud).
    #[arg(long)]
    azp: Option<String>,
    #[arg(long)]
    sub: Option<String>,
    /// The header typ required (e.g. JWT, at+jwt), case-insensitive, application/ optional.
    #[arg(long)]
    typ: Option<String>,
    #[arg(long)]
    nonce: Option<String>,
    /// Seconds of clock skew allowed for exp, nbf and iat.
    #[arg(long, default_value_t = 60)]
    leeway: u64,
    /// Check at this time (RFC 3339) instead of now; also the anchors' time.
    #[arg(long)]
    at: Option<String>,
    /// A claim that must be present (repeatable), e.g. --require exp.
    #[arg(long, value_name = "CLAIM")]
    require: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct JwtSignArgs {
    /// The claims, a JSON object (or - for standard input).
    #[arg(long, value_name = "FILE")]
    claims: PathBuf,
    #[command(flatten)]
    who: JoseSigners,
    /// Add exp this many seconds from now (and iat, when the claims have none).
    #[arg(long, value_name = "SECONDS")]
    expires_in: Option<u64>,
    /// Write the JWT here (default: stdout; - is stdout too).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(super) fn jws(b: &Backend, c: &JwsCommand) -> Outcome {
    match c {
        JwsCommand::Sign(a) => {
            stdio::one_stdout_writer(a.out.as_deref(), a.json)?;
            let opts = super::backend::JwsSignOptions {
                kid: a.who.kid.as_deref(),
                header: a.header.as_deref(),
                serialization: &a.serialization,
                detached: a.detached,
                b64: a.b64,
            };
            let signed = b.jws_sign(&a.who.signers(), &opts, &a.file)?;
            signed_out(&signed, a.out.as_deref(), a.json, "jws sign", b.via())
        }
        JwsCommand::Verify(a) => {
            if a.detached.is_some() && a.payload_out.is_some() {
                return Err(anyhow::anyhow!(
                    "--payload-out writes a payload the JWS carries; a detached payload is the file given with \
                     --detached"
                )
                .into());
            }
            let v = b.jws_verify(&a.jws, &a.keys.args(), a.threshold, a.detached.as_deref(), a.at.as_deref())?;
            jws_verified(&v, a.json, a.payload_out.as_deref())
        }
    }
}

pub(super) fn jwt(b: &Backend, c: &JwtCommand) -> Outcome {
    match c {
        JwtCommand::Sign(a) => {
            stdio::one_stdout_writer(a.out.as_deref(), a.json)?;
            if a.who.key.len() + a.who.profile.len() + a.who.key_id.len() != 1 {
                return Err(anyhow::anyhow!("give exactly one of --key (with --alg), --profile or --key-id").into());
            }
            let signed = b.jwt_sign(&a.who.signers(), a.who.kid.as_deref(), &a.claims, a.expires_in)?;
            signed_out(&signed, a.out.as_deref(), a.json, "jwt sign", b.via())
        }
        JwtCommand::Verify(a) => {
            let req = cryptohost_client::api::JwtVerifyRequest {
                iss: a.iss.clone(),
                any_issuer: a.any_issuer,
                aud: a.aud.clone(),
                any_audience: a.any_audience,
                azp: a.azp.clone(),
                sub: a.sub.clone(),
                typ: a.typ.clone(),
                nonce: a.nonce.clone(),
                leeway: Some(a.leeway),
                at: a.at.clone(),
                require: a.require.clone(),
                ..Default::default()
            };
            let v = b.jwt_verify(&a.jwt, &a.keys.args(), req)?;
            jwt_verified(&v, a.json)
        }
    }
}

fn signed_out(s: &JwsSignResponse, out: Option<&Path>, json: bool, what: &str, via: &str) -> Outcome {
    let text = s.jws.clone() + "\n";
    if let Some(out) = out {
        // A fresh file renamed into place: never written through a symlink at --out.
        stdio::write(out, text.as_bytes(), |p, b| fsio::replace_atomic(p, b, 0o644))?;
    }
    if json {
        json_line(s)?;
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_none() {
        outln!("{}", s.jws);
    }
    for sig in &s.signatures {
        eprintln!(
            "cryptohost: {what}: {} signed ({}, kid {:?}) by {} ({}){via}",
            sig.signer, sig.alg, sig.kid, sig.provider, sig.origin
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn jws_verified(v: &JwsVerifyResponse, json: bool, payload_out: Option<&Path>) -> Outcome {
    if let (Some(out), Some(payload)) = (payload_out, v.payload.as_ref().filter(|_| v.valid)) {
        // A fresh file renamed into place: never written through a symlink.
        fsio::replace_atomic(out, payload, 0o644)?;
    }
    if json {
        // The answer without the payload (which --payload-out writes, exactly).
        json_line(&JwsVerifyResponse { payload: None, ..v.clone() })?;
        return Ok(verdict(v.valid));
    }
    for r in v.refused_anchors.iter().chain(&v.notes) {
        eprintln!("cryptohost: jws verify: {r}");
    }
    if v.valid {
        eprintln!("cryptohost: jws verify: verified by {}", v.verified_by.join(", "));
    }
    outln!("{}", if v.valid { "valid" } else { "invalid" });
    Ok(verdict(v.valid))
}

fn jwt_verified(v: &JwtVerifyResponse, json: bool) -> Outcome {
    if json {
        json_line(v)?;
        return Ok(verdict(v.valid));
    }
    for r in v.refused_anchors.iter().chain(&v.notes) {
        eprintln!("cryptohost: jwt verify: {r}");
    }
    match (&v.claims, v.valid) {
        (Some(claims), true) => {
            eprintln!("cryptohost: jwt verify: valid, verified by {}", v.verified_by.join(", "));
            outln!("{}", serde_json::to_string_pretty(claims)?);
        }
        _ => outln!("invalid"),
    }
    Ok(verdict(v.valid))
}
