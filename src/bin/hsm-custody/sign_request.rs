//! `hsm-custody sign-request` (issue 3: filled in with the exchange signers).

use std::path::PathBuf;

use clap::Args;

use crate::cli::Global;

#[derive(Args, Debug)]
pub struct SignRequestArgs {
    /// Key name.
    #[arg(long)]
    pub key: String,
    /// Exchange id.
    #[arg(long)]
    pub exchange: String,
    /// JSON file describing the request.
    #[arg(long)]
    pub request: PathBuf,
}

pub fn run(_global: &Global, _args: SignRequestArgs) -> anyhow::Result<()> {
    anyhow::bail!("sign-request is not implemented yet")
}
