//! Signs a Kraken `Balance` request in the dev token and prints the HTTP request (no network).
//!
//! ```sh
//! ./softhsm-setup/setup.sh && cargo run --example kraken_balance
//! ```
//! The secret is the one from Kraken's documentation (base64; the profile decodes it); the nonce
//! comes from the default source, strictly increasing even across threads.

use hsm_custody::exchanges::Request;
use hsm_custody::{exchanges, Config, Custody, KeySpec, SecretString};

const DOC_SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let custody = Custody::connect(Config::from_env()?)?;
    let name = format!("kraken-example-{}", std::process::id());
    let profile = exchanges::profile("kraken").ok_or("no kraken profile")?;
    custody.import_hmac_secret(
        KeySpec::hmac(&name)
            .exchange("kraken")
            .encoding(profile.encoding)
            .algorithms(profile.algorithms),
        SecretString::from(DOC_SECRET),
    )?;

    let kraken = custody.exchange_signer(&name)?;
    let balance = Request::post("/0/private/Balance").api_key("your-public-api-key");
    let signed = kraken.sign(&balance)?;

    println!(
        "{} https://api.kraken.com{} HTTP/1.1",
        signed.method,
        signed.path_and_query()
    );
    for (name, value) in &signed.headers {
        println!("{name}: {value}");
    }
    println!("Content-Length: {}", signed.body.len());
    println!();
    println!("{}", signed.body);
    Ok(())
}
