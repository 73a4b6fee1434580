//! Exchange signers with asymmetric keys generated in (or imported into) a real token: Binance
//! Ed25519/RSA (REST spot and USD-M, WebSocket API), Bybit RSA, Coinbase Advanced Trade JWT
//! (ES256, EdDSA). Every signature is checked with an independent software verifier
//! (ed25519-dalek, p256, rsa) and the public key exported from the token as SPKI PEM; Ed25519 is
//! deterministic, so an imported RFC 8032 key gives known answers.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hsm_custody::exchanges::{
    percent_encode, BinanceFixLogon, ExchangeSigner, FixedNonce, Request, SignedRequest,
};
use hsm_custody::{Custody, Error, Guard, HmacAlg, KeyKind, KeySpec, SecretString, SignContext};
use serde_json::Value;
use sha2::Digest as _;

use crate::common::{cli, fresh_token, TestToken};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Binance's documented HMAC example (binance-spot-rest-hmac-1).
const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const BINANCE_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const BINANCE_HMAC: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

/// RFC 8032 section 7.1, TEST 1.
const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC8032_SIG_EMPTY: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

fn binance_order() -> Request {
    Request::post("/api/v3/order")
        .query("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1")
        .recv_window("5000")
        .timestamp("1499827319559")
        .api_key(BINANCE_API_KEY)
}

fn generate(c: &Custody, name: &str, exchange: &str, kind: KeyKind) -> String {
    c.generate_key(KeySpec::asymmetric(name).exchange(exchange), kind)
        .unwrap_or_else(|e| panic!("generate {kind} for {exchange}: {e}"));
    c.key(name).unwrap().public_key_pem().unwrap()
}

thread_local! {
    /// The test's clock (each test runs on its own thread): the crate holds a request's
    /// timestamp to its clock, so a test that signs a documented timestamp sets the clock near
    /// it with [`at`].
    static CLOCK_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(1_700_000_000_000) };
}

/// Sets this test's clock to 1 s after `ms`.
fn at(ms: u64) {
    CLOCK_MS.with(|c| c.set(ms + 1000));
}

struct TestClock;

impl hsm_custody::exchanges::Clock for TestClock {
    fn now_ms(&self) -> u64 {
        CLOCK_MS.with(std::cell::Cell::get)
    }
}

fn signer(c: &Custody, name: &str, exchange: &str) -> ExchangeSigner {
    c.exchange_signer_for(name, exchange)
        .unwrap()
        .with_clock(TestClock)
        .with_nonces(FixedNonce(42))
}

/// `(payload, wire signature)` of a query or body that ends in `&signature=...`.
fn split_signed(s: &str) -> (&str, &str) {
    s.rsplit_once("&signature=")
        .unwrap_or_else(|| panic!("no signature in `{s}`"))
}

fn verify_ed25519(pem: &str, msg: &[u8], sig: &[u8]) {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem).expect("Ed25519 SPKI PEM");
    let sig = ed25519_dalek::Signature::from_slice(sig).expect("64-byte Ed25519 signature");
    key.verify_strict(msg, &sig)
        .expect("Ed25519 signature verifies with the exported public key");
}

fn verify_rsa(pem: &str, msg: &[u8], sig: &[u8]) {
    use rsa::pkcs8::DecodePublicKey as _;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem).expect("RSA SPKI PEM");
    assert_eq!(sig.len(), 256, "RSA-2048 signature length");
    key.verify(
        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        &sha2::Sha256::digest(msg),
        sig,
    )
    .expect("RSA PKCS#1 v1.5 SHA-256 signature verifies with the exported public key");
}

fn verify_p256(pem: &str, msg: &[u8], sig: &[u8]) {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem).expect("P-256 SPKI PEM");
    assert_eq!(sig.len(), 64, "ES256 is raw r||s, 64 bytes");
    let sig = p256::ecdsa::Signature::from_slice(sig).expect("r||s");
    key.verify(msg, &sig)
        .expect("ES256 signature verifies with the exported public key");
}

