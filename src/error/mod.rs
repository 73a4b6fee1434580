//! The crate's one error type.
//!
//! An [`Error`]'s message (`Display`) says what happened; [`Error::hint`] says what to do about
//! it when the crate knows (CLI commands, file paths, settings), and [`Error::kind`] gives the
//! [`ErrorKind`] that programs branch on: the agent's wire kinds, the CLI's exit codes and the
//! Python client's exception classes are derived from it. No message or hint ever contains a
//! PIN, a secret, key bytes or a request body: variants carry names, labels, PKCS#11 return
//! codes and counts only.

mod ck;
mod kind;

pub(crate) use ck::{classify, function_name, rv_name, Class};
pub use kind::ErrorKind;

use std::path::PathBuf;
use std::time::Duration;

use cryptoki::context::Function;
use cryptoki::error::RvError;

/// How a [`Error::ModuleLoad`] reason starts when the module loaded but its `C_Initialize`
/// failed (the path is right; a file it reads is not readable, or the token store is broken).
pub(crate) const MODULE_LOADED_INIT_FAILED: &str = "the module loaded but C_Initialize failed";

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hsm-custody.
///
/// Token failures keep the PKCS#11 function and return value (cryptoki's types); bad input (bad
/// names, bad encodings, wrong exchange) and API misuse have their own variants, so that a bot
/// can tell "fix your input" from "the token is unwell". Branch on [`Error::kind`] rather than
/// on variants where a kind is enough: variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is incomplete or invalid.
    #[error("configuration: {0}")]
    Config(String),

    /// A file the configuration names (the config file, the PIN file) cannot be read: a
    /// configuration error like [`Error::Config`] (a service restarted on it fails again), with
    /// the I/O error kept as the source.
    #[error("configuration: {what} `{path}`: {source}")]
    ConfigFile {
        /// What the file is (`config file`, `PIN file`).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The PKCS#11 module could not be loaded or initialised (a reason starting with
    /// `MODULE_LOADED_INIT_FAILED`: it loaded, its `C_Initialize` failed).
    #[error("cannot load PKCS#11 module `{path}`: {reason}")]
    ModuleLoad {
        /// Path that was given.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },

    /// The module let a sensitive, non-extractable throwaway key out at the connect-time
    /// custody probe (NSS softokn does: it wraps such a key with an AES key the caller made and
    /// copies it with `CKA_EXTRACTABLE=true`). Keys in it are not in custody.
    #[error("PKCS#11 module `{path}` (token `{token}`) is NOT custody-grade: a sensitive, non-extractable key got out ({failed}); refusing to connect")]
    NotCustodyGrade {
        /// The module.
        path: PathBuf,
        /// The token probed.
        token: String,
        /// The probe steps the module did not refuse, with what it answered.
        failed: String,
    },

    /// No token with the configured label is present.
    #[error("no token labelled `{label}` (present: {present})")]
    TokenNotFound {
        /// Label that was asked for.
        label: String,
        /// Labels of the tokens that are present, comma separated.
        present: String,
    },

    /// The token refused the PIN. Never retried automatically.
    #[error("PIN incorrect for token `{token}`: {advice}; not retried")]
    PinIncorrect {
        /// Token label.
        token: String,
        /// What the token's counters say about the attempts left.
        advice: &'static str,
    },

    /// The token's user PIN is locked.
    #[error("PIN locked on token `{token}`; no login attempted")]
    PinLocked {
        /// Token label.
        token: String,
    },

    /// A previous login with this PIN failed; the crate will not try the same PIN again.
    #[error("login to token `{token}` refused earlier with this PIN; not tried again")]
    PinRejectedEarlier {
        /// Token label.
        token: String,
    },

    /// The named key does not exist in the token.
    #[error("key `{name}` not found in token `{token}`")]
    KeyNotFound {
        /// Key name.
        name: String,
        /// Token label.
        token: String,
    },

    /// A key with that name already exists; nothing was written.
    #[error("key `{name}` already exists in token `{token}`; nothing was overwritten")]
    KeyExists {
        /// Key name.
        name: String,
        /// Token label.
        token: String,
    },

    /// The freshly imported key did not reproduce the software MAC, so it was destroyed.
    #[error("import of key `{name}` failed its self-check ({detail}); the token object was destroyed, nothing was kept")]
    SelfCheckFailed {
        /// Key name.
        name: String,
        /// Which check failed (no values).
        detail: String,
    },

    /// A lifecycle step cannot run in the key's current state (nothing was changed).
    #[error("{0}")]
    Lifecycle(String),

    /// Another process is changing keys in this token (it holds the token's lifecycle lock,
    /// see `keys::lock`) and did not finish within the wait; nothing was written.
    #[error("token `{token}`: another process ({}) is changing keys and still holds the lifecycle lock `{}` after {} s; nothing was written", holder(.holder_pid), .path.display(), .waited.as_secs())]
    LifecycleBusy {
        /// Token label.
        token: String,
        /// The holder's pid, as it wrote it into the lock file (`None`: not written yet).
        holder_pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: Duration,
    },

    /// The token's lifecycle lock file cannot be trusted; nothing was written.
    #[error("lifecycle lock `{}` of token `{token}` {problem}; nothing was written", .path.display())]
    LifecycleLockUnsafe {
        /// Token label.
        token: String,
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// The version was revoked or retired: its token object is gone.
    #[error("key `{name}` version v{version} is {state}; it can no longer sign")]
    KeyRevoked {
        /// Key name.
        name: String,
        /// Version.
        version: u32,
        /// `revoked` or `retired`.
        state: &'static str,
    },

    /// The version is past its last valid day.
    #[error("key `{name}` version v{version} expired on {not_after}")]
    KeyExpired {
        /// Key name.
        name: String,
        /// Version.
        version: u32,
        /// Last valid day.
        not_after: time::Date,
    },

    /// The version is not valid yet.
    #[error("key `{name}` version v{version} is not valid before {not_before}")]
    KeyNotYetValid {
        /// Key name.
        name: String,
        /// Version.
        version: u32,
        /// First valid day.
        not_before: time::Date,
    },

    /// The key has no active version (all revoked, or only a pending one).
    #[error("key `{name}` has no active version")]
    NoActiveVersion {
        /// Key name.
        name: String,
    },

    /// The key has no such version.
    #[error("key `{name}` has no version v{version}")]
    VersionNotFound {
        /// Key name.
        name: String,
        /// Version asked for.
        version: u32,
    },

    /// The operation needs another kind of key.
    #[error("key `{name}` is a {kind} key; this operation needs {wanted}")]
    WrongKeyKind {
        /// Key name.
        name: String,
        /// The key's kind.
        kind: String,
        /// What the operation needs.
        wanted: String,
    },

    /// A fault injected by a test hook (`Custody::danger_fail_lifecycle_after`).
    #[error("injected fault at lifecycle step {step}")]
    InjectedFault {
        /// The step that failed.
        step: u32,
    },

    /// Invalid caller input (bad name, empty or undecodable secret, malformed request ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// An exchange request that does not fit the exchange's grammar, or whose time, nonce, API
    /// key, passphrase or host the crate does not accept: refused before anything is signed.
    #[error("{exchange} request refused: `{field}` {reason}")]
    RequestRefused {
        /// Exchange id.
        exchange: String,
        /// The request field at fault (`path`, `query`, `body`, `timestamp`, `api_key` ...).
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A key bound to one exchange was used with another exchange's signer.
    #[error("key `{key}` is bound to exchange `{bound}`, not `{requested}`")]
    WrongExchange {
        /// Key name.
        key: String,
        /// The exchange recorded with the key.
        bound: String,
        /// The exchange that was asked for.
        requested: String,
    },

    /// The key cannot be used with this algorithm.
    #[error("key `{key}` cannot sign with {alg}: {reason}")]
    AlgorithmNotAllowed {
        /// Key name.
        key: String,
        /// Algorithm asked for.
        alg: String,
        /// Why.
        reason: String,
    },

    /// The module lacks a mechanism this feature needs.
    #[error(
        "token `{token}` does not support {mechanism}; this feature cannot work with this module"
    )]
    MechanismUnsupported {
        /// Token label.
        token: String,
        /// Mechanism name.
        mechanism: String,
    },

    /// No session became free within the configured wait.
    #[error("no PKCS#11 session free after {waited:?} ({in_use} in use, pool size {size})")]
    PoolTimeout {
        /// How long the caller waited.
        waited: Duration,
        /// Sessions handed out at that moment.
        in_use: usize,
        /// Pool capacity.
        size: usize,
    },

    /// The token kept failing after the configured reconnect attempts.
    #[error("token `{token}` unavailable after {attempts} reconnect attempts (last: {function} -> {rv})")]
    TokenUnavailable {
        /// Token label.
        token: String,
        /// Attempts made.
        attempts: u32,
        /// Last failing PKCS#11 function.
        function: String,
        /// Last return code.
        rv: String,
    },

    /// Any other PKCS#11 failure, with the function and return value the module gave.
    #[error("PKCS#11 {} failed with {}{}", function_name(*.function), rv_name(*.rv), ck::meaning_suffix(*.rv))]
    Pkcs11 {
        /// PKCS#11 function (`Function::Sign` is `C_Sign`).
        function: Function,
        /// Return value (`RvError::KeySizeRange` is `CKR_KEY_SIZE_RANGE`).
        rv: RvError,
        /// What to do, when the call site knows better than the return value
        /// ([`Error::hint`]).
        advice: Option<&'static str>,
    },

    /// A failure of the cryptoki library itself rather than of the module (a missing function,
    /// a bad conversion ...).
    #[error("PKCS#11 (cryptoki) failed with {0}")]
    Cryptoki(String),

    /// A file could not be read or written.
    #[error("{what} `{path}`: {source}")]
    Io {
        /// What the file is (PIN file, config file ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The guard rails' policy refused the signature before any byte reached the token.
    #[error("key `{key}` may not sign {}: denied by rule `{rule}`", refused_what(.request))]
    PolicyDenied {
        /// Key name.
        key: String,
        /// The rule that refused it (`withdrawal-guard:binance`, `deny:POST /x`, `hours` ...).
        rule: String,
        /// What was refused, in words: `POST /sapi/v1/capital/withdraw/apply on binance`, `a
        /// raw signature` ...; empty when unknown (an older agent's reply). Never a body,
        /// query string or secret.
        request: String,
    },

    /// A rate limit of the key's policy was hit; nothing was signed.
    #[error("key `{key}` is over its rate limit `{rule}`")]
    RateLimited {
        /// Key name.
        key: String,
        /// The limit (`rate_per_second`, `rate_per_minute`).
        rule: String,
    },

    /// The audit log could not record the event, or does not continue its chain; signatures are
    /// refused until it can (fail closed).
    #[error("audit log: {0}")]
    AuditFailed(String),

    /// The API was used wrongly: a guard installed twice, a closed async signer used ... A bug
    /// in the calling program, not in its input.
    #[error("API misuse: {0}")]
    Misuse(String),

    /// A failure inside the crate (a signing task that panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What sort of failure this is, for code: see [`ErrorKind`] (agent wire kinds, CLI exit
    /// codes).
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::Config(_) | Error::ConfigFile { .. } => K::Config,
            Error::InvalidInput(_) | Error::RequestRefused { .. } => K::InvalidInput,
            Error::KeyNotFound { .. } | Error::VersionNotFound { .. } => K::KeyNotFound,
            Error::KeyExists { .. } => K::KeyExists,
            Error::WrongExchange { .. }
            | Error::WrongKeyKind { .. }
            | Error::AlgorithmNotAllowed { .. } => K::WrongKey,
            Error::KeyRevoked { .. }
            | Error::KeyExpired { .. }
            | Error::KeyNotYetValid { .. }
            | Error::NoActiveVersion { .. } => K::KeyUnusable,
            Error::Lifecycle(_) => K::Lifecycle,
            Error::PinIncorrect { .. }
            | Error::PinLocked { .. }
            | Error::PinRejectedEarlier { .. } => K::Pin,
            Error::PolicyDenied { .. } => K::PolicyDenied,
            Error::RateLimited { .. } => K::RateLimited,
            Error::AuditFailed(_) => K::AuditFailed,
            Error::PoolTimeout { .. } | Error::LifecycleBusy { .. } => K::Busy,
            Error::ModuleLoad { .. }
            | Error::NotCustodyGrade { .. }
            | Error::TokenNotFound { .. }
            | Error::SelfCheckFailed { .. }
            | Error::MechanismUnsupported { .. }
            | Error::TokenUnavailable { .. }
            | Error::Pkcs11 { .. }
            | Error::Cryptoki(_) => K::Token,
            Error::Io { .. } | Error::LifecycleLockUnsafe { .. } => K::Io,
            Error::Misuse(_) => K::Misuse,
            Error::Internal(_) | Error::InjectedFault { .. } => K::Internal,
        }
    }

    /// What to do about it, when the crate knows: a command to run, a path to check, a setting
    /// to change. Kept out of the message (`Display`) so that programs can log the message and
    /// people get the advice: the `hsm-custody` CLI prints it after the message as `hint: ...`,
    /// the agent sends it as the reply's `hint`.
    pub fn hint(&self) -> Option<String> {
        let text: &str = match self {
            // The path was right when the module loaded and only its C_Initialize failed: the
            // message names the file the module could not read, and the fix is its access.
            Error::ModuleLoad { reason, .. } if reason.starts_with(MODULE_LOADED_INIT_FAILED) => {
                "the module is at that path; give this process's user access to the files named                  above (Debian SoftHSM2: add it to group `softhsm`, e.g. `SupplementaryGroups=`                  in its systemd unit)"
            }
            Error::ModuleLoad { .. } => {
                "check the path (Debian SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
            }
            Error::NotCustodyGrade { .. } => {
                "to use it anyway, knowing that any code that can log in can take every key, set \
                 `danger_accept_non_custody_module = true` (TOML), \
                 HSM_CUSTODY_DANGER_ACCEPT_NON_CUSTODY_MODULE=1 or \
                 Config::danger_accept_non_custody_module(true)"
            }
            Error::TokenNotFound { .. } => {
                "create one with softhsm-setup/setup.sh or fix HSM_CUSTODY_TOKEN"
            }
            Error::PinIncorrect { .. } => "fix the PIN source before trying again",
            Error::PinLocked { .. } => "the security officer must unlock or reset the PIN",
            Error::PinRejectedEarlier { .. } => "reconnect with a corrected PIN",
            Error::KeyNotFound { .. } => "list keys with `hsm-custody key list`",
            Error::KeyExists { .. } => "choose another name, or rotate the key",
            Error::LifecycleBusy { .. } => {
                "try again when the other process has finished (stop it if it hangs)"
            }
            Error::LifecycleLockUnsafe { .. } => {
                "remove the lock file, or give every process that changes keys the same private \
                 TMPDIR"
            }
            Error::KeyExpired { .. } => "rotate it (`hsm-custody key rotate begin`)",
            Error::NoActiveVersion { name } => {
                return Some(format!(
                    "promote a pending version (`hsm-custody key rotate promote --name {name}`), \
                     or import a new secret under the name (`hsm-custody key import --name {name}`)"
                ))
            }
            Error::VersionNotFound { name, .. } | Error::KeyRevoked { name, .. } => {
                return Some(format!("see `hsm-custody key versions --name {name}`"))
            }
            Error::WrongExchange { requested, .. } => {
                return Some(format!("import a key for `{requested}`"))
            }
            Error::PoolTimeout { .. } => "raise `pool.size` or look for stuck signers",
            Error::TokenUnavailable { .. } => "check the device or the HSM connection",
            Error::Pkcs11 { rv, advice, .. } => return advice.or(ck::advice(*rv)).map(Into::into),
            Error::RateLimited { .. } => "slow down, or raise the limit",
            _ => return None,
        };
        Some(text.to_owned())
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
}

/// What a policy refusal refused, as its message names it.
fn refused_what(request: &str) -> &str {
    if request.is_empty() {
        "this request"
    } else {
        request
    }
}

/// The holder of a lock, as its message names it.
fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "a process that has not written its pid yet".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_not_found() -> Error {
        Error::KeyNotFound {
            name: "k".into(),
            token: "t".into(),
        }
    }

    /// The agent's wire kinds and the CLI's exit codes as they were classified by hand before
    /// `kind()`: the derivation keeps them.
    #[test]
    fn kinds_keep_the_wire_kinds_and_exit_codes() {
        let rule = || ("k".to_owned(), "r".to_owned());
        let cases: Vec<(Error, &str, u8)> = vec![
            (Error::Config("c".into()), "token", 2),
            (
                Error::ConfigFile {
                    what: "PIN file",
                    path: "/p".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                },
                "token",
                2,
            ),
            (Error::invalid("x"), "invalid_input", 2),
            (
                Error::RequestRefused {
                    exchange: "okx".into(),
                    field: "path".into(),
                    reason: "r".into(),
                },
                "invalid_input",
                2,
            ),
            (
                Error::KeyExists {
                    name: "k".into(),
                    token: "t".into(),
                },
                "token",
                2,
            ),
            (
                Error::PinIncorrect {
                    token: "t".into(),
                    advice: "a",
                },
                "token",
                3,
            ),
            (Error::PinLocked { token: "t".into() }, "token", 3),
            (
                Error::PolicyDenied {
                    key: rule().0,
                    rule: rule().1,
                    request: String::new(),
                },
                "policy_denied",
                4,
            ),
            (
                Error::RateLimited {
                    key: rule().0,
                    rule: rule().1,
                },
                "rate_limited",
                4,
            ),
            (key_not_found(), "key_not_found", 1),
            (
                Error::VersionNotFound {
                    name: "k".into(),
                    version: 2,
                },
                "key_not_found",
                1,
            ),
            (
                Error::WrongKeyKind {
                    name: "k".into(),
                    kind: "hmac".into(),
                    wanted: "ed25519".into(),
                },
                "wrong_exchange",
                1,
            ),
            (
                Error::NoActiveVersion { name: "k".into() },
                "key_unusable",
                1,
            ),
            (Error::AuditFailed("a".into()), "audit_failed", 1),
            (
                Error::PoolTimeout {
                    waited: Duration::from_secs(1),
                    in_use: 1,
                    size: 1,
                },
                "busy",
                1,
            ),
            (Error::Lifecycle("l".into()), "token", 1),
            (Error::Misuse("m".into()), "token", 1),
            (Error::Cryptoki("c".into()), "token", 1),
        ];
        for (err, wire, code) in cases {
            assert_eq!(err.kind().wire_name(), wire, "{err:?}");
            assert_eq!(err.kind().exit_code(), code, "{err:?}");
        }
    }

    /// Advice is in the hint, not in the message.
    #[test]
    fn advice_is_in_the_hint_not_the_message() {
        let err = key_not_found();
        assert_eq!(err.to_string(), "key `k` not found in token `t`");
        assert_eq!(
            err.hint().as_deref(),
            Some("list keys with `hsm-custody key list`")
        );
        let err = Error::TokenNotFound {
            label: "x".into(),
            present: "none".into(),
        };
        assert!(!err.to_string().contains("setup.sh"), "{err}");
        assert!(err.hint().unwrap().contains("softhsm-setup/setup.sh"));
        assert!(Error::Lifecycle("l".into()).hint().is_none());
    }
}
