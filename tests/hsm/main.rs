//! Hardware-backed keys against a real PKCS#11 module (SoftHSM2) and the simulation component:
//! the same suite on both, failover, reconnect, wrong PIN, attribute checks, concurrency, audit.
//!
//! A PKCS#11 module is process-global state, so these tests run one at a time (`serial()`),
//! each with its own SoftHSM2 token directory, and finalize the module when done.

#[path = "../all/common.rs"]
mod common;

mod backends;
mod hardening;
mod hsm_only;
mod jose;
mod lifecycle;
mod serve;
#[path = "../all/server.rs"]
mod server;
mod softhsm;
