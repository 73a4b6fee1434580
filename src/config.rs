//! Connection configuration: from code, from the environment, or from a TOML file.
//!
//! The PIN is held as a [`SecretString`] from the moment it is read. It can come from code, from
//! `HSM_CUSTODY_PIN`, or from a file (`HSM_CUSTODY_PIN_FILE`, `pin_file` in TOML). A TOML file
//! never holds the PIN inline.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Environment variable naming the PKCS#11 module path.
pub const ENV_MODULE: &str = "HSM_CUSTODY_MODULE";
/// Environment variable naming the token label.
pub const ENV_TOKEN: &str = "HSM_CUSTODY_TOKEN";
/// Environment variable holding the user PIN (prefer [`ENV_PIN_FILE`]).
pub const ENV_PIN: &str = "HSM_CUSTODY_PIN";
/// Environment variable naming a file that holds the user PIN.
pub const ENV_PIN_FILE: &str = "HSM_CUSTODY_PIN_FILE";
/// Environment variable holding the module's `C_Initialize` parameter string (NSS softokn).
pub const ENV_MODULE_INIT_PARAMS: &str = "HSM_CUSTODY_MODULE_INIT_PARAMS";
/// The environment variable of the removed module copies: `from_env` refuses it.
const REMOVED_ENV_MODULE_COPIES: &str = "HSM_CUSTODY_MODULE_COPIES";

/// Why the module copies are gone, for the error a configuration that still sets them gets.
const MODULE_COPIES_REMOVED: &str = "was removed: copies of the SoftHSM2 module file, loaded as \
     further instances in one process, sped up HMAC signing only on SoftHSM2 (a development \
     token; hardware and network HSMs sign in parallel already), at the price of a \
     cross-process hazard (one instance's file read could drop another's file lock). Remove the \
     setting: the crate signs on one instance of the module";

/// Environment variable that, set to `1`, accepts a module that lets non-extractable keys out.
pub const ENV_DANGER_ACCEPT_NON_CUSTODY_MODULE: &str =
    "HSM_CUSTODY_DANGER_ACCEPT_NON_CUSTODY_MODULE";

const DEFAULT_POOL_SIZE: usize = 8;
const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RECONNECT_ATTEMPTS: u32 = 3;
const DEFAULT_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
const DEFAULT_REVALIDATE: Duration = Duration::from_secs(1);
const DEFAULT_ROTATION_AGE_DAYS: u32 = 90;

/// Where a [`Config`]'s PIN came from (see [`Config::pin_source`]).
///
/// A PIN taken from the environment stays in `/proc/<pid>/environ` for the life of the process,
/// readable by every process of the same uid: the signing agent refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinSource {
    /// No PIN configured.
    None,
    /// Given in code ([`Config::pin`]).
    Code,
    /// Read from a file ([`Config::pin_file`], `pin_file` in TOML, `HSM_CUSTODY_PIN_FILE`).
    File,
    /// Read from this environment variable (`HSM_CUSTODY_PIN`, or the one `pin_env` names).
    Env(String),
}

/// How to reach the token and how to run the session pool.
///
/// `Debug` is safe: the PIN prints as `[REDACTED]`.
///
/// ```
/// use hsm_custody::Config;
/// use secrecy::SecretString;
///
/// let config = Config::new("/usr/lib/softhsm/libsofthsm2.so", "trading")
///     .pin(SecretString::from("1234"))
///     .pool_size(4);
/// assert!(!format!("{config:?}").contains("1234"));
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) module: PathBuf,
    pub(crate) token: String,
    pub(crate) pin: Option<SecretString>,
    pub(crate) pin_source: PinSource,
    /// The variable `pin_env` names in the TOML file, kept even when another PIN replaced it.
    pub(crate) pin_env: Option<String>,
    pub(crate) pool_size: usize,
    pub(crate) checkout_timeout: Duration,
    pub(crate) fast_path: bool,
    /// `None`: decided by the token (on for SoftHSM2).
    pub(crate) serialize_hmac: Option<bool>,
    pub(crate) reconnect_attempts: u32,
    pub(crate) reconnect_backoff: Duration,
    pub(crate) revalidate: Duration,
    pub(crate) rotation_age_days: u32,
    /// `[audit]` as written, parsed by [`crate::GuardConfig`].
    pub(crate) audit: Option<toml::Table>,
    /// `[keys]` as written, parsed by [`crate::GuardConfig`].
    pub(crate) keys: Option<toml::Table>,
    /// Passed in `C_Initialize`'s `pReserved` when set (NSS softokn's `configdir=...`).
    pub(crate) module_init_params: Option<String>,
    /// Connect to a module whose custody probe found a non-extractable key getting out.
    pub(crate) danger_accept_non_custody_module: bool,
    /// Limits on caller-given time inputs, and accepted test hosts (`[signing]`).
    pub(crate) limits: crate::exchanges::Limits,
}

