//! A cryptoki context on a module that the crate has already initialised in this process.

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

/// The module at `module`, through its own cryptoki context: `CKR_CRYPTOKI_ALREADY_INITIALIZED`
/// is expected and fine (one `C_Initialize` per module per process; cryptoki never finalises
/// on drop).
#[allow(dead_code)] // not every binary that includes this file uses it
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
