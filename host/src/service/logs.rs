//! The server's logs, through `tracing`: text or JSON lines on stderr, one span per request
//! (its id, method, route and the peer's uid). The library's `log` lines are bridged in and
//! appear inside the span of the request that caused them. A guest's lines keep their own
//! target (`cryptohost::guest`), so nothing a component writes passes for the host's words.

use std::str::FromStr;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("log format {other:?}: text or json")),
        }
    }
}

/// Installs the subscriber: warnings and errors by default, `info` with one `-v` (a line per
/// request), `debug` with two.
///
/// # Errors
/// A logger was already installed in this process.
pub fn init(verbose: u8, format: Format) -> Result<(), String> {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // `try_init` also installs the bridge for `log` records (at the same level) and gives them
    // their own target and location, not `log`'s.
    let builder =
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_ansi(false).with_target(true);
    match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    }
    .map_err(|e| e.to_string())
}
