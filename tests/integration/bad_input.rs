//! Bad input (issue 6): each case is a clear, typed error, and the token is left as it was.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hsm_custody::{Config, Custody, Error, HmacAlg, KeySpec, SecretEncoding, SecretString};

use crate::common::{fresh_token, TestToken};

/// Everything `list_keys` says, to compare before and after.
fn snapshot(c: &Custody) -> String {
    format!("{:?}", c.list_keys().unwrap())
}

fn connect_err(config: Config) -> Error {
    Custody::connect(config).expect_err("must not connect")
}

fn with_one_key(tag: &str) -> (TestToken, Custody, String) {
    let t = fresh_token(tag);
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("k"),
        SecretString::from("bad-input-baseline-secret"),
    )
    .unwrap();
    let before = snapshot(&c);
    (t, c, before)
}

#[test]
fn missing_and_non_pkcs11_modules_are_module_load_errors() {
    let (t, c, before) = with_one_key("bad-module");
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("not-a-module.so");
    std::fs::write(&text, "this is a text file, not a shared object\n").unwrap();
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libc.so.6");
    let non_utf8 = Path::new(OsStr::from_bytes(b"/tmp/hsm-custody-\xff\xfe-module.so")).to_owned();
    for (case, module) in [
        ("missing", dir.path().join("absent.so")),
        ("text file", text.clone()),
        ("libc.so.6 (no C_GetFunctionList)", libc.into()),
        ("directory", dir.path().to_owned()),
        ("non-UTF-8 path", non_utf8),
    ] {
        let err = connect_err(Config::new(&module, &t.label).pin(t.user_pin.clone()));
        assert!(matches!(err, Error::ModuleLoad { .. }), "{case}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("cannot load PKCS#11 module"), "{case}: {msg}");
        assert!(
            !msg.contains(&t.user_pin_text()),
            "{case}: PIN leaked: {msg}"
        );
    }
    assert_eq!(snapshot(&c), before, "the token is unchanged");
}

#[test]
fn absent_token_label_is_token_not_found() {
    let (t, c, before) = with_one_key("bad-label");
    for label in ["no-such-token", "", "x".repeat(40).as_str()] {
        let err = connect_err(Config::new(&t.module, label).pin(t.user_pin.clone()));
        assert!(
            matches!(err, Error::TokenNotFound { .. }),
            "{label:?}: {err:?}"
        );
    }
    assert_eq!(snapshot(&c), before);
}

#[test]
fn empty_and_undecodable_secrets_are_invalid_input_and_leave_nothing() {
    let (_t, c, before) = with_one_key("bad-secret");
    let cases: Vec<(&str, KeySpec, String)> = vec![
        ("empty", KeySpec::hmac("e1"), String::new()),
        ("whitespace only", KeySpec::hmac("e2"), " \t\n".into()),
        (
            "invalid base64",
            KeySpec::hmac("e3").encoding(SecretEncoding::Base64),
            "not base64 at all!".into(),
        ),
        (
            "base64 of nothing",
            KeySpec::hmac("e4").encoding(SecretEncoding::Base64),
            "====".into(),
        ),
    ];
    for (case, spec, secret) in cases {
        let err = c
            .import_hmac_secret(spec, SecretString::from(secret))
            .expect_err(case);
        assert!(matches!(err, Error::InvalidInput(_)), "{case}: {err:?}");
    }
    // A taken name is refused before anything is written.
    let err = c
        .import_hmac_secret(
            KeySpec::hmac("k"),
            SecretString::from("another-secret-value"),
        )
        .unwrap_err();
    assert!(matches!(err, Error::KeyExists { .. }), "{err:?}");
    assert_eq!(snapshot(&c), before, "nothing was written");
    // An oversized secret (1 MiB) either imports and proves itself, or fails typed and leaves
    // nothing; record which.
    let big = "A".repeat(1 << 20);
    match c.import_hmac_secret(KeySpec::hmac("big"), SecretString::from(big.clone())) {
        Ok(_) => {
            let mac = c.sign_hmac("big", HmacAlg::HmacSha256, b"m").unwrap();
            assert_eq!(
                mac.as_bytes(),
                crate::common::software_hmac(HmacAlg::HmacSha256, big.as_bytes(), b"m")
            );
            println!("1 MiB secret: imported and self-checked");
        }
        Err(e) => {
            println!("1 MiB secret: refused with {e}");
            assert_eq!(snapshot(&c), before, "a refused import leaves nothing");
        }
    }
}

#[test]
fn oversized_message_signs_or_fails_typed() {
    let (_t, c, _before) = with_one_key("bad-body");
    let body = vec![b'x'; 16 << 20];
    let mac = c.sign_hmac("k", HmacAlg::HmacSha256, &body).unwrap();
    assert_eq!(
        mac.as_bytes(),
        crate::common::software_hmac(HmacAlg::HmacSha256, b"bad-input-baseline-secret", &body)
    );
}

#[test]
fn config_with_unknown_keys_or_bad_values_is_a_config_error() {
    for (case, text) in [
        (
            "unknown top-level key",
            "module='/m.so'\ntoken='t'\nmodul='/typo.so'\n",
        ),
        (
            "unknown pool key",
            "module='/m.so'\ntoken='t'\n[pool]\nsize=2\nmax=3\n",
        ),
        ("inline PIN", "module='/m.so'\ntoken='t'\npin='1234'\n"),
        ("missing token", "module='/m.so'\n"),
        ("wrong type", "module='/m.so'\ntoken=5\n"),
        ("not TOML", "module = \n"),
        (
            "both PIN sources",
            "module='/m.so'\ntoken='t'\npin_file='/p'\npin_env='X'\n",
        ),
    ] {
        let err = Config::from_toml_str(text).expect_err(case);
        assert!(matches!(err, Error::Config(_)), "{case}: {err:?}");
        assert!(!err.to_string().contains("1234"), "{case}: {err}");
    }
    let missing = Path::new(OsStr::from_bytes(b"/tmp/hsm-custody-\xff-config.toml"));
    let err = Config::from_toml_file(missing).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigFile {
                what: "config file",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), hsm_custody::ErrorKind::Config, "{err:?}");
    let err = Config::new("/m.so", "t").pin_file(missing).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigFile {
                what: "PIN file",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), hsm_custody::ErrorKind::Config, "{err:?}");
}
