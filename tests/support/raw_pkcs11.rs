//! Raw PKCS#11 for the tests and benches, and the only test-side module with `unsafe` code.
//!
//! The test and bench binaries deny `unsafe_code` at their root (`tests/integration/main.rs`,
//! `tests/memory_hygiene.rs`, each bench); this module, included with `#[path]` by the
//! integration tests and by `benches/common`, alone allows it, and every `unsafe` block here says
//! why it is sound (`// SAFETY:`). Callers get safe functions that return the module's return
//! codes as they come:
//!
//! - [`raw_context`]: a cryptoki context on a module the crate has already initialised;
//! - [`RawModule`]: a module's own `CK_FUNCTION_LIST`, one forwarding method per entry;
//! - [`Raw`]: one session on a token through that list, with owned [`Template`]s and [`Mech`]s
//!   (the attack suite's and the "other handle" tests' view);
//! - [`FaultControls`]: the control functions of `fault-module` (tests/integration/faults.rs).
#![allow(unsafe_code)]
#![allow(dead_code)] // each binary that includes this file uses a part of it

use std::ffi::c_void;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki_sys::*;

// ---------------------------------------------------------------------------------------------
// A cryptoki context

/// The module at `module`, through its own cryptoki context: `CKR_CRYPTOKI_ALREADY_INITIALIZED`
/// is expected and fine (one `C_Initialize` per module per process; cryptoki never finalises
/// on drop).
pub fn raw_context(module: &Path) -> Pkcs11 {
    let ctx = Pkcs11::new(module).expect("load module");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    ctx
}

// ---------------------------------------------------------------------------------------------
// A module's function list

/// A PKCS#11 module as a raw attacker (or "another handle" of the application) sees it: the
/// module's own `CK_FUNCTION_LIST`, got from `C_GetFunctionList`, the one entry point every
/// module exports (Kryoptic and NSS softokn export no other `C_*` symbol, so per-symbol dlsym,
/// as `cryptoki_sys::Pkcs11::new` does, fails there). Every call goes through the list.
///
/// Loading a module this process has already initialised only bumps its refcount: the list is
/// the same one the crate uses, and no `C_Initialize` is needed (nor done).
pub struct RawModule {
    list: *const cryptoki_sys::CK_FUNCTION_LIST,
    _lib: libloading::Library,
}

// SAFETY: the function list is immutable, static data of the loaded module, and PKCS#11
// modules initialised with CKF_OS_LOCKING_OK (as the crate does) are callable from any thread.
unsafe impl Send for RawModule {}
// SAFETY: as above.
unsafe impl Sync for RawModule {}

impl RawModule {
    /// `dlopen`s `module` and asks it for its function list.
    pub fn load(module: &Path) -> Result<RawModule, String> {
        type GetFunctionList =
            unsafe extern "C" fn(*mut *mut cryptoki_sys::CK_FUNCTION_LIST) -> cryptoki_sys::CK_RV;
        // SAFETY: loading a PKCS#11 module runs no code of ours; its initialisers are its own.
        let lib = unsafe { libloading::Library::new(module) }
            .map_err(|e| format!("dlopen {}: {e}", module.display()))?;
        let mut list = std::ptr::null_mut();
        // SAFETY: every PKCS#11 module exports C_GetFunctionList with this signature; the
        // out-pointer is valid for the call.
        let rv = unsafe {
            let get: libloading::Symbol<GetFunctionList> = lib
                .get(b"C_GetFunctionList\0")
                .map_err(|e| format!("C_GetFunctionList in {}: {e}", module.display()))?;
            get(&mut list)
        };
        if rv != cryptoki_sys::CKR_OK || list.is_null() {
            return Err(format!(
                "C_GetFunctionList of {} returned {rv:#x}",
                module.display()
            ));
        }
        Ok(RawModule { list, _lib: lib })
    }

