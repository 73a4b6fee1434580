//! The withdrawal guard: each supported exchange's endpoints that move funds out of the
//! account or between accounts (withdrawals, transfers, sub-account transfers, gift cards).
//!
//! Paths come from each exchange's REST documentation; `*` stands for one path segment (API
//! version, currency). Matching is case-insensitive and ignores the method, so an endpoint
//! cannot slip through with another spelling or verb. Beyond the table, any path whose text
//! contains `withdraw` or `transfer` (any case) is guarded too, for every exchange, including
//! endpoints added after this table was written and exchanges that have no table.

use std::sync::OnceLock;

use super::endpoint::EndpointPattern;

const BINANCE: &[&str] = &[
    "/sapi/*/capital/withdraw/apply",
    "/sapi/*/localentity/withdraw/apply",
    "/sapi/*/asset/transfer",
    "/sapi/*/futures/transfer",
    "/sapi/*/margin/transfer",
    "/sapi/*/margin/isolated/transfer",
    "/sapi/*/sub-account/universalTransfer",
    "/sapi/*/sub-account/transfer/subToMaster",
    "/sapi/*/sub-account/transfer/subToSub",
    "/sapi/*/sub-account/futures/transfer",
    "/sapi/*/sub-account/futures/internalTransfer",
    "/sapi/*/sub-account/margin/transfer",
    "/sapi/*/managed-subaccount/withdraw",
    "/sapi/*/giftcard/createCode",
    "/sapi/*/giftcard/buyCode",
    "/wapi/*/withdraw.html",
];
const KRAKEN: &[&str] = &[
    "/0/private/Withdraw",
    "/0/private/WalletTransfer",
    "/0/private/AccountTransfer",
];
const COINBASE_EXCHANGE: &[&str] = &[
    "/withdrawals/crypto",
    "/withdrawals/coinbase-account",
    "/withdrawals/payment-method",
    "/profiles/transfer",
];
const COINBASE_ADVANCED: &[&str] = &[
    "/api/v3/brokerage/portfolios/move_funds",
    "/v2/accounts/*/transactions",
    "/v2/accounts/*/withdrawals",
];
const OKX: &[&str] = &[
    "/api/v5/asset/withdrawal",
    "/api/v5/asset/withdrawal-lightning",
    "/api/v5/asset/transfer",
    "/api/v5/asset/subaccount/transfer",
    "/api/v5/fiat/create-withdrawal",
];
const BYBIT: &[&str] = &[
    "/v5/asset/withdraw/create",
    "/v5/asset/transfer/inter-transfer",
    "/v5/asset/transfer/universal-transfer",
    "/v5/asset/transfer/save-transfer-sub-member",
];
const BITGET: &[&str] = &[
    "/api/v2/spot/wallet/withdrawal",
    "/api/v2/spot/wallet/transfer",
    "/api/v2/spot/wallet/subaccount-transfer",
    "/api/spot/v1/wallet/withdrawal*",
    "/api/spot/v1/wallet/transfer*",
];
const KUCOIN: &[&str] = &[
    "/api/*/withdrawals",
    "/api/*/accounts/inner-transfer",
    "/api/*/accounts/sub-transfer",
    "/api/*/accounts/universal-transfer",
];
const GEMINI: &[&str] = &["/v1/withdraw/*", "/v1/account/transfer/*"];
const BITMEX: &[&str] = &[
    "/api/v1/user/requestWithdrawal",
    "/api/v1/user/confirmWithdrawal",
    "/api/v1/user/walletTransfer",
];
const BITFINEX: &[&str] = &[
    "/v2/auth/w/withdraw",
    "/v2/auth/w/transfer",
    "/v1/withdraw",
    "/v1/transfer",
];
const GATE: &[&str] = &[
    "/api/v4/withdrawals",
    "/api/v4/withdrawals/push",
    "/api/v4/wallet/transfers",
    "/api/v4/wallet/sub_account_transfers",
    "/api/v4/wallet/sub_account_to_sub_account",
];
const DERIBIT: &[&str] = &[
    "/api/v2/private/withdraw",
    "/api/v2/private/submit_transfer_to_subaccount",
    "/api/v2/private/submit_transfer_to_user",
    "/api/v2/private/submit_transfer_between_subaccounts",
];
const HTX: &[&str] = &[
    "/v1/dw/withdraw/api/create",
    "/v1/account/transfer",
    "/v2/account/transfer",
    "/v1/futures/transfer",
    "/v1/subuser/transfer",
    "/v2/point/transfer",
];
const CRYPTOCOM: &[&str] = &[
    "**/private/create-withdrawal",
    "**/private/create-subaccount-transfer",
];
const BITSTAMP: &[&str] = &[
    "/api/v2/*_withdrawal",
    "/api/v2/withdrawal/open",
    "/api/v2/transfer-to-main",
    "/api/v2/transfer-from-main",
];
const MEXC: &[&str] = &[
    "/api/v3/capital/withdraw",
    "/api/v3/capital/withdraw/apply",
    "/api/v3/capital/transfer",
    "/api/v3/capital/sub-account/universalTransfer",
];

