//! The public handle: [`Custody`] and [`KeyRef`].

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::Config;
use crate::error::{Class, Error, Result};
use crate::keys::cache::KeyCache;
use crate::keys::{import, store, KeyInfo, KeySpec};
use crate::sign::{HmacAlg, Mac, Signature};
use crate::token::pool::PoolStats;
use crate::token::{Token, TokenInfo};

/// How many recoveries one operation may go through (dead session, lost login, stale handle
/// can each happen once in a row after `C_CloseAllSessions`); signing is idempotent.
const MAX_RECOVERIES: usize = 3;

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
    token: Token,
    keys: KeyCache,
}

impl fmt::Debug for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custody")
            .field("token", &self.inner.token.label())
            .finish_non_exhaustive()
    }
}

impl Custody {
    /// Loads the module (once per process), finds the token by label and logs in.
    ///
    /// # Errors
    /// [`Error::ModuleLoad`], [`Error::TokenNotFound`], [`Error::PinIncorrect`] (after exactly
    /// one `C_Login`; never retried), [`Error::PinLocked`], [`Error::Config`] without a PIN.
    pub fn connect(config: Config) -> Result<Custody> {
        let token = Token::connect(&config)?;
        Ok(Custody {
            inner: Arc::new(Inner {
                token,
                keys: KeyCache::default(),
            }),
        })
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        self.inner.token.label()
    }

    /// Facts about the token (model, serial, PIN counters).
    ///
    /// # Errors
    /// The token cannot be queried.
    pub fn token_info(&self) -> Result<TokenInfo> {
        self.inner.token.info()
    }

    /// Pool counters, for monitoring.
    pub fn stats(&self) -> PoolStats {
        self.inner.token.stats()
    }

    /// Imports an exchange's HMAC secret as a hardened token key and proves it (see
    /// [`KeySpec`]). The secret is wiped when this returns, whatever the outcome.
    ///
    /// # Errors
    /// [`Error::KeyExists`] if the name is taken (nothing is overwritten),
    /// [`Error::InvalidInput`] for a bad name or secret, [`Error::SelfCheckFailed`] if the
    /// token's MAC differs from software (the object is destroyed).
    ///
    /// # Security
    /// The secret goes into one `C_CreateObject` template, which is wiped after the call.
    pub fn import_hmac_secret(&self, spec: KeySpec, secret: SecretString) -> Result<KeyInfo> {
        let info = import::import_hmac(&self.inner.token, &spec, secret)?;
        self.inner.keys.forget(&spec.name);
        Ok(info)
    }

    /// A handle to the key `name`, with its token handle cached.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], or token failures.
    pub fn key(&self, name: &str) -> Result<KeyRef> {
        let entry = self.inner.keys.get(&self.inner.token, name)?;
        Ok(KeyRef {
            custody: self.clone(),
            name: Arc::from(name),
            exchange: entry.meta.exchange.as_deref().map(Arc::from),
        })
    }

    /// Computes an HMAC with key `name` in the token.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::AlgorithmNotAllowed`], [`Error::PoolTimeout`], or a
    /// token failure that survived recovery.
    pub fn sign_hmac(&self, name: &str, alg: HmacAlg, data: &[u8]) -> Result<Signature> {
        let token = &self.inner.token;
        let mut recoveries = 0;
        loop {
            let key = self.inner.keys.get(token, name)?;
            if !key.meta.algorithms.contains(&alg) {
                return Err(Error::AlgorithmNotAllowed {
                    key: name.to_owned(),
                    alg: alg.name().into(),
                    reason: "the key was imported for other algorithms".into(),
                });
            }
            let lease = token.lease()?;
            let result = lease
                .session()
                .sign(&alg.mechanism(), key.sign_handle, data);
            let err = match result {
                Ok(mac) => return Ok(Signature(mac)),
                Err(err) => err,
            };
            let class = token.recover(&err, lease, key.epoch)?;
            if class == Class::HandleStale {
                self.inner.keys.invalidate(&key);
            }
            recoveries += 1;
            if matches!(class, Class::Caller | Class::PinFatal) || recoveries > MAX_RECOVERIES {
                return Err(Error::from_ck(&err));
            }
            tracing::debug!(key = name, ?class, "retrying after recovery");
        }
    }

    /// Every key in the token: managed keys with their metadata, and secret keys this crate did
    /// not create (kind `foreign`). Values are never read.
    ///
    /// # Errors
    /// Token failures.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let lease = self.inner.token.lease()?;
        store::list(lease.session()).map_err(|e| Error::from_ck(&e))
    }

    /// Asks the token for the key's `CKA_VALUE` and returns the token's refusal (for example
    /// `CKR_ATTRIBUTE_SENSITIVE`). The bytes are never returned.
    ///
    /// # Errors
    /// [`Error::SelfCheckFailed`] if the token *did* reveal the value (the module is not fit
    /// for custody), [`Error::KeyNotFound`].
    pub fn value_read_refusal(&self, name: &str) -> Result<String> {
        let key = self.inner.keys.get(&self.inner.token, name)?;
        let lease = self.inner.token.lease()?;
        store::value_read_refusal(lease.session(), key.token_handle, name)
    }
}

/// A named key in a [`Custody`]; implements [`Mac`] for the exchange signers.
#[derive(Clone)]
pub struct KeyRef {
    custody: Custody,
    name: Arc<str>,
    exchange: Option<Arc<str>>,
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRef").field("name", &self.name).finish()
    }
}

impl KeyRef {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Computes an HMAC in the token.
    ///
    /// # Errors
    /// As [`Custody::sign_hmac`].
    pub fn hmac(&self, alg: HmacAlg, data: &[u8]) -> Result<Signature> {
        self.custody.sign_hmac(&self.name, alg, data)
    }

    /// The exchange this key is bound to, from its metadata.
    pub fn bound_exchange(&self) -> Option<&str> {
        self.exchange.as_deref()
    }
}

impl Mac for KeyRef {
    fn key_name(&self) -> &str {
        &self.name
    }

    fn exchange(&self) -> Option<&str> {
        self.bound_exchange()
    }

    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<Signature> {
        self.hmac(alg, msg)
    }
}