    /// The module's function list.
    pub fn list(&self) -> &cryptoki_sys::CK_FUNCTION_LIST {
        // SAFETY: the module returned a valid list and stays loaded as long as `self`.
        unsafe { &*self.list }
    }

    /// `C_CloseAllSessions(slot)`: closes every session of this application on the slot, the
    /// crate's too ("another handle" of the same application).
    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> CK_RV {
        // SAFETY: no pointer argument.
        unsafe { self.C_CloseAllSessions(slot) }
    }

    /// Opens a session on `slot` just to call `C_Logout` on it (which logs the whole
    /// application out), closes it, and returns what `C_Logout` answered.
    pub fn logout(&self, slot: CK_SLOT_ID) -> CK_RV {
        let mut h: CK_SESSION_HANDLE = 0;
        // SAFETY: no notification callback (null application pointer, `None`); `h` is a valid
        // out-pointer; the other two calls take the handle only.
        unsafe {
            let rv = self.C_OpenSession(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                ptr::null_mut(),
                None,
                &mut h,
            );
            assert_eq!(rv, CKR_OK, "C_OpenSession: {}", rv_name(rv));
            let rv = self.C_Logout(h);
            self.C_CloseSession(h);
            rv
        }
    }
}

/// One forwarding method per `CK_FUNCTION_LIST` entry (PKCS#11 2.40, the 68 functions), named
/// as the C function, so call sites read like the PKCS#11 specification. An entry the module
/// left empty panics with its name.
///
/// Each method is `unsafe` with the contract of its C function: every pointer argument is
/// valid for the call (buffers as long as the lengths passed with them say, templates pointing
/// at live values) and handles belong to this module. Only this file calls them.
macro_rules! function_list_forwarders {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc)]
        impl RawModule {
            $(
                pub unsafe fn $name(&self, $($arg: $ty),*) -> cryptoki_sys::CK_RV {
                    let f = self.list().$name.unwrap_or_else(|| {
                        panic!(concat!(stringify!($name), " is empty in the module's function list"))
                    });
                    f($($arg),*)
                }
            )*
        }
    };
}

