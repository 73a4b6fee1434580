//! Who is on the other end of a loopback TCP connection, from the kernel: the socket's owner uid
//! in `/proc/net/tcp` (or `tcp6`), and the process holding the socket (its pid and effective
//! gid) from `/proc/<pid>/fd`. Nothing the client sends is trusted for this.

use std::net::{IpAddr, SocketAddr};

/// A client of the gateway, as the kernel knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    pub uid: u32,
    /// The holding process's effective gid, when it could be found.
    pub gid: Option<u32>,
    /// The holding process's supplementary groups (empty when it could not be found).
    pub groups: Vec<u32>,
    pub pid: Option<u32>,
}

impl Peer {
    /// How the audit log names this client.
    pub(crate) fn audit_name(&self) -> String {
        match self.pid {
            Some(pid) => format!("gateway uid={} pid={pid}", self.uid),
            None => format!("gateway uid={}", self.uid),
        }
    }
}

/// The peer of the TCP connection from `peer` to `local` (both on this host).
pub(crate) fn tcp_peer(peer: SocketAddr, local: SocketAddr) -> Option<Peer> {
    let table = match peer.ip() {
        IpAddr::V4(_) => "/proc/net/tcp",
        IpAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    let (uid, inode) = find_socket(&text, peer, local)?;
    let (pid, gid, groups) = holder(inode).map_or((None, None, Vec::new()), |(p, g, groups)| {
        (Some(p), g, groups)
    });
    Some(Peer {
        uid,
        gid,
        groups,
        pid,
    })
}

/// `(uid, inode)` of the socket whose local end is `peer` and remote end `local`.
fn find_socket(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<(u32, u64)> {
    let want_local = encode(peer);
    let want_remote = encode(local);
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 {
            return None;
        }
        if !cols[1].eq_ignore_ascii_case(&want_local) || !cols[2].eq_ignore_ascii_case(&want_remote)
        {
            return None;
        }
        Some((cols[7].parse().ok()?, cols[9].parse().ok()?))
    })
}

/// An address as `/proc/net/tcp*` prints it: each 32-bit word of the address in host byte
/// order (little-endian here), then the port.
fn encode(addr: SocketAddr) -> String {
    let words: Vec<u32> = match addr.ip() {
        IpAddr::V4(v4) => vec![u32::from_ne_bytes(v4.octets())],
        IpAddr::V6(v6) => v6
            .octets()
            .chunks(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    let mut out: String = words.iter().map(|w| format!("{w:08X}")).collect();
    out.push_str(&format!(":{:04X}", addr.port()));
    out
}

/// The pid holding socket `inode`, that process's effective gid and its supplementary groups
/// (read together, from one read of its `status`, while it holds the socket).
fn holder(inode: u64) -> Option<(u32, Option<u32>, Vec<u32>)> {
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
        });
        if holds {
            let status = std::fs::read_to_string(entry.path().join("status")).ok();
            let gid = status.as_deref().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Gid:"))
                    .and_then(|g| g.split_whitespace().nth(1))
                    .and_then(|g| g.parse().ok())
            });
            let groups = status
                .as_deref()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Groups:")))
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            return Some((pid, gid, groups));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_encoded_as_the_kernel_prints_them() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(encode(a), "0100007F:1F90");
        let six: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(encode(six), "00000000000000000000000001000000:0050");
    }

    #[test]
    fn a_connection_of_this_process_is_found_with_its_uid_and_pid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let found = tcp_peer(peer, local).expect("the client socket is in /proc/net/tcp");
        assert_eq!(found.uid, rustix::process::geteuid().as_raw());
        assert_eq!(found.pid, Some(std::process::id()));
        assert_eq!(found.gid, Some(rustix::process::getegid().as_raw()));
    }
}
