//! Taking into custody an HMAC key that another tool put in the token: a TPM's `tpm2_ptool
//! import`, an HSM vendor's key ceremony, any module where `C_CreateObject` of a secret key is
//! refused. The crate never sees its value; it checks what it can and proves the key signs.
//!
//! Preconditions: exactly one secret-key object labelled with the key's name and an id that is
//! not one of ours, and no metadata for that name. The object is left as it is (its `CKA_ID`
//! is recorded in the metadata rather than rewritten, so an interrupted adoption can never make
//! it look like the leftover of an interrupted import, which would be destroyed).

use cryptoki::object::ObjectClass;
use cryptoki::session::Session;

use super::import::prove_in_token;
use super::store;
use crate::alg::HmacAlg;
use crate::error::{Error, Result};

/// What remains true of a key after [`adopt_hmac`] accepted it.
pub(crate) struct Adopted {
    /// The object's `CKA_ID`, hex (recorded as the version's `object_id`).
    pub object_id: String,
}

/// Finds the one foreign secret key labelled `name`, checks its attributes and proves that it
/// MACs and verifies with every algorithm in `algorithms`.
pub(crate) fn adopt_hmac(
    session: &Session,
    name: &str,
    algorithms: &[HmacAlg],
    mut step: impl FnMut() -> Result<()>,
) -> Result<Adopted> {
    let ck = |e: cryptoki::error::Error| Error::from_ck(&e);
    let mut candidates =
        store::foreign_objects(session, ObjectClass::SECRET_KEY, name).map_err(ck)?;
    let (key, id) = match candidates.len() {
        1 => candidates.remove(0),
        0 => {
            return Err(Error::invalid(format!(
            "no secret key labelled `{name}` to adopt: provision it first with the module's own \
                 tool (tpm2-pkcs11: `tpm2_ptool import --algorithm=hmac --key-label={name} ...`)"
        )))
        }
        n => {
            return Err(Error::invalid(format!(
            "{n} secret keys are labelled `{name}`: adoption needs exactly one; relabel the others"
        )))
        }
    };
    if id.is_empty() {
        return Err(Error::invalid(format!(
            "the secret key labelled `{name}` has no CKA_ID: give it one (any bytes) so that it can \
             be found again"
        )));
    }
    let problems: Vec<String> = store::flags(session, key)
        .map_err(ck)?
        .weaknesses()
        .into_iter()
        .map(|(attribute, what)| format!("{attribute}: {what}"))
        .collect();
    if !problems.is_empty() {
        return Err(Error::invalid(format!(
            "the secret key labelled `{name}` is not hardened ({}): set those attributes with the \
             tool that made it (tpm2-pkcs11: `tpm2_ptool objmod --id <id> --key CKA_ENCRYPT \
             --value false --type bool`, likewise for the others) and adopt it again",
            problems.join(", ")
        )));
    }
    step()?;
    prove_in_token(session, key, name, algorithms)?;
    Ok(Adopted {
        object_id: hex::encode(id),
    })
}
