//! Per-key signing policy (issue 5): what a key may sign, checked before any byte reaches the
//! token.
//!
//! A policy names the exchanges a key may sign for, `allow` and `deny` endpoint patterns, the
//! built-in *withdrawal guard* ([`withdrawal_endpoints`]), whether raw signatures (no exchange
//! request behind them) are allowed, rate limits and an allowed-hours window. Policies live in
//! the `[keys]` table of the configuration file:
//!
//! ```toml
//! [keys.binance-main]
//! exchange = "binance"                       # or ["binance", "binance-usdm"]
//! allow = ["POST /api/v3/order", "GET /api/v3/*", "DELETE /api/v3/order"]
//! deny = ["* /api/v3/order/oco"]
//! allow_withdrawals = false                  # the default
//! rate_per_second = 10
//! burst = 20
//! hours = "00:00-24:00"                      # UTC
//!
//! [keys."*"]                                 # keys without their own entry
//! allow_raw = false
//! ```
//!
//! The checks run in this order and the first that fails names the rule in
//! [`crate::Error::PolicyDenied`] or [`crate::Error::RateLimited`]: `no-policy`, `raw-signing`,
//! `exchange`, `path` (a path that cannot be normalised), `deny:<pattern>`,
//! `withdrawal-guard:<exchange>`, `not-allowed` (an `allow` list that matches nothing),
//! `hours`, `rate_per_minute`, `rate_per_second`.
//!
//! # Security
//! - Keys with no entry fall back to `[keys."*"]`; without it they may not sign at all.
//! - The withdrawal guard refuses every withdrawal and transfer endpoint of the request's
//!   exchange, and any path containing `withdraw` or `transfer`, unless the policy sets
//!   `allow_withdrawals = true` or lists that exact endpoint (method and path, no wildcard) in
//!   `allow`.
//! - `allow_raw = true` lets the key MAC arbitrary bytes: the endpoint checks cannot see what
//!   such bytes mean, so a raw-signing key is only limited by rate and hours.

mod endpoint;
mod hours;
mod rate;
mod withdrawal;

use std::collections::HashMap;

use crate::config::{KeyPolicySection, KeysSection};
use crate::error::{Error, Result};
use crate::guard::SignContext;

pub use endpoint::EndpointPattern;
pub use hours::HoursWindow;
pub(crate) use rate::Limiter;
pub use rate::RateSpec;
pub use withdrawal::withdrawal_endpoints;

/// Parameters the crate itself adds to requests of exchanges that do not sign the path; an
/// `allow` entry's `params=` list need not name them.
const CRATE_PARAMS: &[&str] = &["timestamp", "recvWindow", "signature", "apiKey"];

/// The guard every exchange signature passes when no policy applies to its key (no guard rails
/// installed, or guard rails without `[keys]`): the withdrawal guard, secure by default.
pub(crate) fn default_judge(ctx: &SignContext<'_>) -> Result<(), Refusal> {
    match ctx.exchange {
        None => Ok(()),
        Some(exchange) => KeyPolicy::default()
            .judge_request(exchange, ctx)
            .map(|_| ()),
    }
}

/// The name of the fallback policy in `[keys]`.
pub const DEFAULT_POLICY: &str = "*";

/// One key's policy.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct KeyPolicy {
    /// Exchange ids the key may sign for; empty: any.
    pub exchanges: Vec<String>,
    /// Endpoints allowed; empty: any (subject to `deny` and the withdrawal guard).
    pub allow: Vec<EndpointPattern>,
    /// Endpoints refused.
    pub deny: Vec<EndpointPattern>,
    /// Lifts the withdrawal guard.
    pub allow_withdrawals: bool,
    /// Allows raw signatures (no exchange request).
    pub allow_raw: bool,
    /// Rate limits.
    pub rate: RateSpec,
    /// Allowed hours (UTC); `None`: any time.
    pub hours: Option<HoursWindow>,
}

/// Why a check refused, before it becomes an [`Error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Policy(String),
    Rate(&'static str),
}

impl Refusal {
    pub(crate) fn rule(&self) -> &str {
        match self {
            Refusal::Policy(r) => r,
            Refusal::Rate(r) => r,
        }
    }

    /// The error for the request `ctx` describes: a policy refusal names the method and
    /// endpoint refused (never a query string or body), a rate limit the limit.
    pub(crate) fn into_error(self, ctx: &SignContext<'_>) -> Error {
        match self {
            Refusal::Policy(rule) => Error::PolicyDenied {
                key: ctx.key.to_owned(),
                rule,
                request: refused_request(ctx),
            },
            Refusal::Rate(rule) => Error::RateLimited {
                key: ctx.key.to_owned(),
                rule: rule.to_owned(),
            },
        }
    }
}

