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

/// `examples/quickstart.rs`, built and run as a user runs it (`cargo run --example
/// quickstart`), against a fresh token: it signs Binance's documented query and then revokes
/// its demo key, so the token holds no usable copy of the public secret afterwards.
#[test]
fn quickstart_example_removes_its_demo_key() {
    let t = fresh_token("cli-quick");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = std::process::Command::new(&cargo)
        .args(["build", "--quiet", "--example", "quickstart"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build --example quickstart");
    assert!(build.success(), "the quickstart example builds");
    // Next to the test binary's own target directory (which honours CARGO_TARGET_DIR).
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_hsm-custody"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let example = bin_dir
        .join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    let out = {
        let _no_init = crate::common::no_token_init();
        std::process::Command::new(&example)
            .envs(crate::common::child_env())
            .env_remove("HSM_CUSTODY_PIN_FILE")
            .env_remove("HSM_CUSTODY_CONFIG")
            .env("HSM_CUSTODY_MODULE", &t.module)
            .env("HSM_CUSTODY_TOKEN", &t.label)
            .env("HSM_CUSTODY_PIN", t.user_pin_text())
            .output()
            .expect("run the quickstart example")
    };
    let stdout = ok(&out);
    assert!(stdout.contains("match       : yes"), "{stdout}");
    let name = stdout
        .lines()
        .find_map(|l| l.strip_prefix("removed     : "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the example says which key it removed: {stdout}"))
        .to_owned();
    assert!(name.starts_with("binance-doc-"), "{stdout}");

    // The key can no longer sign, and every version the example made is revoked.
    let out = cli(&t, &["sign", "--key", &name, "--hex"], Some("probe"));
    assert!(!out.status.success(), "the demo key still signs");
    let versions = ok(&cli(&t, &["key", "versions", &name, "--json"], None));
    let parsed: serde_json::Value = serde_json::from_str(&versions).unwrap();
    let states: Vec<&str> = parsed
        .as_array()
        .expect("versions array")
        .iter()
        .map(|v| v["state"].as_str().unwrap_or(""))
        .collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| *s == "revoked"),
        "{versions}"
    );
}

/// The flags and messages of the key commands: `key versions --name` (the positional form
/// still works), `promote` says which earlier version stays usable, `key list` marks a fully
/// revoked key, and `sign-request` names the line and column of a JSON error.
#[test]
fn key_commands_flags_and_messages() {
    let t = fresh_token("cli-msgs");
    ok(&cli(
        &t,
        &["key", "import", "--name", "bn", "--exchange", "binance"],
        Some("first-secret-aaaaaaaaaaaaaaaa\n"),
    ));
    let by_flag = ok(&cli(&t, &["key", "versions", "--name", "bn"], None));
    let by_position = ok(&cli(&t, &["key", "versions", "bn"], None));
    assert_eq!(by_flag, by_position);
    assert!(by_flag.contains("v1       active"), "{by_flag}");
    let out = cli(&t, &["key", "versions"], None);
    assert_eq!(out.status.code(), Some(2), "no name is a usage error");

    ok(&cli(
        &t,
        &["key", "rotate", "begin", "--name", "bn"],
        Some("second-secret-bbbbbbbbbbbb\n"),
    ));
    let promoted = ok(&cli(
        &t,
        &["key", "rotate", "promote", "--name", "bn"],
        None,
    ));
    assert!(
        promoted.contains("`bn` v2 is active") && promoted.contains("v1 stays usable"),
        "{promoted}"
    );

    ok(&cli(&t, &["key", "revoke", "--name", "bn", "--all"], None));
    let list = ok(&cli(&t, &["key", "list"], None));
    let row = list
        .lines()
        .find(|l| l.starts_with("bn "))
        .expect("bn listed");
    assert!(
        row.contains("REVOKED: cannot sign (revoked v1, v2)"),
        "{list}"
    );
    assert!(
        row.contains("`hsm-custody key import --name bn`")
            && row.contains("`key rotate begin --name bn`, then promote"),
        "{list}"
    );
    // What the note says works: a fully revoked name gets a new version and signs again.
    let out = cli(&t, &["sign", "--key", "bn", "--hex"], Some("probe"));
    assert!(!out.status.success(), "a revoked key signs");
    ok(&cli(
        &t,
        &["key", "rotate", "begin", "--name", "bn"],
        Some("third-secret-cccccccccccccccc\n"),
    ));
    let promoted = ok(&cli(
        &t,
        &["key", "rotate", "promote", "--name", "bn"],
        None,
    ));
    assert!(
        promoted.contains("`bn` v3 is active") && promoted.contains("no earlier version"),
        "{promoted}"
    );
    ok(&cli(&t, &["sign", "--key", "bn", "--hex"], Some("probe")));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.json");
    std::fs::write(
        &file,
        "{\n  \"method\": \"GET\",\n  \"path\" \"/api/v3/account\"\n}\n",
    )
    .unwrap();
    let out = cli(
        &t,
        &[
            "sign-request",
            "--key",
            "bn",
            "--exchange",
            "binance",
            "--request",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("request is not valid JSON at line 3, column 10: expected `:`"),
        "{stderr}"
    );
}

/// `sign` with every key kind: the algorithm comes from the key (base64 by default for
/// asymmetric keys), checked against the exported public key; `--alg` is refused for them.
#[test]
fn sign_with_every_key_kind_through_the_cli() {
    use base64::Engine as _;
    let t = fresh_token("cli-sign-kinds");
    let b64 = base64::engine::general_purpose::STANDARD;
    let msg = "GET\n/api/v3/account\ntimestamp=1";
    for kind in ["ed25519", "p256", "rsa2048"] {
        let name = format!("k-{kind}");
        let pem = ok(&cli(
            &t,
            &["key", "generate", "--name", &name, "--type", kind],
            None,
        ));
        let sig = ok(&cli(&t, &["sign", "--key", &name], Some(msg)));
        let sig = b64.decode(sig.trim()).expect("base64 by default");
        match kind {
            "ed25519" => {
                use ed25519_dalek::pkcs8::DecodePublicKey as _;
                use ed25519_dalek::Verifier as _;
                let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).unwrap();
                let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
                key.verify(msg.as_bytes(), &sig).expect("Ed25519 verifies");
            }
            "p256" => {
                use p256::ecdsa::signature::Verifier as _;
                use p256::pkcs8::DecodePublicKey as _;
                let key = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
                let sig = p256::ecdsa::Signature::from_slice(&sig).expect("raw r || s");
                key.verify(msg.as_bytes(), &sig).expect("P-256 verifies");
            }
            _ => {
                use rsa::pkcs8::DecodePublicKey as _;
                use rsa::signature::Verifier as _;
                let key = rsa::RsaPublicKey::from_public_key_pem(&pem).unwrap();
                let key = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key);
                let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
                key.verify(msg.as_bytes(), &sig).expect("RSA verifies");
            }
        }
        let hex = ok(&cli(&t, &["sign", "--key", &name, "--hex"], Some(msg)));
        assert!(hex.trim().chars().all(|c| c.is_ascii_hexdigit()), "{hex}");
        let out = cli(
            &t,
            &["sign", "--key", &name, "--alg", "hmac-sha256"],
            Some(msg),
        );
        assert_eq!(out.status.code(), Some(2), "{kind}: --alg refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("signs with its own algorithm"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `sign --version N` signs with a pending version before it is promoted; without it the
/// active version signs.
#[test]
fn sign_with_a_pending_version_before_promote() {
    let t = fresh_token("cli-sign-pending");
    let (first, second) = (
        "first-secret-aaaaaaaaaaaaaaaa",
        "second-secret-bbbbbbbbbbbb",
    );
    ok(&cli(
        &t,
        &["key", "import", "--name", "bn", "--exchange", "binance"],
        Some(&format!("{first}\n")),
    ));
    ok(&cli(
        &t,
        &["key", "rotate", "begin", "--name", "bn"],
        Some(&format!("{second}\n")),
    ));
    let expect = |secret: &str| {
        crate::common::software_hmac(
            hsm_custody::HmacAlg::HmacSha256,
            secret.as_bytes(),
            b"probe",
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
    };
    let active = ok(&cli(&t, &["sign", "--key", "bn"], Some("probe")));
    assert_eq!(active.trim(), expect(first));
    let pending = ok(&cli(
        &t,
        &["sign", "--key", "bn", "--version", "2"],
        Some("probe"),
    ));
    assert_eq!(pending.trim(), expect(second), "v2 signs before promote");
    let out = cli(
        &t,
        &["sign", "--key", "bn", "--version", "9"],
        Some("probe"),
    );
    assert!(!out.status.success(), "a missing version does not sign");
}

/// `sign-request --version N`: a pending version signs an exchange request before promote,
/// with the API key recorded with it; the withdrawal guard still applies; a missing, retired
/// or revoked version is a typed error naming it.
#[test]
fn sign_request_with_a_pending_version_before_promote() {
    let t = fresh_token("cli-sreq-pending");
    let (first, second) = (
        "first-secret-aaaaaaaaaaaaaaaa",
        "second-secret-bbbbbbbbbbbb",
    );
    ok(&cli(
        &t,
        &[
            "key",
            "import",
            "--name",
            "bn",
            "--exchange",
            "binance",
            "--api-key",
            "AK-ONE",
        ],
        Some(&format!("{first}\n")),
    ));
    ok(&cli(
        &t,
        &[
            "key",
            "rotate",
            "begin",
            "--name",
            "bn",
            "--api-key",
            "AK-TWO",
        ],
        Some(&format!("{second}\n")),
    ));
    let account = r#"{"method":"GET","path":"/api/v3/account","query":"omitZeroBalances=true"}"#;
    let sign = |extra: &[&str], request: &str| {
        let mut args = vec![
            "sign-request",
            "--key",
            "bn",
            "--exchange",
            "binance",
            "--request",
            "-",
        ];
        args.extend_from_slice(extra);
        cli(&t, &args, Some(request))
    };
    // Which secret signed: the HMAC of the query before its signature parameter.
    let signed_with = |out: &std::process::Output| -> (String, String) {
        let signed: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
        let query = signed["query"].as_str().unwrap();
        let (payload, _) = query.split_once("&signature=").unwrap();
        let secret = [first, second]
            .into_iter()
            .find(|s| {
                hex::encode(crate::common::software_hmac(
                    hsm_custody::HmacAlg::HmacSha256,
                    s.as_bytes(),
                    payload.as_bytes(),
                )) == signed["signature"]
            })
            .unwrap_or("neither");
        let api_key = signed["headers"]["X-MBX-APIKEY"]
            .as_str()
            .unwrap_or("-")
            .to_owned();
        (secret.to_owned(), api_key)
    };
    assert_eq!(
        signed_with(&sign(&[], account)),
        (first.to_owned(), "AK-ONE".to_owned()),
        "the active version by default"
    );
    assert_eq!(
        signed_with(&sign(&["--version", "2"], account)),
        (second.to_owned(), "AK-TWO".to_owned()),
        "the pending version, with its own API key, before promote"
    );
    let versions = ok(&cli(&t, &["key", "versions", "--name", "bn"], None));
    assert!(
        versions.contains("v2       pending"),
        "still pending: {versions}"
    );

    // The guard applies to a pinned version too.
    let withdraw = r#"{"method":"POST","path":"/sapi/v1/capital/withdraw/apply","body":"coin=BTC&address=x&amount=1"}"#;
    let out = sign(&["--version", "2"], withdraw);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("POST /sapi/v1/capital/withdraw/apply"),
        "{stderr}"
    );

    let refused = |version: &str, says: &str| {
        let out = sign(&["--version", version], account);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "v{version} signed: {stderr}");
        assert!(out.stdout.is_empty(), "v{version}: nothing on stdout");
        assert!(stderr.contains(says), "v{version}: {stderr}");
        assert!(
            stderr.contains("hsm-custody key versions --name bn"),
            "v{version}: {stderr}"
        );
    };
    refused("9", "key `bn` has no version v9");
    ok(&cli(
        &t,
        &["key", "rotate", "promote", "--name", "bn"],
        None,
    ));
    ok(&cli(&t, &["key", "rotate", "retire", "--name", "bn"], None));
    refused("1", "key `bn` version v1 is retired");
    ok(&cli(&t, &["key", "revoke", "--name", "bn", "--all"], None));
    refused("2", "key `bn` version v2 is revoked");
}

/// A name whose every version was revoked takes a new import: its next version (v2), active
/// at once with the new secret and API key, the revoked v1 kept in its history; `key list`
/// shows it as a working key, the audit log records `created` then `promoted` v2, and a second
/// import while v2 is usable is refused as ever.
#[test]
fn import_under_a_fully_revoked_name_is_its_next_version() {
    let t = fresh_token("cli-reimport");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let config = crate::audit::config_file(&t, dir.path(), &log, "");
    let cfg = config.to_str().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--config", cfg];
        all.extend_from_slice(args);
        cli(&t, &all, stdin)
    };
    let (first, second) = (
        "first-secret-aaaaaaaaaaaaaaaa",
        "second-secret-bbbbbbbbbbbb",
    );
    let import = |secret: &str, api_key: &str| {
        run(
            &[
                "key",
                "import",
                "--name",
                "bn",
                "--exchange",
                "binance",
                "--api-key",
                api_key,
            ],
            Some(&format!("{secret}\n")),
        )
    };
    let said = ok(&import(first, "AK-ONE"));
    assert!(!said.contains(" as v"), "{said}");
    ok(&run(&["key", "revoke", "--name", "bn", "--all"], None));

    let said = ok(&import(second, "AK-TWO"));
    assert!(
        said.contains("imported `bn`")
            && said.contains(
                "as v2, a new version of a name whose earlier versions (v1) were revoked"
            ),
        "{said}"
    );
    // The config's policy allows bn `POST /api/v3/order` only (no raw signatures).
    let request = r#"{"method":"POST","path":"/api/v3/order","query":"symbol=BTCUSDT"}"#;
    let signed = ok(&run(
        &[
            "sign-request",
            "--key",
            "bn",
            "--exchange",
            "binance",
            "--request",
            "-",
        ],
        Some(request),
    ));
    let signed: serde_json::Value = serde_json::from_str(&signed).unwrap();
    let (payload, _) = signed["query"]
        .as_str()
        .unwrap()
        .split_once("&signature=")
        .unwrap();
    let expect = hex::encode(crate::common::software_hmac(
        hsm_custody::HmacAlg::HmacSha256,
        second.as_bytes(),
        payload.as_bytes(),
    ));
    assert_eq!(signed["signature"], expect, "the new secret signs");
    assert_eq!(signed["headers"]["X-MBX-APIKEY"], "AK-TWO", "{signed}");

    let list = ok(&run(&["key", "list"], None));
    let row = list
        .lines()
        .find(|l| l.starts_with("bn "))
        .expect("bn listed");
    assert!(row.contains(" v2 ") && row.contains("binance"), "{list}");
    assert!(
        row.contains("v1 revoked") && !row.contains("REVOKED"),
        "{list}"
    );
    let versions = ok(&run(&["key", "versions", "--name", "bn", "--json"], None));
    let versions: serde_json::Value = serde_json::from_str(&versions).unwrap();
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["state"], "revoked");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["state"], "active");

    // Usable again: the name is taken.
    let out = import("third-secret-cccccccccccccccc", "AK-THREE");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let events: Vec<(String, Option<u64>)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["key"] == "bn" && r["event"] != "sign")
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_owned(),
                r["version"].as_u64(),
            )
        })
        .collect();
    let events: Vec<(&str, Option<u64>)> = events.iter().map(|(e, v)| (e.as_str(), *v)).collect();
    assert_eq!(
        events,
        [
            ("created", None),
            ("revoked", None),
            ("created", None),
            ("promoted", Some(2)),
        ],
        "the audit log's account of the name"
    );
    let verify = run(&["audit", "verify", log.to_str().unwrap()], None);
    assert!(verify.status.success(), "{verify:?}");
}

