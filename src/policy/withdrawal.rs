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
use crate::exchanges::{Guarded, Reach};

/// The withdrawal and transfer endpoints guarded for `exchange` (empty for an id the crate does
/// not know; the generic `withdraw`/`transfer` rule still applies to it), from the exchange
/// registry ([`crate::exchanges::ALL`]).
pub fn withdrawal_endpoints(exchange: &str) -> &'static [Guarded] {
    crate::exchanges::info(exchange).map_or(&[], |e| e.guarded)
}

/// Whether the normalised `path` of a request to `exchange` moves funds.
pub(crate) fn is_withdrawal(exchange: &str, path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("withdraw") || lower.contains("transfer") {
        return true;
    }
    compiled(exchange).iter().any(|(p, _)| p.matches("", path))
}

/// The guarded endpoints of `exchange` whose required parameters `reach` carries: where the
/// exchange does not sign the path, its signature is good at each of them.
pub(crate) fn reached<'a>(
    exchange: &str,
    reach: &'a Reach,
) -> impl Iterator<Item = &'static (EndpointPattern, Guarded)> + 'a {
    compiled(exchange).iter().filter(move |(_, g)| {
        !g.required.is_empty() && g.required.iter().all(|name| reach.carries(name))
    })
}

fn compiled(exchange: &str) -> &'static [(EndpointPattern, Guarded)] {
    type Table = Vec<(EndpointPattern, Guarded)>;
    static TABLES: OnceLock<Vec<(&'static str, Table)>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        crate::exchanges::ALL
            .iter()
            .map(|e| {
                let patterns = e
                    .guarded
                    .iter()
                    // The table is a constant checked by the unit test below; a pattern that
                    // failed to compile would only make the generic rule carry that endpoint.
                    .filter_map(|g| {
                        EndpointPattern::parse_case_insensitive(g.path)
                            .ok()
                            .map(|p| (p, *g))
                    })
                    .collect();
                (e.id, patterns)
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
        // `exchanges::ALL` without one fails here.
        for id in crate::exchanges::all_ids() {
            assert!(
                !withdrawal_endpoints(id).is_empty(),
                "no withdrawal table for {id}"
            );
            for g in withdrawal_endpoints(id) {
                assert!(
                    EndpointPattern::parse_case_insensitive(g.path).is_ok(),
                    "{id}: {}",
                    g.path
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
