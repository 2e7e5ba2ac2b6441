//! `cryptohost generate` (hidden): shell completions and man pages made from the command-line
//! definition itself, so what is installed can never disagree with what the binary accepts.
//! `scripts/install.sh` runs the freshly built binary's `generate` to write them.
//!
//! Man pages are written without following a symlink: the directory given must not be one, and
//! each page is written to a new temporary file (`O_CREAT|O_EXCL|O_NOFOLLOW`) renamed into place,
//! so a symlink planted at a page's name is replaced, never written through.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};

use super::{Cli, Outcome};

#[derive(Subcommand)]
pub(super) enum GenerateCommand {
    /// Print the completion script for SHELL on standard output.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write cryptohost.1 and one page per subcommand (cryptohost-sign.1, cryptohost-keys-list.1,
    /// ...) into DIR (created if missing; refused if it is a symlink).
    Man { dir: PathBuf },
    /// Write the JSON Schema of every command's `--json` output into DIR (docs/cli-json).
    JsonSchemas { dir: PathBuf },
}

/// The shells whose completions are installed.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl From<Shell> for clap_complete::Shell {
    fn from(s: Shell) -> Self {
        match s {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The whole command line, as clap sees it.
fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

pub(super) fn generate(what: &GenerateCommand) -> Outcome {
    match what {
        GenerateCommand::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(clap_complete::Shell::from(*shell), &mut command(), "cryptohost", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
        }
        GenerateCommand::Man { dir } => {
            for page in man_pages(dir)? {
                outln!("{}", page.display());
            }
        }
        GenerateCommand::JsonSchemas { dir } => {
            for (name, schema) in super::reports::json_schemas() {
                let path = dir.join(format!("{name}.json"));
                let text = serde_json::to_string_pretty(&schema)? + "\n";
                // A fresh file renamed into place: never written through a symlink.
                cryptohost::fsio::replace_atomic(&path, text.as_bytes(), 0o644)?;
                outln!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes every page into `dir` and returns their paths.
fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            bail!("{}: is a symlink; refused (give the real directory)", dir.display())
        }
        Ok(m) if !m.is_dir() => bail!("{}: is not a directory", dir.display()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot examine", dir.display())),
    }
    // Built once so that every subcommand carries its display name (cryptohost-keys-list).
    let mut root = command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    let mut todo = vec![root];
    while let Some(cmd) = todo.pop() {
        todo.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd).manual("cryptohost manual");
        let path = dir.join(man.get_filename());
        let mut roff = Vec::new();
        man.render(&mut roff).with_context(|| format!("{}: cannot render", path.display()))?;
        cryptohost::fsio::replace_atomic(&path, &roff, 0o644)?;
        pages.push(path);
    }
    pages.sort();
    Ok(pages)
}
