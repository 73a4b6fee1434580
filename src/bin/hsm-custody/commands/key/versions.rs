//! `hsm-custody key versions`: every version of a key with its state and validity.

use clap::Args;

use crate::commands::rfc3339;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// Key name (like the other key commands).
    #[arg(
        long = "name",
        value_name = "NAME",
        required_unless_present = "positional_name"
    )]
    pub name: Option<String>,
    /// Key name, positional: the older form, still accepted.
    #[arg(value_name = "NAME", conflicts_with = "name", hide = true)]
    pub positional_name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: VersionsArgs) -> anyhow::Result<()> {
    let Some(name) = args.name.or(args.positional_name) else {
        return Err(crate::exit::input(
            "key versions: give the key with `--name NAME`",
        ));
    };
    let custody = global.connect()?;
    let info = custody.key_info(&name)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info.versions)?);
        return Ok(());
    }
    let today = time::OffsetDateTime::now_utc().date();
    println!(
        "key `{}` ({}), exchange: {}",
        info.name,
        info.kind.map_or("foreign", |k| k.name()),
        info.exchange.as_deref().unwrap_or("-")
    );
    println!(
        "{:<8} {:<9} {:<21} {:<11} {:<11} {:<9} ORIGIN",
        "VERSION", "STATE", "CREATED", "NOT-BEFORE", "NOT-AFTER", "VALID"
    );
    for v in &info.versions {
        let opt = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "v{:<7} {:<9} {:<21} {:<11} {:<11} {:<9} {}",
            v.version,
            v.state.name(),
            rfc3339(v.created),
            opt(v.not_before),
            opt(v.not_after),
            if !v.state.is_usable() {
                "-"
            } else if v.valid_on(today) {
                "yes"
            } else {
                "NO"
            },
            v.origin,
        );
    }
    Ok(())
}
