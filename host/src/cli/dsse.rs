//! `dsse sign`, `dsse verify`, `trust fingerprint`: envelopes and the keys they are checked by.

use std::path::Path;
use std::process::ExitCode;

use cryptohost::config::payload_limit;
use cryptohost::keyfile;

use super::backend::{Backend, DsseTrust, Signers};
use super::{Cli, DsseSignArgs, DsseVerifyArgs, Outcome, open_registry, render};

pub(super) fn sign(b: &Backend, a: &DsseSignArgs) -> Outcome {
    let who = Signers { keys: &a.key, alg: a.alg.as_deref(), profiles: &a.profile, key_ids: &a.key_id };
    let signed = b.dsse_sign(&who, &a.payload_type, &a.file, a.sig_format, a.allow_partial)?;
    render::dsse_sign(&signed, a.out.as_deref(), a.json, b.via())
}

pub(super) fn verify(b: &Backend, a: &DsseVerifyArgs) -> Outcome {
    let max_payload = match a.max_payload_mib {
        Some(m) => Some(payload_limit(m).map_err(|e| anyhow::anyhow!("--max-payload-mib {e}"))?),
        None => None,
    };
    let trust = DsseTrust {
        public: &a.public,
        alg: a.alg.as_deref(),
        anchors: a.anchors.as_deref(),
        at: a.at.as_deref(),
        purpose: a.purpose.as_deref(),
    };
    let verified =
        b.dsse_verify(&a.envelope, &trust, a.threshold, a.sig_format, max_payload, a.payload_out.as_deref())?;
    render::dsse_verify(&verified, a.json, a.payload_out.as_deref())
}

pub(super) fn fingerprint(cli: &Cli, public: &Path, json: bool) -> Outcome {
    let spki = keyfile::read_public_key(public)?;
    let registry = open_registry(cli)?;
    let fingerprint = cryptohost::trust::fingerprint(&registry, &spki)?;
    if json {
        let report = super::reports::Fingerprint {
            public_key: public.to_path_buf(),
            fingerprint,
            key_type: cryptohost::request::key_type(&spki),
            jwk_thumbprint: cryptohost::jose::jwk::thumbprint(&spki).ok(),
        };
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        // stdout stays the fingerprint alone (scripts read it); the thumbprint is information.
        outln!("{fingerprint}");
        if let Ok(t) = cryptohost::jose::jwk::thumbprint(&spki) {
            served!("cryptohost: trust fingerprint: RFC 7638 JWK thumbprint {t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
