//! The async facade (issue 9): signs never block the runtime, back-pressure holds token calls
//! to the pool's size, cancelled signs release their slots, errors and guard rails are the sync
//! API's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_custody::asynch::AsyncCustody;
use hsm_custody::exchanges::Request;
use hsm_custody::{Error, Guard, HmacAlg, SignContext};

use crate::common::{fresh_token, software_hmac};
use crate::exchanges::import_for;

const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const SIGNS: usize = 1_000;

/// Counts signatures and the most that were between `check` and `signed` at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
    done: AtomicUsize,
    refuse_path: Option<&'static str>,
}

impl Guard for InFlight {
    fn check(&self, ctx: &SignContext<'_>) -> Result<(), Error> {
        if self.refuse_path.is_some() && ctx.path == self.refuse_path {
            return Err(Error::InvalidInput("refused by the test guard".into()));
        }
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        Ok(())
    }

    fn signed(&self, _ctx: &SignContext<'_>, _outcome: Result<(), &Error>) {
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

fn binance_request(i: usize) -> (Request, String) {
    // A caller's timestamp must be within 5 s of the crate's clock: now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let query = format!("symbol=LTCBTC&i={i}&timestamp={now}");
    let expected = hex::encode(software_hmac(
        HmacAlg::HmacSha256,
        SECRET.as_bytes(),
        query.as_bytes(),
    ));
    (Request::get("/api/v3/order").query(query), expected)
}

/// 1,000 concurrent exchange signs on a current-thread runtime: every signature is right, a
/// 1 ms timer task kept ticking while they ran (the runtime's only thread was never blocked),
/// no more token calls were in flight than the pool has sessions, and nobody timed out waiting
/// for a session (the queue was on the semaphore, not on the pool).
#[test]
fn thousand_concurrent_async_signs_never_block_a_current_thread_runtime() {
    let t = fresh_token("async-1000");
    let custody = t.connect();
    import_for(&custody, "bn", "binance", SECRET);
    let guard = Arc::new(InFlight::default());
    custody.set_guard(guard.clone()).unwrap();
    let capacity = custody.stats().capacity;
    let custody = AsyncCustody::new(custody);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (ticks_during, control_ticks) = rt.block_on(async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_millis(1));
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // Let the ticker start.
        tokio::time::sleep(Duration::from_millis(5)).await;

        // Control: a blocking sign loop on the runtime thread stops the ticker dead, so the
        // measure below can tell a blocked runtime from a free one.
        let sync = custody
            .custody()
            .exchange_signer_for("bn", "binance")
            .unwrap();
        let before = ticks.load(Ordering::SeqCst);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            sync.sign(&binance_request(0).0).unwrap();
        }
        let control_ticks = ticks.load(Ordering::SeqCst) - before;

        let signer = custody.exchange_signer_for("bn", "binance").await.unwrap();
        let before = ticks.load(Ordering::SeqCst);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..SIGNS {
            let signer = signer.clone();
            set.spawn(async move {
                let (req, expected) = binance_request(i);
                let signed = signer.sign(&req).await.expect("async sign");
                assert_eq!(signed.signature, expected, "request {i}");
            });
        }
        let mut finished = 0;
        while let Some(joined) = set.join_next().await {
            joined.expect("sign task");
            finished += 1;
        }
        assert_eq!(finished, SIGNS);
        let during = ticks.load(Ordering::SeqCst) - before;
        ticker.abort();
        (during, control_ticks)
    });

    eprintln!(
        "ticks while {SIGNS} async signs ran: {ticks_during}; during 30 ms of blocking signs: \
         {control_ticks}; max in flight {} (capacity {capacity})",
        guard.max.load(Ordering::SeqCst)
    );
    assert_eq!(control_ticks, 0, "the control loop blocks the runtime");
    assert!(
        ticks_during >= 2,
        "the timer task must keep ticking while signs run (got {ticks_during})"
    );
    assert!(
        guard.done.load(Ordering::SeqCst) > SIGNS,
        "the guard saw every async sign"
    );
    assert!(guard.max.load(Ordering::SeqCst) <= capacity);
    let stats = custody.custody().stats();
    assert_eq!(stats.timeouts, 0, "{stats:?}");
    assert_eq!(stats.in_use, 0);
    assert_eq!(custody.available(), capacity);
}

