//! A child process's stderr, read on a thread into a shared log, and the wait for the line
//! that says the child is ready (the integration tests and the benches start agents this way).

use std::io::{BufRead as _, BufReader};
use std::process::Child;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Takes `child`'s piped stderr and reads it on a thread, line by line, into the returned log,
/// and waits up to `timeout` for a line that contains `marker`. When none comes, the child is
/// killed and the error is its stderr so far (the reader is given a moment for the last lines).
pub fn wait_for_line(
    child: &mut Child,
    marker: &'static str,
    timeout: Duration,
) -> Result<Arc<Mutex<String>>, String> {
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let pipe = child.stderr.take().expect("the child's stderr is piped");
    let lines = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if line.contains(marker) {
                let _ = ready_tx.send(());
            }
            let mut all = lines.lock().unwrap_or_else(|e| e.into_inner());
            all.push_str(&line);
            all.push('\n');
        }
    });
    if ready_rx.recv_timeout(timeout).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(50));
        let all = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        return Err(all);
    }
    Ok(log)
}
