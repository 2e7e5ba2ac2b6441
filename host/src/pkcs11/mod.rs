//! The HSM backend over PKCS#11 (`cryptoki`): a session pool per token, login once, multi-token
//! failover, keys by PKCS#11 URI, attribute checks before use, and reconnect after the module
//! or its sessions go away. Private and secret keys never leave the token.

mod der;
pub mod uri;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use serde::Serialize;
use sha2::Digest;
use zeroize::Zeroizing;

pub use uri::Pkcs11Uri;

use crate::error::ProviderError;
use crate::provider::{
    Capability, CapabilityInfo, CryptoProvider, Descriptor, KeyId, Origin, Priority, Sealed, SigFormat, SignInput,
    Verifier,
};

/// Where the user PIN comes from. Never the command line.
#[derive(Clone)]
pub enum PinSource {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Debug for PinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinSource::Env(v) => write!(f, "Env({v})"),
            PinSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// A token, by label or serial number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSpec {
    Label(String),
    Serial(String),
}

/// The `[hsm]` section of the configuration.
#[derive(Clone, Debug)]
pub struct HsmConfig {
    pub name: String,
    pub module: PathBuf,
    /// In failover order.
    pub tokens: Vec<TokenSpec>,
    pub pin: PinSource,
    pub pool_size: usize,
    pub priority: Priority,
    /// Require CKA_SENSITIVE=true and CKA_EXTRACTABLE=false on every key used.
    pub require_non_extractable: bool,
}

impl HsmConfig {
    fn read_pin(&self) -> Result<AuthPin, ProviderError> {
        let pin = match &self.pin {
            PinSource::Env(var) => std::env::var(var)
                .map_err(|_| ProviderError::Failed(format!("HSM PIN: environment variable {var} is not set")))?,
            PinSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ProviderError::Failed(format!("HSM PIN: cannot read {}: {e}", path.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        };
        if pin.is_empty() {
            return Err(ProviderError::Failed("HSM PIN is empty".into()));
        }
        Ok(AuthPin::from(pin))
    }
}

/// "C_Sign: CKR_KEY_TYPE_INCONSISTENT", from a cryptoki error.
fn ck_message(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: CKR_{}", screaming(&format!("{rv:?}"))),
        other => other.to_string(),
    }
}

fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// The session (or the whole module) went away: reconnect and retry once.
fn is_session_lost(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
        )
    )
}

/// The token itself is failing: try the next token.
fn is_token_failure(e: &CkError) -> bool {
    is_session_lost(e)
        || matches!(
            rv(e),
            Some(
                RvError::DeviceError
                    | RvError::DeviceMemory
                    | RvError::GeneralError
                    | RvError::SlotIdInvalid
                    | RvError::TokenNotRecognized
            )
        )
}

/// Why one attempt on one token failed.
enum OpError {
    Ck(CkError),
    /// A refusal that another token would not change (bad key attributes, bad input).
    Refused(ProviderError),
    /// The key is not on this token; another token may have it.
    Missing(String),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

/// Sessions of one token, opened once and reused; one thread at a time per session.
struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
    size: usize,
}

struct PoolState {
    idle: Vec<Session>,
    open: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    fn checkout(&self, open: impl FnOnce() -> Result<Session, CkError>) -> Result<Session, CkError> {
        let mut st = lock(&self.state);
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(s);
            }
            if st.open < self.size {
                st.open += 1;
                drop(st);
                return open().inspect_err(|_| self.forget());
            }
            st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn checkin(&self, s: Session) {
        lock(&self.state).idle.push(s);
        self.freed.notify_one();
    }

    /// A checked-out session was dropped (found invalid).
    fn forget(&self) {
        let mut st = lock(&self.state);
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }

    /// Drops every idle session (their handles are stale after a reconnect).
    fn clear(&self) {
        let mut st = lock(&self.state);
        let n = st.idle.len();
        st.idle.clear();
        st.open = st.open.saturating_sub(n);
        drop(st);
        self.freed.notify_all();
    }
}

