//! Opening a log: reads the active file and its heads (file and token) and finds where the chain
//! stands, or why it does not continue.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::time::Instant;

use super::super::epoch::{self, Unreadable};
use super::super::head::Head;
use super::super::journal;
use super::super::token_head;
use super::super::{
    chain_id, decode_mac, parse_line, same_mac, AuditConfig, Event, TokenMac, MAC_LEN,
};
use super::{crash_window, open_append, State, WHAT_TO_DO};
use crate::error::{Error, Result};
use crate::keys::Vault;

/// Reads the active file and finds where the chain stands. The second value says whether a
/// new file must be started (with the given `prev_file` and chain id).
#[allow(clippy::type_complexity)]
pub(super) fn recover(
    config: &AuditConfig,
    mac: &TokenMac,
    vault: &Vault,
    active_name: &str,
    path_text: &str,
) -> Result<(State, Option<(Option<String>, Option<String>)>)> {
    let head = Head::read(&config.head, mac)?;
    let path = &config.path;
    let io = |source| Error::Io {
        what: "audit log",
        path: path.to_owned(),
        source,
    };
    let mut data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < data.len() {
        tracing::warn!(file = %path.display(), bytes = data.len() - complete,
            "audit log ends in a partial line (crash during a write); dropping it");
        let f = OpenOptions::new().write(true).open(path).map_err(io)?;
        f.set_len(complete as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
        data.truncate(complete);
    }
    // Lines a crash left staged in the journal: those that continue the file's last line go
    // into the file now, and are checked below like every line after the head.
    let last_mac = data[..complete.saturating_sub(1)]
        .rsplit(|b| *b == b'\n')
        .next()
        .filter(|l| !l.is_empty())
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| parse_line(l).ok())
        .map(|(_, _, m)| m);
    if let Some(last) = last_mac {
        let more = journal::lines_after(path, &last)?;
        if more.lines > 0 {
            tracing::warn!(file = %path.display(), lines = more.lines,
                "audit log: moving lines a crash left in its journal into it");
            let mut f = OpenOptions::new().append(true).open(path).map_err(io)?;
            f.write_all(&more.text).map_err(io)?;
            f.sync_data().map_err(io)?;
            data.extend_from_slice(&more.text);
        }
    }
    let complete = data.len();
    let text = std::str::from_utf8(&data[..complete])
        .map_err(|_| Error::AuditFailed(format!("`{}` is not UTF-8", path.display())))?;
    let lines: Vec<&str> = text.lines().collect();
    let fresh = |seq, prev, file, chain| State {
        file,
        seq,
        prev,
        size: complete as u64,
        file_first_seq: seq + 1,
        last_sync: Instant::now(),
        broken: None,
        chain,
        durable: (seq, prev),
        headed: seq,
        wake_pending: false,
        epoch: None,
        next_epoch: None,
        epoch_lines: 0,
        buf: Vec::with_capacity(512),
        journal: None,
        staged: Vec::with_capacity(64 * 1024),
        spare: Vec::with_capacity(64 * 1024),
        last_line: None,
        // It starts with its long tick.
        flusher_asleep: true,
    };
    if lines.is_empty() {
        let (seq, prev, start) = match head {
            None => {
                // Log and head both gone: the token may still know the chain.
                if let Some(t) = token_head::for_path(vault, path_text)? {
                    return Err(Error::AuditFailed(format!(
                        "`{}` and its chain head are missing, but the token records line {} \
                         of this log's chain: the log was deleted or replaced; {WHAT_TO_DO}",
                        path.display(),
                        t.seq
                    )));
                }
                (0, [0u8; MAC_LEN], (None, None))
            }
            Some(h) if h.file != active_name => (h.seq, h.mac, (Some(h.file), h.chain)),
            Some(h) => {
                return Err(Error::AuditFailed(format!(
                    "`{}` is empty or missing but its chain head records line {}; {WHAT_TO_DO}",
                    path.display(),
                    h.seq
                )))
            }
        };
        let file = open_append(config, true)?;
        return Ok((fresh(seq, prev, file, String::new()), Some(start)));
    }
    let broken = |line: usize, why: String| {
        Error::AuditFailed(format!(
            "`{}` line {line}: {why}; the log does not continue its chain: {WHAT_TO_DO}",
            path.display()
        ))
    };
    let parse = |i: usize| parse_line(lines[i]).map_err(|why| broken(i + 1, why));
    let unreadable = |e: Unreadable, line: usize| match e {
        Unreadable::Malformed(why) => broken(line, why),
        Unreadable::Token(e) => e,
    };
    let (first, _, first_mac) = parse(0)?;
    let chain = chain_id(&first, &first_mac);
    let Some(head) = head else {
        return Err(broken(
            lines.len(),
            format!(
                "its chain head `{}` is missing, so lines cut off its end could not be \
                 detected",
                config.head.display()
            ),
        ));
    };
    let (start, mut prev, mut seq) = if head.file == active_name {
        let found = (0..lines.len())
            .rev()
            .map(|i| parse(i).map(|p| (i, p)))
            .find(|r| {
                r.as_ref()
                    .map_or(true, |(_, (rec, _, _))| rec.seq <= head.seq)
            });
        match found {
            Some(Ok((i, (rec, _, m)))) if rec.seq == head.seq && same_mac(&m, &head.mac) => {
                (i + 1, head.mac, head.seq)
            }
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(broken(
                    lines.len(),
                    format!(
                        "the chain head records line {} which is not in the file (tail \
                         truncated or replaced)",
                        head.seq
                    ),
                ))
            }
        }
    } else {
        // A crash right after a rotation: the head still names the rotated file, and this
        // file must start where it ends.
        let prev = first
            .prev_mac
            .as_deref()
            .and_then(decode_mac)
            .ok_or_else(|| broken(1, "`chain_start` has no valid `prev_mac`".into()))?;
        if first.event != Event::ChainStart
            || first.seq != head.seq + 1
            || !same_mac(&prev, &head.mac)
        {
            return Err(broken(
                1,
                format!(
                    "the chain head records line {} of `{}`, which this file does not continue",
                    head.seq, head.file
                ),
            ));
        }
        (0, prev, head.seq)
    };
    // The lines after the head are checked as `audit verify` would, starting with the epoch
    // in force at the head (the last line at or before it that starts one).
    let mut epochs = epoch::Reader::default();
    for j in (1..start).rev() {
        if let Some(field) = parse(j)?.0.epoch {
            epochs
                .key_for(mac, (j + 1) as u64, Some(&field))
                .map_err(|e| unreadable(e, j + 1))?;
            break;
        }
    }
    for (i, line) in lines.iter().enumerate().skip(start) {
        let (rec, body, m) = parse_line(line).map_err(|why| broken(i + 1, why))?;
        if rec.seq != seq + 1 {
            return Err(broken(
                i + 1,
                format!("expected line {}, found {}", seq + 1, rec.seq),
            ));
        }
        let key = epochs
            .key_for(mac, (i + 1) as u64, rec.epoch.as_deref())
            .map_err(|e| unreadable(e, i + 1))?;
        if !same_mac(&epoch::line_mac(mac, key, &prev, &body)?, &m) {
            return Err(broken(i + 1, "MAC does not match".into()));
        }
        prev = m;
        seq = rec.seq;
    }
    let behind = seq - head.seq;
    if behind > crash_window(config.fsync) {
        return Err(broken(
            lines.len(),
            format!(
                "the chain head records line {} but the file goes on to line {seq}: the head is \
                 {behind} lines behind, more than a crash leaves with fsync = {:?} (an old head \
                 was put back?)",
                head.seq, config.fsync
            ),
        ));
    }
    if let Some(t) = token_head::read(vault, &chain)? {
        let holds = if t.seq > seq {
            false
        } else if t.seq >= first.seq {
            let (rec, _, m) = parse((t.seq - first.seq) as usize)?;
            rec.seq == t.seq && same_mac(&m, &t.mac)
        } else {
            true // in a rotated file: `audit verify` checks it
        };
        if !holds {
            return Err(broken(
                lines.len(),
                format!(
                    "the token's chain head records line {} which this log does not hold (it \
                     ends at line {seq}): the log and its head file were rolled back",
                    t.seq
                ),
            ));
        }
    }
    let file = open_append(config, false)?;
    let mut state = fresh(seq, prev, file, chain);
    state.file_first_seq = first.seq;
    // Lines past the head are on disk already (a crash left them): the head catches up when
    // the log opens.
    state.headed = head.seq;
    Ok((state, None))
}
