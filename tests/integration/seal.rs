//! Sealed session copies (issue 8's fast path on SoftHSM2): what import makes, that the crate
//! then signs with a session copy, and that nothing about the seal lets the secret out.

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use hsm_custody::{HmacAlg, KeySpec};
use secrecy::SecretString;

use hmac::Mac as _;

use crate::common::{backend, fresh_token, slot};

const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

/// The KEKs of key `name` (one per sealed version).
fn kek(s: &Session, name: &str) -> Vec<cryptoki::object::ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(format!("{name}#seal").into_bytes()),
    ])
    .unwrap()
}

/// The key's metadata (JSON), read as anyone logged in could.
fn meta(s: &Session, name: &str) -> serde_json::Value {
    let metas = s
        .find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(name.as_bytes().to_vec()),
        ])
        .unwrap();
    let value = s.get_attributes(metas[0], &[AttributeType::Value]).unwrap();
    let Some(Attribute::Value(json)) = value.into_iter().next() else {
        panic!("metadata has a value");
    };
    serde_json::from_slice(&json).unwrap()
}

/// The seal blob of `name` v`version`, from its metadata.
fn blob(s: &Session, name: &str, version: u32) -> Option<Vec<u8>> {
    meta(s, name)["seals"][version.to_string()]
        .as_str()
        .map(|h| hex::decode(h).unwrap())
}

/// Session-object secret keys in this process's view of the token (the crate's copies).
fn session_keys(s: &Session) -> usize {
    s.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(false),
    ])
    .unwrap()
    .len()
}

fn software(msg: &[u8]) -> Vec<u8> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// The template the KEK forces, with `change` replacing attributes of the same type in place
/// and `drop` left out. `CKA_MODIFIABLE=false` stays last (SoftHSM2 refuses any attribute after
/// it), so that a refusal below can only come from the KEK's unwrap template.
fn forced(change: Vec<Attribute>, drop: &[AttributeType]) -> Vec<Attribute> {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Copyable(false),
        Attribute::Sign(true),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
    ]
    .into_iter()
    .filter(|a| !drop.contains(&a.attribute_type()))
    .map(|a| {
        change
            .iter()
            .find(|c| c.attribute_type() == a.attribute_type())
            .cloned()
            .unwrap_or(a)
    })
    .collect()
}

#[test]
fn import_seals_and_the_crate_signs_with_a_proven_session_copy() {
    if backend() != "softhsm" {
        // Kryoptic copies the key itself (no seal needed to sign fast); NSS holds no crate key.
        return;
    }
    let t = fresh_token("seal");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("k").exchange("binance"),
        SecretString::from(SECRET),
    )
    .unwrap();
    let ctx = cryptoki::context::Pkcs11::new(&t.module).unwrap();
    let s = ctx.open_rw_session(slot(&t)).unwrap();

    // The KEK: one per version, sensitive, non-extractable, non-modifiable, non-copyable,
    // unwrap only.
    let keks = kek(&s, "k");
    assert_eq!(keks.len(), 1);
    let flags = s
        .get_attributes(
            keks[0],
            &[
                AttributeType::KeyType,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Modifiable,
                AttributeType::Copyable,
                AttributeType::Unwrap,
                AttributeType::Wrap,
                AttributeType::Decrypt,
                AttributeType::Encrypt,
                AttributeType::Sign,
                AttributeType::Derive,
            ],
        )
        .unwrap();
    assert_eq!(
        flags,
        vec![
            Attribute::KeyType(KeyType::AES),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Unwrap(true),
            Attribute::Wrap(false),
            Attribute::Decrypt(false),
            Attribute::Encrypt(false),
            Attribute::Sign(false),
            Attribute::Derive(false),
        ]
    );
    // `key list` shows the key once, not its KEK as a foreign key.
    let names: Vec<String> = c.list_keys().unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, vec!["k".to_owned()]);

    // The crate signs with a session copy, and the MAC is right.
    let before = session_keys(&s);
    let msg = b"symbol=BTCUSDT&side=BUY&type=LIMIT&timestamp=1499827319559";
    let mac = c.sign_hmac("k", HmacAlg::HmacSha256, msg).unwrap();
    assert_eq!(mac.as_bytes(), software(msg));
    assert_eq!(session_keys(&s), before + 1, "one sealed copy opened");
    assert!(c.fast_path_active("k").unwrap());
    // With the fast path off the crate signs with the token object (and makes no seal).
    let slow = hsm_custody::Custody::connect(t.config().fast_path(false)).unwrap();
    assert!(!slow.fast_path_active("k").unwrap());
    assert_eq!(
        slow.sign_hmac("k", HmacAlg::HmacSha256, msg)
            .unwrap()
            .as_bytes(),
        software(msg)
    );

    // Revoking destroys the KEK: a blob read before can no longer be unwrapped.
    let saved = blob(&s, "k", 1).expect("v1 is sealed");
    let kek_before = keks[0];
    c.revoke("k", None).unwrap();
    assert!(kek(&s, "k").is_empty(), "KEK destroyed with the version");
    assert!(s
        .unwrap_key(
            &Mechanism::AesKeyWrap,
            kek_before,
            &saved,
            &forced(vec![], &[])
        )
        .is_err());
    assert_eq!(
        session_keys(&s),
        before,
        "the copy went with the revocation"
    );
}

