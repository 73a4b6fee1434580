//! The async facade (feature `tokio`): sign from a tokio runtime without ever blocking it.
//!
//! PKCS#11 calls block the calling thread. [`AsyncCustody`] runs each of them on tokio's
//! blocking pool (`spawn_blocking`), and admits at most as many at once as the session pool has
//! sessions ([`crate::PoolStats::capacity`]), through a fair semaphore:
//!
//! - **Never blocks the runtime.** A worker thread only awaits; the token is called on a blocking
//!   thread. This holds on a `current_thread` runtime too.
//! - **Back-pressure.** Callers beyond the pool's size wait in FIFO order on the semaphore (an
//!   `await`, no thread held), not on the pool's checkout (a parked thread with a timeout). At
//!   most `capacity` blocking threads are ever busy signing for one `AsyncCustody`.
//! - **Cancellation-safe.** Dropping a sign future (a `select!` or `timeout` that gave up) before
//!   its turn leaves nothing behind. Once a token call has started it runs to completion on its
//!   blocking thread, then releases its session and its permit; no session is left mid-operation
//!   and no state is half-done. Its result is discarded (signing is idempotent and has no side
//!   effect in the token; guard rails still record it, as they saw it happen).
//! - **Same errors, same guard rails.** Every call goes through the wrapped [`Custody`], so
//!   [`crate::Guard`] policy and audit apply exactly as to the sync API, and errors are the
//!   crate's [`Error`].
//!
//! ```no_run
//! use hsm_custody::asynch::AsyncCustody;
//! use hsm_custody::exchanges::Request;
//! use hsm_custody::{Config, Custody};
//!
//! # async fn run() -> Result<(), hsm_custody::Error> {
//! let custody = AsyncCustody::connect(Config::from_env()?).await?;
//! let binance = custody.exchange_signer("binance-main").await?;
//! let signed = binance.sign(&Request::get("/api/v3/account")).await?;
//! println!("GET {}", signed.path_and_query());
//! # Ok(()) }
//! ```

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::exchanges::{ExchangeSigner, Request, SignedRequest};
use crate::sign::{HmacAlg, Signature};

/// A [`Custody`] for async code: every token call runs on tokio's blocking pool, at most as many
/// at once as the session pool has sessions.
///
/// Cheap to clone; clones share the admission limit.
#[derive(Clone, Debug)]
pub struct AsyncCustody {
    custody: Custody,
    permits: Arc<Semaphore>,
}

impl AsyncCustody {
    /// Wraps `custody`; admits as many concurrent token calls as its pool has sessions.
    pub fn new(custody: Custody) -> Self {
        let limit = custody.stats().capacity.max(1);
        Self::with_limit(custody, limit)
    }

