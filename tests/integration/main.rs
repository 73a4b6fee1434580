//! Integration tests against real SoftHSM2 tokens (one binary, one module load per process).

mod attacks;
mod bad_input;
mod cli_sign_request;
mod common;
mod core;
mod exchange_http;
mod exchanges;
mod faults;
mod lifecycle;
mod guard_hook;
mod cli_lifecycle;
mod guardrails;
mod audit;
#[cfg(feature = "tokio")]
mod async_api;
mod exchanges_asym;
#[cfg(all(feature = "agent", feature = "agent-client"))]
mod agent;
