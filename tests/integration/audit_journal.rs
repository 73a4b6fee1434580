//! The audit log's journal (issue 29): lines signed in quick succession wait in a file mapped
//! into the writer's memory (`PATH.journal`) until one `write` moves many into the log. What the
//! log proved before must still hold: a crash of the process loses no line of a signature it
//! handed out, and a line edited in the journal is refused like one edited in the file.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use hsm_custody::audit::{self, Fsync};
use hsm_custody::{Config, Custody, Guardrails, HmacAlg};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::audit::{config, lines, temp_log, verify};
use crate::common::{child_env, fresh_token, no_token_init, TestToken};
use crate::guardrails::import;

const ENV_LOG: &str = "HSM_CUSTODY_TEST_JOURNAL_LOG";
const ENV_MODULE: &str = "HSM_CUSTODY_TEST_JOURNAL_MODULE";
const ENV_LABEL: &str = "HSM_CUSTODY_TEST_JOURNAL_LABEL";
const ENV_PIN: &str = "HSM_CUSTODY_TEST_JOURNAL_PIN";
const ENV_INIT: &str = "HSM_CUSTODY_TEST_JOURNAL_INIT";

fn message(i: u64) -> String {
    format!("journal crash {i}")
}

/// The child half of `journal_lines_survive_an_abort` (does nothing in the test run itself):
/// signs in a loop through the guard, printing the number of each signature it got, and aborts
/// (no unwinding, no destructor, no flush) once at least 5 lines wait in the journal.
#[test]
fn journal_child_signs_until_aborted() {
    let Ok(log) = std::env::var(ENV_LOG) else {
        return;
    };
    let var = |k| std::env::var(k).unwrap();
    let mut cfg =
        Config::new(var(ENV_MODULE), var(ENV_LABEL)).pin(SecretString::from(var(ENV_PIN)));
    if let Ok(params) = std::env::var(ENV_INIT) {
        cfg = cfg
            .module_init_params(params)
            .danger_accept_non_custody_module(true);
    }
    let c = Custody::connect(cfg).unwrap();
    let guard = Guardrails::install(&c, config(Path::new(&log), Fsync::Batch)).unwrap();
    for i in 0..100_000u64 {
        c.sign_hmac("bot", HmacAlg::HmacSha256, message(i).as_bytes())
            .unwrap();
        // Line-buffered: in the pipe before the next signature.
        println!("signed {i}");
        let in_file = fs::read(&log)
            .unwrap()
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        if i >= 20 && guard.audit_log().last_seq().unwrap() >= in_file as u64 + 5 {
            break;
        }
    }
    std::process::abort();
}

/// Runs the child against `log`; the numbers of the signatures it reported.
fn sign_until_aborted(t: &TestToken, log: &Path) -> Vec<u64> {
    let out = {
        let _init = no_token_init();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "audit_journal::journal_child_signs_until_aborted",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(child_env())
        .env(ENV_LOG, log)
        .env(ENV_MODULE, &t.module)
        .env(ENV_LABEL, &t.label)
        .env(ENV_PIN, t.user_pin_text())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(params) = crate::common::init_params() {
            cmd.env(ENV_INIT, params);
        }
        cmd.output().unwrap()
    };
    assert!(
        !out.status.success(),
        "the child must die by abort\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // The first follows the harness's `test … ` on its line.
        .filter_map(|l| l.split("signed ").nth(1))
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        signed.len() > 20,
        "the child signed too little before the abort: {}\n{}",
        signed.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    signed
}

/// The hashes of the messages the log's `sign` lines record.
fn signed_hashes(log: &Path) -> HashSet<String> {
    lines(log)
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["sha256"].as_str().map(str::to_owned)
        })
        .collect()
}

fn hash(i: u64) -> String {
    hex::encode(Sha256::digest(message(i).as_bytes()))
}

/// A process that dies while lines wait in the journal loses none of them: the next writer
/// moves them into the log (checked against every signature the dead process reported, by the
/// hash its line records), and the chain verifies. A line edited in the journal of a copy of
/// the crashed files is refused when the copy is opened.
///
/// Fails without the journal's mapping (lines kept only in memory): the signatures last
/// reported have no line. Fails on a writer without a journal too: every line is in the file
/// at the crash.
#[test]
fn journal_lines_survive_an_abort() {
    let t = fresh_token("journal-abort");
    {
        let c = t.connect();
        import(&c, "bot", "binance");
    }
    // The child aborts with lines staged; the flusher may move them in between its look and
    // the abort (a few microseconds of every 5 ms): then the run proves nothing, and is run
    // again.
    let (dir, log, signed, in_file_hashes) = (0..3)
        .find_map(|_| {
            let (dir, log) = temp_log();
            let signed = sign_until_aborted(&t, &log);
            let in_file = signed_hashes(&log);
            let missing = signed
                .iter()
                .filter(|i| !in_file.contains(&hash(**i)))
                .count();
            (missing > 0).then_some((dir, log, signed, in_file))
        })
        .expect("three crashes in a row left every signed line in the file: no journal?");
    let journal = audit::journal_path_for(&log);
    assert!(journal.exists(), "no journal next to the log");
    // `audit verify` before a writer opens it: the file verifies, and the journal's lines
    // that continue it are counted.
    let c = t.connect();
    let missing = signed
        .iter()
        .filter(|i| !in_file_hashes.contains(&hash(**i)))
        .count() as u64;
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
    assert!(
        report.journal_lines >= missing,
        "verify counts {} journal lines; {missing} signatures lack a line in the file",
        report.journal_lines
    );

    // A copy of the crashed files, for the edit below.
    let copy_dir = dir.path().join("edited");
    fs::create_dir(&copy_dir).unwrap();
    let copy = copy_dir.join("audit.jsonl");
    fs::copy(&log, &copy).unwrap();
    fs::copy(audit::head_path_for(&log), audit::head_path_for(&copy)).unwrap();
    let mut staged = fs::read(&journal).unwrap();

    // The crashed files as they are: every line comes back.
    let guard = Guardrails::install(&c, config(&log, Fsync::Batch)).unwrap();
    guard.sync().unwrap();
    let hashes = signed_hashes(&log);
    for i in &signed {
        assert!(
            hashes.contains(&hash(*i)),
            "signature {i} of {} has no line after the crash (the file held {} sign lines, \
             now {})",
            signed.len(),
            in_file_hashes.len(),
            hashes.len()
        );
    }
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
    assert_eq!(
        report.journal_lines, 0,
        "moved in, and the writer ended cleanly"
    );
    drop(guard);

    // The copy with a staged line edited (the first signature the file lacked at the crash,
    // found by its hash): refused at open (the MACs after the head are checked before the
    // token's head, which the reopen above moved on).
    let first_staged = signed
        .iter()
        .find(|i| !in_file_hashes.contains(&hash(**i)))
        .unwrap();
    let needle = format!("\"sha256\":\"{}\"", hash(*first_staged));
    let at_hash = staged
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("the first staged line in the journal");
    let at = staged[..at_hash]
        .windows(5)
        .rposition(|w| w == b"\"bot\"")
        .expect("its key");
    staged[at + 3] = b'b';
    fs::write(audit::journal_path_for(&copy), &staged).unwrap();
    let err = Guardrails::new(&c, config(&copy, Fsync::Batch)).unwrap_err();
    assert!(err.to_string().contains("MAC does not match"), "{err}");
}
