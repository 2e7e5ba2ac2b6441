//! JOSE (RFC 7515 JWS, RFC 7517 JWK, RFC 7519 JWT) around the same registry and providers as
//! everything else: JOSE is encoding, header rules and key formats; the signature bytes come
//! from the pinned components and the HSM. Here: JWKs and their thumbprints, JWS in its three
//! serializations with unencoded payloads, JWT claims, and the strict JSON reader JOSE needs.

pub mod json;
pub mod jwk;
pub mod jws;
pub mod jwt;
