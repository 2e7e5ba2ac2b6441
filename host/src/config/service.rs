//! `[service]`: the long-running host's socket, limits, metrics listener and access rules.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{DEFAULT_MAX_PAYLOAD, payload_limit};
use crate::error::LoadError;
use crate::keyref::KeyRef;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    listen: Option<Spanned<String>>,
    socket_group: Option<String>,
    peer_groups: Option<Spanned<String>>,
    max_body_mib: Option<Spanned<u64>>,
    max_concurrent: Option<Spanned<u64>>,
    max_per_uid: Option<Spanned<u64>>,
    body_budget_mib: Option<Spanned<u64>>,
    metrics_listen: Option<Spanned<String>>,
    instances: Option<Spanned<u64>>,
    request_timeout_ms: Option<Spanned<u64>>,
    header_timeout_ms: Option<Spanned<u64>>,
    max_connections_per_uid: Option<Spanned<u64>>,
    #[serde(default)]
    allow: Vec<RawAllow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    operations: Spanned<Vec<String>>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    profiles: Vec<String>,
}

/// Default of `[service] body_budget_mib`: what the request bodies in flight may hold at once.
pub const DEFAULT_BODY_BUDGET_MIB: u64 = 256;

/// `[service]`: the long-running host (`cryptohost serve`).
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The Unix socket path (`listen = "unix:PATH"`; default `cryptohost.sock` beside the config).
    pub socket: PathBuf,
    /// The group the socket is given (mode 0660), by name or id.
    pub socket_group: Option<String>,
    /// Where `groups` rules find a peer's groups: the user database (default) or the socket.
    pub peer_groups: crate::service::access::GroupSource,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Requests served at once; beyond it, 503 with Retry-After.
    pub max_concurrent: usize,
    /// Requests served at once for one peer uid (default: half of `max_concurrent`, at least
    /// 1), so that one caller cannot take every place; beyond it, 503 with Retry-After.
    pub max_per_uid: usize,
    /// Bytes of request bodies the server holds in memory at once, over all requests (default
    /// 256 MiB, at least `max_body`); a request that would pass it gets 503.
    pub body_budget: u64,
    /// A loopback TCP address that serves `/metrics` only (for a scraper), if set.
    pub metrics_listen: Option<SocketAddr>,
    /// Instances per interchangeable provider (default: the number of CPUs).
    pub instances: usize,
    /// The most one request may take, from routing to answer (a client that stalls its body
    /// included); beyond it 504.
    pub request_timeout: std::time::Duration,
    /// The most a connection may take to send a request head (idle keep-alive ones included).
    pub header_timeout: std::time::Duration,
    /// Connections one peer uid may hold open at once; one more is closed at once.
    pub max_connections_per_uid: usize,
    /// Who may use which keys: everything that uses a private or secret key is denied unless
    /// one of these allows it.
    pub allow: Vec<AllowRule>,
}

/// An operation that access rules grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Sign,
    Decrypt,
    Encrypt,
    Generate,
    Admin,
    /// Key lifecycle: make the next version (staged), promote one, retire one, destroy one.
    Rotate,
    Promote,
    Retire,
    Destroy,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Sign => "sign",
            Operation::Decrypt => "decrypt",
            Operation::Encrypt => "encrypt",
            Operation::Generate => "generate",
            Operation::Admin => "admin",
            Operation::Rotate => "rotate",
            Operation::Promote => "promote",
            Operation::Retire => "retire",
            Operation::Destroy => "destroy",
        }
    }
}

/// One `[[service.allow]]` rule: peers (users or groups, by name or id) who may do these
/// operations with keys whose canonical reference matches a glob, or with profiles whose name
/// matches a glob.
#[derive(Clone, Debug)]
pub struct AllowRule {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub operations: Vec<Operation>,
    /// Globs (`*` matches any run of characters) over canonical key references.
    pub keys: Vec<String>,
    /// Globs over profile names.
    pub profiles: Vec<String>,
}

/// Where errors of the config file are placed: `at(span, field, message)`.
type At<'a> = &'a dyn Fn(std::ops::Range<usize>, &str, String) -> LoadError;

/// A number in `range` (default `default`), or an error naming the field and the range.
fn ranged(
    v: &Option<Spanned<u64>>,
    at: At<'_>,
    field: &str,
    range: RangeInclusive<u64>,
    default: u64,
) -> Result<u64, LoadError> {
    match v {
        None => Ok(default),
        Some(n) if range.contains(n.get_ref()) => Ok(*n.get_ref()),
        Some(n) => Err(at(
            n.span(),
            field,
            format!("must be between {} and {}, got {}", range.start(), range.end(), n.get_ref()),
        )),
    }
}

/// `metrics_listen`: a loopback IP:PORT only.
fn metrics_listen(raw: &Option<Spanned<String>>, at: At<'_>) -> Result<Option<SocketAddr>, LoadError> {
    let Some(a) = raw else { return Ok(None) };
    match a.get_ref().parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Ok(Some(addr)),
        Ok(_) => Err(at(
            a.span(),
            "service.metrics_listen",
            format!(
                "{:?} is not a loopback address: metrics are served on 127.0.0.1 or ::1 only \
                 (put a proxy in front to expose them further)",
                a.get_ref()
            ),
        )),
        Err(e) => Err(at(a.span(), "service.metrics_listen", format!("{:?} is not IP:PORT: {e}", a.get_ref()))),
    }
}

