//! The agent's configuration: the `[agent]` section of the TOML configuration file.
//!
//! ```toml
//! [agent]
//! socket = "/run/hsm-custody/agent.sock"   # inside a directory of mode 0700 (created if absent)
//! max_frame = 65536                         # largest request frame, bytes
//! rate_per_second = 50                      # per client (peer uid + pid)
//! burst = 100
//! max_connections = 64                     # all clients together; when full, the longest-idle
//!                                           # connection is closed for a newcomer
//! max_connections_per_uid = 16              # one uid's connections (default: a quarter of the above)
//! # allow_same_uid = false                  # serve clients of the agent's own uid (tests only)
//! frame_timeout_ms = 10000                  # a started frame must arrive within this
//! idle_timeout_ms = 300000                  # an idle connection is closed after this
//! drain_timeout_ms = 10000                  # graceful shutdown waits this long for in-flight work
//! # socket_group = 1001                     # optional: socket 0660 and directory 0750, this group
//! threads = 1                               # threads serving the clients; more for a token that
//!                                           # signs slowly and in parallel (a network HSM)
//! busy_poll_us = 50                         # after a reply, look for the client's next request
//!                                           # this long before sleeping (0: never)
//!
//! [agent.keys.binance-main]                 # a key not listed here is refused to every client
//! uids = [1000]                             # peer uids allowed (SO_PEERCRED)
//! gids = [1001]                             # peer gids allowed: primary or supplementary
//! exchanges = ["binance", "binance-usdm"]   # optional: exchange ids allowed with this key
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::DEFAULT_MAX_FRAME;
pub use crate::config::KeyAccess;
use crate::config::{AgentSection, Config, PinSource, Sections};
use crate::error::{Error, Result};

/// [`AgentConfig::busy_poll`]'s default: about twice what a client takes from one reply to its
/// next request when it sends them back to back.
const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);

/// How the agent listens, whom it serves, and how much.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub(crate) socket: PathBuf,
    pub(crate) max_frame: usize,
    pub(crate) rate_per_second: u32,
    pub(crate) burst: u32,
    pub(crate) max_connections: usize,
    /// `None`: a quarter of `max_connections` (at least 1).
    pub(crate) max_connections_per_uid: Option<usize>,
    pub(crate) allow_same_uid: bool,
    pub(crate) frame_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) socket_group: Option<u32>,
    pub(crate) threads: usize,
    pub(crate) busy_poll: Duration,
    pub(crate) keys: BTreeMap<String, KeyAccess>,
}

// `KeyAccess` is the `[agent.keys.NAME]` section's own type (crate::config); the checks the
// server makes with it live here, with the rest of the agent's configuration.
impl KeyAccess {
    /// Whether a peer with `uid` and primary `gid` may use the key for `exchange`.
    #[cfg(test)]
    pub(crate) fn allows(&self, uid: u32, gid: u32, exchange: &str) -> bool {
        self.allows_groups(uid, [gid], exchange)
    }

    /// Whether a peer with `uid` and groups `gids` (primary and supplementary) may use the key
    /// for `exchange`.
    pub(crate) fn allows_groups(
        &self,
        uid: u32,
        gids: impl IntoIterator<Item = u32>,
        exchange: &str,
    ) -> bool {
        let peer = self.allows_peer(uid, gids);
        let exchange_ok = self
            .exchanges
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == exchange));
        peer && exchange_ok
    }

    /// Whether a peer with `uid` and groups `gids` may use the key at all.
    pub(crate) fn allows_peer(&self, uid: u32, gids: impl IntoIterator<Item = u32>) -> bool {
        self.uids.contains(&uid) || gids.into_iter().any(|g| self.gids.contains(&g))
    }
}

