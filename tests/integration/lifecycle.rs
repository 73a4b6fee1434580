//! Key lifecycle: versions, staged rotation, revocation, validity, crash safety, asymmetric keys.

use std::time::Duration;

use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use hsm_custody::{
    Custody, Error, HmacAlg, KeyKind, KeySpec, NewVersion, SecretString, VersionOrigin,
    VersionState,
};

use crate::common::{fresh_token, software_hmac, TestToken};

const A: &str = "secret-version-one-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const B: &str = "secret-version-two-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

fn mac_of(secret: &str) -> Vec<u8> {
    software_hmac(HmacAlg::HmacSha256, secret.as_bytes(), b"probe")
}

fn sign(c: &Custody, name: &str) -> Result<Vec<u8>, Error> {
    c.sign_hmac(name, HmacAlg::HmacSha256, b"probe")
        .map(|s| s.into_bytes())
}

fn sign_version(c: &Custody, name: &str, v: u32) -> Result<Vec<u8>, Error> {
    c.key(name)?
        .version(v)
        .hmac(HmacAlg::HmacSha256, b"probe")
        .map(|s| s.into_bytes())
}

fn states(c: &Custody, name: &str) -> Vec<(u32, VersionState)> {
    c.key_info(name)
        .unwrap()
        .versions
        .iter()
        .map(|v| (v.version, v.state))
        .collect()
}

/// Key objects (secret/private/public) of `name` in the token, counted by an outside session.
fn token_objects(t: &TestToken, name: &str) -> usize {
    let ctx = cryptoki::context::Pkcs11::new(&t.module).unwrap();
    let slot = crate::common::slot(t);
    let session = ctx.open_ro_session(slot).unwrap();
    [
        ObjectClass::SECRET_KEY,
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
    ]
    .into_iter()
    .map(|class| {
        session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(name.as_bytes().to_vec()),
                Attribute::Token(true),
            ])
            .unwrap()
            .len()
    })
    .sum()
}

#[test]
fn full_rotation_cycle() {
    let t = fresh_token("rotate");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
        .unwrap();
    assert_eq!(states(&c, "k"), vec![(1, VersionState::Active)]);

    let v2 = c
        .rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
        .unwrap();
    assert_eq!((v2.version, v2.state), (2, VersionState::Pending));
    assert_eq!(
        sign(&c, "k").unwrap(),
        mac_of(A),
        "active v1 still signs by default"
    );
    assert_eq!(
        sign_version(&c, "k", 2).unwrap(),
        mac_of(B),
        "pending v2 signs when named"
    );
    let err = c
        .rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
        .unwrap_err();
    assert!(
        matches!(err, Error::Lifecycle(_)),
        "a second pending version is refused: {err}"
    );

    c.rotate_promote("k").unwrap();
    assert_eq!(
        states(&c, "k"),
        vec![(1, VersionState::Previous), (2, VersionState::Active)]
    );
    assert_eq!(sign(&c, "k").unwrap(), mac_of(B));
    assert_eq!(
        sign_version(&c, "k", 1).unwrap(),
        mac_of(A),
        "previous usable for overlap"
    );
    assert_eq!(token_objects(&t, "k"), 2);

    assert_eq!(c.rotate_retire("k", None).unwrap(), vec![1]);
    assert_eq!(
        states(&c, "k"),
        vec![(1, VersionState::Retired), (2, VersionState::Active)]
    );
    assert!(matches!(
        sign_version(&c, "k", 1),
        Err(Error::KeyRevoked { version: 1, .. })
    ));
    assert_eq!(sign(&c, "k").unwrap(), mac_of(B));
    assert_eq!(
        token_objects(&t, "k"),
        1,
        "the retired version's object is destroyed"
    );
    assert!(matches!(
        c.rotate_retire("k", None),
        Err(Error::Lifecycle(_))
    ));
    assert!(matches!(c.rotate_promote("k"), Err(Error::Lifecycle(_))));

    // Version numbers are never reused.
    let v3 = c
        .rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(A)))
        .unwrap();
    assert_eq!(v3.version, 3);
}

