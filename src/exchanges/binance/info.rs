//! The registry entries of Binance's four ids, and the endpoints that move funds: one API key
//! serves spot, USD-M and COIN-M futures and the WebSocket API, so the four share one table.
//!
//! COIN-M (`dapi.binance.com`, `/dapi/...`) has no endpoint of its own that moves funds out of the
//! account (its REST reference lists orders, positions, leverage, margin type, isolated position
//! margin, listen keys and history: Binance's COIN-M futures REST API pages, as indexed by
//! binance-connector-php's `derivatives-trading-coin-futures` endpoint list, and ccxt 4.5.90's
//! `dapiPrivate` table); money moves in and out of the COIN-M wallet through the spot API's
//! `/sapi/v1/futures/transfer` (types 3 and 4, as ccxt's `binancecoinm.transfer_in`/`transfer_out`
//! use it) and `/sapi/v1/asset/transfer` (`MAIN_CMFUTURE`, `CMFUTURE_MAIN`), both in this table.
//! And since the path is not signed, a COIN-M signature is good at those spot endpoints anyway.

use std::sync::Arc;

use super::super::registry::{gp, ExchangeInfo, Guarded, SHA256};
use super::super::{Binding, EndpointFrom};
use super::{Binance, BinanceWs};
use crate::keys::SecretEncoding;

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

/// Binance's spot API hosts.
const BINANCE_HOSTS: &[&str] = &[
    "api.binance.com",
    "api1.binance.com",
    "api2.binance.com",
    "api3.binance.com",
    "api4.binance.com",
    "api-gcp.binance.com",
];

/// The registry entry of `binance` (listed in [`crate::exchanges::ALL`]).
pub(in crate::exchanges) static SPOT_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance",
    key_family: "binance",
    ccxt: &["binance"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), X-MBX-APIKEY",
    hosts: BINANCE_HOSTS,
    guarded: BINANCE_GUARDED,
    signer: || Arc::new(Binance::spot()),
};

/// The registry entry of `binance-usdm` (listed in [`crate::exchanges::ALL`]).
pub(in crate::exchanges) static USDM_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance-usdm",
    key_family: "binance",
    ccxt: &["binanceusdm"],
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
};

/// The registry entry of `binance-coinm` (listed in [`crate::exchanges::ALL`]).
pub(in crate::exchanges) static COINM_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance-coinm",
    key_family: "binance",
    ccxt: &["binancecoinm"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), X-MBX-APIKEY",
    hosts: &["dapi.binance.com"],
    // As USD-M: one key, the path not signed, so the spot table (see the module doc).
    guarded: BINANCE_GUARDED,
    signer: || Arc::new(Binance::coinm()),
};

/// The registry entry of `binance-ws` (listed in [`crate::exchanges::ALL`]).
pub(in crate::exchanges) static WS_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance-ws",
    key_family: "binance",
    ccxt: &[],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS.with("body", false),
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), apiKey",
    hosts: &["ws-api.binance.com"],
    guarded: BINANCE_GUARDED,
    signer: || Arc::new(BinanceWs),
};
