//! Integration tests: real components through wasmtime, the `cryptohost` binary, OpenSSL.

mod common;

mod anchors;
mod audit_tlog;
mod bundle;
mod bundle_hostile;
mod cli;
mod cli_json;
mod config;
mod csr;
mod doctor;
mod dsse;
mod fuzz_replay;
mod hostile;
mod install;
mod jose;
mod jose_hostile;
mod jose_interop;
mod kit;
mod lifecycle;
mod policy;
mod pqc;
mod pqc_cli;
mod registry;
mod request_layer;
mod sandbox;
mod server;
mod service;
mod service_client;
mod service_limits;
mod service_metrics;
mod sha2_kat;
mod worlds;
mod wycheproof_vectors;
