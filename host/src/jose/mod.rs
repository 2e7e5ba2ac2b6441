//! JOSE (RFC 7515 JWS, RFC 7517 JWK, RFC 7519 JWT) around the same registry and providers as
//! everything else: JOSE is encoding, header rules and key formats; the signature bytes come
//! from the pinned components and the HSM. This first part: JWKs and their thumbprints, and
//! the strict JSON reader JOSE needs.

pub mod json;
pub mod jwk;