#[rustfmt::skip]
mod forwarders {
    use std::os::raw::c_void;
    use cryptoki_sys::*;
    use super::RawModule;
    function_list_forwarders! {
    C_Initialize(arg1: *mut c_void);
    C_Finalize(arg1: *mut c_void);
    C_GetInfo(arg1: *mut CK_INFO);
    C_GetFunctionList(arg1: *mut *mut CK_FUNCTION_LIST);
    C_GetSlotList(arg1: CK_BBOOL, arg2: *mut CK_SLOT_ID, arg3: *mut CK_ULONG);
    C_GetSlotInfo(arg1: CK_SLOT_ID, arg2: *mut CK_SLOT_INFO);
    C_GetTokenInfo(arg1: CK_SLOT_ID, arg2: *mut CK_TOKEN_INFO);
    C_GetMechanismList(arg1: CK_SLOT_ID, arg2: *mut CK_MECHANISM_TYPE, arg3: *mut CK_ULONG);
    C_GetMechanismInfo(arg1: CK_SLOT_ID, arg2: CK_MECHANISM_TYPE, arg3: *mut CK_MECHANISM_INFO);
    C_InitToken(arg1: CK_SLOT_ID, arg2: *mut CK_UTF8CHAR, arg3: CK_ULONG, arg4: *mut CK_UTF8CHAR);
    C_InitPIN(arg1: CK_SESSION_HANDLE, arg2: *mut CK_UTF8CHAR, arg3: CK_ULONG);
    C_SetPIN(arg1: CK_SESSION_HANDLE, arg2: *mut CK_UTF8CHAR, arg3: CK_ULONG, arg4: *mut CK_UTF8CHAR, arg5: CK_ULONG);
    C_OpenSession(arg1: CK_SLOT_ID, arg2: CK_FLAGS, arg3: *mut c_void, arg4: CK_NOTIFY, arg5: *mut CK_SESSION_HANDLE);
    C_CloseSession(arg1: CK_SESSION_HANDLE);
    C_CloseAllSessions(arg1: CK_SLOT_ID);
    C_GetSessionInfo(arg1: CK_SESSION_HANDLE, arg2: *mut CK_SESSION_INFO);
    C_GetOperationState(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    C_SetOperationState(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: CK_OBJECT_HANDLE, arg5: CK_OBJECT_HANDLE);
    C_Login(arg1: CK_SESSION_HANDLE, arg2: CK_USER_TYPE, arg3: *mut CK_UTF8CHAR, arg4: CK_ULONG);
    C_Logout(arg1: CK_SESSION_HANDLE);
    C_CreateObject(arg1: CK_SESSION_HANDLE, arg2: *mut CK_ATTRIBUTE, arg3: CK_ULONG, arg4: *mut CK_OBJECT_HANDLE);
    C_CopyObject(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG, arg5: *mut CK_OBJECT_HANDLE);
    C_DestroyObject(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE);
    C_GetObjectSize(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ULONG);
    C_GetAttributeValue(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG);
    C_SetAttributeValue(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG);
    C_FindObjectsInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_ATTRIBUTE, arg3: CK_ULONG);
    C_FindObjects(arg1: CK_SESSION_HANDLE, arg2: *mut CK_OBJECT_HANDLE, arg3: CK_ULONG, arg4: *mut CK_ULONG);
    C_FindObjectsFinal(arg1: CK_SESSION_HANDLE);
    C_EncryptInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    C_Encrypt(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_EncryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_EncryptFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    C_DecryptInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    C_Decrypt(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_DecryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_DecryptFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    C_DigestInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM);
    C_Digest(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_DigestUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    C_DigestKey(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE);
    C_DigestFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    C_SignInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    C_Sign(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_SignUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    C_SignFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    C_SignRecoverInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    C_SignRecover(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_VerifyInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    C_Verify(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: CK_ULONG);
    C_VerifyUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    C_VerifyFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    C_VerifyRecoverInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    C_VerifyRecover(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_DigestEncryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_DecryptDigestUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_SignEncryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_DecryptVerifyUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    C_GenerateKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG, arg5: *mut CK_OBJECT_HANDLE);
    C_GenerateKeyPair(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG, arg5: *mut CK_ATTRIBUTE, arg6: CK_ULONG, arg7: *mut CK_OBJECT_HANDLE, arg8: *mut CK_OBJECT_HANDLE);
    C_WrapKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE, arg4: CK_OBJECT_HANDLE, arg5: *mut CK_BYTE, arg6: *mut CK_ULONG);
    C_UnwrapKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE, arg4: *mut CK_BYTE, arg5: CK_ULONG, arg6: *mut CK_ATTRIBUTE, arg7: CK_ULONG, arg8: *mut CK_OBJECT_HANDLE);
    C_DeriveKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE, arg4: *mut CK_ATTRIBUTE, arg5: CK_ULONG, arg6: *mut CK_OBJECT_HANDLE);
    C_SeedRandom(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    C_GenerateRandom(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    C_GetFunctionStatus(arg1: CK_SESSION_HANDLE);
    C_CancelFunction(arg1: CK_SESSION_HANDLE);
    C_WaitForSlotEvent(arg1: CK_FLAGS, arg2: *mut CK_SLOT_ID, arg3: *mut c_void);
    }
}

// ---------------------------------------------------------------------------------------------
// One session through the function list

/// A raw PKCS#11 view of the module (a second `dlopen` of the same, already initialised module,
/// driven through its function list): one session on the token, return codes as they come.
pub struct Raw {
    lib: RawModule,
    pub slot: CK_SLOT_ID,
    pub session: CK_SESSION_HANDLE,
}

/// An attribute template that owns its value buffers.
#[derive(Default)]
pub struct Template {
    attrs: Vec<CK_ATTRIBUTE>,
    bufs: Vec<Vec<u8>>,
}

impl Template {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(mut self, type_: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Self {
        let mut buf = value.to_vec();
        // A Vec's heap buffer does not move when the Vec is moved into `bufs`.
        self.attrs.push(CK_ATTRIBUTE {
            type_,
            pValue: buf.as_mut_ptr() as *mut c_void,
            ulValueLen: buf.len() as CK_ULONG,
        });
        self.bufs.push(buf);
        self
    }

    pub fn bool(self, type_: CK_ATTRIBUTE_TYPE, value: bool) -> Self {
        self.bytes(type_, &[value as CK_BBOOL])
    }

    pub fn ulong(self, type_: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> Self {
        self.bytes(type_, &value.to_ne_bytes())
    }

    pub fn ulongs(self, type_: CK_ATTRIBUTE_TYPE, values: &[CK_ULONG]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.bytes(type_, &bytes)
    }

    fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        if self.attrs.is_empty() {
            ptr::null_mut()
        } else {
            self.attrs.as_mut_ptr()
        }
    }

    fn len(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }
}

/// A mechanism with an optional parameter buffer; `'a` is the lifetime of data its parameter
/// points at (see [`Mech::string_data`]).
pub struct Mech<'a> {
    mech: CK_MECHANISM,
    _param: Vec<u8>,
    _data: PhantomData<&'a [u8]>,
}

impl<'a> Mech<'a> {
    pub fn new(mechanism: CK_MECHANISM_TYPE) -> Self {
        Mech {
            mech: CK_MECHANISM {
                mechanism,
                pParameter: ptr::null_mut(),
                ulParameterLen: 0,
            },
            _param: Vec::new(),
            _data: PhantomData,
        }
    }

    pub fn with_param(mechanism: CK_MECHANISM_TYPE, param: Vec<u8>) -> Self {
        let mut m = Mech {
            mech: CK_MECHANISM {
                mechanism,
                pParameter: ptr::null_mut(),
                ulParameterLen: param.len() as CK_ULONG,
            },
            _param: param,
            _data: PhantomData,
        };
        // A Vec's heap buffer does not move when the Vec is moved into `m`.
        m.mech.pParameter = m._param.as_mut_ptr() as *mut c_void;
        m
    }

    /// `CK_KEY_DERIVATION_STRING_DATA` pointing at `data`, which the mechanism borrows. The
    /// module only reads it (an input of `C_DeriveKey`), hence a shared borrow.
    pub fn string_data(mechanism: CK_MECHANISM_TYPE, data: &'a [u8]) -> Self {
        let p = CK_KEY_DERIVATION_STRING_DATA {
            pData: data.as_ptr() as *mut CK_BYTE,
            ulLen: data.len() as CK_ULONG,
        };
        // SAFETY: `p` is a live, initialised `repr(C)` struct of a pointer and an integer (no
        // padding on the 64-bit targets the tests run on); the slice covers exactly its bytes
        // and is copied out before `p` goes out of scope.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                &p as *const _ as *const u8,
                std::mem::size_of::<CK_KEY_DERIVATION_STRING_DATA>(),
            )
        }
        .to_vec();
        Mech::with_param(mechanism, bytes)
    }

    /// The mechanism type.
    pub fn mechanism(&self) -> CK_MECHANISM_TYPE {
        self.mech.mechanism
    }

    fn ptr(&mut self) -> *mut CK_MECHANISM {
        &mut self.mech
    }
}

impl Raw {
    /// Opens a read-write session on the token labelled `label`; logs in with `pin` if given
    /// (`CKR_USER_ALREADY_LOGGED_IN` counts as success: login is per application).
    pub fn open(module: &Path, label: &str, pin: Option<&[u8]>) -> Raw {
        let lib = RawModule::load(module).expect("load the module");
        let slot = find_slot(&lib, label).unwrap_or_else(|| panic!("no token `{label}`"));
        let mut session = 0;
        // SAFETY: no notification callback (null application pointer, `None`); `session` is a
        // valid out-pointer.
        let rv = unsafe {
            lib.C_OpenSession(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                ptr::null_mut(),
                None,
                &mut session,
            )
        };
        assert_eq!(rv, CKR_OK, "C_OpenSession: {}", rv_name(rv));
        let raw = Raw { lib, slot, session };
        if let Some(pin) = pin {
            let mut pin = pin.to_vec();
            // SAFETY: `pin` holds the length passed with it and outlives the call.
            let rv = unsafe {
                raw.lib
                    .C_Login(session, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
            };
            assert!(
                rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN,
                "C_Login: {}",
                rv_name(rv)
            );
        }
        raw
    }

    pub fn find(&self, mut template: Template) -> Vec<CK_OBJECT_HANDLE> {
        let mut out = Vec::new();
        // SAFETY: the template owns its buffers; `batch` holds the 64 handles the call may write
        // and `n` is a valid out-pointer; all alive for the calls.
        unsafe {
            let rv = self
                .lib
                .C_FindObjectsInit(self.session, template.ptr(), template.len());
            assert_eq!(rv, CKR_OK, "C_FindObjectsInit: {}", rv_name(rv));
            loop {
                let mut batch = [0 as CK_OBJECT_HANDLE; 64];
                let mut n = 0;
                let rv = self
                    .lib
                    .C_FindObjects(self.session, batch.as_mut_ptr(), 64, &mut n);
                assert_eq!(rv, CKR_OK, "C_FindObjects: {}", rv_name(rv));
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&batch[..n as usize]);
            }
            self.lib.C_FindObjectsFinal(self.session);
        }
        out
    }

