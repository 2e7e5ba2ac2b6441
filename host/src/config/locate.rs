//! Where the configuration is: `--config`, else `CRYPTOHOST_CONFIG`, else `./cryptohost.toml`,
//! else `$XDG_CONFIG_HOME/cryptohost/cryptohost.toml` (`~/.config` without it), else
//! `/etc/cryptohost/cryptohost.toml`. When none exists the error lists every place tried.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::LoadError;

/// The file name looked for in each directory.
pub const FILE: &str = "cryptohost.toml";
/// The system-wide place.
pub const SYSTEM: &str = "/etc/cryptohost/cryptohost.toml";

/// What the lookup reads from the process: given explicitly, so it can be tested.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `--config`.
    pub explicit: Option<PathBuf>,
    /// `CRYPTOHOST_CONFIG`.
    pub variable: Option<OsString>,
    /// `XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<OsString>,
    /// `HOME`.
    pub home: Option<OsString>,
}

impl Environment {
    /// This process's.
    #[must_use]
    pub fn current(explicit: Option<PathBuf>) -> Environment {
        Environment {
            explicit,
            variable: std::env::var_os("CRYPTOHOST_CONFIG"),
            xdg_config_home: std::env::var_os("XDG_CONFIG_HOME"),
            home: std::env::var_os("HOME"),
        }
    }

    /// The places tried, in order, with why each is tried.
    #[must_use]
    pub fn candidates(&self) -> Vec<(PathBuf, &'static str)> {
        if let Some(p) = &self.explicit {
            return vec![(p.clone(), "--config")];
        }
        if let Some(v) = self.variable.as_ref().filter(|v| !v.is_empty()) {
            return vec![(PathBuf::from(v), "CRYPTOHOST_CONFIG")];
        }
        let mut out = vec![(PathBuf::from(FILE), "the working directory")];
        // XDG: a relative XDG_CONFIG_HOME is invalid and ignored.
        let xdg = self.xdg_config_home.as_ref().map(PathBuf::from).filter(|p| p.is_absolute());
        let user = xdg.or_else(|| self.home.as_ref().map(|h| PathBuf::from(h).join(".config")));
        if let Some(dir) = user {
            out.push((dir.join("cryptohost").join(FILE), "the user's config directory"));
        }
        out.push((PathBuf::from(SYSTEM), "the system config"));
        out
    }

    /// The first place that exists (an explicit one is taken as given: loading it says what
    /// is wrong with it).
    ///
    /// # Errors
    /// None of the default places exists; the message lists them.
    pub fn locate(&self) -> Result<PathBuf, LoadError> {
        self.locate_with_reason().map(|(p, _)| p)
    }

    /// As [`Environment::locate`], with where it was found (`--config`, `CRYPTOHOST_CONFIG`,
    /// the working directory, the user's or the system config).
    ///
    /// # Errors
    /// As [`Environment::locate`].
    pub fn locate_with_reason(&self) -> Result<(PathBuf, &'static str), LoadError> {
        let candidates = self.candidates();
        if self.explicit.is_some() || self.variable.as_ref().is_some_and(|v| !v.is_empty()) {
            return Ok(candidates[0].clone());
        }
        if let Some(found) = candidates.iter().find(|(p, _)| std::fs::symlink_metadata(p).is_ok()) {
            return Ok(found.clone());
        }
        let tried: Vec<String> = candidates.iter().map(|(p, why)| format!("{} ({why})", p.display())).collect();
        Err(LoadError::Config {
            path: PathBuf::from(FILE),
            message: format!(
                "no configuration found; tried {}. Give one with --config FILE or CRYPTOHOST_CONFIG",
                tried.join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_flag_variable_here_user_system() {
        let env = Environment {
            explicit: None,
            variable: None,
            xdg_config_home: Some("/x".into()),
            home: Some("/home/u".into()),
        };
        let places: Vec<PathBuf> = env.candidates().into_iter().map(|(p, _)| p).collect();
        assert_eq!(places, [PathBuf::from("cryptohost.toml"), "/x/cryptohost/cryptohost.toml".into(), SYSTEM.into()]);
        let relative_xdg = Environment { xdg_config_home: Some("rel".into()), ..env.clone() };
        assert_eq!(relative_xdg.candidates()[1].0, PathBuf::from("/home/u/.config/cryptohost/cryptohost.toml"));
        let variable = Environment { variable: Some("/v.toml".into()), ..env.clone() };
        assert_eq!(variable.locate().unwrap(), PathBuf::from("/v.toml"));
        let flag = Environment { explicit: Some("/f.toml".into()), ..variable };
        assert_eq!(flag.locate().unwrap(), PathBuf::from("/f.toml"));
    }

    #[test]
    fn when_nothing_is_found_every_place_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment {
            explicit: None,
            variable: Some("".into()),
            xdg_config_home: Some(dir.path().join("xdg").into()),
            home: None,
        };
        // The working directory of a test may hold a cryptohost.toml; only judge when not.
        if std::path::Path::new(FILE).exists() || std::path::Path::new(SYSTEM).exists() {
            return;
        }
        let e = env.locate().unwrap_err().to_string();
        assert!(e.contains("the working directory") && e.contains("xdg/cryptohost/cryptohost.toml"), "{e}");
        assert!(e.contains(SYSTEM) && e.contains("--config FILE or CRYPTOHOST_CONFIG"), "{e}");
    }
}
