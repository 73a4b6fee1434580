//! Loading PKCS#11 modules: exactly one `C_Initialize` per module per process.
//!
//! A second `Pkcs11::new` + `initialize` on the same module returns
//! `CKR_CRYPTOKI_ALREADY_INITIALIZED`, and parallel initialisation can crash SoftHSM2, so every
//! `connect` goes through this registry, which keeps each initialised module for the life of the
//! process (cryptoki never finalises on drop).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, Result};

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// Returns the process-wide context for the module at `path`, loading and initialising it on
/// first use.
pub(crate) fn load(path: &Path) -> Result<Pkcs11> {
    let key = std::fs::canonicalize(path).map_err(|e| Error::ModuleLoad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // The lock is held across initialisation on purpose: it serialises C_Initialize.
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| Error::ModuleLoad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Someone else in this process (another library) initialised it: share it.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::ModuleLoad {
                path: path.to_owned(),
                reason: format!("C_Initialize failed: {e}"),
            })
        }
    }
    modules.insert(key, ctx.clone());
    Ok(ctx)
}

/// Re-runs `C_Initialize` after the module reported `CKR_CRYPTOKI_NOT_INITIALIZED` (someone
/// finalised it behind our back).
pub(crate) fn reinitialize(ctx: &Pkcs11) -> Result<()> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(Error::from_ck(&e)),
    }
}
