//! An async bot's integration: sign Binance requests in the token with the async facade and send
//! them with reqwest, to a stand-in exchange on loopback that checks the signature the way Binance
//! documents it (HMAC-SHA256 of `query || body`, `X-MBX-APIKEY`, `timestamp` within `recvWindow`).
//!
//! ```sh
//! ./softhsm-setup/setup.sh && cargo run --example reqwest_binance
//! ```
//!
//! The secret is the one from Binance's documentation: the stand-in server knows it, the bot
//! never does (it lives in the token). The key name is fresh on every run (import never
//! overwrites). Nothing leaves 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::Mac as _;
use hsm_custody::asynch::{AsyncCustody, AsyncExchangeSigner};
use hsm_custody::exchanges::{Request, SignedRequest};
use hsm_custody::{exchanges, Config, KeySpec, SecretString};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const ORDERS: usize = 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    // --- The bot's side: one AsyncCustody per process, shared by every task.
    let custody = AsyncCustody::connect(Config::from_env()?).await?;
    let name = format!("binance-reqwest-{}", std::process::id());
    let key_name = name.clone();
    custody
        .run(move |c| {
            let profile = exchanges::profile("binance")
                .ok_or_else(|| hsm_custody::Error::InvalidInput("no binance profile".into()))?;
            c.import_hmac_secret(
                KeySpec::hmac(&key_name)
                    .exchange("binance")
                    .encoding(profile.encoding)
                    .algorithms(profile.algorithms),
                SecretString::from(DOC_SECRET),
            )
        })
        .await?;
    let binance = custody.exchange_signer(&name).await?;

    // --- The stand-in exchange.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // Orders placed concurrently: each task signs (on the blocking pool, never on this runtime's
    // workers) and sends.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ORDERS {
        let (binance, http) = (binance.clone(), http.clone());
        tasks.spawn(async move { place_order(&binance, &http, addr, i).await });
    }
    let mut accepted = 0;
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result??;
        if status == 200 {
            accepted += 1;
        } else {
            eprintln!("refused: {status} {body}");
        }
    }
    println!("{accepted}/{ORDERS} signed orders accepted by the stand-in exchange at {addr}");

    // A request changed after signing is refused: the server really checks.
    let mut tampered = order(&binance, 0).await?;
    tampered.body = tampered.body.replace("quantity=1", "quantity=100").into();
    let (status, body) = send(&http, addr, &tampered).await?;
    println!("tampered order: {status} {body}");

    server.abort();
    if accepted != ORDERS || status != 401 {
        return Err("the stand-in exchange did not answer as expected".into());
    }
    Ok(())
}

/// A limit order signed in the token; parameters in the body, as Binance recommends for POST.
async fn order(
    binance: &AsyncExchangeSigner,
    i: usize,
) -> Result<SignedRequest<'static>, BoxError> {
    let req = Request::post("/api/v3/order")
        .body(format!(
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&newClientOrderId=bot-{i}"
        ))
        .recv_window("5000")
        .api_key(API_KEY);
    Ok(binance.sign(&req).await?)
}

async fn place_order(
    binance: &AsyncExchangeSigner,
    http: &reqwest::Client,
    addr: SocketAddr,
    i: usize,
) -> Result<(u16, String), BoxError> {
    let signed = order(binance, i).await?;
    send(http, addr, &signed).await
}

/// Turns a [`SignedRequest`] into a reqwest request: method, path and query, headers, body.
async fn send(
    http: &reqwest::Client,
    addr: SocketAddr,
    signed: &SignedRequest<'_>,
) -> Result<(u16, String), BoxError> {
    let url = format!("http://{addr}{}", signed.path_and_query());
    let method = reqwest::Method::from_bytes(signed.method.as_bytes())?;
    let mut request = http.request(method, url);
    for (name, value) in &signed.headers {
        request = request.header(name.as_ref(), value.as_ref());
    }
    if !signed.body.is_empty() {
        request = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(signed.body.to_string());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

// ---------------------------------------------------------------------------------------------
// The stand-in exchange: a few lines of HTTP/1.1 over tokio, enough for reqwest's requests.

async fn serve(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = connection(stream).await;
        });
    }
}

async fn connection(stream: TcpStream) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (method, target) = (method.to_owned(), target.to_owned());
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            stream.read_line(&mut h).await?;
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
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(64 * 1024);
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        let body = String::from_utf8_lossy(&body).into_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, reply) = check(&method, path, query, &body, &headers);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        stream.get_mut().write_all(response.as_bytes()).await?;
    }
}

/// Binance's checks: API key, signature over `query || body` (without the `signature`
/// parameter), timestamp within `recvWindow`.
fn check(
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    headers: &HashMap<String, String>,
) -> (&'static str, String) {
    let refuse = |code: i32, msg: &str| {
        (
            "401 Unauthorized",
            format!(r#"{{"code":{code},"msg":"{msg}"}}"#),
        )
    };
    if headers.get("x-mbx-apikey").map(String::as_str) != Some(API_KEY) {
        return refuse(-2015, "Invalid API-key.");
    }
    let strip = |s: &str| -> (String, Option<String>) {
        let mut sig = None;
        let kept: Vec<&str> = s
            .split('&')
            .filter(|p| match p.strip_prefix("signature=") {
                Some(v) => {
                    sig = Some(v.to_owned());
                    false
                }
                None => !p.is_empty(),
            })
            .collect();
        (kept.join("&"), sig)
    };
    let (q, sig_q) = strip(query);
    let (b, sig_b) = strip(body);
    let Some(signature) = sig_q.or(sig_b) else {
        return refuse(-1102, "Mandatory parameter 'signature' was not sent.");
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(DOC_SECRET.as_bytes()) else {
        return refuse(-1000, "server error");
    };
    mac.update(format!("{q}{b}").as_bytes());
    let Ok(given) = hex::decode(&signature) else {
        return refuse(-1022, "Signature for this request is not valid.");
    };
    if mac.verify_slice(&given).is_err() {
        return refuse(-1022, "Signature for this request is not valid.");
    }
    let params: HashMap<&str, &str> = q
        .split('&')
        .chain(b.split('&'))
        .filter_map(|p| p.split_once('='))
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let ts: i64 = params
        .get("timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let window: i64 = params
        .get("recvWindow")
        .and_then(|w| w.parse().ok())
        .unwrap_or(5000);
    if ts > now + 1000 || now - ts > window {
        return refuse(
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        );
    }
    (
        "200 OK",
        format!(
            r#"{{"symbol":"LTCBTC","status":"NEW","method":"{method}","path":"{path}","clientOrderId":"{}"}}"#,
            params.get("newClientOrderId").unwrap_or(&"")
        ),
    )
}
