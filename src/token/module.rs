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
                reason: format!(
                    "{}: {e}{}",
                    crate::error::MODULE_LOADED_INIT_FAILED,
                    unreadable_module_files(&key)
                ),
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

/// After a failed `C_Initialize`: the files the module reads at initialisation that this process
/// cannot read, named (`; ...`), or nothing. A module found at the right path usually fails
/// there because its configuration or token directory belongs to a group the process is not in
/// (Debian: `/etc/softhsm/softhsm2.conf` and `/var/lib/softhsm`, group `softhsm`).
fn unreadable_module_files(module: &Path) -> String {
    let name = module
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut found = Vec::new();
    let conf_var = std::env::var_os("SOFTHSM2_CONF");
    if name.contains("softhsm") || conf_var.is_some() {
        let (conf, from) = match &conf_var {
            Some(c) => (PathBuf::from(c), "SOFTHSM2_CONF"),
            None => (
                PathBuf::from("/etc/softhsm/softhsm2.conf"),
                "default SOFTHSM2_CONF",
            ),
        };
        match std::fs::read_to_string(&conf) {
            Err(e) => found.push(format!("cannot read {from} {}: {e}", described(&conf))),
            Ok(text) => {
                let tokendir = text.lines().find_map(|line| {
                    let (k, v) = line.split_once('=')?;
                    (k.trim() == "directories.tokendir").then(|| PathBuf::from(v.trim()))
                });
                if let Some(dir) = tokendir {
                    if let Err(e) = std::fs::read_dir(&dir) {
                        found.push(format!(
                            "cannot read the token directory {} (directories.tokendir in {}): {e}",
                            described(&dir),
                            conf.display()
                        ));
                    }
                }
            }
        }
    }
    if let Some(store) = std::env::var_os("TPM2_PKCS11_STORE") {
        let store = PathBuf::from(store);
        if let Err(e) = std::fs::read_dir(&store) {
            found.push(format!(
                "cannot read TPM2_PKCS11_STORE {}: {e}",
                described(&store)
            ));
        }
    }
    if found.is_empty() {
        String::new()
    } else {
        let me = rustix::process::geteuid().as_raw();
        format!(
            "; {} (this process: uid {me}; add its user to the owning group)",
            found.join("; ")
        )
    }
}

/// `path` with its owner and group ids and mode, when it (or its parent) can be examined.
fn described(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).or_else(|e| {
        // A file inside a directory this process cannot search: describe the directory.
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or(Err(e), std::fs::metadata)
    });
    match meta {
        Ok(m) => format!(
            "`{}` (uid {} gid {} mode {:o}{})",
            path.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o7777,
            if std::fs::metadata(path).is_ok() {
                ""
            } else {
                ", of its directory"
            }
        ),
        Err(_) => format!("`{}`", path.display()),
    }
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
