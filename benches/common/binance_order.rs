//! The Binance spot order the `sign` and `footprint` benches sign, so that both measure the
//! same request and the same 110-byte message (included with `#[path]`; `benches/agent.rs`
//! has its own).

use hsm_custody::exchanges::Request;

/// A Binance spot order query as the signer completes it (timestamp appended): 110 bytes.
pub const BINANCE_QUERY: &str =
    "symbol=BTCFDUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=43250.10";
/// The timestamp of the raw rows' message.
pub const BINANCE_TS: &str = "1700000000000";
/// A public API key from Binance's documentation (sent in a header, never signed).
pub const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

/// The order as a request: the signer appends the timestamp and the signature.
pub fn binance_request() -> Request {
    Request::post("/api/v3/order")
        .query(BINANCE_QUERY)
        .api_key(API_KEY)
}

/// What the signer signs for the order with timestamp [`BINANCE_TS`]: 110 bytes.
pub fn binance_message() -> Vec<u8> {
    let msg = format!("{BINANCE_QUERY}&timestamp={BINANCE_TS}").into_bytes();
    assert_eq!(msg.len(), 110, "the Binance message is 110 bytes");
    msg
}
