//! The crate's one error type.
//!
//! Every message says what happened and what to do about it. No message ever contains a PIN,
//! a secret, key bytes or a request body: variants carry names, labels, PKCS#11 return codes and
//! counts only.

use std::path::PathBuf;
use std::time::Duration;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hsm-custody.
///
/// Token failures keep the PKCS#11 function and return code; caller misuse (bad names, bad
/// encodings, wrong exchange) has its own variants so that a bot can tell "fix your input" from
/// "the token is unwell".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is incomplete or invalid.
    #[error("configuration: {0}")]
    Config(String),

    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module `{path}`: {reason}; check the path (Debian SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)")]
    ModuleLoad {
        /// Path that was given.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },

    /// The module let a sensitive, non-extractable throwaway key out at the connect-time
    /// custody probe (NSS softokn does: it wraps such a key with an AES key the caller made and
    /// copies it with `CKA_EXTRACTABLE=true`). Keys in it are not in custody.
    #[error("PKCS#11 module `{path}` (token `{token}`) is NOT custody-grade: a sensitive, non-extractable key got out ({failed}); refusing to connect. To use it anyway, knowing that any code that can log in can take every key, set `danger_accept_non_custody_module = true` (TOML), HSM_CUSTODY_DANGER_ACCEPT_NON_CUSTODY_MODULE=1 or Config::danger_accept_non_custody_module(true)")]
    NotCustodyGrade {
        /// The module.
        path: PathBuf,
        /// The token probed.
        token: String,
        /// The probe steps the module did not refuse, with what it answered.
        failed: String,
    },

    /// No token with the configured label is present.
    #[error("no token labelled `{label}` (present: {present}); create one with softhsm-setup/setup.sh or fix HSM_CUSTODY_TOKEN")]
    TokenNotFound {
        /// Label that was asked for.
        label: String,
        /// Labels of the tokens that are present, comma separated.
        present: String,
    },

    /// The token refused the PIN. Never retried automatically.
    #[error("PIN incorrect for token `{token}`: {advice}; not retried, fix the PIN source before trying again")]
    PinIncorrect {
        /// Token label.
        token: String,
        /// What the token's counters say about the attempts left.
        advice: &'static str,
    },

    /// The token's user PIN is locked.
    #[error("PIN locked on token `{token}`: the security officer must unlock or reset it; no login attempted")]
    PinLocked {
        /// Token label.
        token: String,
    },

    /// A previous login with this PIN failed; the crate will not try the same PIN again.
    #[error(
        "login to token `{token}` refused earlier with this PIN; reconnect with a corrected PIN"
    )]
    PinRejectedEarlier {
        /// Token label.
        token: String,
    },

    /// The named key does not exist in the token.
    #[error("key `{name}` not found in token `{token}`; list keys with `hsm-custody key list`")]
    KeyNotFound {
        /// Key name.
        name: String,
        /// Token label.
        token: String,
    },

    /// A key with that name already exists; nothing was written.
    #[error("key `{name}` already exists in token `{token}`; nothing was overwritten (choose another name or rotate)")]
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
    #[error("token `{token}`: another process ({}) is changing keys and still holds the lifecycle lock `{}` after {} s; nothing was written. Try again when it has finished (stop it if it hangs)", holder(.holder_pid), .path.display(), .waited.as_secs())]
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
    #[error("lifecycle lock `{}` of token `{token}` {problem}; nothing was written. Remove it, or give every process that changes keys the same private TMPDIR", .path.display())]
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
    #[error("key `{name}` version v{version} expired on {not_after}; rotate it (`hsm-custody key rotate begin`)")]
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
    #[error("key `{name}` has no active version; promote a pending one (`hsm-custody key rotate promote`) or import a new one")]
    NoActiveVersion {
        /// Key name.
        name: String,
    },

    /// The key has no such version.
    #[error("key `{name}` has no version v{version}; see `hsm-custody key versions {name}`")]
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
    #[error("key `{key}` is bound to exchange `{bound}`, not `{requested}`; import a key for `{requested}`")]
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
    #[error("no PKCS#11 session free after {waited:?} ({in_use} in use, pool size {size}); raise `pool.size` or look for stuck signers")]
    PoolTimeout {
        /// How long the caller waited.
        waited: Duration,
        /// Sessions handed out at that moment.
        in_use: usize,
        /// Pool capacity.
        size: usize,
    },

    /// The token kept failing after the configured reconnect attempts.
    #[error("token `{token}` unavailable after {attempts} reconnect attempts (last: {function} -> {rv}); check the device or HSM connection")]
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

    /// Any other PKCS#11 failure, with the function and return code.
    #[error("PKCS#11 {function} failed with {rv}{hint}")]
    Pkcs11 {
        /// PKCS#11 function.
        function: String,
        /// Return code.
        rv: String,
        /// What to do, starting with "; " when present.
        hint: String,
    },

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
    #[error("key `{key}` may not sign this request: denied by rule `{rule}`")]
    PolicyDenied {
        /// Key name.
        key: String,
        /// The rule that refused it (`withdrawal-guard:binance`, `deny:POST /x`, `hours` ...).
        rule: String,
    },

    /// A rate limit of the key's policy was hit; nothing was signed.
    #[error("key `{key}` is over its rate limit `{rule}`; slow down or raise the limit")]
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
}

