//! The alert command (`[alerts] command`): a program run for each anomaly alert, with the alert
//! as one JSON object on stdin, on a thread of its own. The signing threads only queue the
//! alert (a bounded queue: when it is full the alert is dropped, and logged); the command's
//! failures and time-outs are logged, and never reach a signature.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::Alert;

/// Alerts waiting for the command; more are dropped (and logged).
const QUEUE: usize = 64;
/// How often a running command is polled for its exit.
const POLL: Duration = Duration::from_millis(10);

/// The queue to the thread that runs the command.
pub(super) struct AlertCommand {
    tx: SyncSender<Alert>,
}

impl AlertCommand {
    /// Starts the thread that runs `argv` (program first) for each alert, killing a run that
    /// takes longer than `timeout`. The thread ends when this is dropped.
    pub(super) fn start(argv: Vec<String>, timeout: Duration) -> AlertCommand {
        let (tx, rx) = mpsc::sync_channel::<Alert>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("hsm-custody-alert-command".into())
            .spawn(move || {
                let program = argv.first().cloned().unwrap_or_default();
                for alert in rx {
                    if let Err(e) = run(&argv, &alert, timeout) {
                        tracing::warn!(program = %program, kind = ?alert.kind, key = %alert.key,
                            error = %e, "the alert command failed");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the alert command's thread");
        }
        AlertCommand { tx }
    }

    /// Queues `alert` for the command; never blocks.
    pub(super) fn send(&self, alert: &Alert) {
        match self.tx.try_send(alert.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(kind = ?alert.kind, key = %alert.key,
                    "alert command queue full: alert not passed to the command");
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!(kind = ?alert.kind, key = %alert.key,
                    "alert command thread gone: alert not passed to the command");
            }
        }
    }
}

/// Runs the command once for `alert`.
fn run(argv: &[String], alert: &Alert, timeout: Duration) -> Result<(), String> {
    let mut json = serde_json::to_vec(alert).map_err(|e| format!("cannot encode: {e}"))?;
    json.push(b'\n');
    let (program, args) = argv.split_first().ok_or("no program given")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + timeout;
    // The alert is small (well under a pipe's buffer): the write does not wait for the reader.
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(&json))
        .transpose();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                return written
                    .map(|_| ())
                    .map_err(|e| format!("writing the alert: {e}"))
            }
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {} ms", timeout.as_millis()));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}
