//! The Merkle hash tree of RFC 6962 §2.1 / RFC 9162 §2.1, over SHA-256.
//!
//! * A leaf's hash is `SHA-256(0x00 || data)` ([`leaf_hash`]), an interior node's hash is
//!   `SHA-256(0x01 || left || right)` ([`node_hash`]), and the empty tree's root is `SHA-256("")`
//!   ([`EMPTY_ROOT`]).
//! * [`Tree`] is the incremental state of an append-only log: the size and the hashes of the
//!   maximal full subtrees on the tree's right edge (O(log n) memory). It gives the root after
//!   every append without keeping the leaves.
//! * [`root_of`], [`inclusion_proof`] and [`consistency_proof`] work over the whole slice of
//!   leaf hashes (for tests, for a verifier that has read a whole log file, and for serving
//!   proofs); [`verify_inclusion`] and [`verify_consistency`] follow RFC 9162 §2.1.3.2 and
//!   §2.1.4.2 and need only the proof.
//!
//! Nothing here panics on any input: sizes and indices are `u64`, proofs are bounded to
//! [`MAX_INCLUSION_PROOF_LEN`] / [`MAX_CONSISTENCY_PROOF_LEN`] hashes before any work is done, and
//! every mismatch is a [`MerkleError`].

use sha2::{Digest, Sha256};

/// A SHA-256 hash: of a leaf, of an interior node, or a tree's root.
pub type Hash = [u8; 32];

/// The root of the empty tree: `SHA-256("")` (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The longest inclusion proof of any tree whose size fits a `u64`: one hash per level.
pub const MAX_INCLUSION_PROOF_LEN: usize = 64;

/// The bound on a consistency proof's length that this module accepts (twice the tree height,
/// comfortably above the real maximum of a `u64`-sized tree).
pub const MAX_CONSISTENCY_PROOF_LEN: usize = 2 * 64;

/// Why a Merkle computation, proof or tree state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// An inclusion proof was asked for, or checked, for a leaf outside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A tree size larger than the number of leaf hashes at hand.
    #[error("tree size {size} is larger than the {available} leaf hashes given")]
    SizeExceedsLeaves { size: u64, available: u64 },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew { old_size: u64, new_size: u64 },
    /// The proof is longer than any valid proof can be; it was not looked at.
    #[error("proof has {len} hashes, more than the limit of {max}")]
    ProofTooLong { len: usize, max: usize },
    /// The proof does not have the exact number of hashes that the sizes and index call for.
    #[error("proof has {len} hashes, but this index and tree size need exactly {expected}")]
    WrongProofLength { len: usize, expected: usize },
    /// The proof's hashes do not lead to the expected root.
    #[error("the proof leads to root {}, not the expected {}", hex::encode(computed), hex::encode(expected))]
    RootMismatch { computed: Hash, expected: Hash },
    /// A consistency proof's hashes do not rebuild the old tree's root.
    #[error("the proof leads to old root {}, not the expected {}", hex::encode(computed), hex::encode(expected))]
    OldRootMismatch { computed: Hash, expected: Hash },
    /// Two trees of the same size whose roots differ cannot be consistent.
    #[error("trees of equal size {size} have different roots")]
    EqualSizeRootsDiffer { size: u64 },
    /// The old tree is empty but the given old root is not the empty tree's root.
    #[error("old tree size is 0 but the old root is not SHA-256(\"\")")]
    EmptyTreeRootMismatch,
    /// The tree already holds `u64::MAX` leaves.
    #[error("the tree is full: it cannot hold more than 2^64 - 1 leaves")]
    TreeFull,
    /// A number does not fit this platform's `usize`.
    #[error("{what} {value} does not fit in memory addresses on this platform")]
    TooLargeForPlatform { what: &'static str, value: u64 },
    /// A serialized [`Tree`] is malformed.
    #[error("tree state: {0}")]
    BadTreeState(&'static str),
}

/// `SHA-256(0x00 || data)`: the hash of a leaf whose content is `data` (RFC 9162 §2.1.1).
///
/// For a JSON-lines log, `data` is one line without its trailing newline.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The incremental state of an append-only Merkle tree.
///
/// It holds the tree size and, for each set bit of the size from the highest down, the hash of
/// the full subtree of that many leaves on the tree's right edge: at most 64 hashes whatever the
/// size. Appending a leaf costs at most 64 node hashes; [`Tree::root`] costs at most 63.
///
/// Invariant (kept by every constructor): `edge.len() == size.count_ones()`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tree {
    size: u64,
    edge: Vec<Hash>,
}

