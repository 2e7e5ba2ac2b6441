//! Tests of `merkle`.

use super::*;

// Known-answer vectors: the RFC 6962 test tree of 8 leaves used by Google's Certificate
// Transparency code (originally certificate-transparency's merkle_tree_test.cc) and by
// transparency-dev/merkle, from github.com/transparency-dev/merkle `testonly/constants.go`
// (leaves, node hashes, roots) and `cmd/proofgen/main.go` (inclusion and consistency proofs).
// Copyright 2017-2019 Google LLC, licensed under the Apache License, Version 2.0
// (http://www.apache.org/licenses/LICENSE-2.0). Only the data values are used here.

const LEAF_INPUTS: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

const LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

/// Roots for sizes 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, proof). proofgen lists the index 1-based; here it is 0-based.
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hs(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn vector_leaves() -> Vec<Hash> {
    LEAF_INPUTS.iter().map(|s| leaf_hash(&hex::decode(s).unwrap())).collect()
}

/// Leaf hashes for the property tests: the hashes of the decimal strings "0", "1", ...
fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(i.to_string().as_bytes())).collect()
}

fn flip(hash: &Hash, byte: usize) -> Hash {
    let mut out = *hash;
    out[byte % 32] ^= 0x01;
    out
}

#[test]
fn known_leaf_hashes_and_roots() {
    let leaves = vector_leaves();
    assert_eq!(leaves, hs(&LEAF_HASHES));
    assert_eq!(EMPTY_ROOT, h(ROOTS[0]));
    assert_eq!(root_of(&[]), EMPTY_ROOT);
    let mut tree = Tree::new();
    assert_eq!(tree.root(), EMPTY_ROOT);
    for (size, root) in ROOTS.iter().enumerate().skip(1) {
        assert_eq!(root_of(&leaves[..size]), h(root), "root_of size {size}");
        assert_eq!(tree.push(leaves[size - 1]).unwrap(), size as u64 - 1);
        assert_eq!(tree.size(), size as u64);
        assert_eq!(tree.root(), h(root), "Tree root at size {size}");
    }
    // The level-1 node over leaves 2 and 3, as published in NodeHashes().
    assert_eq!(
        node_hash(&leaves[2], &leaves[3]),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e")
    );
}

#[test]
fn known_inclusion_proofs() {
    let leaves = vector_leaves();
    for (index, size, proof) in INCLUSION {
        let proof = hs(proof);
        let root = h(ROOTS[size as usize]);
        assert_eq!(inclusion_proof(&leaves, index, size).unwrap(), proof, "generate {index}/{size}");
        verify_inclusion(leaves[index as usize], index, size, &proof, &root).unwrap();
    }
}

#[test]
fn known_consistency_proofs() {
    let leaves = vector_leaves();
    for (old, new, proof) in CONSISTENCY {
        let proof = hs(proof);
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        assert_eq!(consistency_proof(&leaves, old, new).unwrap(), proof, "generate {old}->{new}");
        verify_consistency(old, new, &r1, &r2, &proof).unwrap();
    }
}

/// The corruptions that transparency-dev/merkle's proofgen applies to each known proof.
#[test]
fn known_inclusion_proofs_corrupted() {
    let leaves = vector_leaves();
    for (index, size, proof) in INCLUSION {
        let proof = hs(proof);
        let root = h(ROOTS[size as usize]);
        let leaf = leaves[index as usize];
        let bad_index = [index.wrapping_sub(1), index + 1, index ^ 2];
        for i in bad_index {
            assert!(verify_inclusion(leaf, i, size, &proof, &root).is_err(), "index {i} for {index}/{size}");
        }
        for s in [size * 2, size / 2] {
            assert!(verify_inclusion(leaf, index, s, &proof, &root).is_err(), "size {s} for {index}/{size}");
        }
        assert!(verify_inclusion(leaf_hash(b"WrongLeaf"), index, size, &proof, &root).is_err());
        assert!(verify_inclusion(leaf, index, size, &proof, &EMPTY_ROOT).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_inclusion(leaf, index, size, &longer, &root).is_err());
        let mut longer = vec![root];
        longer.extend_from_slice(&proof);
        assert!(verify_inclusion(leaf, index, size, &longer, &root).is_err());
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][0] ^= 8;
            assert!(verify_inclusion(leaf, index, size, &bad, &root).is_err());
        }
    }
}

