//! Capability-scoped worlds (`cryptohost:provider@0.2.0`): which world a component is, from
//! the interfaces it exports, and handles to exactly those interfaces. A verifier has no
//! signing or encryption handle at all, so no call can reach one.

use wasmtime::component::{Instance, InstancePre, types::ComponentItem};
use wasmtime::{AsContextMut, Engine};

use crate::bindings::exports::cryptohost::provider::{encryption, hashing, metadata, signing, verification};
use crate::bindings::{self};
use crate::provider::World;

/// The package version this host loads.
pub const PACKAGE: &str = "cryptohost:provider";
pub const VERSION: &str = "0.2.0";

fn interface(name: &str) -> String {
    format!("{PACKAGE}/{name}@{VERSION}")
}

/// The world a component's exports make it, or why they make none.
///
/// # Errors
/// A component built against another package version (0.1.0: rebuild it), or exports that are
/// not exactly one of the worlds.
pub fn infer(ty: &wasmtime::component::types::Component, engine: &Engine) -> Result<World, String> {
    let mut exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Err(format!("exports `{name}`, which is not an interface of {PACKAGE}@{VERSION}"));
        }
        exports.push(name.to_string());
    }
    if let Some(message) = exports.iter().find_map(|e| older_contract(e)) {
        return Err(message);
    }
    let has = |i: &str| exports.contains(&interface(i));
    if let Some(other) = exports
        .iter()
        .find(|e| !["metadata", "hashing", "verification", "signing", "encryption"].iter().any(|i| **e == interface(i)))
    {
        return Err(format!("exports `{other}`, which is not an interface of {PACKAGE}@{VERSION}"));
    }
    match (has("metadata") && has("hashing") && has("verification"), has("signing"), has("encryption")) {
        (true, false, false) => Ok(World::Verifier),
        (true, true, false) => Ok(World::Signer),
        (true, true, true) => Ok(World::Keystore),
        _ => Err(format!(
            "exports {exports:?}: that is none of the worlds verifier (metadata, hashing, verification), \
             signer (+ signing) or keystore (+ encryption)"
        )),
    }
}

/// For an import or export of our package at another version: the message saying to rebuild.
pub fn older_contract(name: &str) -> Option<String> {
    (name.starts_with(&format!("{PACKAGE}/")) && !name.ends_with(&format!("@{VERSION}"))).then(|| {
        format!(
            "was built against another version of the contract (it uses `{name}`); this host loads \
             {PACKAGE}@{VERSION} components only: rebuild it with the current wit/ (see the README's upgrade notes)"
        )
    })
}

/// Where each exported interface sits in a component, looked up once per component.
pub struct Indices {
    metadata: metadata::GuestIndices,
    hashing: hashing::GuestIndices,
    verification: verification::GuestIndices,
    signing: Option<signing::GuestIndices>,
    encryption: Option<encryption::GuestIndices>,
}

impl Indices {
    /// # Errors
    /// An interface of `world` is missing or has the wrong shape.
    pub fn new<T>(pre: &InstancePre<T>, world: World) -> wasmtime::Result<Indices> {
        Ok(Indices {
            metadata: metadata::GuestIndices::new(pre)?,
            hashing: hashing::GuestIndices::new(pre)?,
            verification: verification::GuestIndices::new(pre)?,
            signing: if world >= World::Signer { Some(signing::GuestIndices::new(pre)?) } else { None },
            encryption: if world >= World::Keystore { Some(encryption::GuestIndices::new(pre)?) } else { None },
        })
    }

    /// The handles of one instance (type-checked against the WIT).
    ///
    /// # Errors
    /// An export does not have the type the WIT gives it.
    pub fn load(&self, mut store: impl AsContextMut, instance: &Instance) -> wasmtime::Result<Handles> {
        Ok(Handles {
            metadata: self.metadata.load(&mut store, instance)?,
            hashing: self.hashing.load(&mut store, instance)?,
            verification: self.verification.load(&mut store, instance)?,
            signing: self.signing.as_ref().map(|i| i.load(&mut store, instance)).transpose()?,
            encryption: self.encryption.as_ref().map(|i| i.load(&mut store, instance)).transpose()?,
        })
    }
}

/// One instance's exported interfaces: those of its world, and nothing else.
pub struct Handles {
    pub metadata: metadata::Guest,
    pub hashing: hashing::Guest,
    pub verification: verification::Guest,
    signing: Option<signing::Guest>,
    encryption: Option<encryption::Guest>,
}

impl Handles {
    /// The signing interface; a verifier has none.
    pub fn signing(&self) -> Result<&signing::Guest, bindings::CryptoError> {
        self.signing
            .as_ref()
            .ok_or_else(|| bindings::CryptoError::Unsupported("a verifier-world component holds no keys".into()))
    }

    /// The encryption interface; only a keystore has one.
    pub fn encryption(&self) -> Result<&encryption::Guest, bindings::CryptoError> {
        self.encryption.as_ref().ok_or_else(|| {
            bindings::CryptoError::Unsupported("only a keystore-world component holds secret keys".into())
        })
    }
}
