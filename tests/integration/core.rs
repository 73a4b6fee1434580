//! Core: import, sign, hardening, duplicates, PIN handling, concurrency, recovery.

use hsm_custody::{HmacAlg, KeySpec, SecretString};

use crate::common::{fresh_token, software_hmac};

#[test]
fn import_and_sign_match_software_for_all_hmacs() {
    let t = fresh_token("sw");
    let c = t.connect();
    let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from(secret)).unwrap();
    let key = c.key("k").unwrap();
    for alg in HmacAlg::ALL {
        for msg in [&b""[..], b"a", &[7u8; 1000][..]] {
            let mac = key.hmac(alg, msg).unwrap();
            assert_eq!(mac.as_bytes(), software_hmac(alg, secret.as_bytes(), msg), "{alg}");
        }
    }
}
