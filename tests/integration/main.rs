//! Integration tests against real SoftHSM2 tokens (one binary, one module load per process).

#[cfg(all(feature = "agent", feature = "agent-client"))]
mod agent;
#[cfg(feature = "tokio")]
mod async_api;
mod attacks;
mod audit;
mod audit_hardening;
mod bad_input;
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
mod seal;
mod tpm;