#[test]
fn the_seal_lets_nothing_out() {
    if backend() != "softhsm" {
        return;
    }
    let t = fresh_token("seal-attacks");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(SECRET))
        .unwrap();
    let ctx = cryptoki::context::Pkcs11::new(&t.module).unwrap();
    let s = ctx.open_rw_session(slot(&t)).unwrap();
    let kek = kek(&s, "k")[0];
    let blob = blob(&s, "k", 1).expect("sealed");
    let key = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"k".to_vec()),
        ])
        .unwrap()[0];
    let unwrap =
        |template: Vec<Attribute>| s.unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &template);
    // Every weaker template is refused by the module (CKA_UNWRAP_TEMPLATE).
    for (what, template) in [
        (
            "extractable",
            forced(vec![Attribute::Extractable(true)], &[]),
        ),
        (
            "not sensitive",
            forced(vec![Attribute::Sensitive(false)], &[]),
        ),
        ("token object", forced(vec![Attribute::Token(true)], &[])),
        ("modifiable", forced(vec![Attribute::Modifiable(true)], &[])),
        ("copyable", forced(vec![Attribute::Copyable(true)], &[])),
        ("derive", forced(vec![Attribute::Derive(true)], &[])),
        ("encrypt", forced(vec![Attribute::Encrypt(true)], &[])),
        (
            "AES key",
            forced(vec![Attribute::KeyType(KeyType::AES)], &[]),
        ),
        (
            "no CKA_SENSITIVE",
            forced(vec![], &[AttributeType::Sensitive]),
        ),
        (
            "no CKA_EXTRACTABLE",
            forced(vec![], &[AttributeType::Extractable]),
        ),
        (
            "bare",
            vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
            ],
        ),
    ] {
        match unwrap(template) {
            Err(cryptoki::error::Error::Pkcs11(RvError::TemplateInconsistent, _)) => {}
            other => panic!("unwrap as {what}: {other:?}, wanted TEMPLATE_INCONSISTENT"),
        }
    }
    // The KEK decrypts nothing, cannot be copied, changed, read or wrapped, and wraps nothing.
    assert!(s.decrypt(&Mechanism::AesEcb, kek, &blob[..16]).is_err());
    assert!(s.decrypt(&Mechanism::AesKeyWrap, kek, &blob).is_err());
    assert!(s.copy_object(kek, &[Attribute::Token(false)]).is_err());
    assert!(s.copy_object(kek, &[]).is_err());
    for change in [
        Attribute::Decrypt(true),
        Attribute::Wrap(true),
        Attribute::Extractable(true),
        Attribute::Sensitive(false),
    ] {
        assert!(s.update_attributes(kek, &[change]).is_err());
    }
    let value = s.get_attribute_info(kek, &[AttributeType::Value]).unwrap();
    assert!(matches!(value[0], AttributeInfo::Sensitive), "{value:?}");
    assert!(s.wrap_key(&Mechanism::AesKeyWrap, kek, key).is_err());
    // Under the forced template it unwraps only into what the crate itself signs with.
    let copy = unwrap(forced(vec![], &[])).expect("the forced template");
    let value = s.get_attribute_info(copy, &[AttributeType::Value]).unwrap();
    assert!(matches!(value[0], AttributeInfo::Sensitive), "{value:?}");
    let mac = s
        .sign(&Mechanism::Sha256Hmac, copy, b"m")
        .expect("the copy signs");
    assert_eq!(mac, software(b"m"));
    s.destroy_object(copy).unwrap();
}

#[test]
fn a_tampered_seal_is_not_used_and_signing_stays_right() {
    if backend() != "softhsm" {
        return;
    }
    let t = fresh_token("seal-tamper");
    let c = t.connect();
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(SECRET))
        .unwrap();
    // (`c` stays: its login is what lets this process see private objects.)
    // Someone with the PIN swaps the seal for another blob (a newer metadata revision, as the
    // crate itself commits changes). Random bytes fail the unwrap's integrity check.
    let ctx = cryptoki::context::Pkcs11::new(&t.module).unwrap();
    let s = ctx.open_rw_session(slot(&t)).unwrap();
    let mut meta = meta(&s, "k");
    assert!(meta["seals"]["1"].is_string(), "v1 was sealed: {meta}");
    meta["seals"]["1"] = serde_json::Value::String(hex::encode([0x5a; 72]));
    meta["revision"] = serde_json::json!(meta["revision"].as_u64().unwrap() + 1);
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(b"k".to_vec()),
        Attribute::Application(b"hsm-custody".to_vec()),
        Attribute::Value(serde_json::to_vec(&meta).unwrap()),
    ])
    .unwrap();
    // A new handle, as in a new process (its own cache): the seal does not open, so the key
    // signs with its token object.
    let c = t.connect();
    let msg = b"timestamp=1499827319559";
    let mac = c.sign_hmac("k", HmacAlg::HmacSha256, msg).unwrap();
    assert_eq!(mac.as_bytes(), software(msg));
    assert!(!c.fast_path_active("k").unwrap());
}
