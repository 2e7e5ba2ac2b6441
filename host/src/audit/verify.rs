//! Checking an audit log file as a transparency log: every line is a leaf; every checkpoint
//! line's signed note must verify under a trusted key, name the log's origin, and give the root
//! of the lines before it; consecutive checkpoints (and a checkpoint recorded elsewhere, given
//! by the caller) must be consistent (RFC 9162 consistency proofs). What no checkpoint covers is
//! said, never passed over: lines after the last checkpoint could be cut without trace unless a
//! later checkpoint was recorded out of band. Also the inclusion proof of one line, and its
//! check without the log.
//!
//! Pure: the signature check is the caller's closure (the registry's verifiers).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::tlog::merkle::{self, Hash};
use super::tlog::note::{self, Checkpoint, Verifier};

/// The longest line read (an audit line is a few hundred bytes; a checkpoint a few hundred more).
pub const MAX_LINE: usize = 1 << 20;
/// The largest log file checked (rotate with `[audit] max_mib`).
pub const MAX_LOG_BYTES: u64 = 4 << 30;
/// The most lines checked in one file: their hashes are kept (32 bytes each) to recompute any
/// checkpoint's root and proof; a file of empty lines must not fill memory.
pub const MAX_LINES: usize = 1 << 23;

/// The verifiers trusted for a log named by its origin.
pub type TrustedKeys<'a> = dyn Fn(&str) -> Vec<Verifier> + 'a;
/// Checks one signature: (verifier, signed text, signature).
pub type SignatureCheck<'a> = dyn Fn(&Verifier, &[u8], &[u8]) -> bool + 'a;

/// What checking one log file found.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogReport {
    pub file: String,
    /// Whole lines (leaves).
    pub lines: u64,
    /// The tree's root over every whole line, base64.
    pub root: String,
    /// Checkpoint lines found, and how many verified (signature, origin, root, consistency).
    pub checkpoints: u64,
    pub verified_checkpoints: u64,
    /// The size of the last checkpoint that verified (0: none).
    pub covered: u64,
    /// The first problem, with its line number (1-based): the log is not intact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_line: Option<u64>,
    /// Every problem, in order.
    pub problems: Vec<String>,
    /// What is true but not a failure: lines no checkpoint covers, a torn last line.
    pub notes: Vec<String>,
    pub valid: bool,
}

/// A checkpoint recorded elsewhere (a witness, a ticket): the log must contain its lines.
pub struct Recorded {
    pub size: u64,
    pub root: Hash,
}

/// Checks the log in `path` against `trusted` (note verifiers), and against `recorded`.
/// `verify(verifier, text, signature)` checks one signature.
///
/// # Errors
/// The file cannot be read (what it contains is reported, never an error).
pub fn check_file(
    path: &Path,
    trusted: &TrustedKeys<'_>,
    verify: &SignatureCheck<'_>,
    recorded: Option<&Recorded>,
) -> Result<(LogReport, Vec<Hash>), String> {
    let file = crate::fsio::open_regular(path, "audit log").map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len > MAX_LOG_BYTES {
        return Err(format!("{} is {len} bytes; at most {MAX_LOG_BYTES} are checked", path.display()));
    }
    let mut report = LogReport { file: path.display().to_string(), ..LogReport::default() };
    let mut leaves: Vec<Hash> = Vec::new();
    let mut reader = BufReader::new(file.take(MAX_LOG_BYTES));
    let mut line = Vec::new();
    let mut last_good: Option<(u64, Hash)> = None;
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let number = leaves.len() as u64 + 1;
        if leaves.len() >= MAX_LINES {
            bad(
                &mut report,
                number,
                format!("more than {MAX_LINES} lines: checked no further (rotate the log with [audit] max_mib)"),
            );
            break;
        }
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE {
                bad(&mut report, number, format!("line {number} is over {MAX_LINE} bytes: not an audit line"));
                break;
            }
            report.notes.push(format!(
                "the log ends in a torn line ({} bytes, no newline: a writer stopped mid-line); verified up to line \
                 {}, its last whole line",
                line.len(),
                number - 1
            ));
            break;
        }
        let text = &line[..line.len() - 1];
        leaves.push(merkle::leaf_hash(text));
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
            bad(&mut report, number, format!("line {number} is not JSON"));
            continue;
        };
        if value.get("event").and_then(|e| e.as_str()) != Some("checkpoint") {
            continue;
        }
        report.checkpoints += 1;
        match check_checkpoint(&value, number, &leaves, trusted, verify, last_good) {
            Ok((size, root)) => {
                report.verified_checkpoints += 1;
                // Writers sign their checkpoints concurrently: one may land after a larger one.
                if last_good.is_none_or(|(s, _)| size >= s) {
                    report.covered = size;
                    last_good = Some((size, root));
                }
            }
            Err(why) => bad(&mut report, number, why),
        }
    }
    report.lines = leaves.len() as u64;
    report.root = B64.encode(merkle::root_of(&leaves));
    if let Some(r) = recorded
        && let Err(why) = check_recorded(r, &leaves, last_good)
    {
        report.problems.push(why);
        report.first_bad_line.get_or_insert(report.lines);
    }
    if report.checkpoints == 0 {
        report.notes.push(
            "no checkpoint: nothing here is signed (set [audit] key); a changed line could not be detected".into(),
        );
    } else if report.covered < report.lines {
        report.notes.push(format!(
            "lines {}..{} come after the last verified checkpoint: cutting them would leave no trace here (record \
             checkpoints out of band: `cryptohost audit head`, then --checkpoint)",
            report.covered + 1,
            report.lines
        ));
    }
    report.valid = report.problems.is_empty();
    Ok((report, leaves))
}