#[test]
fn revoked_versions_refuse_to_sign_here_and_in_another_custody() {
    let t = fresh_token("revoke");
    let c = t.connect();
    // A second handle with its own cache and session copies (as another process would have).
    let other = Custody::connect(t.config().revalidate_interval(Duration::ZERO)).unwrap();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
        .unwrap();
    assert_eq!(sign(&other, "k").unwrap(), mac_of(A));
    assert_eq!(c.revoke("k", Some(1)).unwrap(), vec![1]);
    assert!(matches!(sign(&c, "k"), Err(Error::NoActiveVersion { .. })));
    assert!(matches!(
        sign_version(&c, "k", 1),
        Err(Error::KeyRevoked { .. })
    ));
    let err = sign(&other, "k").unwrap_err();
    assert!(
        matches!(err, Error::NoActiveVersion { .. }),
        "other handle: {err}"
    );
    assert_eq!(token_objects(&t, "k"), 0);
    assert!(matches!(c.revoke("k", Some(1)), Err(Error::Lifecycle(_))));
    assert!(matches!(
        c.revoke("k", Some(9)),
        Err(Error::VersionNotFound { .. })
    ));
    // After a full revocation the name can carry on with a new version, then promote it.
    c.rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
        .unwrap();
    c.rotate_promote("k").unwrap();
    assert_eq!(sign(&c, "k").unwrap(), mac_of(B));
}

#[test]
fn revoke_all_destroys_every_usable_version() {
    let t = fresh_token("revoke-all");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
        .unwrap();
    c.rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
        .unwrap();
    assert_eq!(c.revoke("k", None).unwrap(), vec![1, 2]);
    assert_eq!(token_objects(&t, "k"), 0);
    assert!(sign_version(&c, "k", 2).is_err());
}

