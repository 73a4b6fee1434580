//! The configuration file and the exit codes through the real binary: one file read once for
//! every section, its problems named by line, column and table, and every failure exiting with
//! its kind's code (2 bad configuration or input, 3 PIN, 4 guard refusal).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{child_env, cli, fresh_token, TestToken};

/// The binary with nothing of the test's token in its environment, `stdin` empty.
fn bare(args: &[&str]) -> Output {
    let _no_init = crate::common::no_token_init();
    Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
        .args(args)
        .envs(child_env())
        .env_remove("HSM_CUSTODY_MODULE")
        .env_remove("HSM_CUSTODY_TOKEN")
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run hsm-custody")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `args` against a config file holding `text`; asserts exit 2 and every `expected`
/// fragment in stderr.
fn refused(dir: &Path, name: &str, text: &str, args: &[&str], expected: &[&str]) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let mut all = vec!["--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = bare(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{name}: {err}");
    for fragment in expected {
        assert!(
            err.contains(fragment),
            "{name}: expected `{fragment}` in: {err}"
        );
    }
    assert!(!err.contains("1234"), "{name}: a value echoed: {err}");
}

#[test]
fn config_problems_exit_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = "module = '/nonexistent/module.so'\ntoken = 't'\n";
    let list = ["key", "list"];
    refused(
        d,
        "pool-typo",
        &format!("{base}[pool]\nsise = 3\n"),
        &list,
        &["line 4, column 1", "unknown field `sise`", "(in [pool])"],
    );
    refused(
        d,
        "inline-pin",
        &format!("{base}pin = '1234'\n"),
        &list,
        &[
            "line 3, column 1",
            "unknown field `pin`",
            "at the top level",
        ],
    );
    refused(
        d,
        "agent-key-typo",
        &format!("{base}[agent]\nsocket = '/s'\n[agent.keys.k]\nuid = [1]\n"),
        &list,
        &["line 6", "unknown field `uid`", "(in [agent.keys.k])"],
    );
    refused(
        d,
        "audit-typo",
        &format!("{base}[audit]\npath = '/a'\nfsync = 'sometimes'\n"),
        &list,
        &["line 5", "(in [audit])"],
    );
    refused(
        d,
        "keys-without-audit",
        &format!("{base}[keys.k]\nallow_raw = true\n"),
        &list,
        &["need an [audit] section"],
    );
    refused(
        d,
        "signing-bounds",
        &format!("{base}[signing]\nskew_ms = 600000\n"),
        &list,
        &["skew_ms is at most 60000"],
    );
    refused(
        d,
        "pin-env-unset",
        &format!("{base}pin_env = 'HSM_CUSTODY_TEST_UNSET_PIN_VAR'\n"),
        &list,
        &["HSM_CUSTODY_TEST_UNSET_PIN_VAR"],
    );
    // A section that parses but does not make a policy: refused before the module is loaded.
    refused(
        d,
        "bad-pattern",
        &format!(
            "{base}[audit]\npath = '{}'\n[keys.k]\nallow = ['POST /api/v3/order params=sym;bol']\n",
            d.join("audit.jsonl").display()
        ),
        &list,
        &["[keys.k]"],
    );
    refused(
        d,
        "unknown-group",
        &format!(
            "{base}[audit]\npath = '{}'\ngroup = 'no-such-group-hsm-custody'\n",
            d.join("audit.jsonl").display()
        ),
        &list,
        &["no-such-group-hsm-custody"],
    );
    // A missing config file or PIN file is a configuration problem too.
    let missing = d.join("missing.toml");
    let out = bare(&["--config", missing.to_str().unwrap(), "key", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
    refused(
        d,
        "missing-pin-file",
        &format!("{base}pin_file = '{}'\n", d.join("no-pin").display()),
        &list,
        &["no-pin"],
    );
    // Nothing configured at all.
    let out = bare(&["key", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--module"), "{}", stderr(&out));
    #[cfg(feature = "agent")]
    refused(
        d,
        "agent-without-socket",
        base,
        &["agent"],
        &["no socket: pass --socket"],
    );
}

#[test]
fn input_problems_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = ["--module", "/nonexistent/module.so", "--token", "t"];
    let run = |args: &[&str]| {
        let mut all = env.to_vec();
        all.extend_from_slice(args);
        bare(&all)
    };
    let missing = d.join("missing.json");
    for (case, out, fragment) in [
        (
            "request file",
            run(&[
                "sign-request",
                "--key",
                "k",
                "--exchange",
                "binance",
                "--request",
                missing.to_str().unwrap(),
            ]),
            "missing.json",
        ),
        (
            "unknown exchange",
            run(&["key", "import", "--name", "k", "--exchange", "nowhere"]),
            "unknown exchange `nowhere`",
        ),
        (
            "passphrase file",
            run(&[
                "key",
                "import",
                "--name",
                "k",
                "--passphrase-file",
                missing.to_str().unwrap(),
            ]),
            "passphrase file",
        ),
        (
            "empty secret",
            run(&["key", "import", "--name", "k"]),
            "no secret",
        ),
        (
            "algorithm",
            run(&["sign", "--key", "k", "--alg", "hmac-md5"]),
            "hmac-sha256",
        ),
        (
            "key type",
            run(&["key", "generate", "--name", "k", "--type", "dsa"]),
            "rsa2048",
        ),
        (
            "date",
            run(&["key", "import", "--name", "k", "--not-after", "tomorrow"]),
            "YYYY-MM-DD",
        ),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{case}: {err}");
        assert!(err.contains(fragment), "{case}: {err}");
    }
}

fn pin_file(t: &TestToken, dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pin");
    std::fs::write(&path, t.user_pin_text()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// One file holds every section; the CLI reads it once, and each part does its job: the
/// policy refuses (4), the audit log records, a wrong PIN is 3.
#[test]
fn one_file_configures_every_part() {
    let t = fresh_token("cli-config");
    let out = cli(
        &t,
        &["key", "import", "--name", "bn", "--exchange", "binance"],
        Some("cli-config-secret-0123456789abcdef0123456789abcdef0123456789abcd"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let audit = d.join("audit.jsonl");
    let config = d.join("config.toml");
    let write = |pin: &Path| {
        std::fs::write(
            &config,
            format!(
                "module = '{}'\ntoken = '{}'\npin_file = '{}'\n\n[pool]\nsize = 2\n\n\
                 [signing]\nskew_ms = 5000\n\n[audit]\npath = '{}'\nfsync = 'always'\n\n\
                 [keys.bn]\nexchange = 'binance'\nallow = ['POST /api/v3/order']\n\n\
                 [agent]\nsocket = '{}'\n\n[agent.keys.bn]\nuids = [1]\n",
                t.module.display(),
                t.label,
                pin.display(),
                audit.display(),
                d.join("run/agent.sock").display(),
            ),
        )
        .unwrap();
    };
    write(&pin_file(&t, d));
    let request = d.join("req.json");
    let sign = |req: &str| {
        std::fs::write(&request, req).unwrap();
        let _no_init = crate::common::no_token_init();
        Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
            .args(["--config", config.to_str().unwrap()])
            .args(["sign-request", "--key", "bn", "--exchange", "binance"])
            .args(["--request", request.to_str().unwrap()])
            .envs(child_env())
            .env_remove("HSM_CUSTODY_PIN")
            .env_remove("HSM_CUSTODY_PIN_FILE")
            .env_remove("HSM_CUSTODY_CONFIG")
            .output()
            .unwrap()
    };
    let order = r#"{"method":"POST","path":"/api/v3/order","query":"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1"}"#;
    let out = sign(order);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sign(r#"{"method":"GET","path":"/api/v3/account"}"#);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("not-allowed"), "{}", stderr(&out));
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        log.contains("\"decision\":\"allow\"") && log.contains("\"decision\":\"deny\""),
        "{log}"
    );
    // A wrong PIN in the file's PIN file: 3.
    let wrong = d.join("wrong-pin");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&wrong, "not-the-pin").unwrap();
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    write(&wrong);
    let out = sign(order);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// Runs the binary with `args` on a pseudo-terminal (python3's `pty`), with no PIN configured:
/// answers its first prompt with `answer` and returns (everything the terminal showed, exit code).
fn on_a_terminal(args: &[&str], answer: &str) -> (String, i32) {
    const DRIVER: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while b"not echoed" not in seen:
    chunk = os.read(fd, 1024)
    if not chunk:
        break
    seen += chunk
# Type only once the terminal no longer echoes (the prompt is printed just before echo is
# turned off); give up after 5 s and type anyway, so that an echo shows in the output.
import termios, time
deadline = time.time() + 5
while termios.tcgetattr(fd)[3] & termios.ECHO and time.time() < deadline:
    time.sleep(0.01)
os.write(fd, sys.stdin.buffer.read() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    use std::io::Write as _;
    // Kryoptic reads every token at C_Initialize: none is made while this one starts.
    let _no_init = crate::common::no_token_init();
    let mut child = Command::new("python3")
        .args(["-c", DRIVER, env!("CARGO_BIN_EXE_hsm-custody")])
        .args(args)
        .envs(child_env())
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 to drive a pty");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// No PIN configured and a terminal present: the CLI asks for the PIN without echo (as
/// pkcs11-tool does), logs in with it, and a wrong one is a PIN error (exit 3). Without a
/// terminal it does not ask: no PIN stays a configuration error (exit 2).
#[test]
fn no_pin_on_a_terminal_is_prompted_without_echo() {
    let t = fresh_token("cli-pin-prompt");
    let module = t.module.to_str().unwrap().to_owned();
    let args = ["key", "list", "--module", &module, "--token", &t.label];
    let pin = t.user_pin_text();
    let (shown, code) = on_a_terminal(&args, &pin);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!("User PIN for token `{}` (not echoed): ", t.label)),
        "{shown}"
    );
    assert!(!shown.contains(&pin), "the PIN was echoed: {shown}");
    let (shown, code) = on_a_terminal(&args, "wrong-pin-0000");
    assert_eq!(code, 3, "{shown}");
    assert!(!shown.contains("wrong-pin-0000"), "echoed: {shown}");
    let (shown, code) = on_a_terminal(&args, "");
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("no PIN typed"), "{shown}");
    let out = bare(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not echoed"), "{}", stderr(&out));
}
