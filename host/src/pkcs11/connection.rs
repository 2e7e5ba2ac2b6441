//! Connecting to the module and its tokens, login (never again after a refused PIN), failover, reconnect.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use super::Pkcs11Provider;
use super::errors::{OpError, ck_message, is_pin_refused, is_session_lost, is_token_failure, rv};
use super::pool::{Pool, lock};
use crate::error::ProviderError;
use crate::keyref::Pkcs11Uri;

/// One configured token found in the module, with its sessions and caches.
pub(super) struct Token {
    pub(super) slot: Slot,
    pub(super) label: String,
    pub(super) serial: String,
    pub(super) pool: Pool,
    logged_in: Mutex<bool>,
    /// (key reference, class) -> handle; cleared on reconnect.
    pub(super) handles: Mutex<HashMap<(String, u64), ObjectHandle>>,
    /// Keys whose attributes already passed the checks for an algorithm ("handle/alg"): the
    /// attributes of a token object do not change under us, and reading them on every
    /// operation costs a C_GetAttributeValue round trip. Cleared on reconnect.
    pub(super) checked: Mutex<HashSet<String>>,
    health: Mutex<Health>,
}

#[derive(Clone, Debug, Default)]
struct Health {
    healthy: bool,
    last_error: Option<String>,
}

/// Status of one configured token, for `cryptohost hsm status` (the wire schema's type).
pub use cryptohost_client::api::TokenStatus;

/// The largest PKCS#11 module file that is hashed and loaded.
const MAX_MODULE_BYTES: u64 = 256 << 20;

pub(super) struct Connection {
    pub(super) ctx: Pkcs11,
    pub(super) tokens: Vec<Token>,
}

impl Pkcs11Provider {
    /// Loads the module, initializes it, finds the configured tokens, and logs in (the
    /// seed's ConnectAsync). Idempotent.
    ///
    /// # Errors
    /// The module cannot be loaded or initialized, no configured token is present, or a token
    /// refused the PIN (now or earlier in this process).
    pub fn connect(&self) -> Result<(), ProviderError> {
        let _g = lock(&self.connecting);
        if self.is_connected() {
            return Ok(());
        }
        let conn = self.open_connection(None)?;
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        // Log in now so a wrong PIN shows up here, once.
        self.with_token_sessions(|_, _| Ok(()))
    }

    /// Loads the module and finds the configured tokens, if that has not happened yet, without
    /// logging in: what `hsm status` needs, at no cost to any token's PIN counter. The first
    /// key operation logs in as usual.
    ///
    /// # Errors
    /// The module cannot be loaded or initialized, or no configured token is present.
    pub fn probe(&self) -> Result<(), ProviderError> {
        let _g = lock(&self.connecting);
        if self.is_connected() {
            return Ok(());
        }
        let conn = self.open_connection(None)?;
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        Ok(())
    }

    /// Whether the module is loaded and its tokens found in this process. Never logs in.
    pub fn is_connected(&self) -> bool {
        self.conn.read().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Closes every session and finalizes the module (the seed's DisconnectAsync). Never logs
    /// in; a no-op when not connected. A PIN refused earlier stays refused.
    pub fn disconnect(&self) {
        let _g = lock(&self.connecting);
        if let Some(conn) = self.conn.write().unwrap_or_else(PoisonError::into_inner).take() {
            for t in &conn.tokens {
                if *lock(&t.logged_in)
                    && let Some(s) = lock(&t.pool.state).idle.last()
                {
                    let _ = s.logout();
                }
                t.pool.clear();
            }
            let _ = conn.ctx.finalize();
        }
    }

    /// Every configured token in configured order: the present ones with their health and
    /// sessions, the missing ones marked `present: false`. Empty when not connected.
    pub fn status(&self) -> Vec<TokenStatus> {
        let guard = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = guard.as_ref() else { return Vec::new() };
        let mut out: Vec<TokenStatus> = Vec::new();
        for spec in &self.config.tokens {
            match conn.tokens.iter().find(|t| spec.matches(&t.label, &t.serial)) {
                Some(t) if out.iter().any(|s| s.present && s.serial == t.serial) => {}
                Some(t) => {
                    let h = lock(&t.health).clone();
                    let st = lock(&t.pool.state);
                    out.push(TokenStatus {
                        label: t.label.clone(),
                        serial: t.serial.clone(),
                        slot: Some(t.slot.id()),
                        present: true,
                        healthy: h.healthy,
                        logged_in: *lock(&t.logged_in),
                        last_error: h.last_error,
                        sessions_open: st.open,
                        sessions_idle: st.idle.len(),
                    });
                }
                None => {
                    let (label, serial) = match spec {
                        super::TokenSpec::Label(l) => (l.clone(), String::new()),
                        super::TokenSpec::Serial(s) => (String::new(), s.clone()),
                    };
                    out.push(TokenStatus {
                        label,
                        serial,
                        slot: None,
                        present: false,
                        healthy: false,
                        logged_in: false,
                        last_error: Some(format!("not found in {}", self.config.module.display())),
                        sessions_open: 0,
                        sessions_idle: 0,
                    });
                }
            }
        }
        out
    }

    /// Sessions open and in use across the tokens, checkouts that waited, reconnects.
    pub(super) fn pool_stats(&self) -> crate::provider::ProviderStats {
        use std::sync::atomic::Ordering;
        let mut stats = crate::provider::ProviderStats {
            reconnects: self.reconnects.load(Ordering::Relaxed),
            ..Default::default()
        };
        if let Some(conn) = self.conn.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            for t in &conn.tokens {
                let st = lock(&t.pool.state);
                stats.instances += st.open;
                stats.busy += st.open.saturating_sub(st.idle.len());
                stats.waits += t.pool.waits.load(Ordering::Relaxed);
            }
        }
        stats
    }

    /// Loads the module. With `module_sha256`, the file is read whole (bounded), hashed, and
    /// the hashed bytes are what is loaded: they are copied into a sealed memfd and the
    /// dynamic loader maps that, so a file swapped after the check is never run.
    fn load_module(&self) -> Result<Pkcs11, ProviderError> {
        let module = &self.config.module;
        let failed =
            |why: String| ProviderError::Failed(format!("cannot load PKCS#11 module {}: {why}", module.display()));
        crate::fsio::trusted(module, "the PKCS#11 module").map_err(|e| failed(e.message))?;
        let Some(pin) = &self.config.module_sha256 else {
            return Pkcs11::new(module).map_err(|e| failed(e.to_string()));
        };
        let bytes =
            crate::fsio::read_bounded(module, MAX_MODULE_BYTES, "PKCS#11 module").map_err(|e| failed(e.message))?;
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if actual != *pin {
            return Err(ProviderError::Failed(format!(
                "PKCS#11 module {} has sha256 {actual}, not the pinned [hsm] module_sha256 {pin}; refusing to load it",
                module.display()
            )));
        }
        use rustix::fs::{MemfdFlags, SealFlags};
        let fd = rustix::fs::memfd_create("cryptohost-pkcs11-module", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| failed(format!("memfd: {e}")))?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, &bytes).map_err(|e| failed(format!("memfd: {e}")))?;
        rustix::fs::fcntl_add_seals(&file, SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL)
            .map_err(|e| failed(format!("sealing: {e}")))?;
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        // The loader maps the memfd; the descriptor can close once it has.
        let ctx = Pkcs11::new(&path).map_err(|e| failed(e.to_string()))?;
        drop(file);
        Ok(ctx)
    }