/// Checks a Binance REST request signed with an asymmetric key: base64 signature, percent-encoded
/// on the wire, over `payload`; returns the decoded signature.
fn binance_rest_signature(signed: &SignedRequest<'_>, in_body: bool) -> (String, Vec<u8>) {
    let (payload, wire) = if in_body {
        split_signed(&signed.body)
    } else {
        split_signed(&signed.query)
    };
    assert_eq!(
        wire,
        percent_encode(&signed.signature),
        "percent-encoded on the wire"
    );
    let sig = B64
        .decode(&signed.signature)
        .expect("the signature is base64");
    let total = if in_body {
        format!("{}{payload}", signed.query)
    } else {
        format!("{payload}{}", signed.body)
    };
    (total, sig)
}

/// Binance spot REST with Ed25519 and RSA keys generated in the token: the payload is the one
/// whose HMAC is Binance's published example, the base64 signatures verify with the exported
/// PEM (query and form body), and USD-M futures and the WebSocket API take the same keys.
#[test]
fn binance_ed25519_and_rsa_sign_the_hmac_payload_and_verify_with_the_exported_pem() {
    let t = fresh_token("asym-binance");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("bn-hmac")
            .exchange("binance")
            .algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from(BINANCE_SECRET),
    )
    .unwrap();
    let ed_pem = generate(&c, "bn-ed", "binance", KeyKind::Ed25519);
    let rsa_pem = generate(&c, "bn-rsa", "binance", KeyKind::Rsa2048);

    let order = binance_order();
    at(1_499_827_319_559);
    let hmac = signer(&c, "bn-hmac", "binance").sign(&order).unwrap();
    assert_eq!(hmac.signature, BINANCE_HMAC, "the documented HMAC example");
    let (hmac_payload, _) = split_signed(&hmac.query);

    for (name, pem, verify) in [
        ("bn-ed", &ed_pem, verify_ed25519 as fn(&str, &[u8], &[u8])),
        ("bn-rsa", &rsa_pem, verify_rsa),
    ] {
        // Query string.
        at(1_499_827_319_559);
        let signed = signer(&c, name, "binance").sign(&order).unwrap();
        let (payload, sig) = binance_rest_signature(&signed, false);
        assert_eq!(payload, hmac_payload, "{name}: same payload as HMAC");
        verify(pem, payload.as_bytes(), &sig);
        assert_eq!(signed.header("X-MBX-APIKEY"), Some(BINANCE_API_KEY));

        // Form body.
        let form = Request::post("/api/v3/order")
            .body("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1")
            .timestamp("1499827319559");
        at(1_499_827_319_559);
        let signed = signer(&c, name, "binance").sign(&form).unwrap();
        let (payload, sig) = binance_rest_signature(&signed, true);
        assert_eq!(
            payload,
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&timestamp=1499827319559"
        );
        verify(pem, payload.as_bytes(), &sig);

        // USD-M futures: same key, same scheme.
        let futures = Request::post("/fapi/v1/order")
            .query("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01")
            .timestamp("1591702613943");
        at(1_591_702_613_943);
        let signed = signer(&c, name, "binance-usdm").sign(&futures).unwrap();
        let (payload, sig) = binance_rest_signature(&signed, false);
        assert_eq!(
            payload,
            "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&timestamp=1591702613943"
        );
        verify(pem, payload.as_bytes(), &sig);

        // WebSocket API: sorted parameters, raw base64 in the JSON params.
        let ws = Request::default()
            .query("symbol=BTCUSDT&side=SELL&type=LIMIT")
            .api_key("K")
            .timestamp("1655971200000");
        at(1_655_971_200_000);
        let signed = signer(&c, name, "binance-ws").sign(&ws).unwrap();
        let (payload, raw) = split_signed(&signed.query);
        assert_eq!(
            payload,
            "apiKey=K&side=SELL&symbol=BTCUSDT&timestamp=1655971200000&type=LIMIT"
        );
        assert_eq!(
            raw, signed.signature,
            "not percent-encoded in the WebSocket API"
        );
        verify(pem, payload.as_bytes(), &B64.decode(raw).unwrap());
    }

    // Binance takes no ECDSA keys.
    generate(&c, "bn-p256", "binance", KeyKind::P256);
    at(1_499_827_319_559);
    let err = signer(&c, "bn-p256", "binance")
        .sign(&binance_order())
        .unwrap_err();
    assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
}

