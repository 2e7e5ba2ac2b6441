//! Who is on the other end of the socket (SO_PEERCRED, plus the user's groups from the system
//! user database) and what the configured rules let them do. Everything that uses a private or
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
    /// Its identity, looked up in the user database once per connection (the first request
    /// that needs it): group changes apply to the peer's next connection.
    resolved: std::sync::Arc<std::sync::OnceLock<Identity>>,
}

/// No credentials could be read: a peer no rule names.
const NOBODY: u32 = u32::MAX;

impl Peer {
    /// A peer whose credentials could not be read: no rule names it.
    pub fn nobody() -> Peer {
        Peer::new(NOBODY, NOBODY, None)
    }

    pub fn new(uid: u32, gid: u32, pid: Option<i32>) -> Peer {
        Peer { uid, gid, pid, resolved: std::sync::Arc::default() }
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
    /// The peer's identity (from the user database, once per connection).
    pub fn resolve(peer: &Peer) -> Identity {
        peer.resolved.get_or_init(|| Identity::look_up(peer)).clone()
    }

    fn look_up(peer: &Peer) -> Identity {
        use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
        let user = User::from_uid(Uid::from_raw(peer.uid)).ok().flatten();
        let mut gids = vec![peer.gid];
        if let Some(u) = &user
            && let Ok(name) = std::ffi::CString::new(u.name.clone())
            && let Ok(list) = getgrouplist(&name, u.gid)
        {
            gids.extend(list.into_iter().map(Gid::as_raw));
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
