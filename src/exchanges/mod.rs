//! Exchange request signers (issue 3).
//!
//! Each exchange is a small type in its own file that implements [`Exchange`]: it turns an
//! unsigned [`Request`] (method, path, query, body and the exchange's time/nonce inputs) into a
//! [`SignedRequest`] (headers in a stable order, final query, final body, the signature string).
//! The keyed step goes through a [`Mac`] (a token key, [`crate::KeyRef`]); unkeyed steps (Kraken's
//! SHA-256 of nonce||postdata, Gate's SHA-512 of the body) run on the host. Exchange files build
//! bytes and headers only: they know nothing about PKCS#11 or sessions.
//!
//! ```no_run
//! use hsm_custody::exchanges::Request;
//! use hsm_custody::{Config, Custody};
//!
//! # fn main() -> Result<(), hsm_custody::Error> {
//! let custody = Custody::connect(Config::from_env()?)?;
//! // The key was imported with `.exchange("binance")`; the signer checks that binding.
//! let binance = custody.exchange_signer("binance-main")?;
//! let order = Request::post("/api/v3/order")
//!     .query("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1")
//!     .api_key("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A");
//! // The signed request borrows the method, path and API key from `order` (no copies on the
//! // hot path); `SignedRequest::into_owned` keeps it longer.
//! let signed = binance.sign(&order)?;
//! println!("POST {}  signature={}", signed.path_and_query(), signed.signature);
//! # Ok(()) }
//! ```
//!
//! ## Key binding
//! Every key records the exchange it is for ([`crate::KeySpec::exchange`]). A signer refuses a key
//! bound to another exchange with [`Error::WrongExchange`], and a key bound to no exchange with
//! [`Error::InvalidInput`] (fail closed). One Binance API key serves spot, USD-M and COIN-M
//! futures, so `binance`, `binance-usdm` and `binance-coinm` (and the WebSocket-API variant
//! `binance-ws`) accept each other's keys; MEXC issues separate permissions for spot and futures, so `mexc` and
//! `mexc-futures` stay distinct.
//!
//! ## Your own exchange
//! Implement [`Exchange`] outside the crate and hand it to [`ExchangeSigner::new`] (see
//! `examples/custom_exchange.rs`).

mod binance;
mod bitfinex;
mod bitget;
mod bitmex;
mod bitstamp;
mod bybit;
mod checks;
mod clock;
mod coinbase;
mod coinbase_advanced;
mod cryptocom;
mod deribit;
mod encode;
mod gate;
mod gemini;
mod htx;
mod kraken;
mod kucoin;
mod mexc;
mod okx;
mod reach;
mod registry;
mod request;
#[cfg(test)]
mod testing;

use std::fmt;
use std::sync::Arc;

pub use binance::{Binance, BinanceFixLogon, BinanceWs};
pub use bitfinex::Bitfinex;
pub use bitget::Bitget;
pub use bitmex::Bitmex;
pub use bitstamp::Bitstamp;
pub use bybit::Bybit;
pub use clock::{Clock, Context, FixedClock, FixedNonce, MonotonicNonce, NonceSource, SystemClock};
pub use coinbase::CoinbaseExchange;
pub use coinbase_advanced::CoinbaseAdvanced;
pub use cryptocom::CryptoCom;
pub use deribit::Deribit;
pub use encode::{percent_encode, urlencode_pairs};
pub use gate::Gate;
pub use gemini::Gemini;
pub use htx::Htx;
pub use kraken::Kraken;
pub use kucoin::KuCoin;
pub use mexc::{Mexc, MexcFutures};
pub use okx::Okx;
pub use reach::{grammar, Binding, EndpointFrom, Inputs, Limits, Reach};
pub use registry::{info, ExchangeInfo, Guarded, ALL};
pub use request::{Request, SignedRequest};
#[cfg(test)]
pub(crate) use testing::{
    expect_refused, reach_at, reach_with, refused_field, Recorded, SoftKey, TEST_HOST,
};

use crate::error::{Error, Result};
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// What an exchange needs of an imported key.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Profile {
    /// How the exchange shows its secrets.
    pub encoding: SecretEncoding,
    /// The HMAC algorithms its scheme uses.
    pub algorithms: &'static [HmacAlg],
}

/// Every known exchange id, in the order of [`ALL`].
pub fn all_ids() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|e| e.id)
}

/// The key profile for an exchange id, or `None` for an unknown id.
pub fn profile(id: &str) -> Option<Profile> {
    info(id).map(|e| Profile {
        encoding: e.encoding,
        algorithms: e.algorithms,
    })
}

/// The built-in signer for an exchange id, or `None` for an unknown id.
pub fn by_id(id: &str) -> Option<Arc<dyn Exchange>> {
    info(id).map(ExchangeInfo::signer)
}

