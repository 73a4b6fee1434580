//! `hsm-custody key revoke`: destroys a version (or every version) of a key at once.

use clap::Args;

use super::version_list;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
    /// The version to revoke.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub version: Option<u32>,
    /// Revoke every usable version.
    #[arg(long)]
    pub all: bool,
}

pub fn run(global: &Global, args: RevokeArgs) -> anyhow::Result<()> {
    let revoked = global
        .connect()?
        .revoke(&args.name, if args.all { None } else { args.version })?;
    println!(
        "`{}`: revoked and destroyed {}",
        args.name,
        version_list(&revoked)
    );
    Ok(())
}