impl Config {
    /// A configuration for `module` (path of the PKCS#11 `.so`) and the token labelled `token`.
    pub fn new(module: impl Into<PathBuf>, token: impl Into<String>) -> Self {
        Config {
            module: module.into(),
            token: token.into(),
            pin: None,
            pin_source: PinSource::None,
            pin_env: None,
            pool_size: DEFAULT_POOL_SIZE,
            checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
            fast_path: true,
            serialize_hmac: None,
            reconnect_attempts: DEFAULT_RECONNECT_ATTEMPTS,
            reconnect_backoff: DEFAULT_RECONNECT_BACKOFF,
            revalidate: DEFAULT_REVALIDATE,
            rotation_age_days: DEFAULT_ROTATION_AGE_DAYS,
            audit: None,
            keys: None,
            module_init_params: None,
            danger_accept_non_custody_module: false,
            limits: crate::exchanges::Limits::default(),
        }
    }

    /// A parameter string the module needs in `C_Initialize`'s `pReserved` (NSS softokn:
    /// `configdir='sql:/path' certPrefix='' keyPrefix='' secmod='secmod.db' flags=''`). Used
    /// only when set. The first load of a module in a process fixes its parameters.
    pub fn module_init_params(mut self, params: impl Into<String>) -> Self {
        self.module_init_params = Some(params.into());
        self
    }

    /// DANGER: connect even if the module lets a sensitive, non-extractable key out (the
    /// connect-time custody probe failed, e.g. NSS softokn, which wraps such a key with an AES
    /// key the caller made). Keys in such a module are not in custody: any code that can log in
    /// can take them. `connect` logs a warning every time.
    pub fn danger_accept_non_custody_module(mut self, accept: bool) -> Self {
        self.danger_accept_non_custody_module = accept;
        self
    }

    /// Sets the user PIN.
    pub fn pin(mut self, pin: SecretString) -> Self {
        self.pin = Some(pin);
        self.pin_source = PinSource::Code;
        self
    }

    /// Where the PIN came from: code, a file, an environment variable, or nowhere yet.
    ///
    /// ```
    /// use hsm_custody::{Config, PinSource};
    /// use secrecy::SecretString;
    ///
    /// let config = Config::new("/usr/lib/softhsm/libsofthsm2.so", "trading");
    /// assert_eq!(config.pin_source(), &PinSource::None);
    /// let config = config.pin(SecretString::from("1234"));
    /// assert_eq!(config.pin_source(), &PinSource::Code);
    /// ```
    pub fn pin_source(&self) -> &PinSource {
        &self.pin_source
    }

    /// The environment variables that hold, or are meant to hold, a PIN for this configuration
    /// and are set in this process's environment: `HSM_CUSTODY_PIN`, and the variable `pin_env`
    /// names. Whatever the PIN in use came from, such a variable's value is in
    /// `/proc/<pid>/environ` for the life of the process.
    pub fn pin_variables_set(&self) -> Vec<String> {
        let mut names = vec![ENV_PIN.to_owned()];
        if let Some(var) = &self.pin_env {
            if var != ENV_PIN {
                names.push(var.clone());
            }
        }
        names.retain(|name| std::env::var_os(name).is_some());
        names
    }

