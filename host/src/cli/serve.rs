//! The process around the commands: the one-shot CLI's log lines, and `serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Cli, Outcome, ServeArgs, load_config, trust_mode};

/// Log lines on stderr. A guest's lines carry `guest NAME` and never the word `error`, so
/// nothing a component writes can pass for the host's own message.
pub(super) fn init_logging(verbose: u8) {
    struct Stderr(log::LevelFilter);
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= self.0
        }
        fn log(&self, r: &log::Record) {
            if !self.enabled(r.metadata()) {
                return;
            }
            let level = r.level().as_str().to_lowercase();
            if r.target() == cryptohost::wasm::GUEST_LOG_TARGET {
                eprintln!("cryptohost: [guest {level}] {}", r.args());
            } else {
                eprintln!("cryptohost: {level}: {}", r.args());
            }
        }
        fn flush(&self) {}
    }
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    if log::set_boxed_logger(Box::new(Stderr(level))).is_ok() {
        log::set_max_level(level);
    }
}

pub(super) fn serve(cli: &Cli, a: &ServeArgs) -> Outcome {
    if a.openapi {
        outln!("{}", cryptohost::service::openapi::json());
        return Ok(ExitCode::SUCCESS);
    }
    // Read once here so that a bad config is reported before anything starts.
    let config = load_config(cli)?;
    let socket = match &a.listen {
        None => None,
        Some(l) => match l.strip_prefix("unix:") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => return Err(anyhow::anyhow!("--listen {l:?}: give unix:PATH").into()),
        },
    };
    let source = cryptohost::service::Source {
        config_path: cli.config_path()?,
        components: cli.components.clone(),
        trust: trust_mode(cli, &config),
    };
    let json = a.json;
    cryptohost::service::run(source, socket, |s| {
        if json {
            let line = super::reports::Serving {
                socket: s.socket.to_path_buf(),
                metrics: s.metrics.map(|m| m.to_string()),
                providers: s.providers,
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            if let Ok(text) = serde_json::to_string(&line) {
                outln!("{text}");
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
