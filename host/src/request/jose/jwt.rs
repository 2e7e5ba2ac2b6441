//! JWT: verified as a compact JWS under the request's keys, then its claims as RFC 8725 asks;
//! issued as a compact JWS with `typ: JWT`.

use cryptohost_client::api::{self, JwsSignResponse, JwtVerifyResponse};
use serde_json::Value;
use time::OffsetDateTime;

use super::super::input::Input;
use super::keys::jose_trust;
use super::{Context, JoseTrust, JwsSign, KeySpec, RequestError, check_signatures, jws_sign};
use crate::jose::jws::{self, Limits, Serialization};
use crate::jose::jwt;

/// A JWT and what a relying party expects of it.
#[derive(Debug)]
pub struct JwtVerify {
    pub jwt: Vec<u8>,
    pub trust: JoseTrust,
    pub expect: jwt::Expect,
    /// The time to check at (RFC 3339), default now; also the anchors' time.
    pub at: Option<String>,
}

impl JwtVerify {
    /// The request of `POST /v1/jwt/verify`.
    ///
    /// # Errors
    /// As [`JoseTrust::from_wire`].
    pub fn from_wire(req: &api::JwtVerifyRequest) -> Result<JwtVerify, RequestError> {
        Ok(JwtVerify {
            jwt: req.jwt.as_bytes().to_vec(),
            trust: JoseTrust::from_wire(&req.keys)?,
            expect: jwt::Expect {
                iss: req.iss.clone(),
                any_issuer: req.any_issuer,
                aud: req.aud.clone(),
                any_audience: req.any_audience,
                azp: req.azp.clone(),
                sub: req.sub.clone(),
                typ: req.typ.clone(),
                nonce: req.nonce.clone(),
                leeway: req.leeway.unwrap_or(60),
                require: req.require.clone(),
            },
            at: req.at.clone(),
        })
    }
}

/// Verifies a JWT: a compact JWS under the keys (one signature), then its claims.
///
/// # Errors
/// Expectations not stated (no issuer or audience and no waiver), a JSON serialization, a
/// nested or encrypted JWT, a rule or limit broken, unusable keys; a JWT that does not verify or
/// whose claims fail is `valid: false`, each reason in `notes`.
pub fn jwt_verify(ctx: &Context<'_>, req: JwtVerify) -> Result<JwtVerifyResponse, RequestError> {
    let expect = req.expect.checked().map_err(RequestError::Invalid)?;
    let at = match &req.at {
        Some(t) => crate::trust::parse_time(t).map_err(|e| RequestError::Invalid(format!("at: {e}")))?,
        None => OffsetDateTime::now_utc(),
    };
    if req.jwt.trim_ascii_start().first() == Some(&b'{') {
        return Err(RequestError::Invalid("a JWT is a compact JWS (RFC 7519 section 7.2), not JSON".into()));
    }
    let limits = Limits { max_payload: jwt::MAX_CLAIMS, max_signatures: 1 };
    let jws = jws::parse(&req.jwt, &limits, false)?;
    let header = &jws.signatures[0].header;
    jwt::check_header(header).map_err(RequestError::Invalid)?;
    let mut notes = Vec::new();
    let (keys, refused_anchors) = jose_trust(ctx, req.trust, req.at.as_deref(), &mut notes)?;
    let checked = check_signatures(ctx, &jws, &keys, None, &mut notes)?;
    let mut valid = !checked.counted.is_empty();
    let mut claims = None;
    if valid && let Some(bytes) = jws.payload.bytes()? {
        match jwt::claims(&bytes) {
            Ok(c) => {
                let fails = jwt::check(&c, header, &expect, at);
                valid = fails.is_empty();
                notes.extend(fails);
                claims = valid.then_some(Value::Object(c));
            }
            Err(e) => {
                valid = false;
                notes.push(e);
            }
        }
    }
    Ok(JwtVerifyResponse {
        valid,
        claims,
        header: Value::Object(header.protected.clone()),
        verified_by: checked.counted.iter().map(|(n, _)| n.clone()).collect(),
        verified_fingerprints: checked.counted.into_iter().map(|(_, f)| f).collect(),
        notes,
        refused_anchors,
    })
}

/// A JWT to issue.
#[derive(Debug)]
pub struct JwtSign {
    pub key: KeySpec,
    pub algorithm: Option<String>,
    pub kid: Option<String>,
    /// The claims, as JSON text.
    pub claims: Vec<u8>,
    /// Seconds from now for `exp`.
    pub expires_in: Option<u64>,
}

impl JwtSign {
    /// The request of `POST /v1/jwt/sign`.
    ///
    /// # Errors
    /// Not exactly one key, profile or key id.
    pub fn from_wire(req: &api::JwtSignRequest) -> Result<JwtSign, RequestError> {
        Ok(JwtSign {
            key: KeySpec::one_of(req.key.as_deref(), req.profile.as_deref(), req.key_id.as_deref())?,
            algorithm: req.algorithm.clone(),
            kid: req.kid.clone(),
            claims: req.claims.as_bytes().to_vec(),
            expires_in: req.expires_in,
        })
    }
}

/// Issues a JWT: the claims (strictly read, `iat`/`exp` added for `expires_in`) signed as a
/// compact JWS with `typ: JWT`.
///
/// # Errors
/// Claims that are not a JSON object (or give `exp` beside `expires_in`), or as [`jws_sign`].
pub fn jwt_sign(ctx: &Context<'_>, req: JwtSign) -> Result<JwsSignResponse, RequestError> {
    let mut claims = jwt::claims(&req.claims).map_err(RequestError::Invalid)?;
    if let Some(secs) = req.expires_in {
        if claims.contains_key("exp") {
            return Err(RequestError::Invalid("the claims already have exp; leave out --expires-in".into()));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let secs = i64::try_from(secs).map_err(|_| RequestError::Invalid("expires_in is too large".into()))?;
        claims.entry("iat").or_insert(Value::from(now));
        claims.insert("exp".into(), Value::from(now.saturating_add(secs)));
    }
    let payload = serde_json::to_vec(&claims).map_err(|e| RequestError::Invalid(e.to_string()))?;
    jws_sign(
        ctx,
        JwsSign {
            signers: vec![(req.key, req.algorithm)],
            kid: req.kid,
            header: Some(br#"{"typ":"JWT"}"#.to_vec()),
            serialization: Serialization::Compact,
            detached: false,
            b64: true,
            payload: Input::Bytes(&payload),
        },
    )
}
