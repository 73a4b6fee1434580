//! A private SoftHSM2 token directory in a temp dir, shared by the integration tests, the
//! memory scan and the bench binaries (each includes this file with `#[path]`).

use std::path::{Path, PathBuf};

/// Writes `softhsm2.conf` and an empty `tokens/` directory under `dir`; returns the
/// configuration's path, for `SOFTHSM2_CONF` (which SoftHSM2 reads in `C_Initialize`).
pub fn write_softhsm_conf(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    conf
}
