#![allow(dead_code)]

//! Test fixture: a private token directory for this test process on the backend named by
//! `HSM_CUSTODY_TEST_BACKEND` (`softhsm`, the default, `kryoptic` or `nss`), and a fresh token
//! per test (unique label), made through the crate's own `admin::init_token`.
//!
//! The module path comes from `HSM_CUSTODY_TEST_MODULE` (default: Debian's SoftHSM2; for
//! Kryoptic and NSS softokn, `backends/kryoptic.sh` / `backends/nss.sh` print it). The backend's
//! configuration lives in a temp dir and its variable (`SOFTHSM2_CONF`, `KRYOPTIC_CONF`, or for
//! NSS the parameter string `HSM_CUSTODY_MODULE_INIT_PARAMS`) is set before the module is first
//! loaded; every test calls [`fresh_token`] first, which guarantees that. Child processes get
//! the same variables from [`child_env`].
//!
//! Backends, as the fixture drives them:
//! - `softhsm`: one token directory; `C_InitToken` per test.
//! - `kryoptic`: 400 empty sqlite slots configured up front; `C_InitToken` per test.
//! - `nss`: softokn cannot initialise new tokens at run time, so the parameter string names 97
//!   user slots (ids 4 to 100), each an NSS database made by `certutil -N` with the PIN
//!   [`NSS_PIN`] and labelled `nss-<slot>`; `nss-4` loads the module, `fresh_token` hands out
//!   the others in turn (round robin). Its config
//!   carries the parameter string and `danger_accept_non_custody_module` (softokn is not
//!   custody-grade; see `core::custody_probe_at_connect_matches_the_backend`).

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hsm_custody::{Config, Custody, SecretString};

#[path = "../support/softhsm_dir.rs"]
mod softhsm_dir;
#[path = "../support/stderr_log.rs"]
pub mod stderr_log;
use secrecy::ExposeSecret;
use softhsm_dir::write_softhsm_conf;

pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Kryoptic has no free slot that appears after an init: the fixture configures this many
/// empty sqlite slots up front (more than the suite uses).
const KRYOPTIC_SLOTS: usize = 400;

/// NSS softokn: user token slots configured in its parameter string (`tokens=`). softokn
/// accepts user slot ids 4 to 100.
const NSS_SLOTS: std::ops::RangeInclusive<usize> = 4..=100;
/// NSS softokn: the user PIN of every fixture token (the NSS database password). softokn has no
/// security officer; its tokens are made by `certutil`, not `C_InitToken`.
const NSS_PIN: &str = "nss-test-pin-1234";

struct Env {
    backend: String,
    module: PathBuf,
    vars: Vec<(OsString, OsString)>,
    /// `C_Initialize` parameter string (NSS softokn), passed through `Config`.
    init_params: Option<String>,
    _dir: tempfile::TempDir,
}

/// Makes one NSS database with `certutil` (password [`NSS_PIN`]) and copies it into a directory
/// per user slot; returns softokn's parameter string naming them all, labelled `nss-<slot>`.
fn nss_tokens(dir: &std::path::Path) -> String {
    let template = dir.join("nss-template");
    std::fs::create_dir(&template).expect("nss template dir");
    let pw = dir.join("nss-pw");
    std::fs::write(&pw, format!("{NSS_PIN}\n")).expect("nss pw file");
    let out = Command::new("certutil")
        .arg("-N")
        .arg("-d")
        .arg(format!("sql:{}", template.display()))
        .arg("-f")
        .arg(&pw)
        .output()
        .expect("run certutil (Debian package libnss3-tools; backends/nss.sh installs it)");
    assert!(
        out.status.success(),
        "certutil -N: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&pw).ok();
    let copy = |name: &str| {
        let db = dir.join(name);
        std::fs::create_dir(&db).expect("nss db dir");
        for f in ["cert9.db", "key4.db", "pkcs11.txt"] {
            if template.join(f).exists() {
                std::fs::copy(template.join(f), db.join(f)).expect("copy nss db");
            }
        }
        db
    };
    let main = copy("nss-main");
    let tokens: Vec<String> = NSS_SLOTS
        .map(|slot| {
            let db = copy(&format!("nss-{slot}"));
            format!(
                "0x{slot:x}=[configdir='sql:{}' certPrefix='' keyPrefix='' tokenDescription='nss-{slot}']",
                db.display()
            )
        })
        .collect();
    format!(
        "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags='' dbTokenDescription='nss-main' tokens=<{}>",
        main.display(),
        tokens.join(" ")
    )
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let backend =
            std::env::var("HSM_CUSTODY_TEST_BACKEND").unwrap_or_else(|_| "softhsm".into());
        let module = std::env::var_os("HSM_CUSTODY_TEST_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
        let dir = tempfile::Builder::new()
            .prefix("hsm-custody-test-")
            .tempdir()
            .expect("temp dir");
        let (name, conf) = match backend.as_str() {
            "softhsm" => ("SOFTHSM2_CONF", write_softhsm_conf(dir.path())),
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
            "nss" => {
                let params = nss_tokens(dir.path());
                ("HSM_CUSTODY_MODULE_INIT_PARAMS", PathBuf::from(params))
            }
            other => {
                panic!("unknown HSM_CUSTODY_TEST_BACKEND `{other}` (softhsm, kryoptic or nss)")
            }
        };
        let init_params = (backend == "nss").then(|| conf.display().to_string());
        let vars = vec![
            (OsString::from(name), conf.into_os_string()),
            // The fault-injecting wrapper forwards to the backend under test.
            (
                OsString::from("FAULT_MODULE_TARGET"),
                module.clone().into_os_string(),
            ),
        ];
        // Edition 2021: set_var is safe. It runs once, inside this OnceLock, before any test
        // loads a module (every test starts with `fresh_token`), so the module reads it at
        // C_Initialize.
        for (k, v) in &vars {
            std::env::set_var(k, v);
        }
        if let Some(params) = &init_params {
            // softokn needs its parameter string at C_Initialize: load it once, through the
            // crate, before any test reaches the module (admin functions load it without).
            Custody::connect(
                Config::new(&module, "nss-4")
                    .pin(SecretString::from(NSS_PIN))
                    .module_init_params(params.clone())
                    .danger_accept_non_custody_module(true),
            )
            .expect("load NSS softokn with its parameter string");
        }
        Env {
            backend,
            module,
            vars,
            init_params,
            _dir: dir,
        }
    })
}

