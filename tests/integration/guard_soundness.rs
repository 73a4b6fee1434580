//! Issue 25 at the product level: the withdrawal guard with no configuration (library and
//! CLI), a withdrawal smuggled as an "order" on exchanges that do not sign the path, caller
//! time held to the crate's clock, the recorded API key and passphrase, and the audit line
//! recording what the signature can do.

use hsm_custody::exchanges::{Request, ALL};
use hsm_custody::{Error, KeySpec, SecretString};
use serde_json::Value;

use crate::common::{cli, fresh_token};
use crate::guardrails::{guarded, import};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn rule(err: &Error) -> &str {
    match err {
        Error::PolicyDenied { rule, .. } => rule,
        other => panic!("expected a policy refusal, got {other}"),
    }
}

/// Binance does not sign the path: an "order" whose parameters are a withdrawal's signs
/// exactly the withdrawal. With no guard rails installed at all, it is refused.
#[test]
fn a_withdrawal_smuggled_as_an_order_is_refused_with_no_configuration() {
    let t = fresh_token("sound-default");
    let c = t.connect();
    import(&c, "bn", "binance");
    let signer = c.exchange_signer("bn").unwrap();
    let order = Request::post("/api/v3/order")
        .query("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1");
    signer.sign(&order).expect("an ordinary order is signed");
    let smuggled = Request::post("/api/v3/order").query("coin=BTC&address=bc1qattacker&amount=1");
    let err = signer.sign(&smuggled).unwrap_err();
    assert_eq!(
        rule(&err),
        "withdrawal-guard:binance:/sapi/*/capital/withdraw/apply"
    );
    // Split between query and body, with the name cut at the boundary: still refused.
    let split = Request::post("/api/v3/order")
        .query("coin=BTC&amount=1&xaddress")
        .body("=bc1q");
    assert!(signer.sign(&split).is_err());
    // And the named withdrawal endpoint itself, of course.
    let named = Request::post("/sapi/v1/capital/withdraw/apply").query("coin=BTC");
    assert_eq!(
        rule(&signer.sign(&named).unwrap_err()),
        "withdrawal-guard:binance"
    );
}

/// COIN-M futures (`binance-coinm`) share the spot key and do not sign the path: a `/dapi/`
/// "order" whose parameters are a spot transfer's (how money leaves the COIN-M wallet) signs
/// that transfer at `api.binance.com`. With no guard rails, it is refused, whichever transfer.
#[test]
fn a_transfer_smuggled_as_a_coinm_order_is_refused_with_no_configuration() {
    let t = fresh_token("sound-coinm");
    let c = t.connect();
    import(&c, "cm", "binance-coinm");
    let signer = c.exchange_signer("cm").unwrap();
    let order = Request::post("/dapi/v1/order")
        .query("symbol=BTCUSD_PERP&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1");
    signer
        .sign(&order)
        .expect("an ordinary COIN-M order is signed");
    for (params, endpoints) in [
        // COIN-M wallet to spot: ccxt's `binancecoinm.transfer_out` (futures/transfer, type 4),
        // or the universal transfer (`CMFUTURE_MAIN`); the two take the same parameter names.
        // The guard names the first guarded endpoint the parameters reach (`fromAccountType`,
        // cut at its front, is also `type`).
        (
            "asset=BTC&amount=1&type=4",
            &["/sapi/*/futures/transfer", "/sapi/*/asset/transfer"][..],
        ),
        (
            "fromAccountType=COIN_FUTURE&toAccountType=SPOT&asset=BTC&amount=1",
            &[
                "/sapi/*/sub-account/universalTransfer",
                "/sapi/*/asset/transfer",
            ][..],
        ),
        (
            "coin=BTC&address=bc1qattacker&amount=1",
            &["/sapi/*/capital/withdraw/apply"][..],
        ),
    ] {
        let smuggled = Request::post("/dapi/v1/order").query(params);
        let err = signer.sign(&smuggled).unwrap_err();
        let got = rule(&err);
        assert!(
            endpoints
                .iter()
                .any(|e| got == format!("withdrawal-guard:binance-coinm:{e}")),
            "{params}: {got}"
        );
        // The boundary moved into a name (`xamount` is read as `amount`): still refused.
        let (head, tail) = params.split_once("amount").unwrap();
        let split = Request::post("/dapi/v1/order")
            .query(format!("{head}x"))
            .body(format!("amount{tail}"));
        assert!(signer.sign(&split).is_err(), "{params} split");
    }
}

/// Every exchange id, with no guard rails: the guarded endpoints of its table are refused.
#[test]
fn every_exchange_refuses_its_named_withdrawal_endpoint_by_default() {
    let t = fresh_token("sound-every");
    let c = t.connect();
    let mut refused = 0;
    for e in ALL.iter().filter(|e| !e.algorithms.is_empty()) {
        import(&c, e.id, e.id);
        let signer = c.exchange_signer(e.id).unwrap();
        for g in e.guarded {
            let path = g.path.replace("**", "exchange/v1").replace('*', "v1");
            let err = signer.sign(&Request::post(&path)).unwrap_err();
            // Refused by the guard, or before it by the exchange's grammar: never signed.
            assert!(
                matches!(
                    err,
                    Error::PolicyDenied { .. } | Error::RequestRefused { .. }
                ),
                "{} {path}: {err}",
                e.id
            );
            refused += 1;
        }
    }
    assert!(refused > 60, "{refused}");
}

