//! Further instances of the module in one process (`Config::module_copies`): HMAC signs spread
//! over them, right MACs from every instance, lifecycle changes reach every instance at once,
//! and files that are not copies of the module are refused. SoftHSM2 only: it is the module
//! whose instance signs one HMAC at a time, and the one whose file the tests can copy.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hsm_custody::{Custody, Error, HmacAlg, KeySpec, NewVersion, SecretString};

use crate::common::{backend, fresh_token, no_token_init, software_hmac, TestToken};
use crate::core::sign_and_check_from_threads;

const SECRET_A: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const SECRET_B: &str = "a second exchange secret, 64 bytes long, for the second test key";
/// Not sealed on SoftHSM2 (AES key wrap takes whole 8-byte blocks, and a secret longer than the
/// hash block cannot be padded): no session copy, so the first instance signs with it.
const SECRET_65: &str = "a third exchange secret, sixty-five bytes long, for the third key";

/// A copy of the test module in `dir`, mode 0644.
fn module_copy(t: &TestToken, dir: &Path, name: &str) -> PathBuf {
    crate::common::module_copy(&t.module, dir.join(name))
}

/// The token's slot id as the instance loaded from `module` lists it: an instance that
/// initialised the token itself keeps the id of the slot it was empty in, one loaded later gives
/// it an id made from the token's serial number, so the instances' ids differ.
fn slot_in(module: &Path, label: &str) -> cryptoki_sys::CK_SLOT_ID {
    let ctx = crate::common::raw_context(module);
    ctx.get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == label)
        })
        .expect("the copy lists the token")
        .id()
}

/// A fresh token, a copy of the module in a temp dir (kept alive by the returned guard), and the
/// crate connected with `config` plus the copy, with `secret` imported as key `name`.
fn with_copy(
    tag: &str,
    config: impl FnOnce(hsm_custody::Config) -> hsm_custody::Config,
    name: &str,
    secret: &str,
) -> (TestToken, tempfile::TempDir, PathBuf, Custody) {
    let t = fresh_token(tag);
    let dir = tempfile::tempdir().unwrap();
    let copy = module_copy(&t, dir.path(), &format!("libsofthsm2-{tag}.so"));
    // The copy's instance reads the token directory as a second process would, and SoftHSM2
    // can answer CKR_GENERAL_ERROR while another test initialises a token there: none is
    // initialised meanwhile (as for child processes).
    let c = {
        let _no_init = no_token_init();
        Custody::connect(config(t.config()).module_copies([&copy])).unwrap()
    };
    c.import_hmac_secret(KeySpec::hmac(name), SecretString::from(secret))
        .unwrap();
    (t, dir, copy, c)
}

fn softhsm_only() -> bool {
    if backend() != "softhsm" {
        println!("module copies are measured and tested on SoftHSM2 only; skipped");
        return false;
    }
    true
}

#[test]
fn threads_spread_over_two_module_instances_sign_right() {
    if !softhsm_only() {
        return;
    }
    let (_t, _dir, _copy, c) = with_copy("copies-sign", |c| c.pool_size(4), "a", SECRET_A);
    assert_eq!(c.module_instances(), 2);
    c.import_hmac_secret(KeySpec::hmac("b"), SecretString::from(SECRET_B))
        .unwrap();
    let per_thread = 2_000;
    let keys = (0..4)
        .map(|i| match i % 2 {
            0 => ("a".to_owned(), SECRET_A.to_owned()),
            _ => ("b".to_owned(), SECRET_B.to_owned()),
        })
        .collect();
    sign_and_check_from_threads(&c, keys, per_thread);
    let s = c.stats();
    println!("{s:?}");
    // Threads take the instances round robin and keep theirs: two of the four signed on the
    // copy.
    assert_eq!(s.hmacs_on_copies, 2 * per_thread as u64, "{s:?}");
    assert_eq!(s.in_use, 0);
    // A key with no session copy: the copy's thread has the first instance sign it.
    // (SHA-384/512 only: a 65-byte secret is within their 128-byte block, so it is stored as
    // is; for SHA-256 it would be stored as its hash, and sealed.)
    let wide = [HmacAlg::HmacSha384, HmacAlg::HmacSha512];
    c.import_hmac_secret(
        KeySpec::hmac("long").algorithms(&wide),
        SecretString::from(SECRET_65),
    )
    .unwrap();
    assert!(!c.fast_path_active("long").unwrap());
    for _ in 0..2 {
        let c = c.clone();
        std::thread::spawn(move || {
            let key = c.key("long").unwrap();
            for n in 0..30 {
                let alg = wide[n % 2];
                let msg = format!("n={n}");
                assert_eq!(
                    key.hmac(alg, msg.as_bytes()).unwrap().as_bytes(),
                    crate::common::software_hmac(alg, SECRET_65.as_bytes(), msg.as_bytes())
                );
            }
        })
        .join()
        .unwrap();
    }
    assert_eq!(
        c.stats().hmacs_on_copies,
        s.hmacs_on_copies,
        "none on the copy"
    );
}

