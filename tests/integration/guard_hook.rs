//! The guard hook: what a guard sees, and that a refusal stops the signature before the token.

use std::sync::{Arc, Mutex};

use hsm_custody::exchanges::Request;
use hsm_custody::{
    Error, Guard, HmacAlg, KeyKind, KeySpec, LifecycleEvent, NewVersion, SecretString, SignContext,
};

use crate::common::fresh_token;

#[derive(Default)]
struct Recorder {
    checks: Mutex<Vec<String>>,
    outcomes: Mutex<Vec<bool>>,
    events: Mutex<Vec<LifecycleEvent>>,
}

impl Guard for Recorder {
    fn check(&self, ctx: &SignContext<'_>) -> Result<(), Error> {
        let line = format!(
            "{} v{} {:?} {:?} {:?} {}",
            ctx.key,
            ctx.version,
            ctx.exchange,
            ctx.method,
            ctx.path,
            ctx.message.len()
        );
        self.checks.lock().unwrap().push(line);
        if ctx.path.is_some_and(|p| p.contains("withdraw"))
            || std::str::from_utf8(ctx.message).is_ok_and(|m| m.contains("withdraw"))
        {
            return Err(Error::InvalidInput("test guard refuses withdrawals".into()));
        }
        Ok(())
    }

    fn signed(&self, _ctx: &SignContext<'_>, outcome: Result<(), &Error>) {
        self.outcomes.lock().unwrap().push(outcome.is_ok());
    }

    fn lifecycle(&self, event: &LifecycleEvent) {
        self.events.lock().unwrap().push(event.clone());
    }
}

#[test]
fn the_guard_sees_every_signature_and_can_refuse_before_the_token() {
    let t = fresh_token("guard");
    // No revalidation lease in the middle of the "never reaches the token" count.
    let c = hsm_custody::Custody::connect(
        t.config()
            .revalidate_interval(std::time::Duration::from_secs(3600)),
    )
    .unwrap();
    let guard = Arc::new(Recorder::default());
    c.set_guard(guard.clone()).unwrap();
    assert!(
        c.set_guard(guard.clone()).is_err(),
        "a guard is installed once"
    );

    c.import_hmac_secret(
        KeySpec::hmac("bn").exchange("binance"),
        SecretString::from("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"),
    )
    .unwrap();
    c.sign_hmac("bn", HmacAlg::HmacSha256, b"raw bytes")
        .unwrap();
    let signer = c.exchange_signer("bn").unwrap();
    signer
        .sign(&Request::post("/api/v3/order").query("symbol=LTCBTC"))
        .unwrap();
    let before = c.stats().checkouts;
    // The built-in withdrawal guard refuses before a guard that does not judge withdrawals
    // itself is asked (secure by default, whatever guard is installed).
    let err = signer
        .sign(&Request::post("/sapi/v1/capital/withdraw/apply").query("coin=BTC"))
        .unwrap_err();
    assert!(
        err.to_string().contains("withdrawal-guard:binance"),
        "{err}"
    );
    // The installed guard's own refusal: an endpoint the built-in guard lets through.
    let err = signer
        .sign(&Request::get("/api/v3/allOrders").query("note=withdraw"))
        .unwrap_err();
    assert!(err.to_string().contains("refuses withdrawals"), "{err}");
    assert_eq!(
        c.stats().checkouts,
        before,
        "a refused request never reaches the token"
    );

    let checks = guard.checks.lock().unwrap().clone();
    assert_eq!(
        checks[0], "bn v1 None None None 9",
        "raw signature: no request context"
    );
    // The signed bytes: the query and the timestamp the crate appended (13 digits).
    assert_eq!(
        checks[1],
        "bn v1 Some(\"binance\") Some(\"POST\") Some(\"/api/v3/order\") 37"
    );
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks[2].contains("allOrders"));
    assert_eq!(
        *guard.outcomes.lock().unwrap(),
        vec![true, true],
        "refused: no outcome"
    );

    c.rotate_begin(
        KeySpec::hmac("bn"),
        NewVersion::Hmac(SecretString::from("second")),
    )
    .unwrap();
    c.rotate_promote("bn").unwrap();
    c.revoke("bn", Some(1)).unwrap();
    let events = guard.events.lock().unwrap().clone();
    assert!(matches!(&events[0], LifecycleEvent::Created { key, .. } if key == "bn"));
    assert!(matches!(
        &events[1],
        LifecycleEvent::RotationBegun { version: 2, .. }
    ));
    assert!(matches!(
        &events[2],
        LifecycleEvent::Promoted { version: 2, .. }
    ));
    assert!(matches!(&events[3], LifecycleEvent::Revoked { versions, .. } if versions == &vec![1]));
}

