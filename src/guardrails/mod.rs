//! [`Guardrails`]: the [`Guard`] that combines policy, rate limits, audit log and alerts.
//!
//! Alerts (`alert`) go to callbacks and channels; the anomaly detectors (`anomaly`: traffic
//! spikes, failed logins, repeated refusals of one client) also log theirs and pass them to the
//! alert command (`command`).

mod alert;
mod anomaly;
mod command;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::audit::{AuditConfig, AuditLog, Connection, Decision, Event, Record, SignLine};
use crate::config::{AlertsSection, AuditSection, Config, KeysSection, Sections};
use crate::error::{Error, Result};
use crate::guard::{Guard, LifecycleEvent, SignContext};
use crate::policy::{Limiter, Policies, Refusal};

use alert::Sinks;
pub use alert::{Alert, AlertKind};
pub use anomaly::AlertConfig;
use anomaly::Anomaly;

/// Guard rails configuration: the `[audit]`, `[keys]` and `[alerts]` sections of the
/// configuration file.
///
/// ```toml
/// [audit]
/// path = "/var/lib/hsm-custody/audit.jsonl"
/// fsync = "always"            # "batch", "never"
/// max_bytes = 67108864        # rotate at 64 MiB; 0: never
///
/// [alerts]                    # optional; these are the defaults (0: off)
/// spike_factor = 10
/// spike_min_per_minute = 100
/// failed_logins = 3
/// refusals_per_client = 20
/// window_seconds = 300
///
/// [keys.binance-main]
/// exchange = "binance"
/// allow = ["POST /api/v3/order", "GET /api/v3/*"]
/// rate_per_second = 10
/// burst = 20
/// ```
///
/// Without `[keys]` nothing is refused (audit only); with it, a key without an entry follows
/// `[keys."*"]`, or may not sign at all. See [`crate::policy`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GuardConfig {
    /// The audit log.
    pub audit: AuditConfig,
    /// The policies; `None`: audit only.
    pub policies: Option<Policies>,
    /// The anomaly alerts' thresholds and command (default: [`AlertConfig::default`]).
    pub alerts: AlertConfig,
}

impl GuardConfig {
    /// Audit only, no policy.
    pub fn new(audit: AuditConfig) -> Self {
        GuardConfig {
            audit,
            policies: None,
            alerts: AlertConfig::default(),
        }
    }

    /// Sets the anomaly alerts' thresholds and command.
    pub fn alerts(mut self, alerts: AlertConfig) -> Self {
        self.alerts = alerts;
        self
    }

    /// Sets the policies.
    pub fn policies(mut self, policies: Policies) -> Self {
        self.policies = Some(policies);
        self
    }

    /// The guard rails of a loaded [`Config`] (its `[audit]` and `[keys]` sections, typed when
    /// the file was read), `None` when it has neither.
    ///
    /// # Errors
    /// [`Error::Config`]: a policy's pattern, rate or hours do not parse, an audit group is
    /// unknown, or `[keys]` comes without `[audit]`.
    pub fn from_config(config: &Config) -> Result<Option<GuardConfig>> {
        Self::from_sections(config.audit_section(), config.keys_section())?
            .map(|g| g.alerts_from(config.alerts_section()))
            .transpose()
    }

    /// Applies an `[alerts]` section, when given.
    fn alerts_from(self, alerts: Option<&AlertsSection>) -> Result<GuardConfig> {
        match alerts {
            Some(section) => Ok(self.alerts(AlertConfig::from_section(section)?)),
            None => Ok(self),
        }
    }

    /// Parses the `[audit]`, `[keys]` and `[alerts]` sections of TOML text (other sections are
    /// ignored; unknown keys in these are refused).
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn from_toml_str(text: &str) -> Result<Option<GuardConfig>> {
        let sections = Sections::from_toml_str(text)?;
        if sections.alerts.is_some() && sections.audit.is_none() {
            return Err(Error::Config(
                "[alerts] are raised by the guard rails, which need an [audit] section".into(),
            ));
        }
        Self::from_sections(sections.audit.as_ref(), sections.keys.as_ref())?
            .map(|g| g.alerts_from(sections.alerts.as_ref()))
            .transpose()
    }

