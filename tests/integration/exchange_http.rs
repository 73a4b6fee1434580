//! Round trip over real HTTP on loopback: a small verifier server checks signatures the way
//! Binance, Kraken and OKX document that they do, and the crate's signed requests must pass;
//! a tampered body, a wrong key and a stale timestamp (Kraken: a reused nonce) must not.
//!
//! The server is bounded: it serves at most `MAX_REQUESTS` connections and gives up after
//! `DEADLINE`, each connection with read/write timeouts.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hsm_custody::exchanges::{FixedClock, Request, SignedRequest};
use hsm_custody::{Custody, HmacAlg};

use crate::common::{fresh_token, software_hmac};
use crate::exchanges::import_for;

const MAX_REQUESTS: usize = 32;
const DEADLINE: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

const BINANCE_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const KRAKEN_KEY: &str = "kraken-public-key";
const KRAKEN_SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
const OKX_KEY: &str = "okx-test-api-key";
const OKX_SECRET: &str = "E65791902180E9EF4510DB6A77F6EBAE";
const OKX_PASSPHRASE: &str = "TestPassphrase1!";
/// A second secret per exchange: imported as the "wrong key".
const OTHER_SECRET: &str = "c29tZSBvdGhlciBzZWNyZXQgdGhhdCB0aGUgc2VydmVyIGRvZXMgbm90IGtub3c=";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A received HTTP request.
struct Incoming {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// The verifier: what each exchange knows about its keys, and the state it keeps.
struct Verifier {
    /// Kraken: last nonce per API key.
    kraken_nonces: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    fn verify(&self, req: &Incoming) -> Result<(), String> {
        if req.path.starts_with("/api/v3/") {
            self.binance(req)
        } else if req.path.starts_with("/0/private/") {
            self.kraken(req)
        } else if req.path.starts_with("/api/v5/") {
            self.okx(req)
        } else {
            Err("unknown endpoint".into())
        }
    }

