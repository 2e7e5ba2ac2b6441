//! The audit log as a transparency log: signed checkpoints every few lines; editing,
//! reordering, inserting or deleting a line before a checkpoint is detected; truncation is
//! detected given a checkpoint recorded out of band (and, documented, not without); a rewritten
//! log with re-signed checkpoints fails against a recorded one; eight writers and a server keep
//! one valid log; `kill -9` leaves a log that verifies up to its last whole line; the audit key
//! signs nothing else, and key use stops when it cannot sign. And interop, both ways, with Go's
//! `sumdb/note` and `sumdb/tlog` (tests/data/audit/tlogcheck.go).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, OFFLINE, P, run, stderr, stdout};
use crate::server::Server;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A config whose audit log is signed by an Ed25519 file key every `every` lines.
fn config(dir: &Path, every: u64) -> PathBuf {
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let path = common::write_config(dir, &common::components_dir(), &[OFFLINE, sim], "");
    let key = dir.join("audit.key");
    if !key.exists() {
        let out = common::run_local(
            &path,
            &["keygen", "--alg", "EdDSA", "--out", s(&key), "--pub", s(&dir.join("audit.pub"))],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        // keygen's own line starts a log the tests do not want.
        let _ = fs::remove_file(dir.join("audit.jsonl"));
        let _ = fs::remove_file(dir.join("audit.jsonl.checkpoint"));
    }
    let text = fs::read_to_string(&path).unwrap().replace(
        "name = \"simulation\"\n",
        "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"tlog\" }\n",
    );
    let text = format!(
        "{text}\n[audit]\npath = \"audit.jsonl\"\nkey = \"file:audit.key\"\norigin = \"example.org/cryptohost/audit\"\n\
         checkpoint_every = {every}\n"
    );
    fs::write(&path, text).unwrap();
    path
}

/// A server for `config` (in `dir`) that lets this user sign with `sim:` keys.
fn serve(dir: &Path, config: &Path) -> Server {
    let rules = format!(
        "[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\"]\nkeys = [\"sim:*\"]\n",
        crate::server::me()
    );
    let text = fs::read_to_string(config).unwrap()
        + &format!("\n[service]\nlisten = \"unix:{}\"\n{rules}", dir.join("s.sock").display());
    fs::write(config, text).unwrap();
    Server::start_with(dir.to_path_buf(), config.to_path_buf(), None)
}

fn sign_n(config: &Path, n: usize) {
    let msg = config.parent().unwrap().join("msg");
    fs::write(&msg, b"audited").unwrap();
    for i in 0..n {
        // Each line its own (a reordering of equal lines would change nothing).
        let key = format!("sim:k{i}");
        let out = run(config, &["sign", s(&msg), "--key", &key, "--alg", "ES256", "--out", "-"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

fn verify(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let out = run(config, &all);
    (out.status.code(), format!("{}{}", stdout(&out), stderr(&out)))
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(String::from).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

#[test]
fn changes_before_a_checkpoint_are_detected_and_truncation_given_a_recorded_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 4);
    sign_n(&config, 5);
    // Recorded out of band now (a witness, a ticket).
    let early = dir.path().join("early.checkpoint");
    fs::write(&early, run(&config, &["audit", "head"]).stdout).unwrap();
    sign_n(&config, 9);
    let log = dir.path().join("audit.jsonl");
    let pubkey = dir.path().join("audit.pub");
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&pubkey)]);
    assert_eq!(code, Some(0), "{said}");
    let original = lines(&log);
    let checkpoints: Vec<usize> =
        original.iter().enumerate().filter(|(_, l)| l.contains("\"event\":\"checkpoint\"")).map(|(i, _)| i).collect();
    assert!(checkpoints.len() >= 3, "every 4 lines: {original:?}");
    let n = checkpoints.len();
    assert!(said.contains("intact") && said.contains(&format!("{n} of {n} checkpoints verified")), "{said}");
    let last_cp = *checkpoints.last().unwrap();

    let edited = |name: &str, change: &dyn Fn(&mut Vec<String>)| {
        let mut l = original.clone();
        change(&mut l);
        let path = dir.path().join(name);
        write_lines(&path, &l);
        verify(&config, &[s(&path), "--pub", s(&pubkey)])
    };
    for (name, change) in [
        ("edited", &(|l: &mut Vec<String>| l[1] = l[1].replace("ES256", "ES384")) as &dyn Fn(&mut Vec<String>)),
        ("reordered", &|l: &mut Vec<String>| l.swap(1, 2)),
        ("inserted", &|l: &mut Vec<String>| l.insert(2, l[1].clone())),
        ("deleted", &|l: &mut Vec<String>| {
            l.remove(1);
        }),
        ("edited-late", &|l: &mut Vec<String>| l[last_cp - 1] = l[last_cp - 1].replace("\"ok\"", "\"error: x\"")),
    ] {
        let (code, said) = edited(name, change);
        assert_eq!(code, Some(1), "{name}: {said}");
        assert!(said.contains("NOT INTACT") && said.contains("first bad line"), "{name}: {said}");
    }
    // A forged checkpoint signature.
    let (code, said) = edited("forged", &|l: &mut Vec<String>| {
        let cp = checkpoints[0];
        l[cp] = l[cp].replace("\\n\\n\u{2014} ", "\\n\\n\u{2014} x");
    });
    assert_eq!(code, Some(1), "{said}");

    // Cut after the last checkpoint: nothing here shows it (said, not hidden)...
    let cut = dir.path().join("cut.jsonl");
    write_lines(&cut, &original[..=last_cp]);
    let (code, said) = verify(&config, &[s(&cut), "--pub", s(&pubkey)]);
    assert_eq!(code, Some(0), "{said}");
    let full = verify(&config, &[s(&log), "--pub", s(&pubkey)]).1;
    assert!(full.contains("come after the last verified checkpoint"), "the uncovered tail is said: {full}");
    // ...but cut below a checkpoint recorded out of band, it is.
    let cut_early = dir.path().join("cut-early.jsonl");
    write_lines(&cut_early, &original[..3]);
    let (code, said) = verify(&config, &[s(&cut_early), "--pub", s(&pubkey), "--checkpoint", s(&early)]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("lines were cut from its end"), "{said}");
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&pubkey), "--checkpoint", s(&early)]);
    assert_eq!(code, Some(0), "the log still holds the recorded lines: {said}");

    // One line proved against the signed head, and the proof checked without the log.
    let proof = dir.path().join("proof.json");
    let out = run(&config, &["audit", "prove", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(&proof, &out.stdout).unwrap();
    let out = run(&config, &["audit", "check-proof", s(&proof), "--pub", s(&pubkey)]);
    assert!(out.status.success() && stdout(&out).contains("valid: line 2"), "{}{}", stdout(&out), stderr(&out));
    let mut p: serde_json::Value = serde_json::from_slice(&fs::read(&proof).unwrap()).unwrap();
    p["text"] = serde_json::Value::String(p["text"].as_str().unwrap().replace("ES256", "ES512"));
    fs::write(&proof, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = run(&config, &["audit", "check-proof", s(&proof), "--pub", s(&pubkey)]);
    assert_eq!(out.status.code(), Some(2), "a changed line is not in the log");
    assert!(stderr(&out).contains("not in the signed log"), "{}", stderr(&out));
}

#[test]
fn a_rewritten_log_with_re_signed_checkpoints_fails_against_a_recorded_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 3);
    sign_n(&config, 4);
    let recorded = dir.path().join("recorded.checkpoint");
    fs::write(&recorded, run(&config, &["audit", "head"]).stdout).unwrap();
    // Whoever holds the audit key writes another history from the start, checkpoints and all.
    let log = dir.path().join("audit.jsonl");
    fs::rename(&log, dir.path().join("original.jsonl")).unwrap();
    let msg = dir.path().join("other");
    fs::write(&msg, b"another history").unwrap();
    for _ in 0..6 {
        let out = run(&config, &["sign", s(&msg), "--key", "sim:other", "--alg", "ES384", "--out", "-"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let pubkey = dir.path().join("audit.pub");
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&pubkey)]);
    assert_eq!(code, Some(0), "on its own, the rewritten log verifies: {said}");
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&pubkey), "--checkpoint", s(&recorded)]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("was rewritten"), "{said}");
}

