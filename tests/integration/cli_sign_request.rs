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
    import_with(t, name, exchange, secret, None);
}

/// `key import`, recording `passphrase` with the key when given.
fn import_with(t: &TestToken, name: &str, exchange: &str, secret: &str, passphrase: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passphrase");
    let mut args = vec!["key", "import", "--name", name, "--exchange", exchange];
    if let Some(p) = passphrase {
        std::fs::write(&file, p).unwrap();
        args.extend(["--passphrase-file", file.to_str().unwrap()]);
    }
    let out = cli(t, &args, Some(secret));
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

/// A vector's request with every time it carries (field, or parameter in the query or body)
/// moved to now in the same format, so that the CLI, which signs with the system clock and
/// holds caller times to it, accepts it.
fn at_now(request: &Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // 2 s ahead (within the 5 s skew): the Binance WebSocket vectors carry `recvWindow=100`,
    // and the child process must start and sign before that window is past.
    let ms = now.as_millis() as u64 + 2_000;
    let digits = |len: usize| match len {
        10 => Some((ms / 1000).to_string()),
        13 => Some(ms.to_string()),
        16 => Some((ms * 1000).to_string()),
        19 => Some((ms * 1_000_000).to_string()),
        _ => None,
    };
    let shift = |t: &str| -> Option<String> {
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return digits(t.len());
        }
        if let Some((s, frac)) = t.split_once('.') {
            if s.len() == 10 && frac.bytes().all(|b| b.is_ascii_digit()) {
                return Some(format!("{}.{:03}", ms / 1000, ms % 1000));
            }
        }
        let d = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
        let iso = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        );
        match t.len() {
            19 if t.as_bytes()[10] == b'T' => Some(iso),
            24 if t.ends_with('Z') => Some(format!("{iso}.{:03}Z", ms % 1000)),
            _ => None,
        }
    };
    let mut out = request.clone();
    for k in ["timestamp", "nonce"] {
        let given = match &request[k] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if let Some(new) = given.as_deref().and_then(shift) {
            out[k] = Value::String(new);
        }
    }
    if request["expires"].is_string() {
        out["expires"] = Value::String((ms / 1000 + 30).to_string());
    }
    for field in ["query", "body"] {
        let Some(text) = request[field].as_str() else {
            continue;
        };
        let mut text = text.to_owned();
        for tag in ["timestamp=", "nonce=", "\"nonce\":", "\"nonce\": "] {
            if let Some(at) = text.find(tag) {
                let from = at + tag.len();
                let len = text[from..].bytes().take_while(u8::is_ascii_digit).count();
                if let Some(new) = digits(len) {
                    text.replace_range(from..from + len, &new);
                }
            }
        }
        out[field] = Value::String(text);
    }
    out
}

