//! `hsm-custody key public`: a key's public key (PEM, SubjectPublicKeyInfo).

use clap::Args;

use crate::global::Global;

#[derive(Args, Debug)]
pub struct PublicArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
    /// Version (default: the active one).
    #[arg(long)]
    pub version: Option<u32>,
    /// PEM output (SubjectPublicKeyInfo); the only format so far, accepted for clarity.
    #[arg(long, default_value_t = true)]
    pub pem: bool,
}

pub fn run(global: &Global, args: PublicArgs) -> anyhow::Result<()> {
    let custody = global.connect()?;
    let mut key = custody.key(&args.name)?;
    if let Some(v) = args.version {
        key = key.version(v);
    }
    print!("{}", key.public_key_pem()?);
    Ok(())
}
