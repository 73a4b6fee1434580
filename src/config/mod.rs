//! Configuration: from code, from the environment, or from a TOML file.
//!
//! [`Config`] is how to reach the token and run the session pool. A file is read once into a
//! [`ConfigFile`], whose fields mirror its tables, one file each here: the top level
//! (`module`, `token`, `pin_file` ...), [`PoolSection`] (`[pool]`), [`SigningSection`]
//! (`[signing]`), [`AuditSection`] (`[audit]`), [`KeysSection`] (`[keys]`),
//! [`AlertsSection`] (`[alerts]`), [`HygieneSection`] (`[hygiene]`) and [`AgentSection`]
//! (`[agent]`). Every table refuses unknown keys, and a file that does not
//! parse gets an error naming the line, the column and the table. [`Config::from_file`] keeps
//! the guard rails' and the agent's sections, typed, for [`crate::GuardConfig::from_config`]
//! and `agent::AgentConfig::from_config`: nothing reads the file twice.
//!
//! The PIN is held as a [`SecretString`] from the moment it is read. It can come from code, from
//! `HSM_CUSTODY_PIN`, or from a file (`HSM_CUSTODY_PIN_FILE`, `pin_file` in TOML). A TOML file
//! never holds the PIN inline.

mod agent;
mod alerts;
mod audit;
mod file;
mod gateway;
mod hygiene;
mod keys;
mod pin;
mod pool;
mod signing;

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::error::{Error, Result};

pub use agent::{AgentSection, KeyAccess};
pub use alerts::AlertsSection;
pub use audit::{AuditSection, Fsync, GroupRef};
pub use file::ConfigFile;
pub(crate) use file::Sections;
pub use gateway::{GatewaySection, RouteSection};
pub use hygiene::HygieneSection;
pub use keys::{KeyPolicySection, KeysSection};
pub use pin::PinSource;
pub(crate) use pin::{pin_from_env, read_pin_file};
pub use pool::PoolSection;
pub use signing::SigningSection;

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
const DEFAULT_UNUSED_AFTER_DAYS: u32 = 30;

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
    /// `[hygiene] unused_after_days`: when `doctor` flags a key as unused; 0: never.
    pub(crate) unused_after_days: u32,
    /// `[audit]`, for [`crate::GuardConfig::from_config`].
    pub(crate) audit: Option<AuditSection>,
    /// `[keys]`, for [`crate::GuardConfig::from_config`].
    pub(crate) keys: Option<KeysSection>,
    /// `[alerts]`, for [`crate::GuardConfig::from_config`].
    pub(crate) alerts: Option<AlertsSection>,
    /// `[agent]`, for `agent::AgentConfig::from_config`.
    pub(crate) agent: Option<AgentSection>,
    /// `[gateway]`, for `gateway::GatewayConfig::from_config`.
    pub(crate) gateway: Option<GatewaySection>,
    /// Passed in `C_Initialize`'s `pReserved` when set (NSS softokn's `configdir=...`).
    pub(crate) module_init_params: Option<String>,
    /// Connect to a module whose custody probe found a non-extractable key getting out.
    pub(crate) danger_accept_non_custody_module: bool,
    /// Limits on caller-given time inputs, and accepted test hosts (`[signing]`).
    pub(crate) limits: crate::alg::Limits,
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
            unused_after_days: DEFAULT_UNUSED_AFTER_DAYS,
            audit: None,
            keys: None,
            alerts: None,
            agent: None,
            gateway: None,
            module_init_params: None,
            danger_accept_non_custody_module: false,
            limits: crate::alg::Limits::default(),
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

    /// Age after which `key list` and `doctor` flag an active version as due for rotation
    /// (`[hygiene] rotate_after_days`). Default 90 days; 0: never.
    pub fn rotation_age_days(mut self, days: u32) -> Self {
        self.rotation_age_days = days;
        self
    }

    /// Days without a recorded use after which `doctor` flags a key as unused
    /// (`[hygiene] unused_after_days`). Default 30; 0: never.
    pub fn unused_after_days(mut self, days: u32) -> Self {
        self.unused_after_days = days;
        self
    }

    /// See [`Config::rotation_age_days`].
    pub fn rotation_age(&self) -> u32 {
        self.rotation_age_days
    }

    /// See [`Config::unused_after_days`].
    pub fn unused_after(&self) -> u32 {
        self.unused_after_days
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

    /// Sets the limits on the time inputs a caller may give (timestamp, nonce, expiry, receive
    /// window) and the test hosts accepted besides the exchanges' own (`[signing]` in TOML).
    pub fn signing_limits(mut self, limits: crate::alg::Limits) -> Self {
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

    /// The `[audit]` section, if the file had one.
    pub fn audit_section(&self) -> Option<&AuditSection> {
        self.audit.as_ref()
    }

    /// The `[keys]` section, if the file had one.
    pub fn keys_section(&self) -> Option<&KeysSection> {
        self.keys.as_ref()
    }

    /// The `[alerts]` section, if the file had one.
    pub fn alerts_section(&self) -> Option<&AlertsSection> {
        self.alerts.as_ref()
    }

    /// The `[agent]` section, if the file had one.
    pub fn agent_section(&self) -> Option<&AgentSection> {
        self.agent.as_ref()
    }

    /// The `[gateway]` section, if the file had one.
    pub fn gateway_section(&self) -> Option<&GatewaySection> {
        self.gateway.as_ref()
    }

    /// Applies a `[pool]` section over the current settings.
    fn apply_pool(&mut self, pool: &PoolSection) {
        if let Some(size) = pool.size {
            self.pool_size = size.max(1);
        }
        if let Some(ms) = pool.checkout_timeout_ms {
            self.checkout_timeout = Duration::from_millis(ms);
        }
        if let Some(fast) = pool.fast_path {
            self.fast_path = fast;
        }
        if let Some(serial) = pool.serialize_hmac {
            self.serialize_hmac = Some(serial);
        }
        if let Some(n) = pool.reconnect_attempts {
            self.reconnect_attempts = n;
        }
        if let Some(ms) = pool.revalidate_ms {
            self.revalidate = Duration::from_millis(ms);
        }
    }
}

fn env_required(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::Config(format!("`{name}` is not set"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
}
