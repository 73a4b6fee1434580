//! The key lifecycle through the real binary: import with validity, list, rotate, versions,
//! revoke, generate and public key export. The token is written by the child processes only.

use crate::common::{cli, fresh_token};

fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn rotate_and_revoke_through_the_cli() {
    let t = fresh_token("cli-life");
    let in_ten_days = time::OffsetDateTime::now_utc().date() + time::Duration::days(10);
    let date = in_ten_days.to_string();
    ok(&cli(
        &t,
        &[
            "key",
            "import",
            "--name",
            "bn",
            "--exchange",
            "binance",
            "--not-after",
            &date,
        ],
        Some("first-secret-aaaaaaaaaaaaaaaa\n"),
    ));
    let list = ok(&cli(&t, &["key", "list"], None));
    let row = list
        .lines()
        .find(|l| l.starts_with("bn "))
        .expect("bn listed");
    assert!(row.contains(" v1 ") && row.contains("10d"), "{list}");
    assert!(!list.contains("first-secret"), "no value in the listing");

    let mac = |t| ok(&cli(t, &["sign", "--key", "bn", "--hex"], Some("probe")));
    let v1 = mac(&t);
    ok(&cli(
        &t,
        &["key", "rotate", "begin", "--name", "bn"],
        Some("second-secret-bbbbbbbbbbbb\n"),
    ));
    assert_eq!(mac(&t), v1, "the active version still signs until promoted");
    let versions = ok(&cli(&t, &["key", "versions", "bn"], None));
    assert!(versions.contains("v2       pending"), "{versions}");
    ok(&cli(
        &t,
        &["key", "rotate", "promote", "--name", "bn"],
        None,
    ));
    let v2 = mac(&t);
    assert_ne!(v1, v2);
    ok(&cli(&t, &["key", "rotate", "retire", "--name", "bn"], None));
    let versions = ok(&cli(&t, &["key", "versions", "bn", "--json"], None));
    let parsed: serde_json::Value = serde_json::from_str(&versions).unwrap();
    assert_eq!(parsed[0]["state"], "retired");
    assert_eq!(parsed[1]["state"], "active");

    ok(&cli(
        &t,
        &["key", "revoke", "--name", "bn", "--version", "2"],
        None,
    ));
    let out = cli(&t, &["sign", "--key", "bn", "--hex"], Some("probe"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no active version"));

    // Rotation on a missing key, or with nothing pending, fails clearly.
    let out = cli(&t, &["key", "rotate", "promote", "--name", "nope"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn generate_and_export_public_keys_through_the_cli() {
    let t = fresh_token("cli-gen");
    for kind in ["ed25519", "p256", "rsa2048"] {
        let name = format!("k-{kind}");
        let pem = ok(&cli(
            &t,
            &[
                "key",
                "generate",
                "--name",
                &name,
                "--type",
                kind,
                "--exchange",
                "binance",
            ],
            None,
        ));
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----"),
            "{kind}: {pem}"
        );
        let again = ok(&cli(&t, &["key", "public", "--name", &name, "--pem"], None));
        assert_eq!(pem, again, "{kind}");
    }
    let list = ok(&cli(&t, &["key", "list"], None));
    assert!(
        list.contains("ed25519") && list.contains("rsa2048"),
        "{list}"
    );
}
