//! Sessions of one token, opened once and reused; one thread at a time per session.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use cryptoki::error::Error as CkError;
use cryptoki::session::Session;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bounded pool: at most `size` sessions exist; a caller waits for an idle one.
pub(super) struct Pool {
    pub(super) state: Mutex<PoolState>,
    freed: Condvar,
    size: usize,
    /// Checkouts that found every session busy and waited.
    pub(super) waits: std::sync::atomic::AtomicU64,
}

pub(super) struct PoolState {
    pub(super) idle: Vec<Session>,
    pub(super) open: usize,
}

impl Pool {
    pub(super) fn new(size: usize) -> Pool {
        Pool {
            state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
            size,
            waits: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(super) fn checkout(&self, open: impl FnOnce() -> Result<Session, CkError>) -> Result<Session, CkError> {
        let mut st = lock(&self.state);
        let mut waited = false;
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(s);
            }
            if st.open < self.size {
                st.open += 1;
                drop(st);
                return open().inspect_err(|_| self.forget());
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(super) fn checkin(&self, s: Session) {
        lock(&self.state).idle.push(s);
        self.freed.notify_one();
    }

    /// A checked-out session was dropped (found invalid).
    pub(super) fn forget(&self) {
        let mut st = lock(&self.state);
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }

    /// Drops every idle session (their handles are stale after a reconnect).
    pub(super) fn clear(&self) {
        let mut st = lock(&self.state);
        let n = st.idle.len();
        st.idle.clear();
        st.open = st.open.saturating_sub(n);
        drop(st);
        self.freed.notify_all();
    }
}
