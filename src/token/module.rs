//! Loading PKCS#11 modules: exactly one `C_Initialize` per module per process.
//!
//! A second `Pkcs11::new` + `initialize` on the same module returns
//! `CKR_CRYPTOKI_ALREADY_INITIALIZED`, and parallel initialisation can crash SoftHSM2, so every
//! `connect` goes through this registry, which keeps each initialised module for the life of the
//! process (cryptoki never finalises on drop).
//!
//! A module that needs a parameter string at `C_Initialize` (NSS softokn: `configdir=...` in
//! `pReserved`) gets it from `Config::module_init_params`; the first load of a module fixes its
//! parameters for the process, and a later load asking for different ones is an error.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, Result};

/// An initialised module and the parameter string it was initialised with.
struct Loaded {
    ctx: Pkcs11,
    init_params: Option<String>,
}

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Loaded>>> = OnceLock::new();

/// Returns the process-wide context for the module at `path`, loading and initialising it on
/// first use, passing `init_params` (if any) in `C_Initialize`'s `pReserved`. A module already
/// loaded in this process with other parameters is an error (`None` asks for nothing and takes
/// the module as it is).
pub(crate) fn load_with(path: &Path, init_params: Option<&str>) -> Result<Pkcs11> {
    let key = std::fs::canonicalize(path).map_err(|e| Error::ModuleLoad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // The lock is held across initialisation on purpose: it serialises C_Initialize.
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(loaded) = modules.get(&key) {
        if init_params.is_some() && init_params != loaded.init_params.as_deref() {
            return Err(Error::ModuleLoad {
                path: path.to_owned(),
                reason: "already initialised in this process with other module_init_params \
                         (one C_Initialize per module per process)"
                    .into(),
            });
        }
        return Ok(loaded.ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| Error::ModuleLoad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let args = init_args(path, init_params)?;
    match ctx.initialize(args) {
        // Someone else in this process (another library) initialised it: share it.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::ModuleLoad {
                path: path.to_owned(),
                reason: format!("C_Initialize failed: {e}"),
            })
        }
    }
    modules.insert(
        key,
        Loaded {
            ctx: ctx.clone(),
            init_params: init_params.map(str::to_owned),
        },
    );
    Ok(ctx)
}

/// `C_Initialize` arguments: OS locking, and `init_params` in `pReserved` if given.
fn init_args(path: &Path, init_params: Option<&str>) -> Result<CInitializeArgs> {
    let Some(params) = init_params else {
        return Ok(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    };
    let params = CString::new(params).map_err(|_| Error::ModuleLoad {
        path: path.to_owned(),
        reason: "module_init_params contains a NUL byte".into(),
    })?;
    // Leaked: the module may keep reading it after C_Initialize returns. That is once per module
    // per process (this registry never loads a module twice), plus once per re-initialisation
    // after someone finalised the module behind our back.
    let params: &'static CStr = Box::leak(params.into_boxed_c_str());
    Ok(pkcs11_init_args::with_reserved_string(
        CInitializeFlags::OS_LOCKING_OK,
        params,
    ))
}

/// Re-runs `C_Initialize` after the module reported `CKR_CRYPTOKI_NOT_INITIALIZED` (someone
/// finalised it behind our back), with the parameter string it was first loaded with.
pub(crate) fn reinitialize(ctx: &Pkcs11, path: &Path, init_params: Option<&str>) -> Result<()> {
    match ctx.initialize(init_args(path, init_params)?) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(Error::from_ck(&e)),
    }
}
