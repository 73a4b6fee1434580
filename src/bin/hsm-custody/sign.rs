//! `hsm-custody sign`: MAC stdin's bytes in the token.

use std::io::Read as _;

use clap::Args;
use hsm_custody::HmacAlg;

use crate::cli::Global;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Key name.
    #[arg(long)]
    pub key: String,
    /// hmac-sha256, hmac-sha384 or hmac-sha512.
    #[arg(long, default_value = "hmac-sha256")]
    pub alg: String,
    /// Print lowercase hex (the default).
    #[arg(long, conflicts_with = "base64")]
    pub hex: bool,
    /// Print standard base64.
    #[arg(long)]
    pub base64: bool,
}

pub fn run(global: &Global, args: SignArgs) -> anyhow::Result<()> {
    let alg: HmacAlg = args.alg.parse()?;
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    let custody = global.connect()?;
    let mac = custody.key(&args.key)?.hmac(alg, &data)?;
    println!(
        "{}",
        if args.base64 {
            mac.to_base64()
        } else {
            mac.to_hex()
        }
    );
    Ok(())
}
