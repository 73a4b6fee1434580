//! The audit chain against real tokens: 100,000 lines from 8 threads verify; edits, deletions,
//! reordering, truncation and splices are found at the right line; a restart continues the
//! chain; rotation keeps one chain; fsync modes; lifecycle events; nothing secret is written.

use std::fs;
use std::path::{Path, PathBuf};

use hsm_custody::audit::{self, AuditConfig, Fsync, ProblemKind, VerifyReport};
use hsm_custody::exchanges::Request;
use hsm_custody::{Custody, Error, GuardConfig, Guardrails, HmacAlg, KeySpec, SecretString};

use crate::common::{cli, fresh_token, TestToken};
use crate::guardrails::import;

// ---------------------------------------------------------------------------------------------
// The audit tests' fixture (audit_hardening.rs uses it too)

pub(crate) const KEY: &str = audit::DEFAULT_AUDIT_KEY;

/// A temp dir and the path of an audit log in it (`audit.jsonl`, not created yet).
pub(crate) fn temp_log() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    (dir, log)
}

pub(crate) fn config(path: &Path, fsync: Fsync) -> GuardConfig {
    GuardConfig::new(AuditConfig::new(path).fsync(fsync))
}

/// The log's chain checked with the default audit key.
pub(crate) fn verify(c: &Custody, files: &[PathBuf], head: Option<&Path>) -> VerifyReport {
    audit::verify(c, KEY, files, head).unwrap()
}

pub(crate) fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(crate) fn write_lines(path: &Path, lines: &[String]) {
    fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// The `event` of every line.
pub(crate) fn events(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A config file for the CLI: the test token, `[audit]` at `log` (plus `extra` lines in that
/// section), and key `bn` allowed to place orders.
pub(crate) fn config_file(t: &TestToken, dir: &Path, log: &Path, extra: &str) -> PathBuf {
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "module = '{}'\ntoken = '{}'\npin_env = 'HSM_CUSTODY_PIN'\n\
             [audit]\npath = '{}'\nfsync = 'always'\n{extra}\
             [keys.bn]\nexchange = 'binance'\nallow = ['POST /api/v3/order']\n",
            t.module.display(),
            t.label,
            log.display()
        ),
    )
    .unwrap();
    config
}

/// Writes `tampered` as `dir/name` and checks that `verify` (against `head`) finds its first
/// problem at `want` (line, kind); returns the report.
pub(crate) fn found_at(
    c: &Custody,
    dir: &Path,
    head: &Path,
    name: &str,
    tampered: &[String],
    want: (u64, ProblemKind),
) -> VerifyReport {
    let path = dir.join(name);
    write_lines(&path, tampered);
    let report = verify(c, std::slice::from_ref(&path), Some(head));
    let p = report
        .problem
        .clone()
        .unwrap_or_else(|| panic!("{name}: not detected"));
    assert_eq!((p.line, p.kind), want, "{name}: {}", p.detail);
    report
}

/// What the glob `audit.jsonl*` in `dir` expands to, sorted (the log, rotated files, head,
/// lock and pending files).
pub(crate) fn log_glob(dir: &Path) -> Vec<String> {
    let mut glob: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit.jsonl")
        })
        .map(|p| p.display().to_string())
        .collect();
    glob.sort();
    glob
}

// ---------------------------------------------------------------------------------------------

#[test]
fn an_audit_log_of_100000_lines_written_by_8_threads_verifies() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500;
    let t = fresh_token("audit100k");
    let c = t.connect();
    let (_dir, log) = temp_log();
    // fsync "never" keeps this within the time budget; the fsync modes are tested below.
    let guard = Guardrails::install(&c, config(&log, Fsync::Never)).unwrap();
    import(&c, "bot", "binance");
    std::thread::scope(|s| {
        for n in 0..THREADS {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    c.sign_hmac("bot", HmacAlg::HmacSha256, format!("{n}:{i}").as_bytes())
                        .unwrap();
                }
            });
        }
    });
    guard.sync().unwrap();
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(report.is_ok(), "{:?}", report.problem);
    assert!(report.head_checked && report.from_genesis);
    // chain_start + created + 100,000 signs.
    assert_eq!(report.good_lines, 2 + (THREADS * PER_THREAD) as u64);
    let summary = audit::summarize(&[log]).unwrap();
    assert_eq!(summary.keys["bot"].signed, (THREADS * PER_THREAD) as u64);
    assert_eq!(summary.unreadable, 0, "no interleaved or lost lines");
}

