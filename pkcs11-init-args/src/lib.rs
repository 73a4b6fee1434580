//! `C_Initialize` arguments that carry a module parameter string in `pReserved`.
//!
//! NSS softokn (`libsoftokn3.so`) refuses `C_Initialize` without its parameter string
//! (`configdir='sql:/path' ...`) in `CK_C_INITIALIZE_ARGS.pReserved`. cryptoki 0.12 can only
//! build such arguments with the `unsafe` `CInitializeArgs::new_with_reserved`, and hsm-custody
//! forbids `unsafe` code. This crate holds that one call, behind a safe function whose argument
//! makes it sound: the string is `'static` (the caller leaks it once per module per process), so
//! the pointer stays valid for as long as the module could read it, and a `CStr` is
//! NUL-terminated, as NSS expects.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;

use cryptoki::context::{CInitializeArgs, CInitializeFlags};

/// `CInitializeArgs` with `flags` and `pReserved` pointing at `params`.
pub fn with_reserved_string(flags: CInitializeFlags, params: &'static CStr) -> CInitializeArgs {
    let ptr = NonNull::from(params.to_bytes_with_nul()).cast::<c_void>();
    // SAFETY: `ptr` points at a NUL-terminated string that lives for the rest of the process
    // and is never written; `C_Initialize` only reads through `pReserved`.
    unsafe { CInitializeArgs::new_with_reserved(flags, ptr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_arguments() {
        let params: &'static CStr = c"configdir='sql:/nonexistent'";
        let _args = with_reserved_string(CInitializeFlags::OS_LOCKING_OK, params);
    }
}