    /// The guard rails of typed sections: `[audit]` (required when `[keys]` is given) and
    /// `[keys]`; `None` when neither is given.
    ///
    /// # Errors
    /// As [`GuardConfig::from_config`].
    pub fn from_sections(
        audit: Option<&AuditSection>,
        keys: Option<&KeysSection>,
    ) -> Result<Option<GuardConfig>> {
        match (audit, keys) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Error::Config(
                "[keys] policies need an [audit] section (every decision is logged)".into(),
            )),
            (Some(a), keys) => Ok(Some(GuardConfig {
                audit: AuditConfig::from_section(a)?,
                policies: keys.map(Policies::from_section).transpose()?,
                alerts: AlertConfig::default(),
            })),
        }
    }
}

/// Guard rails over a [`Custody`](crate::Custody): policy and rate limits before the token, an audit line for
/// every attempt and lifecycle event, alerts and `tracing` events on refusals, and anomaly
/// alerts (traffic spikes, failed logins, repeated refusals of one client; see
/// [`AlertConfig`]).
///
/// ```no_run
/// use hsm_custody::{Config, Custody, GuardConfig, Guardrails};
///
/// # fn main() -> Result<(), hsm_custody::Error> {
/// let config = Config::from_toml_file("/etc/hsm-custody.toml")?;
/// let guard_config = GuardConfig::from_config(&config)?.expect("[audit] section");
/// let custody = Custody::connect(config)?;
/// let guard = Guardrails::install(&custody, guard_config)?;
/// let alerts = guard.alerts();
/// std::thread::spawn(move || for alert in alerts { eprintln!("ALERT {alert:?}") });
/// # Ok(()) }
/// ```
///
/// # Security
/// - Checks run before any byte reaches the token and fail closed: if the audit line of an
///   allowed signature cannot be written, the signature is refused ([`Error::AuditFailed`]).
/// - The audit key signs only the log's own MACs: any other use of it is refused (rule
///   `audit-key`) by every `Custody`, guarded or not, so a compromised bot cannot forge lines
///   through the crate. It must have been generated in the token by the log (see
///   [`crate::audit`]); a key imported under its name is refused.
/// - The log MACs through the `Custody` without keeping it alive: call [`Guardrails::sync`]
///   before dropping the last `Custody` handle.
/// - Audit lines hold the SHA-256 of the signed bytes, never the bytes, a secret, a PIN or a
///   signature.
pub struct Guardrails {
    policies: Option<Policies>,
    limiters: RwLock<HashMap<String, Arc<Limiter>>>,
    log: AuditLog,
    audit_key: String,
    sinks: Arc<Sinks>,
    anomaly: Arc<Anomaly>,
    /// Keeps this guard's observer of the log's pending login failures registered.
    _pending_logins: Arc<crate::guard::pending_logins::Observer>,
}

