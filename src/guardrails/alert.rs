//! Alerts and where they go: callbacks, channels, the log (`tracing`), and for anomaly alerts
//! the alert command.

use std::sync::{mpsc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;

use super::command::AlertCommand;
use crate::guard::SignContext;

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A policy refused a signature.
    Denied,
    /// A rate limit refused a signature.
    RateLimited,
    /// The audit log could not record an event.
    AuditFailed,
    /// Anomaly: a key signs far more this minute than its trailing median per minute
    /// (`[alerts] spike_factor`, `spike_min_per_minute`).
    TrafficSpike,
    /// Anomaly: repeated failed logins within the window (`[alerts] failed_logins`).
    FailedLogins,
    /// Anomaly: repeated policy refusals of one client within the window
    /// (`[alerts] refusals_per_client`).
    RepeatedRefusals,
}

impl AlertKind {
    /// Whether this is an anomaly alert (also logged, and passed to the alert command).
    pub fn is_anomaly(self) -> bool {
        matches!(
            self,
            AlertKind::TrafficSpike | AlertKind::FailedLogins | AlertKind::RepeatedRefusals
        )
    }
}

/// An alert, handed to callbacks and channels (see [`super::Guardrails::on_alert`]) and, for
/// anomalies, as JSON to the alert command. Never holds a secret, a PIN or message bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// Key name (empty for failed logins).
    pub key: String,
    /// The rule, the audit error, or what the anomaly detector saw, in one line.
    pub rule: String,
    /// Exchange, method and path of the request, when known.
    pub exchange: Option<String>,
    /// See `exchange`.
    pub method: Option<String>,
    /// See `exchange`.
    pub path: Option<String>,
    /// The client (refusals of one client: the client refused).
    pub client: Option<String>,
    /// The token's label (failed logins).
    pub token: Option<String>,
    /// Anomalies: the count that crossed the threshold (signatures this minute, failed logins
    /// or refusals in the window).
    pub count: Option<u64>,
    /// When the alert was raised (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

impl Alert {
    /// An alert about `key`, with the request of `ctx` when given.
    pub(super) fn new(
        kind: AlertKind,
        ctx: Option<&SignContext<'_>>,
        key: &str,
        rule: impl Into<String>,
    ) -> Alert {
        Alert {
            kind,
            key: key.to_owned(),
            rule: rule.into(),
            exchange: ctx.and_then(|c| c.exchange).map(str::to_owned),
            method: ctx.and_then(|c| c.method).map(str::to_owned),
            path: ctx.and_then(|c| c.path).map(str::to_owned),
            client: ctx.and_then(|c| c.client).map(str::to_owned),
            token: None,
            count: None,
            time: OffsetDateTime::now_utc(),
        }
    }
}

pub(super) type Callback = Box<dyn Fn(&Alert) + Send + Sync>;

/// Where alerts go.
#[derive(Default)]
pub(super) struct Sinks {
    callbacks: Mutex<Vec<Callback>>,
    senders: Mutex<Vec<mpsc::Sender<Alert>>>,
    command: Option<AlertCommand>,
}

impl Sinks {
    pub(super) fn new(command: Option<AlertCommand>) -> Sinks {
        Sinks {
            command,
            ..Sinks::default()
        }
    }

    pub(super) fn add_callback(&self, f: Callback) {
        if let Ok(mut c) = self.callbacks.lock() {
            c.push(f);
        }
    }

    pub(super) fn channel(&self) -> mpsc::Receiver<Alert> {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut s) = self.senders.lock() {
            s.push(tx);
        }
        rx
    }

    /// Hands `alert` to the callbacks and channels; an anomaly also goes to the log and the
    /// alert command (queued: the command runs on its own thread).
    pub(super) fn deliver(&self, alert: Alert) {
        if alert.kind.is_anomaly() {
            tracing::warn!(
                kind = ?alert.kind,
                key = %alert.key,
                client = alert.client.as_deref(),
                token = alert.token.as_deref(),
                count = alert.count,
                "guard rails alert: {}",
                alert.rule
            );
            if let Some(command) = &self.command {
                command.send(&alert);
            }
        }
        if let Ok(callbacks) = self.callbacks.lock() {
            for f in callbacks.iter() {
                f(&alert);
            }
        }
        if let Ok(mut senders) = self.senders.lock() {
            senders.retain(|tx| tx.send(alert.clone()).is_ok());
        }
    }
}
