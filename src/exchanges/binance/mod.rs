//! Binance spot, USD-M and COIN-M futures (REST), and the spot WebSocket API.
//!
//! REST: `signature = hex(HMAC-SHA256(secret, query || body))`, no `&` between query and body.
//! The request's `query` and `body` are signed as sent (non-ASCII values must already be
//! percent-encoded). When neither carries `timestamp`, the signer appends `recvWindow` (if given)
//! and `timestamp` (given, else the clock in ms) to the body when there is one, else to the
//! query; the signature goes to the same place. Header `X-MBX-APIKEY` (the request's `api_key`,
//! else the one recorded with the key).
//!
//! WebSocket API: every parameter except `signature` (apiKey included) sorted by name, joined as
//! `k=v` with `&`, signed as raw UTF-8. The request's `query` holds the parameters unencoded;
//! `api_key` (else the recorded one), `recv_window` and `timestamp` are added when missing.
//!
//! ## What a signature is good for ([`Exchange::reach`])
//! Neither scheme signs the method or the path, and one API key serves spot, USD-M and COIN-M
//! futures and the WebSocket API: a signature is good at every endpoint of all four whose parameters the
//! signed bytes carry. And since `query || body` has no separator, whoever holds a REST
//! signature can re-send the same bytes split anywhere between query and body: a parameter name
//! can then be read cut at its front (`xaddress=..` is also `address=..`), and the tail of a value
//! becomes a name (without a value: values hold no raw `=`). WebSocket bytes are a valid REST
//! query too. So the validators:
//! - accept only `name=value&...` in the strict form grammar (no raw `=` or `&` in a value, no
//!   duplicate, no `signature`), and report every name with [`Reach::with_split_names`], so that
//!   the guard judges every suffix of every name;
//! - refuse any name other than `timestamp`, `recvWindow` and `signature` themselves that ends
//!   with one of them (any case): cut at its front it would be read as the crate's own input;
//! - hold a caller's `timestamp` (parameter or field) to the crate's clock and `recvWindow` to
//!   the TTL, and refuse a field the signer would ignore (a `timestamp` field beside a
//!   `timestamp` parameter).
//!
//! Asymmetric API keys (chosen by the key's kind, [`Mac::kind`]): an Ed25519 key signs the same
//! payload with pure Ed25519, an RSA key with RSASSA-PKCS1-v1_5/SHA-256; the signature is
//! standard base64 (with padding, case-sensitive). [`SignedRequest::signature`] is that base64;
//! in a REST query or form body it is percent-encoded (`+`, `/`, `=` become `%2B`, `%2F`, `%3D`),
//! in a WebSocket API request it is sent as is (JSON string). Binance takes no ECDSA keys, so a
//! P-256 key is refused. The same applies to USD-M futures (`binance-usdm`) and COIN-M futures
//! (`binance-coinm`), which share the key and the scheme.
//!
//! FIX API Logon`<A>` ([`BinanceFixLogon`], Ed25519 keys only): pure Ed25519 over
//! `A␁SenderCompID␁TargetCompID␁MsgSeqNum␁SendingTime` (␁ = 0x01), base64, sent in
//! RawData(96) with RawDataLength(95).
//!
//! Files: this one (the REST signer of spot, USD-M and COIN-M), `rest.rs` (the REST validator,
//! shared with MEXC spot), `sign.rs` (the REST bytes and signature), `ws.rs` (the WebSocket
//! API), `fix.rs` (the FIX Logon) and `info.rs` (the four registry entries and the guarded
//! endpoints they share).

mod fix;
mod info;
mod rest;
mod sign;
mod ws;

pub use fix::BinanceFixLogon;
pub(super) use info::{COINM_INFO, SPOT_INFO, USDM_INFO, WS_INFO};
pub(crate) use rest::{check_name, longest_digit_run, not_expired, rest_reach, RestRules};
pub(crate) use sign::{api_key, sign_query_body};
pub use ws::BinanceWs;

use super::{Context, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::sign::Mac;
use sign::{query_body, Keys};

/// Binance REST (spot `binance`, USD-M futures `binance-usdm`, COIN-M futures `binance-coinm`);
/// also the shape MEXC spot copies.
#[derive(Clone, Copy, Debug)]
pub struct Binance {
    id: &'static str,
}

impl Binance {
    /// Spot (`api.binance.com`, id `binance`).
    pub fn spot() -> Self {
        Binance { id: SPOT_INFO.id }
    }

    /// USD-M futures (`fapi.binance.com`, id `binance-usdm`).
    pub fn usdm() -> Self {
        Binance { id: USDM_INFO.id }
    }

    /// COIN-M futures (`dapi.binance.com`, id `binance-coinm`).
    pub fn coinm() -> Self {
        Binance { id: COINM_INFO.id }
    }

    fn rules(&self) -> &'static RestRules {
        if self.id == USDM_INFO.id {
            &USDM_RULES
        } else if self.id == COINM_INFO.id {
            &COINM_RULES
        } else {
            &SPOT_RULES
        }
    }
}

const SPOT_RULES: RestRules = RestRules {
    prefixes: &["/api/", "/sapi/"],
    no_time_in_names: false,
};

const USDM_RULES: RestRules = RestRules {
    prefixes: &["/fapi/"],
    no_time_in_names: false,
};

const COINM_RULES: RestRules = RestRules {
    prefixes: &["/dapi/"],
    no_time_in_names: false,
};

impl Exchange for Binance {
    fn id(&self) -> &str {
        self.id
    }

    fn accepts_key_for(&self, bound: &str) -> bool {
        crate::exchanges::registry::same_keys(self.id(), bound)
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        rest_reach(self.id, req, inputs, self.rules())
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        query_body(req, mac, ctx, "X-MBX-APIKEY", Keys::HmacEd25519Rsa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::{FixedClock, FixedNonce, Recorded, SoftKey};

    /// Binance's documented example key, in software.
    pub(super) const DOC_KEY: SoftKey = SoftKey {
        exchange: "binance",
        secret: b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    };

    pub(super) const NOW: u64 = 1_700_000_000_000;

    pub(super) fn order() -> Request {
        Request::post("/api/v3/order").query("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1")
    }

    #[test]
    fn signers_use_the_recorded_api_key() {
        let clock = FixedClock(NOW);
        let nonces = FixedNonce(0);
        let ctx = Context::new(&clock, &nonces);
        let key = Recorded {
            key: DOC_KEY,
            api_key: Some("RECORDED"),
            passphrase: None,
        };
        let req = order();
        let signed = Binance::spot().sign(&req, &key, &ctx).unwrap();
        assert_eq!(signed.header("X-MBX-APIKEY"), Some("RECORDED"));
        let ws = Request::default().query("symbol=BTCUSDT");
        let signed = BinanceWs.sign(&ws, &key, &ctx).unwrap();
        assert!(
            signed
                .query
                .starts_with("apiKey=RECORDED&symbol=BTCUSDT&timestamp="),
            "{}",
            signed.query
        );
    }
}
