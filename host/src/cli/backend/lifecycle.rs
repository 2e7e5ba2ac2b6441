//! Key versions and the lifecycle steps, here or through a server.

use anyhow::Result;
use cryptohost::request;
use cryptohost_client::api::{self, KeyVersions};

use super::{Backend, reference};

/// A lifecycle step on one version.
#[derive(Clone, Copy)]
pub(in crate::cli) enum VersionStep {
    Promote { force: bool },
    Retire,
    Destroy { confirm: bool },
}

impl Backend {
    pub fn key_csr(&self, key: &str, alg: &str, subject: &str, sans: &[String]) -> Result<api::KeyCsrResponse> {
        match self {
            Backend::Local(l) => Ok(request::key_csr(&l.ctx(), &reference(key, false)?, alg, subject, sans)?),
            Backend::Remote(c) => {
                reference(key, true)?;
                let req = api::KeyCsrRequest {
                    key: key.into(),
                    algorithm: alg.into(),
                    subject: subject.into(),
                    sans: sans.to_vec(),
                };
                Ok(c.key_csr(&req)?)
            }
        }
    }

    pub fn key_versions(&self, key: &str) -> Result<KeyVersions> {
        match self {
            Backend::Local(l) => Ok(request::key_versions(&l.ctx(), &reference(key, false)?)?),
            Backend::Remote(c) => {
                reference(key, true)?;
                Ok(c.key_versions(&api::KeyVersionsRequest { key: key.into() })?)
            }
        }
    }

    pub fn key_rotate(&self, key: &str, alg: Option<&str>, rsa_bits: u32) -> Result<KeyVersions> {
        match self {
            Backend::Local(l) => Ok(request::key_rotate(&l.ctx(), &reference(key, false)?, alg, rsa_bits)?),
            Backend::Remote(c) => {
                reference(key, true)?;
                let req =
                    api::KeyRotateRequest { key: key.into(), algorithm: alg.map(Into::into), rsa_bits: Some(rsa_bits) };
                Ok(c.key_rotate(&req)?)
            }
        }
    }

    pub(in crate::cli) fn key_step(&self, key: &str, version: u32, step: VersionStep) -> Result<KeyVersions> {
        match self {
            Backend::Local(l) => {
                let (ctx, key) = (l.ctx(), reference(key, false)?);
                Ok(match step {
                    VersionStep::Promote { force } => request::key_promote(&ctx, &key, version, force)?,
                    VersionStep::Retire => request::key_retire(&ctx, &key, version)?,
                    VersionStep::Destroy { confirm } => request::key_destroy(&ctx, &key, version, confirm)?,
                })
            }
            Backend::Remote(c) => {
                reference(key, true)?;
                let mut req = api::KeyVersionRequest { key: key.into(), version, ..Default::default() };
                Ok(match step {
                    VersionStep::Promote { force } => {
                        req.force = force;
                        c.key_promote(&req)?
                    }
                    VersionStep::Retire => c.key_retire(&req)?,
                    VersionStep::Destroy { confirm } => {
                        req.confirm = confirm;
                        c.key_destroy(&req)?
                    }
                })
            }
        }
    }
}