#[test]
fn known_consistency_proofs_corrupted() {
    for (old, new, proof) in CONSISTENCY {
        let proof = hs(proof);
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        if old != new {
            assert!(verify_consistency(old, new, &r2, &r1, &proof).is_err(), "swapped roots {old}->{new}");
        }
        assert!(verify_consistency(old, new, &flip(&r1, 0), &r2, &proof).is_err());
        assert!(verify_consistency(old, new, &r1, &flip(&r2, 31), &proof).is_err());
        for (o, n) in [(old - 1, new), (old + 1, new), (old ^ 2, new), (old, new * 2), (old, new / 2)] {
            if (o, n) == (old, new) || (o == 0 && proof.is_empty()) {
                continue;
            }
            assert!(verify_consistency(o, n, &r1, &r2, &proof).is_err(), "sizes {o}->{n} for {old}->{new}");
        }
        let mut longer = proof.clone();
        longer.push(EMPTY_ROOT);
        assert!(verify_consistency(old, new, &r1, &r2, &longer).is_err());
        let mut longer = vec![r1];
        longer.extend_from_slice(&proof);
        assert!(verify_consistency(old, new, &r1, &r2, &longer).is_err());
        if !proof.is_empty() {
            assert!(verify_consistency(old, new, &r1, &r2, &proof[..proof.len() - 1]).is_err());
        }
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][0] ^= 4;
            assert!(verify_consistency(old, new, &r1, &r2, &bad).is_err());
        }
    }
}

#[test]
fn inclusion_all_sizes_and_indices() {
    let all = leaves(140);
    let mut aliases = 0;
    let mut checked = 0;
    for size in 1..=70u64 {
        let root = root_of(&all[..size as usize]);
        for index in 0..size {
            let leaf = all[index as usize];
            let proof = inclusion_proof(&all, index, size).unwrap();
            assert_eq!(proof.len(), inclusion_proof_len(index, size));
            verify_inclusion(leaf, index, size, &proof, &root).unwrap();

            assert!(verify_inclusion(flip(&leaf, 3), index, size, &proof, &root).is_err());
            assert!(verify_inclusion(leaf, index, size, &proof, &flip(&root, 7)).is_err());
            for (i, p) in proof.iter().enumerate() {
                let mut bad = proof.clone();
                bad[i] = flip(p, i);
                assert!(verify_inclusion(leaf, index, size, &bad, &root).is_err(), "{index}/{size} flip {i}");
            }
            for wrong in [index + 1, index.wrapping_sub(1), index ^ 1] {
                if wrong != index {
                    assert!(verify_inclusion(leaf, wrong, size, &proof, &root).is_err());
                }
            }
            for wrong in [size + 1, size - 1, size * 2] {
                if wrong == size || index >= wrong {
                    continue;
                }
                // Against the real root of the other size, the proof always fails.
                let wrong_root = root_of(&all[..wrong as usize]);
                assert!(verify_inclusion(leaf, index, wrong, &proof, &wrong_root).is_err());
                // Against this size's root it can pass, when both sizes give the path the
                // same shape: then it only "proves" that `root` is a root of size `wrong`,
                // which it is not; the signed checkpoint binds size and root together.
                if verify_inclusion(leaf, index, wrong, &proof, &root).is_ok() {
                    assert_eq!(inclusion_proof_len(index, wrong), proof.len());
                    aliases += 1;
                }
            }
            checked += 1;
            let mut longer = proof.clone();
            longer.push(leaf);
            assert!(verify_inclusion(leaf, index, size, &longer, &root).is_err());
            if !proof.is_empty() {
                assert!(verify_inclusion(leaf, index, size, &proof[1..], &root).is_err());
            }
        }
    }
    assert!(aliases > 0 && aliases < checked * 3, "{aliases} of {checked}");
}

