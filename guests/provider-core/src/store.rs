//! Keys held inside a provider instance, by generated identifier and optionally by name.

use std::collections::BTreeMap;

use crate::CoreError;

/// A table of held items (private keys, secret keys). Identifiers are never reused.
pub struct Store<T> {
    prefix: &'static str,
    next: u64,
    items: BTreeMap<String, T>,
    /// name -> identifier, for named keys.
    names: BTreeMap<String, String>,
}

impl<T> Store<T> {
    pub const fn new(prefix: &'static str) -> Store<T> {
        Store { prefix, next: 0, items: BTreeMap::new(), names: BTreeMap::new() }
    }

    pub fn insert(&mut self, item: T) -> String {
        self.next += 1;
        let id = format!("{}-{}", self.prefix, self.next);
        self.items.insert(id.clone(), item);
        id
    }

    pub fn insert_named(&mut self, name: &str, item: T) -> String {
        let id = self.insert(item);
        self.names.insert(name.to_string(), id.clone());
        id
    }

    pub fn named(&self, name: &str) -> Option<&String> {
        self.names.get(name)
    }

    pub fn get(&self, id: &str) -> Result<&T, CoreError> {
        self.items.get(id).ok_or_else(|| CoreError::KeyNotFound(format!("no key {id:?} in this provider")))
    }

    pub fn remove(&mut self, id: &str) {
        self.items.remove(id);
        self.names.retain(|_, v| v != id);
    }
}