    /// One `C_GetAttributeValue` for one attribute, with a 1 KiB buffer: the return code, and
    /// the bytes if the token gave any.
    pub fn attribute(
        &self,
        obj: CK_OBJECT_HANDLE,
        type_: CK_ATTRIBUTE_TYPE,
    ) -> (CK_RV, Option<Vec<u8>>) {
        let mut buf = vec![0u8; 1024];
        let mut attr = CK_ATTRIBUTE {
            type_,
            pValue: buf.as_mut_ptr() as *mut c_void,
            ulValueLen: buf.len() as CK_ULONG,
        };
        // SAFETY: `attr` points into `buf` with `buf`'s length; both outlive the call.
        let rv = unsafe {
            self.lib
                .C_GetAttributeValue(self.session, obj, &mut attr, 1)
        };
        if rv == CKR_OK && attr.ulValueLen != CK_UNAVAILABLE_INFORMATION {
            buf.truncate(attr.ulValueLen as usize);
            (rv, Some(buf))
        } else {
            (rv, None)
        }
    }

    /// `C_GetAttributeValue` for one attribute with no buffer (a length query): the return code
    /// and the length the module reported (`CK_UNAVAILABLE_INFORMATION` where it refuses).
    pub fn attribute_len(
        &self,
        obj: CK_OBJECT_HANDLE,
        type_: CK_ATTRIBUTE_TYPE,
    ) -> (CK_RV, CK_ULONG) {
        let mut attr = CK_ATTRIBUTE {
            type_,
            pValue: ptr::null_mut(),
            ulValueLen: 0,
        };
        // SAFETY: a null value pointer asks only for the length; `attr` outlives the call.
        let rv = unsafe {
            self.lib
                .C_GetAttributeValue(self.session, obj, &mut attr, 1)
        };
        (rv, attr.ulValueLen)
    }

