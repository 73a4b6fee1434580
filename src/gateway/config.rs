//! The gateway's configuration: the `[gateway]` section of the TOML configuration file.
//!
//! ```toml
//! [gateway]
//! listen = "127.0.0.1:8787"              # loopback TCP only
//! # socket = "/run/hsm-custody/gw/gw.sock"   # also a Unix socket (its directory 0700, socket 0600)
//! # allow_same_uid = false                # serve clients of the gateway's own uid (tests only)
//! rate_per_second = 50                    # per client uid
//! burst = 100
//! max_body = 1048576                      # largest request body a bot may send, bytes
//! max_reply = 67108864                    # largest reply body passed back, bytes
//! connect_timeout_ms = 5000
//! timeout_ms = 30000                      # until the exchange's reply head
//! # upstream_ca = "/etc/hsm-custody/test-ca.pem"          # trusted besides the system roots
//! # connect_to = { "api.binance.com:443" = "127.0.0.1:9443" }  # tests: SNI and Host unchanged
//!
//! [[gateway.route]]
//! name = "binance"                        # the base-URL form's first segment (default: host)
//! host = "api.binance.com"
//! exchange = "binance"
//! key = "binance-main"
//! public = true                           # forward unsigned requests unchanged (default)
//!
//! [gateway.keys.binance-main]             # who may use the key: as [agent.keys]
//! uids = [1000]
//! gids = [1001]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, GatewaySection, KeyAccess};
use crate::error::{Error, Result};

/// One exchange API host the gateway serves, with the key that signs for it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// The base-URL form's first path segment (`/<name>/<path>`).
    pub name: String,
    /// The exchange's API host (lower case, without port: 443 is implied).
    pub host: String,
    /// The paths this route serves: `""` for the whole host, else a prefix of whole segments
    /// (`/api/v1/private` serves that path and the paths below it). Of a host's routes, the one
    /// with the longest prefix that covers a request's path serves it.
    pub path_prefix: String,
    /// The crate's exchange id.
    pub exchange: String,
    /// The token key that signs.
    pub key: String,
    /// Whether unsigned requests are forwarded unchanged.
    pub public: bool,
}

impl Route {
    /// A route for `host` signing `exchange` requests with `key`; named after the host, public
    /// requests forwarded.
    pub fn new(host: &str, exchange: &str, key: &str) -> Route {
        Route {
            name: host.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            path_prefix: String::new(),
            exchange: exchange.to_owned(),
            key: key.to_owned(),
            public: true,
        }
    }

    /// Renames the route.
    pub fn named(mut self, name: &str) -> Route {
        self.name = name.to_owned();
        self
    }

    /// Serves only the paths under `prefix` on its host (`/api/v1/private`), so that another
    /// route can serve the rest of the host with another key.
    pub fn under(mut self, prefix: &str) -> Route {
        self.path_prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Whether this route serves `path` (the request's path, without the query).
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.path_prefix.is_empty()
            || path
                .strip_prefix(self.path_prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Refuses unsigned requests when `false`.
    pub fn public(mut self, public: bool) -> Route {
        self.public = public;
        self
    }
}

/// How the gateway listens, whom it serves, where it sends.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) socket: Option<PathBuf>,
    pub(crate) allow_same_uid: bool,
    pub(crate) rate_per_second: u32,
    pub(crate) burst: u32,
    pub(crate) max_body: usize,
    pub(crate) max_reply: u64,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) upstream_ca: Option<PathBuf>,
    pub(crate) connect_to: BTreeMap<String, String>,
    pub(crate) routes: Vec<Route>,
    pub(crate) keys: BTreeMap<String, KeyAccess>,
}

impl GatewayConfig {
    /// Defaults: listens on `listen` (a loopback address), no routes, no key allowed.
    pub fn new(listen: SocketAddr) -> Self {
        GatewayConfig {
            listen: Some(listen),
            socket: None,
            allow_same_uid: false,
            rate_per_second: 50,
            burst: 100,
            max_body: 1 << 20,
            max_reply: 64 << 20,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            upstream_ca: None,
            connect_to: BTreeMap::new(),
            routes: Vec::new(),
            keys: BTreeMap::new(),
        }
    }

    /// Replaces the listen address (a loopback address).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Also listens on a Unix socket at `path` (its directory must give other users no access,
    /// and is made 0700 when absent; the socket is 0600). The peer's uid, gid and pid come from
    /// `SO_PEERCRED`.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Allows `key` to the peers in `access`.
    pub fn allow(mut self, key: impl Into<String>, access: KeyAccess) -> Self {
        self.keys.insert(key.into(), access);
        self
    }

