//! Core: import, sign, hardening, duplicates, PIN handling, concurrency, recovery, redaction.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use hsm_custody::{Custody, Error, HmacAlg, KeySpec, SecretEncoding, SecretString};

use crate::common::{backend, fresh_token, software_hmac, TestToken};

const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

#[test]
fn import_and_sign_match_software_for_all_hmacs() {
    let t = fresh_token("sw");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(BINANCE_SECRET))
        .unwrap();
    let key = c.key("k").unwrap();
    for alg in HmacAlg::ALL {
        for msg in [&b""[..], b"a", &[7u8; 1000][..]] {
            let mac = key.hmac(alg, msg).unwrap();
            assert_eq!(
                mac.as_bytes(),
                software_hmac(alg, BINANCE_SECRET.as_bytes(), msg),
                "{alg}"
            );
        }
    }
}

#[test]
fn rfc4231_test_case_2_in_the_token() {
    // RFC 4231 section 4.3: key "Jefe" (4 bytes, shorter than every digest: stored zero-padded).
    let t = fresh_token("rfc4231");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("jefe"), SecretString::from("Jefe"))
        .unwrap();
    let key = c.key("jefe").unwrap();
    let data = b"what do ya want for nothing?";
    let expected = [
        (HmacAlg::HmacSha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (HmacAlg::HmacSha384, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
        (HmacAlg::HmacSha512, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
    ];
    for (alg, hex) in expected {
        assert_eq!(key.hmac(alg, data).unwrap().to_hex(), hex, "{alg}");
    }
    // RFC 4231 test case 1: 20 bytes of 0x0b, "Hi There" (a non-UTF-8-looking key via base64).
    c.import_hmac_secret(
        KeySpec::hmac("tc1").encoding(SecretEncoding::Base64),
        SecretString::from("CwsLCwsLCwsLCwsLCwsLCwsLCws="),
    )
    .unwrap();
    assert_eq!(
        c.key("tc1")
            .unwrap()
            .hmac(HmacAlg::HmacSha256, b"Hi There")
            .unwrap()
            .to_hex(),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
}

#[test]
fn binance_documented_signature() {
    let t = fresh_token("binance-doc");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("b").exchange("binance"),
        SecretString::from(BINANCE_SECRET),
    )
    .unwrap();
    let q = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    assert_eq!(
        c.sign_hmac("b", HmacAlg::HmacSha256, q.as_bytes())
            .unwrap()
            .to_hex(),
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    );
}

/// An attacker's view: a second PKCS#11 context on the same module in this process (logged in,
/// since login is per application), finding the key by label.
fn attacker_session(t: &TestToken) -> (cryptoki::session::Session, cryptoki::object::ObjectHandle) {
    let ctx = Pkcs11::new(&t.module).unwrap();
    let slot = crate::common::slot(t);
    let session = ctx.open_rw_session(slot).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"k".to_vec()),
            Attribute::Token(true),
        ])
        .unwrap();
    assert_eq!(key.len(), 1, "exactly one token object for the key");
    (session, key[0])
}

#[test]
fn key_value_cannot_be_read_and_protection_cannot_be_lowered() {
    let t = fresh_token("harden");
    let c = t.connect();
    let info = c
        .import_hmac_secret(KeySpec::hmac("k"), SecretString::from(BINANCE_SECRET))
        .unwrap();
    assert!(info.flags.is_hardened(), "{:?}", info.flags);
    assert_eq!(info.flags.sign, Some(true));
    assert_eq!(info.flags.modifiable, Some(false));

    let (session, key) = attacker_session(&t);
    // One C_GetAttributeValue for CKA_VALUE: the token must answer CKR_ATTRIBUTE_SENSITIVE.
    let value = session
        .get_attribute_info(key, &[AttributeType::Value])
        .unwrap();
    assert!(matches!(value[0], AttributeInfo::Sensitive), "{value:?}");
    assert_eq!(
        c.value_read_refusal("k").unwrap(),
        "CKR_ATTRIBUTE_SENSITIVE"
    );

    for attempt in [
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Derive(true),
        Attribute::Encrypt(true),
        Attribute::Wrap(true),
        Attribute::Modifiable(true),
    ] {
        let name = format!("{attempt:?}");
        match session.update_attributes(key, &[attempt]) {
            Err(CkError::Pkcs11(rv, _)) => assert!(
                matches!(rv, RvError::AttributeReadOnly | RvError::ActionProhibited),
                "{name}: unexpected {rv:?}"
            ),
            other => panic!("{name}: the token accepted the change: {other:?}"),
        }
    }
    // A copy cannot be made extractable or non-sensitive either.
    for attempt in [Attribute::Extractable(true), Attribute::Sensitive(false)] {
        let name = format!("{attempt:?}");
        assert!(
            session.copy_object(key, &[attempt]).is_err(),
            "{name}: copy accepted"
        );
    }
    // Still signing correctly after all that.
    assert_eq!(
        c.sign_hmac("k", HmacAlg::HmacSha256, b"x")
            .unwrap()
            .as_bytes(),
        software_hmac(HmacAlg::HmacSha256, BINANCE_SECRET.as_bytes(), b"x")
    );
}