    /// `n` bytes of the module's `C_GenerateRandom`.
    pub fn random(&self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        // SAFETY: `bytes` holds the `n` bytes asked for and outlives the call.
        let rv = unsafe {
            self.lib
                .C_GenerateRandom(self.session, bytes.as_mut_ptr(), n as CK_ULONG)
        };
        assert_eq!(rv, CKR_OK, "C_GenerateRandom: {}", rv_name(rv));
        bytes
    }

    pub fn bool_attribute(&self, obj: CK_OBJECT_HANDLE, type_: CK_ATTRIBUTE_TYPE) -> Option<bool> {
        match self.attribute(obj, type_) {
            (CKR_OK, Some(v)) if v.len() == 1 => Some(v[0] != 0),
            _ => None,
        }
    }

    pub fn set(&self, obj: CK_OBJECT_HANDLE, mut template: Template) -> CK_RV {
        // SAFETY: the template owns the buffers it points at, alive for the call.
        unsafe {
            self.lib
                .C_SetAttributeValue(self.session, obj, template.ptr(), template.len())
        }
    }

    pub fn copy(&self, obj: CK_OBJECT_HANDLE, mut template: Template) -> (CK_RV, CK_OBJECT_HANDLE) {
        let mut h = CK_INVALID_HANDLE;
        // SAFETY: the template owns the buffers it points at; `h` is a valid out-pointer.
        let rv = unsafe {
            self.lib
                .C_CopyObject(self.session, obj, template.ptr(), template.len(), &mut h)
        };
        (rv, h)
    }