#[test]
fn expired_and_not_yet_valid_versions_refuse_to_sign() {
    let t = fresh_token("validity");
    let c = t.connect();
    let today = time::OffsetDateTime::now_utc().date();
    let day = time::Duration::days(1);
    c.import_hmac_secret(
        KeySpec::hmac("old")
            .not_before(today - day * 30)
            .not_after(today - day),
        SecretString::from(A),
    )
    .unwrap();
    c.import_hmac_secret(
        KeySpec::hmac("future").not_before(today + day),
        SecretString::from(A),
    )
    .unwrap();
    c.import_hmac_secret(
        KeySpec::hmac("current")
            .not_before(today)
            .not_after(today + day * 10),
        SecretString::from(A),
    )
    .unwrap();
    assert!(matches!(sign(&c, "old"), Err(Error::KeyExpired { .. })));
    assert!(matches!(
        sign(&c, "future"),
        Err(Error::KeyNotYetValid { .. })
    ));
    assert_eq!(sign(&c, "current").unwrap(), mac_of(A));
    let info = c.key_info("current").unwrap();
    assert_eq!(info.active().unwrap().days_until_expiry(today), Some(10));
    // The dates also go into CKA_START_DATE / CKA_END_DATE at creation (C_CreateObject accepts
    // them; seen with pkcs11-spy). SoftHSM2 answers CKR_GENERAL_ERROR when they are read back
    // from a private key and does not enforce them, so the crate checks validity itself.
    let err = c
        .import_hmac_secret(
            KeySpec::hmac("bad")
                .not_before(today)
                .not_after(today - day),
            SecretString::from(A),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

/// Runs `op` with a crash injected at every step in turn, then checks the invariants and that
/// the operation completes when run again.
fn crash_at_every_step(
    tag: &str,
    setup: impl Fn(&Custody),
    op: impl Fn(&Custody) -> Result<(), Error>,
    check_done: impl Fn(&Custody),
) {
    let mut crashed = 0;
    for step in 1..=8 {
        let t = fresh_token(&format!("{tag}{step}"));
        let c = t.connect();
        setup(&c);
        c.danger_fail_lifecycle_after(Some(step));
        let outcome = op(&c);
        c.danger_fail_lifecycle_after(None);
        match outcome {
            Err(Error::InjectedFault { .. }) => crashed += 1,
            Ok(()) => {}
            Err(e) => panic!("{tag} step {step}: unexpected error {e}"),
        }
        // A fresh handle, as after a restart: consistent and usable.
        let c = t.connect();
        let info = c.key_info("k").unwrap();
        let active = info
            .versions
            .iter()
            .filter(|v| v.state == VersionState::Active)
            .count();
        let pending = info
            .versions
            .iter()
            .filter(|v| v.state == VersionState::Pending)
            .count();
        assert!(
            active <= 1 && pending <= 1,
            "{tag} step {step}: {:?}",
            info.versions
        );
        let usable = info.versions.iter().filter(|v| v.state.is_usable()).count();
        assert!(
            usable >= 1 || tag.starts_with("revoke"),
            "{tag} step {step}: no usable version"
        );
        if active == 1 {
            let mac = sign(&c, "k").unwrap_or_else(|e| panic!("{tag} step {step}: {e}"));
            assert!(
                mac == mac_of(A) || mac == mac_of(B),
                "{tag} step {step}: wrong MAC"
            );
        }
        // Completing (or repeating) the operation works, and leftovers are cleaned up.
        // (A crash after the commit point leaves the work done: the re-run then says there is
        // nothing left to do, and `check_done` verifies the state either way.)
        if matches!(outcome, Err(Error::InjectedFault { .. })) {
            match op(&c) {
                Ok(()) | Err(Error::Lifecycle(_)) => {}
                Err(e) => panic!("{tag} step {step}: re-run failed: {e}"),
            }
        }
        check_done(&c);
        let usable = c
            .key_info("k")
            .unwrap()
            .versions
            .iter()
            .filter(|v| v.state.is_usable())
            .count();
        // One more lifecycle call reconciles; then objects match usable versions exactly.
        let _ = c.rotate_retire("k", Some(99));
        assert_eq!(
            token_objects(&t, "k"),
            usable,
            "{tag} step {step}: stray key objects"
        );
    }
    assert!(crashed >= 1, "{tag}: the fault hook never fired");
}

#[test]
fn interrupted_import_leaves_a_clean_slate() {
    for step in 1..=3 {
        let t = fresh_token(&format!("crash-import{step}"));
        let c = t.connect();
        c.danger_fail_lifecycle_after(Some(step));
        let r = c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A));
        c.danger_fail_lifecycle_after(None);
        assert!(
            matches!(r, Err(Error::InjectedFault { .. })),
            "step {step}: {r:?}"
        );
        assert!(
            matches!(c.key("k"), Err(Error::KeyNotFound { .. })),
            "step {step}"
        );
        // Importing again succeeds: the leftover of the crash is ours and is removed.
        c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
            .unwrap();
        assert_eq!(sign(&c, "k").unwrap(), mac_of(A));
        assert_eq!(token_objects(&t, "k"), 1, "step {step}");
        // The seal's KEK (SoftHSM2 seals imports) is not left behind twice either.
        let keks = token_objects(&t, "k#seal");
        assert!(keks <= 1, "step {step}: {keks} KEKs");
        if crate::common::backend() == "softhsm" {
            assert_eq!(keks, 1, "step {step}: the new import is sealed");
        }
    }
}

#[test]
fn interrupted_rotate_begin_is_consistent() {
    crash_at_every_step(
        "crash-begin",
        |c| {
            c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
                .unwrap();
        },
        |c| {
            c.rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
                .map(|_| ())
        },
        |c| {
            assert_eq!(
                states(c, "k"),
                vec![(1, VersionState::Active), (2, VersionState::Pending)]
            )
        },
    );
}

