//! `hsm-custody doctor` (issue 6). Placeholder until the checks land.

use clap::Args;

use crate::cli::Global;

#[derive(Args, Debug)]
pub struct DoctorArgs {}

pub fn run(_global: &Global, _args: DoctorArgs) -> anyhow::Result<()> {
    anyhow::bail!("doctor is not implemented yet")
}