impl Tree {
    /// The length of [`Tree::to_bytes`] for a tree of `size` leaves: 8 + 32 per set bit.
    pub const fn encoded_len(size: u64) -> usize {
        8 + 32 * size.count_ones() as usize
    }

    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of the full subtrees on the right edge, largest (leftmost) first.
    pub fn edge(&self) -> &[Hash] {
        &self.edge
    }

    /// Appends a leaf hash (see [`leaf_hash`]) and returns the new leaf's index.
    ///
    /// Fails only with [`MerkleError::TreeFull`] when the tree already has `u64::MAX` leaves;
    /// the tree is then unchanged.
    pub fn push(&mut self, leaf: Hash) -> Result<u64, MerkleError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(MerkleError::TreeFull)?;
        // Each trailing 1 bit of the old size is a full subtree that merges with the new one.
        let mut carry = leaf;
        let mut bits = index;
        while bits & 1 == 1 {
            match self.edge.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                // Unreachable while the invariant holds; refuse rather than corrupt the state.
                None => return Err(MerkleError::BadTreeState("edge shorter than the size says")),
            }
            bits >>= 1;
        }
        self.edge.push(carry);
        self.size = new_size;
        Ok(index)
    }

    /// Hashes `data` as a leaf ([`leaf_hash`]) and appends it; returns the new leaf's index.
    pub fn push_data(&mut self, data: &[u8]) -> Result<u64, MerkleError> {
        self.push(leaf_hash(data))
    }

    /// The tree's root: `MTH(D[0:size])`, [`EMPTY_ROOT`] for the empty tree.
    pub fn root(&self) -> Hash {
        let mut iter = self.edge.iter().rev();
        let Some(last) = iter.next() else { return EMPTY_ROOT };
        iter.fold(*last, |right, left| node_hash(left, &right))
    }

    /// A compact, self-checking byte form: the size as 8 big-endian bytes, then the edge hashes
    /// in order. Its length is [`Tree::encoded_len`]`(size)`, at most 8 + 64 × 32 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.size));
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.edge {
            out.extend_from_slice(h);
        }
        out
    }

    /// Parses [`Tree::to_bytes`]. Fails unless the length is exactly the one the size calls for.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MerkleError> {
        let (size_bytes, rest) =
            bytes.split_first_chunk::<8>().ok_or(MerkleError::BadTreeState("shorter than its 8-byte size"))?;
        let size = u64::from_be_bytes(*size_bytes);
        if bytes.len() != Self::encoded_len(size) {
            return Err(MerkleError::BadTreeState("length does not match the number of edge hashes the size needs"));
        }
        let (chunks, remainder) = rest.as_chunks::<32>();
        if !remainder.is_empty() {
            return Err(MerkleError::BadTreeState("edge is not a whole number of 32-byte hashes"));
        }
        Ok(Self { size, edge: chunks.to_vec() })
    }

    /// [`Tree::to_bytes`] as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Parses [`Tree::to_hex`] (either case). The input is bounded by the length check before
    /// decoding.
    pub fn from_hex(text: &str) -> Result<Self, MerkleError> {
        if text.len() > 2 * Self::encoded_len(u64::MAX) {
            return Err(MerkleError::BadTreeState("hex form is longer than any tree state"));
        }
        let bytes = hex::decode(text).map_err(|_| MerkleError::BadTreeState("not valid hex"))?;
        Self::from_bytes(&bytes)
    }

    /// The tree over `leaves`, built by appending them in order.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            // A slice cannot hold u64::MAX elements of 32 bytes, so push cannot fail.
            if tree.push(*leaf).is_err() {
                break;
            }
        }
        tree
    }
}

