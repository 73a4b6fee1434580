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
