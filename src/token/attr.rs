//! Boolean attributes, read as a token reports them (shared by the custody probe, the key
//! audit and the key templates).

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

/// The value of a boolean attribute (`CKA_TOKEN`, `CKA_SENSITIVE`, `CKA_SIGN` ...), `None` for
/// any other attribute.
pub(crate) fn flag(attribute: &Attribute) -> Option<bool> {
    match attribute {
        Attribute::Token(b)
        | Attribute::Private(b)
        | Attribute::Sensitive(b)
        | Attribute::Extractable(b)
        | Attribute::AlwaysSensitive(b)
        | Attribute::NeverExtractable(b)
        | Attribute::Modifiable(b)
        | Attribute::Copyable(b)
        | Attribute::Sign(b)
        | Attribute::Verify(b)
        | Attribute::Encrypt(b)
        | Attribute::Decrypt(b)
        | Attribute::Wrap(b)
        | Attribute::Unwrap(b)
        | Attribute::Derive(b) => Some(*b),
        _ => None,
    }
}

/// One boolean attribute with one `C_GetAttributeValue`: `None` when the token does not say
/// (the attribute is invalid for the object, or sensitive).
pub(crate) fn read_bool(
    session: &Session,
    h: ObjectHandle,
    t: AttributeType,
) -> cryptoki::error::Result<Option<bool>> {
    let attrs = match session.get_attributes(h, &[t]) {
        Ok(a) => a,
        Err(CkError::Pkcs11(RvError::AttributeTypeInvalid | RvError::AttributeSensitive, _)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(attrs.iter().find_map(flag))
}
