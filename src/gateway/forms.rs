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

use crate::exchanges::{Request, SignedRequest};

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
        "binance" | "binance-usdm" => &BINANCE,
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
        _ => return None,
    })
}

/// The exchange ids the gateway re-signs.
pub const EXCHANGES: &[&str] = &[
    "binance",
    "binance-usdm",
    "bitfinex",
    "bitget",
    "bitstamp",
    "bybit",
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

/// The raw (still encoded) value of `name` in `a=b&c=d`.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// `query` without its `name=...` pairs, the rest byte for byte.
fn drop_params(query: &str, names: &[&str]) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !names.contains(&p.split_once('=').map_or(*p, |(k, _)| k)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn decode_component(s: &str) -> String {
    percent_decode(s)
}

fn json_member(body: &str, member: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(member).map(|_| ()))
        .is_some()
}

fn without_member(body: &str, member: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.as_object_mut()?.remove(member);
    Some(v)
}

/// The bot's JSON body text with member `member`'s value replaced by the signed body's: the
/// bot's member order and spacing are kept (the scheme signs a canonical string, not the body).
fn json_with_member(bot: &str, signed: &str, member: &str) -> Result<String, String> {
    let ours: serde_json::Value =
        serde_json::from_str(signed).map_err(|_| "body: the signed body is not JSON".to_owned())?;
    let value = ours
        .get(member)
        .ok_or_else(|| format!("body: the signed body has no `{member}`"))?;
    let theirs: serde_json::Value =
        serde_json::from_str(bot).map_err(|_| "body: not JSON".to_owned())?;
    let old = theirs
        .get(member)
        .ok_or_else(|| format!("body: no `{member}` member"))?;
    let old_text = serde_json::to_string(old).map_err(|e| e.to_string())?;
    let new_text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    let needle = format!("\"{member}\":{old_text}");
    if bot.matches(&needle).count() != 1 {
        return Err(format!("body: `{member}` is not a plain top-level member"));
    }
    Ok(bot.replacen(&needle, &format!("\"{member}\":{new_text}"), 1))
}

// -- the schemes -------------------------------------------------------------------------------

fn binance_like(http: &Http, key_header: &str) -> Result<Request, String> {
    let mut r = http.base_request();
    r.query = Some(drop_params(&http.query, &["signature"]));
    r.body = Some(if http.body.is_empty() {
        String::new()
    } else {
        drop_params(&http.body, &["signature"])
    });
    r.api_key = Some(http.need(key_header)?);
    Ok(r)
}

static BINANCE: Form = Form {
    sig_params: &["signature"],
    sig_headers: &[],
    owned_headers: &["X-MBX-APIKEY"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| binance_like(h, "X-MBX-APIKEY"),
};

static MEXC: Form = Form {
    sig_params: &["signature"],
    sig_headers: &[],
    owned_headers: &["X-MEXC-APIKEY"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| binance_like(h, "X-MEXC-APIKEY"),
};

static MEXC_FUTURES: Form = Form {
    sig_params: &[],
    sig_headers: &["Signature"],
    owned_headers: &["Request-Time", "ApiKey"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let mut r = h.base_request();
        r.timestamp = Some(h.need("Request-Time")?);
        r.api_key = Some(h.need("ApiKey")?);
        Ok(r)
    },
};

static KRAKEN: Form = Form {
    sig_params: &[],
    sig_headers: &["API-Sign"],
    owned_headers: &["API-Key"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let mut r = h.base_request();
        r.nonce = if h.body.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(&h.body).map_err(|_| "body: not JSON".to_owned())?;
            v.get("nonce").map(|n| match n {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        } else {
            param(&h.body, "nonce").map(percent_decode)
        };
        r.api_key = Some(h.need("API-Key")?);
        Ok(r)
    },
};

macro_rules! header_scheme {
    ($name:ident, sig = $sig:expr, ts = $ts:expr, key = $key:expr, pass = $pass:expr) => {
        static $name: Form = Form {
            sig_params: &[],
            sig_headers: &[$sig],
            owned_headers: &[$ts, $key],
            signed_presentation: &[],
            body: Body::Signed,
            extract: |h| {
                let mut r = h.base_request();
                r.timestamp = Some(h.need($ts)?);
                r.api_key = Some(h.need($key)?);
                let pass: Option<&str> = $pass;
                if let Some(p) = pass {
                    r.passphrase = Some(h.need(p)?);
                }
                Ok(r)
            },
        };
    };
}

header_scheme!(
    OKX,
    sig = "OK-ACCESS-SIGN",
    ts = "OK-ACCESS-TIMESTAMP",
    key = "OK-ACCESS-KEY",
    pass = Some("OK-ACCESS-PASSPHRASE")
);
header_scheme!(
    COINBASE,
    sig = "CB-ACCESS-SIGN",
    ts = "CB-ACCESS-TIMESTAMP",
    key = "CB-ACCESS-KEY",
    pass = Some("CB-ACCESS-PASSPHRASE")
);
header_scheme!(
    BITGET,
    sig = "ACCESS-SIGN",
    ts = "ACCESS-TIMESTAMP",
    key = "ACCESS-KEY",
    pass = Some("ACCESS-PASSPHRASE")
);
header_scheme!(
    GATE,
    sig = "SIGN",
    ts = "Timestamp",
    key = "KEY",
    pass = None
);

static BYBIT: Form = Form {
    sig_params: &[],
    sig_headers: &["X-BAPI-SIGN"],
    owned_headers: &["X-BAPI-TIMESTAMP", "X-BAPI-API-KEY", "X-BAPI-RECV-WINDOW"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        if h.header("X-BAPI-SIGN-TYPE").is_some() || h.header("X-BAPI-RECV-WINDOW").is_none() {
            return Err("only Bybit v5 requests are re-signed".into());
        }
        let mut r = h.base_request();
        r.timestamp = Some(h.need("X-BAPI-TIMESTAMP")?);
        r.api_key = Some(h.need("X-BAPI-API-KEY")?);
        r.recv_window = Some(h.need("X-BAPI-RECV-WINDOW")?);
        Ok(r)
    },
};

static KUCOIN: Form = Form {
    sig_params: &[],
    // The v2 passphrase header is a MAC of the recorded passphrase: the crate makes it.
    sig_headers: &["KC-API-SIGN", "KC-API-PASSPHRASE"],
    owned_headers: &["KC-API-TIMESTAMP", "KC-API-KEY"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        if h.header("KC-API-KEY-VERSION") != Some("2") {
            return Err("KuCoin: only API key version 2 is re-signed".into());
        }
        let mut r = h.base_request();
        r.timestamp = Some(h.need("KC-API-TIMESTAMP")?);
        r.api_key = Some(h.need("KC-API-KEY")?);
        Ok(r)
    },
};

static GEMINI: Form = Form {
    sig_params: &[],
    sig_headers: &["X-GEMINI-SIGNATURE"],
    owned_headers: &["X-GEMINI-APIKEY"],
    signed_presentation: &[],
    body: Body::Keep,
    extract: |h| {
        use base64::Engine as _;
        let payload = h.need("X-GEMINI-PAYLOAD")?;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("`X-GEMINI-PAYLOAD` is not base64 of UTF-8 text")?;
        let v: serde_json::Value =
            serde_json::from_str(&payload).map_err(|_| "Gemini payload is not JSON".to_owned())?;
        let mut r = h.base_request();
        r.nonce = v.get("nonce").map(|n| match n {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        r.body = Some(payload);
        r.api_key = Some(h.need("X-GEMINI-APIKEY")?);
        Ok(r)
    },
};

static BITFINEX: Form = Form {
    sig_params: &[],
    sig_headers: &["bfx-signature"],
    owned_headers: &["bfx-nonce", "bfx-apikey"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        if !h.path.starts_with("/v2/") {
            return Err("Bitfinex: only v2 requests are re-signed".into());
        }
        let mut r = h.base_request();
        r.nonce = Some(h.need("bfx-nonce")?);
        r.api_key = Some(h.need("bfx-apikey")?);
        Ok(r)
    },
};

static DERIBIT: Form = Form {
    sig_params: &[],
    // The whole header: key id, time, nonce and signature, all the crate's.
    sig_headers: &["Authorization"],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let auth = h.need("Authorization")?;
        let (scheme, params) = auth.split_once(' ').unwrap_or((&auth, ""));
        if scheme != "deri-hmac-sha256" {
            return Err(format!("Deribit: unknown authorization scheme `{scheme}`"));
        }
        let get = |k: &str| {
            params.split(',').find_map(|p| {
                let (n, v) = p.split_once('=')?;
                (n == k).then(|| v.to_owned())
            })
        };
        let mut r = h.base_request();
        r.api_key = get("id");
        r.timestamp = get("ts");
        r.nonce = get("nonce");
        Ok(r)
    },
};

static HTX: Form = Form {
    sig_params: &["Signature"],
    sig_headers: &[],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let mut r = h.base_request();
        r.query = Some(drop_params(&h.query, &["Signature"]));
        r.host = Some(h.host.clone());
        r.api_key = param(&h.query, "AccessKeyId").map(percent_decode);
        r.timestamp = param(&h.query, "Timestamp").map(percent_decode);
        Ok(r)
    },
};

static CRYPTOCOM: Form = Form {
    sig_params: &[],
    sig_headers: &[],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::JsonMember("sig"),
    extract: |h| {
        let mut rpc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&h.body).map_err(|_| "body: not a JSON object".to_owned())?;
        let api_key = rpc.remove("api_key");
        rpc.remove("sig");
        let mut r = h.base_request();
        r.body = Some(serde_json::to_string(&rpc).map_err(|e| e.to_string())?);
        r.api_key = match api_key {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err("body: `api_key` is not a string".into()),
            None => None,
        };
        Ok(r)
    },
};

static BITSTAMP: Form = Form {
    sig_params: &[],
    sig_headers: &["X-Auth-Signature"],
    owned_headers: &["X-Auth", "X-Auth-Nonce", "X-Auth-Timestamp"],
    signed_presentation: &["Content-Type"],
    body: Body::Signed,
    extract: |h| {
        let auth = h.need("X-Auth")?;
        let key = auth
            .strip_prefix("BITSTAMP ")
            .ok_or("`X-Auth` is not `BITSTAMP <key>`")?;
        let mut r = h.base_request();
        r.api_key = Some(key.to_owned());
        r.nonce = Some(h.need("X-Auth-Nonce")?);
        r.timestamp = Some(h.need("X-Auth-Timestamp")?);
        r.host = Some(h.host.clone());
        Ok(r)
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_dropped_byte_for_byte() {
        assert_eq!(
            drop_params("a=1&signature=x&b=%20", &["signature"]),
            "a=1&b=%20"
        );
        assert_eq!(param("a=1&b=2", "b"), Some("2"));
        assert_eq!(
            percent_decode("2024-01-01T00%3A00%3A00"),
            "2024-01-01T00:00:00"
        );
    }

    #[test]
    fn a_json_member_is_replaced_in_place() {
        let out = json_with_member(r#"{"id":1,"sig":"aa","x":[1]}"#, r#"{"sig":"bb"}"#, "sig");
        assert_eq!(out.unwrap(), r#"{"id":1,"sig":"bb","x":[1]}"#);
    }

    #[test]
    fn every_listed_exchange_has_a_form() {
        for id in EXCHANGES {
            assert!(form(id).is_some(), "{id}");
            assert!(crate::exchanges::by_id(id).is_some(), "{id}");
        }
    }
}