#[test]
fn consistency_all_sizes() {
    let all = leaves(71);
    let roots: Vec<Hash> = (0..=71).map(|n| root_of(&all[..n])).collect();
    for new in 0..=70u64 {
        let r2 = roots[new as usize];
        for old in 0..=new {
            let r1 = roots[old as usize];
            let proof = consistency_proof(&all, old, new).unwrap();
            assert!(proof.len() <= MAX_CONSISTENCY_PROOF_LEN);
            verify_consistency(old, new, &r1, &r2, &proof).unwrap();
            if old == 0 {
                assert!(proof.is_empty());
                continue;
            }
            assert!(verify_consistency(old, new, &flip(&r1, 1), &r2, &proof).is_err());
            assert!(verify_consistency(old, new, &r1, &flip(&r2, 2), &proof).is_err());
            for (i, p) in proof.iter().enumerate() {
                let mut bad = proof.clone();
                bad[i] = flip(p, i);
                assert!(verify_consistency(old, new, &r1, &r2, &bad).is_err(), "{old}->{new} flip {i}");
            }
            for (o, n) in [(old + 1, new), (old - 1, new), (old, new + 1), (old, new.saturating_sub(1))] {
                if (o, n) == (old, new) || o > n || (o == 0 && proof.is_empty()) {
                    continue;
                }
                // Against the real roots of the other sizes, the proof always fails; against
                // these roots it can pass only where the sizes give the proof the same shape
                // (see inclusion_all_sizes_and_indices).
                let (w1, w2) = (roots[o as usize], roots[n as usize]);
                assert!(verify_consistency(o, n, &w1, &w2, &proof).is_err(), "{o}->{n} for {old}->{new}");
                if verify_consistency(o, n, &r1, &r2, &proof).is_ok() {
                    assert_eq!(consistency_proof_len(o, n), proof.len());
                }
            }
            let mut longer = proof.clone();
            longer.push(r1);
            assert!(verify_consistency(old, new, &r1, &r2, &longer).is_err());
        }
    }
}

#[test]
fn tree_matches_root_of_and_round_trips() {
    let all = leaves(300);
    let mut tree = Tree::new();
    for (i, leaf) in all.iter().enumerate() {
        let state = tree.to_bytes();
        assert_eq!(state.len(), Tree::encoded_len(tree.size()));
        assert_eq!(Tree::from_bytes(&state).unwrap(), tree);
        assert_eq!(Tree::from_hex(&tree.to_hex()).unwrap(), tree);
        assert_eq!(tree.edge().len() as u32, tree.size().count_ones());
        assert_eq!(tree.root(), root_of(&all[..i]));
        tree.push(*leaf).unwrap();
    }
    assert_eq!(Tree::from_leaves(&all), tree);
    let mut by_data = Tree::new();
    for i in 0..300u64 {
        by_data.push_data(i.to_string().as_bytes()).unwrap();
    }
    assert_eq!(by_data, tree);
}

#[test]
fn tree_state_parsing_rejects_malformed() {
    let tree = Tree::from_leaves(&leaves(5));
    let good = tree.to_bytes();
    assert_eq!(good.len(), 8 + 64);
    assert!(Tree::from_bytes(&good[..7]).is_err());
    assert!(Tree::from_bytes(&good[..good.len() - 1]).is_err());
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 32]);
    assert!(Tree::from_bytes(&longer).is_err());
    let mut wrong_size = good.clone();
    wrong_size[7] = 7; // 3 set bits, but only 2 hashes
    assert!(Tree::from_bytes(&wrong_size).is_err());
    assert!(Tree::from_hex("zz").is_err());
    assert!(Tree::from_hex(&"0".repeat(100_000)).is_err());
    assert_eq!(Tree::from_bytes(&[0; 8]).unwrap(), Tree::new());
}

#[test]
fn full_tree_refuses_push() {
    let mut state = u64::MAX.to_be_bytes().to_vec();
    state.extend(std::iter::repeat_n(0u8, 64 * 32));
    let mut tree = Tree::from_bytes(&state).unwrap();
    let before = tree.clone();
    assert_eq!(tree.push(EMPTY_ROOT), Err(MerkleError::TreeFull));
    assert_eq!(tree, before);
}