/// The withdrawal and transfer endpoints guarded for `exchange` (empty for an id without a
/// table; the generic `withdraw`/`transfer` rule still applies to it).
pub fn withdrawal_endpoints(exchange: &str) -> &'static [&'static str] {
    match exchange {
        // One Binance key serves spot, USD-M and the WebSocket API: any of their signers can
        // build a spot withdrawal, so all three get the same table.
        "binance" | "binance-usdm" | "binance-ws" => BINANCE,
        "kraken" => KRAKEN,
        "coinbase-exchange" => COINBASE_EXCHANGE,
        "coinbase-advanced" => COINBASE_ADVANCED,
        "okx" => OKX,
        "bybit" => BYBIT,
        "bitget" => BITGET,
        "kucoin" => KUCOIN,
        "gemini" => GEMINI,
        "bitmex" => BITMEX,
        "bitfinex" => BITFINEX,
        "gate" => GATE,
        "deribit" => DERIBIT,
        "htx" => HTX,
        "cryptocom" => CRYPTOCOM,
        "bitstamp" => BITSTAMP,
        "mexc" | "mexc-futures" => MEXC,
        _ => &[],
    }
}

/// Whether the normalised `path` of a request to `exchange` moves funds.
pub(crate) fn is_withdrawal(exchange: &str, path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("withdraw") || lower.contains("transfer") {
        return true;
    }
    compiled(exchange).iter().any(|p| p.matches("", path))
}

fn compiled(exchange: &str) -> &'static [EndpointPattern] {
    static TABLES: OnceLock<Vec<(&'static str, Vec<EndpointPattern>)>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        crate::exchanges::all_ids()
            .map(|id| {
                let patterns = withdrawal_endpoints(id)
                    .iter()
                    // The table is a constant checked by the unit test below; a pattern that
                    // failed to compile would only make the generic rule carry that endpoint.
                    .filter_map(|p| EndpointPattern::parse_case_insensitive(p).ok())
                    .collect();
                (id, patterns)
            })
            .collect()
    });
    tables
        .iter()
        .find(|(id, _)| *id == exchange)
        .map(|(_, p)| p.as_slice())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_compiles_and_is_guarded() {
        // Every exchange the crate signs for has a withdrawal table: adding an id to
        // `exchanges::IDS` without one fails here.
        for id in crate::exchanges::all_ids() {
            assert!(
                !withdrawal_endpoints(id).is_empty(),
                "no withdrawal table for {id}"
            );
            for p in withdrawal_endpoints(id) {
                assert!(
                    EndpointPattern::parse_case_insensitive(p).is_ok(),
                    "{id}: {p}"
                );
            }
            assert_eq!(compiled(id).len(), withdrawal_endpoints(id).len(), "{id}");
        }
    }

    #[test]
    fn guard_catches_table_entries_and_generic_names() {
        assert!(is_withdrawal("kraken", "/0/private/Withdraw"));
        assert!(is_withdrawal("okx", "/api/v5/asset/withdrawal"));
        assert!(is_withdrawal("bitfinex", "/v2/auth/w/transfer"));
        assert!(is_withdrawal("binance", "/sapi/v1/giftcard/createCode"));
        assert!(is_withdrawal("binance", "/SAPI/V1/GIFTCARD/CREATECODE"));
        assert!(is_withdrawal("htx", "/v1/dw/withdraw/api/create"));
        assert!(is_withdrawal("someone-else", "/v9/moneyTransfer"));
        assert!(!is_withdrawal("binance", "/api/v3/order"));
        assert!(!is_withdrawal("kraken", "/0/private/AddOrder"));
    }
}
