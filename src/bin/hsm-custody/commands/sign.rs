//! `hsm-custody sign`: sign stdin's bytes in the token with any key kind: an HMAC for an HMAC
//! key, the key's own algorithm for an asymmetric one (Ed25519; ECDSA P-256 with SHA-256 as
//! raw `r || s`; RSA PKCS#1 v1.5 with SHA-256). `--version N` signs with that version (a
//! pending one to test before `rotate promote`, or a previous one during overlap).

use std::io::Read as _;

use clap::Args;
use hsm_custody::KeyKind;

use crate::global::Global;
use crate::values::Alg;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Key name.
    #[arg(long)]
    pub key: String,
    /// HMAC algorithm (default hmac-sha256); asymmetric keys sign with their own algorithm.
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,
    /// Sign with this version instead of the active one (e.g. a pending version before
    /// promoting it).
    #[arg(long)]
    pub version: Option<u32>,
    /// Print lowercase hex (the default for HMAC keys).
    #[arg(long, conflicts_with_all = ["base64", "base64url"])]
    pub hex: bool,
    /// Print standard base64 (the default for asymmetric keys).
    #[arg(long, conflicts_with = "base64url")]
    pub base64: bool,
    /// Print URL-safe base64 without padding (JWTs).
    #[arg(long)]
    pub base64url: bool,
}

pub fn run(global: &Global, args: SignArgs) -> anyhow::Result<()> {
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    let custody = global.connect()?;
    let mut key = custody.key(&args.key)?;
    if let Some(n) = args.version {
        key = key.version(n);
    }
    let hmac = key.kind() == KeyKind::Hmac;
    let signature = if hmac {
        key.hmac(args.alg.unwrap_or(Alg::HmacSha256).into(), &data)?
    } else {
        if let Some(alg) = args.alg {
            return Err(crate::exit::input(format!(
                "--alg {} is for HMAC keys: `{}` is a {} key and signs with its own algorithm",
                clap::ValueEnum::to_possible_value(&alg)
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default(),
                args.key,
                key.kind().name()
            )));
        }
        key.sign(&data)?
    };
    let text = if args.base64url {
        signature.to_base64url()
    } else if args.base64 || (!hmac && !args.hex) {
        signature.to_base64()
    } else {
        signature.to_hex()
    };
    println!("{text}");
    Ok(())
}
