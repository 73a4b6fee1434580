//! Signs an OKX v5 order in the dev token and prints the HTTP request (no network).
//!
//! ```sh
//! ./softhsm-setup/setup.sh && cargo run --example okx_order
//! ```
//! The secret and passphrase are those of OKX's published SDK example; the ISO timestamp comes
//! from the system clock.

use hsm_custody::exchanges::Request;
use hsm_custody::{exchanges, Config, Custody, KeySpec, SecretString};

const DOC_SECRET: &str = "E65791902180E9EF4510DB6A77F6EBAE";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let custody = Custody::connect(Config::from_env()?)?;
    let name = format!("okx-example-{}", std::process::id());
    let profile = exchanges::profile("okx").ok_or("no okx profile")?;
    custody.import_hmac_secret(
        KeySpec::hmac(&name)
            .exchange("okx")
            .encoding(profile.encoding)
            .algorithms(profile.algorithms),
        SecretString::from(DOC_SECRET),
    )?;

    let okx = custody.exchange_signer(&name)?;
    let order = Request::post("/api/v5/trade/order")
        .body(r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","px":"2.15","sz":"2"}"#)
        .api_key("okx-test-api-key")
        .passphrase("TestPassphrase1!");
    let signed = okx.sign(&order)?;

    println!(
        "{} https://www.okx.com{} HTTP/1.1",
        signed.method,
        signed.path_and_query()
    );
    for (name, value) in &signed.headers {
        println!("{name}: {value}");
    }
    println!();
    println!("{}", signed.body);
    Ok(())
}
