//! Server-side models of the exchanges (issue 25): given an HTTP request as sent, the bytes each
//! exchange verifies and the endpoint and parameters it executes; given the bytes a signature
//! covers, every request the exchange would accept it for. The adversarial property tests sign
//! structured requests built to smuggle a guarded endpoint through every field, through the
//! product path (a real SoftHSM2 token, guard rails with a policy), and check each signature the
//! guard lets out against the model.
//!
//! Models are written from the exchanges' documentation (shared/design/exchange-schemes.md and
//! the exchanges' API pages), not from the signers: what the server does, not what the crate
//! intends. Each model's `verify` is checked against every vector in
//! tests/data/exchange_vectors.json.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac as _};
use hsm_custody::exchanges::SignedRequest;
use hsm_custody::HmacAlg;

mod group_a;
mod group_b;
mod group_c;
mod props;
mod replay;

/// HMAC on the host, as the exchanges compute it to verify (and as the vector keys sign).
pub fn hmac(alg: HmacAlg, key: &[u8], msg: &[u8]) -> Vec<u8> {
    macro_rules! with {
        ($d:ty) => {{
            let mut m = <Hmac<$d>>::new_from_slice(key).expect("any key length");
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        HmacAlg::HmacSha256 => with!(sha2::Sha256),
        HmacAlg::HmacSha384 => with!(sha2::Sha384),
        HmacAlg::HmacSha512 => with!(sha2::Sha512),
    }
}

/// The wall clock in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// An HTTP request as it reaches the exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Http {
    /// Method as sent (`GET`, `POST` ...).
    pub method: String,
    /// Host (lower case).
    pub host: String,
    /// Path as sent (no query).
    pub path: String,
    /// Query string as sent, without `?` (empty: none).
    pub query: String,
    /// Headers as sent.
    pub headers: Vec<(String, String)>,
    /// Body as sent.
    pub body: String,
}

impl Http {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What a signed request puts on the wire, at `host`.
    pub fn from_signed(signed: &SignedRequest<'_>, host: &str) -> Http {
        Http {
            method: signed.method.to_string(),
            host: host.to_owned(),
            path: signed.path.to_string(),
            query: signed.query.to_string(),
            headers: signed
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: signed.body.to_string(),
        }
    }
}

/// What the exchange executes for a request it accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Executed {
    /// The method it executes; `None`: any (the signature does not fix it).
    pub method: Option<String>,
    /// The endpoint it executes, normalised as the exchange's router reads it; `None`: any
    /// endpoint whose required parameters are present (the path is not signed).
    pub endpoint: Option<String>,
    /// The parameter names it reads (decoded), with a non-empty value.
    pub params: BTreeSet<String>,
    /// The time (ms) the exchange judges the request's freshness by, or its expiry, when the
    /// signed bytes carry one.
    pub time_ms: Option<u64>,
}

/// A guarded endpoint in a model's own table: (method, path with `*` for one segment,
/// documented required parameters).
pub type ModelGuarded = (&'static str, &'static str, &'static [&'static str]);

/// One exchange's server, as its documentation describes it.
pub trait ServerModel: Sync {
    /// The crate's exchange id this models.
    fn id(&self) -> &'static str;
    /// The API host requests go to.
    fn host(&self) -> &'static str;
    /// The bytes the exchange MACs (or verifies) for `http`, or `None` when the request lacks
    /// what the exchange needs to verify it.
    fn signed_bytes(&self, http: &Http) -> Option<Vec<u8>>;
    /// Whether the exchange accepts `http`'s signature under `secret` (the key bytes, decoded).
    fn verify(&self, http: &Http, secret: &[u8]) -> bool;
    /// What the exchange executes for `http`.
    fn executes(&self, http: &Http) -> Executed;
    /// Every request the exchange would accept with a signature over `signed` (the holder of a
    /// signature re-sends it in any HTTP request whose signed bytes are `signed`): what each
    /// executes. Empty when no request could carry those bytes.
    fn reinterpret(&self, signed: &[u8]) -> Vec<Executed>;
    /// The exchange's endpoints that move funds, from its documentation.
    fn guarded(&self) -> &'static [ModelGuarded];
}

/// Every model.
pub fn models() -> Vec<Box<dyn ServerModel>> {
    let mut all = group_a::models();
    all.extend(group_b::models());
    all.extend(group_c::models());
    all
}

/// The model for exchange id `id`.
pub fn model(id: &str) -> Box<dyn ServerModel> {
    models()
        .into_iter()
        .find(|m| m.id() == id)
        .unwrap_or_else(|| panic!("no server model for {id}"))
}

/// Whether `path` matches a guarded table's pattern (`*` = one segment, `**` any, case-blind).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    fn go(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(pp), Some(ss)) => seg(pp, ss) && go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn seg(p: &str, s: &str) -> bool {
        // `*` within a segment matches any run of characters.
        let p = p.to_ascii_lowercase();
        let s = s.to_ascii_lowercase();
        let parts: Vec<&str> = p.split('*').collect();
        if parts.len() == 1 {
            return p == s;
        }
        let mut rest = s.as_str();
        for (i, part) in parts.iter().enumerate() {
            if i == 0 {
                let Some(r) = rest.strip_prefix(part) else {
                    return false;
                };
                rest = r;
            } else if i == parts.len() - 1 {
                return rest.ends_with(part);
            } else {
                let Some(at) = rest.find(part) else {
                    return false;
                };
                rest = &rest[at + part.len()..];
            }
        }
        true
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    go(&p, &s)
}

#[test]
fn path_patterns_match_like_the_guard() {
    assert!(path_matches(
        "/sapi/*/capital/withdraw/apply",
        "/sapi/v1/capital/withdraw/apply"
    ));
    assert!(path_matches(
        "/SAPI/*/capital/withdraw/apply",
        "/sapi/v1/Capital/withdraw/apply"
    ));
    assert!(path_matches(
        "**/private/create-withdrawal",
        "/exchange/v1/private/create-withdrawal"
    ));
    assert!(path_matches(
        "/api/v2/*_withdrawal",
        "/api/v2/btc_withdrawal"
    ));
    assert!(!path_matches(
        "/api/v2/*_withdrawal",
        "/api/v2/btc/x_withdrawal"
    ));
    assert!(!path_matches(
        "/sapi/*/capital/withdraw/apply",
        "/api/v3/order"
    ));
}