impl AgentConfig {
    /// Defaults for a socket at `socket`, with no key allowed to anyone.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        AgentConfig {
            socket: socket.into(),
            max_frame: DEFAULT_MAX_FRAME,
            rate_per_second: 50,
            burst: 100,
            max_connections: 64,
            max_connections_per_uid: None,
            allow_same_uid: false,
            frame_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(10),
            threads: 1,
            busy_poll: DEFAULT_BUSY_POLL,
            socket_group: None,
            keys: BTreeMap::new(),
        }
    }

    /// Allows `key` to the peers in `access`.
    pub fn allow(mut self, key: impl Into<String>, access: KeyAccess) -> Self {
        self.keys.insert(key.into(), access);
        self
    }

    /// Replaces the socket path.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = path.into();
        self
    }

    /// Largest request frame in bytes (at least 64). Default 64 KiB.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.max(64);
        self
    }

    /// Sign requests per second per client (peer uid + pid), and the burst. Defaults 50, 100.
    pub fn rate(mut self, per_second: u32, burst: u32) -> Self {
        self.rate_per_second = per_second.max(1);
        self.burst = burst.max(1);
        self
    }

    /// Most connections served at once. Default 64. When all are taken, a newcomer is served
    /// and the connection idle for longest (waiting between two requests) is closed; only when
    /// every connection is in the middle of a request is the newcomer told `busy`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Most connections one peer uid may hold at once; its next one is told `busy` (rule
    /// `agent-connections-per-uid`) and closed. Default: a quarter of
    /// [`AgentConfig::max_connections`] (at least 1), so that the clients of one uid cannot
    /// take every connection and lock the others out.
    pub fn max_connections_per_uid(mut self, n: usize) -> Self {
        self.max_connections_per_uid = Some(n.max(1));
        self
    }

    /// The per-uid connection limit in force.
    pub(crate) fn per_uid_limit(&self) -> usize {
        self.max_connections_per_uid
            .unwrap_or((self.max_connections / 4).max(1))
    }

    /// Serves clients whose uid is the agent's own. Off by default: such a process can read the
    /// agent's memory (`ptrace`, `/proc/<pid>/mem`) and files (the PIN file, the token's files),
    /// so nothing the agent checks would hold against it; run bots under other uids and let them
    /// in through [`AgentConfig::socket_group`]. Turn on for tests and single-user development.
    pub fn allow_same_uid(mut self, allow: bool) -> Self {
        self.allow_same_uid = allow;
        self
    }

    /// Serves peers of another uid through a group: the socket becomes 0660 and its directory
    /// 0750, both of group `gid`. Off by default (socket 0600, directory 0700).
    pub fn socket_group(mut self, gid: u32) -> Self {
        self.socket_group = Some(gid);
        self
    }

    /// Threads serving the clients: the thread [`crate::agent::Agent::serve`] runs on and
    /// `threads - 1` more (`hsm-agent-N`), each with an event loop of its own. Connections are
    /// dealt out among them in turn, and each is served entirely on its thread: a request is
    /// read, judged, signed and answered there, with no hand-over between threads, so a slow
    /// signature holds up only the connections on the same thread. Default 1 (on a software
    /// token or a TPM, which sign one at a time, the fastest). Raise it for a token that signs
    /// slowly and in parallel, such as a network HSM, with at least as many bot connections.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The number of threads set by [`AgentConfig::threads`].
    pub fn thread_count(&self) -> usize {
        self.threads
    }

    /// After answering a client, how long the connection keeps looking for its next request
    /// before it waits in the runtime's `epoll` (default 50 µs; zero: never). On a machine
    /// whose idle cores sleep, waking one for a request costs tens of µs (measured 40 µs on a
    /// Firecracker VM); a bot that sends requests back to back is served without that wake-up.
    /// The look yields to every other connection between tries, so it only uses time the
    /// thread would have slept; its cost is at most this much CPU per request, and a
    /// connection stops looking after two looks that found nothing (a bot that goes to the
    /// exchange between signatures), looking again once in 32 requests.
    pub fn busy_poll(mut self, window: Duration) -> Self {
        self.busy_poll = window;
        self
    }

    /// How long graceful shutdown waits for in-flight requests. Default 10 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The `[agent]` section of a loaded configuration, typed when the file was read (the file
    /// is not read again); `None` when it has none.
    pub fn from_config(config: &Config) -> Option<Self> {
        config.agent_section().map(Self::from_section)
    }

    /// Reads the `[agent]` section of TOML text (the rest of the text is ignored); `None` when
    /// there is none.
    ///
    /// # Errors
    /// The section is invalid (unknown keys are refused, `socket` is required).
    pub fn from_toml_str(text: &str) -> Result<Option<Self>> {
        Ok(Sections::from_toml_str(text)?
            .agent
            .as_ref()
            .map(Self::from_section))
    }

    /// The agent configuration an `[agent]` section describes, over the defaults.
    pub fn from_section(section: &AgentSection) -> Self {
        let mut config = AgentConfig::new(&section.socket);
        if let Some(n) = section.max_frame {
            config = config.max_frame(n);
        }
        let (rate, burst) = (config.rate_per_second, config.burst);
        config = config.rate(
            section.rate_per_second.unwrap_or(rate),
            section.burst.unwrap_or(burst),
        );
        if let Some(n) = section.max_connections {
            config = config.max_connections(n);
        }
        if let Some(n) = section.max_connections_per_uid {
            config = config.max_connections_per_uid(n);
        }
        config.allow_same_uid = section.allow_same_uid.unwrap_or(false);
        let ms = Duration::from_millis;
        if let Some(t) = section.frame_timeout_ms {
            config.frame_timeout = ms(t);
        }
        if let Some(t) = section.idle_timeout_ms {
            config.idle_timeout = ms(t);
        }
        if let Some(t) = section.drain_timeout_ms {
            config.drain_timeout = ms(t);
        }
        config.socket_group = section.socket_group;
        if let Some(t) = section.threads {
            config.threads = t.max(1);
        }
        if let Some(us) = section.busy_poll_us {
            config.busy_poll = Duration::from_micros(us);
        }
        config.keys = section.keys.clone();
        config
    }
}

