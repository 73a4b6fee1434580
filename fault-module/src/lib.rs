//! A PKCS#11 module for tests that forwards every call to a real module and injects faults into
//! signing (issue 6).
//!
//! `C_GetFunctionList` loads the real module (`FAULT_MODULE_TARGET`, default Debian's SoftHSM2)
//! and returns its function list with `C_SignInit`, `C_Sign`, `C_OpenSession` and
//! `C_CloseSession` replaced. Every `period`-th call of `C_SignInit` / `C_Sign` (one counter
//! over both) fails with the next enabled fault kind, in turn:
//!
//! | kind | what happens | what the caller sees |
//! |---|---|---|
//! | `device` | nothing | `CKR_DEVICE_ERROR` |
//! | `session` | the session is dead from then on: every sign call on it fails until the caller closes it | `CKR_SESSION_HANDLE_INVALID` |
//! | `login` | a real `C_Logout` on that session (logs the whole application out of the token) | `CKR_USER_NOT_LOGGED_IN` |
//! | `general` | nothing | `CKR_GENERAL_ERROR` (not recoverable by design: the caller must fail) |
//!
//! A fault at `C_Sign` first lets the real module finish the operation, so a fault never leaves
//! an operation active behind the caller's back. A dead session is not really closed here: the
//! real module would hand its handle to the next `C_OpenSession`, and the caller's clean-up
//! `C_CloseSession` of the dead handle would then close somebody else's live session (on SoftHSM2
//! 2.6.1 possibly while a thread is inside it, a use-after-free). It is closed for real when the
//! caller closes it.
//!
//! Configuration: environment at load (`FAULT_PERIOD`, `FAULT_KINDS` = comma list of the kinds
//! above) or at run time through [`fault_module_configure`]; counters through
//! [`fault_module_counts`]. It also counts the sessions open through it (now and at most), so a
//! test can prove that recovery does not leak sessions.
#![allow(non_snake_case)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki_sys::*;

/// Fault kinds, as bits of the `kinds` mask.
pub const DEVICE: u64 = 1;
/// See the module docs.
pub const SESSION: u64 = 2;
/// See the module docs.
pub const LOGIN: u64 = 4;
/// See the module docs.
pub const GENERAL: u64 = 8;
const KINDS: [u64; 4] = [DEVICE, SESSION, LOGIN, GENERAL];

/// Slots of [`fault_module_counts`]'s output.
pub const COUNT_CALLS: usize = 0;
/// Faults injected, per kind: device, session, login, general.
pub const COUNT_DEVICE: usize = 1;
/// See [`COUNT_DEVICE`].
pub const COUNT_SESSION: usize = 2;
/// See [`COUNT_DEVICE`].
pub const COUNT_LOGIN: usize = 3;
/// See [`COUNT_DEVICE`].
pub const COUNT_GENERAL: usize = 4;
/// Sessions open through this module now.
pub const COUNT_OPEN: usize = 5;
/// Most sessions ever open at once through this module (since the last reset).
pub const COUNT_MAX_OPEN: usize = 6;
/// Number of counters.
pub const COUNTS: usize = 7;

struct Real {
    _lib: libloading::Library,
    list: CK_FUNCTION_LIST,
}

static REAL: OnceLock<Result<Real, String>> = OnceLock::new();
static OURS: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();
static PERIOD: AtomicU64 = AtomicU64::new(0);
static ENABLED: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
static TURN: AtomicU64 = AtomicU64::new(0);
static INJECTED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static OPEN: AtomicI64 = AtomicI64::new(0);
static MAX_OPEN: AtomicI64 = AtomicI64::new(0);
static DEAD: Mutex<Option<HashSet<CK_SESSION_HANDLE>>> = Mutex::new(None);

fn real() -> Option<&'static CK_FUNCTION_LIST> {
    REAL.get_or_init(load).as_ref().ok().map(|r| &r.list)
}

fn load() -> Result<Real, String> {
    if let Ok(p) = std::env::var("FAULT_PERIOD") {
        PERIOD.store(p.parse().unwrap_or(0), Ordering::Relaxed);
    }
    if let Ok(k) = std::env::var("FAULT_KINDS") {
        ENABLED.store(parse_kinds(&k), Ordering::Relaxed);
    }
    let target = std::env::var_os("FAULT_MODULE_TARGET")
        .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    // SAFETY: loading a PKCS#11 module runs its initialisers, as any PKCS#11 application does.
    let lib = unsafe { libloading::Library::new(&target) }.map_err(|e| e.to_string())?;
    // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module.
    let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
        unsafe { lib.get(b"C_GetFunctionList\0") }.map_err(|e| e.to_string())?;
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: a valid out-pointer; the module keeps its list alive while it is loaded.
    let rv = unsafe { get(&mut list) };
    if rv != CKR_OK || list.is_null() {
        return Err(format!("C_GetFunctionList of the target returned {rv:#x}"));
    }
    // SAFETY: checked non-null above.
    let list = unsafe { *list };
    Ok(Real { _lib: lib, list })
}

