//! The `[hsm]` configuration as the backend sees it (module, tokens, PIN source), and reading the PIN.

use std::io::Read;
use std::path::{Path, PathBuf};

use cryptoki::types::AuthPin;
use rustix::fs::{FileType, Mode, OFlags};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::provider::Priority;

/// A PIN file larger than this is not a PIN file; it is refused before it is read.
pub const MAX_PIN_FILE_BYTES: u64 = 4096;

/// Where the user PIN comes from. Never the command line.
#[derive(Clone)]
pub enum PinSource {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Debug for PinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The variable's name and the file's path, never what they hold.
        match self {
            PinSource::Env(v) => write!(f, "Env({v})"),
            PinSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// A token, by label or serial number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSpec {
    Label(String),
    Serial(String),
}

impl TokenSpec {
    /// Whether a present token (its label and serial, trimmed) is the one this spec names.
    pub(super) fn matches(&self, label: &str, serial: &str) -> bool {
        match self {
            TokenSpec::Label(l) => l == label,
            TokenSpec::Serial(s) => s == serial,
        }
    }
}

/// The `[hsm]` section of the configuration.
#[derive(Clone, Debug)]
pub struct HsmConfig {
    pub name: String,
    pub module: PathBuf,
    /// The module file's sha256: when set, the file is read, hashed and loaded from those
    /// very bytes (never from the path again); when not, it is loaded by path with a warning.
    pub module_sha256: Option<String>,
    /// In failover order.
    pub tokens: Vec<TokenSpec>,
    pub pin: PinSource,
    pub pool_size: usize,
    pub priority: Priority,
    /// Require CKA_SENSITIVE=true and CKA_EXTRACTABLE=false on every key used.
    pub require_non_extractable: bool,
}

impl HsmConfig {
    /// The user PIN from its source. Errors name the variable or file, never its content.
    pub(super) fn read_pin(&self) -> Result<AuthPin, ProviderError> {
        let pin = match &self.pin {
            PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|e| {
                // NotUnicode carries the value: only the variable's name goes into the message.
                let why = match e {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                };
                ProviderError::Failed(format!("HSM PIN: environment variable {var} {why}"))
            })?),
            PinSource::File(path) => read_pin_file(path)?,
        };
        let pin = pin.trim_end_matches(['\n', '\r']);
        if pin.is_empty() {
            return Err(ProviderError::Failed("HSM PIN is empty".into()));
        }
        Ok(AuthPin::from(pin.to_string()))
    }
}

/// Reads a PIN file the way ssh reads a private key: not through a symlink, a regular file owned
/// by the effective user, with no access for group or others, and small. Every check is made on
/// the opened descriptor, so the file checked is the file read.
///
/// # Errors
/// The file cannot be opened, or fails one of the checks; the message says which and how to fix it.
pub fn read_pin_file(path: &Path) -> Result<Zeroizing<String>, ProviderError> {
    let refuse = |why: String| ProviderError::Failed(format!("HSM PIN file {}: {why}", path.display()));
    // O_NONBLOCK: a FIFO planted at the path must not hang the open; it is refused below.
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| match e {
            rustix::io::Errno::LOOP => {
                refuse("is a symbolic link (refused: the PIN file is opened without following links)".into())
            }
            e => refuse(format!("cannot open: {}", std::io::Error::from(e))),
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| refuse(format!("cannot stat: {}", std::io::Error::from(e))))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(refuse("is not a regular file".into()));
    }
    let euid = rustix::process::geteuid().as_raw();
    if st.st_uid != euid {
        return Err(refuse(format!(
            "is owned by uid {}, not by the user running cryptohost (uid {euid}); refused",
            st.st_uid
        )));
    }
    let mode = st.st_mode & 0o777;
    if mode & 0o066 != 0 {
        return Err(refuse(format!(
            "mode {mode:04o} lets group or others read or write it; refused (chmod 600 {})",
            path.display()
        )));
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > MAX_PIN_FILE_BYTES {
        return Err(refuse(format!("is {size} bytes; a PIN file holds at most {MAX_PIN_FILE_BYTES}")));
    }
    // Capacity for the whole bound up front: no reallocation leaves copies of the PIN behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_PIN_FILE_BYTES as usize + 1));
    std::fs::File::from(fd)
        .take(MAX_PIN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_PIN_FILE_BYTES {
        return Err(refuse(format!("grew past {MAX_PIN_FILE_BYTES} bytes while being read")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| refuse("is not UTF-8 text".into()))?;
    Ok(Zeroizing::new(text.to_string()))
}
