//! ECDSA P-256 (secp256r1) signature verification, written for speed on public data.
//!
//! **Variable time, verification only.** Nothing in this module is constant time: branches and
//! memory accesses depend on the public key, the digest and the signature. That is safe for
//! verification, where all of these are public, and unsafe for anything involving a private
//! key. There is deliberately no signing code here.
//!
//! Layout: [`field`] (GF(p), Montgomery), [`scalar`] (mod n, only what verify needs),
//! [`point`] (Jacobian group law, a = -3, incomplete formulas with explicit special cases),
//! [`mul`] (interleaved wNAF `u1·G + u2·Q`), [`ecdsa`] (keys and the verification equation),
//! [`der`] (strict DER and P1363 signature parsing).

pub mod der;
pub mod ecdsa;
pub mod field;
pub mod mul;
pub mod point;
pub mod scalar;
