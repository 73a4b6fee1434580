//! The `sign-request` CLI contract, for every exchange id: `key import --name N --exchange ID`
//! (secret on stdin, encoding from the exchange's profile), then
//! `sign-request --key N --exchange ID --request FILE.json` prints
//! `{"signature", "headers": {...}, "query", "body"}` with the exchange's documented signature.
//! Every vector of tests/data/exchange_vectors.json is replayed through the binary. The token is
//! written by the child processes only.

use std::collections::HashMap;
use std::process::Output;

use hsm_custody::exchanges;
use serde_json::Value;

use crate::common::{cli, fresh_token, TestToken};

fn import(t: &TestToken, name: &str, exchange: &str, secret: &str) {
    let out = cli(
        t,
        &["key", "import", "--name", name, "--exchange", exchange],
        Some(secret),
    );
    assert!(
        out.status.success(),
        "key import {exchange}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sign_request(t: &TestToken, key: &str, exchange: &str, request: &Value) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.json");
    std::fs::write(&file, request.to_string()).unwrap();
    cli(
        t,
        &[
            "sign-request",
            "--key",
            key,
            "--exchange",
            exchange,
            "--request",
            file.to_str().unwrap(),
        ],
        None,
    )
}

#[test]
fn sign_request_reproduces_every_vector_for_every_exchange_id() {
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("../data/exchange_vectors.json")).unwrap();
    let t = fresh_token("cli-sign-request");
    let mut keys: HashMap<(String, String), String> = HashMap::new();
    let mut covered = Vec::new();
    for v in &vectors {
        let ex = v["exchange"].as_str().unwrap();
        let secret = v["secret"].as_str().unwrap();
        let n = keys.len();
        let key = keys
            .entry((ex.to_owned(), secret.to_owned()))
            .or_insert_with(|| {
                let name = format!("cli-{n}");
                import(&t, &name, ex, secret);
                name
            })
            .clone();
        let out = sign_request(&t, &key, ex, &v["request"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            v["id"],
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("{}: output is not one JSON object ({e}): {stdout}", v["id"])
        });
        let obj = printed.as_object().expect("a JSON object");
        let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["body", "headers", "query", "signature"],
            "{}",
            v["id"]
        );
        assert_eq!(
            printed["signature"], v["expected_signature"],
            "{} ({})",
            v["id"], v["source"]
        );
        assert!(printed["headers"].is_object());
        assert!(printed["query"].is_string() && printed["body"].is_string());
        if let Some(q) = v["expected_query"].as_str() {
            assert_eq!(printed["query"], q, "{}", v["id"]);
        }
        if let Some(b) = v["expected_body"].as_str() {
            assert_eq!(printed["body"], b, "{}", v["id"]);
        }
        if let Some(p) = v["expected_payload"].as_str() {
            assert_eq!(printed["headers"]["X-GEMINI-PAYLOAD"], p, "{}", v["id"]);
        }
        covered.push(ex.to_owned());
    }
    for id in exchanges::IDS {
        assert!(covered.iter().any(|c| c == id), "no CLI vector for {id}");
    }
}

#[test]
fn sign_request_refuses_another_exchanges_key_and_unknown_ids() {
    let t = fresh_token("cli-wrong-exchange");
    import(
        &t,
        "kr",
        "kraken",
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==",
    );
    let req = serde_json::json!({"method": "GET", "path": "/api/v3/account", "timestamp": "1"});
    let out = sign_request(&t, "kr", "binance", &req);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bound to exchange `kraken`"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = sign_request(&t, "kr", "nosuchexchange", &req);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown exchange"), "{stderr}");
}
