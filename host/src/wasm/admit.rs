//! Admitting a component: read it (no symlink, bounded), check its digest, compile it (or
//! take the digest-bound precompiled artifact), refuse foreign imports and other contract
//! versions, infer its world, and describe it through its own metadata. Also `inspect` (the
//! same checks, nothing run) and `probe` (the sandbox's limits against hand-written WAT).

use super::*;

impl Runtime {
    /// Describes a component file without running it: its sha256, every import and export,
    /// and its world (or why it has none). Nothing is instantiated.
    ///
    /// # Errors
    /// The file cannot be read or does not compile as a component.
    pub fn inspect(&self, file: &Path) -> Result<Inspection, LoadError> {
        let bytes = fsio::read_bounded_nofollow(file, file_limits::COMPONENT, "component")
            .map_err(|e| component_err(file, e.message))?;
        let sha256 = sha256_hex(&bytes);
        let component = Component::new(&self.shared.engine, &bytes)
            .map_err(|e| component_err(file, format!("is not a component this host can compile: {e}")))?;
        let ty = component.component_type();
        let engine = &self.shared.engine;
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let refused_imports = imports
            .iter()
            .filter(|i| !ALLOWED_IMPORTS.contains(&i.as_str()))
            .map(|i| {
                world::older_contract(i).unwrap_or_else(|| format!("imports `{i}`: only the host interface is allowed"))
            })
            .collect();
        Ok(Inspection {
            sha256,
            size: bytes.len() as u64,
            world: world::infer(&ty, engine),
            imports,
            exports,
            refused_imports,
        })
    }

    /// Loads, checks and describes one provider component.
    ///
    /// # Errors
    /// The file cannot be read, its digest does not match `trust`, it imports anything but
    /// the `host` interface, it does not implement the provider world, or its metadata traps.
    pub fn load(
        &self,
        name: &str,
        file: &Path,
        trust: &Trust,
        priority: Priority,
        settings: Vec<(String, String)>,
    ) -> Result<WasmProvider, LoadError> {
        self.load_pooled(name, file, trust, priority, settings, 1)
    }

    /// As [`Runtime::load`], with a pool of up to `instances` instances (made on first use),
    /// so that calls to this provider run in parallel. Only for providers whose instances are
    /// interchangeable: no keys held in memory except those derived from a seed (keys imported
    /// into one instance stay pinned to it either way).
    ///
    /// # Errors
    /// As [`Runtime::load`].
    pub fn load_pooled(
        &self,
        name: &str,
        file: &Path,
        trust: &Trust,
        priority: Priority,
        settings: Vec<(String, String)>,
        instances: usize,
    ) -> Result<WasmProvider, LoadError> {
        let actual = self.check_pin(file, trust)?;
        self.load_admitted(name, file, &actual, priority, settings, instances)
    }

    /// The component file's sha256, when it is the one `trust` names: hashed as it is read,
    /// never through a symlink (a link to /etc/shadow must not even be hashed).
    ///
    /// With the cache on, a file whose [`fsio::Stamp`] (device, inode, size, mtime, ctime) is
    /// the one this host recorded, beside the cache's digests, when it last hashed that file to
    /// this same digest is not hashed again. The stamp is recorded only when the file did not
    /// change while being hashed and had been still for a while before ([`fsio::Stamp::settled`]).
    /// Either way the code that runs stays bound to the pin: an artifact is found by the pinned
    /// digest and checked against its own record, and a compile re-reads and re-hashes the file.
    ///
    /// # Errors
    /// The file cannot be read, or its digest is not the pinned one.
    pub(super) fn check_pin(&self, file: &Path, trust: &Trust) -> Result<String, LoadError> {
        let expected = match trust {
            Trust::Pinned(d) | Trust::Manifest(d) => d.to_ascii_lowercase(),
        };
        let (opened, before) = fsio::open_stamped(file, file_limits::COMPONENT, "component")
            .map_err(|e| component_err(file, e.message))?;
        let stamps = self.cache.as_ref().map(|c| (c, c.key(&expected)));
        if let Some((cache, key)) = &stamps
            && cache.stamp_matches(key, file, &expected, &before)
        {
            return Ok(expected);
        }
        let (digest, after) = fsio::sha256_open(file, opened, file_limits::COMPONENT, "component")
            .map_err(|e| component_err(file, e.message))?;
        let actual = hex::encode(digest);
        if actual != expected {
            return Err(LoadError::PinMismatch { file: file.to_path_buf(), expected, actual });
        }
        if let Some((cache, key)) = &stamps
            && before == after
            && after.settled()
        {
            cache.store_stamp(key, file, &actual, &after);
        }
        Ok(actual)
    }

