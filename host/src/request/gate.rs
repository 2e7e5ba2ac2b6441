//! The gate a front end puts before every key and admin operation: who is asking and what they
//! may do. The server's gate holds its `[[service.allow]]` rules and the peer's identity; the
//! one-shot CLI's ([`Allow`]) lets its user do everything the config and the files allow, since
//! that user can read the config and the key files anyway.

use crate::audit::Caller;
use crate::config::Operation;

/// What a request wants to use: a key by its canonical reference, a profile by name, or
/// nothing in particular (admin).
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    Key(&'a str),
    Profile(&'a str),
    Any,
}

/// The front end's access rules. Asked before any key or profile is looked up, so that an
/// absent key and a forbidden one can look the same.
pub trait Gate: Sync {
    /// Whether the caller may do any one of `operations` on `target`.
    fn allows(&self, operations: &[Operation], target: &Target<'_>) -> bool;

    /// Who is asking, for the audit lines (`None`: the local user of the one-shot CLI).
    fn caller(&self) -> Option<Caller>;

    /// Whether a missing profile or key id must look like a forbidden one (a server, whose
    /// callers may not read its config), rather than be named in the error.
    fn hides_absence(&self) -> bool;

    /// Whether the caller's own files may be named as keys or anchors (the CLI: yes; a server
    /// never opens a path a client sends).
    fn local_files(&self) -> bool;
}

/// The one-shot CLI's gate: everything is allowed, absences are named, files are the user's.
pub struct Allow;

impl Gate for Allow {
    fn allows(&self, _: &[Operation], _: &Target<'_>) -> bool {
        true
    }

    fn caller(&self) -> Option<Caller> {
        None
    }

    fn hides_absence(&self) -> bool {
        false
    }

    fn local_files(&self) -> bool {
        true
    }
}
