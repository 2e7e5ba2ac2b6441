//! EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over the signature hash.
//!
//! Public data only, variable time.
//!
//! `EM = maskedDB || H || 0xbc`, with `DB = PS (zeros) || 0x01 || salt` masked by
//! `MGF1(H, len(DB))`, and `H = Hash(0x00 × 8 || mHash || salt)`. The top `8·emLen - emBits`
//! bits of EM must be zero.

use super::HashAlg;

/// XORs `MGF1(seed)` into `out`: the concatenation of `Hash(seed || counter)` for a 32-bit
/// big-endian counter 0, 1, 2, …, truncated to `out.len()`.
fn mgf1_xor(hash: HashAlg, seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(hash.output_len()).enumerate() {
        let c = (counter as u32).to_be_bytes();
        let block = hash.hash(&[seed, &c]);
        for (o, m) in chunk.iter_mut().zip(block.iter()) {
            *o ^= m;
        }
    }
}

/// Checks an encoded message `em` of `ceil(em_bits / 8)` bytes against `m_hash`.
pub(super) fn emsa_pss_verify(em: &[u8], em_bits: usize, hash: HashAlg, m_hash: &[u8], salt_len: usize) -> bool {
    let h_len = hash.output_len();
    let em_len = em.len();
    if m_hash.len() != h_len || em_len != em_bits.div_ceil(8) {
        return false;
    }
    if em_len < h_len + salt_len + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let h = &rest[..h_len];
    // The leftmost 8·emLen - emBits bits of maskedDB must be zero.
    let unused_bits = 8 * em_len - em_bits;
    let top_mask = (0xffu16 << (8 - unused_bits)) as u8;
    if masked_db[0] & top_mask != 0 {
        return false;
    }
    let mut db = masked_db.to_vec();
    mgf1_xor(hash, h, &mut db);
    db[0] &= !top_mask;
    let ps_len = em_len - h_len - salt_len - 2;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[db_len - salt_len..];
    hash.hash(&[&[0u8; 8], m_hash, salt]) == h
}
