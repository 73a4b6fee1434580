//! The adversarial property driver: structured requests from a strategy, signed through the
//! product path (a real token, guard rails with a policy), and every signature the guard lets
//! out checked against the exchange's server model.

use std::sync::atomic::{AtomicU32, Ordering};

use hsm_custody::exchanges::{self, ExchangeSigner, Limits, Request};
use hsm_custody::{Custody, Error};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};

use super::{path_matches, Executed, Http, ServerModel};
use crate::common::TestToken;
use crate::guardrails::guarded;

/// The policy a property runs under, as the test (not the crate) reads it.
#[derive(Clone, Debug)]
pub enum Oracle {
    /// Only these `(METHOD, path)` endpoints may be reached (path-bound schemes); for schemes
    /// that do not bind the path, no guarded endpoint may be reached.
    OrderOnly(Vec<(&'static str, &'static str)>),
    /// Anything but the guarded endpoints and these `(METHOD or "*", path pattern)`.
    DenyOnly(Vec<(&'static str, &'static str)>),
}

impl Oracle {
    /// The `[keys.NAME]` policy text for this oracle.
    pub fn policy(&self, key: &str, exchange: &str) -> String {
        let list = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(m, p)| format!("'{m} {p}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Oracle::OrderOnly(allow) => format!(
                "[keys.{key}]\nexchange = '{exchange}'\nallow = [{}]\n",
                list(allow)
            ),
            Oracle::DenyOnly(deny) => format!(
                "[keys.{key}]\nexchange = '{exchange}'\ndeny = [{}]\n",
                list(deny)
            ),
        }
    }
}

/// The secret every property imports (64 bytes, in the exchange's encoding) and its bytes.
pub fn secret(exchange: &str) -> (&'static str, Vec<u8>) {
    const RAW: &str = "adversarial-property-secret-0123456789abcdef0123456789abcdef0123";
    match exchanges::profile(exchange).map(|p| p.encoding) {
        Some(hsm_custody::SecretEncoding::Base64) => {
            use base64::Engine as _;
            let text = "YWR2ZXJzYXJpYWwtcHJvcGVydHktc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMw==";
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64");
            (text, bytes)
        }
        _ => (RAW, RAW.as_bytes().to_vec()),
    }
}

/// What one property run saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Requests the guard (or a validator) refused.
    pub refused: u32,
    /// Requests signed and checked against the model.
    pub signed: u32,
}

/// Checks one signed request against the model and the oracle. `now_ms` is the crate's clock.
pub fn check_signed(
    model: &dyn ServerModel,
    oracle: &Oracle,
    http: &Http,
    secret: &[u8],
    now_ms: u64,
    limits: &Limits,
) -> Result<(), String> {
    if !model.verify(http, secret) {
        return Err(format!(
            "the model does not verify the crate's signature: {http:?}"
        ));
    }
    let signed = model
        .signed_bytes(http)
        .ok_or_else(|| format!("the model finds no signed bytes in {http:?}"))?;
    let ways = model.reinterpret(&signed);
    if ways.is_empty() {
        return Err(format!(
            "the model finds no request for the signed bytes {:?}",
            String::from_utf8_lossy(&signed)
        ));
    }
    for e in &ways {
        judge(model, oracle, e, now_ms, limits).map_err(|why| {
            format!(
                "{why}\n  signed bytes: {:?}\n  request: {http:?}",
                String::from_utf8_lossy(&signed)
            )
        })?;
    }
    Ok(())
}

