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
//!
//! ## Module map
//! Layers, bottom first; each module uses only the ones above it in this list
//! (`scripts/layers.py` checks it in CI; `docs/architecture.md` draws it):
//!
//! | module | what it holds |
//! |---|---|
//! | `error` | [`Error`], [`ErrorKind`], PKCS#11 names and the classification recovery follows |
//! | `alg` | the vocabulary: [`HmacAlg`], [`KeyKind`], [`Signature`], [`exchanges::Limits`] |
//! | `config` | [`Config`]: module, token, PIN source, pool, `[signing]`, guard sections |
//! | `token/` | module loading (once per process), slot, login, session pool, the HMAC turn, recovery (`recover.rs`), the custody-grade probe (`probe.rs`) |
//! | `keys/` | specs, stored metadata, hardened templates, import, generation, lifecycle and its locks, seals, the handle cache, and `Vault`: the token with its keys and the signing loop, unguarded (crate-private) |
//! | `exchanges::reach` | what a signature is good for ([`exchanges::Reach`]) and the inputs the crate owns |
//! | `sign` | the [`Mac`] trait the exchange signers sign through, and the [`RequestContext`] they attach |
//! | [`exchanges`] | one signer per exchange, the registry, [`exchanges::ExchangeSigner`] |
//! | `guard` | the [`Guard`] hook: [`SignContext`], [`LifecycleEvent`] |
//! | [`policy`] | what a key may sign (withdrawal guard, allow/deny, hours, rates) |
//! | [`audit`] | the chained audit log, MACed in the token with its own key; a line as data ([`audit::Record`], [`audit::Event`], [`audit::Decision`]) |
//! | `guardrails` | [`Guardrails`]: the crate's guard (policy, rate limits, audit, alerts) |
//! | `custody/` | [`Custody`] and [`KeyRef`]: connect, lifecycle facade, the guarded signing path, exchange signers for a key |
//! | [`doctor`] | health checks of a module, a token and its keys |
//! | `admin` | token initialisation for tests and benches (feature `test-util`) |
//! | `asynch` | the async facade (feature `tokio`) |
//! | `agent` | the signing agent, server and client (features `agent`, `agent-client`) |
//! | `gateway` | the re-signing HTTP gateway for unmodified bots (feature `gateway`) |
//!
//! ## Crate features
//! - `tokio` (default): [`asynch`], the async facade; signs on tokio's blocking pool.
//! - `agent` (default): the signing agent's server side ([`agent`], `hsm-custody agent`);
//!   implies `tokio`.
//! - `agent-client` (default): the agent's client ([`agent::AgentClient`]), std only.
//! - `gateway` (default): the re-signing HTTP gateway (`gateway`, `hsm-custody gateway`,
//!   `docs/gateway.md`); implies `agent`, adds hyper and rustls.
//! - `cli`: the `hsm-custody` command-line tool (clap, anyhow, rpassword); never needed by a
//!   bot that links the library.
//! - `test-util`: hooks for tests and benchmarks, never for a release build: `admin` (token
//!   initialisation), `Custody::danger_fail_lifecycle_after` (fault injection into lifecycle
//!   writes), `Custody::fast_path_active`. This crate's own tests and benches turn it on
//!   through a dev-dependency on itself, so `cargo test` needs no flags.
//! - `danger-skip-wipe-for-tests`: leaves import templates unwiped, only so that the
//!   memory-hygiene test can prove it fails; never in a build that handles real secrets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "test-util")]
pub mod admin;
#[cfg(all(unix, any(feature = "agent", feature = "agent-client")))]
pub mod agent;
mod alg;
#[cfg(feature = "tokio")]
pub mod asynch;
pub mod audit;
pub mod config;
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

pub use alg::{HmacAlg, KeyKind, Signature};
pub use config::{Config, PinSource, ENV_MODULE, ENV_PIN, ENV_PIN_FILE, ENV_TOKEN};
pub use custody::{Custody, KeyRef, NewVersion};
pub use error::{Error, ErrorKind, Result};
pub use guard::{Guard, LifecycleEvent, SignContext};
pub use guardrails::{Alert, AlertConfig, AlertKind, GuardConfig, Guardrails};
pub use keys::{
    KeyFlags, KeyInfo, KeySpec, SecretEncoding, VersionInfo, VersionOrigin, VersionState,
};
pub use secrecy::SecretString;
pub use sign::{Mac, RequestContext};
pub use token::pool::PoolStats;
pub use token::TokenInfo;

/// The README's Rust examples, compiled as doctests so that they stay true to the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
