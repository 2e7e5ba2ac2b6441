//! Randomness from the host's operating-system CSPRNG, through the `host` import.

use core::convert::Infallible;
use rand_core::{TryCryptoRng, TryRng};

use crate::bindings::cryptohost::provider::host;

/// The host's CSPRNG as a `rand_core` generator. The guest has no entropy of its own.
pub struct HostRng;

const MAX_PER_CALL: usize = 64 * 1024;

impl TryRng for HostRng {
    type Error = Infallible;

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

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(MAX_PER_CALL) {
            let bytes = host::random_bytes(chunk.len() as u32);
            // The host always returns exactly what was asked; anything else is a host bug and
            // must not silently leave zeros in key material.
            assert_eq!(bytes.len(), chunk.len(), "host returned a short random buffer");
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }
}

impl TryCryptoRng for HostRng {}
