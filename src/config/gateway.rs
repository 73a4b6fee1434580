//! `[gateway]`: the re-signing gateway's listener, limits, upstream and routes (turned into a
//! `gateway::GatewayConfig` by `GatewayConfig::from_section`, feature `gateway`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::KeyAccess;

/// `[gateway]` as written (see `docs/gateway.md` for every field and its default).
///
/// ```toml
/// [gateway]
/// listen = "127.0.0.1:8787"
/// rate_per_second = 50
/// burst = 100
/// max_body = 1048576
/// max_reply = 67108864
/// connect_timeout_ms = 5000
/// timeout_ms = 30000
///
/// [[gateway.route]]
/// name = "binance"
/// host = "api.binance.com"
/// exchange = "binance"
/// key = "binance-main"
///
/// [[gateway.route]]
/// name = "mexc-futures"
/// host = "api.mexc.com"
/// path_prefix = "/api/v1/private"
/// exchange = "mexc-futures"
/// key = "mexc-futures-main"
///
/// [gateway.keys.binance-main]
/// uids = [1000]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GatewaySection {
    /// Loopback `ip:port` to listen on.
    pub listen: Option<String>,
    /// Also a Unix socket at this path.
    pub socket: Option<PathBuf>,
    /// Serve clients of the gateway's own uid (tests only).
    pub allow_same_uid: Option<bool>,
    /// Signed requests per second per client uid.
    pub rate_per_second: Option<u32>,
    /// Burst of the per-client rate.
    pub burst: Option<u32>,
    /// Largest request body a bot may send, bytes.
    pub max_body: Option<usize>,
    /// Largest reply body passed back, bytes.
    pub max_reply: Option<u64>,
    /// Connecting to the exchange, ms.
    pub connect_timeout_ms: Option<u64>,
    /// Until the exchange's reply head, ms.
    pub timeout_ms: Option<u64>,
    /// A PEM file of CA certificates trusted besides the system roots (tests).
    pub upstream_ca: Option<PathBuf>,
    /// `host:port` = `ip:port` connection redirects (tests; SNI and Host unchanged).
    #[serde(default)]
    pub connect_to: BTreeMap<String, String>,
    /// `[[gateway.route]]`: the exchange API hosts served.
    #[serde(default)]
    pub route: Vec<RouteSection>,
    /// Who may use each key; a key not listed is refused to every client.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyAccess>,
}

/// One `[[gateway.route]]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteSection {
    /// The base-URL form's first segment (default: the host).
    pub name: Option<String>,
    /// The exchange's API host.
    pub host: String,
    /// Only paths under this prefix (`/api/v1/private`: that path and what is below it), for a
    /// second key on one host (MEXC's contract API shares `api.mexc.com` with its spot API).
    /// Default: the whole host.
    pub path_prefix: Option<String>,
    /// The crate's exchange id.
    pub exchange: String,
    /// The token key that signs.
    pub key: String,
    /// Forward unsigned requests unchanged (default `true`).
    pub public: Option<bool>,
}