/// A caller's timestamp far from the crate's clock is refused: no signature valid far into the
/// future (or the past); within the skew it is used as given.
#[test]
fn caller_time_is_held_to_the_crates_clock() {
    let t = fresh_token("sound-time");
    let c = t.connect();
    import(&c, "okx", "okx");
    import(&c, "bybit", "bybit");
    let bybit = c.exchange_signer("bybit").unwrap();
    let future = (now_ms() + 3_600_000).to_string();
    let req = Request::get("/v5/order/realtime")
        .query("category=spot")
        .api_key("bybit-key")
        .timestamp(future);
    let err = bybit.sign(&req).unwrap_err();
    assert!(
        matches!(&err, Error::RequestRefused { field, .. } if field == "timestamp"),
        "{err}"
    );
    let near = (now_ms() + 1_000).to_string();
    let req = Request::get("/v5/order/realtime")
        .query("category=spot")
        .api_key("bybit-key")
        .timestamp(near.clone());
    let signed = bybit.sign(&req).unwrap();
    assert_eq!(signed.header("X-BAPI-TIMESTAMP"), Some(near.as_str()));
}

/// The API key and passphrase recorded with a key version are sent, and a request naming
/// others is refused.
#[test]
fn recorded_credentials_are_the_only_ones_signed() {
    let t = fresh_token("sound-creds");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("okx")
            .exchange("okx")
            .algorithms(&[hsm_custody::HmacAlg::HmacSha256])
            .api_key("okx-api-key-1")
            .passphrase(SecretString::from("Pass-Phrase-1")),
        SecretString::from("okx-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123"),
    )
    .unwrap();
    let okx = c.exchange_signer("okx").unwrap();
    let order = Request::post("/api/v5/trade/order").body(r#"{"instId":"BTC-USDT"}"#);
    let signed = okx.sign(&order).unwrap();
    assert_eq!(signed.header("OK-ACCESS-KEY"), Some("okx-api-key-1"));
    assert_eq!(signed.header("OK-ACCESS-PASSPHRASE"), Some("Pass-Phrase-1"));
    for bad in [
        order.clone().api_key("someone-else"),
        order.clone().passphrase("guess"),
    ] {
        let err = okx.sign(&bad).unwrap_err();
        assert!(matches!(err, Error::RequestRefused { .. }), "{err}");
    }
    // Neither the passphrase nor the metadata's Debug prints it.
    assert!(!format!("{okx:?}").contains("Pass-Phrase-1"));
}

/// The audit line records the endpoint the exchange executes, what the signature binds and,
/// where the path is not signed, the parameters the exchange reads.
#[test]
fn the_audit_line_records_what_the_signature_can_do() {
    let (_t, c, guard, _dir) = guarded("sound-audit", "[keys.\"*\"]\n");
    import(&c, "bn", "binance");
    let signer = c.exchange_signer("bn").unwrap();
    signer
        .sign(
            &Request::post("/api/v3/order").query("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1"),
        )
        .unwrap();
    let _ = signer.sign(&Request::post("/api/v3/order").query("coin=BTC&address=a&amount=1"));
    guard.sync().unwrap();
    let text = std::fs::read_to_string(guard.audit_path()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["event"] == "sign")
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["binding"], "query,body,time");
    assert_eq!(
        lines[0]["params"],
        serde_json::json!(["quantity", "side", "symbol", "timestamp", "type"])
    );
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(
        lines[1]["rule"],
        "withdrawal-guard:binance:/sapi/*/capital/withdraw/apply"
    );
}

/// `sign-request` with no configuration: a Binance withdrawal is refused with exit code 4 (a
/// guard refusal, distinct from bad input's 2), naming the rule.
#[test]
fn cli_sign_request_refuses_a_withdrawal_with_no_config() {
    let t = fresh_token("sound-cli");
    let out = cli(
        &t,
        &["key", "import", "--name", "bn", "--exchange", "binance"],
        Some("cli-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("req.json");
    let sign = |req: &Value| {
        std::fs::write(&file, req.to_string()).unwrap();
        cli(
            &t,
            &[
                "sign-request",
                "--key",
                "bn",
                "--exchange",
                "binance",
                "--request",
                file.to_str().unwrap(),
            ],
            None,
        )
    };
    let out = sign(&serde_json::json!({
        "method": "POST", "path": "/sapi/v1/capital/withdraw/apply",
        "query": "coin=BTC&address=bc1q&amount=1"}));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("withdrawal-guard:binance"), "{stderr}");
    assert!(out.stdout.is_empty());
    // The same withdrawal named as an order.
    let out = sign(&serde_json::json!({
        "method": "POST", "path": "/api/v3/order", "query": "coin=BTC&address=bc1q&amount=1"}));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bad input is 2, not 4.
    let out = sign(&serde_json::json!({"method": "POST", "path": "/api/v3/../order"}));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An ordinary order goes through.
    let out = sign(&serde_json::json!({
        "method": "POST", "path": "/api/v3/order", "query": "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1"}));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
