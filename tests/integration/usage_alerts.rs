//! Issue 30: usage in `key list`, unused and old keys in `doctor`, anomaly alerts (traffic
//! spike, failed logins, repeated refusals of one client) on the channel and through the alert
//! command, all with injected traffic against real tokens.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use hsm_custody::audit::Fsync;
use hsm_custody::{
    Alert, AlertKind, Custody, Error, Guardrails, HmacAlg, KeySpec, RequestContext, SecretString,
};
use time::OffsetDateTime;

use crate::audit::{config as audit_config, config_file, lines, temp_log, write_lines};
use crate::common::{cli, fresh_token, TestToken};
use crate::guardrails::guarded;

const SECRET: &str = "usage-alerts-test-secret-0123456789abcdef";

fn import(c: &Custody, name: &str) {
    c.import_hmac_secret(
        KeySpec::hmac(name).algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from(SECRET),
    )
    .expect("import");
}

fn sign(c: &Custody, name: &str) {
    c.sign_hmac(name, HmacAlg::HmacSha256, b"timestamp=1499827319559")
        .expect("allowed signature");
}

/// The alerts of `kind` received within `wait`.
fn collect(rx: &Receiver<Alert>, kind: AlertKind, wait: Duration) -> Vec<Alert> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(a) if a.kind == kind => out.push(a),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// The first alert of `kind` within `wait`.
fn first(rx: &Receiver<Alert>, kind: AlertKind, wait: Duration) -> Option<Alert> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(a) if a.kind == kind => return Some(a),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// The lines the alert command wrote, once there are `n` (or whatever is there after 10 s).
fn command_lines(file: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        let got: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per alert"))
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A steady rate for ten minutes (the test clock: 10 signatures a minute of key `k`, 2 of key
/// `calm`), then a burst: one spike alert, on the channel and through the alert command, when
/// the minute's count passes both 3 x the median and the minimum of 20, and no second one in
/// the same minute.
#[test]
fn a_spike_over_a_steady_rate_alerts_once_on_the_channel_and_through_the_command() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("alerts.jsonl");
    let (_t, c, guard, _dir) = guarded(
        "spike",
        &format!(
            "[alerts]\nspike_factor = 3\nspike_min_per_minute = 20\n\
             command = ['sh', '-c', 'cat >> {}']\n",
            out.display()
        ),
    );
    import(&c, "k");
    import(&c, "calm");
    let alerts = guard.alerts();
    let sign_n = |name: &str, n: usize| {
        for _ in 0..n {
            sign(&c, name);
        }
        guard.danger_check_alerts_now();
    };
    for _ in 0..10 {
        guard.danger_advance_alert_minute();
        sign_n("k", 10);
        sign_n("calm", 2);
    }
    guard.danger_advance_alert_minute();
    // `calm`: 19 is over 3 x its median of 2, under the minimum of 20.
    sign_n("calm", 19);
    // `k`: 30 is over the minimum, not over 3 x its median of 10.
    sign_n("k", 30);
    assert!(
        collect(&alerts, AlertKind::TrafficSpike, Duration::from_millis(700)).is_empty(),
        "a steady rate, a minute under the minimum, a minute under 3 x the median: no spike"
    );
    sign_n("k", 1);
    let spike = first(&alerts, AlertKind::TrafficSpike, Duration::from_secs(5)).expect("a spike");
    assert_eq!(spike.key, "k");
    assert_eq!(spike.count, Some(31));
    assert!(spike.rule.contains("median of 10"), "{}", spike.rule);
    sign_n("k", 30);
    // The background thread checks every half second: give it a few turns.
    let more = collect(
        &alerts,
        AlertKind::TrafficSpike,
        Duration::from_millis(1500),
    );
    assert!(more.is_empty(), "one alert per key per minute: {more:?}");
    let got = command_lines(&out, 1);
    std::thread::sleep(Duration::from_millis(300));
    let got_later = command_lines(&out, 2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got_later.len(), 1, "{got_later:?}");
    assert_eq!(got[0]["kind"], "traffic_spike");
    assert_eq!(got[0]["key"], "k");
    assert_eq!(got[0]["count"], 31);
    assert!(!fs::read_to_string(&out).unwrap().contains(SECRET));
}

/// Failed logins, one in this process (a wrong PIN through `connect_guarded`) and one in
/// another (the CLI with a wrong PIN, noted in the log's pending file and recorded by this
/// process's running writer): the second raises the alert.
#[test]
fn failed_logins_in_this_process_and_another_raise_an_alert() {
    let (t, _c, guard, dir) = guarded(
        "logins",
        "[alerts]\nfailed_logins = 2\nwindow_seconds = 600\n",
    );
    let alerts = guard.alerts();
    // A token this process has not logged in to (a logged-in process never re-checks a PIN).
    let other = fresh_token("logins-other");
    let wrong = other.config().pin(SecretString::from("wrong-pin-0000"));
    let err = Custody::connect_guarded(wrong, guard.clone()).unwrap_err();
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    assert!(
        first(&alerts, AlertKind::FailedLogins, Duration::from_millis(700)).is_none(),
        "one failed login is under the threshold"
    );
    let log = dir.path().join("audit.jsonl");
    let cfg = config_file(&t, dir.path(), &log, "");
    let wrong = dir.path().join("wrong.pin");
    fs::write(&wrong, "wrong-pin-1111").unwrap();
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
    let out = cli(
        &t,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--pin-file",
            wrong.to_str().unwrap(),
            "key",
            "list",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alert = first(&alerts, AlertKind::FailedLogins, Duration::from_secs(10))
        .expect("the writer records the CLI's failed login, and the guard counts it");
    assert_eq!(alert.count, Some(2));
    let text = format!("{alert:?}");
    assert!(!text.contains("wrong-pin"), "{text}");
}

/// Refusals of one client (the agent names it) within the window: the third raises the alert;
/// refusals of another client, or of none, do not count towards it.
#[test]
fn repeated_refusals_of_one_client_raise_an_alert() {
    let (_t, c, guard, _dir) = guarded(
        "refusals",
        "[alerts]\nrefusals_per_client = 3\nwindow_seconds = 600\n[keys.k]\nallow_raw = false\n",
    );
    import(&c, "k");
    let alerts = guard.alerts();
    let key = c.key("k").unwrap();
    let refuse = |client: Option<&str>| {
        let ctx = RequestContext::raw("POST", "probe");
        let ctx = match client {
            Some(who) => ctx.with_client(who),
            None => ctx,
        };
        let err = key.hmac_for(HmacAlg::HmacSha256, b"x", &ctx).unwrap_err();
        assert!(matches!(err, Error::PolicyDenied { .. }), "{err}");
    };
    refuse(Some("uid=1001 pid=4242"));
    refuse(Some("uid=1001 pid=4242"));
    refuse(Some("uid=1002 pid=77"));
    refuse(None);
    refuse(None);
    assert!(first(
        &alerts,
        AlertKind::RepeatedRefusals,
        Duration::from_millis(300)
    )
    .is_none());
    refuse(Some("uid=1001 pid=4242"));
    let alert = first(&alerts, AlertKind::RepeatedRefusals, Duration::from_secs(2))
        .expect("three refusals of one client");
    assert_eq!(alert.client.as_deref(), Some("uid=1001 pid=4242"));
    assert_eq!(alert.key, "k");
    assert_eq!(alert.count, Some(3));
}

/// The CLI's `key list` on `t` with `args` first; stdout.
fn list(t: &TestToken, args: &[&str]) -> String {
    let out = cli(t, args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn time_of(line: &str) -> OffsetDateTime {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    OffsetDateTime::parse(
        v["time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// `key list` shows each key's last use and its signatures in the last 24 hours from the audit
/// log, in the table and in JSON; without `[audit]`, or with a log it cannot read, it still
/// lists the keys and says why usage is unavailable.
#[test]
fn key_list_shows_last_use_and_the_last_24_hours() {
    let t = fresh_token("usage-list");
    let (dir, log) = temp_log();
    {
        let c = t.connect();
        let g = Guardrails::install(&c, audit_config(&log, Fsync::Always)).unwrap();
        import(&c, "used");
        import(&c, "idle");
        for _ in 0..7 {
            sign(&c, "used");
        }
        g.sync().unwrap();
    }
    let last = lines(&log)
        .into_iter()
        .rfind(|l| l.contains("\"event\":\"sign\"") && l.contains("\"key\":\"used\""))
        .unwrap();
    let cfg = config_file(&t, dir.path(), &log, "");
    let cfg = cfg.to_str().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&list(&t, &["--config", cfg, "key", "list", "--json"])).unwrap();
    let of = |name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap()
            .clone()
    };
    let used = of("used");
    assert_eq!(used["signed_24h"], 7, "{used}");
    let shown = OffsetDateTime::parse(
        used["last_use"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(shown, time_of(&last));
    assert!(used["usage_unavailable"].is_null());
    let idle = of("idle");
    assert_eq!(
        (idle["signed_24h"].clone(), idle["last_use"].clone()),
        (0.into(), serde_json::Value::Null)
    );
    let table = list(&t, &["--config", cfg, "key", "list"]);
    let row = table.lines().find(|l| l.starts_with("used ")).unwrap();
    let second =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    assert!(
        row.contains(&time_of(&last).format(&second).unwrap()),
        "{table}"
    );
    assert!(row.split_whitespace().any(|w| w == "7"), "{table}");
    let row = table.lines().find(|l| l.starts_with("idle ")).unwrap();
    assert!(row.contains("never"), "{table}");
    assert!(!table.contains("unavailable"), "{table}");
    // Signatures older than 24 hours count for the last use, not for the 24 hours.
    let mut old = lines(&log);
    let day_ago = OffsetDateTime::now_utc() - time::Duration::hours(30);
    let day_ago = day_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut aged = 0;
    for l in old
        .iter_mut()
        .filter(|l| l.contains("\"key\":\"used\""))
        .take(3)
    {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *l = l.replace(v["time"].as_str().unwrap(), &day_ago);
        aged += 1;
    }
    assert_eq!(aged, 3);
    write_lines(&log, &old);
    let json: serde_json::Value =
        serde_json::from_str(&list(&t, &["--config", cfg, "key", "list", "--json"])).unwrap();
    let used = json
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "used")
        .unwrap();
    // (The first of the three is the `created` line: two of the seven signatures aged.)
    assert_eq!(used["signed_24h"], 5, "{used}");
    let table = list(&t, &["--config", cfg, "key", "list"]);
    let row = table.lines().find(|l| l.starts_with("used ")).unwrap();
    let words: Vec<&str> = row.split_whitespace().collect();
    assert!(words.contains(&"5") && !words.contains(&"7"), "{table}");

    // No [audit]: keys listed, usage unavailable, and why.
    let table = list(&t, &["key", "list"]);
    assert!(table.lines().any(|l| l.starts_with("used ")), "{table}");
    assert!(
        table.contains("usage (LAST USE, 24H) unavailable: no [audit] section"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&list(&t, &["key", "list", "--json"])).unwrap();
    let used = json
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "used")
        .unwrap();
    assert!(used["signed_24h"].is_null(), "{used}");
    assert!(used["usage_unavailable"]
        .as_str()
        .unwrap()
        .contains("no [audit] section"));
    // A log it cannot read.
    let missing = dir.path().join("missing").join("audit.jsonl");
    let cfg2 = dir.path().join("missing.toml");
    fs::write(
        &cfg2,
        format!(
            "module = '{}'\ntoken = '{}'\npin_env = 'HSM_CUSTODY_PIN'\n[audit]\npath = '{}'\n",
            t.module.display(),
            t.label,
            missing.display()
        ),
    )
    .unwrap();
    let table = list(&t, &["--config", cfg2.to_str().unwrap(), "key", "list"]);
    assert!(table.lines().any(|l| l.starts_with("used ")), "{table}");
    assert!(
        table.contains("unavailable: cannot read the audit log") && table.contains("missing"),
        "{table}"
    );
}

/// Backdates every version of `name` to `days` ago, as someone with the PIN could (a newer
/// metadata revision, which the crate reads as the current one).
fn backdate(t: &TestToken, name: &str, days: i64) {
    let ctx = crate::raw_pkcs11::raw_context(&t.module);
    let session = ctx.open_rw_session(crate::common::slot(t)).unwrap();
    t.raw_login(&session);
    let label = name.as_bytes().to_vec();
    // The newest revision (an operation may leave an older object until its clean-up).
    let mut json: serde_json::Value = session
        .find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Application(b"hsm-custody".to_vec()),
            Attribute::Label(label.clone()),
        ])
        .unwrap()
        .into_iter()
        .map(|h| {
            let Attribute::Value(value) =
                &session.get_attributes(h, &[AttributeType::Value]).unwrap()[0]
            else {
                panic!("metadata value")
            };
            serde_json::from_slice::<serde_json::Value>(value).unwrap()
        })
        .max_by_key(|m| m["revision"].as_u64().unwrap())
        .unwrap();
    let then = (OffsetDateTime::now_utc() - time::Duration::days(days))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for v in json["versions"].as_array_mut().unwrap() {
        v["created"] = then.clone().into();
    }
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
}

/// `doctor` flags a key the log records no use of for over `unused_after_days` (its lines
/// rewritten 40 days back) and a key whose active version is over `rotate_after_days` old
/// (its metadata backdated 200 days), not a key in use; 0 turns both checks off.
#[test]
fn doctor_flags_unused_and_old_keys() {
    let t = fresh_token("usage-doctor");
    let (dir, log) = temp_log();
    let c = t.connect();
    {
        let g = Guardrails::install(&c, audit_config(&log, Fsync::Always)).unwrap();
        for name in ["busy", "idle", "stale"] {
            import(&c, name);
        }
        sign(&c, "busy");
        sign(&c, "idle");
        g.sync().unwrap();
    }
    backdate(&t, "stale", 200);
    // Every line but busy's, 40 days back (the log then begins 40 days ago).
    let forty = (OffsetDateTime::now_utc() - time::Duration::days(40))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let aged: Vec<String> = lines(&log)
        .into_iter()
        .map(|l| {
            if l.contains("\"key\":\"busy\"") {
                return l;
            }
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            l.replace(v["time"].as_str().unwrap(), &forty)
        })
        .collect();
    write_lines(&log, &aged);
    let doctor = |hygiene: &str| {
        let cfg = config_file(&t, dir.path(), &log, "");
        let text = fs::read_to_string(&cfg).unwrap();
        fs::write(&cfg, format!("{text}[hygiene]\n{hygiene}")).unwrap();
        let out = cli(&t, &["--config", cfg.to_str().unwrap(), "doctor"], None);
        String::from_utf8(out.stdout).unwrap()
    };
    let report = doctor("unused_after_days = 30\nrotate_after_days = 90\n");
    assert!(
        report.contains("key `idle` has no recorded use for 40 days"),
        "{report}"
    );
    assert!(
        report.contains("key `stale` has no recorded use for 40 days"),
        "never used; the log begins 40 days ago: {report}"
    );
    assert!(
        report.contains("key `stale`: its active version v1 is 200 days old"),
        "{report}"
    );
    assert!(
        report.contains("remove keys for services you no longer use"),
        "{report}"
    );
    assert!(
        !report.contains("key `busy` has no recorded use"),
        "{report}"
    );
    assert!(
        !report.contains("key `busy`: its active version"),
        "{report}"
    );
    assert!(
        !report.contains("key `idle`: its active version"),
        "{report}"
    );
    // Thresholds over the ages: nothing flagged; 0: the checks are off.
    for hygiene in [
        "unused_after_days = 41\nrotate_after_days = 201\n",
        "unused_after_days = 0\nrotate_after_days = 0\n",
    ] {
        let report = doctor(hygiene);
        assert!(!report.contains("no recorded use"), "{hygiene}: {report}");
        assert!(!report.contains("days old"), "{hygiene}: {report}");
    }
}
