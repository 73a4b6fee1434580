//! The hook through which guard rails (policy, rate limits, audit) see every signature and
//! every lifecycle change.
//!
//! A [`Guard`] installed on a [`crate::Custody`] is asked before any byte reaches the token
//! ([`Guard::check`]; an error refuses the signature) and told the outcome afterwards
//! ([`Guard::signed`]). Exchange signers pass the request's exchange, method and path; a plain
//! [`crate::KeyRef::hmac`] call is a *raw* signature (no request context), which a policy may
//! refuse.

use crate::alg::KeyKind;
use crate::error::Error;
use crate::exchanges::Reach;

/// What is about to be signed.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SignContext<'a> {
    /// Key name.
    pub key: &'a str,
    /// Version that signs.
    pub version: u32,
    /// The exchange whose signer asks, `None` for a raw signature.
    pub exchange: Option<&'a str>,
    /// HTTP method (or the exchange's equivalent), when known.
    pub method: Option<&'a str>,
    /// Request path, when known.
    pub path: Option<&'a str>,
    /// Who asked, when the caller says (the agent: `uid=1001 pid=4242`).
    pub client: Option<&'a str>,
    /// What the signature will be good for at the exchange (set by the crate's exchange
    /// signers; `method` and `path` above are its method and endpoint).
    pub reach: Option<&'a Reach>,
    /// The exact bytes the token will sign (hash them for audit; never log them).
    pub message: &'a [u8],
}

impl SignContext<'_> {
    /// Whether this is a raw signature (no exchange request behind it).
    pub fn is_raw(&self) -> bool {
        self.exchange.is_none()
    }
}

/// A key lifecycle change, reported after it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// A new key (version 1) was imported or generated.
    Created {
        /// Key name.
        key: String,
        /// Key kind.
        kind: KeyKind,
    },
    /// `rotate begin`: a pending version was added.
    RotationBegun {
        /// Key name.
        key: String,
        /// New version.
        version: u32,
    },
    /// `rotate promote`.
    Promoted {
        /// Key name.
        key: String,
        /// The version now active.
        version: u32,
    },
    /// `rotate retire`.
    Retired {
        /// Key name.
        key: String,
        /// Versions destroyed.
        versions: Vec<u32>,
    },
    /// `revoke`.
    Revoked {
        /// Key name.
        key: String,
        /// Versions destroyed.
        versions: Vec<u32>,
    },
    /// A login was refused (wrong or locked PIN).
    LoginFailed {
        /// Token label.
        token: String,
        /// The error's message.
        reason: String,
    },
}

/// Guard rails over a [`crate::Custody`]. Implementations must be cheap in `check` (it runs on
/// every signature) and must never log the message bytes, a secret or a signature.
pub trait Guard: Send + Sync {
    /// Decides whether the signature may happen. An error refuses it (fail closed).
    ///
    /// # Errors
    /// The refusal, naming the rule.
    fn check(&self, ctx: &SignContext<'_>) -> Result<(), Error>;

    /// Told the outcome of a signature that `check` allowed.
    fn signed(&self, ctx: &SignContext<'_>, outcome: Result<(), &Error>);

    /// Told about lifecycle changes and login failures.
    fn lifecycle(&self, event: &LifecycleEvent) {
        let _ = event;
    }

    /// Whether this guard judges withdrawals itself (the crate's [`crate::Guardrails`] do,
    /// with each key's `allow_withdrawals`). When `false` (the default), the crate's built-in
    /// withdrawal guard refuses every withdrawal and transfer before [`Guard::check`] is asked:
    /// secure by default, whatever guard is installed.
    fn judges_withdrawals(&self) -> bool {
        false
    }
}

/// Observers of the login failures an audit log's writer takes from the log's pending file
/// (`PATH.pending`, where processes that could not log in note theirs): the guard rails of
/// this process count them towards their failed-login alert. Keyed by the pending file's path;
/// an observer is dropped with its guard rails.
pub(crate) mod pending_logins {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, PoisonError, Weak};

    /// Told the number of login failures recorded from the pending file.
    pub(crate) type Observer = dyn Fn(usize) + Send + Sync;

    static OBSERVERS: Mutex<Vec<(PathBuf, Weak<Observer>)>> = Mutex::new(Vec::new());

    /// Calls `observer` whenever failures noted in `pending` are recorded, while it lives.
    pub(crate) fn observe(pending: PathBuf, observer: &Arc<Observer>) {
        let mut all = OBSERVERS.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|(_, o)| o.strong_count() > 0);
        all.push((pending, Arc::downgrade(observer)));
    }

    /// `count` login failures noted in `pending` were recorded in the log's chain.
    pub(crate) fn recorded(pending: &Path, count: usize) {
        let live: Vec<Arc<Observer>> = OBSERVERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(p, _)| p == pending)
            .filter_map(|(_, o)| o.upgrade())
            .collect();
        for observer in live {
            observer(count);
        }
    }
}