/// One `[[service.allow]]` rule: known operations, someone named, held keys only.
fn allow_rule(r: RawAllow, at: At<'_>) -> Result<AllowRule, LoadError> {
    let mut operations = Vec::new();
    for op in r.operations.get_ref() {
        operations.push(match op.as_str() {
            "sign" => Operation::Sign,
            "decrypt" => Operation::Decrypt,
            "encrypt" => Operation::Encrypt,
            "generate" => Operation::Generate,
            "admin" => Operation::Admin,
            "rotate" => Operation::Rotate,
            "promote" => Operation::Promote,
            "retire" => Operation::Retire,
            "destroy" => Operation::Destroy,
            other => {
                return Err(at(
                    r.operations.span(),
                    "service.allow.operations",
                    format!(
                        "unknown operation {other:?} (sign, decrypt, encrypt, generate, admin, rotate, promote, retire, destroy)"
                    ),
                ));
            }
        });
    }
    if r.users.is_empty() && r.groups.is_empty() {
        return Err(at(r.operations.span(), "service.allow", "a rule names at least one user or group".into()));
    }
    for k in &r.keys {
        if let Err(e) = KeyRef::parse(k.trim_end_matches('*')).or_else(|_| KeyRef::parse(k)) {
            return Err(at(r.operations.span(), "service.allow.keys", format!("{k:?}: {}", e.message)));
        }
        if k.starts_with("file:") || !k.contains(':') {
            return Err(at(
                r.operations.span(),
                "service.allow.keys",
                format!("{k:?}: the server never uses key files; name held keys (pkcs11:..., sim:...)"),
            ));
        }
    }
    Ok(AllowRule { users: r.users, groups: r.groups, operations, keys: r.keys, profiles: r.profiles })
}

pub(super) fn parse_service(raw: Option<RawService>, base: &Path, at: At<'_>) -> Result<ServiceConfig, LoadError> {
    let raw = raw.unwrap_or_default();
    let socket = match &raw.listen {
        None => base.join("cryptohost.sock"),
        Some(l) => match l.get_ref().strip_prefix("unix:") {
            Some(p) if !p.is_empty() => base.join(p),
            _ => return Err(at(l.span(), "service.listen", format!("{:?} must be unix:PATH", l.get_ref()))),
        },
    };
    let max_body = match &raw.max_body_mib {
        None => DEFAULT_MAX_PAYLOAD,
        Some(m) => payload_limit(*m.get_ref()).map_err(|msg| at(m.span(), "service.max_body_mib", msg))?,
    };
    let max_concurrent = ranged(&raw.max_concurrent, at, "service.max_concurrent", 1..=4096, 64)? as usize;
    let max_per_uid = match &raw.max_per_uid {
        None => (max_concurrent / 2).max(1),
        Some(n) if (1..=max_concurrent as u64).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            return Err(at(
                n.span(),
                "service.max_per_uid",
                format!("must be between 1 and max_concurrent ({max_concurrent}), got {}", n.get_ref()),
            ));
        }
    };
    let peer_groups = match raw.peer_groups.as_ref().map(|g| (g.get_ref().as_str(), g.span())) {
        None | Some(("database", _)) => crate::service::access::GroupSource::Database,
        Some(("socket", _)) => crate::service::access::GroupSource::Socket,
        Some((other, span)) => {
            return Err(at(span, "service.peer_groups", format!("must be \"database\" or \"socket\", got {other:?}")));
        }
    };
    let body_budget = match &raw.body_budget_mib {
        None => (DEFAULT_BODY_BUDGET_MIB << 20).max(max_body as u64),
        Some(m) if *m.get_ref() >= (max_body as u64).div_ceil(1 << 20) && *m.get_ref() <= 1 << 20 => *m.get_ref() << 20,
        Some(m) => {
            return Err(at(
                m.span(),
                "service.body_budget_mib",
                format!(
                    "must be between max_body_mib ({} MiB: one largest body must fit) and 1048576, got {}",
                    (max_body as u64).div_ceil(1 << 20),
                    m.get_ref()
                ),
            ));
        }
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let instances = ranged(&raw.instances, at, "service.instances", 1..=256, cpus)? as usize;
    let request_timeout = Duration::from_millis(ranged(
        &raw.request_timeout_ms,
        at,
        "service.request_timeout_ms",
        100..=3_600_000,
        60_000,
    )?);
    let header_timeout =
        Duration::from_millis(ranged(&raw.header_timeout_ms, at, "service.header_timeout_ms", 50..=600_000, 10_000)?);
    let max_connections_per_uid =
        ranged(&raw.max_connections_per_uid, at, "service.max_connections_per_uid", 1..=65_536, 256)? as usize;
    let allow = raw.allow.into_iter().map(|r| allow_rule(r, at)).collect::<Result<Vec<_>, _>>()?;
    let metrics_listen = metrics_listen(&raw.metrics_listen, at)?;
    Ok(ServiceConfig {
        socket,
        socket_group: raw.socket_group,
        peer_groups,
        max_body,
        max_concurrent,
        max_per_uid,
        body_budget,
        metrics_listen,
        instances,
        request_timeout,
        header_timeout,
        max_connections_per_uid,
        allow,
    })
}