/// A log of 60 lines, its head, and a second log (same token, same audit key) to splice from.
fn sample(tag: &str) -> (Custody, tempfile::TempDir, PathBuf, PathBuf) {
    let t = fresh_token(tag);
    let c = t.connect();
    let (dir, log) = temp_log();
    let guard = Guardrails::install(&c, config(&log, Fsync::Batch)).unwrap();
    import(&c, "bot", "binance");
    let signer = c.exchange_signer("bot").unwrap();
    for i in 0..58 {
        signer
            .sign(&Request::post("/api/v3/order").query(format!("i={i}")))
            .unwrap();
    }
    guard.sync().unwrap();
    // The other log: same token and audit key, separate chain.
    let other = dir.path().join("other.jsonl");
    let other_custody = t.connect();
    let g2 = Guardrails::install(&other_custody, config(&other, Fsync::Always)).unwrap();
    for i in 0..30 {
        other_custody
            .sign_hmac("bot", HmacAlg::HmacSha256, format!("{i}").as_bytes())
            .unwrap();
    }
    g2.sync().unwrap();
    assert_eq!(lines(&log).len(), 60);
    (c, dir, log, other)
}

#[test]
fn every_kind_of_tampering_is_found_at_the_right_line() {
    let (c, dir, log, other) = sample("tamper");
    let head = audit::head_path_for(&log);
    assert!(verify(&c, std::slice::from_ref(&log), None).is_ok());
    let original = lines(&log);
    let spliced_from = lines(&other);
    let check = |name: &str, tampered: Vec<String>, line: u64, kind: ProblemKind| {
        let report = found_at(&c, dir.path(), &head, name, &tampered, (line, kind));
        assert_eq!(report.good_lines, line - 1, "{name}");
    };
    let mut edited = original.clone();
    edited[19] = edited[19].replace("/api/v3/order", "/api/v3/ordeR");
    check("edited", edited, 20, ProblemKind::Mac);

    let mut deleted = original.clone();
    deleted.remove(19);
    check("deleted", deleted, 20, ProblemKind::Sequence);

    let mut reordered = original.clone();
    reordered.swap(19, 20);
    check("reordered", reordered, 20, ProblemKind::Sequence);

    let truncated = original[..55].to_vec();
    check("truncated", truncated, 56, ProblemKind::Truncated);

    // A line from the other log with the same seq: only the MAC chain tells them apart.
    let mut spliced = original.clone();
    spliced[19] = spliced_from[19].clone();
    check("spliced", spliced, 20, ProblemKind::Mac);

    let mut headless = original.clone();
    headless.drain(..3);
    check("head-cut", headless, 1, ProblemKind::Chain);

    let mut garbage = original.clone();
    garbage[9] = "{\"seq\":10,".into();
    check("malformed", garbage, 10, ProblemKind::Malformed);
}

