//! Anomaly alerts: traffic spikes per key, repeated failed logins, repeated refusals of one
//! client.
//!
//! The signing path pays for the spike detector only: an allowed signature adds one to its
//! key's counter for the current minute (a read lock on the per-key map, shared by all keys
//! and never held across anything but the lookup, and one relaxed atomic increment; no
//! allocation, no system call). A background thread (every `TICK`) moves the minute on, computes
//! each key's median per minute over the trailing hour when the minute rolls over, and compares
//! the current minute's count with the threshold. Refusals and failed logins are rare; they are
//! counted in a window under a lock where they happen.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::alert::{Alert, AlertKind, Sinks};
use crate::config::AlertsSection;
use crate::error::{Error, Result};
use crate::guard::SignContext;

/// How often the background thread checks the counts.
const TICK: Duration = Duration::from_millis(500);
/// Minutes of history the median is taken over.
const TRAILING_MINUTES: u64 = 60;
/// A key needs this many minutes of history before a spike can be told from its normal rate.
const MIN_HISTORY_MINUTES: u64 = 5;
/// Per-key minute counters kept (a ring; more than [`TRAILING_MINUTES`]).
const RING: usize = 64;
/// Clients whose refusals are tracked before the idle ones are forgotten.
const MAX_CLIENTS: usize = 4096;

const DEFAULT_SPIKE_FACTOR: u32 = 10;
const DEFAULT_SPIKE_MIN: u64 = 100;
const DEFAULT_FAILED_LOGINS: u32 = 3;
const DEFAULT_REFUSALS: u32 = 20;
const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Thresholds of the anomaly alerts (`[alerts]`); a 0 turns a detector off.
///
/// A *traffic spike*: a key's allowed signatures in the current minute exceed `spike_factor`
/// times its median per minute over the trailing hour (the minutes since the guard rails first
/// saw the key, once there are 5 of them) and reach
/// `spike_min_per_minute`; at most one alert per key per minute. *Failed logins*:
/// `failed_logins` within `window`. *Repeated refusals*: `refusals_per_client` policy or rate
/// refusals of one client (the agent names it: `uid=… pid=…`) within `window`. After an alert
/// the window's count starts again.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertConfig {
    /// See the type's documentation. Default 10.
    pub spike_factor: u32,
    /// Default 100.
    pub spike_min_per_minute: u64,
    /// Default 3.
    pub failed_logins: u32,
    /// Default 20.
    pub refusals_per_client: u32,
    /// Default 300 s.
    pub window: Duration,
    /// The program and its arguments run for each anomaly alert (the alert as one JSON object
    /// on stdin), on a thread of its own; `None`: none.
    pub command: Option<Vec<String>>,
    /// How long the command may run before it is killed. Default 5 s.
    pub command_timeout: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            spike_factor: DEFAULT_SPIKE_FACTOR,
            spike_min_per_minute: DEFAULT_SPIKE_MIN,
            failed_logins: DEFAULT_FAILED_LOGINS,
            refusals_per_client: DEFAULT_REFUSALS,
            window: DEFAULT_WINDOW,
            command: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

impl AlertConfig {
    /// Every detector off, no command.
    pub fn off() -> Self {
        AlertConfig {
            spike_factor: 0,
            failed_logins: 0,
            refusals_per_client: 0,
            ..AlertConfig::default()
        }
    }

    /// The thresholds of an `[alerts]` section, over the defaults.
    ///
    /// # Errors
    /// [`Error::Config`]: an empty `command`, or `window_seconds` of 0.
    pub fn from_section(section: &AlertsSection) -> Result<AlertConfig> {
        let mut c = AlertConfig::default();
        if let Some(f) = section.spike_factor {
            c.spike_factor = f;
        }
        if let Some(n) = section.spike_min_per_minute {
            c.spike_min_per_minute = n;
        }
        if let Some(n) = section.failed_logins {
            c.failed_logins = n;
        }
        if let Some(n) = section.refusals_per_client {
            c.refusals_per_client = n;
        }
        if let Some(s) = section.window_seconds {
            if s == 0 {
                return Err(Error::Config(
                    "[alerts] window_seconds must be at least 1".into(),
                ));
            }
            c.window = Duration::from_secs(s);
        }
        if let Some(argv) = &section.command {
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err(Error::Config(
                    "[alerts] command names no program: give [\"/path/to/program\", \"arg\", ...]"
                        .into(),
                ));
            }
            c.command = Some(argv.clone());
        }
        if let Some(ms) = section.command_timeout_ms {
            c.command_timeout = Duration::from_millis(ms);
        }
        Ok(c)
    }
}