    /// Reads the user PIN from a file (one line; a trailing newline is dropped).
    ///
    /// # Errors
    /// The file cannot be read, is empty, or is readable by every user on the machine.
    pub fn pin_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        self.pin = Some(read_pin_file(path.as_ref())?);
        self.pin_source = PinSource::File;
        Ok(self)
    }

    /// Takes the PIN from `HSM_CUSTODY_PIN_FILE` or else `HSM_CUSTODY_PIN`, when either is set;
    /// otherwise keeps the PIN already configured.
    ///
    /// # Errors
    /// The PIN file cannot be read.
    pub fn pin_from_env(mut self) -> Result<Self> {
        if let Some((pin, source)) = pin_from_env()? {
            self.pin = Some(pin);
            self.pin_source = source;
        }
        Ok(self)
    }

    /// Upper bound on the signing sessions (the token's own limit may lower it). Default 8.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a caller waits for a free session before [`Error::PoolTimeout`]. Default 5 s.
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.checkout_timeout = timeout;
        self
    }

    /// Whether to sign with a session-object copy of each key (default on; the token object
    /// remains the source of truth). Modules that copy hardened keys sign about twice as fast
    /// that way. SoftHSM2 refuses to copy a key with `CKA_MODIFIABLE=false`; there the copy is
    /// the key's sealed copy, unwrapped under its own unwrap-only key (`docs/fast-path.md` in
    /// the repository).
    pub fn fast_path(mut self, on: bool) -> Self {
        self.fast_path = on;
        self
    }

    /// Whether HMAC signs go into the token one at a time, across all threads of this
    /// [`crate::Custody`], while no more threads sign than the machine has cores. Default: on
    /// for SoftHSM2, off for every other module.
    ///
    /// SoftHSM2 spends an HMAC in its own locks and lookups, not in computing: two threads that
    /// sign at once on 2 cores sign ~40 % less per second than one. One at a time, the thread
    /// holding the turn also signs for one waiting thread (with that thread's key, on its own
    /// session), so that SoftHSM2's state stays on one core: 2 threads on 2 cores then sign
    /// 0.94-0.98x the 1-thread rate, 1.6-1.7x what free-for-all threads do.
    ///
    /// With more threads signing than cores, the extra threads sign at once, past the turn: the
    /// operating system already runs only as many as there are cores, and queuing them was
    /// measured to cost up to 18 % of throughput and to starve the queue (slowest sign 76-120 ms
    /// against 8-36 ms). Their p99 latency is then what SoftHSM2 gives free-for-all threads,
    /// 0.15-0.3 ms with 3-4 threads on 2 cores and ~4 ms with 8, as threads are descheduled
    /// inside it. (`docs/fast-path.md`, `BENCHMARKS.md`; [`crate::PoolStats`] counts the signs
    /// made for others and past the turn.) Asymmetric signs are never serialized (they are
    /// compute-bound), nor are other modules by default: a hardware or network HSM signs in
    /// parallel.
    pub fn serialize_hmac(mut self, on: bool) -> Self {
        self.serialize_hmac = Some(on);
        self
    }

    /// How many times a failed device is reconnected, and the first back-off delay (doubled on
    /// each attempt). Defaults: 3 attempts, 50 ms.
    pub fn reconnect(mut self, attempts: u32, first_backoff: Duration) -> Self {
        self.reconnect_attempts = attempts;
        self.reconnect_backoff = first_backoff;
        self
    }

    /// How often a cached key is checked against the token's metadata, so that a rotation or
    /// revocation made by another process takes effect here within this interval. Default 1 s.
    pub fn revalidate_interval(mut self, interval: Duration) -> Self {
        self.revalidate = interval;
        self
    }

    /// Age after which `key list` flags an active version as due for rotation. Default 90 days.
    pub fn rotation_age_days(mut self, days: u32) -> Self {
        self.rotation_age_days = days;
        self
    }

    /// Reads `HSM_CUSTODY_MODULE`, `HSM_CUSTODY_TOKEN` and `HSM_CUSTODY_PIN_FILE` or
    /// `HSM_CUSTODY_PIN`; also `HSM_CUSTODY_MODULE_INIT_PARAMS` and
    /// `HSM_CUSTODY_DANGER_ACCEPT_NON_CUSTODY_MODULE=1` if set.
    ///
    /// # Errors
    /// A required variable is missing, the PIN file cannot be read, or
    /// `HSM_CUSTODY_MODULE_COPIES` is set (module copies were removed; the error says why).
    pub fn from_env() -> Result<Self> {
        if std::env::var_os(REMOVED_ENV_MODULE_COPIES).is_some() {
            return Err(Error::Config(format!(
                "`{REMOVED_ENV_MODULE_COPIES}` {MODULE_COPIES_REMOVED}"
            )));
        }
        let module = env_required(ENV_MODULE)?;
        let token = env_required(ENV_TOKEN)?;
        let mut config = Config::new(module, token);
        if let Some((pin, source)) = pin_from_env()? {
            config.pin = Some(pin);
            config.pin_source = source;
        }
        config.module_init_params = std::env::var(ENV_MODULE_INIT_PARAMS)
            .ok()
            .filter(|p| !p.is_empty());
        config.danger_accept_non_custody_module =
            std::env::var(ENV_DANGER_ACCEPT_NON_CUSTODY_MODULE).is_ok_and(|v| v == "1");
        Ok(config)
    }

    /// Parses a TOML file. Unknown fields are rejected.
    ///
    /// ```toml
    /// module = "/usr/lib/softhsm/libsofthsm2.so"
    /// token = "trading"
    /// pin_file = "/run/credentials/hsm-custody/pin"
    ///
    /// [pool]
    /// size = 8
    /// checkout_timeout_ms = 5000
    /// fast_path = true
    /// serialize_hmac = true  # default: on for SoftHSM2 only
    /// ```
    ///
    /// # Errors
    /// The file cannot be read or parsed, or the PIN file cannot be read.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| Error::Io {
            what: "config file",
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses TOML text (see [`Config::from_toml_file`]).
    ///
    /// # Errors
    /// The text is not valid configuration, or the PIN file cannot be read.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::Config(format!("invalid TOML: {}", e.message())))?;
        let mut config = Config::new(raw.module, raw.token);
        match (raw.pin_file, raw.pin_env) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set either `pin_file` or `pin_env`, not both".into(),
                ))
            }
            (Some(file), None) => config = config.pin_file(file)?,
            (None, Some(var)) => {
                let pin = std::env::var(&var).map_err(|_| {
                    Error::Config(format!("`pin_env` names `{var}`, which is not set"))
                })?;
                config.pin = Some(SecretString::from(pin));
                config.pin_source = PinSource::Env(var.clone());
                config.pin_env = Some(var);
            }
            (None, None) => {}
        }
        if let Some(days) = raw.rotation_age_days {
            config.rotation_age_days = days;
        }
        config.audit = raw.audit;
        config.keys = raw.keys;
        config.module_init_params = raw.module_init_params;
        config.danger_accept_non_custody_module =
            raw.danger_accept_non_custody_module.unwrap_or(false);
        if let Some(signing) = raw.signing {
            let mut limits = crate::exchanges::Limits::default();
            if let Some(ms) = signing.skew_ms {
                limits.skew_ms = ms;
            }
            if let Some(ms) = signing.ttl_ms {
                limits.ttl_ms = ms;
            }
            limits.test_hosts = signing.test_hosts;
            if limits.skew_ms > 60_000 || limits.ttl_ms > 600_000 {
                return Err(Error::Config(
                    "[signing]: skew_ms is at most 60000 and ttl_ms at most 600000".into(),
                ));
            }
            config.limits = limits;
        }
        if let Some(pool) = raw.pool {
            if let Some(size) = pool.size {
                config = config.pool_size(size);
            }
            if let Some(ms) = pool.checkout_timeout_ms {
                config.checkout_timeout = Duration::from_millis(ms);
            }
            if let Some(fast) = pool.fast_path {
                config.fast_path = fast;
            }
            if let Some(serial) = pool.serialize_hmac {
                config.serialize_hmac = Some(serial);
            }
            if let Some(n) = pool.reconnect_attempts {
                config.reconnect_attempts = n;
            }
            if let Some(ms) = pool.revalidate_ms {
                config.revalidate = Duration::from_millis(ms);
            }
            if pool.module_copies.is_some() {
                return Err(Error::Config(format!(
                    "[pool] module_copies {MODULE_COPIES_REMOVED}"
                )));
            }
        }
        Ok(config)
    }

    /// Sets the limits on the time inputs a caller may give (timestamp, nonce, expiry, receive
    /// window) and the test hosts accepted besides the exchanges' own (`[signing]` in TOML).
    pub fn signing_limits(mut self, limits: crate::exchanges::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The module path.
    pub fn module_path(&self) -> &Path {
        &self.module
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        &self.token
    }

    /// Whether the file has guard rails (`[audit]` or `[keys]`, see [`crate::GuardConfig`]).
    pub fn has_guard_rails(&self) -> bool {
        self.audit.is_some() || self.keys.is_some()
    }

    pub(crate) fn audit_section(&self) -> Option<&toml::Table> {
        self.audit.as_ref()
    }

    pub(crate) fn keys_section(&self) -> Option<&toml::Table> {
        self.keys.as_ref()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    module: PathBuf,
    token: String,
    pin_file: Option<PathBuf>,
    pin_env: Option<String>,
    rotation_age_days: Option<u32>,
    /// `C_Initialize` parameter string (NSS softokn), see [`Config::module_init_params`].
    module_init_params: Option<String>,
    /// See [`Config::danger_accept_non_custody_module`].
    danger_accept_non_custody_module: Option<bool>,
    pool: Option<RawPool>,
    signing: Option<RawSigning>,
    /// Guard rails (issue 5): checked by `GuardConfig`, which rejects unknown fields there.
    audit: Option<toml::Table>,
    keys: Option<toml::Table>,
    /// The signing agent (issue 9): read by `agent::AgentConfig`, which rejects unknown fields
    /// there.
    #[serde(rename = "agent")]
    _agent: Option<toml::Table>,
    /// The re-signing gateway (issue 28): read by `gateway::GatewayConfig`.
    #[serde(rename = "gateway")]
    _gateway: Option<toml::Table>,
}

/// `[signing]`: what the crate accepts of caller-given time inputs and hosts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    skew_ms: Option<u64>,
    ttl_ms: Option<u64>,
    #[serde(default)]
    test_hosts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    size: Option<usize>,
    checkout_timeout_ms: Option<u64>,
    fast_path: Option<bool>,
    serialize_hmac: Option<bool>,
    reconnect_attempts: Option<u32>,
    revalidate_ms: Option<u64>,
    /// Removed (module copies): any value is refused with [`MODULE_COPIES_REMOVED`] rather than
    /// as an unknown field, so that an old file gets told why.
    module_copies: Option<serde::de::IgnoredAny>,
}

