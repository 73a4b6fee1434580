//! `hsm-custody key adopt`: takes into custody an HMAC key provisioned by another tool.

use clap::Args;
use hsm_custody::HmacAlg;

use super::{hmac_spec, yes_no};
use crate::global::Global;
use crate::input::{CredentialArgs, ValidityArgs};
use crate::values::Alg;

#[derive(Args, Debug)]
pub struct AdoptArgs {
    /// Label of the secret key already in the token; becomes the managed key's name.
    #[arg(long)]
    pub name: String,
    /// Exchange the key is for: binds the key and picks its HMAC algorithms.
    #[arg(long)]
    pub exchange: Option<String>,
    /// HMAC algorithm the key may use (repeatable; default: the exchange's, else all three).
    /// A TPM key is bound to one hash: name that one.
    #[arg(long = "algorithm", value_enum)]
    pub algorithms: Vec<Alg>,
    #[command(flatten)]
    pub validity: ValidityArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub fn run(global: &Global, args: AdoptArgs) -> anyhow::Result<()> {
    let (mut spec, _) = hmac_spec(&args.name, args.exchange.as_deref(), &args.validity)?;
    if !args.algorithms.is_empty() {
        let algorithms: Vec<HmacAlg> = args.algorithms.iter().map(|a| (*a).into()).collect();
        spec = spec.algorithms(&algorithms);
    }
    let spec = args.credentials.apply(spec)?;
    let custody = global.connect()?;
    let info = custody.adopt_hmac_key(spec)?;
    println!(
        "adopted `{}` in token `{}` (exchange: {}, algorithms: {}, sensitive: {}, extractable: {})",
        info.name,
        custody.token_label(),
        info.exchange.as_deref().unwrap_or("-"),
        info.algorithms
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(","),
        yes_no(info.flags.sensitive),
        yes_no(info.flags.extractable),
    );
    Ok(())
}