/// An Ed25519 key imported from the RFC 8032 TEST 1 seed gives the RFC's signature of the empty
/// message, and through the Binance path exactly ed25519-dalek's signature with the same seed.
#[test]
fn exchanges_rfc8032_key_gives_known_answers_through_the_binance_ed25519_path() {
    let t = fresh_token("asym-rfc8032");
    let c = t.connect();
    let seed = hex::decode(RFC8032_SEED).unwrap();
    c.import_ed25519_key(
        KeySpec::asymmetric("rfc8032").exchange("binance"),
        SecretString::from(B64.encode(&seed)),
    )
    .unwrap();
    let key = c.key("rfc8032").unwrap();
    assert_eq!(key.kind(), KeyKind::Ed25519);
    assert_eq!(
        hex::encode(key.sign(b"").unwrap().as_bytes()),
        RFC8032_SIG_EMPTY
    );
    {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        let pem = key.public_key_pem().unwrap();
        let public = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).unwrap();
        assert_eq!(hex::encode(public.to_bytes()), RFC8032_PUBLIC);
    }

    let order = binance_order();
    at(1_499_827_319_559);
    let signed = signer(&c, "rfc8032", "binance").sign(&order).unwrap();
    let (payload, sig) = binance_rest_signature(&signed, false);
    let reference = {
        use ed25519_dalek::Signer as _;
        let seed: [u8; 32] = seed.as_slice().try_into().unwrap();
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .sign(payload.as_bytes())
            .to_bytes()
    };
    assert_eq!(sig, reference.to_vec(), "token Ed25519 == software Ed25519");
    assert_eq!(signed.signature, B64.encode(reference));

    // FIX Logon<A>: Ed25519 over the SOH-joined fields, base64 for RawData(96).
    let logon = BinanceFixLogon {
        sender_comp_id: "EXAMPLE",
        target_comp_id: "SPOT",
        msg_seq_num: 1,
        sending_time: "20240627-11:17:25.223",
    };
    let payload = "A\u{1}EXAMPLE\u{1}SPOT\u{1}1\u{1}20240627-11:17:25.223";
    assert_eq!(logon.payload(), payload);
    let reference = {
        use ed25519_dalek::Signer as _;
        let seed: [u8; 32] = seed.as_slice().try_into().unwrap();
        ed25519_dalek::SigningKey::from_bytes(&seed).sign(payload.as_bytes())
    };
    assert_eq!(logon.sign(&key).unwrap(), B64.encode(reference.to_bytes()));
    // FIX takes Ed25519 keys only.
    generate(&c, "fix-rsa", "binance", KeyKind::Rsa2048);
    let err = logon.sign(&c.key("fix-rsa").unwrap()).unwrap_err();
    assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
}

