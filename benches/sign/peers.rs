//! The peers, python-pkcs11 and crypto11 (Go), run as child processes on the same token
//! (installed by `benches/peers/setup.sh`; a missing one is reported as an error row).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hsm_custody::{HmacAlg, SecretString};
use secrecy::ExposeSecret;

use crate::cases::{Case, Runner};
use crate::measure::{median, Measure};
use crate::token::{BenchKey, BenchToken};

pub struct PeerCmd {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub pin: SecretString,
    /// Run N single-threaded processes instead of N threads (python-pkcs11 calls
    /// `C_Initialize(NULL)`, which tells the module that no two threads will call it at once:
    /// SoftHSM2 then runs without locks and concurrent threads fail with CKR_GENERAL_ERROR).
    pub processes_for_threads: bool,
}

pub fn run_peer(cmd: &PeerCmd, threads: usize, secs: f64) -> Result<Measure, String> {
    if cmd.processes_for_threads && threads > 1 {
        // N processes at once; each warms up, then waits for the common start time, so their
        // windows overlap. Throughput adds up; p50 is the median and p99 the worst of theirs.
        let start_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            + 1.5
            + 0.1 * threads as f64;
        let children: Vec<_> = (0..threads)
            .map(|i| {
                // Staggered starts: SoftHSM2 processes that open the token directory at the
                // same moment can miss the token.
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Command::new(&cmd.program)
                    .args(&cmd.args)
                    .args(["--threads", "1", "--seconds", &secs.to_string()])
                    .args(["--start-at", &format!("{start_at:.3}")])
                    .env("PEER_PIN", cmd.pin.expose_secret())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("{}: {e}", cmd.program.display()))
            })
            .collect::<Result<_, _>>()?;
        let mut ms = Vec::new();
        for child in children {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            ms.push(parse_peer(&out)?);
        }
        return Ok(Measure {
            ops: ms.iter().map(|m| m.ops).sum(),
            ops_per_s: ms.iter().map(|m| m.ops_per_s).sum(),
            p50_us: median(ms.iter().map(|m| m.p50_us).collect()),
            p99_us: ms.iter().map(|m| m.p99_us).fold(0.0, f64::max),
            p999_us: ms.iter().map(|m| m.p999_us).fold(0.0, f64::max),
            max_us: ms.iter().map(|m| m.max_us).fold(0.0, f64::max),
        });
    }
    let out = Command::new(&cmd.program)
        .args(&cmd.args)
        .args([
            "--threads",
            &threads.to_string(),
            "--seconds",
            &secs.to_string(),
        ])
        .env("PEER_PIN", cmd.pin.expose_secret())
        .output()
        .map_err(|e| format!("{}: {e}", cmd.program.display()))?;
    parse_peer(&out)
}

pub fn parse_peer(out: &std::process::Output) -> Result<Measure, String> {
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("peer output `{}`: {e}", line.trim()))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Measure {
        ops: f("ops") as u64,
        ops_per_s: f("ops_per_s"),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        p999_us: f("p999_us"),
        max_us: f("max_us"),
    })
}

pub struct Peers {
    pub python: Option<PathBuf>,
    pub crypto11: Option<PathBuf>,
    pub script: PathBuf,
}

impl Peers {
    pub fn find(root: &Path) -> Peers {
        let bench = root.join("target/bench");
        let python = bench.join("venv/bin/python");
        let go = bench.join("crypto11-bench");
        Peers {
            python: python.exists().then_some(python),
            crypto11: go.exists().then_some(go),
            script: root.join("benches/peers/python_pkcs11_bench.py"),
        }
    }

    pub fn cases<'a>(
        &self,
        module: &Path,
        t: &BenchToken,
        key: &BenchKey,
        msg: &[u8],
        suffix: &str,
        baseline: &str,
    ) -> Vec<Case<'a>> {
        let alg = match key.alg {
            HmacAlg::HmacSha256 => "sha256",
            HmacAlg::HmacSha384 => "sha384",
            HmacAlg::HmacSha512 => "sha512",
        };
        let common = vec![
            "--module".to_owned(),
            module.display().to_string(),
            "--token".to_owned(),
            t.label.clone(),
            "--key".to_owned(),
            key.name.to_owned(),
            "--alg".to_owned(),
            alg.to_owned(),
            "--msg-hex".to_owned(),
            hex::encode(msg),
        ];
        let mut v = Vec::new();
        let missing = PathBuf::from("(not installed: run benches/peers/setup.sh)");
        let mut py_args = vec![
            "-X".to_owned(),
            "utf8".to_owned(),
            self.script.display().to_string(),
        ];
        py_args.extend(common.iter().cloned());
        v.push(Case {
            name: format!("python-pkcs11 {suffix}"),
            baseline: Some(baseline.to_owned()),
            threads: None,
            runner: Runner::Peer(PeerCmd {
                program: self.python.clone().unwrap_or_else(|| missing.clone()),
                args: py_args,
                pin: t.pin.clone(),
                processes_for_threads: true,
            }),
        });
        v.push(Case {
            name: format!("crypto11 {suffix}"),
            baseline: Some(baseline.to_owned()),
            threads: None,
            runner: Runner::Peer(PeerCmd {
                program: self.crypto11.clone().unwrap_or(missing),
                args: common,
                pin: t.pin.clone(),
                processes_for_threads: false,
            }),
        });
        v
    }
}