    pub fn create(&self, mut template: Template) -> (CK_RV, CK_OBJECT_HANDLE) {
        let mut h = CK_INVALID_HANDLE;
        // SAFETY: the template's pointers and lengths describe buffers it owns, alive for the
        // call; `h` is a valid out-pointer.
        let rv = unsafe {
            self.lib
                .C_CreateObject(self.session, template.ptr(), template.len(), &mut h)
        };
        (rv, h)
    }

    pub fn generate_key(
        &self,
        mut mech: Mech<'_>,
        mut template: Template,
    ) -> (CK_RV, CK_OBJECT_HANDLE) {
        let mut h = CK_INVALID_HANDLE;
        // SAFETY: the mechanism and the template own what they point at, alive for the call;
        // `h` is a valid out-pointer.
        let rv = unsafe {
            self.lib.C_GenerateKey(
                self.session,
                mech.ptr(),
                template.ptr(),
                template.len(),
                &mut h,
            )
        };
        (rv, h)
    }

    pub fn generate_key_pair(
        &self,
        mut mech: Mech<'_>,
        mut public: Template,
        mut private: Template,
    ) -> (CK_RV, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
        let (mut pubh, mut privh) = (CK_INVALID_HANDLE, CK_INVALID_HANDLE);
        // SAFETY: the mechanism and both templates own what they point at, alive for the call;
        // the two handles are valid out-pointers.
        let rv = unsafe {
            self.lib.C_GenerateKeyPair(
                self.session,
                mech.ptr(),
                public.ptr(),
                public.len(),
                private.ptr(),
                private.len(),
                &mut pubh,
                &mut privh,
            )
        };
        (rv, pubh, privh)
    }

    /// `C_WrapKey` with a 4 KiB output buffer.
    pub fn wrap(
        &self,
        mut mech: Mech<'_>,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> (CK_RV, Option<Vec<u8>>) {
        let mut out = vec![0u8; 4096];
        let mut len = out.len() as CK_ULONG;
        // SAFETY: the mechanism owns its parameter; `out` holds `len` bytes and `len` is a valid
        // in/out pointer, all alive for the call.
        let rv = unsafe {
            self.lib.C_WrapKey(
                self.session,
                mech.ptr(),
                wrapping,
                key,
                out.as_mut_ptr(),
                &mut len,
            )
        };
        if rv == CKR_OK {
            out.truncate(len as usize);
            (rv, Some(out))
        } else {
            (rv, None)
        }
    }

