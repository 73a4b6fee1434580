//! The public handle: [`Custody`] and [`KeyRef`], split by function group as cryptoki splits its
//! `Session`:
//!
//! - this file: the struct, connecting (with or without guard rails), guard install, token facts;
//! - `lifecycle.rs`: creating, rotating and revoking keys, every change reported to the guard
//!   through one helper;
//! - `sign.rs`: the guarded signing path (the guard around the vault's signing loop);
//! - `key_ref.rs`: [`KeyRef`], the handle to one key that exchange signers sign through;
//! - `exchange.rs`: exchange signers for a key.
//!
//! Below it, `keys::Vault` holds the token, the key cache and the signing loop with recovery,
//! unguarded; the audit log MACs through it (`audit::TokenMac`).

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::audit::{self, Connection};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::guard::{Guard, LifecycleEvent};
use crate::guardrails::{GuardConfig, Guardrails};
use crate::keys::{store, KeyInfo, Vault};
use crate::token::pool::PoolStats;
use crate::token::TokenInfo;

mod exchange;
mod key_ref;
mod lifecycle;
mod sign;

pub use key_ref::KeyRef;
pub use lifecycle::NewVersion;

/// A connection to one token: module, login, session pool and key cache.
///
/// Cheap to clone (an `Arc`), `Send + Sync`: share one per process among all threads.
///
/// ```no_run
/// use hsm_custody::{Config, Custody, HmacAlg, KeySpec};
/// use secrecy::SecretString;
///
/// # fn main() -> Result<(), hsm_custody::Error> {
/// let custody = Custody::connect(Config::from_env()?)?;
/// let secret = SecretString::from("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j");
/// custody.import_hmac_secret(KeySpec::hmac("binance-main").exchange("binance"), secret)?;
/// let mac = custody.key("binance-main")?.hmac(HmacAlg::HmacSha256, b"symbol=LTCBTC")?;
/// println!("{}", mac.to_hex());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Custody {
    inner: Arc<Inner>,
}

struct Inner {
    /// The token and its keys, unguarded; shared (weakly) with the audit log.
    vault: Arc<Vault>,
    rotation_age_days: u32,
    /// Shared with every exchange signer this `Custody` makes (no copy per signer: the agent
    /// makes one per request).
    limits: Arc<crate::alg::Limits>,
    guard: OnceLock<Arc<dyn Guard>>,
}

impl fmt::Debug for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custody")
            .field("token", &self.inner.vault.token.label())
            .finish_non_exhaustive()
    }
}

impl Custody {
    /// Loads the module (once per process), finds the token by label and logs in.
    ///
    /// # Errors
    /// [`Error::ModuleLoad`], [`Error::TokenNotFound`], [`Error::PinIncorrect`] (after exactly
    /// one `C_Login`; never retried), [`Error::PinLocked`], [`Error::Config`] without a PIN,
    /// [`Error::NotCustodyGrade`] when the module lets a non-extractable key out and the
    /// configuration does not opt in to that: the first connect in a process to a module and
    /// token runs `doctor`'s non-extractability probe on throwaway session keys (destroyed
    /// after) and caches the verdict.
    pub fn connect(config: Config) -> Result<Custody> {
        let vault = Vault::connect(&config)?;
        crate::token::probe::custody_grade_check(&vault.token, &config)?;
        Ok(Custody {
            inner: Arc::new(Inner {
                vault: Arc::new(vault),
                rotation_age_days: config.rotation_age_days,
                limits: Arc::new(config.limits.clone()),
                guard: OnceLock::new(),
            }),
        })
    }

