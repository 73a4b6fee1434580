//! The audit log's epoch keys and background checkpoints (issue 29): lines MACed in software
//! with a key the token derives, checkpoints (fsync, head file, token head, new epoch) off the
//! signing path. What the log proved before must still hold: every tamper case, inside an
//! epoch, at its first line and in the unprotected tail; a recovery that starts mid-epoch; and
//! checkpoints that keep coming without anybody calling `sync`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use hmac::{Hmac, Mac as _};
use hsm_custody::audit::{self, Fsync, ProblemKind};
use hsm_custody::{Custody, Guardrails, HmacAlg};
use serde_json::Value;
use sha2::Sha256;

use crate::audit::{config, found_at, lines, temp_log, verify, write_lines, KEY};
use crate::common::{fresh_token, TestToken};
use crate::guardrails::import;

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// Indexes (0-based) of the lines that start an epoch.
fn epoch_starts(all: &[String]) -> Vec<usize> {
    (0..all.len())
        .filter(|&i| json(&all[i]).get("epoch").is_some())
        .collect()
}

/// Signs `n` raw HMACs through the guard (one audit line each).
fn sign_n(c: &Custody, n: usize, tag: &str) {
    for i in 0..n {
        c.sign_hmac("bot", HmacAlg::HmacSha256, format!("{tag}{i}").as_bytes())
            .unwrap();
    }
}

/// Waits until `f` holds, for at most `secs`.
fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The `seq` the head file next to `log` records.
fn head_seq(log: &Path) -> u64 {
    let text = fs::read_to_string(audit::head_path_for(log)).unwrap();
    json(&text)["seq"].as_u64().unwrap()
}

