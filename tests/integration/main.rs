//! Integration tests against real SoftHSM2 tokens (one binary, one module load per process).
//!
//! `unsafe` is denied here except in `raw_pkcs11` (`tests/support/raw_pkcs11.rs`), the one
//! test-side module that holds it; raw PKCS#11 goes through its safe functions.
#![deny(unsafe_code)]

#[cfg(all(feature = "agent", feature = "agent-client"))]
mod agent;
#[cfg(feature = "tokio")]
mod async_api;
mod attacks;
mod audit;
mod audit_compat;
mod audit_epochs;
mod audit_hardening;
mod audit_journal;
mod bad_input;
mod cli_config;
mod cli_lifecycle;
mod cli_sign_request;
mod common;
mod core;
mod exchange_http;
mod exchanges;
mod exchanges_asym;
mod faults;
#[cfg(feature = "gateway")]
mod gateway;
mod guard_hook;
mod guard_soundness;
mod guardrails;
mod lifecycle;
mod lifecycle_race;
mod model;
#[path = "../support/raw_pkcs11.rs"]
mod raw_pkcs11;
mod seal;
mod tpm;
mod usage_alerts;