#[test]
fn interrupted_promote_is_consistent() {
    crash_at_every_step(
        "crash-promote",
        |c| {
            c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
                .unwrap();
            c.rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
                .unwrap();
        },
        |c| c.rotate_promote("k").map(|_| ()),
        |c| {
            assert_eq!(
                states(c, "k"),
                vec![(1, VersionState::Previous), (2, VersionState::Active)]
            )
        },
    );
}

#[test]
fn interrupted_retire_is_consistent() {
    crash_at_every_step(
        "crash-retire",
        |c| {
            c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
                .unwrap();
            c.rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
                .unwrap();
            c.rotate_promote("k").unwrap();
        },
        |c| match c.rotate_retire("k", None) {
            // Re-running after a crash past the commit point finds nothing left to retire.
            Err(Error::Lifecycle(_)) => Ok(()),
            other => other.map(|_| ()),
        },
        |c| {
            assert_eq!(
                states(c, "k"),
                vec![(1, VersionState::Retired), (2, VersionState::Active)]
            )
        },
    );
}

#[test]
fn interrupted_revoke_is_consistent() {
    crash_at_every_step(
        "revoke",
        |c| {
            c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(A))
                .unwrap();
            c.rotate_begin(KeySpec::hmac("k"), NewVersion::Hmac(SecretString::from(B)))
                .unwrap();
        },
        |c| match c.revoke("k", Some(2)) {
            Err(Error::Lifecycle(_)) => Ok(()),
            other => other.map(|_| ()),
        },
        |c| {
            assert_eq!(
                states(c, "k"),
                vec![(1, VersionState::Active), (2, VersionState::Revoked)]
            );
            assert!(sign_version(c, "k", 2).is_err());
        },
    );
}

fn verify(kind: KeyKind, pem: &str, msg: &[u8], sig: &[u8]) {
    match kind {
        KeyKind::Ed25519 => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem).unwrap();
            let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
            key.verify_strict(msg, &sig)
                .expect("Ed25519 signature verifies");
        }
        KeyKind::P256 => {
            use p256::ecdsa::signature::Verifier;
            use p256::pkcs8::DecodePublicKey;
            assert_eq!(sig.len(), 64, "raw r||s");
            let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem).unwrap();
            let sig = p256::ecdsa::Signature::from_slice(sig).unwrap();
            key.verify(msg, &sig).expect("ES256 signature verifies");
        }
        KeyKind::Rsa2048 => {
            use rsa::pkcs8::DecodePublicKey;
            use sha2::Digest;
            let key = rsa::RsaPublicKey::from_public_key_pem(pem).unwrap();
            let digest = sha2::Sha256::digest(msg);
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, sig)
                .expect("RSA signature verifies");
        }
        _ => unreachable!(),
    }
}

#[test]
fn generated_key_pairs_sign_and_verify_and_stay_inside() {
    let t = fresh_token("asym");
    let c = t.connect();
    for (name, kind) in [
        ("ed", KeyKind::Ed25519),
        ("ec", KeyKind::P256),
        ("rsa", KeyKind::Rsa2048),
    ] {
        let info = c
            .generate_key(KeySpec::asymmetric(name).exchange("binance"), kind)
            .unwrap();
        assert!(info.flags.is_hardened(), "{name}: {:?}", info.flags);
        assert_eq!(
            info.flags.never_extractable,
            Some(true),
            "{name}: generated in the token"
        );
        let key = c.key(name).unwrap();
        let pem = key.public_key_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        let msg = b"symbol=BTCUSDT&side=SELL&timestamp=1668481559918";
        let sig = key.sign(msg).unwrap();
        verify(kind, &pem, msg, sig.as_bytes());
        assert!(matches!(
            key.hmac(HmacAlg::HmacSha256, msg),
            Err(Error::WrongKeyKind { .. })
        ));
        // The private key's secret parts cannot be read.
        let ctx = cryptoki::context::Pkcs11::new(&t.module).unwrap();
        let slot = crate::common::slot(&t);
        let s = ctx.open_ro_session(slot).unwrap();
        let private = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(name.as_bytes().to_vec()),
            ])
            .unwrap()[0];
        let secret_attr = if kind == KeyKind::Rsa2048 {
            AttributeType::PrivateExponent
        } else {
            AttributeType::Value
        };
        let read = s.get_attribute_info(private, &[secret_attr]).unwrap();
        assert!(
            matches!(read[0], AttributeInfo::Sensitive),
            "{name}: {read:?}"
        );
        // Rotation of a key pair generates a new pair.
        c.rotate_begin(KeySpec::hmac(name), NewVersion::Generate)
            .unwrap();
        c.rotate_promote(name).unwrap();
        let pem2 = c.key(name).unwrap().public_key_pem().unwrap();
        assert_ne!(pem, pem2, "{name}: a new key pair");
        let sig2 = c.key(name).unwrap().sign(msg).unwrap();
        verify(kind, &pem2, msg, sig2.as_bytes());
    }
    assert!(matches!(
        c.generate_key(KeySpec::asymmetric("ed"), KeyKind::Ed25519),
        Err(Error::KeyExists { .. })
    ));
}

