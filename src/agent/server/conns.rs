//! The connections being served: admission (the agent's own uid, the per-uid limit, the
//! overall limit with idle-first eviction) and each connection's ticket in the table.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::Notify;

use super::ops::refusal;
use super::{Peer, Shared};
use crate::agent::protocol::kind;
use crate::error::ErrorKind;

/// The open connections. Only the accept loop adds entries; a connection's task marks itself
/// idle or busy and removes its entry when it ends (or the accept loop removes it on eviction).
#[derive(Default)]
pub(super) struct Conns {
    next_id: u64,
    open: std::collections::HashMap<u64, Conn>,
}

struct Conn {
    uid: u32,
    /// Since when the connection has waited for a request; `None` while it serves one.
    idle_since: Option<Instant>,
    /// Tells the connection's task to close at its next frame boundary.
    evict: Arc<Notify>,
}

/// A served connection's place in [`Shared::conns`]; gives it up on drop.
pub(super) struct Ticket {
    pub(super) shared: Arc<Shared>,
    id: u64,
    pub(super) evict: Arc<Notify>,
}

impl Ticket {
    /// Marks the connection as waiting for a request (evictable) or serving one.
    pub(super) fn set_idle(&self, idle: bool) {
        let mut conns = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = conns.open.get_mut(&self.id) {
            conn.idle_since = idle.then(Instant::now);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut conns = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        conns.open.remove(&self.id);
    }
}

/// Rule of the refusal of a client of the agent's own uid.
const RULE_SAME_UID: &str = "agent-same-uid";
/// Rule of the refusal of a uid's connection past `max_connections_per_uid`.
const RULE_PER_UID: &str = "agent-connections-per-uid";
/// Rule of the refusal of a connection when every connection is serving a request.
const RULE_FULL: &str = "agent-connections";

/// A new connection: served (with its ticket), or refused with this `err` object.
pub(super) fn admit_connection(
    shared: &Arc<Shared>,
    peer: &Peer,
) -> std::result::Result<Ticket, Value> {
    let config = &shared.config;
    if peer.uid == shared.own_uid && !config.allow_same_uid {
        let mut err = refusal(
            kind::FORBIDDEN,
            &format!(
                "uid {} is the agent's own uid: a process of that uid can read the agent's \
                 memory and files, so the agent does not serve it; run the client as another \
                 user in the socket's group, or set `allow_same_uid = true` in [agent] (tests \
                 and development only)",
                peer.uid
            ),
        );
        err["rule"] = json!(RULE_SAME_UID);
        return Err(err);
    }
    let mut conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
    let limit = config.per_uid_limit();
    if conns.open.values().filter(|c| c.uid == peer.uid).count() >= limit {
        let mut err = refusal(
            ErrorKind::Busy.wire_name(),
            &format!(
                "uid {} already has {limit} connections to the agent (max_connections_per_uid); \
                 close one or share one between threads",
                peer.uid
            ),
        );
        err["rule"] = json!(RULE_PER_UID);
        return Err(err);
    }
    if conns.open.len() >= config.max_connections {
        // Full: close the connection idle for longest (between requests, so that it loses no
        // reply); refuse the newcomer only when every connection is serving a request.
        let oldest = conns
            .open
            .iter()
            .filter_map(|(id, c)| c.idle_since.map(|t| (t, *id)))
            .min();
        let Some((_, id)) = oldest else {
            let mut err = refusal(
                ErrorKind::Busy.wire_name(),
                "every connection is serving a request (max_connections); retry later",
            );
            err["rule"] = json!(RULE_FULL);
            return Err(err);
        };
        if let Some(evicted) = conns.open.remove(&id) {
            tracing::info!(
                uid = evicted.uid,
                "agent full: closing the longest-idle connection"
            );
            evicted.evict.notify_one();
        }
    }
    let id = conns.next_id;
    conns.next_id += 1;
    let evict = Arc::new(Notify::new());
    conns.open.insert(
        id,
        Conn {
            uid: peer.uid,
            idle_since: Some(Instant::now()),
            evict: Arc::clone(&evict),
        },
    );
    Ok(Ticket {
        shared: Arc::clone(shared),
        id,
        evict,
    })
}
