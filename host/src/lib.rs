//! cryptohost: a crypto provider host. Hardware keys through PKCS#11, every software provider a
//! sandboxed, pinned WebAssembly component, chosen by configured priority.

mod bindings;
pub mod error;
pub mod fsio;
pub mod provider;
pub mod wasm;

pub use error::{LoadError, ProviderError, RegistryError};
pub use provider::{Capability, CryptoProvider, Descriptor, KeyId, Priority, SigFormat, SignInput, Verifier};
pub mod alg;
pub mod audit;
pub mod bundle;
pub mod config;
pub mod conformance;
pub mod csr;
pub mod doctor;
pub mod dsse;
pub mod jose;
pub mod keyfile;
pub mod keyref;
pub mod keys;
pub mod lifecycle;
pub mod load;
pub mod native;
pub mod pkcs11;
pub mod policy;
pub mod registry;
pub mod request;
pub mod service;
pub mod trust;
pub mod trust_root;

pub use config::Config;
pub use load::{Host, TrustMode};
pub use registry::{Registry, Served};
