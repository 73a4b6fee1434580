//! What is timed: a case is a named worker factory (one worker per thread) or a peer process,
//! with the baseline it is compared with; the builders for each kind of case, and the messages
//! and requests they sign.

use cryptoki::context::Pkcs11;
use cryptoki::object::ObjectHandle;
use cryptoki::slot::Slot;
use hmac::Mac as _;
use hsm_custody::exchanges::{ExchangeSigner, Request};
use hsm_custody::{HmacAlg, KeyRef};
use sha2::Digest as _;

use crate::binance_order::{binance_message, binance_request, API_KEY};
use crate::peers::PeerCmd;
use crate::token::{find_key, mechanism, BenchKey};

pub const OKX_PATH: &str = "/api/v5/trade/batch-orders";
pub const OKX_TS: &str = "2023-11-14T22:13:20.000Z";
pub const KRAKEN_PATH: &str = "/0/private/AddOrder";
pub const KRAKEN_BODY: &str = "ordertype=limit&pair=XBTUSD&price=37500.0&type=buy&volume=1.25";

/// The messages and requests every cell signs.
pub struct Messages {
    /// The Binance order's signed string (110 bytes).
    pub binance: Vec<u8>,
    /// OKX: timestamp, method, path and a 1 KiB body.
    pub okx: Vec<u8>,
    /// Kraken: path and SHA-256(nonce || body), signed with SHA-512.
    pub kraken: Vec<u8>,
    pub binance_req: Request,
    pub okx_req: Request,
    pub kraken_req: Request,
}

impl Messages {
    pub fn new() -> Messages {
        let body = okx_body();
        let okx = format!("{OKX_TS}POST{OKX_PATH}{body}").into_bytes();
        let kraken: Vec<u8> = {
            let inner = sha2::Sha256::digest(format!("1700000000000000{KRAKEN_BODY}").as_bytes());
            [KRAKEN_PATH.as_bytes(), inner.as_slice()].concat()
        };
        Messages {
            binance: binance_message(),
            okx,
            kraken,
            binance_req: binance_request(),
            okx_req: Request::post(OKX_PATH)
                .body(body.clone())
                .api_key(API_KEY)
                .passphrase("bench-passphrase"),
            kraken_req: Request::post(KRAKEN_PATH)
                .body(KRAKEN_BODY)
                .api_key(API_KEY),
        }
    }
}

pub type Worker<'a> = Box<dyn FnMut() + 'a>;
pub type Factory<'a> = Box<dyn Fn() -> Worker<'a> + Sync + 'a>;

pub enum Runner<'a> {
    InProcess(Factory<'a>),
    Peer(PeerCmd),
}

pub struct Case<'a> {
    pub name: String,
    /// Which raw token-object case this one is compared with.
    pub baseline: Option<String>,
    /// Its own thread count, where it differs from the cell's (the "scaling" cells).
    pub threads: Option<usize>,
    pub runner: Runner<'a>,
}

impl<'a> Case<'a> {
    /// A case timed in this process: `factory` makes one worker per thread, in that thread.
    fn in_process(
        name: &str,
        baseline: Option<&str>,
        factory: impl Fn() -> Worker<'a> + Sync + 'a,
    ) -> Case<'a> {
        Case {
            name: name.to_owned(),
            baseline: baseline.map(str::to_owned),
            threads: None,
            runner: Runner::InProcess(Box::new(factory)),
        }
    }

    pub fn on_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }
}

pub fn software_case<'a>(name: &str, key: &'a BenchKey, msg: &'a [u8]) -> Case<'a> {
    Case::in_process(name, None, move || {
        let alg = key.alg;
        Box::new(move || {
            let out = match alg {
                HmacAlg::HmacSha512 => {
                    let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(&key.value)
                        .expect("any key length");
                    m.update(msg);
                    m.finalize().into_bytes()[0]
                }
                _ => {
                    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.value)
                        .expect("any key length");
                    m.update(msg);
                    m.finalize().into_bytes()[0]
                }
            };
            std::hint::black_box(out);
        })
    })
}

/// Raw cryptoki on a thread-owned session: `C_SignInit` + `C_Sign` (cryptoki's `sign`, the same
/// call the crate makes).
pub fn raw_case<'a>(
    name: &str,
    baseline: Option<&str>,
    ctx: &'a Pkcs11,
    slot: Slot,
    handle: ObjectHandle,
    alg: HmacAlg,
    msg: &'a [u8],
) -> Case<'a> {
    Case::in_process(name, baseline, move || {
        let session = ctx.open_ro_session(slot).expect("session");
        let mech = mechanism(alg);
        Box::new(move || {
            let sig = session.sign(&mech, handle, msg).expect("raw sign");
            std::hint::black_box(sig);
        })
    })
}