struct Token {
    slot: Slot,
    label: String,
    serial: String,
    pool: Pool,
    logged_in: Mutex<bool>,
    /// (key reference, class) -> handle; cleared on reconnect.
    handles: Mutex<HashMap<(String, u64), ObjectHandle>>,
    /// Keys whose attributes already passed the checks for an algorithm ("handle/alg"): the
    /// attributes of a token object do not change under us, and reading them on every
    /// operation costs a C_GetAttributeValue round trip. Cleared on reconnect.
    checked: Mutex<std::collections::HashSet<String>>,
    health: Mutex<Health>,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Health {
    healthy: bool,
    last_error: Option<String>,
}

/// Status of one token, for `cryptohost hsm status`.
#[derive(Clone, Debug, Serialize)]
pub struct TokenStatus {
    pub label: String,
    pub serial: String,
    pub slot: u64,
    pub healthy: bool,
    pub last_error: Option<String>,
    pub sessions_open: usize,
    pub sessions_idle: usize,
}

/// One key on a token, for `cryptohost keys list`.
#[derive(Clone, Debug, Serialize)]
pub struct KeyListing {
    pub uri: String,
    pub class: String,
    pub key_type: String,
    pub token_serial: String,
}

struct Connection {
    ctx: Pkcs11,
    tokens: Vec<Token>,
}

thread_local! {
    /// The token that served this thread's last operation (for the audit log).
    static LAST_TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The PKCS#11 backend.
pub struct Pkcs11Provider {
    config: HsmConfig,
    descriptor: Descriptor,
    conn: RwLock<Option<Connection>>,
    /// Serializes connect/reconnect.
    connecting: Mutex<()>,
}

const SIGNING: [&str; 8] = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const ENCRYPTION: [&str; 2] = ["A128GCM", "A256GCM"];

/// The AES key length (bytes) of an AES-GCM algorithm.
fn aes_key_len(algorithm: &str) -> Result<u64, ProviderError> {
    match algorithm {
        "A128GCM" => Ok(16),
        "A256GCM" => Ok(32),
        other => Err(ProviderError::Unsupported(format!("the PKCS#11 backend does not encrypt with {other}"))),
    }
}

fn hash_of(alg: &str) -> Result<&'static str, ProviderError> {
    crate::alg::signature_hash(alg).ok_or_else(|| ProviderError::Unsupported(format!("unknown algorithm {alg:?}")))
}

fn host_digest(hash: &str, data: &[u8]) -> Vec<u8> {
    match hash {
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => sha2::Sha256::digest(data).to_vec(),
    }
}

fn mech_type_for(hash: &str) -> (MechanismType, PkcsMgfType, u64) {
    match hash {
        "SHA-384" => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
        "SHA-512" => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
        _ => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
    }
}

impl Pkcs11Provider {
    /// A backend for `config`; nothing is loaded until the first operation (or `connect`).
    pub fn new(config: HsmConfig) -> Pkcs11Provider {
        let descriptor = Descriptor {
            name: config.name.clone(),
            reported_name: "pkcs11".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            priority: config.priority,
            origin: Origin::Native { module: config.module.display().to_string() },
            capabilities: vec![
                CapabilityInfo {
                    capability: Capability::Signing,
                    algorithms: SIGNING.iter().map(|s| s.to_string()).collect(),
                },
                CapabilityInfo {
                    capability: Capability::Encryption,
                    algorithms: ENCRYPTION.iter().map(|s| s.to_string()).collect(),
                },
            ],
        };
        Pkcs11Provider { config, descriptor, conn: RwLock::new(None), connecting: Mutex::new(()) }
    }

    /// The serial of the token that served this thread's last operation.
    pub fn last_token_serial() -> Option<String> {
        LAST_TOKEN.with_borrow(|t| t.clone())
    }

    /// Loads the module, initializes it, finds the configured tokens, and logs in (the
    /// seed's ConnectAsync). Idempotent.
    ///
    /// # Errors
    /// The module cannot be loaded or initialized, or no configured token is present.
    pub fn connect(&self) -> Result<(), ProviderError> {
        let _g = lock(&self.connecting);
        if self.conn.read().unwrap_or_else(PoisonError::into_inner).is_some() {
            return Ok(());
        }
        let conn = self.open_connection(None)?;
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        // Log in now so a wrong PIN shows up here, once.
        self.with_token_sessions(|_, _| Ok(()))
    }

    /// Closes every session and finalizes the module (the seed's DisconnectAsync).
    pub fn disconnect(&self) {
        let _g = lock(&self.connecting);
        if let Some(conn) = self.conn.write().unwrap_or_else(PoisonError::into_inner).take() {
            for t in &conn.tokens {
                if let Some(s) = lock(&t.pool.state).idle.last() {
                    let _ = s.logout();
                }
                t.pool.clear();
            }
            let _ = conn.ctx.finalize();
        }
    }

    /// Health of every configured token (connecting first if needed).
    pub fn status(&self) -> Vec<TokenStatus> {
        let guard = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = guard.as_ref() else { return Vec::new() };
        conn.tokens
            .iter()
            .map(|t| {
                let h = lock(&t.health).clone();
                let st = lock(&t.pool.state);
                TokenStatus {
                    label: t.label.clone(),
                    serial: t.serial.clone(),
                    slot: t.slot.id(),
                    healthy: h.healthy,
                    last_error: h.last_error,
                    sessions_open: st.open,
                    sessions_idle: st.idle.len(),
                }
            })
            .collect()
    }

