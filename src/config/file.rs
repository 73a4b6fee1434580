//! The configuration file: one typed struct, [`ConfigFile`], whose sections mirror the TOML
//! tables, parsed once; unknown keys are refused in every table, with the line, column and
//! section of the offending key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{
    AgentSection, AlertsSection, AuditSection, Config, GatewaySection, HygieneSection, KeysSection,
    PinSource, PoolSection, SigningSection, MODULE_COPIES_REMOVED,
};
use crate::error::{Error, Result};

/// A whole configuration file as written: the connection's top-level keys and one field per
/// table. Reading it touches nothing (no PIN file, no group lookup); [`Config::from_file`] and
/// the sections' owners (`GuardConfig`, `AgentConfig`) check what needs the system.
///
/// ```
/// use hsm_custody::config::ConfigFile;
///
/// let file = ConfigFile::from_toml_str("module = '/m.so'\ntoken = 't'\n[pool]\nsize = 4\n")?;
/// assert_eq!(file.pool.unwrap().size, Some(4));
/// let err = ConfigFile::from_toml_str("module = '/m.so'\ntoken = 't'\n[pool]\nsise = 4\n")
///     .unwrap_err()
///     .to_string();
/// assert!(err.contains("line 4, column 1") && err.contains("`sise`") && err.contains("[pool]"));
/// # Ok::<(), hsm_custody::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConfigFile {
    /// PKCS#11 module path.
    pub module: PathBuf,
    /// Token label.
    pub token: String,
    /// A file holding the user PIN (never the PIN itself: a file has no `pin` key).
    pub pin_file: Option<PathBuf>,
    /// An environment variable holding the user PIN (refused by the agent).
    pub pin_env: Option<String>,
    /// Age after which `key list` and `doctor` flag an active version (the same as
    /// `[hygiene] rotate_after_days`; give one of them).
    pub rotation_age_days: Option<u32>,
    /// `C_Initialize` parameter string (NSS softokn), see [`Config::module_init_params`].
    pub module_init_params: Option<String>,
    /// See [`Config::danger_accept_non_custody_module`].
    pub danger_accept_non_custody_module: Option<bool>,
    /// `[pool]`.
    pub pool: Option<PoolSection>,
    /// `[signing]`.
    pub signing: Option<SigningSection>,
    /// `[audit]`: the guard rails' audit log.
    pub audit: Option<AuditSection>,
    /// `[keys]`: the guard rails' per-key policies.
    pub keys: Option<KeysSection>,
    /// `[alerts]`: the guard rails' anomaly alerts.
    pub alerts: Option<AlertsSection>,
    /// `[hygiene]`: when `doctor` flags unused and old keys.
    pub hygiene: Option<HygieneSection>,
    /// `[agent]`: the signing agent.
    pub agent: Option<AgentSection>,
    /// `[gateway]`: the re-signing gateway.
    pub gateway: Option<GatewaySection>,
}

impl ConfigFile {
    /// Reads and parses a configuration file.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] when the file cannot be read; [`Error::Config`] naming the file, line,
    /// column and table of the first problem.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_file(path)?;
        parse(&text, Some(path))
    }

    /// Parses configuration text.
    ///
    /// # Errors
    /// [`Error::Config`] naming the line, column and table of the first problem.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        parse(text, None)
    }
}

