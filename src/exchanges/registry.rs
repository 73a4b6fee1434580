//! The one list of exchanges: ids, key profiles, what each signature binds, where the guard
//! reads the endpoint, which inputs the crate owns, API hosts and guarded endpoints. Everything
//! else (`IDS`, `profile`, `by_id`, the withdrawal guard's tables, the table in
//! `docs/guardrails.md`) is derived from [`ALL`], so they cannot drift apart.

use std::sync::Arc;

use super::reach::{Binding, EndpointFrom};
use super::{
    Binance, BinanceWs, Bitfinex, Bitget, Bitmex, Bitstamp, Bybit, CoinbaseAdvanced,
    CoinbaseExchange, CryptoCom, Deribit, Exchange, Gate, Gemini, Htx, Kraken, KuCoin, Mexc,
    MexcFutures, Okx,
};
use crate::keys::SecretEncoding;
use crate::sign::HmacAlg;

/// An endpoint that moves funds out of the account or between accounts: the withdrawal guard
/// refuses it unless the key's policy allows withdrawals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Guarded {
    /// The path, `*` standing for one segment (API version, currency); matched without regard
    /// to case or method.
    pub path: &'static str,
    /// The parameters the endpoint requires (documented): where the exchange does not sign the
    /// path, a request carrying all of them is refused as this endpoint.
    pub required: &'static [&'static str],
}

const fn g(path: &'static str) -> Guarded {
    Guarded {
        path,
        required: &[],
    }
}

const fn gp(path: &'static str, required: &'static [&'static str]) -> Guarded {
    Guarded { path, required }
}

/// One exchange id.
#[non_exhaustive]
pub struct ExchangeInfo {
    /// The id keys are bound to.
    pub id: &'static str,
    /// How the exchange shows its secrets.
    pub encoding: SecretEncoding,
    /// The HMAC algorithms its scheme uses (empty: asymmetric keys only).
    pub algorithms: &'static [HmacAlg],
    /// Whether the scheme takes asymmetric keys (all of its keys, when `algorithms` is empty).
    pub asymmetric: bool,
    /// What the signature binds.
    pub binding: Binding,
    /// Where the guard reads the endpoint.
    pub endpoint_from: EndpointFrom,
    /// The inputs the crate owns or checks, for the documentation.
    pub owned: &'static str,
    /// The exchange's API hosts (the signed host must be one of them, or a test host).
    pub hosts: &'static [&'static str],
    /// Endpoints the withdrawal guard refuses.
    pub guarded: &'static [Guarded],
    signer: fn() -> Arc<dyn Exchange>,
}

impl ExchangeInfo {
    /// The built-in signer.
    pub fn signer(&self) -> Arc<dyn Exchange> {
        (self.signer)()
    }
}

impl std::fmt::Debug for ExchangeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeInfo")
            .field("id", &self.id)
            .field("binding", &self.binding)
            .field("endpoint_from", &self.endpoint_from)
            .finish_non_exhaustive()
    }
}

const SHA256: &[HmacAlg] = &[HmacAlg::HmacSha256];
const SHA384: &[HmacAlg] = &[HmacAlg::HmacSha384];
const SHA512: &[HmacAlg] = &[HmacAlg::HmacSha512];