/// What a refusal refused, in words: `POST /sapi/v1/capital/withdraw/apply on binance`, `a
/// request for binance` (method or endpoint unknown), `a raw signature`.
fn refused_request(ctx: &SignContext<'_>) -> String {
    match (ctx.exchange, ctx.method, ctx.path) {
        (Some(exchange), Some(method), Some(path)) => format!("{method} {path} on {exchange}"),
        (Some(exchange), _, _) => format!("a request for {exchange}"),
        (None, _, _) => "a raw signature".to_owned(),
    }
}

impl KeyPolicy {
    /// The policy one `[keys.NAME]` section describes: patterns, rates and hours checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key and the problem.
    pub fn from_section(name: &str, section: &KeyPolicySection) -> Result<KeyPolicy> {
        let ctx = |e: String| Error::Config(format!("[keys.{name}]: {e}"));
        let patterns = |list: &[String]| -> Result<Vec<EndpointPattern>> {
            list.iter()
                .map(|p| EndpointPattern::parse(p).map_err(|e| ctx(e.to_string())))
                .collect()
        };
        let rate = RateSpec {
            per_second: section.rate_per_second,
            per_minute: section.rate_per_minute,
            burst: section.burst,
        };
        rate.validate().map_err(|e| ctx(e.to_string()))?;
        Ok(KeyPolicy {
            exchanges: section.exchanges.clone(),
            allow: patterns(&section.allow)?,
            deny: patterns(&section.deny)?,
            allow_withdrawals: section.allow_withdrawals,
            allow_raw: section.allow_raw,
            rate,
            hours: section
                .hours
                .as_deref()
                .map(HoursWindow::parse)
                .transpose()
                .map_err(|e| ctx(e.to_string()))?,
        })
    }

    /// The static checks (everything but the rate limit) for a signature at UTC time `now`.
    /// `Ok` carries the rule that allowed it.
    pub(crate) fn judge(&self, ctx: &SignContext<'_>, now: time::Time) -> Result<String, Refusal> {
        let deny = |rule: String| Err(Refusal::Policy(rule));
        let allowed_by = match ctx.exchange {
            None if !self.allow_raw => return deny("raw-signing".into()),
            None => "allow_raw".to_owned(),
            Some(exchange) => self.judge_request(exchange, ctx)?,
        };
        if let Some(hours) = &self.hours {
            if !hours.contains(now) {
                return deny("hours".into());
            }
        }
        Ok(allowed_by)
    }

    /// Judges an exchange request by what its signature will be good for ([`crate::exchanges::Reach`]): the
    /// endpoint the exchange executes, and where the exchange does not sign the path, every
    /// guarded endpoint whose required parameters the request carries.
    pub(crate) fn judge_request(
        &self,
        exchange: &str,
        ctx: &SignContext<'_>,
    ) -> Result<String, Refusal> {
        let deny = |rule: String| Err(Refusal::Policy(rule));
        if !self.exchanges.is_empty() && !self.exchanges.iter().any(|e| e == exchange) {
            return deny("exchange".into());
        }
        let Some(reach) = ctx.reach else {
            // Only the crate's exchange signers attach a reach; without one nothing says what
            // the signature is good for.
            return deny("no-request".into());
        };
        let (path, allowed) =
            self.judge_endpoint(exchange, reach.method(), reach.endpoint(), |_| {
                format!("withdrawal-guard:{exchange}")
            })?;
        if !self.allow_withdrawals && !reach.path_bound() {
            // The path is not signed: the signature is also good at every guarded endpoint
            // whose required parameters it carries. Only an exact allow entry naming that
            // endpoint lifts the guard for it.
            let exact = allowed.filter(|p| p.is_exact());
            if let Some((_, g)) = withdrawal::reached(exchange, reach)
                .find(|(pattern, _)| !exact.is_some_and(|_| pattern.matches("", &path)))
            {
                return deny(format!("withdrawal-guard:{exchange}:{}", g.path));
            }
        }
        // Other endpoints the same signature is good at (Deribit's `public/auth`): each is
        // judged as the endpoint is, and must be allowed where `allow` is set.
        for (also_method, also_path) in reach.also() {
            let (also, allowed_also) =
                self.judge_endpoint(exchange, also_method, also_path, |p| {
                    format!("withdrawal-guard:{exchange}:{p}")
                })?;
            if allowed_also.is_none() && !self.allow.is_empty() {
                return deny(format!("not-allowed:{also}"));
            }
        }
        match allowed {
            Some(p) => {
                if let (false, Some(names)) = (reach.path_bound(), p.params()) {
                    if let Some(extra) = reach
                        .params()
                        .iter()
                        .find(|n| !names.contains(n) && !CRATE_PARAMS.contains(&n.as_str()))
                    {
                        return deny(format!("params:{extra}"));
                    }
                }
                Ok(format!("allow:{}", p.as_str()))
            }
            None if self.allow.is_empty() => Ok("policy".into()),
            None => deny("not-allowed".into()),
        }
    }
}

