//! `audit`: the audit log as a transparency log. `key` prints the audit key's note verifier key,
//! `head` the latest signed checkpoint (to record out of band), `verify` checks log files,
//! `prove` prints the inclusion proof of one line, `check-proof` checks one without the log.
//! Local only: they read files here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use cryptohost::audit::verify::InclusionProof;
use cryptohost::request::{self, AuditTrust};

use super::backend::Backend;
use super::{Cli, Outcome, backend};

#[derive(Subcommand)]
pub(super) enum AuditCommand {
    /// The audit key's note verifier key (name+id+base64): what Go's note.NewVerifier reads,
    /// and what `--pub` takes elsewhere.
    Key,
    /// The latest signed checkpoint (a C2SP note), to record out of band: a witness, a ticket,
    /// another site. `verify --checkpoint` checks the log against it later.
    Head {
        /// The log (default: the config's [audit] path).
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Recompute each log's Merkle tree from its lines, check every checkpoint's signature, root
    /// and consistency with the one before; exit 1 naming the first bad line.
    Verify {
        /// Log files (default: the config's [audit] path).
        files: Vec<PathBuf>,
        /// The audit key: a note verifier key file, or its public key (PEM/DER). Repeatable.
        /// Default: the configured [audit] key.
        #[arg(long = "pub")]
        public: Vec<PathBuf>,
        /// Trust anchors (a directory, or an installed kit): their keys valid now for the
        /// purpose `audit-log` check the checkpoints. Instead of, or beside, --pub.
        #[arg(long)]
        anchors: Option<PathBuf>,
        /// A checkpoint recorded earlier (`audit head`): the log must hold its lines, unchanged.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The inclusion proof (JSON) of line LINE (1-based) against the last checkpoint covering it.
    Prove {
        line: u64,
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Check an inclusion proof (from `audit prove`) without the log.
    CheckProof {
        proof: PathBuf,
        #[arg(long = "pub")]
        public: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

const MAX_SMALL: u64 = 1 << 20;

fn local(cli: &Cli) -> anyhow::Result<Box<super::backend::Local>> {
    match backend(cli)? {
        Backend::Local(l) => Ok(l),
        Backend::Remote(_) => anyhow::bail!("the audit commands read local files: run them without --socket"),
    }
}

fn trust(public: &[PathBuf]) -> anyhow::Result<Vec<AuditTrust>> {
    public
        .iter()
        .map(|p| {
            let bytes = cryptohost::fsio::read_bounded(p, MAX_SMALL, "audit key")?;
            Ok(AuditTrust::parse(p, &bytes)?)
        })
        .collect()
}

fn text(path: &Path, what: &str) -> anyhow::Result<String> {
    String::from_utf8(cryptohost::fsio::read_bounded(path, MAX_SMALL, what)?)
        .map_err(|_| anyhow::anyhow!("{}: the {what} is not UTF-8", path.display()))
}

pub(super) fn audit(cli: &Cli, c: &AuditCommand) -> Outcome {
    match c {
        AuditCommand::Key => {
            let l = local(cli)?;
            outln!("{}", request::audit_vkey(&l.ctx())?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Head { log } => {
            let log = match log {
                Some(l) => l.clone(),
                None => cryptohost::Config::load(&cli.config_path()?)?.audit_path,
            };
            let path = cryptohost::audit::checkpoint_path(&log);
            out!("{}", text(&path, "checkpoint")?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { files, public, anchors, checkpoint, json } => {
            let l = local(cli)?;
            let files: Vec<PathBuf> = if files.is_empty() { vec![l.config.audit_path.clone()] } else { files.clone() };
            let recorded = checkpoint.as_deref().map(|p| text(p, "checkpoint")).transpose()?;
            let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
            let mut given = trust(public)?;
            if let Some(dir) = anchors {
                given.extend(request::audit_anchors(&l.ctx(), dir)?);
            }
            let reports = request::audit_verify(&l.ctx(), &refs, &given, recorded.as_deref())?;
            let valid = reports.iter().all(|r| r.valid);
            if *json {
                outln!("{}", serde_json::to_string(&reports)?);
            } else {
                for r in &reports {
                    let verdict = if r.valid { "intact" } else { "NOT INTACT" };
                    outln!(
                        "{}: {verdict}: {} lines, {} of {} checkpoints verified, covered up to line {}",
                        r.file,
                        r.lines,
                        r.verified_checkpoints,
                        r.checkpoints,
                        r.covered
                    );
                    if let Some(n) = r.first_bad_line {
                        outln!("  first bad line: {n}");
                    }
                    for p in &r.problems {
                        outln!("  problem: {p}");
                    }
                    for n in &r.notes {
                        outln!("  note: {n}");
                    }
                }
            }
            Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditCommand::Prove { line, log } => {
            let log = match log {
                Some(l) => l.clone(),
                None => cryptohost::Config::load(&cli.config_path()?)?.audit_path,
            };
            let proof = request::audit_prove(&log, *line)?;
            outln!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::CheckProof { proof, public, json } => {
            let l = local(cli)?;
            let proof: InclusionProof = serde_json::from_str(&text(proof, "proof")?)?;
            let size = request::audit_check_proof(&l.ctx(), &proof, &trust(public)?)?;
            if *json {
                outln!("{}", serde_json::json!({"valid": true, "line": proof.line, "checkpoint_size": size}));
            } else {
                outln!("valid: line {} is in the signed log of {size} lines", proof.line);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