    pub fn derive(
        &self,
        mut mech: Mech<'_>,
        base: CK_OBJECT_HANDLE,
        mut template: Template,
    ) -> (CK_RV, CK_OBJECT_HANDLE) {
        let mut h = CK_INVALID_HANDLE;
        // SAFETY: the mechanism's parameter is owned or borrowed for `'_` (alive for the call),
        // the template owns its buffers, `h` is a valid out-pointer.
        let rv = unsafe {
            self.lib.C_DeriveKey(
                self.session,
                mech.ptr(),
                base,
                template.ptr(),
                template.len(),
                &mut h,
            )
        };
        (rv, h)
    }

    pub fn destroy(&self, obj: CK_OBJECT_HANDLE) -> CK_RV {
        // SAFETY: no pointer argument; a wrong handle is the module's to refuse.
        unsafe { self.lib.C_DestroyObject(self.session, obj) }
    }

    /// Runs `init` (an `C_*Init` call); if the token accepted it, finishes the operation so the
    /// session is usable again, and returns what the finishing call produced.
    pub fn init_and_finish(
        &self,
        kind: OpKind,
        mut mech: Mech<'_>,
        key: CK_OBJECT_HANDLE,
    ) -> (CK_RV, Option<Vec<u8>>) {
        let s = self.session;
        let mut data = *b"0123456789abcdef";
        let mut out = vec![0u8; 1024];
        let mut len = out.len() as CK_ULONG;
        // SAFETY: the mechanism owns its parameter; `data` (16 bytes) and `out` (`len` bytes)
        // match the lengths passed with them; all outlive the calls.
        unsafe {
            let rv = match kind {
                OpKind::Encrypt => self.lib.C_EncryptInit(s, mech.ptr(), key),
                OpKind::Decrypt => self.lib.C_DecryptInit(s, mech.ptr(), key),
                OpKind::Sign => self.lib.C_SignInit(s, mech.ptr(), key),
            };
            if rv != CKR_OK {
                return (rv, None);
            }
            let done = match kind {
                OpKind::Encrypt => {
                    self.lib
                        .C_Encrypt(s, data.as_mut_ptr(), 16, out.as_mut_ptr(), &mut len)
                }
                OpKind::Decrypt => {
                    self.lib
                        .C_Decrypt(s, data.as_mut_ptr(), 16, out.as_mut_ptr(), &mut len)
                }
                OpKind::Sign => {
                    self.lib
                        .C_Sign(s, data.as_mut_ptr(), 16, out.as_mut_ptr(), &mut len)
                }
            };
            out.truncate(if done == CKR_OK { len as usize } else { 0 });
            (rv, Some(out))
        }
    }

    /// `C_DigestInit(SHA-256)` + `C_DigestKey(key)`: a digest of the key's value leaks it to
    /// guessing. Finishes the digest if the token accepted.
    pub fn digest_key(&self, key: CK_OBJECT_HANDLE) -> (CK_RV, Option<Vec<u8>>) {
        let s = self.session;
        let mut mech = Mech::new(CKM_SHA256);
        let mut out = [0u8; 64];
        let mut len = out.len() as CK_ULONG;
        // SAFETY: the mechanism has no parameter; `out` holds `len` bytes (more than a SHA-256
        // digest) and `len` is a valid in/out pointer; all outlive the calls.
        unsafe {
            let rv = self.lib.C_DigestInit(s, mech.ptr());
            assert_eq!(rv, CKR_OK, "C_DigestInit(SHA256): {}", rv_name(rv));
            let rv = self.lib.C_DigestKey(s, key);
            // Ends the digest operation whether or not the key was accepted.
            let fin = self.lib.C_DigestFinal(s, out.as_mut_ptr(), &mut len);
            if rv == CKR_OK && fin == CKR_OK {
                (rv, Some(out[..len as usize].to_vec()))
            } else {
                (rv, None)
            }
        }
    }

