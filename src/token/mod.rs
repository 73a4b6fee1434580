//! The token layer: one module per process, the token found by label, the login, the session
//! pool and the recovery that the error classification drives.
//!
//! Login is per application, not per session, and closing the application's last session logs it
//! out; so the token keeps one *reserved* logged-in session that never signs. The reserved
//! session also owns the session-object copies of keys (the fast path): when it dies, they die
//! with it, and the login epoch moves on so that every cached handle is looked up again.

pub(crate) mod attr;
pub(crate) mod combine;
pub(crate) mod module;
pub(crate) mod pool;
pub(crate) mod probe;
pub(crate) mod recover;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::{Limit, Slot};
use secrecy::SecretString;

use crate::config::Config;
use crate::error::{Error, Result};
use pool::{Lease, Pool, PoolStats};

/// `CK_TOKEN_INFO.manufacturerID` of SoftHSM2 tokens (space-padded in the token info).
const SOFTHSM_MANUFACTURER: &str = "SoftHSM project";

/// Facts about the connected token, read at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Token label.
    pub label: String,
    /// Manufacturer id as the token reports it.
    pub manufacturer: String,
    /// Model as the token reports it.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// The token's own limit on read-write sessions, if it states one.
    pub max_rw_sessions: Option<u64>,
    /// `CKF_USER_PIN_COUNT_LOW`: a wrong PIN was entered recently.
    pub pin_count_low: bool,
    /// `CKF_USER_PIN_FINAL_TRY`: one more wrong PIN locks the token.
    pub pin_final_try: bool,
}

pub(crate) struct Token {
    ctx: Pkcs11,
    label: String,
    slot: RwLock<Slot>,
    pin: Option<SecretString>,
    /// The logged-in session that keeps the login alive and owns session-object key copies.
    reserved: Mutex<Option<Session>>,
    /// Moves on whenever the login or the reserved session is renewed: cached handles of an
    /// older epoch are looked up again.
    epoch: AtomicU64,
    pin_rejected: AtomicBool,
    pub(crate) pool: Pool,
    /// Held for reading around every sign, for writing around every destroy of an object that
    /// may be signing: SoftHSM2 frees an object under a thread that is inside C_SignInit with it
    /// (use after free, measured with C_CloseAllSessions), so the two never overlap here.
    pub(crate) sign_gate: RwLock<()>,
    /// The turn every HMAC sign takes when HMAC signs go one at a time
    /// ([`crate::Config::serialize_hmac`]); see `combine` for how a holder signs for a waiter.
    pub(crate) hmac_serial: Option<combine::Combiner>,
    reconnect_attempts: u32,
    reconnect_backoff: Duration,
    pub(crate) fast_path: bool,
    /// Mechanisms the token offers, asked once at connect time.
    mechanisms: Vec<cryptoki::mechanism::MechanismType>,
    /// Module path and `C_Initialize` parameter string, for a re-initialisation.
    module_path: std::path::PathBuf,
    init_params: Option<String>,
}