/// Futures dropped while queued or while their token call runs leave nothing behind: every
/// slot comes back, no session stays leased, and the next sign works.
#[tokio::test(flavor = "current_thread")]
async fn cancelled_async_signs_release_their_slots() {
    let t = fresh_token("async-cancel");
    let custody = t.connect();
    import_for(&custody, "bn", "binance", SECRET);
    let capacity = custody.stats().capacity;
    let custody = AsyncCustody::new(custody);
    let signer = custody.exchange_signer_for("bn", "binance").await.unwrap();

    let mut cancelled = 0;
    for round in 0..20 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let signer = signer.clone();
            set.spawn(async move { signer.sign(&binance_request(round * 50 + i).0).await });
        }
        // Abort at once, or after some have started their token call.
        if round % 2 == 1 {
            tokio::task::yield_now().await;
        }
        set.abort_all();
        while let Some(joined) = set.join_next().await {
            if joined.is_err() {
                cancelled += 1;
            }
        }
        // A timeout that gives up while the call is queued or running.
        let (req, _) = binance_request(round);
        let _ = tokio::time::timeout(Duration::from_micros(1), signer.sign(&req)).await;
    }
    assert!(cancelled > 0, "some futures were dropped before finishing");

    let deadline = Instant::now() + Duration::from_secs(10);
    while custody.available() < capacity && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(custody.available(), capacity, "every slot came back");
    assert_eq!(custody.custody().stats().in_use, 0);
    let (req, expected) = binance_request(7);
    assert_eq!(signer.sign(&req).await.unwrap().signature, expected);
}

/// The async API returns the sync API's errors, guard refusals included, and `run` reaches any
/// sync call.
#[tokio::test(flavor = "current_thread")]
async fn async_errors_and_guard_refusals_are_the_sync_ones() {
    let t = fresh_token("async-errors");
    let custody = t.connect();
    import_for(&custody, "bn", "binance", SECRET);
    custody
        .set_guard(Arc::new(InFlight {
            refuse_path: Some("/api/v3/openOrders"),
            ..InFlight::default()
        }))
        .unwrap();
    let custody = AsyncCustody::new(custody);

    let err = custody
        .exchange_signer_for("missing", "binance")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
    let err = custody
        .exchange_signer_for("bn", "kraken")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongExchange { .. }), "{err}");

    let signer = custody.exchange_signer_for("bn", "binance").await.unwrap();
    let refused = Request::delete("/api/v3/openOrders").body("symbol=BTCUSDT");
    let async_err = signer.sign(&refused).await.unwrap_err();
    let sync_err = signer.blocking().sign(&refused).unwrap_err();
    assert_eq!(async_err.to_string(), sync_err.to_string());
    assert!(async_err.to_string().contains("refused by the test guard"));

    let mac = custody
        .sign_hmac("bn", HmacAlg::HmacSha256, b"symbol=LTCBTC".to_vec())
        .await
        .unwrap();
    assert_eq!(
        mac.to_hex(),
        hex::encode(software_hmac(
            HmacAlg::HmacSha256,
            SECRET.as_bytes(),
            b"symbol=LTCBTC"
        ))
    );
    let keys = custody.run(|c| c.list_keys()).await.unwrap();
    assert!(keys.iter().any(|k| k.name == "bn"));
}

/// `run_here` (the agent's path: the token call on the worker that read the request) gives the
/// token's answer on both kinds of runtime, keeps the pool's bound on a multi-threaded one
/// (the other tasks of a blocked worker still run: a timer fires meanwhile), and runs on the
/// calling thread of a single-threaded one.
#[test]
fn run_here_signs_on_the_calling_worker_of_either_runtime() {
    let t = fresh_token("run-here");
    let c = t.connect();
    import_for(&c, "bn", "binance", SECRET);
    let want = software_hmac(HmacAlg::HmacSha256, SECRET.as_bytes(), b"here");
    for threads in [1usize, 2] {
        let rt = if threads == 1 {
            hsm_custody::agent::runtime().unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .unwrap()
        };
        let asynch = AsyncCustody::new(c.clone());
        let caller = std::thread::current().id();
        let (mac, ran_on) = rt.block_on(async {
            let ticks = tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Instant::now()
            });
            let out = asynch
                .run_here(move |c| {
                    std::thread::sleep(Duration::from_millis(60));
                    let mac = c.sign_hmac("bn", HmacAlg::HmacSha256, b"here")?;
                    Ok((mac, std::thread::current().id(), Instant::now()))
                })
                .await
                .unwrap();
            let ticked = ticks.await.unwrap();
            if threads > 1 {
                assert!(ticked < out.2, "a blocked worker held up the other tasks");
            }
            (out.0, out.1)
        });
        assert_eq!(mac.as_bytes(), want.as_slice(), "{threads} thread(s)");
        if threads == 1 {
            assert_eq!(
                ran_on, caller,
                "a single-threaded runtime signs on its thread"
            );
        }
    }
}