impl std::fmt::Debug for Guardrails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guardrails")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Guardrails {
    /// Opens the audit log (creating the audit key in the token on first use) and builds the
    /// guard, without installing it.
    ///
    /// # Errors
    /// As [`AuditLog::open`].
    pub fn new(custody: &impl Connection, config: GuardConfig) -> Result<Arc<Guardrails>> {
        let audit_key = config.audit.key.clone();
        let command = config
            .alerts
            .command
            .clone()
            .map(|argv| command::AlertCommand::start(argv, config.alerts.command_timeout));
        let sinks = Arc::new(Sinks::new(command));
        let anomaly = Anomaly::start(&config.alerts, sinks.clone());
        // Before the log opens: opening records the login failures other processes noted. (The
        // writer tells the observer under its lock: the observer only adds to a count.)
        let observer: Arc<crate::guard::pending_logins::Observer> = {
            let anomaly = Arc::downgrade(&anomaly);
            Arc::new(move |count| {
                if let Some(anomaly) = anomaly.upgrade() {
                    anomaly.logins_noted(count);
                }
            })
        };
        crate::guard::pending_logins::observe(
            crate::audit::pending_path_for(&config.audit.path),
            &observer,
        );
        let log = AuditLog::open(custody, config.audit)?;
        Ok(Arc::new(Guardrails {
            policies: config.policies,
            limiters: RwLock::new(HashMap::new()),
            log,
            audit_key,
            sinks,
            anomaly,
            _pending_logins: observer,
        }))
    }

    /// [`Guardrails::new`], then [`Custody::set_guard`](crate::Custody::set_guard).
    ///
    /// # Errors
    /// As [`Guardrails::new`]; [`Error::Config`] when a guard is installed already.
    pub fn install(custody: &impl Connection, config: GuardConfig) -> Result<Arc<Guardrails>> {
        let guard = Guardrails::new(custody, config)?;
        custody.install_guard(guard.clone())?;
        Ok(guard)
    }

    /// Calls `f` on every alert: denials, rate-limit hits and audit failures (on the signing
    /// thread), anomalies (on the thread that saw them: the spike detector's background
    /// thread, or the signing or logging-in thread). Keep it short.
    pub fn on_alert(&self, f: impl Fn(&Alert) + Send + Sync + 'static) {
        self.sinks.add_callback(Box::new(f));
    }

    /// A channel that receives every alert from now on.
    pub fn alerts(&self) -> mpsc::Receiver<Alert> {
        self.sinks.channel()
    }

    /// Test hook: the traffic spike detector stops following the wall clock and moves on to
    /// its next minute now (the minute's counters roll over, the trailing medians are
    /// recomputed). For tests that inject traffic over many minutes without waiting.
    #[cfg(feature = "test-util")]
    pub fn danger_advance_alert_minute(&self) {
        self.anomaly.advance_minute();
    }

    /// Test hook: checks the signing counts against the spike thresholds now (the background
    /// thread does every half second).
    #[cfg(feature = "test-util")]
    pub fn danger_check_alerts_now(&self) {
        self.anomaly.check_now();
    }

    /// The audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.log
    }

    /// Forces the audit log to disk and saves the chain head, in its file and in the token
    /// (call before exit, while a `Custody` handle is still held).
    ///
    /// # Errors
    /// As [`AuditLog::sync`].
    pub fn sync(&self) -> Result<()> {
        self.log.sync()
    }

    /// The audit log's path.
    pub fn audit_path(&self) -> &Path {
        &self.log.config().path
    }

    fn decide(&self, ctx: &SignContext<'_>) -> std::result::Result<String, Refusal> {
        if ctx.key == self.audit_key {
            return Err(Refusal::Policy("audit-key".into()));
        }
        let Some(policies) = &self.policies else {
            // No `[keys]`: the withdrawal guard still applies (secure by default).
            return crate::policy::default_judge(ctx).map(|()| {
                if ctx.is_raw() {
                    "audit-only".into()
                } else {
                    "default-guard".into()
                }
            });
        };
        let policy = policies
            .for_key(ctx.key)
            .ok_or_else(|| Refusal::Policy("no-policy".into()))?;
        let rule = policy.judge(ctx, time::OffsetDateTime::now_utc().time())?;
        if policy.rate.is_limited() {
            self.limiter(ctx.key, policy)
                .check()
                .map_err(Refusal::Rate)?;
        }
        Ok(rule)
    }

    fn limiter(&self, key: &str, policy: &crate::policy::KeyPolicy) -> Arc<Limiter> {
        if let Ok(map) = self.limiters.read() {
            if let Some(l) = map.get(key) {
                return l.clone();
            }
        }
        let fresh = Arc::new(Limiter::new(&policy.rate));
        match self.limiters.write() {
            Ok(mut map) => map.entry(key.to_owned()).or_insert(fresh).clone(),
            // A poisoned map still limits this call (fail closed on the rate, not open).
            Err(_) => fresh,
        }
    }

    fn alert(&self, kind: AlertKind, ctx: Option<&SignContext<'_>>, key: &str, rule: &str) {
        self.sinks.deliver(Alert::new(kind, ctx, key, rule));
    }

    fn record(&self, record: Record) -> Result<u64> {
        self.log.append(record).inspect_err(|e| {
            tracing::error!(error = %e, "audit log write failed");
        })
    }

    /// The `sign` line of a judged signature (`decision` and its rule), or the `sign_failed`
    /// line of one the token then failed, borrowed from the request (the signing path copies
    /// nothing into it).
    fn record_sign(
        &self,
        ctx: &SignContext<'_>,
        event: Event,
        decision: Option<(Decision, &str)>,
        outcome: &str,
    ) -> Result<u64> {
        let mut sha256 = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(ctx.message), &mut sha256)
            .map_err(|_| Error::AuditFailed("cannot encode a hash".into()))?;
        let (binding, params) = match (ctx.exchange, ctx.reach) {
            (Some(exchange), Some(reach)) => (
                crate::exchanges::info(exchange).map(|e| e.binding.describe_static()),
                (!reach.path_bound()).then(|| reach.params()),
            ),
            _ => (None, None),
        };
        let line = SignLine {
            seq: 0,
            time: time::OffsetDateTime::UNIX_EPOCH,
            event,
            key: ctx.key,
            version: ctx.version,
            exchange: ctx.exchange,
            method: ctx.method,
            path: ctx.path,
            binding,
            params,
            client: ctx.client,
            sha256: std::str::from_utf8(&sha256).unwrap_or_default(),
            decision: decision.map(|(d, _)| d),
            rule: decision.map(|(_, rule)| rule),
            outcome: Some(outcome),
            epoch: None,
        };
        self.log.append_line(line).inspect_err(|e| {
            tracing::error!(error = %e, "audit log write failed");
        })
    }
}

