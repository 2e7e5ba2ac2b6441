//! EMSA-PKCS1-v1_5 (RFC 8017 §9.2) checked by re-encoding (public data only, variable time).
//!
//! `EM = 0x00 || 0x01 || PS || 0x00 || DigestInfo(hash, H)` with `PS` all `0xff` and at least 8
//! bytes long. Rather than parsing the recovered block (the source of many historical
//! forgeries), the expected block is built from the digest and compared as a whole.
//!
//! Policy: only the canonical DigestInfo (with the explicit `NULL` parameter) is accepted.
//! Encodings that omit the `NULL` (Wycheproof marks these "acceptable") are rejected.

use super::HashAlg;

/// True iff `em` (the k-byte output of the public operation) is exactly the encoding of
/// `digest` under `hash`.
pub(super) fn encoding_matches(em: &[u8], hash: HashAlg, digest: &[u8]) -> bool {
    let prefix = hash.digest_info_prefix();
    if digest.len() != hash.output_len() {
        return false;
    }
    let t_len = prefix.len() + digest.len();
    // emLen >= tLen + 11 guarantees at least 8 bytes of 0xff padding.
    let Some(ps_len) = em.len().checked_sub(t_len + 3) else {
        return false;
    };
    if ps_len < 8 {
        return false;
    }
    let (head, rest) = em.split_at(2);
    let (ps, rest) = rest.split_at(ps_len);
    let (sep, t) = rest.split_at(1);
    let (t_prefix, t_digest) = t.split_at(prefix.len());
    head == [0x00, 0x01] && ps.iter().all(|&b| b == 0xff) && sep == [0x00] && t_prefix == prefix && t_digest == digest
}
