//! The JOSE operations, here or through a server: as the rest of `Backend`, the only place the
//! two ways differ. Key files are read here (bounded) and sent as text; a server never opens a
//! client's path, so `--anchors DIR` is local only.

use std::path::Path;

use anyhow::{Context as _, Result};
use cryptohost::fsio;
use cryptohost::jose::jws::{Limits, Serialization};
use cryptohost::jose::{jwk, jwt};
use cryptohost::request::{self, GivenJoseKey, Input, JoseTrust, JwsSign, JwsVerify, JwtSign, JwtVerify};
use cryptohost_client::api::{self, JwsSignResponse, JwsVerifyResponse, JwtVerifyRequest, JwtVerifyResponse};

use super::{Backend, MAX_WHOLE, Signers, split_alg, stdio};

/// How a JWS is written, as the command line says.
pub(in crate::cli) struct JwsSignOptions<'a> {
    pub kid: Option<&'a str>,
    pub header: Option<&'a str>,
    pub serialization: &'a str,
    pub detached: bool,
    pub b64: bool,
}

/// The keys a JWS or JWT is checked with, as the command line names them.
pub(in crate::cli) struct JoseKeyArgs<'a> {
    /// `[ALG:]PATH` each: PEM, DER, a JWK or a JWK Set.
    pub public: &'a [String],
    pub jwks: Option<&'a Path>,
    pub anchors: Option<&'a Path>,
    pub purpose: Option<&'a str>,
}

impl JoseKeyArgs<'_> {
    /// The `--pub` files and the `--jwks` file, read within the JWK Set bound.
    fn read(&self) -> Result<(Vec<GivenJoseKey>, Option<GivenJoseKey>)> {
        let limit = jwk::MAX_JWKS_BYTES as u64;
        let mut public = Vec::new();
        for g in self.public {
            let (alg, path) = split_alg(g);
            let bytes = fsio::read_bounded(Path::new(path), limit, "public key")?;
            public.push(GivenJoseKey { name: path.to_string(), bytes, algorithm: alg.map(str::to_string) });
        }
        let jwks = match self.jwks {
            Some(path) => Some(GivenJoseKey {
                name: path.display().to_string(),
                bytes: fsio::read_bounded(path, limit, "JWK Set")?,
                algorithm: None,
            }),
            None => None,
        };
        if (!public.is_empty() || jwks.is_some()) && self.anchors.is_some() {
            anyhow::bail!("give either keys (--pub, --jwks) or --anchors DIR, not both");
        }
        Ok((public, jwks))
    }

    fn trust(&self) -> Result<JoseTrust> {
        let (mut given, jwks) = self.read()?;
        given.extend(jwks);
        Ok(if given.is_empty() {
            JoseTrust::Anchors { dir: self.anchors.map(Path::to_path_buf), purpose: self.purpose.map(str::to_string) }
        } else {
            JoseTrust::Keys(given)
        })
    }

    /// The server's form: each key as text (PEM or JWK as they are; DER as base64).
    fn wire(&self) -> Result<api::JoseKeys> {
        if self.anchors.is_some() {
            anyhow::bail!(
                "--anchors names a directory, and a server never opens a client's paths: through a server, leave out \
                 --pub, --jwks and --anchors to use the server's own anchors, or give keys"
            );
        }
        let text = |bytes: Vec<u8>| match String::from_utf8(bytes) {
            Ok(t) if t.trim_start().starts_with('{') || t.trim_start().starts_with("-----BEGIN") => t,
            Ok(t) => api::b64::encode(t.as_bytes()),
            Err(e) => api::b64::encode(e.as_bytes()),
        };
        let (public, jwks) = self.read()?;
        Ok(api::JoseKeys {
            public_keys: public
                .into_iter()
                .map(|g| api::DssePublicKey { public_key: text(g.bytes), algorithm: g.algorithm, name: Some(g.name) })
                .collect(),
            jwks: jwks.map(|g| text(g.bytes)),
            purpose: self.purpose.map(str::to_string),
        })
    }
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{what} is not UTF-8 text"))
}

impl Backend {
    fn jose_limits(&self) -> Limits {
        match self {
            Backend::Local(l) => Limits { max_payload: l.config.max_payload, max_signatures: l.config.max_signatures },
            Backend::Remote(_) => Limits { max_payload: MAX_WHOLE as usize, max_signatures: 64 },
        }
    }

