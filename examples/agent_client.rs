//! A bot process that signs through `hsm-custody agent` instead of holding the PIN itself.
//!
//! ```sh
//! hsm-custody --config hsm-custody.toml agent &          # holds the login, see docs/agent.md
//! echo '{"method":"GET","path":"/api/v3/account","api_key":"..."}' |
//!   cargo run --example agent_client -- /run/hsm-custody/agent.sock binance-main binance
//! ```
//! Reads the request (the `sign-request` JSON format) from stdin and prints the signed request.

use std::io::Read as _;

use hsm_custody::agent::AgentClient;
use hsm_custody::exchanges::Request;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, key, exchange] = args.as_slice() else {
        return Err("usage: agent_client SOCKET KEY EXCHANGE < request.json".into());
    };
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let request = Request::from_json(&text)?;

    let mut agent = AgentClient::connect(socket)?;
    for k in agent.keys()? {
        eprintln!(
            "agent offers key `{}` (exchanges: {:?})",
            k.name, k.exchanges
        );
    }
    let signed = agent.sign(key, exchange, &request)?;
    println!("{} {}", signed.method, signed.path_and_query());
    for (name, value) in &signed.headers {
        println!("{name}: {value}");
    }
    if !signed.body.is_empty() {
        println!("\n{}", signed.body);
    }
    Ok(())
}