/// Two threads, one on each instance, sign; then a revocation and a rotation made through the
/// first instance must hold on the copy at once, not after the cache's revalidation interval
/// (set to an hour here).
#[test]
fn lifecycle_changes_reach_every_instance_at_once() {
    if !softhsm_only() {
        return;
    }
    let (_t, _dir, _copy, c) = with_copy(
        "copies-life",
        |c| c.revalidate_interval(Duration::from_secs(3600)),
        "k",
        SECRET_A,
    );
    let msg = b"symbol=BTCUSDT&side=BUY";
    let steps = Arc::new(Barrier::new(3));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            let steps = steps.clone();
            std::thread::spawn(move || {
                let key = c.key("k").unwrap();
                // Version 1 signs.
                let v1 = key.hmac(HmacAlg::HmacSha256, msg).unwrap();
                steps.wait(); // both signed
                steps.wait(); // rotated to version 2
                let v2 = key.hmac(HmacAlg::HmacSha256, msg).unwrap();
                steps.wait(); // both signed with version 2
                steps.wait(); // revoked
                let after = key.hmac(HmacAlg::HmacSha256, msg);
                (v1, v2, after)
            })
        })
        .collect();
    steps.wait();
    assert_eq!(c.stats().hmacs_on_copies, 1, "one thread on each instance");
    c.rotate_begin(
        KeySpec::hmac("k"),
        NewVersion::Hmac(SecretString::from(SECRET_B)),
    )
    .unwrap();
    c.rotate_promote("k").unwrap();
    steps.wait();
    steps.wait();
    c.revoke("k", None).unwrap();
    steps.wait();
    for w in workers {
        let (v1, v2, after) = w.join().unwrap();
        assert_eq!(
            v1.as_bytes(),
            software_hmac(HmacAlg::HmacSha256, SECRET_A.as_bytes(), msg)
        );
        assert_eq!(
            v2.as_bytes(),
            software_hmac(HmacAlg::HmacSha256, SECRET_B.as_bytes(), msg),
            "the promoted version signs on every instance"
        );
        match after {
            Err(Error::KeyRevoked { .. } | Error::NoActiveVersion { .. }) => {}
            other => panic!("signed after the revocation: {other:?}"),
        }
    }
    assert_eq!(c.stats().hmacs_on_copies, 2);
}

#[test]
fn files_that_are_not_copies_of_the_module_are_refused() {
    if !softhsm_only() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let t = fresh_token("copies-refused");
    let dir = tempfile::tempdir().unwrap();
    let refused = |copies: Vec<PathBuf>, why: &str| {
        let err = Custody::connect(t.config().module_copies(copies)).unwrap_err();
        assert!(
            matches!(err, Error::ModuleLoad { .. }) && err.to_string().contains(why),
            "expected `{why}`, got: {err}"
        );
    };
    // A link to the module: the loader would hand back the same instance.
    let link = dir.path().join("link.so");
    std::os::unix::fs::symlink(&t.module, &link).unwrap();
    refused(vec![link], "the module file itself");
    // Another library.
    let other = dir.path().join("other.so");
    std::fs::write(&other, b"\x7fELF not the module").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(vec![other], "bytes differ");
    // A copy anyone may overwrite.
    let open = module_copy(&t, dir.path(), "open.so");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    refused(vec![open], "writable by other users");
    // The same copy twice.
    let copy = module_copy(&t, dir.path(), "twice.so");
    refused(vec![copy.clone(), copy], "the same file as");
    // Missing.
    refused(vec![dir.path().join("missing.so")], "missing.so");
}

/// Sessions closed and the login lost behind the crate's back, on the copy's instance only,
/// while four threads (two on each instance) sign: no sign fails or comes out wrong, and the
/// copy goes on signing after every sabotage (its own recovery, not the first instance's).
#[test]
fn a_copy_recovers_from_lost_sessions_and_logins_on_its_own() {
    if !softhsm_only() {
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    let (t, _dir, copy, c) = with_copy("copies-faults", |c| c.pool_size(4), "k", SECRET_A);
    // The copy's instance, as another library in the process would reach it.
    let other = crate::common::RawModule::load(&copy).unwrap();
    let slot = slot_in(&copy, &t.label);
    // SoftHSM2 frees a session under a thread inside C_SignInit with it (use after free): the
    // sabotage lands between signs, as in `core::signs_survive`.
    let in_flight = Arc::new(std::sync::RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u32)
        .map(|i| {
            let (c, stop, in_flight) = (c.clone(), stop.clone(), in_flight.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let msg = format!("w{i}-{n}");
                    let _guard = in_flight.read().unwrap();
                    let mac = c
                        .sign_hmac("k", HmacAlg::HmacSha256, msg.as_bytes())
                        .unwrap_or_else(|e| panic!("sign failed in worker {i} at {n}: {e}"));
                    assert_eq!(
                        mac.as_bytes(),
                        software_hmac(HmacAlg::HmacSha256, SECRET_A.as_bytes(), msg.as_bytes())
                    );
                    n += 1;
                }
            })
        })
        .collect();
    let mut on_copy = c.stats().hmacs_on_copies;
    for round in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        {
            let _all_idle = in_flight.write().unwrap();
            // SAFETY: plain PKCS#11 calls with a slot id and valid out-pointers.
            unsafe {
                if round % 2 == 0 {
                    assert_eq!(other.C_CloseAllSessions(slot), cryptoki_sys::CKR_OK);
                } else {
                    let mut h: cryptoki_sys::CK_SESSION_HANDLE = 0;
                    let flags = cryptoki_sys::CKF_SERIAL_SESSION | cryptoki_sys::CKF_RW_SESSION;
                    let rv = other.C_OpenSession(slot, flags, std::ptr::null_mut(), None, &mut h);
                    assert_eq!(rv, cryptoki_sys::CKR_OK);
                    let rv = other.C_Logout(h);
                    assert!(
                        rv == cryptoki_sys::CKR_OK || rv == cryptoki_sys::CKR_USER_NOT_LOGGED_IN,
                        "{rv:#x}"
                    );
                    other.C_CloseSession(h);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(25));
        let now = c.stats().hmacs_on_copies;
        assert!(now > on_copy, "the copy signs again after sabotage {round}");
        on_copy = now;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("no sign may fail");
    }
    println!("{:?}", c.stats());
}
