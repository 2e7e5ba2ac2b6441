//! `keys csr`: a PKCS#10 certificate request for a held key (an HSM key included), so that the
//! site's CA can certify it. The request is built by `crate::csr` and signed by the key through
//! the key service (a signature like any other: gated as `sign`, audited with the SHA-256 of the
//! CertificationRequestInfo and the digest signed).

use cryptohost_client::api::KeyCsrResponse;

use super::sign::permitted_reference;
use super::{Context, RequestError};
use crate::audit::AuditInput;
use crate::config::Operation;
use crate::csr::{CsrRequest, San, build_csr};
use crate::keyref::KeyRef;
use crate::lifecycle::Use;
use crate::provider::{SigFormat, SignInput};

/// A certificate request signed by `key` with `algorithm`.
///
/// # Errors
/// Denied, a bad subject or SAN, an algorithm that does not fit the key, or the key refuses.
pub fn key_csr(
    ctx: &Context<'_>,
    key: &KeyRef,
    algorithm: &str,
    subject: &str,
    sans: &[String],
) -> Result<KeyCsrResponse, RequestError> {
    permitted_reference(ctx, key, &[Operation::Sign], "csr")?;
    if !key.is_held() && !ctx.gate.local_files() {
        return Err(RequestError::Invalid("a certificate request is made for a key the server holds".into()));
    }
    let alg = super::signature_alg(algorithm)?;
    let sans = sans
        .iter()
        .map(|s| San::parse(super::bounded("san", s)?).map_err(|e| RequestError::Invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let service = ctx.keys()?;
    // One version for the public key and the signature, even if a promotion happens between.
    let key = if key.is_held() { service.version_of(key, Use::Make)?.shown } else { key.clone() };
    service.check_sign(&key, alg.name)?;
    let (spki, _) = service.public_key(&key, alg.name, 0)?;
    let mut provider = String::new();
    // The signer's own error keeps its class (denied, refused by policy, provider failure).
    let mut failure = None;
    let request = CsrRequest { subject: super::bounded("subject", subject)?, sans: &sans };
    let built = build_csr(&request, &spki, alg.name, |info: &[u8]| {
        let signed = (|| -> Result<_, RequestError> {
            let registry = &ctx.host.registry;
            let whole = AuditInput::whole(&registry.digest("SHA-256", info)?.value);
            Ok(match alg.hash {
                Some(h) => {
                    let digest = registry.digest(h, info)?.value;
                    let audit = whole.with_digest(h, &digest);
                    service.sign(&key, alg.name, SignInput::Digest(&digest), &audit, SigFormat::Der)?
                }
                None => service.sign(&key, alg.name, SignInput::Message(info), &whole, SigFormat::Der)?,
            })
        })();
        match signed {
            Ok(s) => {
                provider = s.provider;
                Ok(s.signature)
            }
            Err(e) => {
                let message = e.to_string();
                failure = Some(e);
                Err(message)
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let der = built.map_err(|e| RequestError::Invalid(e.to_string()))?;
    Ok(KeyCsrResponse {
        csr: crate::csr::to_pem(&der).map_err(|e| RequestError::Invalid(e.to_string()))?,
        key: key.to_string(),
        algorithm: alg.name.to_string(),
        spki_sha256: crate::lifecycle::fingerprint(&spki),
        provider,
    })
}
