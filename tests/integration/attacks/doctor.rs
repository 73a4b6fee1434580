//! `doctor` finds what the attack suite finds: a foreign key made the careless way is flagged,
//! the crate's keys pass (library and CLI).

use cryptoki_sys::*;
use hsm_custody::{KeySpec, SecretString};

use crate::common::fresh_token;
use crate::raw_pkcs11::{rv_name, Raw, Template};

/// A foreign key made with raw PKCS#11 the way careless tools make them: a token object,
/// readable, extractable, derivable.
fn foreign_weak_key(raw: &Raw, label: &[u8]) -> CK_OBJECT_HANDLE {
    let (rv, h) = raw.create(
        Template::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SENSITIVE, false)
            .bool(CKA_EXTRACTABLE, true)
            .bool(CKA_DERIVE, true)
            .bool(CKA_SIGN, true)
            .bytes(CKA_LABEL, label)
            .bytes(CKA_VALUE, &[0x66; 32]),
    );
    assert_eq!(rv, CKR_OK, "{}", rv_name(rv));
    h
}

#[test]
fn doctor_flags_a_foreign_weak_key_and_passes_crate_keys() {
    let t = fresh_token("doctor-lib");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("k").exchange("kraken"),
        SecretString::from("doctor-test-secret-1"),
    )
    .unwrap();
    let clean = hsm_custody::doctor::run(&t.config()).unwrap();
    println!("{clean}");
    assert_eq!(clean.problems(), 0, "{clean}");
    let probe = clean.probe.as_ref().expect("logged in, so probed");
    assert!(
        probe.enforces_non_extractability,
        "SoftHSM2 refuses every probe: {probe:?}"
    );
    assert!(probe.steps.len() >= 5, "{probe:?}");
    assert!(clean
        .mechanisms
        .iter()
        .any(|m| m.mechanism.contains("SHA256_HMAC") && m.present));
    let k = clean
        .keys
        .iter()
        .find(|k| k.label == "k")
        .expect("k audited");
    assert!(k.managed && k.problems.is_empty(), "{k:?}");
    assert_eq!(clean.token.label, t.label);

    let raw = Raw::open(&t.module, &t.label, None);
    foreign_weak_key(&raw, b"foreign-weak");
    let before = c.list_keys().unwrap().len();
    let report = hsm_custody::doctor::run(&t.config()).unwrap();
    println!("{report}");
    let weak = report
        .keys
        .iter()
        .find(|k| k.label == "foreign-weak")
        .expect("foreign key audited");
    assert!(!weak.managed, "{weak:?}");
    for p in [
        "extractable",
        "not sensitive",
        "may derive",
        "CKA_VALUE readable",
    ] {
        assert!(
            weak.problems.iter().any(|x| x.contains(p)),
            "`{p}` not flagged: {weak:?}"
        );
    }
    assert!(report.problems() >= 1);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("foreign key `foreign-weak`")),
        "{report}"
    );
    let k = report.keys.iter().find(|k| k.label == "k").unwrap();
    assert!(k.problems.is_empty(), "{k:?}");
    // The probe's throwaway objects are gone, nothing else changed.
    assert!(raw
        .find(Template::new().bytes(CKA_LABEL, b"hsm-custody-doctor-probe"))
        .is_empty());
    assert_eq!(c.list_keys().unwrap().len(), before);
}

/// `hsm-custody doctor [--json]` on the test token.
fn doctor_cli(t: &crate::common::TestToken, json: bool) -> std::process::Output {
    let args: &[&str] = if json {
        &["doctor", "--json"]
    } else {
        &["doctor"]
    };
    crate::common::cli_once(t, args, None)
}

#[test]
fn doctor_cli_prints_the_report_and_exits_non_zero_on_problems() {
    let t = fresh_token("doctor-cli");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("k"),
        SecretString::from("doctor-cli-secret-2"),
    )
    .unwrap();
    let out = doctor_cli(&t, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(out.status.success(), "healthy token: {stdout}{stderr}");
    assert!(
        stdout.contains("enforces non-extractability: yes"),
        "{stdout}"
    );
    assert!(stdout.contains("CKM_SHA256_HMAC"), "{stdout}");
    assert!(stdout.contains(&t.label), "{stdout}");
    assert!(
        !stdout.contains(&t.user_pin_text()),
        "the PIN is never printed"
    );

    let raw = Raw::open(&t.module, &t.label, None);
    foreign_weak_key(&raw, b"legacy-tool-key");
    let out = doctor_cli(&t, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("WEAK") && stdout.contains("legacy-tool-key"),
        "{stdout}"
    );
    assert!(stderr.contains("problem"), "{stderr}");

    let out = doctor_cli(&t, true);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let keys = json["keys"].as_array().unwrap();
    let weak = keys
        .iter()
        .find(|k| k["label"] == "legacy-tool-key")
        .unwrap();
    assert_eq!(weak["managed"], false);
    assert!(!weak["problems"].as_array().unwrap().is_empty());
    assert_eq!(json["probe"]["enforces_non_extractability"], true);
}