/// A secret on stdin with a line break inside it (two pasted lines) is refused, without
/// quoting it, by `key import` and `key rotate begin`; `--allow-newline` takes it as is. A
/// trailing newline (`echo`) is fine either way.
#[test]
fn a_secret_with_an_inner_newline_needs_allow_newline() {
    let t = fresh_token("cli-newline");
    let two_lines = "line-one-secret-aaaa\nline-two-secret-bbbb\n";
    for args in [
        &["key", "import", "--name", "k", "--exchange", "binance"][..],
        &["key", "rotate", "begin", "--name", "k"][..],
    ] {
        if args[1] == "rotate" {
            ok(&cli(
                &t,
                &["key", "import", "--name", "k", "--exchange", "binance"],
                Some("one-line-secret-cccc\n"),
            ));
        }
        let out = cli(&t, args, Some(two_lines));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("line break inside"), "{stderr}");
        assert!(stderr.contains("--allow-newline"), "{stderr}");
        assert!(
            !stderr.contains("line-one") && !stderr.contains("line-two"),
            "{stderr}"
        );
    }
    let versions = ok(&cli(&t, &["key", "versions", "--name", "k"], None));
    assert!(!versions.contains("v2"), "nothing was added: {versions}");

    ok(&cli(
        &t,
        &["key", "rotate", "begin", "--name", "k", "--allow-newline"],
        Some(two_lines),
    ));
    let mac = ok(&cli(
        &t,
        &["sign", "--key", "k", "--version", "2", "--hex"],
        Some("probe"),
    ));
    let expect = hex::encode(crate::common::software_hmac(
        hsm_custody::HmacAlg::HmacSha256,
        two_lines.trim().as_bytes(),
        b"probe",
    ));
    assert_eq!(mac.trim(), expect, "the secret with its inner line break");
}