/// The backend under test (`softhsm`, `kryoptic` or `nss`).
pub fn backend() -> &'static str {
    &env().backend
}

/// The module's parameter string (NSS softokn), for a child process that connects itself.
pub fn init_params() -> Option<String> {
    env().init_params.clone()
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
    /// The token's configuration. On NSS softokn it carries the module's parameter string and
    /// opts in to a module that is not custody-grade (softokn lets non-extractable keys out;
    /// `core::custody_probe_at_connect_matches_the_backend` checks that it is refused without).
    pub fn config(&self) -> Config {
        let config = Config::new(&self.module, &self.label).pin(self.user_pin.clone());
        match &env().init_params {
            Some(params) => config
                .module_init_params(params.clone())
                .danger_accept_non_custody_module(true),
            None => config,
        }
    }

    /// [`TestToken::config`] without the NSS opt-in.
    pub fn strict_config(&self) -> Config {
        let config = Config::new(&self.module, &self.label).pin(self.user_pin.clone());
        match &env().init_params {
            Some(params) => config.module_init_params(params.clone()),
            None => config,
        }
    }

    pub fn connect(&self) -> Custody {
        Custody::connect(self.config()).expect("connect to the test token")
    }

    /// Logs `session` (of a raw cryptoki context) in as the user; already logged in (another
    /// session of the context) is fine.
    pub fn raw_login(&self, session: &cryptoki::session::Session) {
        match session.login(cryptoki::session::UserType::User, Some(&self.user_pin)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => panic!("C_Login: {e}"),
        }
    }

    /// The user PIN as text, for tests that must pass it to a child process.
    pub fn user_pin_text(&self) -> String {
        self.user_pin.expose_secret().to_owned()
    }
}

/// Token initialisation (writer) against child processes of this binary (readers): Kryoptic
/// reads every configured slot's database at C_Initialize and fails the whole initialisation
/// (CKR_USER_PIN_NOT_INITIALIZED) if it catches a token between C_InitToken and C_InitPIN.
static TOKEN_INIT: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while a child process that loads the module runs: no token is initialised meanwhile.
pub fn no_token_init() -> std::sync::RwLockReadGuard<'static, ()> {
    TOKEN_INIT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Initialises a new token with a unique label (at most 32 characters).
pub fn fresh_token(tag: &str) -> TestToken {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let env = env();
    let _init = TOKEN_INIT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    if env.backend == "nss" {
        // softokn's tokens are made up front (see `nss_tokens`): hand out the next one.
        // nss-4 loaded the module (see `env`); tests get nss-5 and on, and once all are
        // handed out, the same again (round robin). The crate makes no key on softokn (see
        // docs/backends.md); reuse lets every test reach the module and fail or pass on what
        // the module does, not on the fixture running out of tokens.
        let tokens = NSS_SLOTS.clone().count() - 1;
        let slot = NSS_SLOTS.start() + 1 + n % tokens;
        return TestToken {
            label: format!("nss-{slot}"),
            user_pin: SecretString::from(NSS_PIN),
            so_pin: SecretString::from(NSS_PIN),
            module: env.module.clone(),
        };
    }
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

/// The `hsm-custody` binary with this process's backend variables ([`child_env`]) and none of
/// the PIN or config variables the environment may hold: the caller says where the token and
/// PIN come from. Hold [`no_token_init`] while it runs.
pub fn cli_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm-custody"));
    cmd.envs(child_env())
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG");
    cmd
}

/// One run of the CLI on the test token (module, label and PIN from the environment).
pub fn cli_once(t: &TestToken, args: &[&str], stdin: Option<&str>) -> Output {
    let _no_init = no_token_init();
    let mut child = cli_command()
        .args(args)
        .env("HSM_CUSTODY_MODULE", &t.module)
        .env("HSM_CUSTODY_TOKEN", &t.label)
        .env("HSM_CUSTODY_PIN", t.user_pin_text())
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