    /// As [`Runtime::load_pooled`], for a component whose pin was checked (its sha256 is
    /// `actual`): compiled (or taken from the cache), linked, instantiated and asked what it
    /// offers. What it says is recorded beside the cache's digests, for the next start to know
    /// it without running it.
    pub(super) fn load_admitted(
        &self,
        name: &str,
        file: &Path,
        actual: &str,
        priority: Priority,
        settings: Vec<(String, String)>,
        instances: usize,
    ) -> Result<WasmProvider, LoadError> {
        let actual = actual.to_string();
        let component = self.component(file, &actual)?;

        let world = self.check_imports_and_world(file, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| component_err(file, format!("cannot be linked: {e}")))?;
        let indices = world::Indices::new(&instance_pre, world).map_err(|e| {
            component_err(file, format!("does not implement the cryptohost:provider {} world: {e}", world.name()))
        })?;

        let mut provider = WasmProvider {
            shared: self.shared.clone(),
            pre: instance_pre,
            indices,
            descriptor: Descriptor {
                name: name.to_string(),
                reported_name: String::new(),
                version: String::new(),
                priority,
                origin: Origin::Component {
                    file: file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                    sha256: actual,
                    publisher: None,
                },
                capabilities: Vec::new(),
                world: Some(world),
            },
            slots: (0..instances.max(1))
                .map(|_| Slot { live: Mutex::new(None), generation: AtomicU64::new(0) })
                .collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
            waits: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            generations: AtomicU64::new(0),
            settings: Settings(settings),
        };
        provider.ask_metadata(file, world)?;
        self.record_descriptor(&provider.descriptor);
        Ok(provider)
    }
}

/// What `components inspect` shows of a component file.
#[derive(Debug)]
pub struct Inspection {
    pub sha256: String,
    pub size: u64,
    /// Its world, or why its exports make none.
    pub world: Result<crate::provider::World, String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// One line per import the host would refuse (anything but the `host` interface).
    pub refused_imports: Vec<String>,
}

impl Runtime {
    /// Instantiates any component under exactly the limits a provider instance gets (the same
    /// store: one memory-and-table budget, CPU deadline, stack cap) and calls its export `run`
    /// (no parameters, no results) when it has one. It links no host functions. This is how
    /// the sandbox is tested against hand-written hostile components.
    ///
    /// # Errors
    /// The component does not compile, does not instantiate, or faults; the message says
    /// which limit was hit.
    #[doc(hidden)]
    pub fn probe(&self, bytes: &[u8]) -> Result<(), String> {
        let shared = &self.shared;
        let component = Component::new(&shared.engine, bytes).map_err(|e| format!("does not compile: {e}"))?;
        let mut store = new_store(shared, "probe");
        let timeout = shared.limits.call_timeout;
        let instance = Linker::new(&shared.engine)
            .instantiate(&mut store, &component)
            .map_err(|e| format!("instantiation {}", describe_fault(&e, timeout, &shared.limits)))?;
        if let Ok(run) = instance.get_typed_func::<(), ()>(&mut store, "run") {
            run.call(&mut store, ()).map_err(|e| format!("run {}", describe_fault(&e, timeout, &shared.limits)))?;
        }
        Ok(())
    }
}

impl Runtime {
    /// Only the host interface may be imported (no WASI, no older contract), and the exports
    /// must make one of the worlds.
    fn check_imports_and_world(&self, file: &Path, component: &Component) -> Result<crate::provider::World, LoadError> {
        let ty = component.component_type();
        for (import, _) in ty.imports(&self.shared.engine) {
            if let Some(message) = world::older_contract(import) {
                return Err(component_err(file, message));
            }
            if !ALLOWED_IMPORTS.contains(&import) {
                return Err(component_err(
                    file,
                    format!(
                        "imports `{import}`; a provider may import only {} (refused: no WASI or other host access)",
                        ALLOWED_IMPORTS[0]
                    ),
                ));
            }
        }
        world::infer(&ty, &self.shared.engine).map_err(|m| component_err(file, m))
    }
}