impl Token {
    /// Loads the module, finds the token, logs in and sizes the pool.
    pub(crate) fn connect(config: &Config) -> Result<Token> {
        let ctx = module::load_with(&config.module, config.module_init_params.as_deref())?;
        let slot = find_slot(&ctx, &config.token)?;
        let (info, mechanisms) = {
            let _serial = SLOT_LIST_LOCK
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let info = token_info_retrying(&ctx, slot).map_err(|e| Error::from_ck(&e))?;
            (info, ctx.get_mechanism_list(slot).unwrap_or_default())
        };
        let capacity = match info.max_rw_session_count() {
            // One of the token's sessions is the reserved login session.
            Limit::Max(n) if n >= 2 => config.pool_size.min((n - 1) as usize),
            Limit::Max(_) => 1,
            Limit::Infinite | Limit::Unavailable => config.pool_size,
        };
        let token = Token {
            ctx,
            label: config.token.clone(),
            slot: RwLock::new(slot),
            pin: config.pin.clone(),
            reserved: Mutex::new(None),
            epoch: AtomicU64::new(0),
            pin_rejected: AtomicBool::new(false),
            pool: Pool::new(capacity, config.checkout_timeout),
            sign_gate: RwLock::new(()),
            hmac_serial: config
                .serialize_hmac
                .unwrap_or(info.manufacturer_id().trim_end() == SOFTHSM_MANUFACTURER)
                .then(|| {
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    combine::Combiner::new(cores)
                }),
            reconnect_attempts: config.reconnect_attempts,
            reconnect_backoff: config.reconnect_backoff,
            fast_path: config.fast_path,
            mechanisms,
            module_path: config.module.clone(),
            init_params: config.module_init_params.clone(),
        };
        token.ensure_login()?;
        Ok(token)
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The module's path as configured.
    pub(crate) fn module_path(&self) -> &std::path::Path {
        &self.module_path
    }

    pub(crate) fn slot(&self) -> Slot {
        *self.slot.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the token listed `mechanism` at connect time (true when it listed nothing: then
    /// the token itself has the last word).
    pub(crate) fn has_mechanism(&self, mechanism: cryptoki::mechanism::MechanismType) -> bool {
        self.mechanisms.is_empty() || self.mechanisms.contains(&mechanism)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut stats = self.pool.stats();
        if let Some(combiner) = &self.hmac_serial {
            (
                stats.hmacs_signed_for_others,
                stats.hmacs_handed_back,
                stats.hmacs_past_the_turn,
            ) = combiner.counts();
        }
        stats
    }

    pub(crate) fn info(&self) -> Result<TokenInfo> {
        let info = {
            let _serial = SLOT_LIST_LOCK
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            token_info_retrying(&self.ctx, self.slot()).map_err(|e| Error::from_ck(&e))?
        };
        Ok(TokenInfo {
            label: info.label().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            max_rw_sessions: match info.max_rw_session_count() {
                Limit::Max(n) => Some(n),
                _ => None,
            },
            pin_count_low: info.user_pin_count_low(),
            pin_final_try: info.user_pin_final_try(),
        })
    }

    /// A pool session; opens one if the pool is under capacity.
    pub(crate) fn lease(&self) -> Result<Lease<'_>> {
        self.pool.checkout(|| {
            self.ctx
                .open_rw_session(self.slot())
                .map_err(|e| Error::from_ck(&e))
        })
    }

    /// Shared access for signing (see `sign_gate`).
    pub(crate) fn sign_guard(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.sign_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Signs an HMAC on `session`, one at a time across threads when `hmac_serial` is set
    /// (then possibly on the session of the thread holding the turn: see `combine`).
    pub(crate) fn sign_hmac(
        &self,
        session: &Session,
        alg: crate::alg::HmacAlg,
        handle: cryptoki::object::ObjectHandle,
        data: &[u8],
    ) -> std::result::Result<Vec<u8>, CkError> {
        match &self.hmac_serial {
            Some(combiner) => combiner.sign(session, alg, handle, data),
            None => session.sign(&alg.mechanism(), handle, data),
        }
    }

    /// Exclusive access for destroying objects (see `sign_gate`).
    pub(crate) fn destroy_guard(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.sign_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reserved(&self) -> MutexGuard<'_, Option<Session>> {
        self.reserved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the reserved session (used for session-object key copies).
    pub(crate) fn with_reserved<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        self.ensure_login()?;
        let guard = self.reserved();
        match guard.as_ref() {
            Some(session) => f(session),
            None => Err(Error::TokenUnavailable {
                token: self.label.clone(),
                attempts: 0,
                function: "C_OpenSession".into(),
                rv: "no reserved session".into(),
            }),
        }
    }

    /// Makes sure the application is logged in through a live reserved session. Logs in at most
    /// once per call and never after the token refused this PIN. Returns whether a new reserved
    /// session had to be opened (which means every other session of the application may be gone
    /// too, so the pool is purged).
    pub(crate) fn ensure_login(&self) -> Result<bool> {
        let mut guard = self.reserved();
        if self.pin_rejected.load(Ordering::Acquire) {
            return Err(Error::PinRejectedEarlier {
                token: self.label.clone(),
            });
        }
        let state = guard.as_ref().map(|s| s.get_session_info());
        match state {
            Some(Ok(info))
                if matches!(
                    info.session_state(),
                    SessionState::RwUser | SessionState::RoUser
                ) =>
            {
                Ok(false)
            }
            Some(Ok(_)) => {
                // Alive but logged out (someone called C_Logout): log in on it again.
                // Invariant: this arm only matches when `state` came from a session.
                self.login(guard.as_ref().expect("checked Some above"))?;
                self.pool.relogins.fetch_add(1, Ordering::Relaxed);
                self.epoch.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(token = %self.label, "login lost; logged in again");
                Ok(false)
            }
            _ => {
                let had_session = guard.is_some();
                // The old one is dead; dropping it may log a close failure, nothing more.
                *guard = None;
                let session = self
                    .ctx
                    .open_rw_session(self.slot())
                    .map_err(|e| Error::from_ck(&e))?;
                self.login(&session)?;
                *guard = Some(session);
                self.epoch.fetch_add(1, Ordering::AcqRel);
                if had_session {
                    self.pool.relogins.fetch_add(1, Ordering::Relaxed);
                    drop(guard);
                    // Our reserved session died: assume every session of ours did.
                    self.pool.purge();
                    tracing::warn!(token = %self.label, "sessions lost; logged in again");
                }
                Ok(had_session)
            }
        }
    }

    fn login(&self, session: &Session) -> Result<()> {
        let Some(pin) = self.pin.as_ref() else {
            return Err(Error::Config(format!(
                "no PIN configured for token `{}`; set HSM_CUSTODY_PIN_FILE or pass --pin-file",
                self.label
            )));
        };
        match session.login(UserType::User, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                self.pin_rejected.store(true, Ordering::Release);
                tracing::error!(token = %self.label, "login refused: PIN incorrect");
                let advice = match self.info() {
                    Ok(i) if i.pin_final_try => "1 attempt may remain before the token locks",
                    Ok(i) if i.pin_count_low => {
                        "the token reports few attempts left before it locks"
                    }
                    _ => "the token may lock after more failures",
                };
                Err(Error::PinIncorrect {
                    token: self.label.clone(),
                    advice,
                })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                self.pin_rejected.store(true, Ordering::Release);
                Err(Error::PinLocked {
                    token: self.label.clone(),
                })
            }
            Err(CkError::Pkcs11(RvError::PinLenRange, _)) => Err(Error::invalid(
                "the PIN's length is outside what the token accepts",
            )),
            Err(e) => Err(Error::from_ck(&e)),
        }
    }
}

/// Serialises `C_GetSlotList`, `C_GetTokenInfo` and `C_InitToken` process-wide: SoftHSM2 2.6.1
/// refreshes its slot list inside `C_GetSlotList` and aborts (assertion in
/// `SlotManager::insertToken`, seen in gdb) when two threads do it at once after a token was
/// initialised, and answers `CKR_GENERAL_ERROR` to a `C_GetTokenInfo` racing a refresh.
pub(crate) static SLOT_LIST_LOCK: Mutex<()> = Mutex::new(());

/// Finds the slot holding the token labelled `label`.
pub(crate) fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot> {
    let _serial = SLOT_LIST_LOCK
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| Error::from_ck(&e))?;
    let mut present = Vec::new();
    for slot in slots {
        let Ok(info) = token_info_retrying(ctx, slot) else {
            continue;
        };
        let found = info.label().trim_end();
        if found == label {
            return Ok(slot);
        }
        present.push(format!("`{found}`"));
    }
    Err(Error::TokenNotFound {
        label: label.to_owned(),
        present: if present.is_empty() {
            "none".into()
        } else {
            present.join(", ")
        },
    })
}

/// `C_GetTokenInfo`, retried briefly on `CKR_GENERAL_ERROR`: SoftHSM2 answers that while another
/// process initialises a token in the same token directory (seen in the CLI tests).
fn token_info_retrying(ctx: &Pkcs11, slot: Slot) -> Result<cryptoki::slot::TokenInfo, CkError> {
    let mut delay = Duration::from_millis(5);
    for _ in 0..4 {
        match ctx.get_token_info(slot) {
            Err(CkError::Pkcs11(RvError::GeneralError, _)) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    ctx.get_token_info(slot)
}
