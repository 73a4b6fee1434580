//! Quickstart: import Binance's documented example secret into the dev token, sign the
//! documented query *in the token*, show that the token refuses to reveal the key, and revoke
//! the demo key again (its token objects are destroyed), so runs leave no usable key behind.
//!
//! ```sh
//! ./softhsm-setup/setup.sh && cargo run --example quickstart
//! ```
//!
//! The secret below is the public example from Binance's API documentation (SIGNED endpoint
//! security), not a real credential.

use hsm_custody::{Config, Custody, HmacAlg, KeySpec, SecretString};

const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const DOC_QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
const DOC_SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let custody = Custody::connect(config)?;
    let info = custody.token_info()?;
    println!(
        "token       : {} ({} {})",
        info.label, info.manufacturer, info.model
    );

    // A fresh name each run: an existing key is never overwritten.
    let name = format!("binance-doc-{}", std::process::id());
    let spec = KeySpec::hmac(&name)
        .exchange("binance")
        .algorithms(&[HmacAlg::HmacSha256]);
    let imported = custody.import_hmac_secret(spec, SecretString::from(DOC_SECRET))?;
    println!(
        "imported    : {} (sensitive={:?}, extractable={:?}, self-check passed)",
        imported.name, imported.flags.sensitive, imported.flags.extractable
    );

    let key = custody.key(&name)?;
    let signature = key
        .hmac(HmacAlg::HmacSha256, DOC_QUERY.as_bytes())?
        .to_hex();
    println!("query       : {DOC_QUERY}");
    println!("signature   : {signature}");
    println!("documented  : {DOC_SIGNATURE}");
    if signature != DOC_SIGNATURE {
        return Err("the token's signature differs from Binance's documented one".into());
    }
    println!("match       : yes");

    let refusal = custody.value_read_refusal(&name)?;
    println!("read value  : refused by the token ({refusal})");

    // The demo key has served its purpose: revoke every version (the token objects are
    // destroyed), so repeated runs do not fill the token with copies of a public secret.
    let revoked = custody.revoke(&name, None)?;
    let revoked: Vec<String> = revoked.iter().map(|v| format!("v{v}")).collect();
    println!("removed     : {name} ({} revoked)", revoked.join(", "));
    Ok(())
}