    /// Wraps `custody` with an explicit limit on concurrent token calls (at least 1). A limit
    /// above the pool's capacity moves the queue from the semaphore to the pool's checkout,
    /// where waiting holds a blocking thread and can end in [`Error::PoolTimeout`].
    pub fn with_limit(custody: Custody, limit: usize) -> Self {
        AsyncCustody {
            custody,
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// Connects (module load, login) on the blocking pool; see [`Custody::connect`].
    ///
    /// # Errors
    /// As [`Custody::connect`].
    pub async fn connect(config: Config) -> Result<Self> {
        let custody = join(tokio::task::spawn_blocking(move || {
            Custody::connect(config)
        }))
        .await?;
        Ok(Self::new(custody))
    }

    /// The wrapped sync handle (for lifecycle calls from a blocking context).
    pub fn custody(&self) -> &Custody {
        &self.custody
    }

    /// Token calls that could start right now without waiting.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Runs `f` with the [`Custody`] on the blocking pool once a slot is free: the building block
    /// for any sync call not wrapped here.
    ///
    /// # Errors
    /// `f`'s error; [`Error::Misuse`] if the runtime is shutting down, [`Error::Internal`] if
    /// `f` panicked.
    ///
    /// # Cancellation
    /// Dropping the future before `f` starts means `f` never runs; after that, `f` runs to the
    /// end and its result is dropped.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Custody) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.permit().await?;
        let custody = self.custody.clone();
        join(tokio::task::spawn_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            f(&custody)
        }))
        .await
    }

    /// Runs `f` with the [`Custody`] on the calling worker thread once a slot is free, telling
    /// a multi-threaded runtime that the thread blocks (`block_in_place`: its other tasks move
    /// to another worker), on a current-thread runtime the blocking pool as [`AsyncCustody::run`].
    /// For short token calls (a software token's microseconds) this saves the two thread hops
    /// of the blocking pool; the agent uses it.
    ///
    /// # Errors
    /// As [`AsyncCustody::run`].
    pub async fn run_here<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Custody) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let _permit = self.permit().await?;
        if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
            return f(&self.custody);
        }
        tokio::task::block_in_place(|| f(&self.custody))
    }

    /// [`Custody::sign_hmac`] without blocking the runtime.
    ///
    /// # Errors
    /// As [`Custody::sign_hmac`].
    pub async fn sign_hmac(
        &self,
        name: &str,
        alg: HmacAlg,
        data: impl Into<Vec<u8>>,
    ) -> Result<Signature> {
        let name = name.to_owned();
        let data = data.into();
        self.run(move |c| c.sign_hmac(&name, alg, &data)).await
    }

    /// A signer for key `name` with the exchange scheme the key is bound to
    /// ([`Custody::exchange_signer`]); the key lookup runs on the blocking pool.
    ///
    /// # Errors
    /// As [`Custody::exchange_signer`].
    pub async fn exchange_signer(&self, name: &str) -> Result<AsyncExchangeSigner> {
        let name = name.to_owned();
        let signer = self.run(move |c| c.exchange_signer(&name)).await?;
        Ok(self.wrap(signer))
    }

    /// A signer for key `name` with exchange `id`'s scheme ([`Custody::exchange_signer_for`]).
    ///
    /// # Errors
    /// As [`Custody::exchange_signer_for`].
    pub async fn exchange_signer_for(&self, name: &str, id: &str) -> Result<AsyncExchangeSigner> {
        let (name, id) = (name.to_owned(), id.to_owned());
        let signer = self.run(move |c| c.exchange_signer_for(&name, &id)).await?;
        Ok(self.wrap(signer))
    }

    /// Wraps a sync signer (one with its own clock or nonces, or your own [`crate::exchanges::Exchange`])
    /// so that it signs through this handle's admission limit.
    pub fn wrap(&self, signer: ExchangeSigner) -> AsyncExchangeSigner {
        AsyncExchangeSigner {
            signer,
            permits: Arc::clone(&self.permits),
        }
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Misuse("the async signer is closed".into()))
    }
}

/// An [`ExchangeSigner`] for async code. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct AsyncExchangeSigner {
    signer: ExchangeSigner,
    permits: Arc<Semaphore>,
}

impl AsyncExchangeSigner {
    /// The exchange id.
    pub fn exchange_id(&self) -> &str {
        self.signer.exchange_id()
    }

    /// The sync signer inside (for a blocking context).
    pub fn blocking(&self) -> &ExchangeSigner {
        &self.signer
    }

    /// Signs a request; the keyed step runs in the token, on the blocking pool.
    ///
    /// # Errors
    /// As [`ExchangeSigner::sign`]: [`Error::InvalidInput`], the guard's refusal, token failures.
    ///
    /// # Cancellation
    /// See the [module docs](self): safe to drop at any point.
    pub async fn sign(&self, req: &Request) -> Result<SignedRequest<'static>> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Misuse("the async signer is closed".into()))?;
        let signer = self.signer.clone();
        let req = req.clone();
        join(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            signer.sign(&req).map(SignedRequest::into_owned)
        }))
        .await
    }
}

/// Awaits a blocking task; a panic or a runtime shutdown becomes an error, never a panic here.
async fn join<T>(handle: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match handle.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Error::Internal("a signing task panicked".into())),
        Err(_) => Err(Error::Misuse("the tokio runtime is shutting down".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn handles_are_send_sync_clone() {
        assert_send_sync::<AsyncCustody>();
        assert_send_sync::<AsyncExchangeSigner>();
    }
}