#[test]
fn eight_writers_and_a_server_keep_one_valid_log_and_kill_9_leaves_whole_lines() {
    if common::server_pass_repeats_this() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 7);
    let server = serve(dir.path(), &config);
    let msg = dir.path().join("msg");
    fs::write(&msg, b"concurrent").unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (config, msg) = (config.clone(), msg.clone());
            std::thread::spawn(move || {
                for _ in 0..6 {
                    let key = format!("sim:w{i}");
                    let out =
                        common::run_local(&config, &["sign", s(&msg), "--key", &key, "--alg", "ES256", "--out", "-"]);
                    assert!(out.status.success(), "{}", stderr(&out));
                }
            })
        })
        .collect();
    let data = base64_of(b"through the server");
    for _ in 0..24 {
        let (status, r) =
            server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:srv", "algorithm": "ES256", "data": data}));
        assert_eq!(status, 200, "{r}");
    }
    for w in writers {
        w.join().expect("no panic");
    }
    let log = dir.path().join("audit.jsonl");
    let all = lines(&log);
    let uses = all.iter().filter(|l| l.contains("\"operation\":\"sign\"")).count();
    assert_eq!(uses, 8 * 6 + 24, "every key use is one line");
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("intact"), "{said}");

    // kill -9 while clients sign: whole lines only, and the log verifies.
    let socket = server.socket.clone();
    let signers: Vec<_> = (0..4)
        .map(|_| {
            let socket = socket.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let body = serde_json::json!({"key": "sim:srv", "algorithm": "ES256", "data": data});
                    let (status, _) = crate::server::http(
                        &socket,
                        "POST",
                        "/v1/sign",
                        Some("application/json"),
                        &serde_json::to_vec(&body).unwrap(),
                    );
                    if status != 200 {
                        return;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for t in signers {
        let _ = t.join();
    }
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
    // A torn last line (a writer stopped mid-write): verified up to the last whole line, said;
    // the next writer cuts it off, and the log is whole again.
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"{\"time\":\"2026-").unwrap();
    drop(f);
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("torn line") && said.contains("verified up to line"), "{said}");
    let out = common::run_local(&config, &["sign", s(&msg), "--key", "sim:after", "--alg", "ES256", "--out", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("torn line"), "{said}");
    assert!(fs::read_to_string(&log).unwrap().lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn the_audit_key_signs_nothing_else_and_key_use_stops_when_it_cannot_sign() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 2);
    let msg = dir.path().join("msg");
    fs::write(&msg, b"x").unwrap();
    let key = format!("file:{}", dir.path().join("audit.key").display());
    let out = common::run_local(&config, &["sign", s(&msg), "--key", &key, "--alg", "EdDSA"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is the audit key"), "{}", stderr(&out));
    sign_n(&config, 1);
    // The audit key is gone: the use that makes a checkpoint due fails, saying why.
    fs::rename(dir.path().join("audit.key"), dir.path().join("audit.key.away")).unwrap();
    let out = run(&config, &["sign", s(&msg), "--key", "sim:k", "--alg", "ES256", "--out", "-"]);
    assert_eq!(out.status.code(), Some(2), "fail closed");
    assert!(stderr(&out).contains("checkpoint") && stderr(&out).contains("could not be signed"), "{}", stderr(&out));
    fs::rename(dir.path().join("audit.key.away"), dir.path().join("audit.key")).unwrap();
    sign_n(&config, 1);
    let (code, said) = verify(&config, &["--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
}

/// Builds tests/data/audit/tlogcheck.go with Go from Debian's packages.
fn tlogcheck() -> Option<PathBuf> {
    if Command::new("go").arg("version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "go is installed in CI (just setup)");
        eprintln!("SKIPPED: go is not installed (just setup installs golang-go and golang-golang-x-mod-dev)");
        return None;
    }
    let out_dir = common::repo_root().join("target/interop");
    fs::create_dir_all(&out_dir).unwrap();
    let bin = out_dir.join(format!("tlogcheck-{}", std::process::id()));
    let out = Command::new("go")
        .args(["build", "-o", s(&bin), s(&common::data("audit/tlogcheck.go"))])
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOFLAGS", "")
        .env("GOCACHE", out_dir.join("gocache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "go build: {}", stderr(&out));
    Some(bin)
}

#[test]
fn go_checks_our_checkpoints_trees_and_proofs_and_we_check_a_note_go_signed() {
    if common::server_pass_repeats_this() {
        return;
    }
    let Some(go) = tlogcheck() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 5);
    sign_n(&config, 12);
    let log = dir.path().join("audit.jsonl");
    let head = dir.path().join("head.checkpoint");
    fs::write(&head, run(&config, &["audit", "head"]).stdout).unwrap();
    let vkey = stdout(&run(&config, &["audit", "key"])).trim().to_string();
    assert!(vkey.starts_with("example.org/cryptohost/audit+"), "{vkey}");
    let go_run = |args: &[&str]| {
        let out = Command::new(&go).args(args).output().unwrap();
        assert!(out.status.success(), "tlogcheck {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    // Go opens our checkpoint with the verifier key we print, and recomputes its root from the
    // log's lines.
    let said = go_run(&["verify", &vkey, s(&head), s(&log)]);
    assert!(said.starts_with("ok "), "{said}");
    // Go checks our inclusion proof of line 3.
    let out = run(&config, &["audit", "prove", "3"]);
    let proof: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (line_file, proof_file, cp_file) =
        (dir.path().join("line"), dir.path().join("proof.txt"), dir.path().join("proof.checkpoint"));
    fs::write(&line_file, proof["text"].as_str().unwrap()).unwrap();
    let hashes: Vec<&str> = proof["proof"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    fs::write(&proof_file, hashes.join("\n") + "\n").unwrap();
    fs::write(&cp_file, proof["checkpoint"].as_str().unwrap()).unwrap();
    let said = go_run(&["prove-check", &vkey, s(&cp_file), s(&line_file), "2", s(&proof_file)]);
    assert!(said.starts_with("ok"), "{said}");

    // The other way: Go signs our checkpoint's body with a key of its own; cryptohost checks
    // the note under Go's verifier key, and the proof against it.
    let body: String = proof["checkpoint"].as_str().unwrap().split("\n\n").next().unwrap().to_string() + "\n";
    let body_file = dir.path().join("body");
    fs::write(&body_file, &body).unwrap();
    let signed = go_run(&["sign", "example.org/cryptohost/audit", s(&body_file)]);
    let (go_vkey, go_note) = signed.split_once('\n').unwrap();
    let go_vkey_file = dir.path().join("go.vkey");
    fs::write(&go_vkey_file, go_vkey).unwrap();
    let mut by_go = proof.clone();
    by_go["checkpoint"] = serde_json::Value::String(go_note.to_string());
    let go_proof = dir.path().join("go-proof.json");
    fs::write(&go_proof, serde_json::to_vec(&by_go).unwrap()).unwrap();
    let out = run(&config, &["audit", "check-proof", s(&go_proof), "--pub", s(&go_vkey_file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Under our own key instead, Go's signature is not one we trust.
    let out = run(&config, &["audit", "check-proof", s(&go_proof), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let _ = fs::remove_file(&go);
}

/// `[audit] max_mib`: the log is rotated when it reaches its size; the new file's genesis names
/// the old file, its whole root and its last checkpoint, and both files verify.
#[test]
fn a_log_rotated_by_size_starts_with_a_genesis_naming_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 4);
    fs::write(&config, fs::read_to_string(&config).unwrap() + "max_mib = 1\n").unwrap();
    // Grow the log near 1 MiB with one long line (an earlier history, whole lines).
    let log = dir.path().join("audit.jsonl");
    sign_n(&config, 1);
    let filler = format!("{{\"event\":\"filler\",\"detail\":\"{}\"}}\n", "x".repeat(1 << 19));
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, filler.as_bytes()).unwrap();
    std::io::Write::write_all(&mut f, filler.as_bytes()).unwrap();
    drop(f);
    sign_n(&config, 2);
    let rotated: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("audit.jsonl.")
                && !p.to_string_lossy().ends_with(".checkpoint")
                && !p.to_string_lossy().ends_with(".edge")
        })
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let genesis: serde_json::Value = serde_json::from_str(&lines(&log)[0]).unwrap();
    assert_eq!(genesis["event"], "genesis");
    assert_eq!(genesis["host_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(genesis["config_sha256"].as_str().unwrap().len(), 64);
    let previous = &genesis["previous"];
    assert_eq!(previous["file"], rotated[0].file_name().unwrap().to_str().unwrap());
    assert_eq!(previous["lines"].as_u64().unwrap() as usize, lines(&rotated[0]).len());
    assert!(previous["checkpoint"].as_str().unwrap().contains("example.org/cryptohost/audit"), "{previous}");
    let pubkey = dir.path().join("audit.pub");
    let (code, said) = verify(&config, &[s(&rotated[0]), s(&log), "--pub", s(&pubkey)]);
    assert_eq!(code, Some(0), "{said}");
    // A file left out between them, or given out of order: the genesis does not match.
    let (code, said) = verify(&config, &[s(&log), s(&rotated[0]), "--pub", s(&pubkey)]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("no genesis naming the file before"), "{said}");
    // The seed in the config is not what the digest hashes.
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("seed = \"tlog\""));
    let changed = text.replace("seed = \"tlog\"", "seed = \"other\"");
    let again = dir.path().join("again");
    fs::create_dir(&again).unwrap();
    let moved = again.join("cryptohost.toml");
    fs::write(&moved, changed).unwrap();
    fs::copy(dir.path().join("audit.key"), again.join("audit.key")).unwrap();
    sign_n(&moved, 1);
    let other: serde_json::Value = serde_json::from_str(&lines(&again.join("audit.jsonl"))[0]).unwrap();
    assert_eq!(other["config_sha256"], genesis["config_sha256"], "settings are redacted before hashing");
}

/// `[audit] syslog_socket`: each checkpoint also goes to syslog (here, a socket the test binds).
#[test]
fn checkpoints_also_go_to_a_syslog_socket() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 2);
    let socket = dir.path().join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    syslog.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    fs::write(&config, fs::read_to_string(&config).unwrap() + &format!("syslog_socket = {:?}\n", s(&socket))).unwrap();
    sign_n(&config, 2);
    let mut buf = vec![0u8; 1 << 16];
    let n = syslog.recv(&mut buf).expect("a checkpoint arrives");
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(message.starts_with("<110>1 ") && message.contains(" cryptohost "), "{message}");
    let json = &message[message.find('{').unwrap()..];
    let record: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(record["event"], "checkpoint");
    assert!(record["checkpoint"].as_str().unwrap().starts_with("example.org/cryptohost/audit\n"), "{record}");
    let head = stdout(&run(&config, &["audit", "head"]));
    syslog.set_nonblocking(true).unwrap();
    let mut last = record;
    while let Ok(n) = syslog.recv(&mut buf) {
        let message = String::from_utf8_lossy(&buf[..n]).to_string();
        last = serde_json::from_str(&message[message.find('{').unwrap()..]).unwrap();
    }
    assert_eq!(last["checkpoint"].as_str().unwrap(), head, "the last one sent is the head");
}

/// Verifications a server's peers ask for are recorded (after the answer), naming the key
/// that verified, at most 20 a minute for one caller; `[audit] verifications = false` turns
/// them off. The log stays one valid tree with them in it.
#[test]
fn a_peers_verifications_are_recorded_bounded_and_can_be_turned_off() {
    if common::server_pass_repeats_this() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 10);
    let text = fs::read_to_string(&config).unwrap()
        + &format!("\n[service]\nlisten = \"unix:{}\"\n", dir.path().join("s.sock").display());
    fs::write(&config, &text).unwrap();
    let server = Server::start_with(dir.path().to_path_buf(), config.clone(), None);
    let public = stdout(&common::run_local(&config, &["keys", "public", "sim:v", "--alg", "ES256"]));
    let msg = dir.path().join("msg");
    fs::write(&msg, b"verify me").unwrap();
    let sig = dir.path().join("sig");
    assert!(
        common::run_local(&config, &["sign", s(&msg), "--key", "sim:v", "--alg", "ES256", "--out", s(&sig)])
            .status
            .success()
    );
    let body = serde_json::json!({"algorithm": "ES256", "public_key": public, "data": base64_of(b"verify me"),
        "signature": base64_of(&fs::read(&sig).unwrap())});
    for _ in 0..25 {
        let (status, r) = server.json("POST", "/v1/verify", body.clone());
        assert_eq!((status, r["valid"].as_bool()), (200, Some(true)), "{r}");
    }
    // Written after the answers: wait for them (no timing assumed, only an upper bound).
    let log = dir.path().join("audit.jsonl");
    let started = std::time::Instant::now();
    let verifies = loop {
        let n = lines(&log).iter().filter(|l| l.contains("\"event\":\"verify\"")).count();
        if n >= 20 || started.elapsed() > std::time::Duration::from_secs(60) {
            break n;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(verifies, 20, "at most 20 a minute for one caller");
    let line: serde_json::Value =
        serde_json::from_str(lines(&log).iter().find(|l| l.contains("\"event\":\"verify\"")).unwrap()).unwrap();
    assert!(line["detail"].as_str().unwrap().starts_with("ES256 valid by key sha256:"), "{line}");
    assert_eq!(line["caller"]["uid"], crate::server::me());
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
    drop(server);
    // Off: none.
    let off = text.replace("checkpoint_every = 10\n", "checkpoint_every = 10\nverifications = false\n");
    fs::write(&config, format!("{off}\n[policy]\nverify_algorithms = [\"ES256\"]\n")).unwrap();
    fs::remove_file(&log).unwrap();
    let _ = fs::remove_file(dir.path().join("s.sock"));
    let server = Server::start_with(dir.path().to_path_buf(), config.clone(), None);
    let (status, _) = server.json("POST", "/v1/verify", body);
    assert_eq!(status, 200);
    let (status, _) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:v", "algorithm": "ES256", "data": "AA"}));
    assert_eq!(status, 403, "a denial's line is written and synced before its answer");
    assert!(lines(&log).iter().all(|l| !l.contains("\"event\":\"verify\"")));
    // A verification the policy refuses is recorded all the same.
    let public =
        stdout(&common::run_local(&config, &["keys", "public", "sim:rsa", "--alg", "RS256", "--rsa-bits", "2048"]));
    let refused = serde_json::json!({"algorithm": "RS256", "public_key": public, "data": base64_of(b"x"),
        "signature": base64_of(&[1u8; 256])});
    let (status, r) = server.json("POST", "/v1/verify", refused);
    assert_eq!(status, 403, "{r}");
    let started = std::time::Instant::now();
    while !lines(&log).iter().any(|l| l.contains("\"event\":\"refused-by-policy\"")) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no refused-by-policy line");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `audit verify --anchors DIR`: the audit key as a trust anchor for the purpose `audit-log`.
#[test]
fn checkpoints_verify_under_a_trust_anchor_for_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 3);
    sign_n(&config, 4);
    let public = dir.path().join("audit.pub");
    let window = ("2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z");
    let anchors = crate::anchors::anchors_dir(
        dir.path(),
        &[("audit-key-001", "EdDSA", &public, "audit-log", window.0, window.1)],
        "2099-01-01T00:00:00Z",
    );
    let (code, said) = verify(&config, &["--anchors", s(&anchors)]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("intact"), "{said}");
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::copy(&config, other.join("cryptohost.toml")).unwrap();
    let anchors = crate::anchors::anchors_dir(
        &other,
        &[("audit-key-001", "EdDSA", &public, "release-signing", window.0, window.1)],
        "2099-01-01T00:00:00Z",
    );
    let (code, said) = verify(&config, &["--anchors", s(&anchors)]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("valid now for the purpose audit-log"), "{said}");
}

/// A reload (SIGHUP) and a clean stop (SIGTERM) each sign a checkpoint of the log as it is.
#[test]
fn a_reload_and_a_clean_stop_each_sign_a_checkpoint() {
    if common::server_pass_repeats_this() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1000);
    let server = serve(dir.path(), &config);
    let (status, _) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:r", "algorithm": "ES256", "data": "AA"}));
    assert_eq!(status, 200);
    let log = dir.path().join("audit.jsonl");
    let checkpoints = || lines(&log).iter().filter(|l| l.contains("\"event\":\"checkpoint\"")).count();
    assert_eq!(checkpoints(), 0, "not due yet");
    let _ = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status();
    let started = std::time::Instant::now();
    while checkpoints() < 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no checkpoint after the reload");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status, _) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:r", "algorithm": "ES256", "data": "AA"}));
    assert_eq!(status, 200);
    let (exit, _, log_text) = server.stop();
    assert!(exit.success(), "{log_text}");
    assert_eq!(checkpoints(), 2, "one more at the stop");
    let last: serde_json::Value = serde_json::from_str(lines(&log).last().unwrap()).unwrap();
    assert_eq!(last["event"], "checkpoint", "the stop's checkpoint is the last line");
    assert_eq!(last["size"].as_u64().unwrap() as usize, lines(&log).len() - 1, "and covers every line before it");
    let (code, said) = verify(&config, &[s(&log), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(0), "{said}");
}

/// A "log" of millions of empty lines is checked up to a bound, not into all memory.
#[test]
fn a_log_of_empty_lines_is_checked_within_a_bound() {
    if common::server_pass_repeats_this() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 3);
    let hostile = dir.path().join("hostile.jsonl");
    fs::write(&hostile, vec![b'\n'; (1 << 23) + 10]).unwrap();
    let (code, said) = verify(&config, &[s(&hostile), "--pub", s(&dir.path().join("audit.pub"))]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("more than 8388608 lines"), "{said}");
}
