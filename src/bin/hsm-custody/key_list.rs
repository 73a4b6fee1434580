//! `hsm-custody key list`.

use clap::Args;

use crate::cli::Global;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: ListArgs) -> anyhow::Result<()> {
    let custody = global.connect()?;
    let keys = custody.list_keys()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:<4} {:<18} {:<7} {:<9} {:<11} {:<8}",
        "NAME", "KIND", "VER", "EXCHANGE", "ENC", "SENSITIVE", "EXTRACTABLE", "HARDENED"
    );
    for k in keys {
        println!(
            "{:<24} {:<8} {:<4} {:<18} {:<7} {:<9} {:<11} {:<8}",
            k.name,
            k.kind,
            k.version
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "-".into()),
            k.exchange.as_deref().unwrap_or("-"),
            k.encoding.map(|e| e.name()).unwrap_or("-"),
            yes_no(k.flags.sensitive),
            yes_no(k.flags.extractable),
            if k.flags.is_hardened() { "yes" } else { "NO" },
        );
    }
    Ok(())
}

fn yes_no(f: Option<bool>) -> &'static str {
    match f {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}