    /// Every private and secret key on the configured tokens, as PKCS#11 URIs.
    ///
    /// # Errors
    /// The HSM cannot be reached or logged in to.
    pub fn list_keys(&self) -> Result<Vec<KeyListing>, ProviderError> {
        self.ensure_connected()?;
        let guard = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = guard.as_ref() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for token in &conn.tokens {
            let listed = self.attempt(token, &conn.ctx, &|s: &Session, t: &Token| {
                let mut found = Vec::new();
                for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
                    for h in s.find_objects(&[Attribute::Class(class), Attribute::Token(true)])? {
                        let (mut label, mut id, mut kt) = (Vec::new(), Vec::new(), None);
                        for a in
                            s.get_attributes(h, &[AttributeType::Label, AttributeType::Id, AttributeType::KeyType])?
                        {
                            match a {
                                Attribute::Label(l) => label = l,
                                Attribute::Id(i) => id = i,
                                Attribute::KeyType(k) => kt = Some(k),
                                _ => {}
                            }
                        }
                        let uri = Pkcs11Uri {
                            token: Some(t.label.clone()),
                            object: Some(String::from_utf8_lossy(&label).into_owned()),
                            id: (!id.is_empty()).then_some(id),
                            ..Default::default()
                        };
                        found.push(KeyListing {
                            uri: uri.to_uri(),
                            class: class_name(class).into(),
                            key_type: format!("{}", kt.map(|k| format!("{k}")).unwrap_or_default()),
                            token_serial: t.serial.clone(),
                        });
                    }
                }
                Ok(found)
            });
            match listed {
                Ok(mut v) => out.append(&mut v),
                Err((OpError::Refused(e), _)) => return Err(e),
                Err((OpError::Ck(e), label)) => {
                    return Err(ProviderError::Failed(format!("{label}: {}", ck_message(&e))));
                }
                Err((OpError::Missing(m), _)) => return Err(ProviderError::KeyNotFound(m)),
            }
        }
        Ok(out)
    }

