//! Token administration for development and test tokens.
//!
//! Production tokens are initialised with the vendor's tools; these helpers exist so that the
//! CLI, the examples and the test fixtures can make a fresh token on a software module without
//! shelling out.

use cryptoki::session::UserType;
use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::token::{find_slot, module, SLOT_LIST_LOCK};

/// Initialises the first uninitialised slot of `module` as a token labelled `label`, with the
/// given security-officer and user PINs. Refuses a label that is already present.
///
/// # Errors
/// The label exists, no free slot is left, or the module refuses.
///
/// # Security
/// This erases whatever the chosen slot held. It only ever picks a slot whose token reports
/// itself uninitialised.
pub fn init_token(
    module_path: impl AsRef<std::path::Path>,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<()> {
    static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = INIT_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ctx = module::load_with(module_path.as_ref(), None)?;
    if find_slot(&ctx, label).is_ok() {
        return Err(Error::invalid(format!(
            "a token labelled `{label}` already exists"
        )));
    }
    let ck = |e: cryptoki::error::Error| Error::from_ck(&e);
    let _slots = SLOT_LIST_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let initialised = ctx.get_slots_with_initialized_token().map_err(ck)?;
    let slot = ctx
        .get_slots_with_token()
        .map_err(ck)?
        .into_iter()
        .find(|s| !initialised.contains(s))
        .ok_or_else(|| Error::invalid("no uninitialised slot left in this module"))?;
    ctx.init_token(slot, so_pin, label).map_err(ck)?;
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    session.login(UserType::So, Some(so_pin)).map_err(ck)?;
    session.init_pin(user_pin).map_err(ck)?;
    session.logout().map_err(ck)?;
    Ok(())
}

/// The slot id of the token labelled `label` in `module`, found under the crate's process-wide
/// slot-list lock (SoftHSM2 aborts on concurrent `C_GetSlotList`). For tools and tests that open
/// their own PKCS#11 sessions beside a [`crate::Custody`].
///
/// # Errors
/// [`Error::TokenNotFound`], module errors.
pub fn slot_id(module_path: impl AsRef<std::path::Path>, label: &str) -> Result<u64> {
    let ctx = module::load_with(module_path.as_ref(), None)?;
    Ok(find_slot(&ctx, label)?.id())
}