impl Config {
    /// Reads a TOML configuration file (see [`ConfigFile`] and `README.md` for its keys): the
    /// connection settings, and the `[audit]`, `[keys]` and `[agent]` sections for
    /// [`crate::GuardConfig::from_config`] and `AgentConfig::from_config`. Unknown keys are
    /// refused in every table.
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
    /// The file cannot be read or parsed (the error names its line and column), or the PIN
    /// file cannot be read.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        Config::from_file(ConfigFile::from_toml_file(path)?)
    }

    /// Parses TOML text (see [`Config::from_toml_file`]).
    ///
    /// # Errors
    /// The text is not valid configuration, or the PIN file cannot be read.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Config::from_file(ConfigFile::from_toml_str(text)?)
    }

    /// The configuration a parsed file describes; reads the PIN (from `pin_file`, or the
    /// variable `pin_env` names).
    ///
    /// # Errors
    /// [`Error::Config`]: both `pin_file` and `pin_env`, `pin_env` naming an unset variable,
    /// `[signing]` limits out of bounds; the PIN file cannot be read.
    pub fn from_file(file: ConfigFile) -> Result<Self> {
        let mut config = Config::new(file.module, file.token);
        match (file.pin_file, file.pin_env) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set either `pin_file` or `pin_env`, not both".into(),
                ))
            }
            (Some(path), None) => config = config.pin_file(path)?,
            (None, Some(var)) => {
                let pin = std::env::var(&var).map_err(|_| {
                    Error::Config(format!("`pin_env` names `{var}`, which is not set"))
                })?;
                config.pin = Some(secrecy::SecretString::from(pin));
                config.pin_source = PinSource::Env(var.clone());
                config.pin_env = Some(var);
            }
            (None, None) => {}
        }
        let hygiene = file.hygiene.unwrap_or_default();
        match (file.rotation_age_days, hygiene.rotate_after_days) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set either `rotation_age_days` or `[hygiene] rotate_after_days`, not both"
                        .into(),
                ))
            }
            (Some(days), None) | (None, Some(days)) => config.rotation_age_days = days,
            (None, None) => {}
        }
        if let Some(days) = hygiene.unused_after_days {
            config.unused_after_days = days;
        }
        config.module_init_params = file.module_init_params;
        config.danger_accept_non_custody_module =
            file.danger_accept_non_custody_module.unwrap_or(false);
        if let Some(signing) = &file.signing {
            config.limits = signing.limits()?;
        }
        if let Some(pool) = file.pool {
            config.apply_pool(&pool);
        }
        if file.keys.is_some() && file.audit.is_none() {
            return Err(Error::Config(
                "[keys] policies need an [audit] section (every decision is logged)".into(),
            ));
        }
        if file.alerts.is_some() && file.audit.is_none() {
            return Err(Error::Config(
                "[alerts] are raised by the guard rails, which need an [audit] section".into(),
            ));
        }
        config.audit = file.audit;
        config.keys = file.keys;
        config.alerts = file.alerts;
        config.agent = file.agent;
        config.gateway = file.gateway;
        Ok(config)
    }
}

/// The sections of a file that the guard rails and the agent read, with the rest of the file
/// ignored (for `GuardConfig::from_toml_str` and `AgentConfig::from_toml_str`, which take a
/// fragment); each section refuses unknown keys.
#[derive(Deserialize)]
pub(crate) struct Sections {
    pub(crate) audit: Option<AuditSection>,
    pub(crate) keys: Option<KeysSection>,
    pub(crate) alerts: Option<AlertsSection>,
    #[cfg_attr(not(feature = "agent"), allow(dead_code))]
    pub(crate) agent: Option<AgentSection>,
}

impl Sections {
    pub(crate) fn from_toml_str(text: &str) -> Result<Self> {
        parse(text, None)
    }
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
        what: "config file",
        path: path.to_owned(),
        source,
    })
}

/// Parses `text`; a failure names `origin` (when a file), the line and column, and the table.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, origin: Option<&Path>) -> Result<T> {
    toml::from_str(text).map_err(|e| describe(text, origin, &e))
}