/// The detectors of one [`super::Guardrails`].
pub(super) struct Anomaly {
    spike: Option<Arc<Spike>>,
    failed_logins: usize,
    refusals_per_client: usize,
    window: Duration,
    logins: Mutex<VecDeque<Instant>>,
    /// Failed logins the audit log's writer recorded from its pending file, counted by the
    /// background thread (the writer tells them under its lock: no callback runs there).
    noted_logins: AtomicUsize,
    refusals: Mutex<HashMap<String, VecDeque<Instant>>>,
    sinks: Arc<Sinks>,
}

impl Anomaly {
    /// The detectors `config` turns on; their background thread runs while they live.
    pub(super) fn start(config: &AlertConfig, sinks: Arc<Sinks>) -> Arc<Anomaly> {
        let spike = (config.spike_factor > 0).then(|| {
            Arc::new(Spike {
                factor: u64::from(config.spike_factor),
                min: config.spike_min_per_minute,
                minute: AtomicU64::new(wall_minute()),
                manual: AtomicBool::new(false),
                keys: RwLock::new(HashMap::default()),
                eval: Mutex::new(()),
                sinks: sinks.clone(),
            })
        });
        let anomaly = Arc::new(Anomaly {
            spike,
            failed_logins: config.failed_logins as usize,
            refusals_per_client: config.refusals_per_client as usize,
            window: config.window,
            logins: Mutex::new(VecDeque::new()),
            noted_logins: AtomicUsize::new(0),
            refusals: Mutex::new(HashMap::new()),
            sinks,
        });
        if anomaly.spike.is_some() || anomaly.failed_logins > 0 {
            let weak = Arc::downgrade(&anomaly);
            let spawned = std::thread::Builder::new()
                .name("hsm-custody-anomaly".into())
                .spawn(move || ticker(&weak));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the anomaly detectors' thread");
            }
        }
        anomaly
    }

    /// `count` failed logins noted by other processes were recorded in the log: counted on
    /// the background thread's next turn.
    pub(super) fn logins_noted(&self, count: usize) {
        self.noted_logins.fetch_add(count, Ordering::Relaxed);
    }

    /// The background thread's turn.
    fn tick(&self) {
        if let Some(spike) = &self.spike {
            spike.tick();
        }
        let noted = self.noted_logins.swap(0, Ordering::Relaxed);
        self.logins_failed(None, noted);
    }

    /// An allowed signature of `key` (the signing path: see the module's documentation).
    #[inline]
    pub(super) fn signed(&self, key: &str) {
        if let Some(spike) = &self.spike {
            spike.count(key);
        }
    }

    /// `count` failed logins on token `token` (`None`: noted by other processes).
    pub(super) fn logins_failed(&self, token: Option<&str>, count: usize) {
        if self.failed_logins == 0 || count == 0 {
            return;
        }
        let now = Instant::now();
        let seen = {
            let Ok(mut q) = self.logins.lock() else {
                return;
            };
            q.extend(std::iter::repeat_n(now, count));
            prune(&mut q, now, self.window);
            if q.len() < self.failed_logins {
                return;
            }
            let seen = q.len();
            q.clear();
            seen
        };
        let mut alert = Alert::new(
            AlertKind::FailedLogins,
            None,
            "",
            format!(
                "failed-logins: {seen} failed logins within {} s (threshold {})",
                self.window.as_secs(),
                self.failed_logins
            ),
        );
        alert.token = token.map(str::to_owned);
        alert.count = Some(seen as u64);
        self.sinks.deliver(alert);
    }

    /// A refusal (policy or rate) of the signature `ctx` describes.
    pub(super) fn refused(&self, ctx: &SignContext<'_>) {
        let Some(client) = ctx.client else { return };
        if self.refusals_per_client == 0 {
            return;
        }
        let now = Instant::now();
        let seen = {
            let Ok(mut map) = self.refusals.lock() else {
                return;
            };
            if map.len() >= MAX_CLIENTS && !map.contains_key(client) {
                map.retain(|_, q| {
                    prune(q, now, self.window);
                    !q.is_empty()
                });
            }
            let q = map.entry(client.to_owned()).or_default();
            q.push_back(now);
            prune(q, now, self.window);
            if q.len() < self.refusals_per_client {
                return;
            }
            let seen = q.len();
            map.remove(client);
            seen
        };
        let mut alert = Alert::new(
            AlertKind::RepeatedRefusals,
            Some(ctx),
            ctx.key,
            format!(
                "repeated-refusals: {seen} refusals of client `{client}` within {} s \
                 (threshold {}; the last for key `{}`)",
                self.window.as_secs(),
                self.refusals_per_client,
                ctx.key
            ),
        );
        alert.count = Some(seen as u64);
        self.sinks.deliver(alert);
    }

    /// Test hook: the spike detector's clock stops following the wall clock and moves on by one
    /// minute now (a rollover, as at a minute's end).
    #[cfg(feature = "test-util")]
    pub(super) fn advance_minute(&self) {
        if let Some(spike) = &self.spike {
            spike.manual.store(true, Ordering::SeqCst);
            let _eval = spike.eval.lock();
            let old = spike.minute.load(Ordering::Acquire);
            spike.rollover(old, old + 1);
        }
    }

    /// Test hook: checks the counts now, as the background thread does every half second.
    #[cfg(feature = "test-util")]
    pub(super) fn check_now(&self) {
        if let Some(spike) = &self.spike {
            spike.tick();
        }
    }
}