#[test]
fn a_refused_login_is_reported_to_the_guard() {
    let t = fresh_token("guard-pin");
    let guard = Arc::new(Recorder::default());
    let config =
        hsm_custody::Config::new(&t.module, &t.label).pin(SecretString::from("wrong-pin-000"));
    let err = hsm_custody::Custody::connect_guarded(config, guard.clone()).unwrap_err();
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    let events = guard.events.lock().unwrap().clone();
    assert!(
        matches!(&events[..], [LifecycleEvent::LoginFailed { token, reason }]
            if token == &t.label && !reason.contains("wrong-pin-000")),
        "{events:?}"
    );
}

/// Every creator goes through one report: the guard hears of each new key, whatever made it
/// (issue 27: `import_ed25519_key` was named as skipping it).
#[test]
fn every_creator_reports_the_new_key_to_the_guard() {
    use base64::Engine;
    let t = fresh_token("guard-create");
    let c = t.connect();
    let guard = Arc::new(Recorder::default());
    c.set_guard(guard.clone()).unwrap();
    c.import_hmac_secret(KeySpec::hmac("imported"), SecretString::from("s3cret"))
        .unwrap();
    c.generate_hmac_key(KeySpec::hmac("generated")).unwrap();
    c.generate_key(KeySpec::asymmetric("pair"), KeyKind::Ed25519)
        .unwrap();
    let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    c.import_ed25519_key(KeySpec::asymmetric("seed"), SecretString::from(seed))
        .unwrap();
    let created: Vec<(String, String)> = guard
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            LifecycleEvent::Created { key, kind } => (key.clone(), kind.name().to_owned()),
            other => panic!("only creations happened: {other:?}"),
        })
        .collect();
    let want = [
        ("imported", "hmac"),
        ("generated", "hmac"),
        ("pair", "ed25519"),
        ("seed", "ed25519"),
    ]
    .map(|(k, kind)| (k.to_owned(), kind.to_owned()));
    assert_eq!(created, want);
}

/// `Custody::connect_with` installs the guard rails as part of connecting: a login refused at
/// connect is noted for the audit log (no session is logged in to MAC it), and the next
/// connect records it in the chain, which verifies.
#[test]
fn connect_with_audits_a_login_refused_at_connect() {
    use hsm_custody::audit::{self, AuditConfig, Fsync};
    use hsm_custody::{Custody, GuardConfig};

    let t = fresh_token("guard-connect-with");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let guard_config = || GuardConfig::new(AuditConfig::new(&log).fsync(Fsync::Always));

    let wrong = t.config().pin(SecretString::from("wrong-pin-000"));
    let err = Custody::connect_with(wrong, guard_config()).unwrap_err();
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");

    let (c, guard) = Custody::connect_with(t.config(), guard_config()).unwrap();
    assert!(
        c.set_guard(guard.clone()).is_err(),
        "the guard rails are installed already"
    );
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from("s3cret"))
        .unwrap();
    c.sign_hmac("k", HmacAlg::HmacSha256, b"m").unwrap();
    guard.sync().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("\"event\":\"login_failed\"").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains(&format!("\"token\":\"{}\"", t.label)),
        "{text}"
    );
    assert!(!text.contains("wrong-pin-000"));
    assert!(text.contains("\"event\":\"sign\""), "{text}");
    let report = audit::verify(
        &c,
        audit::DEFAULT_AUDIT_KEY,
        std::slice::from_ref(&log),
        None,
    )
    .unwrap();
    assert!(report.is_ok(), "{:?}", report.problem);
}
