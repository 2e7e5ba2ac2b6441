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
/// A file over [`PROGRESS_OVER`] read while stderr is a terminal is streamed through a
/// progress bar instead (the one difference: a provider that faults halfway is not retried
/// from the start on the next, as it is for a file the request layer opens itself).
pub(super) fn with_input<T>(path: &Path, f: impl FnOnce(Input<'_>) -> T) -> T {
    if is_std(path) {
        let mut stdin = std::io::stdin().lock();
        return f(Input::Stream(&mut stdin));
    }
    if let Some(len) = wants_progress(path)
        && let Ok(file) = fsio::open_regular(path, "input")
    {
        let mut reader = progress(file, len);
        return f(Input::Stream(&mut reader));
    }
    f(Input::File(path))
}

/// Inputs larger than this get a progress bar (on a terminal).
pub(super) const PROGRESS_OVER: u64 = 64 << 20;

/// The length of `path` when a progress bar is wanted for it: a regular file over
/// [`PROGRESS_OVER`] and stderr a terminal (never in a pipe, a log or a test's capture).
fn wants_progress(path: &Path) -> Option<u64> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let m = std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file)?;
    (m.len() > PROGRESS_OVER).then_some(m.len())
}

/// `reader` with a progress bar of `len` bytes on stderr, cleared when the read is done.
fn progress<R: Read>(reader: R, len: u64) -> impl Read {
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("cryptohost: {bytes} of {total_bytes} [{bar:20}] {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.with_finish(indicatif::ProgressFinish::AndClear).wrap_read(reader)
}

/// An input to stream: standard input, or a regular file (never a fifo or a device).
///
/// # Errors
/// The file cannot be opened or is not a regular file.
pub(super) fn open(path: &Path) -> Result<Box<dyn Read>> {
    if is_std(path) {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = fsio::open_regular(path, "input")?;
    match wants_progress(path) {
        Some(len) => Ok(Box::new(progress(file, len))),
        None => Ok(Box::new(file)),
    }
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

/// `--out -` and `--json` together would write two documents to standard output: refused.
///
/// # Errors
/// Both were given.
pub(super) fn one_stdout_writer(out: Option<&Path>, json: bool) -> Result<()> {
    if json && out.is_some_and(is_std) {
        anyhow::bail!("--out - and --json would both write to standard output: give one");
    }
    Ok(())
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