#[test]
fn duplicate_name_is_refused_and_the_original_survives() {
    let t = fresh_token("dup");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from("first-secret"))
        .unwrap();
    let err = c
        .import_hmac_secret(KeySpec::hmac("k"), SecretString::from("second-secret"))
        .unwrap_err();
    assert!(matches!(err, Error::KeyExists { .. }), "{err}");
    assert!(err.to_string().contains("`k`"), "{err}");
    assert_eq!(
        c.sign_hmac("k", HmacAlg::HmacSha256, b"m")
            .unwrap()
            .as_bytes(),
        software_hmac(HmacAlg::HmacSha256, b"first-secret", b"m")
    );
    let keys = c.list_keys().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let t = fresh_token("badin");
    let c = t.connect();
    let err = c
        .import_hmac_secret(
            KeySpec::hmac("k").encoding(SecretEncoding::Base64),
            SecretString::from("***not-base64***"),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    for bad in ["", "has space", "-lead"] {
        let err = c
            .import_hmac_secret(KeySpec::hmac(bad), SecretString::from("s"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
    }
    assert!(c.list_keys().unwrap().is_empty());
    let err = c.key("missing").unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&t.label), "{err}");
}

#[test]
fn algorithm_restriction_is_enforced() {
    let t = fresh_token("algs");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("k").algorithms(&[HmacAlg::HmacSha384]),
        SecretString::from("gemini-style-secret"),
    )
    .unwrap();
    assert!(c.sign_hmac("k", HmacAlg::HmacSha384, b"m").is_ok());
    let err = c.sign_hmac("k", HmacAlg::HmacSha256, b"m").unwrap_err();
    assert!(matches!(err, Error::AlgorithmNotAllowed { .. }), "{err}");
}

#[test]
fn wrong_pin_is_a_typed_error_and_is_not_retried() {
    let t = fresh_token("pin");
    let config =
        hsm_custody::Config::new(&t.module, &t.label).pin(SecretString::from("wrong-PIN-7781"));
    let err = Custody::connect(config).unwrap_err();
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("not retried") && msg.contains(&t.label),
        "{msg}"
    );
    assert!(!msg.contains("wrong-PIN-7781") && !format!("{err:?}").contains("wrong-PIN-7781"));
    // The right PIN still works: nothing was locked by retries.
    t.connect();
}

