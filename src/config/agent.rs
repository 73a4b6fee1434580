//! `[agent]`: the signing agent's socket, limits and per-key access (turned into an
//! `agent::AgentConfig` by `AgentConfig::from_section`, feature `agent`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `[agent]` as written (see `docs/agent.md` for every field and its default).
///
/// ```toml
/// [agent]
/// socket = "/run/hsm-custody/agent.sock"   # required
/// max_frame = 65536
/// rate_per_second = 50
/// burst = 100
/// max_connections = 64
/// max_connections_per_uid = 16
/// allow_same_uid = false
/// frame_timeout_ms = 10000
/// idle_timeout_ms = 300000
/// drain_timeout_ms = 10000
/// threads = 1
/// busy_poll_us = 50
/// socket_group = 1001
///
/// [agent.keys.binance-main]
/// uids = [1000]
/// gids = [1001]
/// exchanges = ["binance"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentSection {
    /// The socket path.
    pub socket: PathBuf,
    /// Largest request frame, bytes.
    pub max_frame: Option<usize>,
    /// Sign requests per second per client.
    pub rate_per_second: Option<u32>,
    /// Burst of the per-client rate.
    pub burst: Option<u32>,
    /// Most connections at once.
    pub max_connections: Option<usize>,
    /// Most connections of one uid at once.
    pub max_connections_per_uid: Option<usize>,
    /// Serve clients of the agent's own uid (tests only).
    pub allow_same_uid: Option<bool>,
    /// A started frame must arrive within this, ms.
    pub frame_timeout_ms: Option<u64>,
    /// An idle connection is closed after this, ms.
    pub idle_timeout_ms: Option<u64>,
    /// Graceful shutdown waits this long for in-flight work, ms.
    pub drain_timeout_ms: Option<u64>,
    /// Socket 0660 and directory 0750, of this group.
    pub socket_group: Option<u32>,
    /// Threads serving the clients (default 1).
    pub threads: Option<usize>,
    /// After a reply, how long to look for the client's next request before sleeping, µs
    /// (default 50; 0: never).
    pub busy_poll_us: Option<u64>,
    /// Who may use each key; a key not listed is refused to every client.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyAccess>,
}

impl AgentSection {
    /// A section with `socket` and nothing else set.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        AgentSection {
            socket: socket.into(),
            max_frame: None,
            rate_per_second: None,
            burst: None,
            max_connections: None,
            max_connections_per_uid: None,
            allow_same_uid: None,
            frame_timeout_ms: None,
            idle_timeout_ms: None,
            drain_timeout_ms: None,
            socket_group: None,
            threads: None,
            busy_poll_us: None,
            keys: BTreeMap::new(),
        }
    }
}

/// Who may use one key through the agent (`[agent.keys.NAME]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table [agent.keys.NAME]")]
pub struct KeyAccess {
    /// Peer uids allowed.
    #[serde(default)]
    pub uids: Vec<u32>,
    /// Peer gids allowed (the agent matches the primary and the supplementary groups).
    #[serde(default)]
    pub gids: Vec<u32>,
    /// Exchange ids allowed with this key; `None` allows every id the key's binding accepts.
    #[serde(default)]
    pub exchanges: Option<Vec<String>>,
}

impl KeyAccess {
    /// Access for these uids.
    pub fn uids(uids: impl IntoIterator<Item = u32>) -> Self {
        KeyAccess {
            uids: uids.into_iter().collect(),
            ..KeyAccess::default()
        }
    }

    /// Adds these gids.
    pub fn gids(mut self, gids: impl IntoIterator<Item = u32>) -> Self {
        self.gids.extend(gids);
        self
    }

    /// Restricts the key to these exchange ids.
    pub fn exchanges<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.exchanges = Some(ids.into_iter().map(Into::into).collect());
        self
    }
}
