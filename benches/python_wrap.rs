//! What a ccxt bot pays per private request through the Python adapter (issue 29): stock ccxt
//! signing with the secret in memory against the same ccxt instance wrapped with
//! `hsm_custody.ccxt.wrap`, whose signatures come from the agent through the guard rails.
//!
//! `cargo bench --bench python_wrap` (5 rounds) or `cargo bench --bench python_wrap -- --quick`
//! (3 rounds, fewer calls); `--rounds N`, `--iterations N`; `--profile` prints a cProfile of
//! the wrapped sign loop instead of the table. The measuring is done by
//! `benches/python_wrap.py` (its docstring says how), run with the ccxt virtualenv of
//! `python/venv.sh` (`HSM_CUSTODY_PY_VENV` or `target/py-venv`) and this tree's
//! `python/hsm_custody` first on `PYTHONPATH`; when that virtualenv cannot be made (no
//! python3-venv, no pip registry) the bench says so and exits 0.
//!
//! Setup as `benches/agent.rs`: a fresh SoftHSM2 token in a temp dir (module from
//! `HSM_CUSTODY_BENCH_MODULE`, default Debian's SoftHSM2), a Binance and an OKX key imported
//! through the crate (API key and, for OKX, passphrase recorded), guard rails with a policy
//! that allows the benched endpoints, a rate limit that never refuses and the audit log with
//! `fsync = "batch"`, and the agent in this process on a single-threaded runtime
//! (`[agent] threads = 1`, the default) on its own thread.

#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use hsm_custody::agent::{AgentConfig, KeyAccess};
use hsm_custody::{exchanges, Config, Custody, GuardConfig, Guardrails, KeySpec, SecretString};

use common::BenchEnv;

/// Test values of this bench only (the secret is Binance's documentation example).
const BN_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const BN_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const OKX_SECRET: &str = "3F1C8B2E5D7A9E0B4C6D8F1A2B3C4D5E";
const OKX_API_KEY: &str = "5b1a8b6e-0c4d-4c2e-9f3a-bench0000001";
const OKX_PASSPHRASE: &str = "bench-passphrase";

/// The ccxt virtualenv's Python, made or brought up to date by `python/venv.sh`; `None`
/// (with the reason printed) when it cannot be made.
fn venv_python(root: &Path) -> Option<std::path::PathBuf> {
    let out = Command::new(root.join("python/venv.sh"))
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let venv = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let python = Path::new(&venv).join("bin/python");
            python.exists().then_some(python)
        }
        Ok(o) => {
            eprintln!("python/venv.sh failed ({})", o.status);
            None
        }
        Err(e) => {
            eprintln!("python/venv.sh could not run: {e}");
            None
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Sets SOFTHSM2_CONF before the module is first loaded (single-threaded here).
    let env = BenchEnv::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(python) = venv_python(root) else {
        println!(
            "python_wrap: skipped, the ccxt virtualenv could not be made (python/venv.sh needs \
             python3 with venv and pip, and the pip registry; or set HSM_CUSTODY_PY_VENV to a \
             venv with ccxt 4.5.90)"
        );
        return Ok(());
    };
    eprintln!(
        "SoftHSM2 token directory in {} ({})",
        env.dir.path().display(),
        env.conf.display()
    );
    let module = env.module.clone();
    let (so, user) = (
        SecretString::from("bench-so"),
        SecretString::from("bench-user"),
    );
    hsm_custody::admin::init_token(&module, "pywrap-bench", &so, &user)?;
    let custody = Custody::connect(Config::new(&module, "pywrap-bench").pin(user))?;
    for (name, exchange, secret, api_key, passphrase) in [
        ("bn", "binance", BN_SECRET, BN_API_KEY, None),
        ("okx", "okx", OKX_SECRET, OKX_API_KEY, Some(OKX_PASSPHRASE)),
    ] {
        let profile = exchanges::profile(exchange).ok_or("no exchange profile")?;
        let mut spec = KeySpec::hmac(name)
            .exchange(exchange)
            .encoding(profile.encoding)
            .algorithms(profile.algorithms)
            .api_key(api_key);
        if let Some(p) = passphrase {
            spec = spec.passphrase(SecretString::from(p));
        }
        custody.import_hmac_secret(spec, SecretString::from(secret))?;
    }
    // The guard rails as deployed: a policy allowing the benched endpoints, a rate limit
    // high enough never to refuse, the MAC-chained audit log with fsync = "batch".
    let audit = env.dir.path().join("audit.jsonl");
    let toml = format!(
        "[audit]\npath = '{}'\nfsync = 'batch'\n\
         [keys.bn]\nexchange = 'binance'\nallow = ['POST /api/v3/order', 'GET /api/v3/*']\n\
         rate_per_second = 100000000\nburst = 100000000\n\
         [keys.okx]\nexchange = 'okx'\nallow = ['POST /api/v5/trade/order']\n\
         rate_per_second = 100000000\nburst = 100000000\n",
        audit.display()
    );
    let guard = GuardConfig::from_toml_str(&toml)?.ok_or("guard config")?;
    let guardrails = Guardrails::install(&custody, guard)?;

    // The agent, in this process, on a single-threaded runtime on its own thread.
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata(env.dir.path())?.uid();
    let socket = env.dir.path().join("run").join("agent.sock");
    let config = AgentConfig::new(&socket)
        // Bench setup: the caller is this process's own uid (its Python child).
        .allow_same_uid(true)
        .rate(1_000_000, 1_000_000)
        .allow("bn", KeyAccess::uids([uid]))
        .allow("okx", KeyAccess::uids([uid]));
    let agent = common::RunningAgent::start(custody.clone(), config, 1)?;

    // The secrets go to the script on stdin (never argv); its table goes to our stdout.
    let setup = serde_json::json!({
        "socket": socket,
        "venues": [
            {"ccxt": "binance", "key": "bn", "secret": BN_SECRET, "apiKey": BN_API_KEY,
             "password": null},
            {"ccxt": "okx", "key": "okx", "secret": OKX_SECRET, "apiKey": OKX_API_KEY,
             "password": OKX_PASSPHRASE},
        ],
    });
    let pythonpath = match std::env::var_os("PYTHONPATH") {
        Some(p) if !p.is_empty() => {
            let mut v = root.join("python").into_os_string();
            v.push(":");
            v.push(p);
            v
        }
        _ => root.join("python").into_os_string(),
    };
    let mut child = Command::new(&python)
        .arg(root.join("benches/python_wrap.py"))
        .args(&args)
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("child stdin")?
        .write_all(setup.to_string().as_bytes())?;
    let status = child.wait()?;

    agent.stop()?;
    guardrails.sync()?;
    if !status.success() {
        return Err(format!("benches/python_wrap.py failed ({status})").into());
    }
    Ok(())
}
