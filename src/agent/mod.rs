//! The signing agent (like ssh-agent, for exchange requests): one long-running process holds the
//! token login and the session pool and signs for other processes over a Unix socket.
//!
//! - Server (feature `agent`): [`Agent`], run by `hsm-custody agent`. Every signature goes
//!   through the [`crate::Custody`] it was given, so its guard rails (policy, audit) apply.
//!   Clients are told apart by `SO_PEERCRED` (uid, gid, pid); each key has an allow-list of
//!   uids/gids ([`KeyAccess`]); the socket is mode 0600 in a 0700 directory; frames are bounded;
//!   each client (uid + pid) has a rate limit; a bad frame closes that connection only; SIGTERM
//!   and SIGINT stop it gracefully.
//! - Client (feature `agent-client`, std only): [`AgentClient`]. It holds no PIN.
//!
//! The wire protocol (length-prefixed JSON, versioned) is written down in
//! `docs/agent-protocol.md`, enough to write a client in any language.

#[cfg(any(feature = "agent", feature = "agent-client"))]
mod busy;
#[cfg(feature = "agent-client")]
mod client;
#[cfg(feature = "agent")]
mod config;
mod protocol;
#[cfg(feature = "agent")]
pub(crate) mod server;

#[cfg(feature = "agent-client")]
pub use client::{AgentClient, AgentKey};
#[cfg(feature = "agent")]
pub use config::{refuse_env_pin, AgentConfig, KeyAccess};
pub use protocol::{wire_kinds, DEFAULT_MAX_FRAME, VERSION};
#[cfg(feature = "agent")]
pub use server::{runtime, shutdown_signal, Agent, ServeReport};