    fn open_connection(&self, reuse: Option<Pkcs11>) -> Result<Connection, ProviderError> {
        let ctx = match reuse {
            Some(ctx) => ctx,
            None => Pkcs11::new(&self.config.module).map_err(|e| {
                ProviderError::Failed(format!("cannot load PKCS#11 module {}: {e}", self.config.module.display()))
            })?,
        };
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
            Err(e) => return Err(ProviderError::Failed(ck_message(&e))),
        }
        let slots = ctx.get_slots_with_token().map_err(|e| ProviderError::Failed(ck_message(&e)))?;
        let mut found = Vec::new();
        for (slot, info) in slots.into_iter().filter_map(|s| ctx.get_token_info(s).ok().map(|i| (s, i))) {
            found.push((slot, info.label().trim().to_string(), info.serial_number().trim().to_string()));
        }
        let mut tokens = Vec::new();
        for spec in &self.config.tokens {
            let hit = found.iter().find(|(_, label, serial)| match spec {
                TokenSpec::Label(l) => l == label,
                TokenSpec::Serial(s) => s == serial,
            });
            match hit {
                Some((slot, label, serial)) => tokens.push(Token {
                    slot: *slot,
                    label: label.clone(),
                    serial: serial.clone(),
                    pool: Pool {
                        state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
                        freed: Condvar::new(),
                        size: self.config.pool_size,
                    },
                    logged_in: Mutex::new(false),
                    handles: Mutex::new(HashMap::new()),
                    checked: Mutex::new(std::collections::HashSet::new()),
                    health: Mutex::new(Health { healthy: true, last_error: None }),
                }),
                None => log::warn!("HSM: configured token {spec:?} is not present"),
            }
        }
        if tokens.is_empty() {
            let present: Vec<_> = found.iter().map(|(_, l, s)| format!("{l} (serial {s})")).collect();
            return Err(ProviderError::Failed(format!(
                "none of the configured tokens {:?} is present in {} (present: {})",
                self.config.tokens,
                self.config.module.display(),
                if present.is_empty() { "none".to_string() } else { present.join(", ") }
            )));
        }
        Ok(Connection { ctx, tokens })
    }

    /// After a lost session or a finalized module: drop stale sessions and handles,
    /// re-initialize if needed, and let the next checkout log in again.
    fn reconnect(&self, module_gone: bool) -> Result<(), ProviderError> {
        let _g = lock(&self.connecting);
        let mut guard = self.conn.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = guard.as_ref() {
            for t in &conn.tokens {
                t.pool.clear();
                lock(&t.handles).clear();
                lock(&t.checked).clear();
                *lock(&t.logged_in) = false;
            }
        }
        if module_gone {
            let ctx = guard.take().map(|c| c.ctx);
            *guard = Some(self.open_connection(ctx)?);
        }
        Ok(())
    }

    fn ensure_connected(&self) -> Result<(), ProviderError> {
        if self.conn.read().unwrap_or_else(PoisonError::into_inner).is_none() {
            self.connect()?;
        }
        Ok(())
    }

    fn login(&self, token: &Token, session: &Session) -> Result<(), OpError> {
        let mut logged = lock(&token.logged_in);
        if *logged {
            return Ok(());
        }
        let pin = self.config.read_pin().map_err(OpError::Refused)?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) => {}
            Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => {}
            // A wrong PIN is final: no retry, no failover (that is how tokens get locked).
            Err(e)
                if matches!(
                    rv(&e),
                    Some(
                        RvError::PinIncorrect
                            | RvError::PinLocked
                            | RvError::PinExpired
                            | RvError::PinInvalid
                            | RvError::PinLenRange
                    )
                ) =>
            {
                return Err(OpError::Refused(ProviderError::Failed(format!(
                    "login to token {:?} (serial {}) failed: {}",
                    token.label,
                    token.serial,
                    ck_message(&e)
                ))));
            }
            Err(e) => return Err(OpError::Ck(e)),
        }
        *logged = true;
        Ok(())
    }

    /// Runs `f` with a session on each eligible token in failover order until one succeeds.
    fn run<T>(
        &self,
        what: &str,
        on_token: Option<&Pkcs11Uri>,
        f: impl Fn(&Session, &Token) -> Result<T, OpError>,
    ) -> Result<T, ProviderError> {
        self.ensure_connected()?;
        let mut failures = Vec::new();
        let mut index = 0;
        loop {
            let attempt = {
                let guard = self.conn.read().unwrap_or_else(PoisonError::into_inner);
                let Some(conn) = guard.as_ref() else {
                    return Err(ProviderError::Failed("HSM disconnected".into()));
                };
                let Some(token) = conn.tokens.get(index) else { break };
                let eligible = on_token.is_none_or(|u| {
                    u.token.as_ref().is_none_or(|l| *l == token.label)
                        && u.serial.as_ref().is_none_or(|s| *s == token.serial)
                });
                if !eligible {
                    index += 1;
                    continue;
                }
                self.attempt(token, &conn.ctx, &f)
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err((OpError::Refused(e), _)) => return Err(e),
                Err((OpError::Missing(m), label)) => failures.push(format!("{label}: {m}")),
                Err((OpError::Ck(e), label))
                    if is_session_lost(&e)
                        && !failures.iter().any(|f: &String| f.starts_with(&format!("{label}: retried"))) =>
                {
                    // Reconnect and retry this token once.
                    log::warn!("HSM: {what} on {label}: {}; reconnecting", ck_message(&e));
                    failures.push(format!("{label}: retried after {}", ck_message(&e)));
                    self.reconnect(rv(&e) == Some(RvError::CryptokiNotInitialized))?;
                    continue;
                }
                Err((OpError::Ck(e), label)) if is_token_failure(&e) => {
                    log::warn!("HSM: {what} on {label} failed ({}); trying the next token", ck_message(&e));
                    failures.push(format!("{label}: {}", ck_message(&e)));
                }
                Err((OpError::Ck(e), _)) => return Err(ProviderError::Failed(ck_message(&e))),
            }
            index += 1;
        }
        Err(ProviderError::KeyNotFound(format!("{what}: no configured token could serve it ({})", failures.join("; "))))
    }

    fn attempt<T>(
        &self,
        token: &Token,
        ctx: &Pkcs11,
        f: &impl Fn(&Session, &Token) -> Result<T, OpError>,
    ) -> Result<T, (OpError, String)> {
        let label = format!("token {:?}", token.label);
        let session =
            token.pool.checkout(|| ctx.open_rw_session(token.slot)).map_err(|e| (OpError::Ck(e), label.clone()))?;
        let result = self.login(token, &session).and_then(|()| f(&session, token));
        let mut health = lock(&token.health);
        match &result {
            Err(OpError::Ck(e)) if is_token_failure(e) => {
                // The session is suspect: drop it rather than hand it to the next caller.
                drop(session);
                token.pool.forget();
                health.healthy = false;
                health.last_error = Some(ck_message(e));
            }
            _ => {
                token.pool.checkin(session);
                if result.is_ok() {
                    health.healthy = true;
                    LAST_TOKEN.with_borrow_mut(|t| *t = Some(token.serial.clone()));
                }
            }
        }
        drop(health);
        result.map_err(|e| (e, label))
    }

    /// Logs in on every token (used by `connect` so that a wrong PIN is reported at once).
    fn with_token_sessions(&self, f: impl Fn(&Session, &Token) -> Result<(), OpError>) -> Result<(), ProviderError> {
        let guard = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = guard.as_ref() else { return Ok(()) };
        for token in &conn.tokens {
            match self.attempt(token, &conn.ctx, &f) {
                Ok(()) => {}
                Err((OpError::Refused(e), _)) => return Err(e),
                Err((OpError::Ck(e), label)) => log::warn!("HSM: {label}: {}", ck_message(&e)),
                Err((OpError::Missing(m), label)) => log::warn!("HSM: {label}: {m}"),
            }
        }
        Ok(())
    }

    /// Finds (and caches) the object a URI names, of `class`, on `token`.
    fn find(
        &self,
        session: &Session,
        token: &Token,
        uri: &Pkcs11Uri,
        class: ObjectClass,
    ) -> Result<ObjectHandle, OpError> {
        let cache_key = (
            format!("{}|{}", uri.object.as_deref().unwrap_or(""), hex::encode(uri.id.as_deref().unwrap_or(&[]))),
            u64::from(class),
        );
        if let Some(h) = lock(&token.handles).get(&cache_key) {
            return Ok(*h);
        }
        let mut template = vec![Attribute::Class(class), Attribute::Token(true)];
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = session.find_objects(&template)?;
        match found.as_slice() {
            [one] => {
                lock(&token.handles).insert(cache_key, *one);
                Ok(*one)
            }
            [] => Err(OpError::Missing(format!("no {} {uri}", class_name(class)))),
            many => Err(OpError::Refused(ProviderError::InvalidKey(format!(
                "{uri} matches {} {} objects on token {:?}; add id= to make it unique",
                many.len(),
                class_name(class),
                token.label
            )))),
        }
    }

    /// Checks a private key against the algorithm before it is used.
    fn check_key(
        &self,
        session: &Session,
        token: &Token,
        handle: ObjectHandle,
        uri: &Pkcs11Uri,
        alg: &str,
    ) -> Result<(), OpError> {
        let memo = format!("{handle:?}/{alg}");
        if lock(&token.checked).contains(&memo) {
            return Ok(());
        }
        self.check_key_attributes(session, handle, uri, alg)?;
        lock(&token.checked).insert(memo);
        Ok(())
    }

    fn check_key_attributes(
        &self,
        session: &Session,
        handle: ObjectHandle,
        uri: &Pkcs11Uri,
        alg: &str,
    ) -> Result<(), OpError> {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Sign,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Modulus,
                AttributeType::EcParams,
            ],
        )?;
        let refuse =
            |why: String| Err(OpError::Refused(ProviderError::InvalidKey(format!("{uri} refused for {alg}: {why}"))));
        let mut key_type = None;
        let (mut sign, mut sensitive, mut extractable) = (false, false, true);
        let (mut modulus_bits, mut params) = (0usize, Vec::new());
        for a in attrs {
            match a {
                Attribute::KeyType(k) => key_type = Some(k),
                Attribute::Sign(b) => sign = b,
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                Attribute::Modulus(m) => modulus_bits = m.iter().skip_while(|&&b| b == 0).count() * 8,
                Attribute::EcParams(p) => params = p,
                _ => {}
            }
        }
        match (alg, key_type) {
            ("ES256", Some(KeyType::EC)) if params == der::P256_PARAMS => {}
            ("ES384", Some(KeyType::EC)) if params == der::P384_PARAMS => {}
            ("ES256" | "ES384", Some(KeyType::EC)) => {
                return refuse(format!("CKA_EC_PARAMS is not the curve {alg} needs"));
            }
            (a, Some(KeyType::RSA)) if a.starts_with("RS") || a.starts_with("PS") => {
                if modulus_bits < 2048 {
                    return refuse(format!("CKA_MODULUS is {modulus_bits} bits; at least 2048 are required"));
                }
            }
            (_, k) => return refuse(format!("CKA_KEY_TYPE {k:?} does not fit {alg}")),
        }
        if !sign {
            return refuse("CKA_SIGN is false".into());
        }
        if self.config.require_non_extractable {
            if !sensitive {
                return refuse("CKA_SENSITIVE is false (set require_non_extractable = false to allow)".into());
            }
            if extractable {
                return refuse("CKA_EXTRACTABLE is true (set require_non_extractable = false to allow)".into());
            }
        }
        Ok(())
    }

    fn check_secret(
        &self,
        session: &Session,
        handle: ObjectHandle,
        uri: &str,
        alg: &str,
        for_encrypt: bool,
    ) -> Result<(), OpError> {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::ValueLen,
                AttributeType::Sensitive,
                AttributeType::Extractable,
            ],
        )?;
        let want_len = aes_key_len(alg).map_err(OpError::Refused)?;
        let refuse =
            |why: String| Err(OpError::Refused(ProviderError::InvalidKey(format!("{uri} refused for {alg}: {why}"))));
        let (mut ok_type, mut enc, mut dec, mut len, mut sensitive, mut extractable) =
            (false, false, false, 0u64, false, true);
        for a in attrs {
            match a {
                Attribute::KeyType(k) => ok_type = k == KeyType::AES,
                Attribute::Encrypt(b) => enc = b,
                Attribute::Decrypt(b) => dec = b,
                Attribute::ValueLen(l) => len = l.into(),
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                _ => {}
            }
        }
        if !ok_type {
            return refuse("CKA_KEY_TYPE is not CKK_AES".into());
        }
        if len != want_len {
            return refuse(format!("CKA_VALUE_LEN is {len} bytes; {alg} needs {want_len}"));
        }
        if for_encrypt && !enc {
            return refuse("CKA_ENCRYPT is false".into());
        }
        if !for_encrypt && !dec {
            return refuse("CKA_DECRYPT is false".into());
        }
        if self.config.require_non_extractable && (!sensitive || extractable) {
            return refuse(if extractable {
                "CKA_EXTRACTABLE is true".into()
            } else {
                "CKA_SENSITIVE is false".into()
            });
        }
        Ok(())
    }

    fn generate_pair(&self, session: &Session, uri: &Pkcs11Uri, alg: &str, rsa_bits: u32) -> Result<(), OpError> {
        let label = uri.object.clone().unwrap_or_default().into_bytes();
        let id = uri.id.clone().unwrap_or_else(|| sha2::Sha256::digest(&label)[..8].to_vec());
        let common_pub = vec![
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let common_priv = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(label),
            Attribute::Id(id),
        ];
        let (mech, mut pub_t) = match alg {
            "ES256" => (Mechanism::EccKeyPairGen, vec![Attribute::EcParams(der::P256_PARAMS.to_vec())]),
            "ES384" => (Mechanism::EccKeyPairGen, vec![Attribute::EcParams(der::P384_PARAMS.to_vec())]),
            _ => {
                let bits = if rsa_bits == 0 { 3072 } else { rsa_bits };
                if !(2048..=8192).contains(&bits) {
                    return Err(OpError::Refused(ProviderError::InvalidInput(format!(
                        "RSA key size {bits} not supported (2048..=8192)"
                    ))));
                }
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![Attribute::ModulusBits(u64::from(bits).into()), Attribute::PublicExponent(vec![1, 0, 1])],
                )
            }
        };
        pub_t.extend(common_pub);
        session.generate_key_pair(&mech, &pub_t, &common_priv)?;
        Ok(())
    }

    fn public_spki(&self, session: &Session, token: &Token, uri: &Pkcs11Uri) -> Result<Vec<u8>, OpError> {
        let handle = self.find(session, token, uri, ObjectClass::PUBLIC_KEY)?;
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )?;
        let (mut kt, mut n, mut e, mut params, mut point) = (None, Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for a in attrs {
            match a {
                Attribute::KeyType(k) => kt = Some(k),
                Attribute::Modulus(v) => n = v,
                Attribute::PublicExponent(v) => e = v,
                Attribute::EcParams(v) => params = v,
                Attribute::EcPoint(v) => point = v,
                _ => {}
            }
        }
        match kt {
            Some(KeyType::RSA) => Ok(der::rsa_spki(&n, &e)),
            Some(KeyType::EC) => {
                der::ec_spki(&params, &point).map_err(|m| OpError::Refused(ProviderError::InvalidKey(m)))
            }
            other => Err(OpError::Refused(ProviderError::InvalidKey(format!(
                "{uri}: public key type {other:?} not supported"
            )))),
        }
    }
}