impl Guard for Guardrails {
    fn check(&self, ctx: &SignContext<'_>) -> Result<()> {
        match self.decide(ctx) {
            Ok(rule) => {
                if let Err(e) =
                    self.record_sign(ctx, Event::Sign, Some((Decision::Allow, &rule)), "sent")
                {
                    self.alert(AlertKind::AuditFailed, Some(ctx), ctx.key, &e.to_string());
                    return Err(match e {
                        e @ Error::AuditFailed(_) => e,
                        other => Error::AuditFailed(other.to_string()),
                    });
                }
                tracing::debug!(
                    key = ctx.key,
                    version = ctx.version,
                    exchange = ctx.exchange,
                    path = ctx.path,
                    "signature allowed"
                );
                self.anomaly.signed(ctx.key);
                Ok(())
            }
            Err(refusal) => {
                let (kind, outcome) = match refusal {
                    Refusal::Rate(_) => (AlertKind::RateLimited, "rate_limited"),
                    Refusal::Policy(_) => (AlertKind::Denied, "denied"),
                };
                if let Err(e) = self.record_sign(
                    ctx,
                    Event::Sign,
                    Some((Decision::Deny, refusal.rule())),
                    outcome,
                ) {
                    self.alert(AlertKind::AuditFailed, Some(ctx), ctx.key, &e.to_string());
                }
                tracing::warn!(
                    key = ctx.key,
                    version = ctx.version,
                    exchange = ctx.exchange,
                    method = ctx.method,
                    path = ctx.path,
                    rule = refusal.rule(),
                    "signature refused by guard rails"
                );
                self.alert(kind, Some(ctx), ctx.key, refusal.rule());
                self.anomaly.refused(ctx);
                Err(refusal.into_error(ctx))
            }
        }
    }

    fn signed(&self, ctx: &SignContext<'_>, outcome: Result<(), &Error>) {
        if let Err(e) = outcome {
            if let Err(e) = self.record_sign(ctx, Event::SignFailed, None, &e.to_string()) {
                self.alert(AlertKind::AuditFailed, Some(ctx), ctx.key, &e.to_string());
            }
        }
    }

    fn judges_withdrawals(&self) -> bool {
        true
    }

    fn lifecycle(&self, event: &LifecycleEvent) {
        let mut rec;
        match event {
            LifecycleEvent::Created { key, kind } => {
                rec = Record::new(Event::Created);
                rec.key = Some(key.clone());
                rec.kind = Some(*kind);
            }
            LifecycleEvent::RotationBegun { key, version } => {
                rec = Record::new(Event::RotationBegun);
                rec.key = Some(key.clone());
                rec.version = Some(*version);
            }
            LifecycleEvent::Promoted { key, version } => {
                rec = Record::new(Event::Promoted);
                rec.key = Some(key.clone());
                rec.version = Some(*version);
            }
            LifecycleEvent::Retired { key, versions } => {
                rec = Record::new(Event::Retired);
                rec.key = Some(key.clone());
                rec.versions = Some(versions.clone());
            }
            LifecycleEvent::Revoked { key, versions } => {
                rec = Record::new(Event::Revoked);
                rec.key = Some(key.clone());
                rec.versions = Some(versions.clone());
            }
            LifecycleEvent::LoginFailed { token, reason } => {
                tracing::error!(token = %token, reason = %reason, "token login failed");
                rec = Record::new(Event::LoginFailed);
                rec.token = Some(token.clone());
                rec.outcome = Some(reason.clone());
            }
        }
        let key = rec.key.clone().unwrap_or_default();
        let recorded = self.record(rec);
        if let (Ok(_), LifecycleEvent::LoginFailed { token, .. }) = (&recorded, event) {
            // (One that goes to the pending file instead is counted when it is recorded.)
            self.anomaly.logins_failed(Some(token), 1);
        }
        if let Err(e) = recorded {
            // A login failure usually means the token cannot MAC the line either: it waits in
            // the log's pending file for the next writer that logs in.
            if let LifecycleEvent::LoginFailed { token, reason } = event {
                match self.log.note_login_failure(token, reason) {
                    Ok(()) => return,
                    Err(pending) => {
                        tracing::error!(error = %pending, "cannot note the login failure either");
                    }
                }
            }
            self.alert(AlertKind::AuditFailed, None, &key, &e.to_string());
        }
    }
}
