//! What a signature is good for: the canonical request an exchange will execute, and the
//! inputs the crate owns.
//!
//! A signature is a capability: the exchange's verifier decides what it authorises, from the
//! bytes that were signed, not from the fields a caller names. So before anything is signed,
//! each exchange checks the structured [`Request`](super::Request) against its grammar
//! ([`super::Exchange::reach`]) and answers with a [`Reach`]: the method and endpoint the
//! exchange will execute and the parameter names it will read. A request that does not fit the
//! grammar (a path that could be cut short and continued in the body, a query that is not plain
//! `name=value&...`, a JSON body with a duplicate member, a body that names another endpoint than
//! the path, a time far from the crate's clock, an API key other than the key's own) is refused
//! before the token is asked. The signer then signs the request exactly as validated: a
//! validator refuses what it would have to rewrite, so the validated request *is* the canonical
//! form. Policy and audit judge the [`Reach`].
//!
//! The crate owns time: a timestamp, nonce, expiry or receive window that the caller gives is
//! accepted only when it is well formed and within [`Limits`] of the crate's clock (by default
//! ±5 s, and at most 60 s of validity); otherwise the crate's clock and nonce source fill them in.

mod binding;
pub mod grammar;
mod inputs;

mod strict_json;

use std::collections::BTreeSet;

pub use binding::{Binding, EndpointFrom};
pub use inputs::Inputs;
// `Limits` lives in the vocabulary layer (`alg`), so that `config` reads it without importing
// the exchanges; its path here stays.
pub use crate::alg::Limits;

/// What a signature will be good for at the exchange: the method and endpoint it executes and
/// the parameter names it reads. Built by [`super::Exchange::reach`] from a validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    method: String,
    endpoint: String,
    params: Vec<String>,
    path_bound: bool,
    split_names: bool,
    also: Vec<(String, String)>,
}

impl Reach {
    /// A request whose signature binds the method and the endpoint.
    pub fn bound(method: impl Into<String>, endpoint: impl Into<String>) -> Reach {
        Reach {
            method: method.into(),
            endpoint: endpoint.into(),
            params: Vec::new(),
            path_bound: true,
            split_names: false,
            also: Vec::new(),
        }
    }

    /// A request whose signature does not bind the endpoint: `named` is the endpoint the caller
    /// names, `params` every parameter name the exchange will read from the signed bytes.
    pub fn unbound(
        method: impl Into<String>,
        named: impl Into<String>,
        params: impl IntoIterator<Item = String>,
    ) -> Reach {
        Reach {
            method: method.into(),
            endpoint: named.into(),
            params: Vec::new(),
            path_bound: false,
            split_names: false,
            also: Vec::new(),
        }
        .with_params(params)
    }

    /// Sets the parameter names (sorted, without duplicates).
    pub fn with_params(mut self, params: impl IntoIterator<Item = String>) -> Reach {
        let set: BTreeSet<String> = params.into_iter().collect();
        self.params = set.into_iter().collect();
        self
    }

    /// Marks that whoever holds the signature can move the boundary between the signed query
    /// and body (Binance signs `query‖body` without a separator), so a parameter name can be cut
    /// at its front: `xaddress=..` is also read as `address=..`.
    pub fn with_split_names(mut self) -> Reach {
        self.split_names = true;
        self
    }

    /// Another endpoint the exchange accepts the same signature at, whatever the request
    /// (Deribit: every signature also verifies as a `public/auth` client signature, which
    /// opens a session with the key's full scope). The guard judges it like the endpoint.
    pub fn with_also(mut self, method: impl Into<String>, endpoint: impl Into<String>) -> Reach {
        self.also.push((method.into(), endpoint.into()));
        self
    }

    /// The other endpoints the signature is good at ([`Reach::with_also`]).
    pub fn also(&self) -> &[(String, String)] {
        &self.also
    }

    /// The method the exchange executes (for unbound schemes, the one the caller named).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The endpoint the exchange executes (for unbound schemes, the one the caller named).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The parameter names the exchange reads, sorted.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// Whether the signature binds the endpoint.
    pub fn path_bound(&self) -> bool {
        self.path_bound
    }

    /// Whether a parameter name can be cut at its front by the holder of the signature.
    pub fn split_names(&self) -> bool {
        self.split_names
    }

    /// Whether the exchange can read parameter `name` from the signed bytes. Letter case is
    /// ignored: an exchange whose parameter names are case-insensitive reads `COIN` as `coin`.
    pub fn carries(&self, name: &str) -> bool {
        self.params.iter().any(|p| {
            p.eq_ignore_ascii_case(name)
                || (self.split_names
                    && p.len() >= name.len()
                    && p.is_char_boundary(p.len() - name.len())
                    && p[p.len() - name.len()..].eq_ignore_ascii_case(name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_reach_suffixes() {
        let r = Reach::unbound("POST", "/api/v3/order", ["xaddress".to_owned()]);
        assert!(!r.carries("address"));
        assert!(r.with_split_names().carries("ADDRESS"));
        let shouted = Reach::unbound("POST", "/api/v3/order", ["COIN".to_owned()]);
        assert!(shouted.carries("coin"));
    }
}