/// Every vector through the binary: the output contract, and the exchange's server model
/// verifies the printed signature (the published signatures themselves are reproduced with an
/// injected clock in `exchanges::`; the CLI signs with the system clock, so the vectors' times
/// are moved to now).
#[test]
fn sign_request_signs_every_vector_for_every_exchange_id() {
    use base64::Engine as _;
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("../data/exchange_vectors.json")).unwrap();
    let t = fresh_token("cli-sign-request");
    let mut keys: HashMap<(String, String, Option<String>), String> = HashMap::new();
    let mut covered = Vec::new();
    for v in &vectors {
        let ex = v["exchange"].as_str().unwrap();
        let secret = v["secret"].as_str().unwrap();
        // A passphrase the request carries is recorded with the key (it must equal it).
        let passphrase = v["request"]["passphrase"].as_str();
        let n = keys.len();
        let key = keys
            .entry((
                ex.to_owned(),
                secret.to_owned(),
                passphrase.map(str::to_owned),
            ))
            .or_insert_with(|| {
                let name = format!("cli-{n}");
                import_with(&t, &name, ex, secret, passphrase);
                name
            })
            .clone();
        let request = at_now(&v["request"]);
        let out = sign_request(&t, &key, ex, &request);
        if ex == "deribit" && !v["refused"].is_string() {
            // Every Deribit signature is also a `public/auth` session with the key's full
            // scope: with no configuration the withdrawal guard refuses it (exit 4).
            assert_eq!(
                out.status.code(),
                Some(4),
                "{}: {}",
                v["id"],
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("withdrawal-guard:deribit"),
                "{}: {stderr}",
                v["id"]
            );
            covered.push(ex.to_owned());
            continue;
        }
        if v["refused"].is_string() {
            // A request the crate will not sign: bad input (exit 2), nothing printed.
            assert_eq!(out.status.code(), Some(2), "{}", v["id"]);
            assert!(out.stdout.is_empty(), "{}", v["id"]);
            covered.push(ex.to_owned());
            continue;
        }
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
        assert!(printed["headers"].is_object());
        assert!(printed["query"].is_string() && printed["body"].is_string());
        let model = crate::model::model(ex);
        let http = crate::model::Http {
            method: request["method"].as_str().unwrap_or("").to_owned(),
            host: request["host"]
                .as_str()
                .map_or_else(|| model.host().to_owned(), str::to_ascii_lowercase),
            path: request["path"].as_str().unwrap_or("").to_owned(),
            query: printed["query"].as_str().unwrap().to_owned(),
            headers: printed["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect(),
            body: printed["body"].as_str().unwrap().to_owned(),
        };
        let key_bytes = if v["encoding"] == "base64" {
            base64::engine::general_purpose::STANDARD
                .decode(secret)
                .unwrap()
        } else {
            secret.as_bytes().to_vec()
        };
        assert!(
            model.verify(&http, &key_bytes),
            "{}: the {ex} model does not verify the CLI's signature: {http:?}",
            v["id"]
        );
        covered.push(ex.to_owned());
    }
    for id in exchanges::all_ids().filter(|id| *id != "coinbase-advanced") {
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

/// `--request -` reads the description from stdin and signs exactly what the same file signs;
/// a field the description format does not have is refused by name (exit 2), not dropped.
#[test]
fn sign_request_reads_stdin_and_refuses_unknown_fields() {
    let t = fresh_token("cli-sr-stdin");
    import(
        &t,
        "bn",
        "binance",
        "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let request = serde_json::json!({
        "method": "GET",
        "path": "/api/v3/order",
        "query": "symbol=BTCUSDT&orderId=1",
        "timestamp": now.to_string(),
    });
    let from_file = sign_request(&t, "bn", "binance", &request);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    let args = [
        "sign-request",
        "--key",
        "bn",
        "--exchange",
        "binance",
        "--request",
        "-",
    ];
    let from_stdin = cli(&t, &args, Some(&request.to_string()));
    assert!(
        from_stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&from_stdin.stderr)
    );
    assert_eq!(from_stdin.stdout, from_file.stdout);
    let signed: Value = serde_json::from_slice(&from_stdin.stdout).unwrap();
    assert!(
        signed["signature"].as_str().is_some_and(|s| s.len() == 64),
        "{signed}"
    );

    let mut misspelt = request.clone();
    misspelt["recvWindow"] = Value::from("5000");
    misspelt["apiKey"] = Value::from("k");
    for out in [
        sign_request(&t, "bn", "binance", &misspelt),
        cli(&t, &args, Some(&misspelt.to_string())),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("unknown request fields `apiKey`, `recvWindow` (known: method, path,"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// A policy refusal through the binary exits 4 and names the key, the method and endpoint
/// refused, the exchange and the rule, and never the query string it carried.
#[test]
fn policy_refusal_names_the_method_and_endpoint() {
    let t = fresh_token("cli-sr-denied");
    import(
        &t,
        "bn",
        "binance",
        "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let request = serde_json::json!({
        "method": "POST",
        "path": "/sapi/v1/capital/withdraw/apply",
        "query": "coin=BTC&address=bc1qexampleaddress&amount=1",
        "timestamp": now.to_string(),
    });
    let out = sign_request(&t, "bn", "binance", &request);
    assert_eq!(out.status.code(), Some(4), "policy refusal exit code");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "key `bn` may not sign POST /sapi/v1/capital/withdraw/apply on binance: \
             denied by rule `withdrawal-guard:binance`"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("bc1qexampleaddress"), "{stderr}");
}
