//! `-` as a file name: standard input for what a command reads (bounded like a file, read in
//! one pass), standard output for what it writes (`--out -`).

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Result;
use cryptohost::fsio;
use cryptohost::request::Input;

/// Whether `path` means standard input or output.
pub(super) fn is_std(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Calls `f` with the input `path` names: a file the request layer opens, or standard input
/// as a stream that cannot be rewound (hashed as it is read, or read whole within the limit).
pub(super) fn with_input<T>(path: &Path, f: impl FnOnce(Input<'_>) -> T) -> T {
    if is_std(path) {
        let mut stdin = std::io::stdin().lock();
        f(Input::Stream(&mut stdin))
    } else {
        f(Input::File(path))
    }
}

/// An input to stream: standard input, or a regular file (never a fifo or a device).
///
/// # Errors
/// The file cannot be opened or is not a regular file.
pub(super) fn open(path: &Path) -> Result<Box<dyn Read>> {
    if is_std(path) { Ok(Box::new(std::io::stdin().lock())) } else { Ok(Box::new(fsio::open_regular(path, "input")?)) }
}

/// An input read whole, at most `limit` bytes: from standard input the read stops one byte
/// past the limit and is refused, so an endless stream never fills memory.
///
/// # Errors
/// Over the limit, or unreadable.
pub(super) fn read_whole(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    if !is_std(path) {
        return Ok(fsio::read_bounded(path, limit, what)?);
    }
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        anyhow::bail!("standard input: the {what} is over the limit of {limit} bytes: refused");
    }
    Ok(bytes)
}

/// Writes an output: to standard output for `-`, else as `write` does it (a fresh file renamed
/// into place, or one created new).
///
/// # Errors
/// The write fails.
pub(super) fn write(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&Path, &[u8]) -> Result<(), fsio::FsError>,
) -> Result<()> {
    if is_std(path) {
        let mut out = std::io::stdout().lock();
        if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
            super::stdout_gone();
        }
        return Ok(());
    }
    Ok(write(path, bytes)?)
}