const BINANCE_GUARDED: &[Guarded] = &[
    gp(
        "/sapi/*/capital/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    gp(
        "/sapi/*/localentity/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    gp("/sapi/*/asset/transfer", &["type", "asset", "amount"]),
    gp("/sapi/*/futures/transfer", &["asset", "amount", "type"]),
    gp("/sapi/*/margin/transfer", &["asset", "amount", "type"]),
    gp(
        "/sapi/*/margin/isolated/transfer",
        &["asset", "symbol", "transFrom", "transTo", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/universalTransfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/transfer/subToMaster",
        &["asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/transfer/subToSub",
        &["toEmail", "asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/futures/transfer",
        &["email", "asset", "amount", "type"],
    ),
    gp(
        "/sapi/*/sub-account/futures/internalTransfer",
        &["fromEmail", "toEmail", "futuresType", "asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/margin/transfer",
        &["email", "asset", "amount", "type"],
    ),
    gp(
        "/sapi/*/managed-subaccount/withdraw",
        &["email", "asset", "amount"],
    ),
    gp("/sapi/*/giftcard/createCode", &["token", "amount"]),
    gp(
        "/sapi/*/giftcard/buyCode",
        &["baseToken", "faceToken", "baseTokenAmount"],
    ),
    gp("/wapi/*/withdraw.html", &["asset", "address", "amount"]),
];

const MEXC_GUARDED: &[Guarded] = &[
    gp("/api/v3/capital/withdraw", &["coin", "address", "amount"]),
    gp(
        "/api/v3/capital/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    gp(
        "/api/v3/capital/transfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
    gp(
        "/api/v3/capital/transfer/internal",
        &["toAccountType", "toAccount", "asset", "amount"],
    ),
    gp(
        "/api/v3/capital/sub-account/universalTransfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
];

const BYBIT_GUARDED: &[Guarded] = &[
    gp(
        "/v5/asset/withdraw/create",
        &["coin", "chain", "address", "amount"],
    ),
    gp(
        "/v5/asset/transfer/inter-transfer",
        &[
            "transferId",
            "coin",
            "amount",
            "fromAccountType",
            "toAccountType",
        ],
    ),
    gp(
        "/v5/asset/transfer/universal-transfer",
        &[
            "transferId",
            "coin",
            "amount",
            "fromMemberId",
            "toMemberId",
            "fromAccountType",
            "toAccountType",
        ],
    ),
    gp(
        "/v5/asset/transfer/save-transfer-sub-member",
        &["subMemberIds", "transferable"],
    ),
];

/// Binance's API hosts (spot, futures, WebSocket API).
const BINANCE_HOSTS: &[&str] = &[
    "api.binance.com",
    "api1.binance.com",
    "api2.binance.com",
    "api3.binance.com",
    "api4.binance.com",
    "api-gcp.binance.com",
];

/// Every exchange the crate signs for, in the order `hsm-custody sign-request --help` lists them.
pub static ALL: &[ExchangeInfo] = &[
    ExchangeInfo {
        id: "binance",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: true,
        binding: Binding::PARAMS,
        endpoint_from: EndpointFrom::Params,
        owned: "timestamp (±skew), recvWindow (≤ TTL), X-MBX-APIKEY",
        hosts: BINANCE_HOSTS,
        guarded: BINANCE_GUARDED,
        signer: || Arc::new(Binance::spot()),
    },
    ExchangeInfo {
        id: "binance-usdm",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: true,
        binding: Binding::PARAMS,
        endpoint_from: EndpointFrom::Params,
        owned: "timestamp (±skew), recvWindow (≤ TTL), X-MBX-APIKEY",
        hosts: &["fapi.binance.com"],
        // One key serves spot and futures, and the path is not signed: a futures signature is
        // a spot signature for the same parameters.
        guarded: BINANCE_GUARDED,
        signer: || Arc::new(Binance::usdm()),
    },
    ExchangeInfo {
        id: "binance-ws",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: true,
        binding: Binding::PARAMS.with("body", false),
        endpoint_from: EndpointFrom::Params,
        owned: "timestamp (±skew), recvWindow (≤ TTL), apiKey",
        hosts: &["ws-api.binance.com"],
        guarded: BINANCE_GUARDED,
        signer: || Arc::new(BinanceWs),
    },
    ExchangeInfo {
        id: "kraken",
        encoding: SecretEncoding::Base64,
        algorithms: SHA512,
        asymmetric: false,
        binding: Binding::REQUEST.with("method", false).with("query", false),
        endpoint_from: EndpointFrom::Path,
        owned: "nonce (±skew), API-Key",
        hosts: &["api.kraken.com"],
        guarded: &[
            g("/0/private/Withdraw"),
            g("/0/private/WalletTransfer"),
            g("/0/private/AccountTransfer"),
        ],
        signer: || Arc::new(Kraken),
    },
    ExchangeInfo {
        id: "coinbase-exchange",
        encoding: SecretEncoding::Base64,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "CB-ACCESS-TIMESTAMP (±skew), CB-ACCESS-KEY, CB-ACCESS-PASSPHRASE",
        hosts: &["api.exchange.coinbase.com"],
        guarded: &[
            g("/withdrawals/crypto"),
            g("/withdrawals/coinbase-account"),
            g("/withdrawals/payment-method"),
            g("/profiles/transfer"),
        ],
        signer: || Arc::new(CoinbaseExchange),
    },
    ExchangeInfo {
        id: "coinbase-advanced",
        encoding: SecretEncoding::Base64,
        algorithms: &[],
        asymmetric: true,
        binding: Binding {
            method: true,
            path: true,
            host: true,
            query: false,
            body: false,
            time: true,
        },
        endpoint_from: EndpointFrom::Path,
        owned: "nbf/exp (±skew, ≤ TTL), kid (the CDP key name)",
        hosts: &["api.coinbase.com"],
        guarded: &[
            g("/api/v3/brokerage/portfolios/move_funds"),
            g("/v2/accounts/*/transactions"),
            g("/v2/accounts/*/withdrawals"),
        ],
        signer: || Arc::new(CoinbaseAdvanced),
    },
    ExchangeInfo {
        id: "okx",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "OK-ACCESS-TIMESTAMP (±skew), OK-ACCESS-KEY, OK-ACCESS-PASSPHRASE",
        hosts: &["www.okx.com", "aws.okx.com"],
        guarded: &[
            g("/api/v5/asset/withdrawal"),
            g("/api/v5/asset/withdrawal-lightning"),
            g("/api/v5/asset/transfer"),
            g("/api/v5/asset/subaccount/transfer"),
            g("/api/v5/fiat/create-withdrawal"),
        ],
        signer: || Arc::new(Okx),
    },
    ExchangeInfo {
        id: "bybit",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: true,
        binding: Binding::PARAMS,
        endpoint_from: EndpointFrom::Params,
        owned: "X-BAPI-TIMESTAMP (±skew), X-BAPI-RECV-WINDOW (≤ TTL), X-BAPI-API-KEY",
        hosts: &["api.bybit.com", "api.bytick.com"],
        guarded: BYBIT_GUARDED,
        signer: || Arc::new(Bybit),
    },
    ExchangeInfo {
        id: "bitget",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "ACCESS-TIMESTAMP (±skew), ACCESS-KEY, ACCESS-PASSPHRASE",
        hosts: &["api.bitget.com"],
        guarded: &[
            g("/api/v2/spot/wallet/withdrawal"),
            g("/api/v2/spot/wallet/transfer"),
            g("/api/v2/spot/wallet/subaccount-transfer"),
            g("/api/spot/v1/wallet/withdrawal*"),
            g("/api/spot/v1/wallet/transfer*"),
        ],
        signer: || Arc::new(Bitget),
    },
    ExchangeInfo {
        id: "kucoin",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "KC-API-TIMESTAMP (±skew), KC-API-KEY, KC-API-PASSPHRASE (HMAC of the recorded passphrase only)",
        hosts: &["api.kucoin.com", "api-futures.kucoin.com"],
        guarded: &[
            g("/api/*/withdrawals"),
            g("/api/*/accounts/inner-transfer"),
            g("/api/*/accounts/sub-transfer"),
            g("/api/*/accounts/universal-transfer"),
        ],
        signer: || Arc::new(KuCoin::default()),
    },
    ExchangeInfo {
        id: "gemini",
        encoding: SecretEncoding::Raw,
        algorithms: SHA384,
        asymmetric: false,
        binding: Binding::REQUEST.with("method", false).with("query", false),
        endpoint_from: EndpointFrom::BodyMember("request"),
        owned: "nonce (±skew), X-GEMINI-APIKEY",
        hosts: &["api.gemini.com"],
        guarded: &[g("/v1/withdraw/*"), g("/v1/account/transfer/*")],
        signer: || Arc::new(Gemini),
    },
    ExchangeInfo {
        id: "bitmex",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "api-expires (≤ TTL ahead), api-key",
        hosts: &["www.bitmex.com"],
        guarded: &[
            g("/api/v1/user/requestWithdrawal"),
            g("/api/v1/user/confirmWithdrawal"),
            g("/api/v1/user/walletTransfer"),
        ],
        signer: || Arc::new(Bitmex),
    },
    ExchangeInfo {
        id: "bitfinex",
        encoding: SecretEncoding::Raw,
        algorithms: SHA384,
        asymmetric: false,
        binding: Binding::REQUEST.with("method", false).with("query", false),
        endpoint_from: EndpointFrom::Path,
        owned: "bfx-nonce (±skew), bfx-apikey",
        hosts: &["api.bitfinex.com"],
        guarded: &[
            g("/v2/auth/w/withdraw"),
            g("/v2/auth/w/transfer"),
            g("/v1/withdraw"),
            g("/v1/transfer"),
        ],
        signer: || Arc::new(Bitfinex),
    },
    ExchangeInfo {
        id: "gate",
        encoding: SecretEncoding::Raw,
        algorithms: SHA512,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "Timestamp (±skew), KEY",
        hosts: &["api.gateio.ws", "fx-api.gateio.ws"],
        guarded: &[
            g("/api/v4/withdrawals"),
            g("/api/v4/withdrawals/push"),
            g("/api/v4/wallet/transfers"),
            g("/api/v4/wallet/sub_account_transfers"),
            g("/api/v4/wallet/sub_account_to_sub_account"),
        ],
        signer: || Arc::new(Gate),
    },
    ExchangeInfo {
        id: "deribit",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST,
        endpoint_from: EndpointFrom::Path,
        owned: "ts (±skew), nonce, client id; the WebSocket form signs no data; every signature also opens a `public/auth` session (guarded)",
        hosts: &["www.deribit.com"],
        guarded: &[
            // Every Deribit signature (HTTP or WebSocket) also verifies as a `public/auth`
            // client signature, which opens a session with the key's full scope: guarded,
            // lifted only by `allow_withdrawals` or an exact `GET /api/v2/public/auth` entry
            // for a key whose Deribit scope has no wallet access.
            g("/api/v2/public/auth"),
            g("/api/v2/private/withdraw"),
            g("/api/v2/private/submit_transfer_to_subaccount"),
            g("/api/v2/private/submit_transfer_to_user"),
            g("/api/v2/private/submit_transfer_between_subaccounts"),
        ],
        signer: || Arc::new(Deribit),
    },
    ExchangeInfo {
        id: "htx",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST.with("host", true).with("body", false),
        endpoint_from: EndpointFrom::Path,
        owned: "Timestamp (±skew), AccessKeyId, host (documented hosts or test hosts)",
        hosts: &[
            "api.huobi.pro",
            "api-aws.huobi.pro",
            "api.htx.com",
            "api.hbdm.com",
        ],
        guarded: &[
            g("/v1/dw/withdraw/api/create"),
            g("/v1/account/transfer"),
            g("/v2/account/transfer"),
            g("/v1/futures/transfer"),
            g("/v1/subuser/transfer"),
            g("/v2/point/transfer"),
        ],
        signer: || Arc::new(Htx),
    },
    ExchangeInfo {
        id: "cryptocom",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST.with("path", false).with("query", false),
        endpoint_from: EndpointFrom::BodyMember("method"),
        owned: "nonce (±skew), api_key",
        hosts: &["api.crypto.com"],
        guarded: &[
            g("**/private/create-withdrawal"),
            g("**/private/create-subaccount-transfer"),
        ],
        signer: || Arc::new(CryptoCom),
    },
    ExchangeInfo {
        id: "bitstamp",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::REQUEST.with("host", true),
        endpoint_from: EndpointFrom::Path,
        owned: "X-Auth-Timestamp (±skew), X-Auth-Nonce (UUID), X-Auth, host",
        hosts: &["www.bitstamp.net"],
        guarded: &[
            g("/api/v2/*_withdrawal"),
            g("/api/v2/withdrawal/open"),
            g("/api/v2/transfer-to-main"),
            g("/api/v2/transfer-from-main"),
        ],
        signer: || Arc::new(Bitstamp),
    },
    ExchangeInfo {
        id: "mexc",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::PARAMS,
        endpoint_from: EndpointFrom::Params,
        owned: "timestamp (±skew), recvWindow (≤ TTL), X-MEXC-APIKEY",
        hosts: &["api.mexc.com"],
        guarded: MEXC_GUARDED,
        signer: || Arc::new(Mexc),
    },
    ExchangeInfo {
        id: "mexc-futures",
        encoding: SecretEncoding::Raw,
        algorithms: SHA256,
        asymmetric: false,
        binding: Binding::PARAMS,
        endpoint_from: EndpointFrom::Params,
        owned: "Request-Time (±skew), Recv-Window (≤ TTL), ApiKey",
        hosts: &["contract.mexc.com"],
        guarded: MEXC_GUARDED,
        signer: || Arc::new(MexcFutures),
    },
];

/// The entry for `id`.
pub fn info(id: &str) -> Option<&'static ExchangeInfo> {
    ALL.iter().find(|e| e.id == id)
}

/// The `docs/guardrails.md` table: one row per exchange id (checked by a unit test).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from(
        "| exchange id | the signature binds | the guard reads the endpoint from | inputs the crate owns or checks | guarded endpoints |\n|---|---|---|---|---|\n",
    );
    for e in ALL {
        let from = match e.endpoint_from {
            EndpointFrom::Path => "the signed path".to_owned(),
            EndpointFrom::BodyMember(m) => format!("body member `{m}` (must equal the path)"),
            EndpointFrom::Params => {
                "the parameter set (path not signed): every guarded endpoint whose required parameters are present".to_owned()
            }
            #[allow(unreachable_patterns)]
            _ => "?".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.id,
            e.binding.describe().replace(',', ", "),
            from,
            e.owned,
            e.guarded.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guardrails_doc_shows_the_registry() {
        let doc = include_str!("../../docs/guardrails.md");
        let begin = "<!-- exchange-table:begin -->\n";
        let end = "<!-- exchange-table:end -->";
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        let table = markdown_table();
        if doc[start..stop] != table {
            // Print the table to paste: `cargo test --lib the_guardrails_doc -- --nocapture`.
            println!("{table}");
            panic!("docs/guardrails.md's exchange table differs from the registry");
        }
    }

    #[test]
    fn every_id_is_listed_once_with_a_signer_and_hosts() {
        for (i, e) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|o| o.id != e.id), "{} twice", e.id);
            assert_eq!(e.signer().id(), e.id);
            assert!(!e.hosts.is_empty() && !e.guarded.is_empty(), "{}", e.id);
            let unbound = e.endpoint_from == EndpointFrom::Params;
            if e.endpoint_from != EndpointFrom::Path {
                assert!(!e.binding.path || !unbound, "{}", e.id);
            } else {
                assert!(e.binding.path, "{}", e.id);
            }
            assert!(!unbound || !e.binding.path, "{}", e.id);
            // Where the path is not signed, every guarded endpoint lists its parameters.
            assert!(
                !unbound || e.guarded.iter().all(|g| !g.required.is_empty()),
                "{}",
                e.id
            );
        }
    }
}
