//! Issue 26, audit log: each attack below got through before this work; each test fails on the
//! code as it was (see the commit message of each test) and passes now.
//!
//! - a cut log whose head was deleted is neither continued nor verified;
//! - a log and head rolled back together are caught by the chain head kept in the token;
//! - a planted audit key (imported, adopted, or named like it) is never the audit key, and the
//!   audit key signs nothing but the log, in the library, the CLI and the agent;
//! - two writers on one log: the second is refused, naming the holder's pid;
//! - Ed25519 imports and failed logins (CLI and agent) are audited;
//! - log, head, lock and pending files are 0600 (0640 with a group) whatever the umask;
//! - `audit verify` / `summary` skip the head, lock and pending files a glob brings in.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hsm_custody::audit::{self, AuditConfig, Fsync, ProblemKind};
use hsm_custody::exchanges::Request;
use hsm_custody::{Custody, Error, GuardConfig, Guardrails, HmacAlg, KeySpec, SecretString};

use crate::audit::{
    config as audit_config, config_file, events, lines, log_glob, temp_log, verify, write_lines,
    KEY as AUDIT_KEY,
};
use crate::common::{cli, cli_command, fresh_token, software_hmac, TestToken};
use crate::guardrails::import;

fn config(path: &Path) -> GuardConfig {
    audit_config(path, Fsync::Always)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A log whose last line is a `deny`: an order (allowed), then a withdrawal (refused).
fn log_ending_in_a_deny(t: &TestToken, log: &Path) {
    let c = t.connect();
    let guard = Guardrails::install(&c, config(log)).unwrap();
    import(&c, "bn", "binance");
    let signer = c.exchange_signer("bn").unwrap();
    signer
        .sign(&Request::post("/api/v3/order").query("symbol=LTCBTC"))
        .unwrap();
    signer
        .sign(&Request::post("/sapi/v1/capital/withdraw/apply").query("coin=BTC"))
        .unwrap_err();
    guard.sync().unwrap();
    let all = lines(log);
    assert!(all.last().unwrap().contains("\"decision\":\"deny\""));
}

// ---------------------------------------------------------------------------------------------
// 1. Truncation laundering

#[test]
fn a_cut_log_whose_head_was_deleted_is_refused_by_writers_and_by_verify() {
    let t = fresh_token("a26-headdel");
    let (dir, log) = temp_log();
    log_ending_in_a_deny(&t, &log);
    let all = lines(&log);
    // The attack: cut the deny line, delete the head.
    write_lines(&log, &all[..all.len() - 1]);
    fs::remove_file(audit::head_path_for(&log)).unwrap();

    let err = Guardrails::new(&t.connect(), config(&log)).unwrap_err();
    assert!(matches!(err, Error::AuditFailed(_)), "{err}");
    assert!(
        err.to_string().contains("audit reset"),
        "says what to do: {err}"
    );
    assert_eq!(lines(&log).len(), all.len() - 1, "nothing appended");
    assert!(
        !audit::head_path_for(&log).exists(),
        "no fresh head written"
    );

    let logs = log.to_str().unwrap();
    let cfg = config_file(&t, dir.path(), &log, "");
    let cfg = cfg.to_str().unwrap();
    let verified = cli(&t, &["--config", cfg, "audit", "verify", logs], None);
    assert!(
        !verified.status.success(),
        "verify without a head must fail: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    assert!(
        stderr(&verified).contains("--no-head"),
        "{}",
        stderr(&verified)
    );
    let told = cli(
        &t,
        &["--config", cfg, "audit", "verify", "--no-head", logs],
        None,
    );
    assert!(told.status.success(), "{}", stderr(&told));
}

/// After the attack above, `audit reset` starts a new chain on the record: the old file is
/// kept, the new chain's first line says why and what was lost (the token knew the deny line),
/// writers continue, and `audit verify` reports the reset (exit 0 only once accepted).
#[test]
fn audit_reset_starts_a_new_chain_on_the_record_and_verify_reports_it() {
    let t = fresh_token("a26-reset");
    let (dir, log) = temp_log();
    log_ending_in_a_deny(&t, &log);
    let all = lines(&log);
    write_lines(&log, &all[..all.len() - 1]);
    fs::remove_file(audit::head_path_for(&log)).unwrap();
    let cfg = config_file(&t, dir.path(), &log, "");
    let cfg = cfg.to_str().unwrap();
    let no_reason = cli(
        &t,
        &["--config", cfg, "audit", "reset", "--reason", " "],
        None,
    );
    assert!(!no_reason.status.success());
    let out = cli(
        &t,
        &[
            "--config",
            cfg,
            "audit",
            "reset",
            "--reason",
            "disk restored from backup",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("lines lost: 1"), "{said}");
    let old = dir.path().join("audit.jsonl.000000000001");
    assert_eq!(lines(&old), all[..all.len() - 1], "old file kept as it was");
    let first = lines(&log)[0].clone();
    assert!(
        first.contains("\"event\":\"chain_reset\"")
            && first.contains("disk restored from backup")
            && first.contains(&format!("\"seq\":{}", all.len() + 1)),
        "{first}"
    );
    // Writers continue the new chain.
    {
        let c = t.connect();
        let guard = Guardrails::install(&c, config(&log)).unwrap();
        c.sign_hmac("bn", HmacAlg::HmacSha256, b"after the reset")
            .unwrap(); // no [keys]: a raw MAC is allowed, and audited
        guard.sync().unwrap();
    }
    let glob = log_glob(dir.path());
    let mut args = vec!["--config", cfg, "audit", "verify", "--json"];
    args.extend(glob.iter().map(String::as_str));
    let refused = cli(&t, &args, None);
    assert!(
        !refused.status.success(),
        "a reset must be accepted explicitly"
    );
    assert!(
        stderr(&refused).contains("--accept-resets"),
        "{}",
        stderr(&refused)
    );
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["resets"][0]["lost_lines"], 1, "{report}");
    assert_eq!(report["resets"][0]["reason"], "disk restored from backup");
    args.push("--accept-resets");
    let accepted = cli(&t, &args, None);
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    // The old file alone (a reset names its last line) still verifies, without a head.
    let alone = verify(&t.connect(), std::slice::from_ref(&old), None);
    assert!(alone.is_ok() && !alone.head_checked, "{:?}", alone.problem);
}

#[test]
fn a_reset_is_refused_while_a_writer_runs() {
    let t = fresh_token("a26-resetlock");
    let (_dir, log) = temp_log();
    let c = t.connect();
    let _guard = Guardrails::install(&c, config(&log)).unwrap();
    let err = audit::reset(&c, &AuditConfig::new(&log), "testing").unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

#[test]
fn a_log_and_head_rolled_back_together_are_caught_by_the_token_head() {
    let t = fresh_token("a26-rollback");
    let (dir, log) = temp_log();
    let head = audit::head_path_for(&log);
    let saved_log = dir.path().join("saved.jsonl");
    let saved_head = dir.path().join("saved.head");
    {
        let c = t.connect();
        let guard = Guardrails::install(&c, config(&log)).unwrap();
        import(&c, "bn", "binance");
        let signer = c.exchange_signer("bn").unwrap();
        signer
            .sign(&Request::post("/api/v3/order").query("symbol=LTCBTC"))
            .unwrap();
        // The attacker's snapshot, just before the refused withdrawal.
        fs::copy(&log, &saved_log).unwrap();
        fs::copy(&head, &saved_head).unwrap();
        signer
            .sign(&Request::post("/sapi/v1/capital/withdraw/apply").query("coin=BTC"))
            .unwrap_err();
        // More than a second later (or at sync/shutdown), the token holds the head too.
        std::thread::sleep(Duration::from_millis(1100));
        guard.sync().unwrap();
    }
    fs::copy(&saved_log, &log).unwrap();
    fs::copy(&saved_head, &head).unwrap();

    let c = t.connect();
    let report = verify(&c, std::slice::from_ref(&log), None);
    let p = report.problem.expect("rollback detected");
    assert_eq!(p.kind, ProblemKind::Truncated, "{}", p.detail);
    assert!(p.detail.contains("token"), "{}", p.detail);
    let err = Guardrails::new(&c, config(&log)).unwrap_err();
    assert!(matches!(err, Error::AuditFailed(_)), "{err}");
}

#[test]
fn a_head_far_behind_the_file_is_refused() {
    let t = fresh_token("a26-behind");
    let (dir, log) = temp_log();
    let head = audit::head_path_for(&log);
    let saved_head = dir.path().join("saved.head");
    {
        let c = t.connect();
        Guardrails::install(&c, config(&log)).unwrap();
        import(&c, "bn", "binance");
        fs::copy(&head, &saved_head).unwrap();
        for i in 0..5 {
            c.sign_hmac("bn", HmacAlg::HmacSha256, format!("{i}").as_bytes())
                .unwrap();
        }
    }
    // An old head put back: with fsync = always no crash leaves the head 5 lines behind.
    fs::copy(&saved_head, &head).unwrap();
    let err = Guardrails::new(&t.connect(), config(&log)).unwrap_err();
    assert!(matches!(err, Error::AuditFailed(_)), "{err}");
    assert!(err.to_string().contains("behind"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 2. The audit key

/// The attack: a key imported under the audit key's name, with a secret the attacker knows.
#[test]
fn an_imported_key_named_like_the_audit_key_never_becomes_the_audit_key() {
    let t = fresh_token("a26-plant");
    let c = t.connect();
    let planted = "known-to-the-attacker-0123456789";
    let imported = c.import_hmac_secret(
        KeySpec::hmac(AUDIT_KEY).algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from(planted),
    );
    let (_dir, log) = temp_log();
    if imported.is_ok() {
        // If the name could be taken, the log must refuse that key ...
        let opened = Guardrails::new(&c, config(&log));
        if opened.is_ok() {
            // ... and must at least not be MACed with the attacker's secret.
            let first = lines(&log)[0].clone();
            let body = format!("{}}}", &first[..first.find(",\"mac\":").unwrap()]);
            let mut input = vec![0u8; 32];
            input.extend_from_slice(body.as_bytes());
            let forged = hex::encode(software_hmac(
                HmacAlg::HmacSha256,
                planted.as_bytes(),
                &input,
            ));
            assert!(
                !first.contains(&forged),
                "the log is MACed with the planted key: lines can be forged offline"
            );
            panic!("the log opened with a planted audit key");
        }
    }
    let err = imported.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        imported_refused_or_log_refused(&c, &log, &err),
        "neither the import nor the log refused the planted key"
    );
}

fn imported_refused_or_log_refused(c: &Custody, log: &Path, import_err: &str) -> bool {
    if !import_err.is_empty() {
        assert!(import_err.contains("reserved"), "{import_err}");
        return true;
    }
    Guardrails::new(c, config(log)).is_err()
}

/// Adoption under the audit key's name is refused before anything is looked at.
#[test]
fn the_audit_key_name_cannot_be_adopted() {
    let t = fresh_token("a26-adopt");
    let err = t
        .connect()
        .adopt_hmac_key(KeySpec::hmac(AUDIT_KEY))
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

/// An audit key made by an earlier release (generated in the token, never extractable, but
/// without the crate's mark) is taken over as the audit key, and from then on signs nothing
/// else: its value was never known to anyone.
#[test]
fn an_audit_key_of_an_earlier_release_is_marked_and_kept_to_the_log() {
    let t = fresh_token("a26-legacy");
    let c = t.connect();
    c.generate_hmac_key(KeySpec::hmac("old-audit").algorithms(&[HmacAlg::HmacSha256]))
        .unwrap();
    c.sign_hmac("old-audit", HmacAlg::HmacSha256, b"before")
        .unwrap();
    let (_dir, log) = temp_log();
    let guard = Guardrails::new(
        &c,
        GuardConfig::new(AuditConfig::new(&log).key("old-audit")),
    )
    .unwrap();
    guard.sync().unwrap();
    let err = c
        .sign_hmac("old-audit", HmacAlg::HmacSha256, b"after")
        .unwrap_err();
    assert!(err.to_string().contains("audit-key"), "{err}");
    let report = audit::verify(&c, "old-audit", std::slice::from_ref(&log), None).unwrap();
    assert!(
        report.is_ok() && report.token_head_checked,
        "{:?}",
        report.problem
    );
}

/// With the PIN, an attacker writes the crate's mark itself: a metadata object that says
/// `purpose: audit` for a key they imported. The token's own flags of the object (`CKA_LOCAL`
/// is never true for an imported key) still refuse it, when the key is loaded.
#[test]
fn a_forged_audit_mark_over_an_imported_key_is_refused_by_the_token_flags() {
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    let t = fresh_token("a26-forgedmark");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("plant").algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from("known-to-the-attacker-0123456789"),
    )
    .unwrap();
    let ctx = crate::raw_pkcs11::raw_context(&t.module);
    let session = ctx.open_rw_session(crate::common::slot(&t)).unwrap();
    t.raw_login(&session);
    let label = b"plant".to_vec();
    let meta = session
        .find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Application(b"hsm-custody".to_vec()),
            Attribute::Label(label.clone()),
        ])
        .unwrap()[0];
    let value = match &session
        .get_attributes(meta, &[AttributeType::Value])
        .unwrap()[0]
    {
        Attribute::Value(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    let mut json: serde_json::Value = serde_json::from_slice(&value).unwrap();
    json["purpose"] = "audit".into();
    json["revision"] = (json["revision"].as_u64().unwrap() + 1).into();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Modifiable(true),
            Attribute::Label(label),
            Attribute::Application(b"hsm-custody".to_vec()),
            Attribute::Value(serde_json::to_vec(&json).unwrap()),
        ])
        .unwrap();
    let c = t.connect(); // a fresh key cache
    let (_dir, log) = temp_log();
    let err =
        Guardrails::new(&c, GuardConfig::new(AuditConfig::new(&log).key("plant"))).unwrap_err();
    assert!(err.to_string().contains("CKA_LOCAL"), "{err}");
    let err = audit::verify(&c, "plant", &[], None).unwrap_err();
    assert!(err.to_string().contains("not an audit key"), "{err}");
}

/// Under another configured name the same plant is refused by the log itself.
#[test]
fn a_configured_audit_key_name_held_by_an_imported_key_is_refused() {
    let t = fresh_token("a26-plant2");
    let c = t.connect();
    c.import_hmac_secret(
        KeySpec::hmac("my-audit").algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from("known-to-the-attacker-0123456789"),
    )
    .unwrap();
    let (_dir, log) = temp_log();
    let err =
        Guardrails::new(&c, GuardConfig::new(AuditConfig::new(&log).key("my-audit"))).unwrap_err();
    assert!(err.to_string().contains("not an audit key"), "{err}");
    assert!(!log.exists() || lines(&log).is_empty(), "nothing written");
    // Verification with it is refused too: a MAC by a known secret proves nothing.
    let verified = audit::verify(&c, "my-audit", &[], None).unwrap_err();
    assert!(
        verified.to_string().contains("not an audit key"),
        "{verified}"
    );
}

/// The audit key, once made by the log, signs nothing else: not through the library without a
/// guard, not through `KeyRef`, not through the CLI without a config.
#[test]
fn the_audit_key_signs_nothing_but_the_log_in_the_library_and_the_cli() {
    let t = fresh_token("a26-keyuse");
    let (_dir, log) = temp_log();
    {
        let c = t.connect();
        Guardrails::new(&c, config(&log)).unwrap();
    }
    let c = t.connect(); // no guard
    let err = c
        .sign_hmac(AUDIT_KEY, HmacAlg::HmacSha256, b"forged line")
        .unwrap_err();
    assert!(err.to_string().contains("audit"), "{err}");
    let err = c
        .key(AUDIT_KEY)
        .and_then(|k| k.hmac(HmacAlg::HmacSha256, b"forged line"))
        .unwrap_err();
    assert!(err.to_string().contains("audit"), "{err}");
    // Nor can a new version be slipped under it.
    let err = c
        .rotate_begin(
            KeySpec::hmac(AUDIT_KEY),
            hsm_custody::NewVersion::Hmac(SecretString::from("known-to-the-attacker-01234")),
        )
        .unwrap_err();
    assert!(err.to_string().contains("audit"), "{err}");
    let out = cli(
        &t,
        &["sign", "--key", AUDIT_KEY],
        Some("{\"seq\":1,\"event\":\"forged\"}"),
    );
    assert!(!out.status.success(), "CLI signed with the audit key");
    assert!(stderr(&out).contains("audit"), "{}", stderr(&out));
}

/// Through the agent (here without guard rails, where nothing else stood in the way).
#[test]
fn the_audit_key_signs_nothing_through_the_agent() {
    use hsm_custody::agent::AgentClient;
    use std::io::BufRead as _;
    let t = fresh_token("a26-agentkey");
    let (dir, log) = temp_log();
    {
        let c = t.connect();
        Guardrails::new(&c, config(&log)).unwrap();
    }
    let me = fs::metadata(dir.path()).map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        m.uid()
    });
    let me = me.unwrap();
    let pin = dir.path().join("pin");
    fs::write(&pin, t.user_pin_text()).unwrap();
    fs::set_permissions(&pin, fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.path().join("run").join("agent.sock");
    let cfg = dir.path().join("agent.toml");
    fs::write(
        &cfg,
        format!(
            "module = '{}'\ntoken = '{}'\npin_file = '{}'\n\
             [agent]\nsocket = '{}'\n\
             allow_same_uid = true  # test setup: the client is this test's own uid\n\
             [agent.keys.{AUDIT_KEY}]\nuids = [{me}]\n",
            t.module.display(),
            t.label,
            pin.display(),
            socket.display()
        ),
    )
    .unwrap();
    let _no_init = crate::common::no_token_init();
    let mut child = cli_command()
        .arg("--config")
        .arg(&cfg)
        .arg("agent")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let mut reader = std::io::BufReader::new(pipe);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("listening on") && Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("listening on"), "agent did not start: {seen}");
    let result = AgentClient::connect(&socket)
        .and_then(|mut client| client.mac(AUDIT_KEY, HmacAlg::HmacSha256, b"forged line", None));
    let _ = child.kill();
    let _ = child.wait();
    let err = result.expect_err("the agent MACed with the audit key");
    assert!(err.to_string().contains("audit"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 3. Two writers

#[test]
fn a_second_writer_is_refused_and_told_the_holders_pid() {
    let t = fresh_token("a26-twowriters");
    let (dir, log) = temp_log();
    let c = t.connect();
    let first = Guardrails::install(&c, config(&log)).unwrap();
    import(&c, "bn", "binance");
    let started = Instant::now();
    let second = Guardrails::new(&t.connect(), config(&log));
    let err = second.expect_err("two writers on one log");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited briefly first"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // The CLI run with the same config while this process (the "agent") holds the log.
    let cfg = config_file(&t, dir.path(), &log, "");
    let out = cli(
        &t,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "key",
            "revoke",
            "--name",
            "bn",
            "--all",
        ],
        None,
    );
    assert!(!out.status.success(), "a second writer ran");
    assert!(
        stderr(&out).contains(&format!("pid {}", std::process::id())),
        "{}",
        stderr(&out)
    );
    c.sign_hmac("bn", HmacAlg::HmacSha256, b"still the only writer")
        .unwrap();
    first.sync().unwrap();
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
    let seqs: Vec<u64> = lines(&log)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Completeness

#[test]
fn an_ed25519_import_is_audited() {
    let t = fresh_token("a26-ed25519");
    let c = t.connect();
    let (_dir, log) = temp_log();
    Guardrails::install(&c, config(&log)).unwrap();
    // RFC 8032 test 1's seed.
    let seed =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
    use base64::Engine as _;
    let seed = base64::engine::general_purpose::STANDARD.encode(seed);
    match c.import_ed25519_key(KeySpec::asymmetric("cdp"), SecretString::from(seed)) {
        Ok(_) => {}
        // A module without Ed25519 cannot show this; SoftHSM2 2.6 has it.
        Err(Error::MechanismUnsupported { .. }) => return,
        Err(e) => panic!("{e}"),
    }
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"event\":\"created\",\"key\":\"cdp\"")
            && text.contains("\"kind\":\"ed25519\""),
        "{text}"
    );
}

/// A wrong PIN in the CLI and in the agent: each leaves a `login_failed` line, written (MACed
/// into the chain) by the next process that logs in.
#[test]
fn failed_logins_of_the_cli_and_the_agent_are_audited() {
    let t = fresh_token("a26-loginfail");
    let (dir, log) = temp_log();
    {
        let c = t.connect();
        Guardrails::install(&c, config(&log)).unwrap();
        import(&c, "bn", "binance");
    }
    let cfg = config_file(&t, dir.path(), &log, "");
    let cfg = cfg.to_str().unwrap();
    let wrong = dir.path().join("wrong.pin");
    fs::write(&wrong, "wrong-pin-0000").unwrap();
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = wrong.to_str().unwrap();
    let out = cli(
        &t,
        &["--config", cfg, "--pin-file", wrong, "sign", "--key", "bn"],
        Some("x"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The agent refuses a PIN from the environment (issue 26), which `cli` sets and the config
    // names (`pin_env`): run it without, on a config that names the PIN file.
    let agent_cfg = dir.path().join("agent.toml");
    fs::write(
        &agent_cfg,
        fs::read_to_string(cfg).unwrap().replace(
            "pin_env = 'HSM_CUSTODY_PIN'",
            &format!("pin_file = '{wrong}'"),
        ),
    )
    .unwrap();
    let out = {
        let _no_init = crate::common::no_token_init();
        cli_command()
            .arg("--config")
            .arg(&agent_cfg)
            .args(["agent", "--socket"])
            .arg(dir.path().join("a.sock"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The next login (right PIN) writes them into the chain.
    let c = t.connect();
    let guard = Guardrails::new(&c, config(&log)).unwrap();
    guard.sync().unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("\"event\":\"login_failed\"").count(),
        2,
        "{text}"
    );
    assert!(text.contains(&format!("\"token\":\"{}\"", t.label)));
    assert!(!text.contains("wrong-pin-0000"));
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
}

/// A writer that is running (the agent) records another process's failed login within a
/// second or two, without a restart.
#[test]
fn a_running_writer_records_a_failed_login_of_another_process() {
    let t = fresh_token("a26-loginlive");
    let (_dir, log) = temp_log();
    let c = t.connect();
    let guard = Guardrails::install(&c, config(&log)).unwrap();
    // The failing process: same log configuration, wrong PIN (it cannot take the log's lock,
    // nor MAC a line: it leaves a note).
    audit::record_login_failure(guard.audit_log().config(), &t.label, "PIN incorrect (test)")
        .unwrap();
    // The writer MACs the line, checkpoints, then empties the note: wait for both (the line
    // alone can be seen before the note is cleared).
    let pending = audit::pending_path_for(&log);
    let recorded = || {
        fs::read_to_string(&log).unwrap().contains("login_failed")
            && fs::metadata(&pending).unwrap().len() == 0
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !recorded() {
        assert!(
            Instant::now() < deadline,
            "not recorded (or the note not cleared) within 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"observed\":"), "{text}");
    assert_eq!(
        text.matches("\"event\":\"login_failed\"").count(),
        1,
        "recorded once: {text}"
    );
    guard.sync().unwrap();
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
}

// ---------------------------------------------------------------------------------------------
// 5. File modes

/// The CLI under umask 000 (a shell sets it, then execs the binary).
fn cli_with_umask_0(t: &TestToken, args: &[&str]) -> Output {
    let _no_init = crate::common::no_token_init();
    Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hsm-custody"))
        .args(args)
        .envs(crate::common::child_env())
        .env("HSM_CUSTODY_PIN", t.user_pin_text())
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `key revoke --name bn --all` under umask 000 with the config file `cfg`: a lifecycle event,
/// so the log and its head are written by the CLI.
fn revoke_bn_under_umask_0(t: &TestToken, cfg: &Path) {
    let out = cli_with_umask_0(
        t,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "key",
            "revoke",
            "--name",
            "bn",
            "--all",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn log_and_head_files_are_private_whatever_the_umask() {
    let t = fresh_token("a26-modes");
    import(&t.connect(), "bn", "binance");
    let (dir, log) = temp_log();
    let cfg = config_file(&t, dir.path(), &log, "");
    revoke_bn_under_umask_0(&t, &cfg);
    assert_eq!(mode(&log), 0o600, "log");
    assert_eq!(mode(&audit::head_path_for(&log)), 0o600, "head");
    for entry in fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().contains("audit.jsonl") {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[test]
fn with_a_group_the_log_is_0640_and_owned_by_that_group() {
    use std::os::unix::fs::MetadataExt as _;
    let t = fresh_token("a26-group");
    import(&t.connect(), "bn", "binance");
    let (dir, log) = temp_log();
    // A group this process may give files to: its own primary group, by number.
    let gid = fs::metadata(dir.path()).unwrap().gid();
    let cfg = config_file(&t, dir.path(), &log, &format!("group = '{gid}'\n"));
    revoke_bn_under_umask_0(&t, &cfg);
    for p in [log.clone(), audit::head_path_for(&log)] {
        assert_eq!(mode(&p), 0o640, "{}", p.display());
        assert_eq!(fs::metadata(&p).unwrap().gid(), gid);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Globs

#[test]
fn verify_and_summary_skip_head_and_lock_files_of_a_glob() {
    let t = fresh_token("a26-glob");
    let (dir, log) = temp_log();
    {
        let c = t.connect();
        // `batch`: the writer keeps a journal (`fsync = "always"` writes every line).
        Guardrails::install(&c, audit_config(&log, Fsync::Batch)).unwrap();
        import(&c, "bn", "binance");
        c.sign_hmac("bn", HmacAlg::HmacSha256, b"x").unwrap();
    }
    let cfg = config_file(&t, dir.path(), &log, "");
    // What `audit.jsonl*` expands to.
    let glob = log_glob(dir.path());
    assert!(glob.iter().any(|p| p.ends_with(".head")), "{glob:?}");
    assert!(glob.iter().any(|p| p.ends_with(".journal")), "{glob:?}");
    let mut args = vec!["--config", cfg.to_str().unwrap(), "audit", "verify"];
    args.extend(glob.iter().map(String::as_str));
    let out = cli(&t, &args, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = vec!["audit", "summary", "--json"];
    args.extend(glob.iter().map(String::as_str));
    let out = cli(&t, &args, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["unreadable"], 0, "{s}");
    assert_eq!(s["keys"]["bn"]["signed"], 1);
    let _ = events(&log);
}