    /// Serves clients of the gateway's own uid (tests and development only: such a process can
    /// read the gateway's memory and files).
    pub fn allow_same_uid(mut self, allow: bool) -> Self {
        self.allow_same_uid = allow;
        self
    }

    /// Trusts this CA (PEM file) for upstream TLS besides the system roots.
    pub fn upstream_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.upstream_ca = Some(path.into());
        self
    }

    /// Connects to `to` (`ip:port`) for `from` (`host:port`); SNI and Host stay `from`'s.
    pub fn connect_to(mut self, from: &str, to: &str) -> Self {
        self.connect_to
            .insert(from.to_ascii_lowercase(), to.to_owned());
        self
    }

    /// Per-client rate and burst. Defaults 50, 100.
    pub fn rate(mut self, per_second: u32, burst: u32) -> Self {
        self.rate_per_second = per_second.max(1);
        self.burst = burst.max(1);
        self
    }

    /// Time limits: connecting upstream, and waiting for the reply head.
    pub fn timeouts(mut self, connect: Duration, reply: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = reply;
        self
    }

    /// Largest request body and reply body, bytes.
    pub fn limits(mut self, max_body: usize, max_reply: u64) -> Self {
        self.max_body = max_body;
        self.max_reply = max_reply;
        self
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route that serves `path` on `host`: of the host's routes that cover the path, the
    /// one with the longest prefix.
    pub(crate) fn route_for(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.host == host && r.covers(path))
            .max_by_key(|r| r.path_prefix.len())
    }

