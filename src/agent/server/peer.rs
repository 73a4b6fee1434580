//! Who is on the other end of a connection: uid, primary gid and pid from `SO_PEERCRED`, and the
//! supplementary groups from `/proc/<pid>/status`, read once, when the connection is accepted.
//!
//! The kernel records `SO_PEERCRED` at `connect()`; the supplementary groups are not in it
//! (`SO_PEERGROUPS` has no safe wrapper in rustix, and the library has no `unsafe`), so they
//! come from the process that has the peer's pid. That pid may have been reused if the
//! connecting process exited before the accept. The groups are taken only when
//! `/proc/<pid>/stat` gives the same start time before and after `/proc/<pid>/status` is read,
//! that start time is not later than the accept, and the status's effective uid and gid are
//! the ones `SO_PEERCRED` recorded. What remains: a process of the same effective uid and gid,
//! started between the peer's `connect()` and the accept after the peer exited and given the
//! same pid, would be credited with its own groups. Otherwise the connection keeps its uid and
//! primary gid, and every refusal says why its groups were not read.

use std::sync::Arc;

/// The peer of one connection.
#[derive(Clone, Debug)]
pub(super) struct Peer {
    pub(super) uid: u32,
    /// The primary (effective) gid from `SO_PEERCRED`.
    pub(super) gid: u32,
    pub(super) pid: i32,
    /// Supplementary groups, or why they could not be read.
    pub(super) groups: std::result::Result<Arc<[u32]>, Arc<str>>,
}

impl Peer {
    /// The peer of an accepted connection, its supplementary groups read now.
    pub(super) fn accepted(uid: u32, gid: u32, pid: i32) -> Peer {
        let groups = supplementary_groups(uid, gid, pid)
            .map(Arc::from)
            .map_err(Arc::from);
        if let Err(why) = &groups {
            tracing::warn!(uid, pid, why = %why, "peer's supplementary groups not read");
        }
        Peer {
            uid,
            gid,
            pid,
            groups,
        }
    }

    /// How the audit log names this client.
    pub(super) fn audit_name(&self) -> String {
        format!("uid={} pid={}", self.uid, self.pid)
    }

    /// The primary gid and the supplementary groups (empty if they were not read).
    pub(super) fn gids(&self) -> impl Iterator<Item = u32> + '_ {
        let extra: &[u32] = self.groups.as_deref().unwrap_or(&[]);
        std::iter::once(self.gid).chain(extra.iter().copied())
    }

    /// What an allow-list refusal says was checked: uid, primary gid, supplementary groups.
    pub(super) fn checked(&self) -> String {
        let groups = match &self.groups {
            Ok(g) if g.is_empty() => "none".to_owned(),
            Ok(g) => g.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            Err(why) => format!("not read: {why}"),
        };
        format!(
            "uid {} (primary gid {}, supplementary groups {groups}; pid {})",
            self.uid, self.gid, self.pid
        )
    }
}

/// The supplementary groups of process `pid`, if it is still the process that connected with
/// effective `uid` and `gid` (module docs); else why not.
pub(crate) fn supplementary_groups(
    uid: u32,
    gid: u32,
    pid: i32,
) -> std::result::Result<Vec<u32>, String> {
    if pid <= 0 {
        return Err("the kernel gave no pid for the peer (another pid namespace?)".into());
    }
    let now = boot_ticks();
    let started = start_ticks(pid)?;
    let status_path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&status_path).map_err(|e| {
        format!(
            "cannot read {status_path}: {e} (under systemd, ProtectProc=invisible hides other \
             users' processes: the shipped unit sets ProtectProc=default)"
        )
    })?;
    if start_ticks(pid)? != started || started > now {
        return Err(format!(
            "pid {pid} is now another process than the one that connected (pid reused)"
        ));
    }
    let ids = |field: &str| -> Option<Vec<u32>> {
        let line = status.lines().find_map(|l| l.strip_prefix(field))?;
        line.split_whitespace().map(|n| n.parse().ok()).collect()
    };
    let (uids, gids) = (ids("Uid:"), ids("Gid:"));
    // Real, effective, saved, file-system: SO_PEERCRED holds the effective ids.
    if uids.as_ref().and_then(|u| u.get(1)) != Some(&uid)
        || gids.as_ref().and_then(|g| g.get(1)) != Some(&gid)
    {
        return Err(format!(
            "{status_path} shows effective uid/gid other than {uid}/{gid} \
             (pid reused, or the peer changed ids since it connected)"
        ));
    }
    ids("Groups:").ok_or_else(|| format!("{status_path} has no readable `Groups:` line"))
}

/// Process `pid`'s start time, in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
fn start_ticks(pid: i32) -> std::result::Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold anything: count after it.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("{path} has no start time"))
}

/// Now, in the clock ticks of `/proc/<pid>/stat`'s start time (`CLOCK_BOOTTIME`).
fn boot_ticks() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let hz = rustix::param::clock_ticks_per_second();
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs * hz + nanos * hz / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_groups_are_read_and_a_wrong_uid_is_refused() {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let pid = i32::try_from(std::process::id()).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let expected: Vec<u32> = status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(supplementary_groups(uid, gid, pid).unwrap(), expected);
        let wrong = supplementary_groups(uid.wrapping_add(1), gid, pid).unwrap_err();
        assert!(wrong.contains("effective uid/gid"), "{wrong}");
        let gone = supplementary_groups(uid, gid, 0).unwrap_err();
        assert!(gone.contains("no pid"), "{gone}");
        let started = start_ticks(pid).unwrap();
        assert!(started <= boot_ticks(), "{started} > {}", boot_ticks());
    }

    #[test]
    fn a_refusal_names_what_was_checked() {
        let peer = Peer {
            uid: 1001,
            gid: 1001,
            pid: 42,
            groups: Ok(Arc::from(vec![1500, 1600])),
        };
        assert_eq!(
            peer.checked(),
            "uid 1001 (primary gid 1001, supplementary groups 1500,1600; pid 42)"
        );
        assert_eq!(peer.gids().collect::<Vec<_>>(), [1001, 1500, 1600]);
        let unread = Peer {
            groups: Err(Arc::from("pid reused")),
            ..peer
        };
        assert!(unread.checked().contains("not read: pid reused"));
        assert_eq!(unread.gids().collect::<Vec<_>>(), [1001]);
    }
}