/// `MTH(leaves)`: the root of the tree whose leaf hashes are `leaves` ([`EMPTY_ROOT`] if empty).
pub fn root_of(leaves: &[Hash]) -> Hash {
    Tree::from_leaves(leaves).root()
}

/// The largest power of two strictly smaller than `n`, for `n >= 2` (the split point `k` of
/// RFC 9162 §2.1.1). Returns 0 for `n < 2`, which callers never pass.
fn split_point(n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    let bits = usize::BITS - (n - 1).leading_zeros();
    1usize << (bits - 1)
}

fn to_usize(what: &'static str, value: u64) -> Result<usize, MerkleError> {
    usize::try_from(value).map_err(|_| MerkleError::TooLargeForPlatform { what, value })
}

/// The first `size` leaves, or an error if there are fewer.
fn prefix(leaves: &[Hash], size: u64) -> Result<&[Hash], MerkleError> {
    let available = leaves.len() as u64;
    let n = to_usize("tree size", size)?;
    leaves.get(..n).ok_or(MerkleError::SizeExceedsLeaves { size, available })
}

/// The inclusion proof `PATH(index, D[0:size])` of RFC 9162 §2.1.3.1, leaf side first.
///
/// Guarantees: for `index < size <= leaves.len()` the proof has at most 64 hashes and
/// `verify_inclusion(leaves[index], index, size, &proof, &root_of(&leaves[..size]))` succeeds.
/// Fails with [`MerkleError::SizeExceedsLeaves`] if `size > leaves.len()` and
/// [`MerkleError::IndexOutOfRange`] if `index >= size`. Costs O(size) hashes.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    let tree = prefix(leaves, size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut m = to_usize("leaf index", index)?;
    let mut proof = Vec::new();
    // Walk down from the root, keeping the sibling subtree's hash at each level, then reverse so
    // that the leaf's sibling comes first (PATH is defined recursively as subpath : sibling).
    let mut d = tree;
    while d.len() > 1 {
        let k = split_point(d.len());
        let (left, right) = d.split_at_checked(k).ok_or(MerkleError::BadTreeState("split outside the tree"))?;
        if m < k {
            proof.push(root_of(right));
            d = left;
        } else {
            proof.push(root_of(left));
            d = right;
            m -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof `PROOF(old_size, D[0:new_size])` of RFC 9162 §2.1.4.1.
///
/// Guarantees: for `old_size <= new_size <= leaves.len()` the proof verifies with
/// [`verify_consistency`] against `root_of(&leaves[..old_size])` and
/// `root_of(&leaves[..new_size])`. It is empty when `old_size` is 0 or equal to `new_size`.
/// Fails with [`MerkleError::SizeExceedsLeaves`] if `new_size > leaves.len()` and
/// [`MerkleError::OldSizeExceedsNew`] if `old_size > new_size`. Costs O(new_size) hashes.
pub fn consistency_proof(leaves: &[Hash], old_size: u64, new_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let tree = prefix(leaves, new_size)?;
    if old_size > new_size {
        return Err(MerkleError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let mut m = to_usize("old tree size", old_size)?;
    let mut proof = Vec::new();
    // SUBPROOF(m, D, b), unrolled: `whole` is b, true while D is a prefix of the old tree.
    let mut d = tree;
    let mut whole = true;
    loop {
        if m == d.len() {
            if !whole {
                proof.push(root_of(d));
            }
            break;
        }
        let k = split_point(d.len());
        let (left, right) = d.split_at_checked(k).ok_or(MerkleError::BadTreeState("split outside the tree"))?;
        if m <= k {
            proof.push(root_of(right));
            d = left;
        } else {
            proof.push(root_of(left));
            d = right;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The number of hashes in `PATH(index, D[0:size])`, for `index < size`: the levels where the
/// leaf's path and the last leaf's path have diverged (inner), plus the full left subtrees above
/// that (border).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let last = size.saturating_sub(1);
    let inner = (u64::BITS - (index ^ last).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    inner + border
}

/// Checks an inclusion proof with the algorithm of RFC 9162 §2.1.3.2.
///
/// Succeeds only if `proof` shows that `leaf` is the leaf hash at `index` in the tree of `size`
/// leaves whose root is `root`. Checks, in order: `index < size`, the proof's length (at most
/// [`MAX_INCLUSION_PROOF_LEN`], and exactly the length the index and size call for), then the
/// root. Never panics and does at most 64 node hashes.
///
/// The proof binds `leaf` and `index` to `root`. It cannot by itself tell apart sizes for which
/// the path has the same shape (a proof for leaf 0 of a 3-leaf tree also "verifies" as leaf 0 of
/// a 4-leaf tree with the same root value, which is not the root of any 4-leaf tree): `size` and
/// `root` must be taken together from one verified checkpoint, never from separate sources.
pub fn verify_inclusion(leaf: Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_INCLUSION_PROOF_LEN {
        return Err(MerkleError::ProofTooLong { len: proof.len(), max: MAX_INCLUSION_PROOF_LEN });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength { len: proof.len(), expected });
    }
    let mut f_n = index;
    let mut s_n = size.saturating_sub(1); // size > index >= 0
    let mut r = leaf;
    for p in proof {
        if s_n == 0 {
            return Err(MerkleError::WrongProofLength { len: proof.len(), expected });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(MerkleError::WrongProofLength { len: proof.len(), expected });
    }
    if &r != root {
        return Err(MerkleError::RootMismatch { computed: r, expected: *root });
    }
    Ok(())
}

/// The number of hashes in `PROOF(old_size, D[0:new_size])`, for `0 < old_size < new_size`.
///
/// Below the lowest set bit of `old_size` both trees share a full subtree, so the proof is the
/// inclusion path of that subtree's node within the new tree's level `shift`, plus the node
/// itself unless it is the whole old tree (old_size a power of two).
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let shift = old_size.trailing_zeros();
    let node = old_size.saturating_sub(1) >> shift;
    let last = new_size.saturating_sub(1) >> shift;
    let inner = (u64::BITS - (node ^ last).leading_zeros()) as usize;
    let border = node.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    let seed = usize::from(!old_size.is_power_of_two());
    inner + border + seed
}

/// Checks a consistency proof with the algorithm of RFC 9162 §2.1.4.2.
///
/// Succeeds only if `proof` shows that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`. Special cases:
///
/// * `old_size == 0`: the proof must be empty and `old_root` must be [`EMPTY_ROOT`]; the empty
///   tree is a prefix of every tree, so `new_root` is not checked.
/// * `old_size == new_size`: the proof must be empty and the roots equal.
/// * `old_size > new_size`: [`MerkleError::OldSizeExceedsNew`].
///
/// The proof's length is checked (at most [`MAX_CONSISTENCY_PROOF_LEN`], and exactly the length
/// the sizes call for) before any hashing. Never panics and does at most 2 × 128 node hashes.
/// As with [`verify_inclusion`], each size must come with its own root from a verified checkpoint.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::OldSizeExceedsNew { old_size, new_size });
    }
    if proof.len() > MAX_CONSISTENCY_PROOF_LEN {
        return Err(MerkleError::ProofTooLong { len: proof.len(), max: MAX_CONSISTENCY_PROOF_LEN });
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength { len: proof.len(), expected: 0 });
        }
        if old_root != &EMPTY_ROOT {
            return Err(MerkleError::EmptyTreeRootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength { len: proof.len(), expected: 0 });
        }
        if old_root != new_root {
            return Err(MerkleError::EqualSizeRootsDiffer { size: old_size });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength { len: proof.len(), expected });
    }
    let wrong_len = MerkleError::WrongProofLength { len: proof.len(), expected };

    // Step 2: when the old tree is a full subtree its root is the proof's implicit first hash.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_len),
        }
    };
    let mut f_n = old_size.saturating_sub(1); // 0 < old_size < new_size here
    let mut s_n = new_size.saturating_sub(1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut f_r = seed;
    let mut s_r = seed;
    for c in rest {
        if s_n == 0 {
            return Err(wrong_len);
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(wrong_len);
    }
    if &f_r != old_root {
        return Err(MerkleError::OldRootMismatch { computed: f_r, expected: *old_root });
    }
    if &s_r != new_root {
        return Err(MerkleError::RootMismatch { computed: s_r, expected: *new_root });
    }
    Ok(())
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
