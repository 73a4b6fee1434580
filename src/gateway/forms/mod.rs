//! How the gateway reads a bot's signed HTTP request for each exchange, and how it checks the
//! request it rebuilds from the token's signature.
//!
//! A bot signs its requests with a placeholder secret (ccxt's own `sign`, unmodified). For every
//! exchange the crate signs for, this table says where that scheme carries its signature (query
//! or body parameters, headers), which fields the crate owns (time, nonce, API key, a keyed
//! passphrase) and how the other fields map onto the crate's [`Request`]. The gateway then
//! signs the [`Request`] with the exchange's canonical form ([`crate::exchanges::Exchange::reach`]
//! first), rebuilds the HTTP request from the [`SignedRequest`] and the bot's presentation
//! headers, and compares it with what the bot sent: only the signature fields and the
//! crate-owned fields may differ. Anything else is refused with the field that differs: the
//! gateway sends what the bot asked for, or nothing.
//!
//! The schemes, by where they carry the signature: `query.rs` (a query or form parameter:
//! Binance, MEXC spot, HTX), `headers.rs` (time, key and signature headers: OKX, Coinbase
//! Exchange, Bitget, Gate, Bybit, KuCoin, Bitfinex, Bitstamp, MEXC futures, BitMEX, Coinbase
//! Advanced), `payload.rs`
//! (a signed payload or body member: Kraken, Gemini, Crypto.com, Deribit); `params.rs` reads
//! and edits parameters and JSON members byte for byte.

mod headers;
mod params;
mod payload;
mod query;

use crate::exchanges::{Request, SignedRequest};
use headers::{
    BITFINEX, BITGET, BITMEX, BITSTAMP, BYBIT, COINBASE, COINBASE_ADVANCED, GATE, KUCOIN,
    MEXC_FUTURES, OKX,
};
pub(crate) use params::decode_component;
use params::{drop_params, json_member, json_with_member, param, without_member};
use payload::{CRYPTOCOM, DERIBIT, GEMINI, KRAKEN};
use query::{BINANCE, HTX, MEXC};

/// A bot's request as the gateway received it, addressed to an exchange host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Http {
    pub method: String,
    pub host: String,
    pub path: String,
    /// Raw query, without `?`.
    pub query: String,
    /// Whether the URL had a `?` (kept as sent).
    pub qmark: bool,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn need(&self, name: &str) -> Result<String, String> {
        self.header(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("no `{name}` header"))
    }

    fn set_header(&mut self, name: &str, value: &str) {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value.to_owned(),
            None => self.headers.push((name.to_owned(), value.to_owned())),
        }
    }

    fn base_request(&self) -> Request {
        let mut r = Request::new(&self.method, self.path.clone());
        r.query = Some(self.query.clone());
        r.body = Some(self.body.clone());
        r
    }
}

/// Where a scheme carries its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// The signed request's body is sent.
    Signed,
    /// The bot's body is sent as is (not what the scheme signs: Gemini signs a header).
    Keep,
    /// A JSON body with the signature in this member (Crypto.com `sig`).
    JsonMember(&'static str),
}

/// One exchange's wire form.
pub(crate) struct Form {
    /// Query or form-body parameters that hold the signature.
    sig_params: &'static [&'static str],
    /// Headers that hold the signature or other keyed values.
    sig_headers: &'static [&'static str],
    /// Headers the crate owns (time, nonce, API key): they may differ from the bot's.
    owned_headers: &'static [&'static str],
    /// Presentation headers this scheme signs (the signed request's value is sent).
    signed_presentation: &'static [&'static str],
    body: Body,
    extract: fn(&Http) -> Result<Request, String>,
}

/// Headers that describe the request rather than authenticate it: the bot's value (or absence)
/// stands unless the scheme signs the header.
const PRESENTATION: &[&str] = &[
    "content-type",
    "content-length",
    "cache-control",
    "locale",
    "accept",
    "user-agent",
];

/// The wire form for a crate exchange id, or `None` when the gateway does not re-sign it.
pub(crate) fn form(exchange: &str) -> Option<&'static Form> {
    Some(match exchange {
        "binance" | "binance-usdm" | "binance-coinm" => &BINANCE,
        "mexc" => &MEXC,
        "mexc-futures" => &MEXC_FUTURES,
        "kraken" => &KRAKEN,
        "coinbase-exchange" => &COINBASE,
        "okx" => &OKX,
        "bybit" => &BYBIT,
        "bitget" => &BITGET,
        "kucoin" => &KUCOIN,
        "gemini" => &GEMINI,
        "bitfinex" => &BITFINEX,
        "gate" => &GATE,
        "deribit" => &DERIBIT,
        "htx" => &HTX,
        "cryptocom" => &CRYPTOCOM,
        "bitstamp" => &BITSTAMP,
        "bitmex" => &BITMEX,
        "coinbase-advanced" => &COINBASE_ADVANCED,
        _ => return None,
    })
}