/// The error for a file that does not parse. Never quotes the line itself: a misplaced PIN
/// would be on it.
fn describe(text: &str, origin: Option<&Path>, err: &toml::de::Error) -> Error {
    let mut msg = match origin {
        Some(path) => format!("config file `{}`", path.display()),
        None => "configuration".to_owned(),
    };
    let mut table = None;
    if let Some(span) = err.span() {
        let (line, column) = line_column(text, span.start);
        let _ = write!(msg, ", line {line}, column {column}");
        table = Some(table_at(text, span.start));
    }
    let message = err.message().trim_end();
    // A removed setting is refused with the reason, not as a mere unknown key.
    let removed = format!("[pool] module_copies {MODULE_COPIES_REMOVED}");
    let in_pool = matches!(&table, Some(Some(t)) if t == "pool");
    let message = if in_pool && message.starts_with("unknown field `module_copies`") {
        removed.as_str()
    } else {
        message
    };
    let _ = write!(msg, ": {message}");
    match table {
        Some(Some(name)) => {
            let _ = write!(msg, " (in [{name}])");
        }
        Some(None) => msg.push_str(" (at the top level)"),
        None => {}
    }
    Error::Config(msg)
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_boundary(text, offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The table a key at `offset` belongs to: the last header at or before its line; `None`: top
/// level. A key that is itself in a header (`[tokens]`, `[agent.keyz.k]`) belongs to the table
/// the header extends.
fn table_at(text: &str, offset: usize) -> Option<String> {
    let offset = floor_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    if let Some(name) = text[start..].lines().next().and_then(header) {
        // The key's own position in the header decides: what comes before it.
        let key_at = offset - start;
        let line = &text[start..];
        let open = line.find('[').unwrap_or(0);
        let before = line[..key_at.max(open)]
            .trim_start()
            .trim_start_matches('[');
        let parent = before.trim().trim_end_matches('.').trim();
        return (!parent.is_empty()).then(|| parent.to_owned()).or_else(|| {
            // Not a dotted prefix (the whole header was blamed): its parent table.
            name.rsplit_once('.').map(|(p, _)| p.trim().to_owned())
        });
    }
    text[..start].lines().rev().find_map(header)
}

/// The name in a table header line (`[a.b]` or `[[a.b]]`, a comment allowed after it).
fn header(line: &str) -> Option<String> {
    let line = line.trim();
    let (inner, close) = match line.strip_prefix("[[") {
        Some(inner) => (inner, "]]"),
        None => (line.strip_prefix('[')?, "]"),
    };
    let end = inner.find(close)?;
    let rest = inner[end + close.len()..].trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    let name = inner[..end].trim();
    (!name.is_empty() && !name.contains(['=', ',', '['])).then(|| name.to_owned())
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::REMOVED_ENV_MODULE_COPIES;
    use secrecy::ExposeSecret;
    use std::fs;
    use std::time::Duration;

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
        assert_eq!(d.limits, crate::alg::Limits::default());
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

    #[test]
    fn errors_name_the_line_column_key_and_table() {
        let base = "module = '/m.so'\ntoken = 't'\n";
        for (text, line, key, table) in [
            (
                format!("{base}modul = '/x.so'\n"),
                3,
                "`modul`",
                "at the top level",
            ),
            (
                format!("{base}[pool]\nsize = 2\nmax = 3\n"),
                5,
                "`max`",
                "(in [pool])",
            ),
            (
                format!("{base}[signing]\nskew = 1\n"),
                4,
                "`skew`",
                "(in [signing])",
            ),
            (
                format!("{base}[audit]\npath = '/a'\nfsynk = 'never'\n"),
                5,
                "`fsynk`",
                "(in [audit])",
            ),
            (
                format!("{base}[audit]\npath = '/a'\n[keys.\"*\"]  # all\nalow = []\n"),
                6,
                "`alow`",
                "(in [keys.\"*\"])",
            ),
            (
                format!("{base}[agent]\nsocket = '/s'\npin = '1234'\n"),
                5,
                "`pin`",
                "(in [agent])",
            ),
            (
                format!("{base}[agent]\nsocket = '/s'\n[agent.keys.k]\nuid = [1]\n"),
                6,
                "`uid`",
                "(in [agent.keys.k])",
            ),
        ] {
            let err = ConfigFile::from_toml_str(&text).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("line {line}, column 1:")),
                "{text}: {msg}"
            );
            assert!(
                msg.contains("unknown field") && msg.contains(key),
                "{text}: {msg}"
            );
            assert!(msg.contains(table), "{text}: {msg}");
            assert!(!msg.contains("1234"), "{msg}");
        }
        // An unknown table is an unknown key of the table it would extend.
        for (text, key, table) in [
            (
                format!("{base}[tokens]\nx = 1\n"),
                "`tokens`",
                "at the top level",
            ),
            (
                format!("{base}[agent]\nsocket = '/s'\n[agent.keyz.k]\nuids = [1]\n"),
                "`keyz`",
                "(in [agent])",
            ),
        ] {
            let msg = ConfigFile::from_toml_str(&text).unwrap_err().to_string();
            assert!(msg.contains("unknown field") && msg.contains(key), "{msg}");
            assert!(msg.contains(table), "{msg}");
        }
        // A file names itself; a wrong type names its line too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        fs::write(&path, format!("{base}[pool]\nsize = 'big'\n")).unwrap();
        let msg = Config::from_toml_file(&path).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("`{}`, line 4, column 8", path.display())),
            "{msg}"
        );
        assert!(msg.contains("(in [pool])"), "{msg}");
        // Sections that need no system lookups are typed when the file is read.
        let file = ConfigFile::from_toml_str(&format!(
            "{base}[audit]\npath = '/a'\nfsync = 'batch'\ngroup = 'adm'\n\
             [keys.k]\nexchange = 'binance'\n[keys.j]\nexchange = ['okx', 'bybit']\n"
        ))
        .unwrap();
        let audit = file.audit.unwrap();
        assert_eq!(audit.fsync, Some(crate::config::Fsync::Batch));
        assert_eq!(
            audit.group,
            Some(crate::config::GroupRef::Name("adm".into()))
        );
        let keys = file.keys.unwrap();
        assert_eq!(keys["k"].exchanges, ["binance"]);
        assert_eq!(keys["j"].exchanges, ["okx", "bybit"]);
        // `[keys]` without `[audit]` is refused when the file is read.
        let err = Config::from_toml_str(&format!("{base}[keys.k]\nallow_raw = true\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("need an [audit] section"), "{err}");
    }

    #[test]
    fn alerts_and_hygiene_are_typed_and_checked() {
        let base = "module = '/m.so'\ntoken = 't'\n[audit]\npath = '/a'\n";
        let c = Config::from_toml_str(&format!(
            "{base}[alerts]\nspike_factor = 4\nfailed_logins = 0\ncommand = ['/bin/true']\n\
             [hygiene]\nunused_after_days = 7\nrotate_after_days = 0\n"
        ))
        .unwrap();
        let alerts =
            crate::guardrails::AlertConfig::from_section(c.alerts_section().unwrap()).unwrap();
        assert_eq!((alerts.spike_factor, alerts.failed_logins), (4, 0));
        assert_eq!(alerts.spike_min_per_minute, 100, "a default");
        assert_eq!(
            alerts.command.as_deref(),
            Some(&["/bin/true".to_owned()][..])
        );
        assert_eq!((c.unused_after(), c.rotation_age()), (7, 0));
        let d = Config::from_toml_str("module = '/m.so'\ntoken = 't'\n").unwrap();
        assert_eq!((d.unused_after(), d.rotation_age()), (30, 90));
        let old = Config::from_toml_str("module = '/m.so'\ntoken = 't'\nrotation_age_days = 60\n");
        assert_eq!(old.unwrap().rotation_age(), 60);
        for (text, want) in [
            (
                format!("{base}[alerts]\nspike_factr = 4\n"),
                "line 6, column 1",
            ),
            (
                format!("{base}[hygiene]\nunused_days = 4\n"),
                "(in [hygiene])",
            ),
            (
                "module = '/m.so'\ntoken = 't'\n[alerts]\nfailed_logins = 2\n".into(),
                "need an [audit] section",
            ),
            (
                "module = '/m.so'\ntoken = 't'\nrotation_age_days = 60\n[hygiene]\n\
                 rotate_after_days = 90\n"
                    .into(),
                "not both",
            ),
        ] {
            let err = Config::from_toml_str(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        for bad in ["command = []", "command = ['']", "window_seconds = 0"] {
            let c = Config::from_toml_str(&format!("{base}[alerts]\n{bad}\n")).unwrap();
            let err = crate::GuardConfig::from_config(&c).unwrap_err().to_string();
            assert!(err.contains("[alerts]"), "{bad}: {err}");
        }
    }

    /// Every configuration the repository documents or ships still reads, every table of it.
    #[test]
    fn documented_and_shipped_configurations_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        let mut docs = vec![root.join("README.md")];
        for dir in ["docs", "deploy"] {
            for entry in fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "md") {
                    docs.push(path);
                }
            }
        }
        for path in docs {
            let text = fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("```toml\n") {
                let block = &rest[start + 8..];
                let end = block.find("```").unwrap();
                texts.push((path.display().to_string(), block[..end].to_owned()));
                rest = &block[end..];
            }
        }
        let mut shipped = vec![root.join("deploy/systemd/agent.toml")];
        for entry in fs::read_dir(root.join("fuzz/corpus/config_parse")).unwrap() {
            shipped.push(entry.unwrap().path());
        }
        for path in shipped {
            texts.push((
                path.display().to_string(),
                fs::read_to_string(&path).unwrap(),
            ));
        }
        assert!(texts.len() >= 7, "{}", texts.len());
        for (origin, text) in texts {
            // A fragment (a table or two) is read as part of a minimal file.
            let text = if text.contains("module =") {
                text
            } else {
                format!("module = '/m.so'\ntoken = 't'\n{text}")
            };
            let file = ConfigFile::from_toml_str(&text)
                .unwrap_or_else(|e| panic!("{origin}: {e}\n{text}"));
            if let Some(signing) = &file.signing {
                signing.limits().unwrap_or_else(|e| panic!("{origin}: {e}"));
            }
            if let Some(keys) = &file.keys {
                crate::policy::Policies::from_section(keys)
                    .unwrap_or_else(|e| panic!("{origin}: {e}"));
            }
            if let Some(alerts) = &file.alerts {
                crate::guardrails::AlertConfig::from_section(alerts)
                    .unwrap_or_else(|e| panic!("{origin}: {e}"));
            }
            #[cfg(feature = "agent")]
            if let Some(agent) = &file.agent {
                let config = crate::agent::AgentConfig::from_section(agent);
                assert_eq!(config.socket_path(), agent.socket, "{origin}");
            }
        }
    }
}