fn env_required(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::Config(format!("`{name}` is not set"))),
    }
}

/// The PIN named by the environment, and where it came from: `HSM_CUSTODY_PIN_FILE` wins over
/// `HSM_CUSTODY_PIN`.
pub(crate) fn pin_from_env() -> Result<Option<(SecretString, PinSource)>> {
    if let Some(path) = std::env::var_os(ENV_PIN_FILE).filter(|p| !p.is_empty()) {
        return read_pin_file(Path::new(&path)).map(|pin| Some((pin, PinSource::File)));
    }
    Ok(std::env::var(ENV_PIN)
        .ok()
        .filter(|p| !p.is_empty())
        .map(|pin| (SecretString::from(pin), PinSource::Env(ENV_PIN.to_owned()))))
}

/// Reads a PIN file; refuses a file that every user may read.
pub(crate) fn read_pin_file(path: &Path) -> Result<SecretString> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|source| Error::Io {
            what: "PIN file",
            path: path.to_owned(),
            source,
        })?;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(Error::Config(format!(
                "PIN file `{}` is readable by every user; run `chmod 600` on it",
                path.display()
            )));
        }
    }
    // Bounded read: a PIN is short, and a path such as `/dev/zero` must give an error, not
    // exhaust memory (found by the config fuzz target).
    const MAX_PIN_FILE: u64 = 1024;
    let io = |source| Error::Io {
        what: "PIN file",
        path: path.to_owned(),
        source,
    };
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(MAX_PIN_FILE as usize + 1));
    {
        use std::io::Read;
        fs::File::open(path)
            .map_err(io)?
            .take(MAX_PIN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > MAX_PIN_FILE {
        return Err(Error::Config(format!(
            "PIN file `{}` is longer than {MAX_PIN_FILE} bytes: is it the right file?",
            path.display()
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Config(format!("PIN file `{}` is not UTF-8", path.display())))?;
    let pin = text.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(Error::Config(format!(
            "PIN file `{}` is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(pin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn toml_reads_signing_limits_and_bounds_them() {
        let base = "module = '/m.so'\ntoken = 't'\n";
        let c = Config::from_toml_str(&format!(
            "{base}[signing]\nskew_ms = 1000\nttl_ms = 30000\ntest_hosts = ['127.0.0.1:8443']\n"
        ))
        .unwrap();
        assert_eq!(c.limits.skew_ms, 1000);
        assert_eq!(c.limits.ttl_ms, 30_000);
        assert_eq!(c.limits.test_hosts, ["127.0.0.1:8443"]);
        let d = Config::from_toml_str(base).unwrap();
        assert_eq!(d.limits, crate::exchanges::Limits::default());
        for bad in ["skew_ms = 600000", "ttl_ms = 3600000", "skew = 1"] {
            assert!(
                Config::from_toml_str(&format!("{base}[signing]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn toml_rejects_unknown_fields_and_inline_pins() {
        let err = Config::from_toml_str("module='m'\ntoken='t'\npin='1234'\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(
            !msg.contains("1234"),
            "the rejected PIN must not be echoed: {msg}"
        );
    }

    #[test]
    fn pin_source_is_recorded() {
        // A variable name of this test's own: tests run in parallel in one process.
        let var = "HSM_CUSTODY_TEST_PIN_SOURCE_VAR";
        let text = format!("module='/m.so'\ntoken='t'\npin_env='{var}'\n");
        assert!(Config::from_toml_str(&text).is_err(), "unset variable");
        std::env::set_var(var, "4321");
        let config = Config::from_toml_str(&text).unwrap();
        assert_eq!(config.pin_source(), &PinSource::Env(var.to_owned()));
        assert!(config.pin_variables_set().contains(&var.to_owned()));
        assert!(!format!("{config:?}").contains("4321"));
        // A PIN file given later replaces the PIN; the variable is still set.
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        fs::write(&pin, "9876\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&pin, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = config.pin_file(&pin).unwrap();
        assert_eq!(config.pin_source(), &PinSource::File);
        assert!(config.pin_variables_set().contains(&var.to_owned()));
        std::env::remove_var(var);
        assert!(!config.pin_variables_set().contains(&var.to_owned()));
        let config = Config::new("/m.so", "t");
        assert_eq!(config.pin_source(), &PinSource::None);
        let config = config.pin(SecretString::from("1"));
        assert_eq!(config.pin_source(), &PinSource::Code);
    }

    #[test]
    fn module_copies_are_refused_with_the_reason() {
        let base = "module='/m.so'\ntoken='t'\n[pool]\n";
        for value in ["['/m2.so', '/m3.so']", "[]", "'/m2.so'"] {
            let err = Config::from_toml_str(&format!("{base}module_copies = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("[pool] module_copies was removed"),
                "{value}: {err}"
            );
            assert!(err.contains("Remove the setting"), "{value}: {err}");
        }
        // The environment variable, checked first (set by this test only: `from_env` alone
        // reads it, and no other unit test calls that).
        std::env::set_var(REMOVED_ENV_MODULE_COPIES, "/m2.so");
        let err = Config::from_env().unwrap_err().to_string();
        std::env::remove_var(REMOVED_ENV_MODULE_COPIES);
        assert!(
            err.contains("`HSM_CUSTODY_MODULE_COPIES` was removed"),
            "{err}"
        );
    }

    #[test]
    fn toml_reads_pin_file_and_pool() {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        fs::write(&pin, "9876\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&pin, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = format!(
            "module='/m.so'\ntoken='t'\npin_file='{}'\n[pool]\nsize=3\ncheckout_timeout_ms=250\n\
             serialize_hmac=false\n",
            pin.display()
        );
        let config = Config::from_toml_str(&text).unwrap();
        assert_eq!(config.pin.as_ref().unwrap().expose_secret(), "9876");
        assert_eq!(config.pin_source(), &PinSource::File);
        assert_eq!(config.pool_size, 3);
        assert_eq!(config.serialize_hmac, Some(false));
        let default = Config::from_toml_str("module='/m.so'\ntoken='t'\n").unwrap();
        assert_eq!(default.serialize_hmac, None, "decided by the token");
        assert_eq!(config.checkout_timeout, Duration::from_millis(250));
        assert!(!format!("{config:?}").contains("9876"));
    }

    #[test]
    fn toml_reads_module_init_params_and_the_non_custody_opt_in() {
        let plain = Config::from_toml_str("module='/m.so'\ntoken='t'\n").unwrap();
        assert_eq!(plain.module_init_params, None);
        assert!(!plain.danger_accept_non_custody_module);
        let nss = Config::from_toml_str(
            "module='/usr/lib/x86_64-linux-gnu/libsoftokn3.so'\ntoken='t'\n\
             module_init_params=\"configdir='sql:/db' certPrefix='' keyPrefix=''\"\n\
             danger_accept_non_custody_module=true\n",
        )
        .unwrap();
        assert_eq!(
            nss.module_init_params.as_deref(),
            Some("configdir='sql:/db' certPrefix='' keyPrefix=''")
        );
        assert!(nss.danger_accept_non_custody_module);
    }

    #[cfg(unix)]
    #[test]
    fn oversized_pin_file_is_refused_after_a_bounded_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        fs::write(&pin, vec![b'1'; 2000]).unwrap();
        fs::set_permissions(&pin, fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_pin_file(&pin).unwrap_err().to_string();
        assert!(err.contains("longer than 1024 bytes"), "{err}");
        fs::write(&pin, "1234\n").unwrap();
        assert!(read_pin_file(&pin).is_ok());
    }

    #[test]
    fn world_readable_pin_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        fs::write(&pin, "9876").unwrap();
        fs::set_permissions(&pin, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_pin_file(&pin).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
