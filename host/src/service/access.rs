//! Who is on the other end of the socket (SO_PEERCRED, plus the user's groups from the system
//! user database, or as the kernel recorded them at connect: `[service] peer_groups`) and what the configured rules let them do. Everything that uses a private or
//! secret key is denied unless a rule allows it.

use crate::audit::Caller;
use crate::config::{AllowRule, Operation};
pub use crate::request::Target;

/// The peer of one connection, as the kernel reports it when the connection is accepted.
#[derive(Clone, Debug)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The supplementary groups the kernel recorded for the peer when it connected
    /// (SO_PEERGROUPS), if it could say.
    pub socket_groups: Option<Vec<u32>>,
    /// Its identity, looked up in the user database once per connection (the first request
    /// that needs it): group changes apply to the peer's next connection.
    resolved: std::sync::Arc<std::sync::OnceLock<Identity>>,
}

/// Where a peer's groups come from for `groups` rules (`[service] peer_groups`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupSource {
    /// The user database now (`getgrouplist` of the peer's user): what the administrator
    /// configured, whatever groups the connecting process kept or dropped. The default.
    #[default]
    Database,
    /// The kernel's record of the connecting process (SO_PEERGROUPS, taken at connect, so no
    /// process id is looked up and none can be reused): a process that dropped its groups
    /// has none, and one started before its user left a group keeps it until it exits.
    Socket,
}

/// The peer's supplementary groups as the kernel recorded them at connect (SO_PEERGROUPS).
///
/// # Errors
/// The kernel does not say (an old kernel, or not a Unix socket).
pub fn peer_groups(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    let mut groups: Vec<nix::libc::gid_t> = vec![0; 64];
    loop {
        let mut len = nix::libc::socklen_t::try_from(groups.len() * std::mem::size_of::<nix::libc::gid_t>())
            .map_err(|_| std::io::Error::other("too many groups"))?;
        // SAFETY: the buffer is `len` bytes of gid_t, and the kernel writes at most `len`.
        let rc = unsafe {
            nix::libc::getsockopt(
                fd.as_raw_fd(),
                nix::libc::SOL_SOCKET,
                nix::libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        let needed = len as usize / std::mem::size_of::<nix::libc::gid_t>();
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let e = std::io::Error::last_os_error();
        // ERANGE: the buffer was short, and `len` now says how long it must be (NGROUPS_MAX
        // is 65536, so this ends).
        if e.raw_os_error() == Some(nix::libc::ERANGE) && needed > groups.len() && needed <= 65_536 {
            groups.resize(needed, 0);
            continue;
        }
        return Err(e);
    }
}

/// No credentials could be read: a peer no rule names.
const NOBODY: u32 = u32::MAX;

impl Peer {
    /// A peer whose credentials could not be read: no rule names it.
    pub fn nobody() -> Peer {
        Peer::new(NOBODY, NOBODY, None)
    }

    pub fn new(uid: u32, gid: u32, pid: Option<i32>) -> Peer {
        Peer { uid, gid, pid, socket_groups: None, resolved: std::sync::Arc::default() }
    }

    /// With the groups the kernel recorded at connect.
    #[must_use]
    pub fn with_socket_groups(mut self, groups: Option<Vec<u32>>) -> Peer {
        self.socket_groups = groups;
        self
    }
}

/// A peer resolved against the user database: its name and every group it is in (SO_PEERCRED
/// carries only the primary gid).
#[derive(Clone, Debug)]
pub struct Identity {
    pub peer: Peer,
    pub user: Option<String>,
    /// (gid, name) of the primary group and every supplementary group.
    pub groups: Vec<(u32, Option<String>)>,
}

impl Identity {
    /// The peer's identity: its user name from the user database, its groups from `source`
    /// (once per connection).
    pub fn resolve(peer: &Peer, source: GroupSource) -> Identity {
        peer.resolved.get_or_init(|| Identity::look_up(peer, source)).clone()
    }

    fn look_up(peer: &Peer, source: GroupSource) -> Identity {
        use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
        let user = User::from_uid(Uid::from_raw(peer.uid)).ok().flatten();
        let mut gids = vec![peer.gid];
        match source {
            // No record from the kernel: the primary group alone, never the database's list.
            GroupSource::Socket => gids.extend(peer.socket_groups.iter().flatten()),
            GroupSource::Database => {
                if let Some(u) = &user
                    && let Ok(name) = std::ffi::CString::new(u.name.clone())
                    && let Ok(list) = getgrouplist(&name, u.gid)
                {
                    gids.extend(list.into_iter().map(Gid::as_raw));
                }
            }
        }
        gids.sort_unstable();
        gids.dedup();
        let groups = gids
            .into_iter()
            .map(|g| (g, Group::from_gid(Gid::from_raw(g)).ok().flatten().map(|grp| grp.name)))
            .collect();
        // A copy without the cache, or the identity would keep itself alive through it.
        Identity { peer: Peer::new(peer.uid, peer.gid, peer.pid), user: user.map(|u| u.name), groups }
    }

    pub fn caller(&self) -> Caller {
        Caller { uid: self.peer.uid, gid: self.peer.gid, pid: self.peer.pid, user: self.user.clone() }
    }

    fn is(&self, rule: &AllowRule) -> bool {
        let uid = self.peer.uid.to_string();
        let user_match = rule.users.iter().any(|u| *u == uid || self.user.as_deref() == Some(u.as_str()));
        let group_match = rule.groups.iter().any(|g| {
            self.groups.iter().any(|(gid, name)| *g == gid.to_string() || name.as_deref() == Some(g.as_str()))
        });
        self.peer.uid != NOBODY && (user_match || group_match)
    }
}

/// Whether a rule lets `who` do `operation` on `target`. Checked before the key is looked
/// up, so that an absent key and a forbidden one look the same.
pub fn allowed(rules: &[AllowRule], who: &Identity, operation: Operation, target: &Target<'_>) -> bool {
    rules.iter().any(|r| {
        who.is(r)
            && r.operations.contains(&operation)
            && match target {
                Target::Key(reference) => r.keys.iter().any(|g| glob(g, reference)),
                Target::Profile(name) => r.profiles.iter().any(|p| glob(p, name)),
                Target::Any => true,
            }
    })
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("sim:demo-*", "sim:demo-org"));
        assert!(!glob("sim:demo-*", "sim:other"));
        assert!(glob("pkcs11:token=dev;object=org-*", "pkcs11:token=dev;object=org-es256"));
        assert!(!glob("pkcs11:token=dev;object=org-*", "pkcs11:object=org-es256"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "acb"));
        assert!(!glob("ab*ba", "aba"), "prefix and suffix must not overlap");
        assert!(glob("sim:exact", "sim:exact") && !glob("sim:exact", "sim:exactly"));
    }
}
