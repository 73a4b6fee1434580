//! Signs a Binance spot limit order in the dev token and prints the HTTP request (no network).
//!
//! ```sh
//! ./softhsm-setup/setup.sh && cargo run --example binance_order
//! ```
//! The secret is the one from Binance's documentation; the key name is fresh on every run
//! (import never overwrites).

use hsm_custody::exchanges::Request;
use hsm_custody::{exchanges, Config, Custody, KeySpec, SecretString};

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let custody = Custody::connect(Config::from_env()?)?;
    let name = format!("binance-example-{}", std::process::id());
    let profile = exchanges::profile("binance").ok_or("no binance profile")?;
    custody.import_hmac_secret(
        KeySpec::hmac(&name)
            .exchange("binance")
            .encoding(profile.encoding)
            .algorithms(profile.algorithms),
        SecretString::from(DOC_SECRET),
    )?;

    let binance = custody.exchange_signer(&name)?;
    let order = Request::post("/api/v3/order")
        .query("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1")
        .recv_window("5000")
        .api_key(API_KEY);
    // The signed request borrows the method, path and API key from `order`.
    let signed = binance.sign(&order)?;

    println!(
        "{} https://api.binance.com{} HTTP/1.1",
        signed.method,
        signed.path_and_query()
    );
    for (name, value) in &signed.headers {
        println!("{name}: {value}");
    }
    println!();
    println!("{}", signed.body);
    eprintln!(
        "(signed in the token with key `{name}`; signature {})",
        signed.signature
    );
    Ok(())
}
