//! What a ccxt bot needs to reach the gateway without `proxyUrl` (broken in ccxt for Python
//! 4.5.90): its exchange's `urls["api"]` tree with every routed host's URLs rewritten to the
//! gateway's base-URL form (`https://api.binance.com/api/v3` becomes
//! `http://127.0.0.1:8787/binance/api/v3`). The tree comes from ccxt itself, so it is exact for
//! the installed ccxt; `hsm-custody gateway ccxt-config` and the Python package's
//! `hsm_custody.gateway.ccxt_config` print or return it for ccxt's constructor (freqtrade:
//! `ccxt_config`).

use serde_json::Value;

use super::config::GatewayConfig;

/// The ccxt exchange id for a crate exchange id (where they differ), or the id itself.
pub fn ccxt_id(exchange: &str) -> &str {
    match exchange {
        "binance-usdm" => "binanceusdm",
        "binance-coinm" => "binancecoinm",
        "coinbase-advanced" => "coinbase",
        "coinbase-exchange" => "coinbaseexchange",
        "mexc-futures" => "mexc",
        other => other,
    }
}

impl GatewayConfig {
    /// `tree` (ccxt's `urls["api"]`) with every URL that a route serves (its host, and its path
    /// under the route's `path_prefix`) rewritten to `<gateway>/<route name>/<path>`; other URLs
    /// unchanged. `gateway` is the gateway's URL
    /// (`http://127.0.0.1:8787`).
    pub fn rewrite_ccxt_urls(&self, tree: &Value, gateway: &str) -> Value {
        match tree {
            Value::String(url) => Value::String(self.rewrite_url(url, gateway)),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.rewrite_ccxt_urls(v, gateway)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.rewrite_ccxt_urls(v, gateway))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn rewrite_url(&self, url: &str, gateway: &str) -> String {
        let Some(rest) = url.strip_prefix("https://") else {
            return url.to_owned();
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let host = rest[..end].trim_end_matches(":443").to_ascii_lowercase();
        let path_end = rest[end..].find('?').map_or(rest.len(), |i| end + i);
        let path = match &rest[end..path_end] {
            "" => "/",
            p => p,
        };
        match self.route_for(&host, path) {
            Some(route) => format!(
                "{}/{}{}",
                gateway.trim_end_matches('/'),
                route.name,
                &rest[end..]
            ),
            None => url.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Route;
    use super::*;

    #[test]
    fn routed_hosts_are_rewritten_and_others_kept() {
        let config = GatewayConfig::new("127.0.0.1:8787".parse().unwrap())
            .route(Route::new("api.binance.com", "binance", "k").named("binance"));
        let tree = serde_json::json!({
            "public": "https://api.binance.com/api/v3",
            "fapiPublic": "https://fapi.binance.com/fapi/v1",
            "nested": {"x": "https://api.binance.com"}
        });
        let out = config.rewrite_ccxt_urls(&tree, "http://127.0.0.1:8787/");
        assert_eq!(out["public"], "http://127.0.0.1:8787/binance/api/v3");
        assert_eq!(out["fapiPublic"], "https://fapi.binance.com/fapi/v1");
        assert_eq!(out["nested"]["x"], "http://127.0.0.1:8787/binance");
    }

    #[test]
    fn a_path_prefix_route_takes_its_urls_of_a_shared_host() {
        let config = GatewayConfig::new("127.0.0.1:8787".parse().unwrap())
            .route(Route::new("api.mexc.com", "mexc", "s").named("mexc"))
            .route(
                Route::new("api.mexc.com", "mexc-futures", "f")
                    .named("mexc-futures")
                    .under("/api/v1/private"),
            );
        let tree = serde_json::json!({
            "spot": {"private": "https://api.mexc.com"},
            "contract": {
                "public": "https://api.mexc.com/api/v1/contract",
                "private": "https://api.mexc.com/api/v1/private"
            }
        });
        let out = config.rewrite_ccxt_urls(&tree, "http://127.0.0.1:8787");
        assert_eq!(out["spot"]["private"], "http://127.0.0.1:8787/mexc");
        assert_eq!(
            out["contract"]["public"],
            "http://127.0.0.1:8787/mexc/api/v1/contract"
        );
        assert_eq!(
            out["contract"]["private"],
            "http://127.0.0.1:8787/mexc-futures/api/v1/private"
        );
    }
}