/// Naive: find the token object by label before every sign.
pub fn naive_case<'a>(
    name: &str,
    baseline: &str,
    ctx: &'a Pkcs11,
    slot: Slot,
    key: &'a BenchKey,
    msg: &'a [u8],
) -> Case<'a> {
    Case::in_process(name, Some(baseline), move || {
        let session = ctx.open_ro_session(slot).expect("session");
        let mech = mechanism(key.alg);
        Box::new(move || {
            let handle = find_key(&session, key.name);
            let sig = session.sign(&mech, handle, msg).expect("naive sign");
            std::hint::black_box(sig);
        })
    })
}

pub fn crate_sign_case<'a>(
    name: &str,
    baseline: &str,
    key: KeyRef,
    alg: HmacAlg,
    msg: &'a [u8],
) -> Case<'a> {
    Case::in_process(name, Some(baseline), move || {
        let key = key.clone();
        Box::new(move || {
            let sig = key.hmac(alg, msg).expect("crate sign");
            std::hint::black_box(sig);
        })
    })
}

/// "crate sign" with some host work before each sign (a diagnostic row): what that work costs
/// when it runs between token calls, against what it costs alone.
pub fn crate_sign_after<'a>(
    name: &str,
    baseline: &str,
    key: KeyRef,
    msg: &'a [u8],
    work: impl Fn() + Send + Sync + 'a,
) -> Case<'a> {
    let work = std::sync::Arc::new(work);
    Case::in_process(name, Some(baseline), move || {
        let (key, work) = (key.clone(), work.clone());
        Box::new(move || {
            work();
            std::hint::black_box(key.hmac(HmacAlg::HmacSha256, msg).expect("sign"));
        })
    })
}

/// `Mac::mac_for` with a request context, as the exchange signers call it.
pub fn crate_mac_for_case<'a>(
    name: &str,
    baseline: &str,
    key: KeyRef,
    alg: HmacAlg,
    msg: &'a [u8],
) -> Case<'a> {
    Case::in_process(name, Some(baseline), move || {
        let key = key.clone();
        Box::new(move || {
            let ctx = hsm_custody::RequestContext::new("binance", "POST", "/api/v3/order");
            let sig = hsm_custody::Mac::mac_for(&key, alg, msg, &ctx).expect("crate sign");
            std::hint::black_box(sig);
        })
    })
}

pub fn exchange_case<'a>(
    name: &str,
    baseline: &str,
    signer: ExchangeSigner,
    req: Request,
) -> Case<'a> {
    Case::in_process(name, Some(baseline), move || {
        let signer = signer.clone();
        let req = req.clone();
        Box::new(move || {
            let signed = signer.sign(&req).expect("exchange sign");
            std::hint::black_box(signed);
        })
    })
}

/// A software [`Mac`] bound to an exchange: the exchange signer's own formatting cost, no token.
pub struct SoftwareMac {
    pub exchange: &'static str,
    pub value: Vec<u8>,
}

impl hsm_custody::Mac for SoftwareMac {
    fn key_name(&self) -> &str {
        "software"
    }

    fn exchange(&self) -> Option<&str> {
        Some(self.exchange)
    }

    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> hsm_custody::Result<hsm_custody::Signature> {
        let out = match alg {
            HmacAlg::HmacSha512 => {
                let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(&self.value)
                    .expect("any key length");
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.value)
                    .expect("any key length");
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
        };
        Ok(hsm_custody::Signature::from_bytes(out))
    }
}

pub fn software_signer(exchange: &'static str, key: &BenchKey) -> ExchangeSigner {
    let ex = hsm_custody::exchanges::by_id(exchange).expect("exchange id");
    ExchangeSigner::new(
        ex,
        SoftwareMac {
            exchange,
            value: key.value.clone(),
        },
    )
    .expect("software signer")
}

/// A 1,024-byte JSON body of OKX batch orders.
pub fn okx_body() -> String {
    let mut orders = Vec::new();
    let mut i = 0;
    loop {
        let order = format!(
            r#"{{"instId":"BTC-USDT","tdMode":"cash","clOrdId":"b{i:05}","side":"buy","ordType":"limit","px":"43250.1","sz":"0.001"}}"#
        );
        let next = format!(
            "[{}]",
            [orders.clone(), vec![order.clone()]].concat().join(",")
        );
        if next.len() + 20 > 1024 {
            break;
        }
        orders.push(order);
        i += 1;
    }
    let body = format!("[{}]", orders.join(","));
    // Pad the last order's tag to reach exactly 1,024 bytes.
    let pad = 1024 - body.len() - r#","tag":"""#.len();
    let body = format!(
        "{},\"tag\":\"{}\"}}]",
        &body[..body.len() - 2],
        "x".repeat(pad)
    );
    assert_eq!(body.len(), 1024);
    body
}