/// The line format as documented, checked from outside the crate: the first line's MAC is
/// HMAC(audit key, prev || body) in the token; an epoch line's key is HMAC(audit key,
/// "hsm-custody audit epoch v1\0" || nonce) in the token, and it MACs its lines in software.
fn check_format_with_raw_pkcs11(t: &TestToken, all: &[String]) {
    let ctx = crate::raw_pkcs11::raw_context(&t.module);
    let session = ctx.open_ro_session(crate::common::slot(t)).unwrap();
    t.raw_login(&session);
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(KEY.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    let token_mac = |data: &[u8]| session.sign(&Mechanism::Sha256Hmac, key, data).unwrap();
    let mut prev = vec![0u8; 32];
    let mut epoch_key: Option<Vec<u8>> = None;
    for (i, line) in all.iter().enumerate() {
        let cut = line.rfind(",\"mac\":\"").unwrap();
        let body = format!("{}}}", &line[..cut]);
        let mac = hex::decode(&line[cut + 8..line.len() - 2]).unwrap();
        if let Some(nonce) = json(line).get("epoch").and_then(Value::as_str) {
            let mut input = b"hsm-custody audit epoch v1\0".to_vec();
            input.extend_from_slice(&hex::decode(nonce).unwrap());
            epoch_key = Some(token_mac(&input));
        }
        let mut input = prev.clone();
        input.extend_from_slice(body.as_bytes());
        let want = match (&epoch_key, i) {
            (_, 0) | (None, _) => token_mac(&input),
            (Some(k), _) => {
                let mut h = Hmac::<Sha256>::new_from_slice(k).unwrap();
                h.update(&input);
                h.finalize().into_bytes().to_vec()
            }
        };
        assert_eq!(mac, want, "line {}: not the documented MAC", i + 1);
        prev = mac;
    }
}

/// Nobody calls `sync`: the flusher still makes the lines durable and saves the head (a
/// second after the last checkpoint, at its next tick; at once after a batch of 4,096 lines),
/// writes the token's head and starts new epochs. Fails if checkpoints stop being written.
#[test]
fn checkpoints_and_epochs_keep_coming_without_sync() {
    let t = fresh_token("epoch-bg");
    let c = t.connect();
    let (_dir, log) = temp_log();
    let guard = Guardrails::install(&c, config(&log, Fsync::Batch)).unwrap();
    import(&c, "bot", "binance");
    let opened_at = head_seq(&log);
    // Due a second after the checkpoint at open; the flusher looks every 250 ms.
    sign_n(&c, 70, "a");
    assert!(
        wait_for(2, || head_seq(&log) >= 64),
        "no checkpoint within 2 s (head at {})",
        head_seq(&log)
    );
    assert!(head_seq(&log) > opened_at);
    // Fewer lines: checkpointed within about a second, and so is the token's head.
    for round in 0..3 {
        sign_n(&c, 5, &format!("r{round}-"));
        let last = guard.audit_log().last_seq().unwrap();
        assert!(
            wait_for(3, || head_seq(&log) == last
                && guard.audit_log().checkpoint_seq().unwrap() == last),
            "round {round}: head at {} after 3 s, last line {last}",
            head_seq(&log)
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
    sign_n(&c, 2, "end");
    let all = lines(&log);
    let starts = epoch_starts(&all);
    assert!(
        starts.len() >= 3,
        "epochs did not roll with the token head: {starts:?}"
    );
    assert!(!starts.contains(&0), "the first line carries no epoch");
    guard.sync().unwrap();
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
    assert!(report.token_head_checked);
    assert_eq!(report.epochs, starts.len() as u64);
    assert_eq!(report.unprotected_tail, Some(0));
    check_format_with_raw_pkcs11(&t, &lines(&log));
}

/// Every place a line can be edited is found: inside an epoch, its first line (nonce changed,
/// or removed to pass the line off as token-MACed), a first line claiming an epoch, and the
/// unprotected tail after the last checkpoint (`fsync = "never"` keeps the head back).
#[test]
fn tampering_inside_an_epoch_at_its_start_and_in_the_tail_is_found() {
    let t = fresh_token("epoch-tamper");
    let c = t.connect();
    let (dir, log) = temp_log();
    let guard = Guardrails::install(&c, config(&log, Fsync::Never)).unwrap();
    import(&c, "bot", "binance");
    sign_n(&c, 40, "x");
    // Lines signed in quick succession wait in the journal (at most 5 ms): into the file.
    guard.audit_log().flush().unwrap();
    let all = lines(&log);
    let head = audit::head_path_for(&log);
    let checkpoint = head_seq(&log);
    let report = verify(&c, std::slice::from_ref(&log), Some(&head));
    assert!(report.is_ok(), "{:?}", report.problem);
    assert_eq!(
        report.unprotected_tail,
        Some(all.len() as u64 - checkpoint),
        "the tail is what the head does not cover"
    );
    assert!(
        report.unprotected_tail.unwrap() >= 38,
        "{:?}",
        report.unprotected_tail
    );
    let starts = epoch_starts(&all);
    assert_eq!(starts, vec![1], "one epoch, from the second line");
    let check = |name: &str, tampered: Vec<String>, line: u64, kind: ProblemKind| {
        found_at(&c, dir.path(), &head, name, &tampered, (line, kind));
    };
    // In the tail (the head is at the first lines), mid-epoch.
    let mut edited = all.clone();
    edited[30] = edited[30].replace("\"bot\"", "\"bob\"");
    check("tail-edit", edited, 31, ProblemKind::Mac);
    // The epoch's first line with another nonce: another key.
    let mut renonced = all.clone();
    let nonce = json(&all[1])["epoch"].as_str().unwrap().to_owned();
    let other = format!(
        "{}{}",
        &nonce[..31],
        if nonce.ends_with('0') { "1" } else { "0" }
    );
    renonced[1] = renonced[1].replace(&nonce, &other);
    check("renonced", renonced, 2, ProblemKind::Mac);
    // The nonce removed: the line is then checked as token-MACed, and is not.
    let mut unepoched = all.clone();
    unepoched[1] = unepoched[1].replace(&format!(",\"epoch\":\"{nonce}\""), "");
    check("unepoched", unepoched, 2, ProblemKind::Mac);
    // A first line claiming an epoch is not an audit line.
    let mut first = all.clone();
    first[0] = first[0].replacen(",\"mac\"", &format!(",\"epoch\":\"{nonce}\",\"mac\""), 1);
    check("first-epoch", first, 1, ProblemKind::Malformed);
    drop(guard);
}

/// A crash snapshot whose head sits in the middle of an epoch (the epoch started before it):
/// the writer's recovery finds that epoch's key and checks the lines after the head with it;
/// an edited line there is refused at open.
#[test]
fn recovery_checks_the_lines_after_a_mid_epoch_head() {
    let t = fresh_token("epoch-recover");
    let c = t.connect();
    let (dir, log) = temp_log();
    let guard = Guardrails::install(&c, config(&log, Fsync::Batch)).unwrap();
    import(&c, "bot", "binance");
    sign_n(&c, 70, "a");
    assert!(wait_for(2, || guard.audit_log().checkpoint_seq().unwrap() >= 64));
    sign_n(&c, 5, "b");
    guard.audit_log().flush().unwrap();
    // The crash: the files as they are now, copied to where another writer opens them (the
    // journal's lines are in the file: `journal_lines_survive_a_crash` covers them).
    let crashed = dir.path().join("crashed");
    fs::create_dir(&crashed).unwrap();
    let copy = crashed.join("audit.jsonl");
    fs::copy(&log, &copy).unwrap();
    fs::copy(audit::head_path_for(&log), audit::head_path_for(&copy)).unwrap();
    let all = lines(&copy);
    let head_at = head_seq(&copy);
    let starts = epoch_starts(&all);
    let last_start = *starts
        .iter()
        .filter(|&&i| (i as u64) < head_at)
        .max()
        .unwrap();
    assert!(
        (last_start as u64) + 1 < head_at && head_at < all.len() as u64,
        "the snapshot's head ({head_at}) is inside an epoch started at line {} with lines \
         after it ({})",
        last_start + 1,
        all.len()
    );
    drop(guard);
    drop(c);
    // Edited after the head: refused at open.
    let mut edited = all.clone();
    let i = all.len() - 2;
    edited[i] = edited[i].replace("\"bot\"", "\"bob\"");
    write_lines(&copy, &edited);
    let err = Guardrails::new(&t.connect(), config(&copy, Fsync::Batch)).unwrap_err();
    assert!(err.to_string().contains("MAC does not match"), "{err}");
    // As it was: the writer continues it.
    write_lines(&copy, &all);
    let c2 = t.connect();
    let g2 = Guardrails::install(&c2, config(&copy, Fsync::Batch)).unwrap();
    sign_n(&c2, 3, "c");
    g2.sync().unwrap();
    let report = verify(&c2, std::slice::from_ref(&copy), None);
    assert!(report.is_ok(), "{:?}", report.problem);
    assert_eq!(report.last_seq, Some(all.len() as u64 + 3));
}

/// The writer replaces its own token head object without searching the token (the search
/// read every object of a SoftHSM2 token and held up the process's signatures); each write
/// still leaves exactly one head object for the chain, holding the last durable line.
#[test]
fn each_token_head_write_leaves_one_object_with_the_last_line() {
    let t = fresh_token("epoch-headobj");
    let c = t.connect();
    let (_dir, log) = temp_log();
    let guard = Guardrails::install(&c, config(&log, Fsync::Batch)).unwrap();
    import(&c, "bot", "binance");
    let ctx = crate::raw_pkcs11::raw_context(&t.module);
    let session = ctx.open_ro_session(crate::common::slot(&t)).unwrap();
    t.raw_login(&session);
    let heads = || -> Vec<u64> {
        session
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Application(b"hsm-custody-audit-head".to_vec()),
            ])
            .unwrap()
            .into_iter()
            .map(|h| {
                let value = session
                    .get_attributes(h, &[cryptoki::object::AttributeType::Value])
                    .unwrap();
                match &value[0] {
                    Attribute::Value(v) => json(std::str::from_utf8(v).unwrap())["seq"]
                        .as_u64()
                        .unwrap(),
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    };
    for round in 0..4 {
        sign_n(&c, 3, &format!("h{round}-"));
        guard.sync().unwrap();
        let last = guard.audit_log().last_seq().unwrap();
        assert_eq!(heads(), vec![last], "round {round}");
    }
}
