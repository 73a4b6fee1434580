//! `hsm-custody agent`: a long-running signing agent on a Unix socket.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use hsm_custody::agent::{shutdown_signal, Agent, AgentConfig};

use crate::exit;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Socket path (overrides `socket` in the config's `[agent]` section). Its directory is
    /// created with mode 0700 when absent; the socket is made mode 0600.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub fn run(global: &Global, args: AgentArgs) -> anyhow::Result<()> {
    // The file is read once: its `[agent]` section came typed with the connection's settings.
    let connection = global.config()?;
    let config = match (AgentConfig::from_config(&connection), args.socket) {
        (Some(c), Some(socket)) => c.socket(socket),
        (Some(c), None) => c,
        (None, Some(socket)) => AgentConfig::new(socket),
        (None, None) => {
            return Err(exit::config(
                "no socket: pass --socket or set `socket` in [agent]",
            ))
        }
    };
    // The login and the guard rails ([keys] policy, [audit]) are the agent's; clients never see
    // the PIN, and every signature they ask for goes through the guard installed here.
    // A PIN in the environment is readable in /proc/<pid>/environ by every process of the
    // agent's uid for as long as it runs (issue 26): refused before the login.
    hsm_custody::agent::refuse_env_pin(&connection)?;
    let (custody, guard) = global.connect_guarded_with(connection)?;
    if guard.is_none() {
        eprintln!(
            "hsm-custody agent: warning: the configuration has no [keys]/[audit] guard rails; \
             signing without policy or audit"
        );
    }
    let runtime = hsm_custody::agent::runtime().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        // Handlers first: a SIGTERM right after the socket appears must still stop cleanly.
        let shutdown = shutdown_signal()?;
        let agent = Agent::bind(custody, config).await?;
        eprintln!(
            "hsm-custody agent: listening on {}",
            agent.socket_path().display()
        );
        agent.serve(shutdown).await
    })?;
    if let Some(guard) = guard {
        guard.sync().context("syncing the audit log")?;
    }
    eprintln!(
        "hsm-custody agent: stopped ({} connections served, {} cut at the drain timeout)",
        report.connections, report.aborted
    );
    Ok(())
}