#[test]
fn argument_errors() {
    let all = leaves(8);
    assert_eq!(inclusion_proof(&all, 0, 9), Err(MerkleError::SizeExceedsLeaves { size: 9, available: 8 }));
    assert_eq!(inclusion_proof(&all, 8, 8), Err(MerkleError::IndexOutOfRange { index: 8, size: 8 }));
    assert_eq!(inclusion_proof(&all, 0, 0), Err(MerkleError::IndexOutOfRange { index: 0, size: 0 }));
    assert_eq!(consistency_proof(&all, 3, 9), Err(MerkleError::SizeExceedsLeaves { size: 9, available: 8 }));
    assert_eq!(consistency_proof(&all, 5, 4), Err(MerkleError::OldSizeExceedsNew { old_size: 5, new_size: 4 }));
    assert!(consistency_proof(&all, u64::MAX, u64::MAX).is_err());

    let root = root_of(&all);
    assert_eq!(
        verify_inclusion(all[0], 0, 0, &[], &EMPTY_ROOT),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    let huge = vec![EMPTY_ROOT; 65];
    assert_eq!(verify_inclusion(all[0], 0, 8, &huge, &root), Err(MerkleError::ProofTooLong { len: 65, max: 64 }));
    let huge = vec![EMPTY_ROOT; 129];
    assert_eq!(verify_consistency(1, 8, &all[0], &root, &huge), Err(MerkleError::ProofTooLong { len: 129, max: 128 }));
    assert_eq!(
        verify_consistency(9, 8, &root, &root, &[]),
        Err(MerkleError::OldSizeExceedsNew { old_size: 9, new_size: 8 })
    );
    // Empty old tree.
    verify_consistency(0, 8, &EMPTY_ROOT, &root, &[]).unwrap();
    verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]).unwrap();
    assert_eq!(verify_consistency(0, 8, &root, &root, &[]), Err(MerkleError::EmptyTreeRootMismatch));
    assert!(verify_consistency(0, 8, &EMPTY_ROOT, &root, &[root]).is_err());
    // Equal sizes.
    verify_consistency(8, 8, &root, &root, &[]).unwrap();
    assert_eq!(verify_consistency(8, 8, &root, &all[0], &[]), Err(MerkleError::EqualSizeRootsDiffer { size: 8 }));
    assert!(verify_consistency(8, 8, &root, &root, &[root]).is_err());
}

#[test]
fn huge_sizes_do_not_panic() {
    let leaf = leaf_hash(b"x");
    let proof = vec![leaf; 64];
    for (index, size) in [(u64::MAX - 1, u64::MAX), (0, u64::MAX), (1 << 63, u64::MAX), (u64::MAX, u64::MAX)] {
        let expected_len_ok = index < size && inclusion_proof_len(index, size) == 64;
        let r = verify_inclusion(leaf, index, size, &proof, &leaf);
        assert!(r.is_err());
        if expected_len_ok {
            assert!(matches!(r, Err(MerkleError::RootMismatch { .. })), "{r:?}");
        }
    }
    for (old, new) in [(1, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX), (3, 1 << 63)] {
        let len = consistency_proof_len(old, new);
        assert!(len <= MAX_CONSISTENCY_PROOF_LEN, "{old}->{new}: {len}");
        let proof = vec![leaf; len];
        assert!(verify_consistency(old, new, &leaf, &leaf, &proof).is_err());
    }
}

/// A small deterministic generator for the no-panic tests (xorshift64*).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_inputs_never_panic_or_pass() {
    let mut next = rng(0x5eed);
    let leaf = leaf_hash(b"l");
    for _ in 0..20_000 {
        let size = match next() % 4 {
            0 => next(),
            1 => next() % 200,
            2 => u64::MAX - next() % 4,
            _ => 1u64 << (next() % 64),
        };
        let index = if next().is_multiple_of(2) { next() % size.max(1) } else { next() };
        let old = next() % size.saturating_add(1).max(1);
        let len = (next() % 140) as usize;
        let proof: Vec<Hash> = (0..len).map(|i| leaf_hash(&(i as u64 ^ next()).to_be_bytes())).collect();
        assert!(verify_inclusion(leaf, index, size, &proof, &leaf).is_err());
        assert!(verify_consistency(old, size, &leaf, &leaf, &proof).is_err() || (proof.is_empty() && old == size));
    }
}

#[test]
fn error_messages_are_specific() {
    let e = MerkleError::RootMismatch { computed: EMPTY_ROOT, expected: [0; 32] };
    assert!(e.to_string().contains("e3b0c442"), "{e}");
    assert_eq!(
        MerkleError::WrongProofLength { len: 2, expected: 3 }.to_string(),
        "proof has 2 hashes, but this index and tree size need exactly 3"
    );
}
