//! What the bench binaries share: a private SoftHSM2 token directory, and a raw cryptoki
//! context from `tests/support/raw_pkcs11.rs` (the one test-side module with `unsafe` code; the
//! bench binaries deny it everywhere else).

use std::path::PathBuf;

#[path = "../../tests/support/softhsm_dir.rs"]
mod softhsm_dir;

#[path = "../../tests/support/raw_pkcs11.rs"]
mod raw_pkcs11;
#[allow(unused_imports)] // the sign bench uses it, the others do not
pub use raw_pkcs11::raw_context;

#[path = "../../tests/support/stderr_log.rs"]
#[allow(dead_code)] // the agent_memory bench uses it, the others do not
pub mod stderr_log;

/// A deterministic 64-character printable secret (the length exchanges issue) from `seed`.
#[allow(dead_code)] // the sign and agent_memory benches use it, the others do not
pub fn secret_text(seed: u64) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

/// Debian's SoftHSM2; `HSM_CUSTODY_BENCH_MODULE` overrides it.
const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A temp dir holding a SoftHSM2 configuration and token directory, with `SOFTHSM2_CONF`
/// pointing at it. Removed on drop.
pub struct BenchEnv {
    /// The PKCS#11 module to load.
    pub module: PathBuf,
    /// The SoftHSM2 configuration file.
    pub conf: PathBuf,
    /// The temp dir itself (the bench puts its audit logs there too).
    pub dir: tempfile::TempDir,
}

impl BenchEnv {
    /// Must run before the module is loaded (SoftHSM2 reads its configuration in
    /// `C_Initialize`) and before any other thread exists (it sets an environment variable).
    pub fn new() -> BenchEnv {
        let module = std::env::var_os("HSM_CUSTODY_BENCH_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
        let dir = tempfile::Builder::new()
            .prefix("hsm-custody-bench-")
            .tempdir()
            .expect("temp dir");
        let conf = softhsm_dir::write_softhsm_conf(dir.path());
        // Edition 2021, and no thread and no module exists yet: SoftHSM2 reads it at C_Initialize.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        BenchEnv { module, conf, dir }
    }
}

/// An agent serving `custody` on its own thread, on [`hsm_custody::agent::runtime`] with
/// `threads`; stopped (and its outcome returned) by [`RunningAgent::stop`].
#[allow(dead_code)] // the agent benches use it, the others do not
pub struct RunningAgent {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

#[allow(dead_code)]
impl RunningAgent {
    /// Binds the agent and returns once it listens (or with the reason it could not).
    pub fn start(
        custody: hsm_custody::Custody,
        config: hsm_custody::agent::AgentConfig,
        threads: usize,
    ) -> Result<RunningAgent, String> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let config = config.threads(threads);
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let rt = hsm_custody::agent::runtime().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let agent = hsm_custody::agent::Agent::bind(custody, config)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = ready_tx.send(());
                agent
                    .serve(async {
                        let _ = stopped.await;
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        });
        if ready_rx.recv().is_err() {
            return Err(thread
                .join()
                .map_err(|_| "agent thread panicked".to_owned())?
                .err()
                .unwrap_or_else(|| "the agent stopped before it listened".to_owned()));
        }
        Ok(RunningAgent { stop, thread })
    }

    /// Stops the agent and waits for it.
    pub fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| "agent thread panicked".to_owned())?
    }
}