/// Refuses, for the signing agent, a PIN that came from the environment or a PIN variable set
/// in it at all.
///
/// A process's environment stays readable in `/proc/<pid>/environ` by every process of its uid
/// for as long as it runs, so a PIN there is no longer the agent's alone. The agent takes its
/// PIN from a file ([`Config::pin_file`], `pin_file`, `--pin-file`, `HSM_CUSTODY_PIN_FILE`), such
/// as a systemd credential (`LoadCredentialEncrypted=`, `deploy/`), and nothing named
/// `HSM_CUSTODY_PIN` (or the variable `pin_env` names) may be in its environment, used or not.
/// `hsm-custody agent` runs this before it logs in.
///
/// # Errors
/// [`Error::Config`] naming the variable, why, and what to do instead (never the PIN).
pub fn refuse_env_pin(config: &Config) -> Result<()> {
    let mut vars = config.pin_variables_set();
    if let PinSource::Env(var) = config.pin_source() {
        if !vars.contains(var) {
            vars.insert(0, var.clone());
        }
    }
    if vars.is_empty() {
        return Ok(());
    }
    let names = vars
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    Err(Error::Config(format!(
        "the agent refuses a PIN in its environment ({names} set): a process's environment is \
         readable in /proc/<pid>/environ by every process of its uid for as long as it runs. \
         Put the PIN in a file only the agent's user can read and pass it as `pin_file` in the \
         config, `--pin-file` or HSM_CUSTODY_PIN_FILE (under systemd: a credential, see \
         deploy/README.md), drop `pin_env`, and start the agent without {names} (`env -u`)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agent_section_only() {
        let text = "module='/m.so'\ntoken='t'\n[pool]\nsize=2\n[agent]\nsocket='/run/a/s'\n\
                    max_frame=4096\nrate_per_second=5\n[agent.keys.binance-main]\nuids=[1000]\n\
                    exchanges=['binance']\n";
        let c = AgentConfig::from_toml_str(text).unwrap().unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/a/s"));
        assert_eq!(c.max_frame, 4096);
        assert_eq!(c.rate_per_second, 5);
        let access = &c.keys["binance-main"];
        assert!(access.allows(1000, 5, "binance"));
        assert!(!access.allows(1000, 5, "kraken"));
        assert!(!access.allows(1001, 5, "binance"));
        assert!(AgentConfig::from_toml_str("module='m'\ntoken='t'\n")
            .unwrap()
            .is_none());
        let err = AgentConfig::from_toml_str("[agent]\nsocket='/s'\npin='1'\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = AgentConfig::from_toml_str("[agent]\nmax_frame=1\n").unwrap_err();
        assert!(err.to_string().contains("socket"), "{err}");
    }

    #[test]
    fn same_uid_is_refused_and_per_uid_limit_is_a_quarter_by_default() {
        let c = AgentConfig::from_toml_str("[agent]\nsocket='/s'\n")
            .unwrap()
            .unwrap();
        assert!(!c.allow_same_uid);
        assert_eq!(c.per_uid_limit(), 16);
        let c = AgentConfig::from_toml_str("[agent]\nsocket='/s'\nmax_connections=10\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.per_uid_limit(), 2);
        let c = AgentConfig::from_toml_str("[agent]\nsocket='/s'\nmax_connections=3\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.per_uid_limit(), 1, "at least one");
        let c = AgentConfig::from_toml_str(
            "[agent]\nsocket='/s'\nallow_same_uid=true\nmax_connections_per_uid=5\n",
        )
        .unwrap()
        .unwrap();
        assert!(c.allow_same_uid);
        assert_eq!(c.per_uid_limit(), 5);
    }
}