    pub(super) fn open_connection(&self, reuse: Option<Pkcs11>) -> Result<Connection, ProviderError> {
        let ctx = match reuse {
            Some(ctx) => ctx,
            None => self.load_module()?,
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
            match found.iter().find(|(_, label, serial)| spec.matches(label, serial)) {
                Some((slot, label, serial)) => tokens.push(Token {
                    slot: *slot,
                    label: label.clone(),
                    serial: serial.clone(),
                    pool: Pool::new(self.config.pool_size),
                    logged_in: Mutex::new(false),
                    handles: Mutex::new(HashMap::new()),
                    checked: Mutex::new(HashSet::new()),
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
        self.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    pub(super) fn ensure_connected(&self) -> Result<(), ProviderError> {
        if !self.is_connected() {
            self.connect()?;
        }
        Ok(())
    }

    /// Logs in to `token` once. After the token refused the PIN, no C_Login is made again in
    /// this process: the refusal is remembered (by serial, so it outlives reconnects) and
    /// every later operation on the token fails at once with it.
    fn login(&self, token: &Token, session: &Session) -> Result<(), OpError> {
        let mut logged = lock(&token.logged_in);
        if *logged {
            return Ok(());
        }
        if let Some(first) = lock(&self.pin_refused).get(&token.serial) {
            return Err(OpError::Refused(ProviderError::Failed(format!(
                "token {:?} (serial {}) refused the PIN earlier in this process ({first}); C_Login is not tried \
                 again, to protect the token from lockout: correct the PIN and start cryptohost again",
                token.label, token.serial
            ))));
        }
        let pin = self.config.read_pin().map_err(OpError::Refused)?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) => {}
            Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => {}
            // A refused PIN is final: no retry, no failover (that is how tokens get locked).
            Err(e) if is_pin_refused(&e) => {
                lock(&self.pin_refused).insert(token.serial.clone(), ck_message(&e));
                return Err(OpError::Refused(ProviderError::Failed(format!(
                    "login to token {:?} (serial {}) failed: {}; no further login will be tried in this process",
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
    pub(super) fn run<T>(
        &self,
        what: &str,
        on_token: Option<&Pkcs11Uri>,
        f: impl Fn(&Session, &Token) -> Result<T, OpError>,
    ) -> Result<T, ProviderError> {
        self.run_served(what, on_token, f).map(|(v, _)| v)
    }

    /// As [`Pkcs11Provider::run`], also returning the serial of the token that served (what
    /// the audit log records; failover may have moved the operation to another token).
    pub(super) fn run_served<T>(
        &self,
        what: &str,
        on_token: Option<&Pkcs11Uri>,
        f: impl Fn(&Session, &Token) -> Result<T, OpError>,
    ) -> Result<(T, String), ProviderError> {
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

    pub(super) fn attempt<T>(
        &self,
        token: &Token,
        ctx: &Pkcs11,
        f: &impl Fn(&Session, &Token) -> Result<T, OpError>,
    ) -> Result<(T, String), (OpError, String)> {
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
                }
            }
        }
        drop(health);
        result.map(|v| (v, token.serial.clone())).map_err(|e| (e, label))
    }

    /// Logs in on every token (used by `connect` so that a wrong PIN is reported at once).
    fn with_token_sessions(&self, f: impl Fn(&Session, &Token) -> Result<(), OpError>) -> Result<(), ProviderError> {
        let guard = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = guard.as_ref() else { return Ok(()) };
        for token in &conn.tokens {
            match self.attempt(token, &conn.ctx, &f) {
                Ok(((), _)) => {}
                Err((OpError::Refused(e), _)) => return Err(e),
                Err((OpError::Ck(e), label)) => log::warn!("HSM: {label}: {}", ck_message(&e)),
                Err((OpError::Missing(m), label)) => log::warn!("HSM: {label}: {m}"),
            }
        }
        Ok(())
    }
}
