//! # hsm-custody
//!
//! Keep crypto-exchange API secrets inside a PKCS#11 token (a hardware HSM, a TPM, or SoftHSM2
//! in CI) where they cannot be exported, and compute exchange request signatures *inside the
//! token*.
//!
//! ```no_run
//! use hsm_custody::{Config, Custody, HmacAlg, KeySpec};
//! use secrecy::SecretString;
//!
//! # fn main() -> Result<(), hsm_custody::Error> {
//! // Module path, token label and PIN file from HSM_CUSTODY_* variables.
//! let custody = Custody::connect(Config::from_env()?)?;
//! let secret = SecretString::from(std::env::var("BINANCE_SECRET").unwrap_or_default());
//! custody.import_hmac_secret(KeySpec::hmac("binance-main").exchange("binance"), secret)?;
//! let key = custody.key("binance-main")?;
//! let mac = key.hmac(HmacAlg::HmacSha256, b"symbol=LTCBTC&side=BUY&timestamp=1499827319559")?;
//! println!("signature={}", mac.to_hex());
//! # Ok(()) }
//! ```
//!
//! ## Security guarantees
//! - An imported secret becomes a token object that is private, sensitive, non-extractable,
//!   not modifiable, sign/verify only (no encrypt, decrypt, wrap, unwrap, derive). An import
//!   proves itself (token MAC == software MAC) before it is reported done; a failed import
//!   leaves nothing behind; an existing name is never overwritten.
//! - Secrets and PINs are held in `secrecy` types and wiped after use. No `Debug`, `Display`,
//!   error or log line contains a PIN, a secret or key bytes.
//! - A wrong PIN is tried exactly once and never retried automatically (real tokens lock).
//! - Keys have versions; rotation (begin, promote, retire) and revocation are crash-safe: an
//!   interruption at any step leaves a consistent state, never two active versions.
//! - Asymmetric exchange keys (Ed25519, P-256, RSA-2048) are generated inside the token; only
//!   the public key can be read out.
//! - Guard rails plug in through [`Guard`]: checked before any byte reaches the token.
//!
//! ## Errors
//! Every fallible call returns [`Error`]. Its message says what happened; [`Error::hint`] says
//! what to do when the crate knows (a CLI command, a path, a setting); [`Error::kind`] gives an
//! [`ErrorKind`] (`Copy`) to branch on: bad input, key not found, PIN refused, policy denied,
//! busy, token failure, API misuse ... The signing agent's wire kinds
//! ([`ErrorKind::wire_name`]), the `hsm-custody` CLI's exit codes ([`ErrorKind::exit_code`])
//! and the Python client's exception classes all derive from it. PKCS#11 failures keep
//! cryptoki's typed function and return value ([`Error::Pkcs11`]).
//!
//! ## Non-goals
//! - Protecting a secret before it reaches the import call (type it into the CLI, do not keep it
//!   in files), or against an attacker who can use the logged-in token: such an attacker can
//!   sign, not extract. Guard rails that limit what may be signed come with the policy layer.
//! - Memory locking (mlock) of the brief in-process copy during import.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
#[cfg(all(unix, any(feature = "agent", feature = "agent-client")))]
pub mod agent;
#[cfg(feature = "tokio")]
pub mod asynch;
pub mod audit;
mod config;
mod custody;
pub mod doctor;
mod error;
pub mod exchanges;
#[cfg(all(unix, feature = "gateway"))]
pub mod gateway;
mod guard;
mod guardrails;
mod keys;
pub mod policy;
mod sign;
mod token;

pub use config::{Config, PinSource, ENV_MODULE, ENV_PIN, ENV_PIN_FILE, ENV_TOKEN};
pub use custody::{Custody, KeyRef, NewVersion};
pub use error::{Error, ErrorKind, Result};
pub use guard::{Guard, LifecycleEvent, RequestContext, SignContext};
pub use guardrails::{Alert, AlertKind, GuardConfig, Guardrails};
pub use keys::{KeyFlags, KeyInfo, KeyKind, KeySpec, SecretEncoding, VersionInfo, VersionState};
pub use secrecy::SecretString;
pub use sign::{HmacAlg, Mac, Signature};
pub use token::pool::PoolStats;
pub use token::TokenInfo;

/// The README's Rust examples, compiled as doctests so that they stay true to the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
