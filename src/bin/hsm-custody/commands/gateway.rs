//! `hsm-custody gateway`: the re-signing gateway for unmodified bots (docs/gateway.md), and
//! `gateway ccxt-config`, the ccxt constructor settings that point a bot at it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use hsm_custody::gateway::{ccxt_id, Gateway, GatewayConfig};

use crate::global::Global;

#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// Loopback address to listen on (overrides `listen` in [gateway]).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Print the JSON for ccxt's constructor (freqtrade's `ccxt_config`) that sends a route's
    /// exchange through the gateway in the base-URL form (works with ccxt for Python 4.5.90,
    /// whose `proxyUrl` is broken).
    CcxtConfig(CcxtConfigArgs),
}

#[derive(Args, Debug)]
pub struct CcxtConfigArgs {
    /// The route (its `name` in [[gateway.route]]).
    #[arg(long)]
    pub route: String,
    /// The Python with ccxt installed (the bot's): ccxt's own URL table is read from it.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// The gateway's URL as the bot reaches it (default: from `listen`).
    #[arg(long)]
    pub gateway_url: Option<String>,
}

fn config(global: &Global) -> anyhow::Result<(hsm_custody::Config, GatewayConfig)> {
    if global.config.is_none() {
        return Err(crate::exit::config(
            "the gateway reads [gateway] from the configuration file: pass --config",
        ));
    }
    let connection = global.config()?;
    let gateway = GatewayConfig::from_config(&connection)?
        .ok_or_else(|| crate::exit::config("the configuration file has no [gateway] section"))?;
    Ok((connection, gateway))
}

pub fn run(global: &Global, args: GatewayArgs) -> anyhow::Result<()> {
    let (connection, mut config) = config(global)?;
    if let Some(GatewayCommand::CcxtConfig(a)) = args.command {
        return ccxt_config(&config, a);
    }
    if let Some(listen) = args.listen {
        config = config.listen(listen);
    }
    hsm_custody::agent::refuse_env_pin(&connection)?;
    let (custody, guard) = global.connect_guarded_with(connection)?;
    if guard.is_none() {
        eprintln!(
            "hsm-custody gateway: warning: the configuration has no [keys]/[audit] guard rails; \
             signing without policy or audit"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hsm-custody-gateway")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = hsm_custody::agent::shutdown_signal()?;
        let gateway = Gateway::bind(custody, guard.clone(), config).await?;
        eprintln!(
            "hsm-custody gateway: listening on {}",
            gateway.local_addr()?
        );
        gateway.serve(shutdown).await
    })?;
    if let Some(guard) = guard {
        guard.sync().context("syncing the audit log")?;
    }
    eprintln!("hsm-custody gateway: stopped");
    Ok(())
}

fn ccxt_config(config: &GatewayConfig, args: CcxtConfigArgs) -> anyhow::Result<()> {
    let Some(route) = config.routes().iter().find(|r| r.name == args.route) else {
        return Err(crate::exit::config(format!(
            "no [[gateway.route]] named `{}`",
            args.route
        )));
    };
    let id = ccxt_id(&route.exchange);
    // ccxt's URL table, from the bot's own ccxt (the id is one of the gateway's, a fixed set).
    // Hostname placeholders (`https://{hostname}`) filled in by ccxt itself.
    let script = format!(
        "import json, ccxt\nex = ccxt.{id}()\ndef f(n):\n    if isinstance(n, dict): \
         return {{k: f(v) for k, v in n.items()}}\n    if isinstance(n, list): return \
         [f(v) for v in n]\n    return ex.implode_hostname(n) if isinstance(n, str) else n\n\
         print(json.dumps(f(ex.urls['api'])))"
    );
    let out = std::process::Command::new(&args.python)
        .args(["-c", &script])
        .output()
        .with_context(|| format!("running {}", args.python.display()))?;
    if !out.status.success() {
        bail!(
            "{} could not read ccxt.{id}().urls: {}",
            args.python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let tree: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("ccxt's urls are not JSON")?;
    let gateway = match args.gateway_url {
        Some(url) => url,
        None => match config.listen_addr() {
            Some(addr) => format!("http://{addr}"),
            None => {
                return Err(crate::exit::config(
                    "pass --gateway-url: [gateway] has no `listen`",
                ))
            }
        },
    };
    let api = config.rewrite_ccxt_urls(&tree, &gateway);
    // The secret ccxt signs with: the Python package's placeholder (base64 of a text saying
    // where the real secret is), useless if leaked.
    use base64::Engine as _;
    let placeholder = base64::engine::general_purpose::STANDARD
        .encode("hsm-custody placeholder: the API secret is in the PKCS#11 token, not here");
    println!(
        "{}",
        serde_json::json!({ "urls": { "api": api }, "secret": placeholder })
    );
    Ok(())
}
