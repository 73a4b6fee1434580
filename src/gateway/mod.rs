//! The re-signing gateway (issue 28): unmodified bots (ccxt in any language, freqtrade) send
//! their exchange requests through it, signed with a placeholder secret; it re-signs each one in
//! the token and sends it to the exchange itself, so that no valid signature ever reaches the
//! bot. See `docs/gateway.md`.
//!
//! ```no_run
//! use hsm_custody::agent::KeyAccess;
//! use hsm_custody::gateway::{Gateway, GatewayConfig, Route};
//! use hsm_custody::{Config, Custody};
//!
//! # async fn run() -> Result<(), hsm_custody::Error> {
//! let custody = Custody::connect(Config::from_env()?)?;
//! let config = GatewayConfig::new("127.0.0.1:8787".parse().unwrap())
//!     .route(Route::new("api.binance.com", "binance", "binance-main").named("binance"))
//!     .allow("binance-main", KeyAccess::uids([1000]));
//! let gateway = Gateway::bind(custody, None, config).await?;
//! gateway.serve(std::future::pending()).await
//! # }
//! ```
//!
//! What it does with one request:
//! 1. The target: ccxt's proxy-URL form (`/https://api.binance.com/api/v3/account?...`, or the
//!    same percent-encoded) or the base-URL form (`/<route>/api/v3/account?...`). A host, path
//!    or name without a `[[gateway.route]]` is refused: no open proxy. A route serves a host, or
//!    the paths of a host under its `path_prefix` (a second key on one host: MEXC futures).
//! 2. The client: its uid, gid and pid from the kernel, never from the request (`SO_PEERCRED` on
//!    the Unix socket; on loopback TCP the socket's owner in `/proc/net/tcp*` and the process
//!    holding it); refused when it is the gateway's own uid (unless `allow_same_uid`).
//! 3. A request carrying no signature field of the route's exchange is public: forwarded
//!    unchanged (unless the route says `public = false`).
//! 4. A signed one: the client's rate, the key's allow-list (`[gateway.keys]`, as the agent's),
//!    then the exchange's wire form reads it into the crate's request ([`crate::exchanges::Request`]),
//!    which the exchange's canonical form validates, the key's policy and rate limits judge and
//!    the audit log records, before the token signs it. The request rebuilt from that
//!    signature must differ from the bot's only in the signature fields and the fields the crate
//!    owns (time, nonce, API key header); otherwise it is refused with the reason.
//! 5. Upstream over HTTPS (rustls), sent once; the reply streamed back; hop-by-hop headers
//!    (the fixed ones and those a `Connection` header names) dropped both ways; the exchange's
//!    status written to the audit log.

mod ccxt;
mod config;
mod forms;
mod peer;
mod server;
mod upstream;

pub use ccxt::ccxt_id;
pub use config::{GatewayConfig, Route};
pub use forms::EXCHANGES;
pub use server::Gateway;