fn parse_kinds(text: &str) -> u64 {
    text.split(',')
        .map(|k| match k.trim() {
            "device" => DEVICE,
            "session" => SESSION,
            "login" => LOGIN,
            "general" => GENERAL,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// Sets the fault period (0: no faults) and the enabled kinds (a mask of [`DEVICE`],
/// [`SESSION`], [`LOGIN`], [`GENERAL`]).
#[no_mangle]
pub extern "C" fn fault_module_configure(period: u64, kinds: u64) {
    PERIOD.store(period, Ordering::SeqCst);
    ENABLED.store(kinds, Ordering::SeqCst);
}

/// Copies up to `len` counters (see `COUNT_*`) to `out`; returns how many there are.
///
/// # Safety
/// `out` must point to `len` writable `u64`s.
#[no_mangle]
pub unsafe extern "C" fn fault_module_counts(out: *mut u64, len: usize) -> usize {
    let values = [
        CALLS.load(Ordering::SeqCst),
        INJECTED[0].load(Ordering::SeqCst),
        INJECTED[1].load(Ordering::SeqCst),
        INJECTED[2].load(Ordering::SeqCst),
        INJECTED[3].load(Ordering::SeqCst),
        OPEN.load(Ordering::SeqCst).max(0) as u64,
        MAX_OPEN.load(Ordering::SeqCst).max(0) as u64,
    ];
    for (i, v) in values.iter().enumerate().take(len) {
        // SAFETY: the caller promised `len` slots.
        unsafe { *out.add(i) = *v };
    }
    COUNTS
}

/// Zeroes the call and fault counters and sets the session high-water mark to the sessions
/// open now.
#[no_mangle]
pub extern "C" fn fault_module_reset() {
    CALLS.store(0, Ordering::SeqCst);
    for c in &INJECTED {
        c.store(0, Ordering::SeqCst);
    }
    MAX_OPEN.store(OPEN.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// The module's entry point.
///
/// # Safety
/// `list` must be a valid out-pointer.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let Some(real) = real() else {
        return CKR_GENERAL_ERROR;
    };
    let ours = OURS.get_or_init(|| CK_FUNCTION_LIST {
        C_GetFunctionList: Some(C_GetFunctionList),
        C_SignInit: Some(sign_init),
        C_Sign: Some(sign),
        C_OpenSession: Some(open_session),
        C_CloseSession: Some(close_session),
        ..*real
    });
    // The caller only reads through this pointer (PKCS#11 declares it CK_FUNCTION_LIST_PTR).
    // SAFETY: `list` checked non-null.
    unsafe { *list = ours as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST };
    CKR_OK
}

fn dead() -> std::sync::MutexGuard<'static, Option<HashSet<CK_SESSION_HANDLE>>> {
    DEAD.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_dead(session: CK_SESSION_HANDLE) -> bool {
    dead().as_ref().is_some_and(|d| d.contains(&session))
}

/// The fault for this call, if it is one.
fn decide() -> Option<u64> {
    let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let period = PERIOD.load(Ordering::SeqCst);
    let enabled = ENABLED.load(Ordering::SeqCst);
    if period == 0 || enabled == 0 || n % period != 0 {
        return None;
    }
    loop {
        let kind = KINDS[(TURN.fetch_add(1, Ordering::SeqCst) % 4) as usize];
        if enabled & kind != 0 {
            return Some(kind);
        }
    }
}

/// Applies `kind` to `session` and returns the code to give the caller.
fn inject(kind: u64, session: CK_SESSION_HANDLE, real: &CK_FUNCTION_LIST) -> CK_RV {
    let slot = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    INJECTED[slot].fetch_add(1, Ordering::SeqCst);
    match kind {
        SESSION => {
            dead().get_or_insert_with(HashSet::new).insert(session);
            CKR_SESSION_HANDLE_INVALID
        }
        LOGIN => {
            if let Some(logout) = real.C_Logout {
                // SAFETY: a plain call on a session the caller owns.
                unsafe { logout(session) };
            }
            CKR_USER_NOT_LOGGED_IN
        }
        GENERAL => CKR_GENERAL_ERROR,
        _ => CKR_DEVICE_ERROR,
    }
}

unsafe extern "C" fn sign_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    let Some(real) = real() else {
        return CKR_GENERAL_ERROR;
    };
    if is_dead(session) {
        return CKR_SESSION_HANDLE_INVALID;
    }
    if let Some(kind) = decide() {
        return inject(kind, session, real);
    }
    match real.C_SignInit {
        // SAFETY: forwarding the caller's arguments unchanged.
        Some(f) => unsafe { f(session, mechanism, key) },
        None => CKR_FUNCTION_NOT_SUPPORTED,
    }
}

unsafe extern "C" fn sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    let Some(real) = real() else {
        return CKR_GENERAL_ERROR;
    };
    let Some(f) = real.C_Sign else {
        return CKR_FUNCTION_NOT_SUPPORTED;
    };
    if is_dead(session) {
        return CKR_SESSION_HANDLE_INVALID;
    }
    if let Some(kind) = decide() {
        // Let the real module finish the operation first (an error from C_Sign ends it).
        let mut buf = [0u8; 1024];
        let mut len = buf.len() as CK_ULONG;
        // SAFETY: forwarding the caller's data with our own output buffer.
        unsafe { f(session, data, data_len, buf.as_mut_ptr(), &mut len) };
        return inject(kind, session, real);
    }
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(session, data, data_len, signature, signature_len) }
}

unsafe extern "C" fn open_session(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    application: *mut std::ffi::c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    let Some(f) = real().and_then(|r| r.C_OpenSession) else {
        return CKR_GENERAL_ERROR;
    };
    // SAFETY: forwarding the caller's arguments unchanged.
    let rv = unsafe { f(slot, flags, application, notify, session) };
    if rv == CKR_OK {
        let now = OPEN.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_OPEN.fetch_max(now, Ordering::SeqCst);
    }
    rv
}

unsafe extern "C" fn close_session(session: CK_SESSION_HANDLE) -> CK_RV {
    let Some(f) = real().and_then(|r| r.C_CloseSession) else {
        return CKR_GENERAL_ERROR;
    };
    if let Some(d) = dead().as_mut() {
        d.remove(&session);
    }
    // SAFETY: forwarding the caller's argument unchanged.
    let rv = unsafe { f(session) };
    if rv == CKR_OK {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
    rv
}