/// Drops the instants older than `window`.
fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > window)
    {
        q.pop_front();
    }
}

/// The traffic spike detector.
struct Spike {
    factor: u64,
    min: u64,
    /// The current minute (minutes since the Unix epoch, or the test clock's).
    minute: AtomicU64,
    /// The test clock is in use (`advance_minute`).
    manual: AtomicBool,
    keys: RwLock<HashMap<String, Arc<KeyRate>, foldhash::fast::RandomState>>,
    /// Held by rollovers and checks (never by the signing path).
    eval: Mutex<()>,
    sinks: Arc<Sinks>,
}

/// One key's signatures per minute.
struct KeyRate {
    /// Minute `m`'s count is at `m % RING`.
    buckets: [AtomicU64; RING],
    /// The minute the key was first seen.
    first_minute: u64,
    /// The count at which the current minute is a spike (`u64::MAX`: not enough history).
    threshold: AtomicU64,
    /// The trailing median the threshold was computed from.
    median: AtomicU64,
    /// The last minute an alert was raised for (`u64::MAX`: none).
    alerted: AtomicU64,
}

fn slot(minute: u64) -> usize {
    (minute % RING as u64) as usize
}

fn wall_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn ticker(anomaly: &Weak<Anomaly>) {
    loop {
        std::thread::sleep(TICK);
        let Some(anomaly) = anomaly.upgrade() else {
            return;
        };
        anomaly.tick();
    }
}