#[test]
fn rfc8032_test_1_with_an_imported_ed25519_key() {
    // RFC 8032 section 7.1 TEST 1: secret key 9d61...7f60, empty message.
    use base64::Engine;
    let seed =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
    let t = fresh_token("rfc8032");
    let c = t.connect();
    c.import_ed25519_key(
        KeySpec::asymmetric("test-1"),
        SecretString::from(base64::engine::general_purpose::STANDARD.encode(&seed)),
    )
    .unwrap();
    let key = c.key("test-1").unwrap();
    assert_eq!(
        key.sign(b"").unwrap().to_hex(),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    let pem = key.public_key_pem().unwrap();
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let public = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).unwrap();
    assert_eq!(
        hex::encode(public.as_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    // A 64-byte seed||public whose halves disagree is refused.
    let mut bad = seed.clone();
    bad.extend_from_slice(&[0u8; 32]);
    let err = c
        .import_ed25519_key(
            KeySpec::asymmetric("bad"),
            SecretString::from(base64::engine::general_purpose::STANDARD.encode(&bad)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

/// A key another tool provisioned (a vendor's key ceremony, a TPM's `tpm2_ptool import`): a
/// token HMAC key with the vendor's own id, made here through an outside session.
/// How the vendor made the key.
#[derive(Clone, Copy, PartialEq)]
enum Vendor {
    /// Sensitive, non-extractable, sign/verify only.
    Hardened,
    /// As hardened, but usable for derivation (a weak key).
    Derive,
    /// As hardened, but not allowed to sign (the proof must catch it).
    NoSign,
}

fn vendor_key(t: &TestToken, label: &str, id: &[u8], secret: &[u8], how: Vendor) {
    use cryptoki::object::KeyType;
    let ctx = cryptoki::context::Pkcs11::new(&t.module).unwrap();
    let session = ctx.open_rw_session(crate::common::slot(t)).unwrap();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(how != Vendor::NoSign),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(how == Vendor::Derive),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
            Attribute::Value(secret.to_vec()),
        ])
        .unwrap();
}

/// `adopt_hmac_key` takes a vendor-provisioned key into custody without seeing its value: it
/// signs exchange requests as the software HMAC of the same secret, lists as one managed,
/// hardened key, and revoking it destroys the vendor's object. A weak key (CKA_DERIVE), no
/// key, two keys, or a key that may not sign (caught by the in-token proof) are refused with a typed
/// error that names the problem, and nothing is written or changed; a second adoption is
/// `KeyExists`; the CLI's `key adopt` does the same.
#[test]
fn vendor_provisioned_keys_are_adopted_checked_and_proven() {
    use hsm_custody::exchanges::Request;
    let t = fresh_token("adopt");
    let c = t.connect();
    let secret = [0x5a_u8; 64];
    vendor_key(&t, "vendor", b"ceremony-0001", &secret, Vendor::Hardened);
    let info = c
        .adopt_hmac_key(
            KeySpec::hmac("vendor")
                .exchange("binance")
                .algorithms(&[HmacAlg::HmacSha256]),
        )
        .unwrap();
    assert_eq!(info.kind, Some(KeyKind::Hmac));
    assert!(info.managed && info.flags.is_hardened(), "{info:?}");
    assert_eq!(info.versions[0].origin, VersionOrigin::Adopted);
    assert_eq!(
        info.versions[0].object_id.as_deref(),
        Some(hex::encode(b"ceremony-0001").as_str())
    );
    let query = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";
    let order = Request::post("/api/v3/order").query(query);
    // The crate holds a caller's timestamp to its clock: a clock at that time.
    let signed = c
        .exchange_signer("vendor")
        .unwrap()
        .with_clock(hsm_custody::exchanges::FixedClock(1_700_000_000_000))
        .sign(&order)
        .unwrap();
    assert_eq!(
        signed.signature,
        hex::encode(software_hmac(
            HmacAlg::HmacSha256,
            &secret,
            query.as_bytes()
        ))
    );
    let listed: Vec<_> = c
        .list_keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.name == "vendor")
        .collect();
    assert_eq!(listed.len(), 1, "one managed entry, no foreign duplicate");
    assert!(matches!(
        c.adopt_hmac_key(KeySpec::hmac("vendor")),
        Err(Error::KeyExists { .. })
    ));
    // The algorithms still bind an adopted key.
    assert!(matches!(
        c.sign_hmac("vendor", HmacAlg::HmacSha512, b"x"),
        Err(Error::AlgorithmNotAllowed { .. })
    ));

    // Refusals: each names the problem and writes nothing.
    vendor_key(&t, "weak", b"ceremony-0002", &secret, Vendor::Derive);
    let err = c.adopt_hmac_key(KeySpec::hmac("weak")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("CKA_DERIVE")),
        "{err}"
    );
    let err = c.adopt_hmac_key(KeySpec::hmac("absent")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("no secret key labelled `absent`")),
        "{err}"
    );
    vendor_key(&t, "twin", b"twin-1", &secret, Vendor::Hardened);
    vendor_key(&t, "twin", b"twin-2", &secret, Vendor::Hardened);
    let err = c.adopt_hmac_key(KeySpec::hmac("twin")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("2 secret keys")),
        "{err}"
    );
    // A key that may not sign: the in-token proof catches it.
    vendor_key(&t, "nosign", b"ceremony-0003", &secret, Vendor::NoSign);
    let err = c.adopt_hmac_key(KeySpec::hmac("nosign")).unwrap_err();
    assert!(matches!(&err, Error::SelfCheckFailed { .. }), "{err}");
    for name in ["weak", "twin", "nosign"] {
        assert!(
            matches!(c.key_info(name), Err(Error::KeyNotFound { .. })),
            "no metadata for `{name}`"
        );
    }
    assert_eq!(token_objects(&t, "weak"), 1, "the refused key is untouched");
    assert_eq!(token_objects(&t, "twin"), 2);

    // The CLI does the same.
    vendor_key(
        &t,
        "cli-vendor",
        b"ceremony-0004",
        &secret,
        Vendor::Hardened,
    );
    let out = crate::common::cli(
        &t,
        &[
            "key",
            "adopt",
            "--name",
            "cli-vendor",
            "--exchange",
            "kraken",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("adopted `cli-vendor`") && stdout.contains("hmac-sha512"),
        "{stdout}"
    );

    // Revoking an adopted key destroys the vendor's object.
    c.revoke("vendor", None).unwrap();
    assert_eq!(token_objects(&t, "vendor"), 0);
    assert!(c.sign_hmac("vendor", HmacAlg::HmacSha256, b"x").is_err());
}
