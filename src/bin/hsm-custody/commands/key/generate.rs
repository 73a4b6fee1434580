//! `hsm-custody key generate`: a key pair generated inside the token; prints its public key.

use anyhow::Context as _;
use clap::Args;
use hsm_custody::{KeyKind, KeySpec};

use crate::global::Global;
use crate::input::{CredentialArgs, ValidityArgs};
use crate::values::PairKind;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Name of the new key.
    #[arg(long)]
    pub name: String,
    /// Key type.
    #[arg(long = "type", value_enum)]
    pub kind: PairKind,
    /// Exchange the key is for (binds it).
    #[arg(long)]
    pub exchange: Option<String>,
    #[command(flatten)]
    pub validity: ValidityArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub fn run(global: &Global, args: GenerateArgs) -> anyhow::Result<()> {
    let kind = KeyKind::from(args.kind);
    let mut spec = KeySpec::asymmetric(&args.name);
    if let Some(ex) = &args.exchange {
        spec = spec.exchange(ex);
    }
    let spec = args.validity.apply(spec);
    let custody = global.connect()?;
    let spec = args.credentials.apply(spec)?;
    let info = custody.generate_key(spec, kind)?;
    let pem = custody
        .key(&info.name)?
        .public_key_pem()
        .context("reading the new public key")?;
    let reused = super::reused_name(&info);
    eprintln!(
        "generated {kind} key `{}`{} in token `{}`{reused} (private key sensitive, non-extractable)",
        info.name,
        if reused.is_empty() { " v1" } else { "" },
        custody.token_label(),
    );
    print!("{pem}");
    Ok(())
}
