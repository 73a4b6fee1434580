//! `hsm-custody audit tail`: the last lines of a log file.

use std::path::PathBuf;

use clap::Args;
use hsm_custody::audit;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// How many lines.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    pub n: usize,
    /// Log file.
    pub file: PathBuf,
}

pub fn run(args: TailArgs) -> anyhow::Result<()> {
    for line in audit::tail(&args.file, args.n)? {
        println!("{line}");
    }
    Ok(())
}
