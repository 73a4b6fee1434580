//! PKCS#11 return codes: their names, what they mean, what to do, and how the crate reacts.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use super::Error;

impl Error {
    /// Builds the PKCS#11 error for a cryptoki failure: typed function and return value when
    /// the module answered, [`Error::Cryptoki`] for cryptoki's own failures.
    pub(crate) fn from_ck(err: &CkError) -> Self {
        match err {
            CkError::Pkcs11(rv, function) => Error::Pkcs11 {
                function: *function,
                rv: *rv,
                advice: None,
            },
            other => Error::Cryptoki(other.to_string()),
        }
    }
}

/// `C_Login`-style name of a cryptoki function.
pub(crate) fn function_name(f: Function) -> String {
    format!("C_{f:?}")
}

/// `CKR_...`-style name of a return code (cryptoki's variant name, e.g. `KeySizeRange`).
pub(crate) fn rv_name(rv: RvError) -> String {
    format!("{rv:?}")
}

/// What a return code means, when the bare name does not say it plainly ("; ..." in messages).
pub(crate) fn meaning(rv: RvError) -> Option<&'static str> {
    Some(match rv {
        RvError::KeySizeRange => "the key size does not suit this mechanism",
        RvError::MechanismInvalid => "the module or key does not allow this mechanism",
        RvError::KeyFunctionNotPermitted => "the key's attributes forbid this operation",
        RvError::KeyTypeInconsistent => "the key type does not suit this mechanism",
        RvError::AttributeSensitive => "the token refuses to reveal a sensitive attribute",
        RvError::AttributeReadOnly => "the attribute cannot be changed on this object",
        RvError::TokenWriteProtected => "the token is write-protected",
        RvError::DeviceMemory => "the token is out of memory",
        RvError::SessionCount => "too many sessions are open on the token",
        RvError::TemplateInconsistent | RvError::TemplateIncomplete => {
            "the module refused the object template"
        }
        RvError::AttributeValueInvalid | RvError::AttributeTypeInvalid => {
            "the module refused an attribute of the object template"
        }
        _ => return None,
    })
}

/// [`meaning`] as a message suffix: `"; ..."`, or nothing.
pub(crate) fn meaning_suffix(rv: RvError) -> String {
    meaning(rv).map(|m| format!("; {m}")).unwrap_or_default()
}

/// What to do about a return code, when the crate knows ([`Error::hint`]).
pub(crate) fn advice(rv: RvError) -> Option<&'static str> {
    Some(match rv {
        RvError::DeviceMemory => "remove unused objects from the token",
        RvError::SessionCount => "lower `pool.size`",
        _ => return None,
    })
}

/// How the crate reacts to a PKCS#11 return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The session is gone or stuck: evict it and open another.
    SessionDead,
    /// The application is no longer logged in: log in again, once.
    LoginLost,
    /// A cached object handle no longer names the object: look it up again.
    HandleStale,
    /// The device or module failed: back off and reconnect.
    TokenGone,
    /// A failure the module reports for a passing condition (SoftHSM2's CKR_GENERAL_ERROR when a
    /// logout races an operation): retry, within the caller's bounded recovery budget.
    Transient,
    /// Wrong or locked PIN: stop, never retry.
    PinFatal,
    /// Everything else is the caller's error and is returned as is.
    Caller,
}

/// Classifies a cryptoki error (see the architecture note, "Sessions").
pub(crate) fn classify(err: &CkError) -> Class {
    let CkError::Pkcs11(rv, _) = err else {
        return Class::Caller;
    };
    match rv {
        RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::OperationActive
        | RvError::SessionExists => Class::SessionDead,
        RvError::UserNotLoggedIn => Class::LoginLost,
        RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => Class::HandleStale,
        RvError::DeviceError
        | RvError::DeviceRemoved
        | RvError::TokenNotPresent
        | RvError::TokenNotRecognized
        | RvError::CryptokiNotInitialized
        | RvError::SlotIdInvalid => Class::TokenGone,
        RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired => Class::PinFatal,
        _ => Class::Caller,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn classification_follows_the_architecture_note() {
        let e = |rv| CkError::Pkcs11(rv, Function::Sign);
        assert_eq!(
            classify(&e(RvError::SessionHandleInvalid)),
            Class::SessionDead
        );
        assert_eq!(classify(&e(RvError::SessionClosed)), Class::SessionDead);
        assert_eq!(classify(&e(RvError::UserNotLoggedIn)), Class::LoginLost);
        assert_eq!(
            classify(&e(RvError::ObjectHandleInvalid)),
            Class::HandleStale
        );
        assert_eq!(classify(&e(RvError::KeyHandleInvalid)), Class::HandleStale);
        assert_eq!(classify(&e(RvError::DeviceRemoved)), Class::TokenGone);
        assert_eq!(classify(&e(RvError::PinIncorrect)), Class::PinFatal);
        assert_eq!(classify(&e(RvError::PinLocked)), Class::PinFatal);
        assert_eq!(classify(&e(RvError::DataLenRange)), Class::Caller);
    }

    #[test]
    fn pkcs11_errors_name_function_and_code() {
        let err = Error::from_ck(&CkError::Pkcs11(RvError::KeySizeRange, Function::SignInit));
        let msg = err.to_string();
        assert!(msg.contains("C_SignInit"), "{msg}");
        assert!(msg.contains("KeySizeRange"), "{msg}");
        assert!(msg.contains("key size"), "{msg}");
        assert_eq!(err.kind(), ErrorKind::Token);
        // Typed, not strings: a caller can match on the return value.
        assert!(matches!(
            err,
            Error::Pkcs11 {
                rv: RvError::KeySizeRange,
                function: Function::SignInit,
                ..
            }
        ));
        let full = Error::from_ck(&CkError::Pkcs11(
            RvError::SessionCount,
            Function::OpenSession,
        ));
        assert_eq!(
            full.to_string(),
            "PKCS#11 C_OpenSession failed with SessionCount; too many sessions are open on the token"
        );
        assert_eq!(full.hint().as_deref(), Some("lower `pool.size`"));
    }
}
