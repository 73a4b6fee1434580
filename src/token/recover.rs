//! Recovery after a failed token call: the error's class ([`crate::error::Class`]) says what
//! to do (reopen a session, log in again, reconnect with backoff, or stop); the caller retries
//! within its bounded budget.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use cryptoki::error::{Error as CkError, RvError};

use super::pool::Lease;
use super::{find_slot, module, Token};
use crate::error::{classify, function_name, rv_name, Class, Error, Result};

impl Token {
    /// Recovers from `err` as its class says and returns the class: the caller retries unless
    /// it is [`Class::Caller`] or [`Class::PinFatal`]. `started` is the login epoch the failed
    /// operation began in.
    pub(crate) fn recover(&self, err: &CkError, lease: Lease<'_>, started: u64) -> Result<Class> {
        let class = classify(err);
        match class {
            Class::SessionDead => {
                lease.discard();
                self.ensure_login()?;
            }
            Class::LoginLost | Class::HandleStale => {
                drop(lease);
                self.ensure_login()?;
            }
            Class::TokenGone => {
                lease.discard();
                self.reconnect(err)?;
            }
            Class::Caller if matches!(err, CkError::Pkcs11(RvError::GeneralError, _)) => {
                // SoftHSM2 answers CKR_GENERAL_ERROR when a logout lands between its login check
                // and its use of a private object. Restore the login and let the caller retry
                // within its bounded budget (a lasting fault still surfaces after it). The
                // session is closed, not pooled: a C_FindObjectsInit that failed so can leave
                // its find operation open, and the session's next find answers OperationActive.
                lease.discard();
                self.ensure_login()?;
                let relogged = self.epoch() != started;
                tracing::debug!(relogged, "CKR_GENERAL_ERROR; retrying");
                return Ok(Class::Transient);
            }
            Class::PinFatal | Class::Caller | Class::Transient => {}
        }
        Ok(class)
    }

    /// Backs off and reconnects after a device-level failure.
    fn reconnect(&self, cause: &CkError) -> Result<()> {
        let mut delay = self.reconnect_backoff;
        let mut last = cause.to_string();
        let (mut function, mut rv) = match cause {
            CkError::Pkcs11(rv, f) => (function_name(*f), rv_name(*rv)),
            other => ("(cryptoki)".to_owned(), other.to_string()),
        };
        for attempt in 1..=self.reconnect_attempts {
            self.pool.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(token = %self.label, attempt, cause = %last, "reconnecting");
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
            self.pool.purge();
            // The reserved session is not dropped here: if it survived, it still holds the
            // login (dropping the application's last session logs it out); if it died,
            // `ensure_login` sees that and opens a new one.
            if matches!(cause, CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) {
                module::reinitialize(&self.ctx, &self.module_path, self.init_params.as_deref())?;
            }
            match find_slot(&self.ctx, &self.label) {
                Ok(slot) => *self.slot.write().unwrap_or_else(PoisonError::into_inner) = slot,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            }
            match self.ensure_login() {
                Ok(_) => return Ok(()),
                Err(e @ (Error::PinIncorrect { .. } | Error::PinLocked { .. })) => return Err(e),
                Err(e) => {
                    if let Error::Pkcs11 {
                        function: f, rv: r, ..
                    } = &e
                    {
                        function = function_name(*f);
                        rv = rv_name(*r);
                    }
                    last = e.to_string();
                }
            }
        }
        Err(Error::TokenUnavailable {
            token: self.label.clone(),
            attempts: self.reconnect_attempts,
            function,
            rv,
        })
    }
}

/// Whether a failed sign on one of our session copies means the copy is gone rather than that
/// the caller asked for something the key forbids (the token object would answer otherwise).
/// `KeySizeRange`: a logout racing a `C_SignInit` on SoftHSM2 can leave the copy with an empty
/// value for that call (seen in `core::logout_behind_the_pools_back_loses_no_sign` under load).
/// A key whose real size is wrong fails again on the reloaded entry and is reported after
/// `MAX_RECOVERIES`.
pub(crate) fn copy_lost(err: &cryptoki::error::Error) -> bool {
    use cryptoki::error::{Error as CkError, RvError};
    matches!(
        err,
        CkError::Pkcs11(
            RvError::KeyFunctionNotPermitted
                | RvError::KeyTypeInconsistent
                | RvError::KeySizeRange
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

#[cfg(test)]
mod tests {
    use cryptoki::context::Function;
    use cryptoki::error::{Error as CkError, RvError};

    #[test]
    fn a_session_copy_gone_or_emptied_is_reloaded_other_failures_are_not() {
        let failed = |rv| CkError::Pkcs11(rv, Function::SignInit);
        for rv in [
            RvError::KeySizeRange,
            RvError::KeyHandleInvalid,
            RvError::ObjectHandleInvalid,
            RvError::KeyFunctionNotPermitted,
            RvError::KeyTypeInconsistent,
        ] {
            assert!(super::copy_lost(&failed(rv)), "{rv:?}");
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::UserNotLoggedIn,
            RvError::MechanismInvalid,
            RvError::DeviceError,
            RvError::GeneralError,
            RvError::SessionHandleInvalid,
        ] {
            assert!(!super::copy_lost(&failed(rv)), "{rv:?}");
        }
    }
}
