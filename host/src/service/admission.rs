//! Who gets a request place: at most `max_concurrent` requests at once, at most `max_per_uid`
//! for one peer uid, the last few places kept for callers holding none (so two busy uids can
//! never lock a third one out), and request bodies in flight within a memory budget. Nothing
//! queues: a refusal is an immediate 503.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Why a request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This uid holds `max_per_uid` places.
    Uid,
    /// Every place is taken.
    Full,
    /// The free places are kept for callers that hold none, and this uid holds some.
    Reserved,
    /// The bodies in flight would pass `[service] body_budget_mib`.
    BodyBudget,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Uid => "this uid is at its limit of concurrent requests ([service] max_per_uid); retry shortly",
            Refusal::Full => {
                "the server is at its limit of concurrent requests ([service] max_concurrent); retry shortly"
            }
            Refusal::Reserved => {
                "the server's last free places are kept for callers with no request in progress, and this uid has \
                 some ([service] max_concurrent); retry shortly"
            }
            Refusal::BodyBudget => {
                "the request bodies in progress fill the server's memory budget for them ([service] \
                 body_budget_mib); retry shortly"
            }
        }
    }
}

/// The limits, from `[service]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_concurrent: usize,
    pub max_per_uid: usize,
    pub body_budget: u64,
}

impl Limits {
    /// Places kept for callers holding none: an eighth of them, at least one.
    #[must_use]
    pub fn reserve(&self) -> usize {
        (self.max_concurrent / 8).max(1)
    }
}

#[derive(Default, Debug)]
struct Held {
    places: usize,
    body_bytes: u64,
    per_uid: HashMap<u32, usize>,
}

/// The places and body bytes in use.
#[derive(Default, Debug)]
pub struct Admission {
    held: Mutex<Held>,
}

/// One admitted request's place and body charge, given back on drop.
#[derive(Debug)]
pub struct Place<'a> {
    admission: &'a Admission,
    uid: u32,
    body_bytes: u64,
}

impl Admission {
    /// Admits a request of `uid` whose body will hold up to `body_bytes` in memory, or says why not.
    ///
    /// # Errors
    /// The refusal.
    pub fn admit(&self, uid: u32, body_bytes: u64, limits: Limits) -> Result<Place<'_>, Refusal> {
        let mut h = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = h.per_uid.get(&uid).copied().unwrap_or(0);
        if mine >= limits.max_per_uid {
            return Err(Refusal::Uid);
        }
        let free = limits.max_concurrent.saturating_sub(h.places);
        if free == 0 {
            return Err(Refusal::Full);
        }
        if mine > 0 && free <= limits.reserve() {
            return Err(Refusal::Reserved);
        }
        if h.body_bytes.saturating_add(body_bytes) > limits.body_budget {
            return Err(Refusal::BodyBudget);
        }
        h.places += 1;
        h.body_bytes += body_bytes;
        *h.per_uid.entry(uid).or_default() += 1;
        Ok(Place { admission: self, uid, body_bytes })
    }

    /// Requests and body bytes in flight now.
    pub fn in_flight(&self) -> (usize, u64) {
        let h = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        (h.places, h.body_bytes)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut h = self.admission.held.lock().unwrap_or_else(PoisonError::into_inner);
        h.places -= 1;
        h.body_bytes -= self.body_bytes;
        if let Some(n) = h.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                h.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_concurrent: 16, max_per_uid: 16, body_budget: 100 };

    #[test]
    fn two_busy_uids_leave_places_for_a_third() {
        let a = Admission::default();
        let mut held = Vec::new();
        // uid 1 takes what it can, then uid 2: each stops where the reserve begins.
        while let Ok(p) = a.admit(1, 0, LIMITS) {
            held.push(p);
        }
        assert_eq!(a.admit(1, 0, LIMITS).unwrap_err(), Refusal::Reserved);
        assert_eq!(held.len(), 16 - LIMITS.reserve());
        // uid 2 holds none, so it may take one of the reserved places, but not a second.
        held.push(a.admit(2, 0, LIMITS).unwrap());
        assert_eq!(a.admit(2, 0, LIMITS).unwrap_err(), Refusal::Reserved);
        // A third uid still gets in, until every place is taken.
        held.push(a.admit(3, 0, LIMITS).unwrap());
        assert_eq!(a.in_flight().0, 16);
        assert_eq!(a.admit(4, 0, LIMITS).unwrap_err(), Refusal::Full);
        held.clear();
        assert_eq!(a.in_flight(), (0, 0));
    }

    #[test]
    fn a_uid_stops_at_its_own_limit_and_bodies_at_the_budget() {
        let a = Admission::default();
        let limits = Limits { max_per_uid: 2, ..LIMITS };
        let _p = (a.admit(1, 0, limits).unwrap(), a.admit(1, 0, limits).unwrap());
        assert_eq!(a.admit(1, 0, limits).unwrap_err(), Refusal::Uid);
        let big = a.admit(2, 60, limits).unwrap();
        assert_eq!(a.admit(3, 41, limits).unwrap_err(), Refusal::BodyBudget);
        let fits = a.admit(3, 40, limits).unwrap();
        assert_eq!(a.in_flight(), (4, 100));
        drop((big, fits));
        assert_eq!(a.in_flight(), (2, 0));
    }

    #[test]
    fn one_place_is_one_place() {
        let a = Admission::default();
        let limits = Limits { max_concurrent: 1, max_per_uid: 1, body_budget: 10 };
        let p = a.admit(1, 0, limits).unwrap();
        assert_eq!(a.admit(2, 0, limits).unwrap_err(), Refusal::Full);
        drop(p);
        assert!(a.admit(2, 0, limits).is_ok());
    }
}