impl KeyPolicy {
    /// Judges one endpoint a signature is good at: a path alone (a `?` or `#` is refused, not
    /// cut off) that normalises, no `deny` match, and the withdrawal guard by path (lifted only
    /// by `allow_withdrawals` or an exact `allow` entry; `guard_rule` names that refusal from the
    /// normalised path). Returns the normalised path and the `allow` entry that matches it.
    fn judge_endpoint(
        &self,
        exchange: &str,
        method: &str,
        endpoint: &str,
        guard_rule: impl Fn(&str) -> String,
    ) -> Result<(String, Option<&EndpointPattern>), Refusal> {
        let deny = |rule: String| Err(Refusal::Policy(rule));
        if endpoint.contains(['?', '#']) {
            return deny("path".into());
        }
        let Some(path) = endpoint::normalize_path(endpoint) else {
            return deny("path".into());
        };
        if let Some(p) = self.deny.iter().find(|p| p.matches(method, &path)) {
            return deny(format!("deny:{}", p.as_str()));
        }
        let allowed = self.allow.iter().find(|p| p.matches(method, &path));
        if !self.allow_withdrawals
            && withdrawal::is_withdrawal(exchange, &path)
            && !allowed.is_some_and(EndpointPattern::is_exact)
        {
            return deny(guard_rule(&path));
        }
        Ok((path, allowed))
    }
}

/// Every key's policy, from the `[keys]` table.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    keys: HashMap<String, KeyPolicy>,
}

impl Policies {
    /// Every key's policy from a `[keys]` section: one entry per key name, `"*"` for the
    /// fallback.
    ///
    /// # Errors
    /// [`Error::Config`] for an entry that does not parse.
    pub fn from_section(section: &KeysSection) -> Result<Policies> {
        let mut keys = HashMap::new();
        for (name, entry) in section {
            keys.insert(name.clone(), KeyPolicy::from_section(name, entry)?);
        }
        Ok(Policies { keys })
    }

    /// Adds or replaces the policy of `key` (`"*"` for the fallback).
    pub fn insert(&mut self, key: impl Into<String>, policy: KeyPolicy) {
        self.keys.insert(key.into(), policy);
    }