#[test]
fn a_restart_continues_the_chain_and_refuses_a_broken_log() {
    let t = fresh_token("restart");
    let (_dir, log) = temp_log();
    {
        let c = t.connect();
        Guardrails::install(&c, config(&log, Fsync::Always)).unwrap();
        import(&c, "bot", "binance");
        for _ in 0..10 {
            c.sign_hmac("bot", HmacAlg::HmacSha256, b"before").unwrap();
        }
    }
    let before = lines(&log).len();
    // A crash in the middle of a write leaves a partial line: dropped on reopen.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"seq\":13,\"ti"))
        .unwrap();
    let c = t.connect();
    let guard = Guardrails::install(&c, config(&log, Fsync::Always)).unwrap();
    assert_eq!(guard.audit_log().last_seq().unwrap(), before as u64);
    for _ in 0..5 {
        c.sign_hmac("bot", HmacAlg::HmacSha256, b"after").unwrap();
    }
    let all = lines(&log);
    assert_eq!(
        all.len(),
        before + 5,
        "continued in place: no new chain_start"
    );
    assert_eq!(all.iter().filter(|l| l.contains("chain_start")).count(), 1);
    let report = verify(&c, std::slice::from_ref(&log), None);
    assert!(
        report.is_ok() && report.from_genesis,
        "{:?}",
        report.problem
    );
    assert_eq!(report.last_seq, Some((before + 5) as u64));

    // A log cut behind the head's back is refused at open (fail closed) ...
    write_lines(&log, &all[..all.len() - 2]);
    let err = Guardrails::new(&t.connect(), config(&log, Fsync::Always)).unwrap_err();
    assert!(matches!(err, Error::AuditFailed(_)), "{err}");
    // ... and so is an edited one.
    let mut edited = all.clone();
    let last = edited.len() - 1;
    edited[last] = edited[last].replace("\"bot\"", "\"bob\"");
    write_lines(&log, &edited);
    let head = audit::head_path_for(&log);
    assert!(head.exists());
    let report = verify(&t.connect(), std::slice::from_ref(&log), None);
    assert_eq!(
        report.problem.map(|p| (p.line, p.kind)),
        Some((last as u64 + 1, ProblemKind::Mac))
    );
}

#[test]
fn rotation_by_size_keeps_one_chain() {
    let t = fresh_token("rotate");
    let c = t.connect();
    let (dir, log) = temp_log();
    let cfg = GuardConfig::new(
        AuditConfig::new(&log)
            .fsync(Fsync::Batch)
            .max_bytes(8 * 1024),
    );
    let guard = Guardrails::install(&c, cfg).unwrap();
    import(&c, "bot", "binance");
    for i in 0..200 {
        c.sign_hmac("bot", HmacAlg::HmacSha256, format!("{i}").as_bytes())
            .unwrap();
    }
    guard.sync().unwrap();
    let mut files: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".head"))
        .collect();
    assert!(files.len() >= 3, "rotated: {files:?}");
    files.reverse(); // any order: verify sorts by first seq
    let report = verify(&c, &files, None);
    assert!(report.is_ok(), "{:?}", report.problem);
    assert_eq!(report.last_seq, Some(report.good_lines));
    // The active file alone verifies from its chain_start (mid-chain).
    let alone = verify(&c, std::slice::from_ref(&log), None);
    assert!(alone.is_ok() && !alone.from_genesis, "{:?}", alone.problem);
    // A missing middle file breaks the chain at the next file's first line.
    let mut sorted = files.clone();
    sorted.sort();
    let gap: Vec<PathBuf> = sorted
        .iter()
        .filter(|p| **p != sorted[2])
        .cloned()
        .collect();
    let p = verify(&c, &gap, None).problem.expect("gap detected");
    assert_eq!((p.line, p.kind), (1, ProblemKind::Chain));
}

#[test]
fn fsync_modes_and_lifecycle_events_are_recorded() {
    for fsync in [Fsync::Always, Fsync::Batch, Fsync::Never] {
        let t = fresh_token("fsync");
        let c = t.connect();
        let (_dir, log) = temp_log();
        let guard = Guardrails::install(&c, config(&log, fsync)).unwrap();
        c.import_hmac_secret(KeySpec::hmac("k"), SecretString::from("lifecycle-secret"))
            .unwrap();
        c.rotate_begin(
            KeySpec::hmac("k"),
            hsm_custody::NewVersion::Hmac(SecretString::from("second")),
        )
        .unwrap();
        c.rotate_promote("k").unwrap();
        c.rotate_retire("k", None).unwrap();
        c.revoke("k", None).unwrap();
        if fsync != Fsync::Always {
            guard.sync().unwrap();
        }
        assert_eq!(
            events(&log),
            [
                "chain_start",
                "created",
                "rotation_begun",
                "promoted",
                "retired",
                "revoked"
            ],
            "{fsync:?}"
        );
        assert!(verify(&c, &[log], None).is_ok(), "{fsync:?}");
    }
}