fn bad(report: &mut LogReport, line: u64, why: String) {
    report.first_bad_line.get_or_insert(line);
    report.problems.push(why);
}

/// One checkpoint line (number `number`): signature, origin, its root over the lines before it,
/// and consistency with the previous good checkpoint.
fn check_checkpoint(
    value: &serde_json::Value,
    number: u64,
    leaves: &[Hash],
    trusted: &TrustedKeys<'_>,
    verify: &SignatureCheck<'_>,
    previous: Option<(u64, Hash)>,
) -> Result<(u64, Hash), String> {
    let at = |why: String| format!("line {number} (checkpoint): {why}");
    let text = value.get("checkpoint").and_then(|c| c.as_str()).ok_or_else(|| at("no signed note".into()))?;
    let origin = text.lines().next().unwrap_or_default();
    let verifiers = trusted(origin);
    if verifiers.is_empty() {
        return Err(at(format!("no trusted key for the log {origin:?} (give --pub)")));
    }
    let (cp, _) = note::open_checkpoint(text, &verifiers, verify).map_err(|e| at(e.to_string()))?;
    let before = number - 1;
    if cp.size > before {
        return Err(at(format!("it covers {} lines, but only {before} come before it", cp.size)));
    }
    let size = usize::try_from(cp.size).map_err(|_| at("size out of range".into()))?;
    let root = merkle::root_of(&leaves[..size]);
    if root != cp.root {
        let from = previous.map_or(1, |(s, _)| s + 1);
        return Err(at(format!(
            "its signed root over the first {} lines does not match them: a line among {from}..{} was changed, \
             inserted, deleted or reordered",
            cp.size, cp.size
        )));
    }
    // Consistent with the largest checkpoint before it (RFC 9162 section 2.1.4), whichever of
    // the two is older: concurrent writers may append a smaller one after a larger one.
    if let Some((p, proot)) = previous {
        let ((old, old_root), (new, new_root)) =
            if p <= cp.size { ((p, proot), (cp.size, cp.root)) } else { ((cp.size, cp.root), (p, proot)) };
        let proof = merkle::consistency_proof(leaves, old, new).map_err(|e| at(e.to_string()))?;
        merkle::verify_consistency(old, new, &old_root, &new_root, &proof)
            .map_err(|e| at(format!("not consistent with the checkpoint of size {p}: {e}")))?;
    }
    Ok((cp.size, cp.root))
}

/// A checkpoint recorded out of band: its lines must be the log's first lines, and it must be
/// consistent with the log's last verified checkpoint.
fn check_recorded(r: &Recorded, leaves: &[Hash], last: Option<(u64, Hash)>) -> Result<(), String> {
    let n = leaves.len() as u64;
    if r.size > n {
        return Err(format!(
            "the recorded checkpoint covers {} lines, but the log has {n}: lines were cut from its end",
            r.size
        ));
    }
    let size = usize::try_from(r.size).map_err(|_| "size out of range".to_string())?;
    if merkle::root_of(&leaves[..size]) != r.root {
        return Err(format!(
            "the log's first {} lines do not give the recorded checkpoint's root: the log was rewritten (re-signed \
             checkpoints do not hide it)",
            r.size
        ));
    }
    if let Some((s, root)) = last
        && s >= r.size
    {
        let proof = merkle::consistency_proof(leaves, r.size, s).map_err(|e| e.to_string())?;
        merkle::verify_consistency(r.size, s, &r.root, &root, &proof)
            .map_err(|e| format!("the recorded checkpoint and the log's checkpoint of size {s} disagree: {e}"))?;
    }
    Ok(())
}