fn judge(
    model: &dyn ServerModel,
    oracle: &Oracle,
    e: &Executed,
    now_ms: u64,
    limits: &Limits,
) -> Result<(), String> {
    if let Some(t) = e.time_ms {
        // One second more for the clock moving between the sign and this check.
        let slack = limits.skew_ms + limits.ttl_ms + 1_000;
        if t.abs_diff(now_ms) > slack {
            return Err(format!(
                "a signature valid at {t}, {} ms from the clock ({now_ms})",
                t.abs_diff(now_ms)
            ));
        }
    }
    match &e.endpoint {
        Some(endpoint) => {
            let method = e.method.as_deref().unwrap_or("*");
            let method_ok = |m: &str| m == "*" || method == "*" || m.eq_ignore_ascii_case(method);
            for (m, p, _) in model.guarded() {
                if path_matches(p, endpoint) && method_ok(m) {
                    return Err(format!(
                        "reaches guarded endpoint {m} {p} as {method} {endpoint}"
                    ));
                }
            }
            if endpoint.to_ascii_lowercase().contains("withdraw")
                || endpoint.to_ascii_lowercase().contains("transfer")
            {
                return Err(format!("reaches {method} {endpoint}"));
            }
            match oracle {
                Oracle::OrderOnly(allow) => {
                    if !allow
                        .iter()
                        .any(|(m, p)| method_ok(m) && path_matches(p, endpoint))
                    {
                        return Err(format!(
                            "reaches {method} {endpoint}, which the order-only policy does not allow"
                        ));
                    }
                }
                Oracle::DenyOnly(deny) => {
                    if let Some((m, p)) = deny
                        .iter()
                        .find(|(m, p)| method_ok(m) && path_matches(p, endpoint))
                    {
                        return Err(format!("reaches denied {m} {p} as {method} {endpoint}"));
                    }
                }
            }
        }
        None => {
            for (m, p, required) in model.guarded() {
                if !required.is_empty() && required.iter().all(|r| e.params.contains(*r)) {
                    return Err(format!(
                        "carries every parameter of guarded {m} {p} ({required:?}): {:?}",
                        e.params
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A connected token with guard rails under `oracle` and key `prop` for `exchange` (the
/// property secret, with `api_key`/`passphrase` recorded when given).
pub fn setup(exchange: &str, oracle: &Oracle) -> (TestToken, Custody, tempfile::TempDir) {
    let (t, c, _g, dir) = guarded(
        &format!("prop-{exchange}"),
        &oracle.policy("prop", exchange),
    );
    let profile = exchanges::profile(exchange).expect("known exchange");
    c.import_hmac_secret(
        hsm_custody::KeySpec::hmac("prop")
            .exchange(exchange)
            .encoding(profile.encoding)
            .algorithms(profile.algorithms),
        hsm_custody::SecretString::from(secret(exchange).0),
    )
    .expect("import");
    (t, c, dir)
}

/// Runs `cases` requests from `strategy` for `exchange` under `oracle` through the product
/// path, checking every signature against the model. Fails unless some requests were signed
/// and some refused (a property that cannot fail is a defect).
pub fn run(
    exchange: &str,
    oracle: Oracle,
    strategy: impl Strategy<Value = Request>,
    cases: u32,
) -> Seen {
    let (_t, c, _dir) = setup(exchange, &oracle);
    let (_, secret) = secret(exchange);
    let limits = Limits::default().test_host("127.0.0.1:8443");
    let signer = c
        .exchange_signer_for("prop", exchange)
        .expect("signer")
        .with_limits(limits.clone());
    Drive {
        exchange,
        oracle: &oracle,
        signer,
        secret: &secret,
        limits,
        host: |_, model| model.host().to_owned(),
        refused: |e| {
            matches!(
                e,
                Error::PolicyDenied { .. }
                    | Error::RequestRefused { .. }
                    | Error::InvalidInput(_)
                    | Error::WrongKeyKind { .. }
            )
        },
    }
    .run(strategy, cases)
}

/// One property's signer and how to judge what it answers.
pub struct Drive<'a> {
    /// The exchange id.
    pub exchange: &'a str,
    /// The policy the signer's guard rails enforce, as the test reads it.
    pub oracle: &'a Oracle,
    /// The key's signer, through the product path.
    pub signer: ExchangeSigner,
    /// The key's secret, for the model's verification.
    pub secret: &'a [u8],
    /// The signer's limits.
    pub limits: Limits,
    /// The host a signed request is sent to.
    pub host: fn(&Request, &dyn ServerModel) -> String,
    /// The errors that count as a refusal; any other fails the property.
    pub refused: fn(&Error) -> bool,
}

impl Drive<'_> {
    /// Signs `cases` requests from `strategy`, checks every signature against the model, and
    /// fails unless some requests were signed and some refused.
    pub fn run(&self, strategy: impl Strategy<Value = Request>, cases: u32) -> Seen {
        let exchange = self.exchange;
        let model = super::model(exchange);
        let refused = AtomicU32::new(0);
        let signed = AtomicU32::new(0);
        let config = PropConfig {
            cases,
            failure_persistence: None,
            ..PropConfig::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |req| {
            let now = super::now_ms();
            match self.signer.sign(&req) {
                Ok(s) => {
                    signed.fetch_add(1, Ordering::Relaxed);
                    let http = Http::from_signed(&s, &(self.host)(&req, model.as_ref()));
                    check_signed(
                        model.as_ref(),
                        self.oracle,
                        &http,
                        self.secret,
                        now,
                        &self.limits,
                    )
                    .map_err(|e| TestCaseError::fail(format!("{exchange}: {e}\n  from {req:?}")))
                }
                Err(e) if (self.refused)(&e) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(other) => Err(TestCaseError::fail(format!(
                    "{exchange}: unexpected error {other} for {req:?}"
                ))),
            }
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let seen = Seen {
            refused: refused.into_inner(),
            signed: signed.into_inner(),
        };
        assert!(
            seen.signed >= cases / 20 && seen.refused >= cases / 20,
            "{exchange}: the generator must produce both allowed and refused requests: {seen:?}"
        );
        seen
    }
}

/// The number of cases per property: `HSM_CUSTODY_PROP_CASES`, default 1000.
pub fn cases() -> u32 {
    std::env::var("HSM_CUSTODY_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
