//! Data written before the crate's public data became typed (`OffsetDateTime`, `Event`,
//! `Decision`, `KeyKind`, `VersionOrigin`) reads and verifies as it did.
//!
//! `tests/data/audit-v1/` is a SoftHSM2 token and its audit log written by the CLI before that
//! change (`make-fixture.sh` shows how): an imported HMAC key rotated once, an Ed25519 key
//! generated and revoked, signatures allowed and denied, a login failure, and a chain reset. The
//! audit key lives in that token, so the MAC chain is checked for real, and `list.json`,
//! `versions.json` and `summary.json` are what the CLI printed for it then.

use std::fs;
use std::path::Path;
use std::process::Output;

use super::common::{cli_command, DEFAULT_MODULE};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/audit-v1");
const PIN: &str = "1234-fixture";

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(Path::new(FIXTURE).join(name)).unwrap()).unwrap()
}

#[test]
fn a_log_and_keys_written_before_typed_data_read_and_verify_as_before() {
    // The fixture is a SoftHSM2 token: on the other backends there is nothing to load it with.
    if std::env::var("HSM_CUSTODY_TEST_BACKEND").is_ok_and(|b| b != "softhsm") {
        eprintln!("skipped: the fixture is a SoftHSM2 token");
        return;
    }
    let module = std::env::var("HSM_CUSTODY_TEST_MODULE").unwrap_or_else(|_| DEFAULT_MODULE.into());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_dir(&Path::new(FIXTURE).join("tokens"), &d.join("tokens"));
    for f in [
        "audit.jsonl",
        "audit.jsonl.000000000001",
        "audit.jsonl.head",
    ] {
        fs::copy(Path::new(FIXTURE).join(f), d.join(f)).unwrap();
    }
    let conf = d.join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            d.join("tokens").display()
        ),
    )
    .unwrap();
    let config = d.join("config.toml");
    fs::write(
        &config,
        format!(
            "module = '{module}'\ntoken = 'audit-fixture'\npin_env = 'HSM_CUSTODY_PIN'\n\
             [audit]\npath = '{}'\nfsync = 'always'\n\
             [keys.bn]\nexchange = 'binance'\nallow = ['POST /api/v3/order']\n",
            d.join("audit.jsonl").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        cli_command()
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .env("HSM_CUSTODY_PIN", PIN)
            .output()
            .expect("run hsm-custody")
    };
    let old = d.join("audit.jsonl.000000000001");
    let active = d.join("audit.jsonl");
    let files = [old.to_str().unwrap(), active.to_str().unwrap()];

    // The chain verifies (MACs of the old lines, the reset, both heads).
    let mut verify = vec!["audit", "verify", "--accept-resets", "--json"];
    verify.extend(files);
    let report = json(&run(&verify));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["good_lines"], 13);
    assert_eq!(report["first_seq"], 1);
    assert_eq!(report["last_seq"], 13);
    assert_eq!(report["from_genesis"], true);
    assert_eq!(report["head_checked"], true);
    assert_eq!(report["token_head_checked"], true);
    assert_eq!(report["problem"], serde_json::Value::Null);
    let reset = &report["resets"][0];
    assert_eq!(reset["seq"], 12);
    assert_eq!(reset["time"], "2026-12-06T07:41:02.806582714Z");
    assert_eq!(reset["reason"], "fixture: a reset on the record");
    assert_eq!(reset["old_file"], "audit.jsonl.000000000001");
    assert_eq!(reset["lost_lines"], 0);

    // What the CLI printed then, it prints now (times, kinds, origins, events, decisions).
    let mut summary = vec!["audit", "summary", "--json", "--per-minute"];
    summary.extend(files);
    assert_eq!(json(&run(&summary)), expected("summary.json"));
    assert_eq!(
        json(&run(&["key", "versions", "--json", "bn"])),
        expected("versions.json")
    );
    // `key list` gives each key's usage from the log too (issue 30); the rest is as it was.
    let mut list = json(&run(&["key", "list", "--json"]));
    for key in list.as_array_mut().unwrap() {
        let key = key.as_object_mut().unwrap();
        let last_use = key.remove("last_use").unwrap();
        let recent = key.remove("signed_24h").unwrap();
        assert_eq!(
            key.remove("usage_unavailable"),
            Some(serde_json::Value::Null)
        );
        assert!(recent.is_u64(), "{recent}");
        if key["name"] == "bn" {
            assert_eq!(last_use, "2026-12-06T07:41:02.915380337Z");
        }
    }
    assert_eq!(list, expected("list.json"));

    // The new writer continues the old chain, and the whole log still verifies.
    let request = d.join("order.json");
    fs::write(
        &request,
        "{\"method\":\"POST\",\"path\":\"/api/v3/order\",\"query\":\"a=1\"}",
    )
    .unwrap();
    let signed = run(&[
        "sign-request",
        "--key",
        "bn",
        "--exchange",
        "binance",
        "--request",
        request.to_str().unwrap(),
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let report = json(&run(&verify));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["good_lines"], 14);
    assert_eq!(report["token_head_checked"], true);
    let text = fs::read_to_string(&active).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("{\"seq\":14,\"time\":\"")
            && last.contains("Z\",\"event\":\"sign\",\"key\":\"bn\",\"version\":2,")
            && last.contains(",\"decision\":\"allow\",\"rule\":\"allow:POST /api/v3/order\""),
        "{last}"
    );
}
