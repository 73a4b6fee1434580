//! [`ErrorKind`]: what sort of failure an [`Error`](super::Error) is, for code.
//!
//! The agent's wire kinds, the CLI's exit codes and the Python client's exception classes are
//! all derived from it (one classification, not three kept in step by hand).

use std::fmt;

/// What sort of failure an [`Error`](super::Error) is: the part a program branches on.
///
/// Get it with [`Error::kind`](super::Error::kind). New kinds may be added (the enum is
/// `#[non_exhaustive]`): match with a `_` arm. [`ErrorKind::wire_name`] is the agent protocol's
/// stable `kind` string for it and [`ErrorKind::exit_code`] the `hsm-custody` CLI's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is incomplete or invalid (file, environment, policy, agent settings).
    Config,
    /// Bad caller input: a bad name, encoding or secret, or an exchange request the exchange's
    /// grammar or the crate's checks refuse ([`Error::RequestRefused`](super::Error::RequestRefused)).
    InvalidInput,
    /// The key, or the key version, does not exist in the token.
    KeyNotFound,
    /// A key with that name exists already; nothing was written.
    KeyExists,
    /// The key is not for this use: bound to another exchange, of another kind, or not allowed
    /// this algorithm.
    WrongKey,
    /// The key exists but cannot sign now: revoked, retired, expired, not yet valid, or no
    /// active version.
    KeyUnusable,
    /// A lifecycle step (rotate, promote, retire, revoke ...) cannot run in the key's current
    /// state; nothing was changed.
    Lifecycle,
    /// The PIN was refused (incorrect, locked, or refused earlier in this process). Never
    /// retried automatically.
    Pin,
    /// The guard rails' policy refused the request; nothing reached the token.
    PolicyDenied,
    /// A rate limit refused the request; nothing reached the token.
    RateLimited,
    /// The audit log could not record the event; signatures are refused until it can.
    AuditFailed,
    /// Busy: no token session free in time, or another process holds the token's lifecycle
    /// lock. Retrying later may succeed.
    Busy,
    /// The PKCS#11 module or token failed: not loadable, not custody-grade, token absent or
    /// unavailable, a mechanism missing, a PKCS#11 call failed, an import's self-check failed.
    Token,
    /// A file (PIN file, config, lock, audit log, agent socket ...) could not be used.
    Io,
    /// The API was used wrongly (a guard installed twice, a closed async signer used ...): a
    /// bug in the calling program, not in its input.
    Misuse,
    /// A failure inside the crate (a panicked task, a test's injected fault).
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Config,
        ErrorKind::InvalidInput,
        ErrorKind::KeyNotFound,
        ErrorKind::KeyExists,
        ErrorKind::WrongKey,
        ErrorKind::KeyUnusable,
        ErrorKind::Lifecycle,
        ErrorKind::Pin,
        ErrorKind::PolicyDenied,
        ErrorKind::RateLimited,
        ErrorKind::AuditFailed,
        ErrorKind::Busy,
        ErrorKind::Token,
        ErrorKind::Io,
        ErrorKind::Misuse,
        ErrorKind::Internal,
    ];

    /// The agent protocol's `kind` string for this error (`docs/agent-protocol.md`). Stable:
    /// clients match on it. Kinds the protocol does not tell apart share `token` ("any other
    /// token or agent failure").
    pub const fn wire_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::KeyNotFound => "key_not_found",
            ErrorKind::WrongKey => "wrong_exchange",
            ErrorKind::KeyUnusable => "key_unusable",
            ErrorKind::PolicyDenied => "policy_denied",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::AuditFailed => "audit_failed",
            ErrorKind::Busy => "busy",
            ErrorKind::Config
            | ErrorKind::KeyExists
            | ErrorKind::Lifecycle
            | ErrorKind::Pin
            | ErrorKind::Token
            | ErrorKind::Io
            | ErrorKind::Misuse
            | ErrorKind::Internal => "token",
        }
    }

    /// The `hsm-custody` CLI's exit code for this error: 2 bad configuration or input or an
    /// existing key (a systemd unit should not restart on it: it is refused again), 3 the PIN,
    /// 4 a guard-rail refusal (policy or rate limit), 1 anything else. 0 is success.
    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Config | ErrorKind::InvalidInput | ErrorKind::KeyExists => 2,
            ErrorKind::Pin => 3,
            ErrorKind::PolicyDenied | ErrorKind::RateLimited => 4,
            _ => 1,
        }
    }

    /// A short lowercase name (`invalid input`, `key not found` ...), as [`fmt::Display`] shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "configuration",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::KeyNotFound => "key not found",
            ErrorKind::KeyExists => "key exists",
            ErrorKind::WrongKey => "wrong key",
            ErrorKind::KeyUnusable => "key unusable",
            ErrorKind::Lifecycle => "lifecycle state",
            ErrorKind::Pin => "PIN refused",
            ErrorKind::PolicyDenied => "policy denied",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::AuditFailed => "audit failed",
            ErrorKind::Busy => "busy",
            ErrorKind::Token => "token",
            ErrorKind::Io => "I/O",
            ErrorKind::Misuse => "API misuse",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once() {
        for (i, a) in ErrorKind::ALL.iter().enumerate() {
            assert!(!ErrorKind::ALL[..i].contains(a), "{a:?} twice");
            // A new kind must be added to ALL: this match fails to compile otherwise.
            match a {
                ErrorKind::Config
                | ErrorKind::InvalidInput
                | ErrorKind::KeyNotFound
                | ErrorKind::KeyExists
                | ErrorKind::WrongKey
                | ErrorKind::KeyUnusable
                | ErrorKind::Lifecycle
                | ErrorKind::Pin
                | ErrorKind::PolicyDenied
                | ErrorKind::RateLimited
                | ErrorKind::AuditFailed
                | ErrorKind::Busy
                | ErrorKind::Token
                | ErrorKind::Io
                | ErrorKind::Misuse
                | ErrorKind::Internal => {}
            }
        }
        assert_eq!(ErrorKind::ALL.len(), 16);
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        use ErrorKind as K;
        let code = |k: K| k.exit_code();
        assert_eq!(code(K::Config), 2);
        assert_eq!(code(K::InvalidInput), 2);
        assert_eq!(code(K::KeyExists), 2);
        assert_eq!(code(K::Pin), 3);
        assert_eq!(code(K::PolicyDenied), 4);
        assert_eq!(code(K::RateLimited), 4);
        for k in [
            K::KeyNotFound,
            K::Token,
            K::Io,
            K::Busy,
            K::AuditFailed,
            K::Misuse,
        ] {
            assert_eq!(code(k), 1, "{k:?}");
        }
    }
}
