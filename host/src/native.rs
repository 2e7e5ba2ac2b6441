//! The host's own SHA-2: RustCrypto `sha2`, which picks the CPU's SHA extensions (SHA-NI on
//! x86-64, the ARMv8 SHA instructions) or AVX2 at run time. A component hashes without them
//! (wasm has no such instructions), at about a fifth of the speed, so large inputs are hashed
//! here: a provider like any other, registered with a priority (`[native] hashing`), listed by
//! `providers` as native code with the host's version, named in the audit lines of the
//! signatures over its digests, and left out under `[policy] components_only`. The trust root's
//! verifier (`crate::trust_root`) hashes with the same functions.

use std::io::Read;

use sha2::Digest;

use crate::error::ProviderError;
use crate::provider::{Capability, CapabilityInfo, CryptoProvider, Descriptor, Hashing, Origin, Priority};

/// The hashes it computes.
pub const HASHES: [&str; 3] = ["SHA-256", "SHA-384", "SHA-512"];

/// The configured name of the native hashing provider.
pub const NAME: &str = "native-sha2";

/// Its default priority: above every component a config or a kit brings by default (a kit may
/// claim at most 199), so large inputs are hashed natively unless the operator says otherwise.
pub const DEFAULT_PRIORITY: i32 = 400;

/// How much of a stream is read at a time: large enough that a read's cost vanishes beside
/// hashing it, small enough to stay in the CPU's cache.
pub const READ_CHUNK: usize = 256 << 10;

/// The CPU instructions `sha2` uses here, as `providers` and the audit log name them.
pub fn cpu_features() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sha") {
            return if std::arch::is_x86_feature_detected!("avx2") {
                "SHA-NI for SHA-256, AVX2 for SHA-384/512"
            } else {
                "SHA-NI for SHA-256"
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("sha2") {
            return "ARMv8 SHA-2";
        }
    }
    "portable code"
}

/// The origin `providers` and the audit log give native hashing: the host's version, the code
/// and the instructions it uses.
pub fn origin() -> Origin {
    Origin::Native {
        module: format!("built into cryptohost {}: RustCrypto sha2 ({})", env!("CARGO_PKG_VERSION"), cpu_features()),
    }
}

/// One-shot SHA-2 of `data`; `None` for another algorithm name.
pub fn digest(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    match algorithm {
        "SHA-256" => Some(sha2::Sha256::digest(data).to_vec()),
        "SHA-384" => Some(sha2::Sha384::digest(data).to_vec()),
        "SHA-512" => Some(sha2::Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// SHA-2 of everything `reader` yields, [`READ_CHUNK`] at a time; `Ok(None)` for another
/// algorithm name (nothing read).
///
/// # Errors
/// A read fails.
pub fn digest_reader(algorithm: &str, reader: &mut dyn Read) -> Result<Option<Vec<u8>>, ProviderError> {
    fn run<D: Digest>(reader: &mut dyn Read) -> Result<Option<Vec<u8>>, ProviderError> {
        let mut h = D::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ProviderError::InvalidInput(format!("reading: {e}"))),
            };
            if n == 0 {
                return Ok(Some(h.finalize().to_vec()));
            }
            h.update(&buf[..n]);
        }
    }
    match algorithm {
        "SHA-256" => run::<sha2::Sha256>(reader),
        "SHA-384" => run::<sha2::Sha384>(reader),
        "SHA-512" => run::<sha2::Sha512>(reader),
        _ => Ok(None),
    }
}

/// The native hashing provider.
pub struct NativeHashing {
    descriptor: Descriptor,
}

impl NativeHashing {
    /// The provider at `priority`.
    pub fn new(priority: Priority) -> NativeHashing {
        NativeHashing {
            descriptor: Descriptor {
                name: NAME.into(),
                reported_name: "cryptohost native SHA-2".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                priority,
                origin: origin(),
                capabilities: vec![CapabilityInfo {
                    capability: Capability::Hashing,
                    algorithms: HASHES.iter().map(|h| h.to_string()).collect(),
                }],
                world: None,
            },
        }
    }

    /// Whether `descriptor` is this provider's: native code that only hashes, by this name
    /// (no config or kit can make a native provider, so the name alone is not what decides).
    pub fn is(descriptor: &Descriptor) -> bool {
        descriptor.name == NAME
            && matches!(&descriptor.origin, Origin::Native { module } if module.starts_with("built into cryptohost"))
    }
}

fn unsupported(algorithm: &str) -> ProviderError {
    ProviderError::Unsupported(format!("{algorithm}: native hashing computes SHA-256, SHA-384 and SHA-512"))
}

impl CryptoProvider for NativeHashing {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn hashing(&self) -> Option<&dyn Hashing> {
        Some(self)
    }
}

impl Hashing for NativeHashing {
    fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, ProviderError> {
        digest(algorithm, data).ok_or_else(|| unsupported(algorithm))
    }

    fn digest_reader(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError> {
        digest_reader(algorithm, reader)?.ok_or_else(|| unsupported(algorithm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_and_one_shot_agree_across_chunk_edges() {
        let data: Vec<u8> = (0..(READ_CHUNK * 2 + 17)).map(|i| (i * 31 % 251) as u8).collect();
        let p = NativeHashing::new(Priority(DEFAULT_PRIORITY));
        for h in HASHES {
            let whole = Hashing::digest(&p, h, &data).expect("hashes");
            let streamed = Hashing::digest_reader(&p, h, &mut std::io::Cursor::new(&data)).expect("hashes");
            assert_eq!(whole, streamed, "{h}");
        }
        assert!(matches!(Hashing::digest(&p, "SHA-1", b"x"), Err(ProviderError::Unsupported(_))));
        assert!(NativeHashing::is(p.descriptor()));
    }
}
