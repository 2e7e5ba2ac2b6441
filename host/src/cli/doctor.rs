//! `doctor`: the checks live in the library (`cryptohost::doctor`); this renders them.

use std::process::ExitCode;

use super::{Cli, Outcome};

/// `doctor`: every check, one line each (or one JSON array); exit 1 if any fails.
pub(super) fn doctor(cli: &Cli, json: bool, login: bool) -> Outcome {
    let env = cryptohost::config::locate::Environment::current(cli.config.clone());
    let checks = match env.locate_with_reason() {
        Ok((path, how)) => cryptohost::doctor::run(&path, how, cli.components.as_deref(), login),
        Err(e) => vec![cryptohost::doctor::Check { check: "config", ok: false, detail: e.to_string() }],
    };
    if json {
        outln!("{}", serde_json::to_string(&checks).map_err(anyhow::Error::from)?);
    } else {
        for c in &checks {
            outln!("{:<4} {:<15} {}", if c.ok { "ok" } else { "FAIL" }, c.check, c.detail);
        }
    }
    Ok(if checks.iter().all(|c| c.ok) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