impl Spike {
    /// The signing path: one increment of the key's current minute.
    #[inline]
    fn count(&self, key: &str) {
        let minute = self.minute.load(Ordering::Acquire);
        if let Ok(keys) = self.keys.read() {
            if let Some(rate) = keys.get(key) {
                rate.buckets[slot(minute)].fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // A key's first signature: its counters are made once.
        if let Ok(mut keys) = self.keys.write() {
            let rate = keys.entry(key.to_owned()).or_insert_with(|| {
                Arc::new(KeyRate {
                    buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                    first_minute: minute,
                    threshold: AtomicU64::new(u64::MAX),
                    median: AtomicU64::new(0),
                    alerted: AtomicU64::new(u64::MAX),
                })
            });
            rate.buckets[slot(minute)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the minute on (wall clock) and raises the alerts due.
    fn tick(&self) {
        let Ok(_eval) = self.eval.lock() else { return };
        let old = self.minute.load(Ordering::Acquire);
        if !self.manual.load(Ordering::SeqCst) {
            let now = wall_minute();
            if now > old {
                self.rollover(old, now);
            }
        }
        let minute = self.minute.load(Ordering::Acquire);
        let mut alerts = Vec::new();
        if let Ok(keys) = self.keys.read() {
            for (name, rate) in keys.iter() {
                let count = rate.buckets[slot(minute)].load(Ordering::Relaxed);
                if count >= rate.threshold.load(Ordering::Relaxed)
                    && rate.alerted.swap(minute, Ordering::Relaxed) != minute
                {
                    let median = rate.median.load(Ordering::Relaxed);
                    let mut alert = Alert::new(
                        AlertKind::TrafficSpike,
                        None,
                        name,
                        format!(
                            "traffic-spike: {count} signatures this minute, over {} x the \
                             trailing median of {median}/min (and at least {})",
                            self.factor, self.min
                        ),
                    );
                    alert.count = Some(count);
                    alerts.push(alert);
                }
            }
        }
        for alert in alerts {
            self.sinks.deliver(alert);
        }
    }

    /// From minute `old` to `new` (caller holds `eval`): clears the counters of the minutes
    /// entered (their slots held counts from more than an hour ago), publishes the minute, and
    /// sets each key's threshold from its trailing median.
    fn rollover(&self, old: u64, new: u64) {
        let Ok(keys) = self.keys.read() else { return };
        let entered = (new - old).min(RING as u64);
        for rate in keys.values() {
            for m in (new + 1 - entered)..=new {
                rate.buckets[slot(m)].store(0, Ordering::Relaxed);
            }
        }
        self.minute.store(new, Ordering::Release);
        for rate in keys.values() {
            let from = new.saturating_sub(TRAILING_MINUTES).max(rate.first_minute);
            let mut counts: Vec<u64> = (from..new)
                .map(|m| rate.buckets[slot(m)].load(Ordering::Relaxed))
                .collect();
            if (counts.len() as u64) < MIN_HISTORY_MINUTES {
                rate.threshold.store(u64::MAX, Ordering::Relaxed);
                continue;
            }
            counts.sort_unstable();
            let median = counts[counts.len() / 2];
            rate.median.store(median, Ordering::Relaxed);
            let threshold = self
                .factor
                .saturating_mul(median)
                .saturating_add(1)
                .max(self.min);
            rate.threshold.store(threshold, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spike(factor: u64, min: u64) -> (Spike, std::sync::mpsc::Receiver<Alert>) {
        let sinks = Arc::new(Sinks::default());
        let rx = sinks.channel();
        let spike = Spike {
            factor,
            min,
            minute: AtomicU64::new(1000),
            manual: AtomicBool::new(true),
            keys: RwLock::new(HashMap::default()),
            eval: Mutex::new(()),
            sinks,
        };
        (spike, rx)
    }

    fn next_minute(s: &Spike) {
        let m = s.minute.load(Ordering::SeqCst);
        s.rollover(m, m + 1);
    }

    #[test]
    fn a_spike_over_the_trailing_median_alerts_once_per_minute() {
        let (s, rx) = spike(3, 10);
        for _ in 0..20 {
            for _ in 0..5 {
                s.count("k");
            }
            s.tick();
            next_minute(&s);
        }
        assert!(rx.try_recv().is_err(), "a steady rate is no spike");
        for _ in 0..15 {
            s.count("k");
        }
        s.tick();
        assert!(rx.try_recv().is_err(), "15 is not over 3 x 5");
        s.count("k");
        s.tick();
        let a = rx.try_recv().expect("16 > 3 x 5");
        assert_eq!(
            (a.kind, a.key.as_str(), a.count),
            (AlertKind::TrafficSpike, "k", Some(16))
        );
        for _ in 0..50 {
            s.count("k");
        }
        s.tick();
        assert!(rx.try_recv().is_err(), "once per minute");
        // The next minute's counter starts at zero; 80 more is another spike (the median is
        // still 5).
        next_minute(&s);
        s.tick();
        assert!(rx.try_recv().is_err());
        for _ in 0..80 {
            s.count("k");
        }
        s.tick();
        assert_eq!(rx.try_recv().unwrap().count, Some(80));
    }

    #[test]
    fn the_minimum_count_and_the_history_gate_the_alert() {
        let (s, rx) = spike(2, 50);
        // Too little history: no threshold yet.
        for _ in 0..100 {
            s.count("k");
        }
        s.tick();
        assert!(rx.try_recv().is_err());
        for _ in 0..MIN_HISTORY_MINUTES {
            next_minute(&s);
        }
        // History of zeros and one busy minute: median 0, so the minimum decides.
        for _ in 0..49 {
            s.count("k");
        }
        s.tick();
        assert!(rx.try_recv().is_err(), "under the minimum");
        s.count("k");
        s.tick();
        assert_eq!(rx.try_recv().unwrap().count, Some(50));
        // A skipped hour clears every counter.
        let m = s.minute.load(Ordering::SeqCst);
        s.rollover(m, m + 200);
        let rate = s.keys.read().unwrap()["k"].clone();
        assert!(rate.buckets.iter().all(|b| b.load(Ordering::SeqCst) == 0));
    }

    #[test]
    fn refusals_and_failed_logins_count_in_a_window() {
        let sinks = Arc::new(Sinks::default());
        let rx = sinks.channel();
        let config = AlertConfig {
            spike_factor: 0,
            failed_logins: 2,
            refusals_per_client: 3,
            ..AlertConfig::default()
        };
        let a = Anomaly::start(&config, sinks);
        let ctx = |client| SignContext {
            key: "k",
            version: 1,
            exchange: None,
            method: None,
            path: None,
            client,
            reach: None,
            message: b"",
        };
        a.refused(&ctx(None));
        a.refused(&ctx(Some("uid=1 pid=2")));
        a.refused(&ctx(Some("uid=1 pid=2")));
        a.refused(&ctx(Some("uid=1 pid=3")));
        a.refused(&ctx(None));
        assert!(rx.try_recv().is_err());
        a.refused(&ctx(Some("uid=1 pid=2")));
        let alert = rx.try_recv().unwrap();
        assert_eq!(alert.kind, AlertKind::RepeatedRefusals);
        assert_eq!(alert.client.as_deref(), Some("uid=1 pid=2"));
        assert_eq!(alert.count, Some(3));
        a.logins_failed(Some("t"), 1);
        assert!(rx.try_recv().is_err());
        a.logins_failed(None, 1);
        let alert = rx.try_recv().unwrap();
        assert_eq!(
            (alert.kind, alert.count),
            (AlertKind::FailedLogins, Some(2))
        );
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["kind"], "failed_logins");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
    }
}
