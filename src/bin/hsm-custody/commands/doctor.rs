//! `hsm-custody doctor`: check the module and audit every key in the token.

use clap::Args;

use crate::global::Global;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the report; fails (exit 1) when it holds a problem.
pub fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<()> {
    let report = hsm_custody::doctor::run(&global.config()?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    match report.problems() {
        0 => Ok(()),
        n => anyhow::bail!("doctor found {n} problem(s); see the findings above"),
    }
}