/// The inclusion proof of one line against a checkpoint: everything needed to check it without
/// the log.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The line's number (1-based) in the log.
    pub line: u64,
    /// The line itself, without its newline.
    pub text: String,
    /// The signed checkpoint (a C2SP note) the proof is against.
    pub checkpoint: String,
    /// The audit path, base64 hashes, leaf to root (RFC 9162 section 2.1.3).
    pub proof: Vec<String>,
}

/// The proof of line `line` (1-based) against the last checkpoint line of the log that covers it.
///
/// # Errors
/// No such line, or no checkpoint covers it yet.
pub fn prove(path: &Path, line: u64) -> Result<InclusionProof, String> {
    let file = crate::fsio::open_regular(path, "audit log").map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(file.take(MAX_LOG_BYTES));
    let mut leaves = Vec::new();
    let mut wanted = None;
    let mut best: Option<(u64, String)> = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).map_err(|e| e.to_string())?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        if leaves.len() >= MAX_LINES {
            return Err(format!("the log has more than {MAX_LINES} lines: rotate it with [audit] max_mib"));
        }
        let text = &buf[..buf.len() - 1];
        leaves.push(merkle::leaf_hash(text));
        if leaves.len() as u64 == line {
            wanted = Some(String::from_utf8(text.to_vec()).map_err(|_| format!("line {line} is not UTF-8"))?);
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(text)
            && v.get("event").and_then(|e| e.as_str()) == Some("checkpoint")
            && let (Some(size), Some(note)) =
                (v.get("size").and_then(serde_json::Value::as_u64), v.get("checkpoint").and_then(|c| c.as_str()))
            && size >= line
        {
            best = Some((size, note.to_string()));
        }
    }
    let text = wanted.ok_or_else(|| format!("the log has no line {line} (it has {})", leaves.len()))?;
    let (size, checkpoint) = best.ok_or_else(|| format!("no checkpoint covers line {line} yet (the next one will)"))?;
    let proof = merkle::inclusion_proof(&leaves, line - 1, size).map_err(|e| e.to_string())?;
    Ok(InclusionProof { line, text, checkpoint, proof: proof.iter().map(|h| B64.encode(h)).collect() })
}

/// Checks an inclusion proof without the log: the checkpoint's signature (under `trusted`), then
/// the line's path to the signed root. Returns the checkpoint.
///
/// # Errors
/// A signature, a hash or the proof does not check.
pub fn check_proof(
    proof: &InclusionProof,
    trusted: &TrustedKeys<'_>,
    verify: &SignatureCheck<'_>,
) -> Result<Checkpoint, String> {
    let origin = proof.checkpoint.lines().next().unwrap_or_default();
    let verifiers = trusted(origin);
    if verifiers.is_empty() {
        return Err(format!("no trusted key for the log {origin:?} (give --pub)"));
    }
    let (cp, _) = note::open_checkpoint(&proof.checkpoint, &verifiers, verify).map_err(|e| e.to_string())?;
    if proof.line == 0 || proof.line > cp.size {
        return Err(format!("line {} is not among the checkpoint's {} lines", proof.line, cp.size));
    }
    let path = proof
        .proof
        .iter()
        .map(|h| {
            B64.decode(h).ok().and_then(|b| <Hash>::try_from(b.as_slice()).ok()).ok_or("a proof hash is not 32 bytes")
        })
        .collect::<Result<Vec<Hash>, _>>()?;
    merkle::verify_inclusion(merkle::leaf_hash(proof.text.as_bytes()), proof.line - 1, cp.size, &path, &cp.root)
        .map_err(|e| format!("line {} is not in the signed log: {e}", proof.line))?;
    Ok(cp)
}

/// A checkpoint recorded out of band, as `audit head` printed it: its signature is checked too.
///
/// # Errors
/// It does not verify.
pub fn recorded(note_text: &str, trusted: &TrustedKeys<'_>, verify: &SignatureCheck<'_>) -> Result<Recorded, String> {
    let origin = note_text.lines().next().unwrap_or_default();
    let (cp, _) = note::open_checkpoint(note_text, &trusted(origin), verify).map_err(|e| e.to_string())?;
    Ok(Recorded { size: cp.size, root: cp.root })
}
