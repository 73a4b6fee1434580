//! The bench's command line: `--quick`, `--secs S`, `--rounds N`, `--threads 1,2,4,8`,
//! `--keys 1,100,1000`, `--no-peers`, `--only SUBSTRING`, `--help`. Unknown flags are ignored
//! (`cargo bench` passes `--bench`).

const USAGE: &str = "\
usage: cargo bench --bench sign -- [options]

  --quick             smoke run: threads 1,8; keys 1,100; 3 rounds of 0.1 s
  --secs S            seconds per case per round (0.25; quick 0.1)
  --rounds N          interleaved rounds per cell (5; quick 3)
  --threads LIST      thread counts, e.g. 1,2,4,8
  --keys LIST         keys in the token, e.g. 1,100,1000
  --no-peers          skip python-pkcs11 and crypto11
  --only SUBSTRING    only the cases whose name contains it (and their baselines)

environment: HSM_CUSTODY_BENCH_MODULE (default Debian's SoftHSM2)
output: a Markdown table on stdout, target/bench/results*.json";

/// The run's settings.
pub struct Opts {
    pub quick: bool,
    pub secs: f64,
    pub rounds: usize,
    pub threads: Vec<usize>,
    pub keys: Vec<usize>,
    pub peers: bool,
    /// Only the cases whose name contains this (plus their baselines).
    pub only: Option<String>,
}

pub fn list(v: &str) -> Vec<usize> {
    v.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

impl Opts {
    pub fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = if quick {
            Opts {
                quick,
                secs: 0.1,
                rounds: 3,
                threads: vec![1, 8],
                keys: vec![1, 100],
                peers: true,
                only: None,
            }
        } else {
            Opts {
                quick,
                secs: 0.25,
                rounds: 5,
                threads: vec![1, 2, 4, 8],
                keys: vec![1, 100, 1000],
                peers: true,
                only: None,
            }
        };
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--secs" => o.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(o.secs),
                "--rounds" => o.rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(1),
                "--threads" => o.threads = it.next().map(|v| list(v)).unwrap_or_default(),
                "--keys" => o.keys = it.next().map(|v| list(v)).unwrap_or_default(),
                "--no-peers" => o.peers = false,
                "--only" => o.only = it.next().cloned(),
                _ => {} // `cargo bench` passes `--bench`; other flags are ignored
            }
        }
        o.rounds = o.rounds.max(1);
        o
    }
}
