//! Integration tests against real SoftHSM2 tokens (one binary, one module load per process).

mod common;
mod core;
mod exchanges;
mod exchange_http;
mod cli_sign_request;
mod attacks;
mod faults;
mod bad_input;