    /// One or several signers sign FILE as a JWS (a detached payload is streamed locally; a
    /// server is sent the payload whole, within its payload limit).
    pub fn jws_sign(&self, who: &Signers<'_>, o: &JwsSignOptions<'_>, file: &Path) -> Result<JwsSignResponse> {
        if !who.keys.is_empty() && who.alg.is_none() {
            anyhow::bail!("--key needs --alg (profiles carry their own)");
        }
        match self {
            Backend::Local(l) => {
                let signers = who.specs()?;
                let serialization = Serialization::parse(o.serialization).map_err(anyhow::Error::msg)?;
                Ok(stdio::with_input(file, |payload| {
                    request::jws_sign(
                        &l.ctx(),
                        JwsSign {
                            signers,
                            kid: o.kid.map(str::to_string),
                            header: o.header.map(|h| h.as_bytes().to_vec()),
                            serialization,
                            detached: o.detached,
                            b64: o.b64,
                            payload,
                        },
                    )
                })?)
            }
            Backend::Remote(c) => {
                let req = api::JwsSignRequest {
                    payload: stdio::read_whole(file, MAX_WHOLE, "JWS payload")?,
                    keys: who.wire_keys()?,
                    profiles: who.profiles.to_vec(),
                    key_ids: who.key_ids.to_vec(),
                    serialization: Some(o.serialization.to_string()),
                    detached: o.detached,
                    b64: Some(o.b64),
                    kid: o.kid.map(str::to_string),
                    header: o.header.map(str::to_string),
                };
                Ok(c.jws_sign(&req)?)
            }
        }
    }

    pub fn jws_verify(
        &self,
        jws: &Path,
        keys: &JoseKeyArgs<'_>,
        threshold: usize,
        detached: Option<&Path>,
        at: Option<&str>,
    ) -> Result<JwsVerifyResponse> {
        let token = stdio::read_whole(jws, self.jose_limits().max_token() as u64, "JWS")?;
        match self {
            Backend::Local(l) => {
                let trust = keys.trust()?;
                let verify = |detached: Option<Input<'_>>| {
                    let req = JwsVerify { jws: token.into(), trust, threshold, detached, at: at.map(str::to_string) };
                    request::jws_verify(&l.ctx(), req)
                };
                let answer = match detached {
                    Some(file) => stdio::with_input(file, |input| verify(Some(input))),
                    None => verify(None),
                };
                Ok(answer.with_context(|| jws.display().to_string())?)
            }
            Backend::Remote(c) => {
                let detached_payload = match detached {
                    Some(file) => Some(stdio::read_whole(file, MAX_WHOLE, "detached payload")?),
                    None => None,
                };
                let req = api::JwsVerifyRequest {
                    jws: utf8(token, "the JWS")?,
                    keys: keys.wire()?,
                    threshold: Some(threshold),
                    detached_payload,
                    at: at.map(str::to_string),
                };
                Ok(c.jws_verify(&req)?)
            }
        }
    }

    /// Issues a JWT from a claims file, with one key, profile or key id.
    pub fn jwt_sign(
        &self,
        who: &Signers<'_>,
        kid: Option<&str>,
        claims: &Path,
        expires_in: Option<u64>,
    ) -> Result<JwsSignResponse> {
        let claims = stdio::read_whole(claims, jwt::MAX_CLAIMS as u64, "JWT claims")?;
        match self {
            Backend::Local(l) => {
                let (key, algorithm) = who.specs()?.pop().context("no signer")?;
                let req = JwtSign { key, algorithm, kid: kid.map(str::to_string), claims, expires_in };
                Ok(request::jwt_sign(&l.ctx(), req)?)
            }
            Backend::Remote(c) => {
                let key = who.wire_keys()?.pop();
                let req = api::JwtSignRequest {
                    claims: utf8(claims, "the claims")?,
                    algorithm: key.as_ref().map(|k| k.algorithm.clone()),
                    key: key.map(|k| k.key),
                    profile: who.profiles.first().cloned(),
                    key_id: who.key_ids.first().cloned(),
                    kid: kid.map(str::to_string),
                    expires_in,
                };
                Ok(c.jwt_sign(&req)?)
            }
        }
    }

    /// The published JWK Set.
    pub fn jwks(&self) -> Result<api::Jwks> {
        match self {
            Backend::Local(l) => Ok(request::jwks(&l.ctx())?),
            Backend::Remote(c) => Ok(c.jwks()?),
        }
    }

    /// Verifies a JWT (its expectations in `req`, whose token and keys are filled in here).
    pub fn jwt_verify(
        &self,
        file: &Path,
        keys: &JoseKeyArgs<'_>,
        mut req: JwtVerifyRequest,
    ) -> Result<JwtVerifyResponse> {
        let limit = jwt::MAX_CLAIMS as u64 / 3 * 4 + (64 << 10);
        req.jwt = utf8(stdio::read_whole(file, limit, "JWT")?, "the JWT")?;
        match self {
            Backend::Local(l) => {
                let verify = JwtVerify { trust: keys.trust()?, ..JwtVerify::from_wire(&req)? };
                Ok(request::jwt_verify(&l.ctx(), verify).with_context(|| file.display().to_string())?)
            }
            Backend::Remote(c) => {
                req.keys = keys.wire()?;
                Ok(c.jwt_verify(&req)?)
            }
        }
    }
}