/// The exchange ids the gateway re-signs.
pub const EXCHANGES: &[&str] = &[
    "binance",
    "binance-coinm",
    "binance-usdm",
    "bitfinex",
    "bitget",
    "bitmex",
    "bitstamp",
    "bybit",
    "coinbase-advanced",
    "coinbase-exchange",
    "cryptocom",
    "deribit",
    "gate",
    "gemini",
    "htx",
    "kraken",
    "kucoin",
    "mexc",
    "mexc-futures",
    "okx",
];

impl Form {
    /// Whether the bot signed `http` (it carries this scheme's signature field).
    pub(crate) fn is_signed(&self, http: &Http) -> bool {
        self.sig_headers.iter().any(|h| http.header(h).is_some())
            || self.sig_params.iter().any(|p| {
                param(&http.query, p).is_some()
                    || (!http.body.starts_with('{') && param(&http.body, p).is_some())
            })
            || match self.body {
                Body::JsonMember(m) => json_member(&http.body, m),
                _ => false,
            }
    }

    /// The crate's request for the bot's signed `http`.
    pub(crate) fn request(&self, http: &Http) -> Result<Request, String> {
        (self.extract)(http)
    }

    /// The request to send: the bot's, with the signed request's method, path, query, body and
    /// headers; refused (with the reason) when it differs from the bot's in anything but the
    /// signature and crate-owned fields.
    pub(crate) fn rebuild(&self, bot: &Http, signed: &SignedRequest<'_>) -> Result<Http, String> {
        let mut out = bot.clone();
        out.method = signed.method.to_string();
        out.path = signed.path.to_string();
        out.query = signed.query.to_string();
        out.qmark = bot.qmark || !out.query.is_empty();
        out.body = match self.body {
            Body::Signed => signed.body.to_string(),
            Body::Keep => bot.body.clone(),
            Body::JsonMember(m) => json_with_member(&bot.body, &signed.body, m)?,
        };
        for (name, value) in &signed.headers {
            let lower = name.to_ascii_lowercase();
            let presentation = PRESENTATION.contains(&lower.as_str());
            let signs = self
                .signed_presentation
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name));
            if presentation && !signs {
                continue;
            }
            out.set_header(name, value);
        }
        self.check(bot, &out)?;
        Ok(out)
    }

    fn may_differ(&self, header: &str) -> bool {
        self.sig_headers
            .iter()
            .chain(self.owned_headers)
            .any(|h| h.eq_ignore_ascii_case(header))
    }

    fn check(&self, bot: &Http, out: &Http) -> Result<(), String> {
        // One value per authentication header: a second copy would go out as the bot wrote it.
        for name in self.sig_headers.iter().chain(self.owned_headers) {
            let copies = bot
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count();
            if copies > 1 {
                return Err(format!("header `{name}` is sent {copies} times"));
            }
        }
        if bot.method != out.method {
            return Err(format!(
                "method: the bot sent {}, the signature is for {}",
                bot.method, out.method
            ));
        }
        if bot.path != out.path {
            return Err("path: the signed path differs from the bot's".into());
        }
        if drop_params(&bot.query, self.sig_params) != drop_params(&out.query, self.sig_params) {
            return Err(
                "query: the signed query differs from the bot's (besides the signature)".into(),
            );
        }
        let same_body = match self.body {
            Body::Keep => true,
            Body::Signed if bot.body.starts_with('{') || bot.body.starts_with('[') => {
                bot.body == out.body
            }
            Body::Signed => {
                drop_params(&bot.body, self.sig_params) == drop_params(&out.body, self.sig_params)
            }
            Body::JsonMember(m) => without_member(&bot.body, m) == without_member(&out.body, m),
        };
        if !same_body {
            return Err(
                "body: the signed body differs from the bot's (besides the signature)".into(),
            );
        }
        for (name, value) in &out.headers {
            if bot.header(name) != Some(value.as_str()) && !self.may_differ(name) {
                return Err(format!(
                    "header `{name}`: the signed request's differs from the bot's"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_exchange_has_a_form() {
        for id in EXCHANGES {
            assert!(form(id).is_some(), "{id}");
            assert!(crate::exchanges::by_id(id).is_some(), "{id}");
        }
    }
}