    /// Binance: HMAC-SHA256 hex of totalParams (query || body, without `signature`), any
    /// letter case; `timestamp` within `recvWindow` (default 5000) and not > 1 s ahead.
    fn binance(&self, req: &Incoming) -> Result<(), String> {
        if req.header("X-MBX-APIKEY") != Some(BINANCE_KEY) {
            return Err("-2014 API-key format invalid".into());
        }
        let (query, q_sig) = strip_signature(&req.query);
        let (body, b_sig) = strip_signature(&req.body);
        let sig = q_sig.or(b_sig).ok_or("-1102 signature missing")?;
        let total = format!("{query}{body}");
        let expected = hex::encode(software_hmac(
            HmacAlg::HmacSha256,
            BINANCE_SECRET.as_bytes(),
            total.as_bytes(),
        ));
        if !expected.eq_ignore_ascii_case(&sig) {
            return Err("-1022 Signature for this request is not valid.".into());
        }
        let params = format!("{query}&{body}");
        let ts: u64 = param(&params, "timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or("-1102 timestamp missing")?;
        let window: u64 = param(&params, "recvWindow")
            .and_then(|w| w.parse().ok())
            .unwrap_or(5000);
        let now = now_ms();
        if ts > now + 1000 || now.saturating_sub(ts) > window {
            return Err("-1021 Timestamp for this request is outside of the recvWindow.".into());
        }
        Ok(())
    }

    /// Kraken: API-Sign = base64(HMAC-SHA512(b64decode(secret), path || SHA256(nonce ||
    /// postdata))); the nonce must exceed the last one seen for the key.
    fn kraken(&self, req: &Incoming) -> Result<(), String> {
        use sha2::Digest as _;
        if req.header("API-Key") != Some(KRAKEN_KEY) {
            return Err("EAPI:Invalid key".into());
        }
        let nonce_text = param(&req.body, "nonce").ok_or("EAPI:Invalid nonce")?;
        let mut msg = req.path.as_bytes().to_vec();
        msg.extend_from_slice(&sha2::Sha256::digest(
            format!("{nonce_text}{}", req.body).as_bytes(),
        ));
        let secret = base64::engine::general_purpose::STANDARD
            .decode(KRAKEN_SECRET)
            .unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(software_hmac(
            HmacAlg::HmacSha512,
            &secret,
            &msg,
        ));
        if req.header("API-Sign") != Some(expected.as_str()) {
            return Err("EAPI:Invalid signature".into());
        }
        let nonce: u64 = nonce_text.parse().map_err(|_| "EAPI:Invalid nonce")?;
        let mut last = self.kraken_nonces.lock().unwrap();
        let seen = last.entry(KRAKEN_KEY.to_owned()).or_insert(0);
        if nonce <= *seen {
            return Err("EAPI:Invalid nonce".into());
        }
        *seen = nonce;
        Ok(())
    }

    /// OKX: OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, ts || METHOD || path?query || body)),
    /// passphrase as registered, timestamp within 30 s of the server's clock.
    fn okx(&self, req: &Incoming) -> Result<(), String> {
        if req.header("OK-ACCESS-KEY") != Some(OKX_KEY) {
            return Err("50111 Invalid OK-ACCESS-KEY".into());
        }
        if req.header("OK-ACCESS-PASSPHRASE") != Some(OKX_PASSPHRASE) {
            return Err("50105 Invalid OK-ACCESS-PASSPHRASE".into());
        }
        let ts = req
            .header("OK-ACCESS-TIMESTAMP")
            .ok_or("50107 timestamp missing")?;
        let target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let prehash = format!("{ts}{}{target}{}", req.method, req.body);
        let expected = base64::engine::general_purpose::STANDARD.encode(software_hmac(
            HmacAlg::HmacSha256,
            OKX_SECRET.as_bytes(),
            prehash.as_bytes(),
        ));
        if req.header("OK-ACCESS-SIGN") != Some(expected.as_str()) {
            return Err("50113 Invalid Sign".into());
        }
        let when = parse_okx_time(ts).ok_or("50112 Invalid OK-ACCESS-TIMESTAMP")?;
        let skew = (now_ms() as i64 - when as i64).abs() / 1000;
        if skew > 30 {
            return Err("50102 Timestamp request expired".into());
        }
        Ok(())
    }
}

/// `2020-12-08T09:08:57.715Z` -> milliseconds since the epoch.
fn parse_okx_time(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() != 24 || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(n(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        month,
        u8::try_from(n(8..10)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms_milli(
        u8::try_from(n(11..13)?).ok()?,
        u8::try_from(n(14..16)?).ok()?,
        u8::try_from(n(17..19)?).ok()?,
        u16::try_from(n(20..23)?).ok()?,
    )
    .ok()?;
    let ms = date.with_time(t).assume_utc().unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok()
}

fn strip_signature(params: &str) -> (String, Option<String>) {
    match params.rsplit_once("&signature=") {
        Some((rest, sig)) => (rest.to_owned(), Some(sig.to_owned())),
        None => match params.strip_prefix("signature=") {
            Some(sig) => (String::new(), Some(sig.to_owned())),
            None => (params.to_owned(), None),
        },
    }
}

fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Starts the verifier on 127.0.0.1; it stops when `stop` is set, after `MAX_REQUESTS` or after
/// `DEADLINE`, and returns how many requests it served.
fn start_server(stop: Arc<AtomicBool>) -> (SocketAddr, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let verifier = Arc::new(Verifier {
        kraken_nonces: Mutex::new(HashMap::new()),
    });
    let handle = std::thread::spawn(move || {
        let start = Instant::now();
        let mut served = 0;
        while served < MAX_REQUESTS && start.elapsed() < DEADLINE && !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((stream, _)) => {
                    served += 1;
                    if serve(stream, &verifier).is_err() {
                        continue;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        served
    });
    (addr, handle)
}

fn serve(stream: TcpStream, verifier: &Verifier) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let incoming = Incoming {
        method,
        path,
        query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, text) = match verifier.verify(&incoming) {
        Ok(()) => ("200 OK", r#"{"ok":true}"#.to_owned()),
        Err(e) => (
            "401 Unauthorized",
            serde_json::json!({ "error": e }).to_string(),
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

/// Sends a signed request; returns the status code and the response body.
fn send(addr: SocketAddr, signed: &SignedRequest<'_>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
        signed.method,
        signed.path_and_query()
    );
    for (k, v) in &signed.headers {
        if !k.eq_ignore_ascii_case("content-length") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", signed.body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(signed.body.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn custody_with_keys() -> Custody {
    let t = fresh_token("http");
    let c = t.connect();
    import_for(&c, "binance", "binance", BINANCE_SECRET);
    import_for(&c, "binance-wrong", "binance", OTHER_SECRET);
    import_for(&c, "kraken", "kraken", KRAKEN_SECRET);
    import_for(&c, "kraken-wrong", "kraken", OTHER_SECRET);
    import_for(&c, "okx", "okx", OKX_SECRET);
    import_for(&c, "okx-wrong", "okx", OTHER_SECRET);
    c
}

#[test]
fn loopback_verifier_accepts_signed_requests_and_rejects_tampering_wrong_keys_and_stale_times() {
    let c = custody_with_keys();
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, server) = start_server(Arc::clone(&stop));
    let mut sent = 0;
    let mut expect = |signed: &SignedRequest<'_>, ok: bool, what: &str| {
        let (status, body) = send(addr, signed);
        sent += 1;
        assert_eq!(status == 200, ok, "{what}: {status} {body}");
    };

    // Binance spot: query and mixed query/body.
    let binance = c.exchange_signer("binance").unwrap();
    let order = Request::post("/api/v3/order")
        .query("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC")
        .body("quantity=1&price=0.1")
        .recv_window("5000")
        .api_key(BINANCE_KEY);
    let good = binance.sign(&order).unwrap();
    expect(&good, true, "binance order");
    expect(
        &binance
            .sign(&Request::get("/api/v3/account").api_key(BINANCE_KEY))
            .unwrap(),
        true,
        "binance account",
    );
    let mut tampered = good.clone();
    tampered.body = tampered.body.replace("quantity=1", "quantity=100").into();
    expect(&tampered, false, "binance tampered body");
    let wrong = c
        .exchange_signer("binance-wrong")
        .unwrap()
        .sign(&order)
        .unwrap();
    expect(&wrong, false, "binance wrong key");
    let stale = binance
        .clone()
        .with_clock(FixedClock(now_ms() - 60_000))
        .sign(&order)
        .unwrap();
    expect(&stale, false, "binance stale timestamp");

    // Kraken: default strictly increasing nonces.
    let kraken = c.exchange_signer("kraken").unwrap();
    let add = Request::post("/0/private/AddOrder")
        .body("ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25")
        .api_key(KRAKEN_KEY);
    let first = kraken.sign(&add).unwrap();
    let second = kraken.sign(&add).unwrap();
    expect(&first, true, "kraken order");
    expect(&second, true, "kraken second order");
    expect(&second, false, "kraken replayed nonce");
    let mut tampered = kraken.sign(&add).unwrap();
    tampered.body = tampered.body.replace("volume=1.25", "volume=125").into();
    expect(&tampered, false, "kraken tampered body");
    let wrong = c
        .exchange_signer("kraken-wrong")
        .unwrap()
        .sign(&add)
        .unwrap();
    expect(&wrong, false, "kraken wrong key");
    // A caller's stale nonce is refused by the crate itself now (held to its clock); a stale
    // signature made with a stale clock is refused by the exchange.
    let stale_add = add.clone().nonce("1616492376594");
    let err = kraken.sign(&stale_add).unwrap_err();
    assert!(
        matches!(&err, hsm_custody::Error::RequestRefused { field, .. } if field == "nonce"),
        "{err}"
    );
    let stale = kraken
        .clone()
        .with_nonces(hsm_custody::exchanges::FixedNonce(1_616_492_376_594))
        .sign(&add)
        .unwrap();
    expect(&stale, false, "kraken stale nonce");
    expect(&kraken.sign(&add).unwrap(), true, "kraken after rejections");

    // OKX v5.
    let okx = c.exchange_signer("okx").unwrap();
    let place = Request::post("/api/v5/trade/order")
        .body(r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","px":"2.15","sz":"2"}"#)
        .api_key(OKX_KEY)
        .passphrase(OKX_PASSPHRASE);
    expect(&okx.sign(&place).unwrap(), true, "okx order");
    let balance = Request::get("/api/v5/account/balance")
        .query("ccy=BTC")
        .api_key(OKX_KEY)
        .passphrase(OKX_PASSPHRASE);
    expect(&okx.sign(&balance).unwrap(), true, "okx balance");
    let mut tampered = okx.sign(&place).unwrap();
    tampered.body = tampered
        .body
        .replace("\"sz\":\"2\"", "\"sz\":\"200\"")
        .into();
    expect(&tampered, false, "okx tampered body");
    let wrong = c
        .exchange_signer("okx-wrong")
        .unwrap()
        .sign(&place)
        .unwrap();
    expect(&wrong, false, "okx wrong key");
    let stale = okx
        .clone()
        .with_clock(FixedClock(now_ms() - 120_000))
        .sign(&place)
        .unwrap();
    expect(&stale, false, "okx stale timestamp");

    stop.store(true, Ordering::Release);
    let served = server.join().unwrap();
    assert_eq!(served, sent, "the server saw every request");
}
