//! TPM 2.0 through tpm2-pkcs11: the extraction-attack list against a key adopted from
//! `tpm2_ptool`. Needs the software TPM that `backends/tpm2-check.sh` starts (it runs this test
//! with `--ignored` after adopting the key, with the variables `backends/tpm2.sh` prints), so it
//! is ignored in a plain `cargo test`.

use std::path::PathBuf;

use cryptoki_sys::CKA_VALUE;
use hsm_custody::{Config, Custody, HmacAlg};

use crate::attacks::{
    assert_lets_through_exactly, attack_key, key_objects, print_table, rv_name, Raw,
};
use crate::common::software_hmac;

/// What tpm2-pkcs11 1.9 lets through on a hardened, adopted HMAC key (measured; any change
/// either way fails). Its PKCS#11 attributes are flags in its own database, so every
/// `C_SetAttributeValue` is accepted, even on a `CKA_MODIFIABLE=false` key; the length query of
/// `CKA_VALUE` answers 0; `C_SignInit(SHA_1_HMAC)` is accepted and gives no output. None of it
/// yields the value: the key exists only as a blob wrapped by the TPM (no copy, derive, wrap,
/// digest or cipher is offered), and `CKA_VALUE` stays empty after every flag was lowered.
const EXPECTED_ACCEPTED: &[&str] = &[
    "C_GetAttributeValue(CKA_VALUE) length",
    "C_SetAttributeValue(ALLOWED_MECHANISMS += MD5/SHA1_HMAC)",
    "C_SetAttributeValue(DERIVE=true)",
    "C_SetAttributeValue(ENCRYPT=true)",
    "C_SetAttributeValue(EXTRACTABLE=true)",
    "C_SetAttributeValue(MODIFIABLE=true)",
    "C_SetAttributeValue(SENSITIVE=false)",
    "C_SetAttributeValue(WRAP=true)",
    "C_SignInit(SHA_1_HMAC)",
];

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run backends/tpm2-check.sh"))
}

#[test]
#[ignore = "needs the software TPM of backends/tpm2-check.sh"]
fn attack_table_on_an_adopted_tpm_key() {
    let module = PathBuf::from(env("HSM_CUSTODY_MODULE"));
    let token = env("HSM_CUSTODY_TOKEN");
    let key = env("TPM2_TEST_KEY");
    let secret = std::fs::read(env("TPM2_TEST_SECRET_FILE")).unwrap();
    let custody = Custody::connect(
        Config::new(&module, &token)
            .pin_file(env("HSM_CUSTODY_PIN_FILE"))
            .unwrap(),
    )
    .unwrap();
    let signs_correctly = |msg: &[u8]| {
        let mac = custody.sign_hmac(&key, HmacAlg::HmacSha256, msg).unwrap();
        assert_eq!(
            mac.as_bytes(),
            software_hmac(HmacAlg::HmacSha256, &secret, msg)
        );
    };
    signs_correctly(b"before");

    // The application is logged in (login is per application): the attacker needs no PIN.
    let raw = Raw::open(&module, &token, None);
    let targets: Vec<_> = key_objects(&raw)
        .into_iter()
        .filter(|(_, label, _)| *label == key)
        .collect();
    assert_eq!(targets.len(), 1, "one TPM key object labelled `{key}`");
    let target = format!("`{key}` (TPM key object)");
    let all = attack_key(&raw, targets[0].0, &target);
    print_table(
        &format!("tpm2-pkcs11 ({}), adopted HMAC key", module.display()),
        &all,
    );
    assert_lets_through_exactly(&all, None, EXPECTED_ACCEPTED, "tpm2-pkcs11");
    // 28 attempts apply here (no attacker AES key for the wrap attempts: the module makes no
    // secret key through C_CreateObject).
    assert!(all.len() >= 25, "the whole list ran: {}", all.len());
    println!(
        "backend-table: attack-suite {} of {} attempts let through, no value out",
        EXPECTED_ACCEPTED.len(),
        all.len()
    );
    // Every flag was lowered above, and still no value comes out.
    let (rv, value) = raw.attribute(targets[0].0, CKA_VALUE);
    assert!(
        value.as_deref().is_none_or(<[u8]>::is_empty),
        "the TPM key's value came out after the attacks ({})",
        rv_name(rv)
    );
    // The key still signs correctly.
    signs_correctly(b"after");
}