#[test]
fn no_pin_is_a_config_error() {
    let t = fresh_token("nopin");
    let err = Custody::connect(hsm_custody::Config::new(&t.module, &t.label)).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn unknown_token_and_module_are_clear_errors() {
    let t = fresh_token("unknown");
    let err = Custody::connect(hsm_custody::Config::new(&t.module, "no-such-token")).unwrap_err();
    assert!(matches!(err, Error::TokenNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains(&t.label),
        "lists the present tokens: {err}"
    );
    let err = Custody::connect(hsm_custody::Config::new("/nonexistent/lib.so", "x")).unwrap_err();
    assert!(matches!(err, Error::ModuleLoad { .. }), "{err}");
}

#[test]
fn second_connect_reuses_the_module() {
    let a = fresh_token("twice-a");
    let b = fresh_token("twice-b");
    let ca1 = a.connect();
    let ca2 = a.connect();
    let cb = b.connect();
    ca1.import_hmac_secret(KeySpec::hmac("k"), SecretString::from("shared"))
        .unwrap();
    assert!(
        ca2.key("k").is_ok(),
        "same token, second Custody sees the key"
    );
    assert!(
        matches!(cb.key("k"), Err(Error::KeyNotFound { .. })),
        "other token does not"
    );
    drop(ca1);
    // Dropping one Custody must not log the other out.
    assert!(ca2.sign_hmac("k", HmacAlg::HmacSha256, b"m").is_ok());
}

/// `count` MACs from thread `thread` with `key`, each alg in turn, each checked against the
/// software HMAC with `secret`.
/// Signs `count` messages with `key`, cycling through the HMAC algorithms, and checks each MAC
/// against software HMAC with `secret`.
pub(crate) fn sign_and_check(key: &hsm_custody::KeyRef, thread: usize, secret: &str, count: usize) {
    for n in 0..count {
        let msg = format!("thread={thread}&n={n}");
        let alg = HmacAlg::ALL[n % 3];
        let mac = key.hmac(alg, msg.as_bytes()).unwrap();
        assert_eq!(
            mac.as_bytes(),
            software_hmac(alg, secret.as_bytes(), msg.as_bytes()),
            "wrong MAC in thread {thread} at {n}"
        );
    }
}

/// One thread per `(key name, secret)`, each running [`sign_and_check`] `count` times with its
/// index as the thread number; returns when all have finished (a failed check fails the test).
fn sign_and_check_from_threads(c: &Custody, keys: Vec<(String, String)>, count: usize) {
    let workers: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(i, (name, secret))| {
            let c = c.clone();
            std::thread::spawn(move || {
                sign_and_check(&c.key(&name).unwrap(), i, &secret, count);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

fn concurrent_signs(label: &str, fast_path: bool, serialize_hmac: Option<bool>) {
    let t = fresh_token(label);
    let mut config = t.config().pool_size(4).fast_path(fast_path);
    if let Some(on) = serialize_hmac {
        config = config.serialize_hmac(on);
    }
    let c = Custody::connect(config).unwrap();
    // By default HMAC signs go one at a time on SoftHSM2 only.
    assert_eq!(
        c.serializes_hmac(),
        serialize_hmac.unwrap_or(backend() == "softhsm")
    );
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(BINANCE_SECRET))
        .unwrap();
    let keys = vec![("k".to_owned(), BINANCE_SECRET.to_owned()); 8];
    sign_and_check_from_threads(&c, keys, 10_000);
    let s = c.stats();
    assert!(s.open <= 4 && s.opened <= 4, "pool stayed bounded: {s:?}");
    assert_eq!(s.in_use, 0);
    // With the turn, the threads beyond the core count sign past it (8 threads here); without
    // it, none does.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !c.serializes_hmac() {
        assert_eq!(s.hmacs_past_the_turn, 0, "{s:?}");
    } else if cores < 8 {
        assert!(
            s.hmacs_past_the_turn > 0,
            "no thread signed past the turn: {s:?}"
        );
    }
}

#[test]
fn eight_threads_ten_thousand_signs_each_fast_path() {
    concurrent_signs("conc-fast", true, None);
}

#[test]
fn eight_threads_ten_thousand_signs_each_token_object() {
    concurrent_signs("conc-slow", false, None);
}

#[test]
fn eight_threads_ten_thousand_signs_each_hmac_serialization_flipped() {
    // The other setting than this module's default: serialized where signs run in parallel by
    // default, and the reverse on SoftHSM2.
    concurrent_signs("conc-flip", true, Some(backend() != "softhsm"));
}

#[test]
fn as_many_threads_as_cores_sign_for_each_other_with_their_own_keys() {
    // HMAC signs one at a time (forced, so every backend runs this): with no more threads than
    // cores, a thread that finds the turn taken has the holder sign for it, on the holder's
    // session but with the waiter's key. Each thread signs with a different key, so a MAC made
    // with the wrong key (or for the wrong message) shows.
    let t = fresh_token("conc-combine");
    let c = Custody::connect(t.config().pool_size(4).serialize_hmac(true)).unwrap();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    // 64 bytes each: a longer secret is stored as its hash, for one algorithm only, and these
    // keys sign with all three.
    let secrets: Vec<String> = (0..threads)
        .map(|i| format!("{i:02}{}", &BINANCE_SECRET[2..]))
        .collect();
    for (i, secret) in secrets.iter().enumerate() {
        c.import_hmac_secret(
            KeySpec::hmac(format!("k{i}")),
            SecretString::from(secret.clone()),
        )
        .unwrap();
    }
    let keys = secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| (format!("k{i}"), secret))
        .collect();
    sign_and_check_from_threads(&c, keys, 5_000);
    let s = c.stats();
    println!("{s:?}");
    if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) {
        assert!(s.hmacs_signed_for_others > 0, "no sign was combined: {s:?}");
    }
    assert_eq!(s.hmacs_handed_back, 0, "{s:?}");
    assert_eq!(s.in_use, 0);
}

/// Raw C_CloseAllSessions / C_Logout through a separate dlopen of the module (its function
/// list): "another handle".
struct OtherHandle {
    lib: crate::raw_pkcs11::RawModule,
    slot: cryptoki_sys::CK_SLOT_ID,
}

impl OtherHandle {
    fn new(t: &TestToken) -> Self {
        let slot = crate::common::slot(t);
        let lib = crate::raw_pkcs11::RawModule::load(&t.module).unwrap();
        OtherHandle {
            lib,
            slot: slot.id(),
        }
    }

    fn close_all_sessions(&self) -> cryptoki_sys::CK_RV {
        self.lib.close_all_sessions(self.slot)
    }

    fn logout(&self) -> cryptoki_sys::CK_RV {
        self.lib.logout(self.slot)
    }
}

fn signs_survive(
    tag: &str,
    fast_path: bool,
    between_calls: bool,
    sabotage: impl Fn(&OtherHandle) + Send + Sync + 'static,
) {
    let t = fresh_token(tag);
    let c = Custody::connect(t.config().pool_size(4).fast_path(fast_path)).unwrap();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(BINANCE_SECRET))
        .unwrap();
    let other = Arc::new(OtherHandle::new(&t));
    // SoftHSM2 2.6.1 crashes (use after free inside C_SignInit) when C_CloseAllSessions frees a
    // session another thread is inside of; no application can survive that, so the sabotage
    // lands between calls: workers hold `in_flight` for reading around each sign.
    let in_flight = Arc::new(std::sync::RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4u32)
        .map(|i| {
            let (c, stop, done) = (c.clone(), stop.clone(), done.clone());
            let in_flight = in_flight.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let msg = format!("w{i}-{n}");
                    let _guard = between_calls.then(|| in_flight.read().unwrap());
                    let mac = c
                        .sign_hmac("k", HmacAlg::HmacSha256, msg.as_bytes())
                        .unwrap_or_else(|e| panic!("sign failed in worker {i} at {n}: {e}"));
                    assert_eq!(
                        mac.as_bytes(),
                        software_hmac(
                            HmacAlg::HmacSha256,
                            BINANCE_SECRET.as_bytes(),
                            msg.as_bytes()
                        )
                    );
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        let _all_idle = in_flight.write().unwrap(); // uncontended when !between_calls
        sabotage(&other);
    }
    std::thread::sleep(Duration::from_millis(25));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("no sign may fail");
    }
    let s = c.stats();
    assert!(
        done.load(Ordering::Relaxed) > 100,
        "the workers made progress"
    );
    assert!(
        s.relogins >= 1,
        "the sabotage was noticed and recovered: {s:?}"
    );
    assert!(s.open <= 4, "{s:?}");
}

#[test]
fn close_all_sessions_behind_the_pools_back_loses_no_sign() {
    signs_survive("closeall", true, true, |o| {
        assert_eq!(o.close_all_sessions(), cryptoki_sys::CKR_OK)
    });
}

#[test]
fn logout_behind_the_pools_back_loses_no_sign() {
    // Logout races freely with in-flight signs (SoftHSM2 survives that, with GENERAL_ERROR).
    signs_survive("logout", true, false, |o| {
        let rv = o.logout();
        assert!(
            rv == cryptoki_sys::CKR_OK || rv == cryptoki_sys::CKR_USER_NOT_LOGGED_IN,
            "{rv:#x}"
        );
    });
}

#[test]
fn pin_and_secret_never_appear_in_debug_or_display() {
    let t = fresh_token("redact");
    let pin_text = t.user_pin_text();
    let secret = "SENTINEL-secret-value-4242";
    let config = t.config();
    let c = Custody::connect(config.clone()).unwrap();
    let info = c
        .import_hmac_secret(
            KeySpec::hmac("k").exchange("binance"),
            SecretString::from(secret),
        )
        .unwrap();
    let dup = c
        .import_hmac_secret(KeySpec::hmac("k"), SecretString::from(secret))
        .unwrap_err();
    let bad = c
        .import_hmac_secret(
            KeySpec::hmac("k2").encoding(SecretEncoding::Base64),
            SecretString::from("SENTINEL-not-base64!"),
        )
        .unwrap_err();
    // A token nobody in this process is logged in to (login is per application: on `t` a
    // second C_Login answers USER_ALREADY_LOGGED_IN without checking the PIN).
    let other = fresh_token("redact-pin");
    let wrong = Custody::connect(
        hsm_custody::Config::new(&other.module, &other.label)
            .pin(SecretString::from("SENTINEL-PIN-99")),
    )
    .unwrap_err();
    let key = c.key("k").unwrap();
    let outputs = [
        format!("{config:?}"),
        format!("{c:?}"),
        format!("{key:?}"),
        format!("{info:?}"),
        format!("{:?}", c.list_keys().unwrap()),
        format!("{:?}", c.stats()),
        format!("{:?}", c.token_info().unwrap()),
        format!("{dup:?} {dup}"),
        format!("{bad:?} {bad}"),
        format!("{wrong:?} {wrong}"),
        format!("{:?}", SecretString::from(secret)),
    ];
    for out in outputs {
        for needle in [pin_text.as_str(), secret, "SENTINEL"] {
            assert!(!out.contains(needle), "`{needle}` leaked into: {out}");
        }
    }
}

#[test]
fn wrong_pin_costs_exactly_one_c_login() {
    // Run the CLI under OpenSC's pkcs11-spy, which logs every PKCS#11 call it forwards. The spy
    // only wraps the PKCS#11 2.x and 3.0 interfaces: a module whose default interface is newer
    // (Kryoptic 1.5 answers C_GetInterface with 3.2) comes back unwrapped and the spy logs
    // nothing after C_GetInterface. So the spy traces fault-module (no faults configured), a
    // 2.40 wrapper that exports only C_GetFunctionList and forwards every call to the module
    // under test (FAULT_MODULE_TARGET, set by `child_env`): the same log on every backend.
    let spy = [
        "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so",
        "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("pkcs11-spy.so (Debian package opensc-pkcs11) is installed by softhsm-setup/setup.sh");
    let t = fresh_token("spy");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("spy.log");
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "definitely-wrong").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _no_init = crate::common::no_token_init();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
        .args(["key", "list", "--pin-file"])
        .arg(&pin_file)
        .envs(crate::common::child_env())
        .env("HSM_CUSTODY_MODULE", spy)
        .env("HSM_CUSTODY_TOKEN", &t.label)
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .env("PKCS11SPY", crate::faults::fault_module_path())
        .env("FAULT_MODULE_TARGET", &t.module)
        .env_remove("FAULT_PERIOD")
        .env_remove("FAULT_KINDS")
        .env("PKCS11SPY_OUTPUT", &log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code 3 for a PIN error; stderr: {stderr}"
    );
    assert!(stderr.contains("PIN incorrect"), "{stderr}");
    assert!(!stderr.contains("definitely-wrong"), "{stderr}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("C_GetTokenInfo"),
        "the spy traced the calls; spy log:\n{calls}"
    );
    let logins = calls.lines().filter(|l| l.contains("C_Login")).count();
    assert_eq!(logins, 1, "exactly one C_Login; spy log:\n{calls}");
}

/// The connect-time custody probe: SoftHSM2 and Kryoptic refuse every extraction of a
/// non-extractable throwaway key, so a plain connect works; NSS softokn lets such a key out
/// (wrap with an own AES key, copy with EXTRACTABLE=true), so connect is refused with a typed
/// error naming the opt-in, and works with the opt-in.
#[test]
fn custody_probe_at_connect_matches_the_backend() {
    let t = fresh_token("custody-probe");
    let strict = Custody::connect(t.strict_config());
    // Read by scripts/backend-table.sh (`--show-output`).
    println!(
        "backend-table: custody-grade {}",
        match &strict {
            Ok(_) => "yes",
            Err(Error::NotCustodyGrade { .. }) => "NO",
            Err(_) => "unknown",
        }
    );
    match crate::common::backend() {
        "softhsm" | "kryoptic" => {
            strict.expect("a custody-grade module connects without any opt-in");
        }
        "nss" => {
            let err = strict.expect_err("NSS softokn is not custody-grade");
            let Error::NotCustodyGrade { failed, .. } = &err else {
                panic!("expected NotCustodyGrade, got {err:?}");
            };
            // The opt-in is advice: it moved from the message to the hint.
            let text = err.hint().unwrap_or_default();
            assert!(
                text.contains("danger_accept_non_custody_module = true")
                    && text.contains("HSM_CUSTODY_DANGER_ACCEPT_NON_CUSTODY_MODULE=1"),
                "{text}"
            );
            // Exactly the probe steps softokn 3.87 lets through.
            let steps: Vec<&str> = failed
                .split("; ")
                .map(|s| s.split(':').next().unwrap_or(""))
                .collect();
            assert_eq!(
                steps,
                [
                    "wrap with an own AES key (AES_KEY_WRAP)",
                    "wrap with an own AES key (AES_KEY_WRAP_PAD)",
                    "copy with CKA_EXTRACTABLE=true"
                ],
                "{failed}"
            );
            // The verdict is cached: still refused, and the opt-in connects.
            assert!(matches!(
                Custody::connect(t.strict_config()),
                Err(Error::NotCustodyGrade { .. })
            ));
            let c = Custody::connect(t.strict_config().danger_accept_non_custody_module(true))
                .expect("with the opt-in, connect works");
            assert_eq!(c.token_info().unwrap().label, t.label);
        }
        other => panic!("no expectation for backend `{other}`"),
    }
}