/// One exchange's signing scheme: builds the bytes to MAC and the headers/parameters to attach.
///
/// Implement it outside the crate to add an exchange; compute every keyed value with `mac` so
/// that the secret stays in the token.
pub trait Exchange: Send + Sync {
    /// The exchange id keys are bound to (`binance`, `kraken` ...).
    fn id(&self) -> &str;

    /// Whether a key bound to exchange `bound` may sign for this exchange. By default only keys
    /// bound to [`Exchange::id`].
    fn accepts_key_for(&self, bound: &str) -> bool {
        bound == self.id()
    }

    /// Validates `req` against the exchange's grammar and the inputs the crate owns, and says
    /// what its signature will be good for: the method and endpoint the exchange will execute
    /// and the parameter names it will read ([`Reach`]). Runs before [`Exchange::sign`], and
    /// guard rails judge its answer. A validator refuses what it would have to rewrite, so that
    /// `sign` signs the request exactly as validated.
    ///
    /// The default, for your own exchanges: an upper-case method and a path that normalises
    /// without `.`/`..` segments or escapes, bound to the signature. Override it when your
    /// exchange does not sign the path.
    ///
    /// # Errors
    /// [`Error::RequestRefused`] naming the field.
    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let method = req.method.as_deref().unwrap_or("GET");
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(inputs.refuse("method", "must be upper-case letters"));
        }
        let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), "/")?;
        Ok(Reach::bound(method, path))
    }

    /// Signs `req`. `ctx` supplies the time and nonces that `req` does not fix.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a request the scheme cannot sign, or the MAC's error.
    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>>;
}

/// Checks that `mac`'s key is bound to an exchange that `exchange` accepts.
///
/// # Errors
/// [`Error::WrongExchange`] for a key bound to another exchange, [`Error::InvalidInput`] for a
/// key bound to no exchange.
pub fn check_binding(exchange: &dyn Exchange, mac: &dyn Mac) -> Result<()> {
    match mac.exchange() {
        Some(bound) if exchange.accepts_key_for(bound) => Ok(()),
        Some(bound) => Err(Error::WrongExchange {
            key: mac.key_name().to_owned(),
            bound: bound.to_owned(),
            requested: exchange.id().to_owned(),
        }),
        None => Err(Error::invalid(format!(
            "key `{}` is bound to no exchange; import it with an exchange id to sign `{}` requests",
            mac.key_name(),
            exchange.id()
        ))),
    }
}

/// Signs `req` for the exchange `id` with any [`Mac`] (a token key, or your own), using the system
/// clock and the process-wide nonce source. The key binding is checked first.
///
/// # Errors
/// [`Error::InvalidInput`] for an unknown id or a request the scheme cannot sign,
/// [`Error::WrongExchange`], or the MAC's error.
pub fn sign_request<'r>(id: &str, mac: &dyn Mac, req: &'r Request) -> Result<SignedRequest<'r>> {
    let exchange = by_id(id).ok_or_else(|| unknown_exchange(id))?;
    check_binding(exchange.as_ref(), mac)?;
    let ctx = Context::new(&SystemClock, MonotonicNonce::global());
    sign_checked(exchange.as_ref(), mac, req, &ctx, &Limits::default(), None)
}

/// Validates `req` ([`Exchange::reach`]), then signs it with the reach attached to every keyed
/// step, so that guard rails judge what the signature will be good for.
fn sign_checked<'r>(
    exchange: &dyn Exchange,
    mac: &dyn Mac,
    req: &'r Request,
    ctx: &Context<'_>,
    limits: &Limits,
    client: Option<&str>,
) -> Result<SignedRequest<'r>> {
    let inputs = Inputs::new(
        exchange.id(),
        ctx.now_ms(),
        limits,
        mac.api_key(),
        mac.passphrase(),
    );
    let reach = exchange.reach(req, &inputs)?;
    let ctx = ctx.with_ttl_ms(limits.ttl_ms);
    let mut keyed = InRequest::new(mac, exchange.id(), &reach);
    keyed.client = client;
    exchange.sign(req, &keyed, &ctx)
}

/// Hands the request's exchange and [`Reach`] to the key with every keyed step, so that guard
/// rails ([`crate::Guard`]) judge what the signature will be good for.
pub(crate) struct InRequest<'a> {
    inner: &'a dyn Mac,
    exchange: &'a str,
    reach: &'a Reach,
    client: Option<&'a str>,
}

impl<'a> InRequest<'a> {
    pub(crate) fn new(inner: &'a dyn Mac, exchange: &'a str, reach: &'a Reach) -> Self {
        InRequest {
            inner,
            exchange,
            reach,
            client: None,
        }
    }

    fn context(&self) -> crate::RequestContext<'a> {
        let ctx = crate::RequestContext::for_reach(self.exchange, self.reach);
        match self.client {
            Some(client) => ctx.with_client(client),
            None => ctx,
        }
    }
}