impl Error {
    /// Builds the generic PKCS#11 error for a cryptoki failure, with advice for common codes.
    pub(crate) fn from_ck(err: &CkError) -> Self {
        match err {
            CkError::Pkcs11(rv, function) => Error::Pkcs11 {
                function: function_name(*function),
                rv: rv_name(*rv),
                hint: hint_for(*rv).map(|h| format!("; {h}")).unwrap_or_default(),
            },
            other => Error::Pkcs11 {
                function: "(cryptoki)".into(),
                rv: other.to_string(),
                hint: String::new(),
            },
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
}

/// The holder of a lock, as its message names it.
fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "a process that has not written its pid yet".to_owned(),
    }
}

/// `C_Login`-style name of a cryptoki function.
pub(crate) fn function_name(f: Function) -> String {
    format!("C_{f:?}")
}

/// `CKR_...`-style name of a return code.
pub(crate) fn rv_name(rv: RvError) -> String {
    format!("{rv:?}")
}

fn hint_for(rv: RvError) -> Option<&'static str> {
    Some(match rv {
        RvError::KeySizeRange => "the key size does not suit this mechanism",
        RvError::MechanismInvalid => "the module or key does not allow this mechanism",
        RvError::KeyFunctionNotPermitted => "the key's attributes forbid this operation",
        RvError::KeyTypeInconsistent => "the key type does not suit this mechanism",
        RvError::AttributeSensitive => "the token refuses to reveal a sensitive attribute",
        RvError::AttributeReadOnly => "the attribute cannot be changed on this object",
        RvError::TokenWriteProtected => "the token is write-protected",
        RvError::DeviceMemory => "the token is out of memory; remove unused objects",
        RvError::SessionCount => "too many sessions are open on the token; lower `pool.size`",
        RvError::TemplateInconsistent | RvError::TemplateIncomplete => {
            "the module refused the object template"
        }
        _ => return None,
    })
}

/// How the crate reacts to a PKCS#11 return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The session is gone or stuck: evict it and open another.
    SessionDead,
    /// The application is no longer logged in: log in again, once.
    LoginLost,
    /// A cached object handle no longer names the object: look it up again.
    HandleStale,
    /// The device or module failed: back off and reconnect.
    TokenGone,
    /// A failure the module reports for a passing condition (SoftHSM2's CKR_GENERAL_ERROR when a
    /// logout races an operation): retry, within the caller's bounded recovery budget.
    Transient,
    /// Wrong or locked PIN: stop, never retry.
    PinFatal,
    /// Everything else is the caller's error and is returned as is.
    Caller,
}

/// Classifies a cryptoki error (see the architecture note, "Sessions").
pub(crate) fn classify(err: &CkError) -> Class {
    let CkError::Pkcs11(rv, _) = err else {
        return Class::Caller;
    };
    match rv {
        RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::OperationActive
        | RvError::SessionExists => Class::SessionDead,
        RvError::UserNotLoggedIn => Class::LoginLost,
        RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => Class::HandleStale,
        RvError::DeviceError
        | RvError::DeviceRemoved
        | RvError::TokenNotPresent
        | RvError::TokenNotRecognized
        | RvError::CryptokiNotInitialized
        | RvError::SlotIdInvalid => Class::TokenGone,
        RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired => Class::PinFatal,
        _ => Class::Caller,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_architecture_note() {
        let e = |rv| CkError::Pkcs11(rv, Function::Sign);
        assert_eq!(
            classify(&e(RvError::SessionHandleInvalid)),
            Class::SessionDead
        );
        assert_eq!(classify(&e(RvError::SessionClosed)), Class::SessionDead);
        assert_eq!(classify(&e(RvError::UserNotLoggedIn)), Class::LoginLost);
        assert_eq!(
            classify(&e(RvError::ObjectHandleInvalid)),
            Class::HandleStale
        );
        assert_eq!(classify(&e(RvError::KeyHandleInvalid)), Class::HandleStale);
        assert_eq!(classify(&e(RvError::DeviceRemoved)), Class::TokenGone);
        assert_eq!(classify(&e(RvError::PinIncorrect)), Class::PinFatal);
        assert_eq!(classify(&e(RvError::PinLocked)), Class::PinFatal);
        assert_eq!(classify(&e(RvError::DataLenRange)), Class::Caller);
    }

    #[test]
    fn pkcs11_errors_name_function_and_code() {
        let err = Error::from_ck(&CkError::Pkcs11(RvError::KeySizeRange, Function::SignInit));
        let msg = err.to_string();
        assert!(msg.contains("C_SignInit"), "{msg}");
        assert!(msg.contains("KeySizeRange"), "{msg}");
        assert!(msg.contains("key size"), "{msg}");
    }
}
