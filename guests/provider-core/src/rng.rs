//! Randomness adapters: the host's CSPRNG through an import, and a seeded generator for the
//! simulation provider's reproducible test keys.

use core::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// The host's OS CSPRNG, reached through the guest's `random-bytes` import.
pub struct HostRng(pub fn(u32) -> Vec<u8>);

const MAX_PER_CALL: usize = 64 * 1024;

/// `next_u32`/`next_u64` from `try_fill_bytes`, little-endian: byte generators have no words.
macro_rules! words_from_bytes {
    () => {
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }

        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
    };
}

impl TryRng for HostRng {
    type Error = Infallible;

    words_from_bytes!();

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(MAX_PER_CALL) {
            let bytes = (self.0)(chunk.len() as u32);
            // A short buffer would leave zeros in key material: a host bug, so stop here.
            assert_eq!(bytes.len(), chunk.len(), "host returned a short random buffer");
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }
}

impl TryCryptoRng for HostRng {}

/// A deterministic generator: SHA-256(key || counter) blocks. Used only by the simulation
/// provider when its configuration sets a `seed`, so tests get the same keys every run.
/// Never use it for real keys: anyone with the seed has every key.
pub struct SeededRng {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator for one purpose (`label`, e.g. a key name and algorithm) under a seed.
    pub fn new(seed: &[u8], label: &[u8]) -> SeededRng {
        let mut h = Sha256::new();
        h.update(b"cryptohost-simulation-seed-v1\0");
        h.update((seed.len() as u64).to_be_bytes());
        h.update(seed);
        h.update(label);
        SeededRng { key: h.finalize().into(), counter: 0, block: [0; 32], used: 32 }
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    words_from_bytes!();

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst.iter_mut() {
            if self.used == self.block.len() {
                let mut h = Sha256::new();
                h.update(self.key);
                h.update(self.counter.to_be_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}
