#![allow(dead_code)]

//! Test fixture: a private token directory for this test process on the backend named by
//! `HSM_CUSTODY_TEST_BACKEND` (`softhsm`, the default, or `kryoptic`), and a fresh token per
//! test (unique label), made through the crate's own `admin::init_token`.
//!
//! The module path comes from `HSM_CUSTODY_TEST_MODULE` (default: Debian's SoftHSM2; for
//! Kryoptic, `backends/kryoptic.sh` prints it). The backend's configuration lives in a temp dir
//! and its variable (`SOFTHSM2_CONF` or `KRYOPTIC_CONF`) is set before the module is first
//! loaded; every test calls [`fresh_token`] first, which guarantees that. Child processes get
//! the same variables from [`child_env`].

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hsm_custody::{Config, Custody, SecretString};
use secrecy::ExposeSecret;

pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Kryoptic has no free slot that appears after an init: the fixture configures this many
/// empty sqlite slots up front (more than the suite uses).
const KRYOPTIC_SLOTS: usize = 400;

struct Env {
    backend: String,
    module: PathBuf,
    vars: Vec<(OsString, OsString)>,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let backend = std::env::var("HSM_CUSTODY_TEST_BACKEND").unwrap_or_else(|_| "softhsm".into());
        let module = std::env::var_os("HSM_CUSTODY_TEST_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
        let dir = tempfile::Builder::new()
            .prefix("hsm-custody-test-")
            .tempdir()
            .expect("temp dir");
        let (name, conf) = match backend.as_str() {
            "softhsm" => {
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).expect("token dir");
                let conf = dir.path().join("softhsm2.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                        tokens.display()
                    ),
                )
                .expect("softhsm2.conf");
                ("SOFTHSM2_CONF", conf)
            }
            "kryoptic" => {
                let conf = dir.path().join("kryoptic.conf");
                let slots: String = (1..=KRYOPTIC_SLOTS)
                    .map(|i| {
                        format!(
                            "[[slots]]\nslot = {i}\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n\n",
                            dir.path().join(format!("token-{i}.sql")).display()
                        )
                    })
                    .collect();
                std::fs::write(&conf, slots).expect("kryoptic.conf");
                ("KRYOPTIC_CONF", conf)
            }
            other => panic!("unknown HSM_CUSTODY_TEST_BACKEND `{other}` (softhsm or kryoptic)"),
        };
        let vars = vec![
            (OsString::from(name), conf.into_os_string()),
            // The fault-injecting wrapper forwards to the backend under test.
            (OsString::from("FAULT_MODULE_TARGET"), module.clone().into_os_string()),
        ];
        // Edition 2021: set_var is safe. It runs once, inside this OnceLock, before any test
        // loads a module (every test starts with `fresh_token`), so the module reads it at
        // C_Initialize.
        for (k, v) in &vars {
            std::env::set_var(k, v);
        }
        Env {
            backend,
            module,
            vars,
            _dir: dir,
        }
    })
}

/// The backend under test (`softhsm` or `kryoptic`).
pub fn backend() -> &'static str {
    &env().backend
}

/// The variables a child process needs to see this process's tokens.
pub fn child_env() -> Vec<(OsString, OsString)> {
    env().vars.clone()
}

/// A fresh token: label, PINs and a ready `Config`.
pub struct TestToken {
    pub label: String,
    pub user_pin: SecretString,
    pub so_pin: SecretString,
    pub module: PathBuf,
}

impl TestToken {
    pub fn config(&self) -> Config {
        Config::new(&self.module, &self.label).pin(self.user_pin.clone())
    }

    pub fn connect(&self) -> Custody {
        Custody::connect(self.config()).expect("connect to the test token")
    }

    /// The user PIN as text, for tests that must pass it to a child process.
    pub fn user_pin_text(&self) -> String {
        self.user_pin.expose_secret().to_owned()
    }
}

/// Initialises a new token with a unique label (at most 32 characters).
pub fn fresh_token(tag: &str) -> TestToken {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let env = env();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut label = format!("t{n}-{tag}");
    label.truncate(32);
    let user_pin = SecretString::from(format!("user-{}-{n}", std::process::id()));
    let so_pin = SecretString::from(format!("so-{}-{n}", std::process::id()));
    hsm_custody::admin::init_token(&env.module, &label, &so_pin, &user_pin)
        .expect("initialise a fresh test token");
    TestToken {
        label,
        user_pin,
        so_pin,
        module: env.module.clone(),
    }
}

/// SOFTHSM2_CONF of this process (for child processes; prefer [`child_env`]).
pub fn softhsm2_conf() -> PathBuf {
    env();
    PathBuf::from(std::env::var_os("SOFTHSM2_CONF").unwrap_or_default())
}

/// Software HMAC, the reference the token must match.
pub fn software_hmac(alg: hsm_custody::HmacAlg, key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    match alg {
        hsm_custody::HmacAlg::HmacSha256 => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        hsm_custody::HmacAlg::HmacSha384 => {
            let mut m = Hmac::<sha2::Sha384>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        hsm_custody::HmacAlg::HmacSha512 => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// The slot of a test token, found under the crate's slot-list lock (SoftHSM2 aborts when two
/// threads call C_GetSlotList at once after a token was initialised).
pub fn slot(t: &TestToken) -> cryptoki::slot::Slot {
    let id = hsm_custody::admin::slot_id(&t.module, &t.label).expect("test token slot");
    cryptoki::slot::Slot::try_from(id).expect("slot id")
}

/// Runs the CLI. SoftHSM2 can answer `C_GetTokenInfo` with `CKR_GENERAL_ERROR` in a child
/// process while another test of this binary initialises a new token in the shared token
/// directory (a cross-process race in SoftHSM2's file store, not in the signer); such a run is
/// repeated, at most three times, and every other failure is returned as is.
pub fn cli(t: &TestToken, args: &[&str], stdin: Option<&str>) -> Output {
    let mut out = cli_once(t, args, stdin);
    for _ in 0..3 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("C_GetTokenInfo failed with GeneralError") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = cli_once(t, args, stdin);
    }
    out
}

pub fn cli_once(t: &TestToken, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
        .args(args)
        .envs(child_env())
        .env("HSM_CUSTODY_MODULE", &t.module)
        .env("HSM_CUSTODY_TOKEN", &t.label)
        .env("HSM_CUSTODY_PIN", t.user_pin_text())
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hsm-custody");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("hsm-custody output")
}