    pub fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        let mut n = 0;
        // SAFETY: the first call only writes the count; the second gets a buffer of that many
        // entries and the count with it.
        unsafe {
            self.lib
                .C_GetMechanismList(self.slot, ptr::null_mut(), &mut n);
            let mut list = vec![0; n as usize];
            self.lib
                .C_GetMechanismList(self.slot, list.as_mut_ptr(), &mut n);
            list.truncate(n as usize);
            list
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: no pointer argument; closes only the session this view opened.
        unsafe {
            self.lib.C_CloseSession(self.session);
        }
    }
}

/// Which operation [`Raw::init_and_finish`] starts.
#[derive(Clone, Copy)]
pub enum OpKind {
    Encrypt,
    Decrypt,
    Sign,
}

fn find_slot(lib: &RawModule, label: &str) -> Option<CK_SLOT_ID> {
    let mut n = 0;
    // SAFETY: the first call only writes the count, the second gets a buffer of that many
    // slots; CK_TOKEN_INFO is plain data (all zeroes is a valid value) and `info` a valid
    // out-pointer.
    unsafe {
        lib.C_GetSlotList(CK_TRUE, ptr::null_mut(), &mut n);
        let mut slots = vec![0; n as usize];
        lib.C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n);
        slots.truncate(n as usize);
        slots.into_iter().find(|&slot| {
            let mut info: CK_TOKEN_INFO = std::mem::zeroed();
            lib.C_GetTokenInfo(slot, &mut info) == CKR_OK
                && String::from_utf8_lossy(&info.label).trim_end() == label
        })
    }
}

/// `0x11 AttributeSensitive`-style name of a return code.
pub fn rv_name(rv: CK_RV) -> String {
    if rv == CKR_OK {
        return "0x0 OK".into();
    }
    let name = format!("{:?}", cryptoki::error::Rv::from(rv));
    let name = name
        .strip_prefix("Error(")
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or(&name)
        .to_owned();
    format!("{rv:#x} {name}")
}

// ---------------------------------------------------------------------------------------------
// fault-module's controls

/// The control functions `fault-module` exports besides PKCS#11 (see `fault-module/src/lib.rs`):
/// its settings are process-wide.
pub struct FaultControls {
    lib: libloading::Library,
}

type FaultConfigure = unsafe extern "C" fn(u64, u64);
type FaultCounts = unsafe extern "C" fn(*mut u64, usize) -> usize;
type FaultReset = unsafe extern "C" fn();

impl FaultControls {
    /// `dlopen`s the fault module at `path`.
    pub fn load(path: &Path) -> FaultControls {
        // SAFETY: the fault module's initialisers only set up statics.
        let lib = unsafe { libloading::Library::new(path) }.expect("load fault-module");
        FaultControls { lib }
    }

    /// Sets the fault period and kinds (bits), as `fault_module_configure` defines them.
    pub fn configure(&self, period: u64, kinds: u64) {
        // SAFETY: exported with this signature by fault-module; the symbol does not outlive
        // `self.lib`.
        unsafe {
            let f: libloading::Symbol<FaultConfigure> =
                self.lib.get(b"fault_module_configure\0").unwrap();
            f(period, kinds)
        }
    }

    /// [calls, device, session, login, general, open now, most open].
    pub fn counts(&self) -> [u64; 7] {
        let mut out = [0u64; 7];
        // SAFETY: exported with this signature; `out` has the 7 slots the length says.
        unsafe {
            let f: libloading::Symbol<FaultCounts> =
                self.lib.get(b"fault_module_counts\0").unwrap();
            f(out.as_mut_ptr(), out.len());
        }
        out
    }

    /// Zeroes the call and fault counters (the configured faults stay).
    pub fn reset(&self) {
        // SAFETY: exported with this signature; takes nothing.
        unsafe {
            let f: libloading::Symbol<FaultReset> = self.lib.get(b"fault_module_reset\0").unwrap();
            f()
        }
    }
}
