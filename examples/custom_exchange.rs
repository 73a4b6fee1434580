//! Adding an exchange outside the crate: implement `Exchange`, bind a key to its id, sign.
//!
//! ```sh
//! ./softhsm-setup/setup.sh && cargo run --example custom_exchange
//! ```
//! "Acme" is a made-up exchange: `X-ACME-SIGN = hex(HMAC-SHA256(secret, ts \n METHOD \n path \n
//! body))`, timestamp in ms. The keyed step still runs in the token: the trait hands you a
//! `Mac`, never the secret.

use std::sync::Arc;

use hsm_custody::exchanges::{
    Context, Exchange, ExchangeSigner, FixedClock, Request, SignedRequest,
};
use hsm_custody::{Config, Custody, HmacAlg, KeySpec, Mac, SecretString};

struct Acme;

impl Exchange for Acme {
    fn id(&self) -> &str {
        "acme"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> hsm_custody::Result<SignedRequest<'r>> {
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_ms().to_string());
        let method = req.method.clone().unwrap_or_else(|| "GET".into());
        let path = req.path.clone().unwrap_or_default();
        let body = req.body.clone().unwrap_or_default();
        let prehash = format!("{ts}\n{method}\n{path}\n{body}");
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        Ok(
            SignedRequest::new(method, path, "", body, signature.clone())
                .with_header_opt("X-ACME-KEY", req.api_key.as_deref())
                .with_header("X-ACME-TS", ts)
                .with_header("X-ACME-SIGN", signature),
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let custody = Custody::connect(Config::from_env()?)?;
    let name = format!("acme-example-{}", std::process::id());
    custody.import_hmac_secret(
        KeySpec::hmac(&name)
            .exchange("acme")
            .algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from("acme-example-secret"),
    )?;

    // The binding is checked here: a key bound to another exchange is refused.
    let acme = ExchangeSigner::new(Arc::new(Acme), custody.key(&name)?)?
        .with_clock(FixedClock(1_700_000_000_000));
    let order = Request::post("/v1/orders")
        .body(r#"{"qty":"1"}"#)
        .api_key("acme-key");
    let signed = acme.sign(&order)?;

    println!(
        "{} https://api.acme.example{} HTTP/1.1",
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