fn class_name(c: ObjectClass) -> &'static str {
    if c == ObjectClass::PRIVATE_KEY {
        "private key"
    } else if c == ObjectClass::PUBLIC_KEY {
        "public key"
    } else {
        "secret key"
    }
}

fn parse_key(key: &KeyId) -> Result<Pkcs11Uri, ProviderError> {
    Pkcs11Uri::parse(&key.0).map_err(ProviderError::InvalidKey)
}

fn unsupported(what: &str) -> ProviderError {
    ProviderError::Unsupported(format!("the PKCS#11 backend does not offer {what}"))
}

impl CryptoProvider for Pkcs11Provider {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn digest(&self, _algorithm: &str, _data: &[u8]) -> Result<Vec<u8>, ProviderError> {
        Err(unsupported("hashing"))
    }

    fn digest_reader(&self, _algorithm: &str, _reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError> {
        Err(unsupported("hashing"))
    }

    fn open_verifier(&self, _algorithm: &str, _spki_der: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError> {
        Err(unsupported("verification (it never needs the HSM)"))
    }

    fn import_pkcs8(&self, _pkcs8_der: &[u8]) -> Result<KeyId, ProviderError> {
        Err(unsupported("importing private keys"))
    }

    fn generate(&self, _algorithm: &str, _rsa_bits: u32, _exportable: bool) -> Result<KeyId, ProviderError> {
        Err(unsupported("anonymous keys: name the key with a pkcs11: URI"))
    }

    fn public_key(&self, key: &KeyId) -> Result<Vec<u8>, ProviderError> {
        let uri = parse_key(key)?;
        self.run(&format!("public key of {uri}"), Some(&uri), |s, t| self.public_spki(s, t, &uri))
    }

    fn export_pkcs8(&self, _key: &KeyId) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        Err(ProviderError::InvalidKey("HSM keys never leave the token".into()))
    }

    fn sign(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<Vec<u8>, ProviderError> {
        if !SIGNING.contains(&algorithm) {
            return Err(ProviderError::Unsupported(format!("the PKCS#11 backend does not sign {algorithm}")));
        }
        let uri = parse_key(key)?;
        let hash = hash_of(algorithm)?;
        let digest = match input {
            SignInput::Message(m) => host_digest(hash, m),
            SignInput::Digest(d) => {
                let want = host_digest(hash, b"").len();
                if d.len() != want {
                    return Err(ProviderError::InvalidInput(format!(
                        "{algorithm} needs a {want}-byte {hash} digest, got {}",
                        d.len()
                    )));
                }
                d.to_vec()
            }
        };
        self.run(&format!("sign with {uri}"), Some(&uri), |session, token| {
            let handle = self.find(session, token, &uri, ObjectClass::PRIVATE_KEY)?;
            self.check_key(session, token, handle, &uri, algorithm)?;
            if algorithm.starts_with("ES") {
                let raw = session.sign(&Mechanism::Ecdsa, handle, &digest)?;
                return match format {
                    SigFormat::P1363 => Ok(raw),
                    SigFormat::Der => {
                        der::ecdsa_p1363_to_der(&raw).map_err(|m| OpError::Refused(ProviderError::Failed(m)))
                    }
                };
            }
            if algorithm.starts_with("RS") {
                let mut info = der::digest_info_prefix(hash).unwrap_or_default().to_vec();
                info.extend_from_slice(&digest);
                return Ok(session.sign(&Mechanism::RsaPkcs, handle, &info)?);
            }
            let (hash_alg, mgf, s_len) = mech_type_for(hash);
            let params = PkcsPssParams { hash_alg, mgf, s_len: s_len.into() };
            Ok(session.sign(&Mechanism::RsaPkcsPss(params), handle, &digest)?)
        })
    }

    fn named_key(&self, name: &str, algorithm: &str, rsa_bits: u32, create: bool) -> Result<KeyId, ProviderError> {
        if !SIGNING.contains(&algorithm) {
            return Err(ProviderError::Unsupported(format!("the PKCS#11 backend does not sign {algorithm}")));
        }
        let uri = Pkcs11Uri::parse(name).map_err(ProviderError::InvalidKey)?;
        let found = self.run(&format!("find {uri}"), Some(&uri), |s, t| {
            self.find(s, t, &uri, ObjectClass::PRIVATE_KEY).map(|_| ())
        });
        match found {
            Ok(()) => Ok(KeyId(uri.to_uri())),
            Err(ProviderError::KeyNotFound(_)) if create => {
                if uri.object.is_none() {
                    return Err(ProviderError::InvalidKey("a key to generate needs object= (its label)".into()));
                }
                let generated = self.run(&format!("generate {uri}"), Some(&uri), |s, _| {
                    self.generate_pair(s, &uri, algorithm, rsa_bits)
                });
                generated.map(|()| KeyId(uri.to_uri()))
            }
            Err(e) => Err(e),
        }
    }

    fn named_secret(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError> {
        let len = aes_key_len(algorithm)?;
        let uri = Pkcs11Uri::parse(name).map_err(ProviderError::InvalidKey)?;
        let found = self
            .run(&format!("find {uri}"), Some(&uri), |s, t| self.find(s, t, &uri, ObjectClass::SECRET_KEY).map(|_| ()));
        match found {
            Ok(()) => Ok(KeyId(uri.to_uri())),
            Err(ProviderError::KeyNotFound(_)) if create => {
                let label = uri
                    .object
                    .clone()
                    .ok_or_else(|| ProviderError::InvalidKey("a key to generate needs object= (its label)".into()))?;
                self.run(&format!("generate {uri}"), Some(&uri), |s, _| {
                    let id = uri.id.clone().unwrap_or_else(|| sha2::Sha256::digest(label.as_bytes())[..8].to_vec());
                    s.generate_key(
                        &Mechanism::AesKeyGen,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::Token(true),
                            Attribute::Private(true),
                            Attribute::Sensitive(true),
                            Attribute::Extractable(false),
                            Attribute::Encrypt(true),
                            Attribute::Decrypt(true),
                            Attribute::ValueLen(len.into()),
                            Attribute::Label(label.clone().into_bytes()),
                            Attribute::Id(id),
                        ],
                    )?;
                    Ok(())
                })?;
                Ok(KeyId(uri.to_uri()))
            }
            Err(e) => Err(e),
        }
    }

    fn import_secret(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError> {
        let want = aes_key_len(algorithm)? as usize;
        if key.len() != want {
            return Err(ProviderError::InvalidKey(format!("{algorithm} needs a {want}-byte key, got {}", key.len())));
        }
        // A session object (CKA_TOKEN false): it vanishes with the application, and is still
        // sensitive and non-extractable once created.
        let label = format!("cryptohost-import-{}", hex::encode(&sha2::Sha256::digest(key)[..8]));
        let uri = Pkcs11Uri { object: Some(label.clone()), ..Default::default() };
        self.run("import secret", None, |s, _| {
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Value(key.to_vec()),
                Attribute::Label(label.clone().into_bytes()),
            ])?;
            Ok(())
        })?;
        Ok(KeyId(format!("{};type=secret-key;session", uri.to_uri())))
    }

    fn encrypt(&self, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, ProviderError> {
        let (uri, session_object) = secret_uri(key)?;
        self.run(&format!("encrypt with {uri}"), Some(&uri), |s, t| {
            let handle = self.find_secret(s, t, &uri, session_object)?;
            let alg = self.secret_alg(s, handle)?;
            self.check_secret(s, handle, &uri.to_uri(), alg, true)?;
            // A fresh 96-bit nonce from the OS CSPRNG for every encryption.
            let mut nonce = [0u8; 12];
            getrandom::fill(&mut nonce).map_err(|e| OpError::Refused(ProviderError::Failed(format!("OS RNG: {e}"))))?;
            let mut iv = nonce;
            let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
            let ciphertext = s.encrypt(&Mechanism::AesGcm(params), handle, plaintext)?;
            Ok(Sealed { nonce: nonce.to_vec(), ciphertext })
        })
    }

    fn decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        if nonce.len() != 12 {
            return Err(ProviderError::InvalidInput(format!("AES-GCM nonce must be 12 bytes, got {}", nonce.len())));
        }
        if ciphertext.len() < 16 {
            return Err(ProviderError::InvalidInput("AES-GCM ciphertext is shorter than its 16-byte tag".into()));
        }
        let (uri, session_object) = secret_uri(key)?;
        self.run(&format!("decrypt with {uri}"), Some(&uri), |s, t| {
            let handle = self.find_secret(s, t, &uri, session_object)?;
            let alg = self.secret_alg(s, handle)?;
            self.check_secret(s, handle, &uri.to_uri(), alg, false)?;
            let mut iv = [0u8; 12];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
            match s.decrypt(&Mechanism::AesGcm(params), handle, ciphertext) {
                Ok(p) => Ok(Zeroizing::new(p)),
                // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR; others use
                // CKR_ENCRYPTED_DATA_INVALID. Either way it is bad input, not a failing token.
                Err(e)
                    if matches!(
                        rv(&e),
                        Some(
                            RvError::EncryptedDataInvalid
                                | RvError::EncryptedDataLenRange
                                | RvError::GeneralError
                                | RvError::FunctionFailed
                        )
                    ) =>
                {
                    Err(OpError::Refused(ProviderError::InvalidInput(format!(
                        "AES-GCM authentication failed (wrong key, nonce, AAD or tag): {}",
                        ck_message(&e)
                    ))))
                }
                Err(e) => Err(OpError::Ck(e)),
            }
        })
    }
}

/// A secret key id: a URI, plus `;session` for imported session objects.
fn secret_uri(key: &KeyId) -> Result<(Pkcs11Uri, bool), ProviderError> {
    let (text, session) = match key.0.strip_suffix(";session") {
        Some(t) => (t, true),
        None => (key.0.as_str(), false),
    };
    Ok((Pkcs11Uri::parse(text).map_err(ProviderError::InvalidKey)?, session))
}

impl Pkcs11Provider {
    fn find_secret(
        &self,
        s: &Session,
        t: &Token,
        uri: &Pkcs11Uri,
        session_object: bool,
    ) -> Result<ObjectHandle, OpError> {
        if !session_object {
            return self.find(s, t, uri, ObjectClass::SECRET_KEY);
        }
        let template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(false),
            Attribute::Label(uri.object.clone().unwrap_or_default().into_bytes()),
        ];
        s.find_objects(&template)?.first().copied().ok_or_else(|| OpError::Missing(format!("no session secret {uri}")))
    }

    fn secret_alg(&self, s: &Session, handle: ObjectHandle) -> Result<&'static str, OpError> {
        for a in s.get_attributes(handle, &[AttributeType::ValueLen])? {
            if let Attribute::ValueLen(l) = a {
                return Ok(if u64::from(l) == 16 { "A128GCM" } else { "A256GCM" });
            }
        }
        Ok("A256GCM")
    }
}