    /// The TCP address, if any.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// The gateway of a configuration (its `[gateway]` section, read with the rest of the file
    /// by [`Config::from_toml_file`]); `None` when there is none.
    ///
    /// # Errors
    /// The section is invalid: no or a non-loopback `listen`, a route for an exchange the
    /// gateway does not re-sign, two routes with one name or host.
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        config.gateway_section().map(Self::from_section).transpose()
    }

    /// Builds the gateway's configuration from a typed `[gateway]` section.
    ///
    /// # Errors
    /// As [`GatewayConfig::from_config`].
    pub fn from_section(raw: &GatewaySection) -> Result<Self> {
        let text = raw
            .listen
            .as_deref()
            .ok_or_else(|| Error::Config("[gateway] needs `listen` (a loopback ip:port)".into()))?;
        let listen = text
            .parse::<SocketAddr>()
            .map_err(|_| Error::Config(format!("[gateway] listen `{text}` is not an ip:port")))?;
        let mut config = GatewayConfig::new(listen);
        config.socket = raw.socket.clone();
        config.allow_same_uid = raw.allow_same_uid.unwrap_or(false);
        config = config.rate(raw.rate_per_second.unwrap_or(50), raw.burst.unwrap_or(100));
        config.max_body = raw.max_body.unwrap_or(config.max_body);
        config.max_reply = raw.max_reply.unwrap_or(config.max_reply);
        let ms = Duration::from_millis;
        config.connect_timeout = raw.connect_timeout_ms.map_or(config.connect_timeout, ms);
        config.timeout = raw.timeout_ms.map_or(config.timeout, ms);
        config.upstream_ca = raw.upstream_ca.clone();
        for (from, to) in &raw.connect_to {
            config = config.connect_to(from, to);
        }
        for r in &raw.route {
            let mut route =
                Route::new(&r.host, &r.exchange, &r.key).public(r.public.unwrap_or(true));
            if let Some(name) = &r.name {
                route = route.named(name);
            }
            if let Some(prefix) = &r.path_prefix {
                route = route.under(prefix);
            }
            config = config.route(route);
        }
        config.keys = raw.keys.clone();
        config.validate()?;
        Ok(config)
    }

    /// Checks what the builder cannot: loopback only, known exchanges, unique routes.
    ///
    /// # Errors
    /// [`Error::Config`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if let Some(addr) = self.listen {
            if !addr.ip().is_loopback() {
                return Err(Error::Config(format!(
                    "[gateway] listen `{addr}` is not a loopback address: the gateway serves \
                     local bots only (remote bots: an SSH or WireGuard tunnel to it, see \
                     docs/gateway.md)"
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut hosts = std::collections::BTreeSet::new();
        for r in &self.routes {
            if super::forms::form(&r.exchange).is_none() {
                return Err(Error::Config(format!(
                    "[[gateway.route]] `{}`: the gateway does not re-sign `{}` (it does: {})",
                    r.name,
                    r.exchange,
                    super::forms::EXCHANGES.join(", ")
                )));
            }
            let valid_name = !r.name.is_empty()
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name {
                return Err(Error::Config(format!(
                    "[[gateway.route]] name `{}` must be letters, digits, `-`, `_` or `.`",
                    r.name
                )));
            }
            let p = &r.path_prefix;
            let valid_prefix = p.is_empty()
                || (p.starts_with('/')
                    && p[1..].split('/').all(|seg| {
                        !seg.is_empty()
                            && seg != "."
                            && seg != ".."
                            && seg
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    }));
            if !valid_prefix {
                return Err(Error::Config(format!(
                    "[[gateway.route]] `{}`: path_prefix `{p}` must be `/` and path segments of \
                     letters, digits, `-`, `_` or `.` (e.g. `/api/v1/private`)",
                    r.name
                )));
            }
            if !names.insert(r.name.clone()) || !hosts.insert((r.host.clone(), p.clone())) {
                return Err(Error::Config(format!(
                    "[[gateway.route]] `{}`: two routes with one name, or one host and path_prefix",
                    r.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_text(text: &str) -> Result<Option<GatewayConfig>> {
        let config = Config::from_toml_str(&format!("module='/m.so'\ntoken='t'\n{text}"))?;
        GatewayConfig::from_config(&config)
    }

    #[test]
    fn reads_the_gateway_section() {
        let text = "[gateway]\nlisten='127.0.0.1:8787'\n\
                    connect_to={'api.binance.com:443'='127.0.0.1:9443'}\n\
                    [[gateway.route]]\nname='bn'\nhost='API.binance.com'\nexchange='binance'\n\
                    key='k'\n[gateway.keys.k]\nuids=[1000]\n";
        let c = from_text(text).unwrap().unwrap();
        assert_eq!(c.routes[0].host, "api.binance.com");
        assert_eq!(c.routes[0].name, "bn");
        assert!(c.routes[0].public);
        assert_eq!(c.connect_to["api.binance.com:443"], "127.0.0.1:9443");
        assert!(from_text("[agent]\nsocket='/s'\n").unwrap().is_none());
    }

    #[test]
    fn a_path_prefix_splits_one_host_between_two_keys() {
        let text = "[gateway]\nlisten='127.0.0.1:8787'\n\
                    [[gateway.route]]\nname='mexc'\nhost='api.mexc.com'\nexchange='mexc'\nkey='s'\n\
                    [[gateway.route]]\nname='mexc-futures'\nhost='api.mexc.com'\n\
                    path_prefix='/api/v1/private/'\nexchange='mexc-futures'\nkey='f'\n";
        let c = from_text(text).unwrap().unwrap();
        assert_eq!(c.routes[1].path_prefix, "/api/v1/private");
        let name = |path| c.route_for("api.mexc.com", path).map(|r| r.name.as_str());
        assert_eq!(name("/api/v1/private/account/assets"), Some("mexc-futures"));
        assert_eq!(name("/api/v1/private"), Some("mexc-futures"));
        assert_eq!(name("/api/v1/privateX"), Some("mexc"));
        assert_eq!(name("/api/v1/contract/ping"), Some("mexc"));
        assert_eq!(name("/api/v3/account"), Some("mexc"));
        assert_eq!(c.route_for("api.mexc.co", "/api/v3/account"), None);
    }

    #[test]
    fn refuses_what_would_open_it_up() {
        let bad = [
            "[gateway]\nlisten='0.0.0.0:8787'\n",
            "[gateway]\nlisten='127.0.0.1:1'\n[[gateway.route]]\nhost='x'\nexchange='nope'\nkey='k'\n",
            "[gateway]\nlisten='127.0.0.1:1'\nopen_proxy=true\n",
            "[gateway]\n",
            "[gateway]\nlisten='127.0.0.1:1'\n[[gateway.route]]\nhost='x'\nexchange='mexc'\nkey='k'\n\
             path_prefix='/a/../b'\n",
            "[gateway]\nlisten='127.0.0.1:1'\n[[gateway.route]]\nhost='x'\nexchange='mexc'\nkey='k'\n\
             [[gateway.route]]\nname='y'\nhost='x'\nexchange='mexc-futures'\nkey='k'\n",
        ];
        for text in bad {
            assert!(from_text(text).is_err(), "{text}");
        }
    }
}
