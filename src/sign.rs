//! What exchange signers sign through: the [`Mac`] trait (a token key, [`crate::KeyRef`], or
//! whatever a user plugs in) and the [`RequestContext`] they attach to each keyed step so that
//! guard rails see the request.
//!
//! This layer sits between the exchanges' request vocabulary (`exchanges::reach`: what a
//! signature is good for) and the exchange signers, which use the trait; the custody layer
//! above implements it. So the signers never import the custody layer that runs them.

use crate::alg::KeyKind;
// The vocabulary the signers use with `Mac`, re-exported so that one `use` serves them.
pub use crate::alg::{HmacAlg, Signature};
use crate::error::{Error, Result};
use crate::exchanges::Reach;

/// Request context that exchange signers attach to their keyed steps.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct RequestContext<'a> {
    /// Exchange id.
    pub exchange: Option<&'a str>,
    /// HTTP method.
    pub method: Option<&'a str>,
    /// Request path.
    pub path: Option<&'a str>,
    /// Who asked (for the audit log), when the caller knows.
    pub client: Option<&'a str>,
    /// What the signature will be good for; only the crate's exchange signers set it. A context
    /// without it is judged as a raw signature.
    pub(crate) reach: Option<&'a Reach>,
}

impl<'a> RequestContext<'a> {
    /// Context for a request to `exchange`.
    pub fn new(exchange: &'a str, method: &'a str, path: &'a str) -> Self {
        RequestContext {
            exchange: Some(exchange),
            method: Some(method),
            path: Some(path),
            client: None,
            reach: None,
        }
    }

    /// The context of a validated exchange request.
    pub(crate) fn for_reach(exchange: &'a str, reach: &'a Reach) -> Self {
        RequestContext {
            exchange: Some(exchange),
            method: Some(reach.method()),
            path: Some(reach.endpoint()),
            client: None,
            reach: Some(reach),
        }
    }

    /// A raw signature's context (no exchange request behind it) with a method and a label for
    /// the audit log.
    pub fn raw(method: &'a str, label: &'a str) -> Self {
        RequestContext {
            exchange: None,
            method: Some(method),
            path: Some(label),
            client: None,
            reach: None,
        }
    }

    /// The same context, naming who asked (recorded in the audit log).
    pub fn with_client(mut self, client: &'a str) -> Self {
        self.client = Some(client);
        self
    }
}

/// Anything that can compute a keyed MAC by name of algorithm: a token key ([`crate::KeyRef`])
/// or, outside this crate, whatever a user plugs in.
pub trait Mac {
    /// The key's name (for error messages and audit).
    fn key_name(&self) -> &str;

    /// The exchange the key is bound to, if any.
    fn exchange(&self) -> Option<&str>;

    /// Computes the MAC of `msg`.
    ///
    /// # Errors
    /// Whatever the backing token reports.
    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<Signature>;

    /// The exchange API key recorded with the key, if any: exchange signers send it, and refuse
    /// a request that names another one.
    fn api_key(&self) -> Option<&str> {
        None
    }

    /// The exchange API passphrase recorded with the key, if any (OKX, Coinbase, Bitget,
    /// KuCoin): signers send it, and refuse a request that names another one.
    fn passphrase(&self) -> Option<&str> {
        None
    }

    /// Computes the MAC of `msg` for a request, so that guard rails see the exchange, method
    /// and path. Exchange signers call this; the default ignores the context.
    ///
    /// # Errors
    /// Whatever the backing token, or a guard, reports.
    fn mac_for(&self, alg: HmacAlg, msg: &[u8], request: &RequestContext<'_>) -> Result<Signature> {
        let _ = request;
        self.mac(alg, msg)
    }

    /// The kind of key behind this `Mac`: exchange signers pick the scheme variant by it
    /// (Binance HMAC hex, or Ed25519/RSA base64; Coinbase Advanced ES256 or EdDSA). The default
    /// is [`KeyKind::Hmac`], so that implementations that only MAC keep working unchanged.
    fn kind(&self) -> KeyKind {
        KeyKind::Hmac
    }

    /// Signs `msg` with an asymmetric key for a request, so that guard rails see the exchange,
    /// method and path: pure Ed25519; ECDSA P-256 over SHA-256 as raw `r || s` (64 bytes);
    /// RSA PKCS#1 v1.5 over SHA-256. The default refuses: an HMAC-only `Mac` cannot sign.
    ///
    /// # Errors
    /// [`Error::WrongKeyKind`] by default; otherwise whatever the backing token, or a guard,
    /// reports.
    fn sign_for(&self, msg: &[u8], request: &RequestContext<'_>) -> Result<Signature> {
        let _ = (msg, request);
        Err(Error::WrongKeyKind {
            name: self.key_name().to_owned(),
            kind: self.kind().name().into(),
            wanted: "an asymmetric key (ed25519, p256 or rsa2048)".into(),
        })
    }

    /// [`Mac::sign_for`] without request context: what exchange signers call (the wrapper that
    /// [`crate::exchanges`] puts around every key adds the request's context).
    ///
    /// # Errors
    /// As [`Mac::sign_for`].
    fn sign_asym(&self, msg: &[u8]) -> Result<Signature> {
        self.sign_for(msg, &RequestContext::default())
    }
}