/// The most algorithm claims (over all capabilities) a component's metadata may make.
pub const MAX_CLAIMS: usize = 256;
/// The longest name or version a component may report, and the longest algorithm name.
pub const MAX_INFO_TEXT: usize = 256;
pub const MAX_ALGORITHM_NAME: usize = 64;

/// Whether a component's metadata stays within [`MAX_CLAIMS`], [`MAX_INFO_TEXT`] and
/// [`MAX_ALGORITHM_NAME`]; the refusal in words.
pub(super) fn claims_bounded(name: &str, version: &str, lists: &[&[String]]) -> Result<(), String> {
    let claimed: usize = lists.iter().map(|l| l.len()).sum();
    if lists.len() > MAX_CLAIMS || claimed > MAX_CLAIMS {
        return Err(format!(
            "claims {claimed} algorithms in {} entries; at most {MAX_CLAIMS} are accepted",
            lists.len()
        ));
    }
    for (what, text) in [("name", name), ("version", version)] {
        if text.len() > MAX_INFO_TEXT {
            return Err(format!("reports a {what} of {} bytes; at most {MAX_INFO_TEXT} are accepted", text.len()));
        }
    }
    if let Some(long) = lists.iter().flat_map(|l| l.iter()).find(|a| a.len() > MAX_ALGORITHM_NAME) {
        return Err(format!(
            "claims an algorithm name of {} bytes; at most {MAX_ALGORITHM_NAME} are accepted",
            long.len()
        ));
    }
    Ok(())
}

impl WasmProvider {
    /// Asks the component who it is and what it offers. What it says it can do must be within
    /// its world: a verifier that claims to sign is lying about something, and is refused.
    fn ask_metadata(&mut self, file: &Path, world: crate::provider::World) -> Result<(), LoadError> {
        let timeout = self.shared.limits.call_timeout;
        let (info, _) = self
            .with_live(None, timeout, |live| live.bindings.metadata.call_info(&mut live.store))
            .map_err(|e| component_err(file, format!("metadata call failed: {e}")))?;
        // What a component claims is bounded: every routed call and `components check` go
        // over these lists, and the names reach logs, metrics labels and the audit log.
        let lists: Vec<&[String]> = info.capabilities.iter().map(|c| c.algorithms.as_slice()).collect();
        claims_bounded(&info.name, &info.version, &lists).map_err(|m| component_err(file, m))?;
        self.descriptor.reported_name = info.name;
        self.descriptor.version = info.version;
        self.descriptor.capabilities = info
            .capabilities
            .into_iter()
            .map(|c| CapabilityInfo { capability: c.capability.into(), algorithms: c.algorithms })
            .collect();
        if let Some(c) = self.descriptor.capabilities.iter().find(|c| !world.allows(c.capability)) {
            return Err(component_err(
                file,
                format!(
                    "is a {} world component but claims {} ({} world and up only)",
                    world.name(),
                    c.capability,
                    match c.capability {
                        crate::provider::Capability::Encryption => "the keystore",
                        _ => "the signer",
                    }
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod claims_tests {
    use super::*;

    #[test]
    fn claims_are_bounded_in_number_and_length() {
        let ok: Vec<String> = ["SHA-256", "ES256"].map(String::from).to_vec();
        assert!(claims_bounded("offline-verification", "0.1.0", &[&ok, &ok]).is_ok());
        let many: Vec<String> = vec!["SHA-256".into(); MAX_CLAIMS + 1];
        assert!(claims_bounded("p", "1", &[&many]).unwrap_err().contains("claims 257 algorithms"));
        let lists: Vec<&[String]> = vec![&ok[..1]; MAX_CLAIMS + 1];
        assert!(claims_bounded("p", "1", &lists).unwrap_err().contains("257 entries"));
        let long = vec!["A".repeat(MAX_ALGORITHM_NAME + 1)];
        assert!(claims_bounded("p", "1", &[&long]).unwrap_err().contains("algorithm name of 65 bytes"));
        let name = "n".repeat(MAX_INFO_TEXT + 1);
        assert!(claims_bounded(&name, "1", &[&ok]).unwrap_err().contains("name of 257 bytes"));
        assert!(claims_bounded("p", &name, &[&ok]).unwrap_err().contains("version of 257 bytes"));
    }
}