impl Mac for InRequest<'_> {
    fn key_name(&self) -> &str {
        self.inner.key_name()
    }

    fn exchange(&self) -> Option<&str> {
        self.inner.exchange()
    }

    fn mac(&self, alg: crate::HmacAlg, msg: &[u8]) -> Result<crate::Signature> {
        self.inner.mac_for(alg, msg, &self.context())
    }

    fn kind(&self) -> crate::KeyKind {
        self.inner.kind()
    }

    fn api_key(&self) -> Option<&str> {
        self.inner.api_key()
    }

    fn passphrase(&self) -> Option<&str> {
        self.inner.passphrase()
    }

    /// The request being signed is this wrapper's own: its context replaces `request`.
    fn sign_for(
        &self,
        msg: &[u8],
        request: &crate::RequestContext<'_>,
    ) -> Result<crate::Signature> {
        let _ = request;
        self.inner.sign_for(msg, &self.context())
    }
}

pub(crate) fn unknown_exchange(id: &str) -> Error {
    Error::invalid(format!(
        "unknown exchange `{id}` (known: {})",
        all_ids().collect::<Vec<_>>().join(", ")
    ))
}

/// A key bound to an exchange scheme, with a clock and a nonce source: signs requests.
///
/// Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ExchangeSigner {
    exchange: Arc<dyn Exchange>,
    mac: Arc<dyn Mac + Send + Sync>,
    clock: Arc<dyn Clock>,
    nonces: Arc<dyn NonceSource>,
    limits: Arc<Limits>,
}

impl fmt::Debug for ExchangeSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeSigner")
            .field("exchange", &self.exchange.id())
            .field("key", &self.mac.key_name())
            .finish_non_exhaustive()
    }
}

impl ExchangeSigner {
    /// A signer for `exchange` (built-in or your own) with key `mac`; system clock, process-wide
    /// strictly increasing nonces.
    ///
    /// # Errors
    /// [`Error::WrongExchange`] or [`Error::InvalidInput`] when the key's binding does not fit.
    pub fn new(
        exchange: Arc<dyn Exchange>,
        mac: impl Mac + Send + Sync + 'static,
    ) -> Result<ExchangeSigner> {
        check_binding(exchange.as_ref(), &mac)?;
        Ok(ExchangeSigner {
            exchange,
            mac: Arc::new(mac),
            clock: Arc::new(SystemClock),
            nonces: Arc::new(GlobalNonce),
            limits: Arc::new(Limits::default()),
        })
    }

    /// Replaces the limits on caller-given time inputs and the accepted test hosts.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Shares `limits` with other signers (a `Custody` gives its own to each signer it makes).
    pub(crate) fn with_shared_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the clock (for example [`FixedClock`] for deterministic output).
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the nonce source (for example [`FixedNonce`] in tests).
    pub fn with_nonces(mut self, nonces: impl NonceSource + 'static) -> Self {
        self.nonces = Arc::new(nonces);
        self
    }

    /// The exchange id.
    pub fn exchange_id(&self) -> &str {
        self.exchange.id()
    }

    /// Validates the request ([`Exchange::reach`]) and signs it; the keyed step runs in the
    /// token, and guard rails judge the reach.
    ///
    /// # Errors
    /// [`Error::RequestRefused`] for a request that does not fit the exchange's grammar or the
    /// inputs the crate owns, [`Error::PolicyDenied`] from the guard (the withdrawal guard
    /// applies with no configuration), or the token's error.
    pub fn sign<'r>(&self, req: &'r Request) -> Result<SignedRequest<'r>> {
        self.sign_for_client(req, None)
    }

    /// As [`ExchangeSigner::sign`], naming who asked: guard rails see `client`
    /// ([`crate::SignContext::client`]) and the audit log records it.
    ///
    /// # Errors
    /// As [`ExchangeSigner::sign`].
    pub fn sign_as<'r>(&self, req: &'r Request, client: &str) -> Result<SignedRequest<'r>> {
        self.sign_for_client(req, Some(client))
    }

    fn sign_for_client<'r>(
        &self,
        req: &'r Request,
        client: Option<&str>,
    ) -> Result<SignedRequest<'r>> {
        let ctx = Context::new(self.clock.as_ref(), self.nonces.as_ref());
        sign_checked(
            self.exchange.as_ref(),
            self.mac.as_ref(),
            req,
            &ctx,
            &self.limits,
            client,
        )
    }
}

/// The process-wide [`MonotonicNonce`], as an owned source.
struct GlobalNonce;

impl NonceSource for GlobalNonce {
    fn next_nonce(&self, now_ms: u64) -> u64 {
        MonotonicNonce::global().next_nonce(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_a_profile_and_a_signer() {
        for id in all_ids() {
            assert!(profile(id).is_some(), "{id}");
            assert_eq!(by_id(id).map(|e| e.id().to_owned()).as_deref(), Some(id));
        }
        assert!(profile("nope").is_none());
        assert!(by_id("nope").is_none());
    }
}