/// Bybit v5 with an RSA key: X-BAPI-SIGN is base64 RSA-SHA256 over timestamp || key || window ||
/// payload (query for GET, body for POST); no signature-type header; Ed25519 is refused.
#[test]
fn exchanges_bybit_rsa_signature_verifies_with_the_exported_pem() {
    let t = fresh_token("asym-bybit");
    let c = t.connect();
    let pem = generate(&c, "by-rsa", "bybit", KeyKind::Rsa2048);
    let get = Request::get("/v5/order/realtime")
        .query("category=linear&symbol=BTCUSDT")
        .api_key("XXXXXXXXXX")
        .timestamp("1658384314791");
    let post = Request::post("/v5/order/create")
        .body(r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.01"}"#)
        .api_key("XXXXXXXXXX")
        .recv_window("20000")
        .timestamp("1658385579423");
    for (req, prehash) in [
        (
            &get,
            "1658384314791XXXXXXXXXX5000category=linear&symbol=BTCUSDT".to_owned(),
        ),
        (
            &post,
            format!(
                "1658385579423XXXXXXXXXX20000{}",
                post.body.as_deref().unwrap()
            ),
        ),
    ] {
        at(req.timestamp.as_deref().unwrap().parse().unwrap());
        let signed = signer(&c, "by-rsa", "bybit").sign(req).unwrap();
        assert_eq!(
            signed.header("X-BAPI-SIGN"),
            Some(signed.signature.as_str())
        );
        assert_eq!(signed.header("X-BAPI-SIGN-TYPE"), None);
        verify_rsa(
            &pem,
            prehash.as_bytes(),
            &B64.decode(&signed.signature).unwrap(),
        );
    }
    generate(&c, "by-ed", "bybit", KeyKind::Ed25519);
    at(1_658_384_314_791);
    let err = signer(&c, "by-ed", "bybit").sign(&get).unwrap_err();
    assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
}

/// Decodes a JWT: (header, claims, signing input, signature bytes).
fn decode_jwt(jwt: &str) -> (Value, Value, String, Vec<u8>) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {jwt}");
    let json = |p: &str| -> Value {
        serde_json::from_slice(&B64URL.decode(p).expect("base64url without padding")).expect("JSON")
    };
    (
        json(parts[0]),
        json(parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        B64URL.decode(parts[2]).expect("base64url signature"),
    )
}

fn check_jwt(
    signed: &SignedRequest<'_>,
    alg: &str,
    kid: &str,
    nonce: &str,
    nbf: u64,
    uri: &str,
) -> (String, Vec<u8>) {
    let jwt = &signed.signature;
    assert_eq!(
        signed.header("Authorization").map(str::to_owned),
        Some(format!("Bearer {jwt}"))
    );
    let (header, claims, input, sig) = decode_jwt(jwt);
    assert_eq!(
        header,
        serde_json::json!({"alg": alg, "kid": kid, "nonce": nonce, "typ": "JWT"})
    );
    assert_eq!(
        claims,
        serde_json::json!({"sub": kid, "iss": "cdp", "nbf": nbf, "exp": nbf + 60, "uri": uri})
    );
    assert_eq!(sig.len(), 64);
    (input, sig)
}

/// Coinbase Advanced Trade: the JWT built and signed in the token has the documented header and
/// claims, and verifies with the exported public key, for ES256 (raw r||s) and EdDSA (generated
/// and CDP-imported seed||public keys). Time and nonce come from the injected clock and source.
#[test]
fn exchanges_coinbase_advanced_jwt_es256_and_eddsa_verify_with_the_exported_key() {
    let t = fresh_token("asym-coinbase");
    let c = t.connect();
    let kid = "organizations/0f1e2d3c/apiKeys/4b5a6978";
    let p256_pem = generate(&c, "cb-p256", "coinbase-advanced", KeyKind::P256);
    let ed_pem = generate(&c, "cb-ed", "coinbase-advanced", KeyKind::Ed25519);
    // A CDP EdDSA secret: base64 of 64 bytes seed || public.
    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let cdp_secret = B64.encode([seed.as_slice(), public.as_slice()].concat());
    c.import_ed25519_key(
        KeySpec::asymmetric("cb-cdp").exchange("coinbase-advanced"),
        SecretString::from(cdp_secret),
    )
    .unwrap();
    let cdp_pem = c.key("cb-cdp").unwrap().public_key_pem().unwrap();

    let req = Request::get("/api/v3/brokerage/accounts")
        .query("limit=10")
        .api_key(kid);
    let uri = "GET api.coinbase.com/api/v3/brokerage/accounts";

    let signed = signer(&c, "cb-p256", "coinbase-advanced")
        .sign(&req)
        .unwrap();
    assert_eq!(signed.query, "limit=10");
    let (input, sig) = check_jwt(
        &signed,
        "ES256",
        kid,
        "000000000000002a",
        1_700_000_000,
        uri,
    );
    verify_p256(&p256_pem, input.as_bytes(), &sig);

    for (name, pem) in [("cb-ed", &ed_pem), ("cb-cdp", &cdp_pem)] {
        let signed = signer(&c, name, "coinbase-advanced").sign(&req).unwrap();
        let (input, sig) = check_jwt(
            &signed,
            "EdDSA",
            kid,
            "000000000000002a",
            1_700_000_000,
            uri,
        );
        verify_ed25519(pem, input.as_bytes(), &sig);
    }
    // The CDP-imported key is the software key: Ed25519 is deterministic.
    let signed = signer(&c, "cb-cdp", "coinbase-advanced")
        .sign(&req)
        .unwrap();
    let (_, _, input, sig) = decode_jwt(&signed.signature);
    let reference = {
        use ed25519_dalek::Signer as _;
        ed25519_dalek::SigningKey::from_bytes(&seed).sign(input.as_bytes())
    };
    assert_eq!(sig, reference.to_bytes().to_vec());

    // Request fields override the clock and the nonce source; POST with a body.
    let post = Request::post("/api/v3/brokerage/orders")
        .body(r#"{"product_id":"BTC-USD","side":"BUY"}"#)
        .api_key(kid)
        .timestamp("1712345678")
        .nonce("c0ffee")
        .host("api.coinbase.com");
    at(1_712_345_678_000);
    let signed = signer(&c, "cb-p256", "coinbase-advanced")
        .sign(&post)
        .unwrap();
    let (input, sig) = check_jwt(
        &signed,
        "ES256",
        kid,
        "c0ffee",
        1_712_345_678,
        "POST api.coinbase.com/api/v3/brokerage/orders",
    );
    verify_p256(&p256_pem, input.as_bytes(), &sig);
    assert_eq!(signed.header("Content-Type"), Some("application/json"));
}

/// An HMAC key (or an RSA key) bound to `coinbase-advanced` is a typed error, not a JWT; an HMAC
/// key asked for an asymmetric signature through the `Mac` trait too.
#[test]
fn exchanges_hmac_key_with_the_jwt_exchange_is_a_typed_error() {
    let t = fresh_token("asym-wrongkind");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("cb-hmac")
            .exchange("coinbase-advanced")
            .algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from("not-a-cdp-key"),
    )
    .unwrap();
    let req = Request::get("/api/v3/brokerage/accounts").api_key("k");
    let err = signer(&c, "cb-hmac", "coinbase-advanced")
        .sign(&req)
        .unwrap_err();
    assert!(
        matches!(&err, Error::WrongKeyKind { name, kind, .. } if name == "cb-hmac" && kind == "hmac"),
        "{err}"
    );
    let key = c.key("cb-hmac").unwrap();
    let err = hsm_custody::Mac::sign_asym(&key, b"x").unwrap_err();
    assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
    // A P-256 key without the CDP key name in `api_key` is refused before the token.
    generate(&c, "cb-p256", "coinbase-advanced", KeyKind::P256);
    let err = signer(&c, "cb-p256", "coinbase-advanced")
        .sign(&Request::get("/api/v3/brokerage/accounts"))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

/// What the guard saw: key, exchange, method, path.
type Seen = (String, Option<String>, Option<String>, Option<String>);

/// Records what the guard was asked.
#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl Guard for Recorder {
    fn check(&self, ctx: &SignContext<'_>) -> Result<(), Error> {
        self.0.lock().unwrap().push((
            ctx.key.to_owned(),
            ctx.exchange.map(str::to_owned),
            ctx.method.map(str::to_owned),
            ctx.path.map(str::to_owned),
        ));
        Ok(())
    }

    fn signed(&self, _ctx: &SignContext<'_>, _outcome: Result<(), &Error>) {}
}

/// Guard rails see the exchange, method and path of asymmetric exchange signatures too.
#[test]
fn exchanges_asymmetric_signatures_carry_the_request_context_to_the_guard() {
    let t = fresh_token("asym-guard");
    let c = t.connect();
    let recorder = Arc::new(Recorder::default());
    c.set_guard(recorder.clone()).unwrap();
    generate(&c, "g-ed", "binance", KeyKind::Ed25519);
    generate(&c, "g-p256", "coinbase-advanced", KeyKind::P256);
    at(1_499_827_319_559);
    signer(&c, "g-ed", "binance")
        .sign(&binance_order())
        .unwrap();
    signer(&c, "g-p256", "coinbase-advanced")
        .sign(&Request::get("/api/v3/brokerage/accounts").api_key("k"))
        .unwrap();
    let seen = recorder.0.lock().unwrap().clone();
    let s = |x: &str| Some(x.to_owned());
    assert!(seen.contains(&("g-ed".into(), s("binance"), s("POST"), s("/api/v3/order"))));
    assert!(seen.contains(&(
        "g-p256".into(),
        s("coinbase-advanced"),
        s("GET"),
        s("/api/v3/brokerage/accounts")
    )));
}

fn cli_ok(t: &TestToken, args: &[&str]) -> String {
    let out = cli(t, args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_sign_request(t: &TestToken, key: &str, exchange: &str, request: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let stdout = cli_ok(
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
    );
    let printed: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let mut fields: Vec<&str> = printed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["body", "headers", "query", "signature"]);
    printed
}

/// The CLI flow: `key generate --type ed25519 --exchange binance` prints the PEM to register,
/// `key public --pem` prints it again, and `sign-request` prints the JSON contract with a base64
/// signature that verifies; the same for a P-256 key and `coinbase-advanced`.
#[test]
fn exchanges_cli_sign_request_with_asymmetric_keys_prints_the_json_contract() {
    let t = fresh_token("asym-cli");
    let pem = cli_ok(
        &t,
        &[
            "key",
            "generate",
            "--name",
            "cli-ed",
            "--type",
            "ed25519",
            "--exchange",
            "binance",
        ],
    );
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert_eq!(
        cli_ok(&t, &["key", "public", "--name", "cli-ed", "--pem"]),
        pem
    );
    let out = cli_sign_request(
        &t,
        "cli-ed",
        "binance",
        &serde_json::json!({
            "method": "POST",
            "path": "/api/v3/order",
            "query": "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1",
            "recv_window": "5000",
            "api_key": BINANCE_API_KEY,
        }),
    );
    let signature = out["signature"].as_str().unwrap();
    let query = out["query"].as_str().unwrap();
    let (payload, wire) = split_signed(query);
    assert_eq!(wire, percent_encode(signature));
    // The CLI signs with the system clock: the crate appends the timestamp.
    assert!(
        payload.starts_with(
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp="
        ),
        "{payload}"
    );
    assert_eq!(out["headers"]["X-MBX-APIKEY"], BINANCE_API_KEY);
    verify_ed25519(&pem, payload.as_bytes(), &B64.decode(signature).unwrap());

    let pem = cli_ok(
        &t,
        &[
            "key",
            "generate",
            "--name",
            "cli-p256",
            "--type",
            "p256",
            "--exchange",
            "coinbase-advanced",
        ],
    );
    let kid = "organizations/o/apiKeys/k";
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = cli_sign_request(
        &t,
        "cli-p256",
        "coinbase-advanced",
        &serde_json::json!({
            "method": "GET",
            "path": "/api/v3/brokerage/accounts",
            "api_key": kid,
            "timestamp": now_s.to_string(),
            "nonce": "n-1",
        }),
    );
    let jwt = out["signature"].as_str().unwrap();
    assert_eq!(out["headers"]["Authorization"], format!("Bearer {jwt}"));
    let (header, claims, input, sig) = decode_jwt(jwt);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["nonce"], "n-1");
    assert_eq!(
        claims["uri"],
        "GET api.coinbase.com/api/v3/brokerage/accounts"
    );
    assert_eq!(claims["exp"], now_s + 60);
    verify_p256(&pem, input.as_bytes(), &sig);
}