    /// The policy that applies to `key`: its own, else the fallback, else none (refused).
    pub fn for_key(&self, key: &str) -> Option<&KeyPolicy> {
        self.keys.get(key).or_else(|| self.keys.get(DEFAULT_POLICY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::Reach;
    use time::macros::time;

    fn ctx<'a>(exchange: Option<&'a str>, method: &'a str, path: &'a str) -> SignContext<'a> {
        let reach: &'static Reach = Box::leak(Box::new(Reach::bound(method, path)));
        with_reach(exchange, reach)
    }

    fn with_reach<'a>(exchange: Option<&'a str>, reach: &'a Reach) -> SignContext<'a> {
        SignContext {
            key: "k",
            version: 1,
            exchange,
            method: exchange.map(|_| reach.method()),
            path: exchange.map(|_| reach.endpoint()),
            client: None,
            reach: exchange.map(|_| reach),
            message: b"",
        }
    }

    fn unbound(names: &[&str]) -> Reach {
        Reach::unbound(
            "POST",
            "/api/v3/order",
            names.iter().map(|n| (*n).to_owned()),
        )
    }

    #[test]
    fn unbound_paths_are_judged_by_their_parameters() {
        let noon = time!(12:00);
        let open = KeyPolicy::default();
        let order = unbound(&["symbol", "side", "type", "quantity", "price", "timestamp"]);
        assert!(open
            .judge(&with_reach(Some("binance"), &order), noon)
            .is_ok());
        // An "order" carrying a withdrawal's parameters is a withdrawal's signature.
        let smuggled = unbound(&["symbol", "coin", "address", "amount", "timestamp"]);
        assert_eq!(
            open.judge(&with_reach(Some("binance"), &smuggled), noon),
            Err(Refusal::Policy(
                "withdrawal-guard:binance:/sapi/*/capital/withdraw/apply".into()
            ))
        );
        // Where the holder can move the query/body boundary, `xaddress` is also `address`.
        let cut = unbound(&["coin", "xaddress", "amount"]);
        assert!(open.judge(&with_reach(Some("binance"), &cut), noon).is_ok());
        let cut = cut.with_split_names();
        assert!(open
            .judge(&with_reach(Some("binance"), &cut), noon)
            .is_err());
        // A path-bound exchange is judged by its path alone.
        let okx = Reach::bound("POST", "/api/v5/trade/order")
            .with_params(["coin", "address", "amount"].map(str::to_owned));
        assert!(open.judge(&with_reach(Some("okx"), &okx), noon).is_ok());
        // `params=` bounds what an allowed request may carry.
        let p = policies(
            "[keys.k]\nallow = ['POST /api/v3/order params=symbol,side,type,quantity,price']\n",
        );
        let k = p.for_key("k").unwrap();
        assert!(k.judge(&with_reach(Some("binance"), &order), noon).is_ok());
        let extra = unbound(&["symbol", "side", "type", "network"]);
        assert_eq!(
            k.judge(&with_reach(Some("binance"), &extra), noon),
            Err(Refusal::Policy("params:network".into()))
        );
        // A query or fragment in a validated endpoint is refused, not cut off.
        assert_eq!(
            open.judge(
                &ctx(
                    Some("okx"),
                    "POST",
                    "/api/v5/trade/order#/api/v5/asset/withdrawal"
                ),
                noon
            ),
            Err(Refusal::Policy("path".into()))
        );
        // Without a reach (a context the caller made up) nothing is signed as a request.
        let made_up = SignContext {
            reach: None,
            ..ctx(Some("okx"), "POST", "/api/v5/trade/order")
        };
        assert_eq!(
            open.judge(&made_up, noon),
            Err(Refusal::Policy("no-request".into()))
        );
    }

    fn policies(text: &str) -> Policies {
        let sections = crate::config::Sections::from_toml_str(text).unwrap();
        Policies::from_section(&sections.keys.unwrap()).unwrap()
    }

    #[test]
    fn rules_apply_in_order_and_name_themselves() {
        let p = policies(
            r#"
            [keys.k]
            exchange = "binance"
            allow = ["POST /api/v3/order", "GET /api/v3/*", "POST /sapi/v1/capital/withdraw/apply"]
            deny = ["GET /api/v3/secret"]
            hours = "08:00-20:00"
            "#,
        );
        let k = p.for_key("k").unwrap();
        let noon = time!(12:00);
        let judge = |e, m, path| k.judge(&ctx(e, m, path), noon);
        assert_eq!(
            judge(Some("binance"), "POST", "/api/v3/order"),
            Ok("allow:POST /api/v3/order".into())
        );
        assert_eq!(
            judge(None, "", ""),
            Err(Refusal::Policy("raw-signing".into()))
        );
        assert_eq!(
            judge(Some("kraken"), "POST", "/api/v3/order"),
            Err(Refusal::Policy("exchange".into()))
        );
        assert_eq!(
            judge(Some("binance"), "GET", "/api/v3/secret"),
            Err(Refusal::Policy("deny:GET /api/v3/secret".into()))
        );
        assert_eq!(
            judge(Some("binance"), "GET", "/api/../sapi"),
            Err(Refusal::Policy("path".into()))
        );
        assert_eq!(
            judge(Some("binance"), "DELETE", "/api/v3/order"),
            Err(Refusal::Policy("not-allowed".into()))
        );
        // An exact allow entry lifts the guard for that endpoint only.
        assert!(judge(Some("binance"), "POST", "/sapi/v1/capital/withdraw/apply").is_ok());
        assert_eq!(
            judge(Some("binance"), "POST", "/sapi/v1/asset/transfer"),
            Err(Refusal::Policy("withdrawal-guard:binance".into()))
        );
        assert_eq!(
            k.judge(&ctx(Some("binance"), "POST", "/api/v3/order"), time!(21:00)),
            Err(Refusal::Policy("hours".into()))
        );
        assert!(p.for_key("other").is_none(), "no fallback: no policy");
    }

    #[test]
    fn glob_allow_does_not_lift_the_withdrawal_guard() {
        let p = policies("[keys.\"*\"]\nallow = [\"POST /**\"]\nallow_raw = true\n");
        let k = p.for_key("anything").unwrap();
        let noon = time!(12:00);
        assert!(k.judge(&ctx(None, "", ""), noon).is_ok());
        assert_eq!(
            k.judge(&ctx(Some("okx"), "POST", "/api/v5/asset/withdrawal"), noon),
            Err(Refusal::Policy("withdrawal-guard:okx".into()))
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_key_name() {
        // An unknown key: refused when the file is read, naming the key, its table and line.
        let err = crate::config::Sections::from_toml_str("[keys.k]\nalow = []\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("[keys.k]") && err.contains("alow"), "{err}");
        assert!(err.contains("line 2, column 1"), "{err}");
        // A rate the policy cannot use: refused when the section becomes a policy.
        let sections = crate::config::Sections::from_toml_str("[keys.k]\nburst = 5\n").unwrap();
        let err = Policies::from_section(&sections.keys.unwrap()).unwrap_err();
        assert!(err.to_string().contains("[keys.k]"), "{err}");
    }
}
