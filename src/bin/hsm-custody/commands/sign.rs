//! `hsm-custody sign`: MAC stdin's bytes in the token.

use std::io::Read as _;

use clap::Args;

use crate::global::Global;
use crate::values::Alg;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Key name.
    #[arg(long)]
    pub key: String,
    /// HMAC algorithm.
    #[arg(long, value_enum, default_value_t = Alg::HmacSha256)]
    pub alg: Alg,
    /// Print lowercase hex (the default).
    #[arg(long, conflicts_with = "base64")]
    pub hex: bool,
    /// Print standard base64.
    #[arg(long)]
    pub base64: bool,
}

pub fn run(global: &Global, args: SignArgs) -> anyhow::Result<()> {
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    let custody = global.connect()?;
    let mac = custody.key(&args.key)?.hmac(args.alg.into(), &data)?;
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