    /// Connects with guard rails installed from the start, so that a refused login is reported
    /// to the guard too.
    ///
    /// # Errors
    /// As [`Custody::connect`].
    pub fn connect_guarded(config: Config, guard: Arc<dyn Guard>) -> Result<Custody> {
        let label = config.token.clone();
        match Custody::connect(config) {
            Ok(custody) => {
                custody.set_guard(guard)?;
                Ok(custody)
            }
            Err(e) => {
                if matches!(e, Error::PinIncorrect { .. } | Error::PinLocked { .. }) {
                    guard.lifecycle(&LifecycleEvent::LoginFailed {
                        token: label,
                        reason: e.to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    /// Connects with the crate's guard rails ([`Guardrails`]: policy, rate limits, the audit
    /// log) installed before anything is signed or changed: the audit log is opened (the audit
    /// key generated on first use) and the guard installed as part of connecting. A refused
    /// login (wrong or locked PIN) cannot be MACed, as no session is logged in: it is noted in
    /// the log's pending file ([`audit::record_login_failure`]), which the log's next writer
    /// records in the chain, and the error is returned. Later refused logins (after a lost
    /// session) reach the installed guard directly.
    ///
    /// # Errors
    /// As [`Custody::connect`] and [`Guardrails::new`].
    pub fn connect_with(
        config: Config,
        guard_config: GuardConfig,
    ) -> Result<(Custody, Arc<Guardrails>)> {
        let label = config.token.clone();
        let custody = match Custody::connect(config) {
            Ok(custody) => custody,
            Err(e @ (Error::PinIncorrect { .. } | Error::PinLocked { .. })) => {
                if let Err(note) =
                    audit::record_login_failure(&guard_config.audit, &label, &e.to_string())
                {
                    tracing::warn!(error = %note, "the refused login could not be noted for the audit log");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let guard = Guardrails::install(&custody, guard_config)?;
        Ok((custody, guard))
    }

    /// The limits exchange signers made by this `Custody` apply to caller-given time inputs and
    /// hosts ([`Config::signing_limits`]).
    pub fn signing_limits(&self) -> &crate::alg::Limits {
        &self.inner.limits
    }

    /// The limits, shared (see [`Custody::signing_limits`]).
    pub(crate) fn shared_signing_limits(&self) -> Arc<crate::alg::Limits> {
        Arc::clone(&self.inner.limits)
    }

    /// Installs guard rails (policy, rate limits, audit) for every signature and lifecycle
    /// change made through this `Custody` and its clones. Once only.
    ///
    /// # Errors
    /// [`Error::Misuse`] when a guard is installed already.
    pub fn set_guard(&self, guard: Arc<dyn Guard>) -> Result<()> {
        self.inner
            .guard
            .set(guard)
            .map_err(|_| Error::Misuse("a guard is installed already".into()))
    }

    /// Tells the installed guard, if any, about a lifecycle change or a refused login.
    pub(crate) fn report(&self, event: LifecycleEvent) {
        if let Some(guard) = self.inner.guard.get() {
            guard.lifecycle(&event);
        }
    }

    /// The guard, when one is installed.
    pub(crate) fn guard(&self) -> Option<&Arc<dyn Guard>> {
        self.inner.guard.get()
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        self.inner.vault.token.label()
    }

    /// Facts about the token (model, serial, PIN counters).
    ///
    /// # Errors
    /// The token cannot be queried.
    pub fn token_info(&self) -> Result<TokenInfo> {
        self.inner.vault.token.info()
    }

    /// Pool counters, for monitoring.
    pub fn stats(&self) -> PoolStats {
        self.inner.vault.token.stats()
    }

    /// The age in days after which `key list` flags an active version for rotation.
    pub fn rotation_age_days(&self) -> u32 {
        self.inner.rotation_age_days
    }

    /// Whether HMAC signs go into the token one at a time while no more threads sign than there
    /// are cores ([`Config::serialize_hmac`]; by default on SoftHSM2 only).
    pub fn serializes_hmac(&self) -> bool {
        self.inner.vault.token.hmac_serial.is_some()
    }

    /// Every key in the token: managed keys with their versions, and keys this crate did not
    /// create (kind `foreign`). Values are never read.
    ///
    /// # Errors
    /// Token failures.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let lease = self.inner.vault.token.lease()?;
        store::list(lease.session()).map_err(|e| Error::from_ck(&e))
    }
}

impl audit::sealed::Sealed for Custody {
    fn vault(&self) -> &Arc<Vault> {
        &self.inner.vault
    }

    fn install_guard(&self, guard: Arc<dyn Guard>) -> Result<()> {
        self.set_guard(guard)
    }
}

impl Connection for Custody {}