#[test]
fn a_refused_login_is_audited() {
    let t = fresh_token("loginfail");
    let c = t.connect();
    let (_dir, log) = temp_log();
    let guard = Guardrails::new(&c, config(&log, Fsync::Always)).unwrap();
    // A token this process has not logged in to (a logged-in process never re-checks a PIN).
    let other = fresh_token("loginfail2");
    let wrong = other.config().pin(SecretString::from("wrong-pin-0000"));
    let err = Custody::connect_guarded(wrong, guard.clone()).unwrap_err();
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"event\":\"login_failed\""), "{text}");
    assert!(!text.contains("wrong-pin-0000"));
    assert!(verify(&c, &[log], None).is_ok());
}

#[test]
fn audit_lines_hold_a_hash_never_the_message_or_the_signature() {
    let t = fresh_token("nosecret");
    let c = t.connect();
    let (_dir, log) = temp_log();
    Guardrails::install(&c, config(&log, Fsync::Always)).unwrap();
    import(&c, "bot", "binance");
    let message = b"MESSAGE-MARKER-symbol=LTCBTC";
    let sig = c.sign_hmac("bot", HmacAlg::HmacSha256, message).unwrap();
    let text = fs::read_to_string(&log).unwrap();
    use sha2::Digest;
    assert!(text.contains(&hex::encode(sha2::Sha256::digest(message))));
    assert!(!text.contains("MESSAGE-MARKER"));
    assert!(!text.contains(&sig.to_hex()));
    assert!(!text.contains("guard-rails-test-secret"));
    assert!(!text.contains(&t.user_pin_text()));
    let tail = audit::tail(&log, 1).unwrap();
    assert!(tail[0].contains("\"event\":\"sign\"") && tail[0].contains("\"decision\":\"allow\""));
}

/// The CLI with a config file that has `[audit]` and `[keys]`: `sign-request` is guarded and
/// audited; `audit verify`, `tail` and `summary` read the log; a tampered log fails `verify`.
#[test]
fn cli_signs_under_guard_rails_and_verifies_tails_and_summarises_the_log() {
    let t = fresh_token("cli-audit");
    import(&t.connect(), "bn", "binance");
    let (dir, log) = temp_log();
    let config = config_file(&t, dir.path(), &log, "");
    let cfg = config.to_str().unwrap();
    let request = |name: &str, path: &str| {
        let file = dir.path().join(name);
        fs::write(
            &file,
            format!("{{\"method\":\"POST\",\"path\":\"{path}\",\"query\":\"a=1\"}}"),
        )
        .unwrap();
        file
    };
    let order = request("order.json", "/api/v3/order");
    let withdraw = request("withdraw.json", "/sapi/v1/capital/withdraw/apply");
    let sign = |file: &Path| {
        cli(
            &t,
            &[
                "--config",
                cfg,
                "sign-request",
                "--key",
                "bn",
                "--exchange",
                "binance",
                "--request",
                file.to_str().unwrap(),
            ],
            None,
        )
    };
    let ok = sign(&order);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = sign(&withdraw);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("withdrawal-guard:binance"), "{stderr}");

    let logs = log.to_str().unwrap();
    let verified = cli(&t, &["--config", cfg, "audit", "verify", logs], None);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let tail = cli(&t, &["audit", "tail", "-n", "1", logs], None);
    let last = String::from_utf8_lossy(&tail.stdout);
    assert!(
        last.contains("\"decision\":\"deny\"") && last.contains("withdrawal-guard"),
        "{last}"
    );
    let summary = cli(&t, &["audit", "summary", "--json", logs], None);
    let s: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(s["keys"]["bn"]["signed"], 1);
    assert_eq!(s["keys"]["bn"]["denied"], 1);

    let mut tampered = lines(&log);
    tampered[1] = tampered[1].replace("\"allow\"", "\"deny\"");
    write_lines(&log, &tampered);
    let failed = cli(
        &t,
        &["--config", cfg, "audit", "verify", "--json", logs],
        None,
    );
    assert!(!failed.status.success());
    let report: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(report["problem"]["line"], 2);
    assert_eq!(report["problem"]["kind"], "mac");
}
