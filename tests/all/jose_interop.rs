//! JOSE interop, both directions, with two independent implementations: Python's jwcrypto
//! (`tests/interop/jose/peer.py`) and Node's jose (`tests/interop/jose/peer.mjs`), installed
//! under `target/interop` by `tests/interop/jose/setup.sh` (the `jose-peers` recipe, which
//! `just test` runs first).
//!
//! cryptohost signs with simulation keys (`sim:`, derived from the config's seed, so in the
//! suite's server mode the signing goes through a server too); the peers sign with private keys
//! made by `cryptohost keygen` (PKCS#8 PEM), and cryptohost verifies with its SPKI PEM. Each
//! case also checks the negative on the receiving side: one changed payload byte is invalid
//! (exit 1). The matrix, every case for both peers:
//!
//! - JWS: ES256 ES384 ES512 RS256 RS384 RS512 PS256 PS384 PS512 EdDSA x compact, flattened,
//!   general x (cryptohost signs, the peer verifies with the SPKI PEM; the peer signs, cryptohost
//!   verifies): 10 x 3 x 2 x 2 = 120 cases;
//! - cryptohost's JWK (`keys public --format jwk`) imported by the peer, which verifies
//!   cryptohost's compact JWS with it: 10 x 2 = 20;
//! - RFC 7797 unencoded payloads: ES256 and RS256 x (compact detached, flattened) x 2
//!   directions x 2 peers = 16;
//! - the peer's JWK (of a keygen public key) as cryptohost's `--pub`: 10 x 2 = 20;
//! - RFC 7638 thumbprints and JWK members equal (cryptohost's `trust fingerprint --json`, its
//!   JWK `kid`, the peer's thumbprint of the PEM and of the JWK): 5 key types x 2 = 10;
//! - JWT: cryptohost's `jwt sign` verified by the peer, the peer's verified by `jwt verify
//!   --iss --aud`, claims equal: 10 x 2 directions x 2 = 40.
//!
//! 226 cases in all. Each test counts the cases it runs and asserts its exact number, and
//! collects every disagreement before failing (so one run shows them all). A missing peer
//! fails the test; outside CI (`CI` not "true"), `CRYPTOHOST_SKIP_PEERS=1` turns that into a
//! printed "NOT RUN".

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::common::{self, run, stderr, stdout};

const ALGS: [&str; 10] = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"];
const SERIALIZATIONS: [&str; 3] = ["compact", "flattened", "general"];
/// Each key type with an algorithm that names it (an RSA key serves RS* and PS*).
const KEY_TYPES: [(&str, &str); 5] =
    [("p256", "ES256"), ("p384", "ES384"), ("p521", "ES512"), ("rsa", "RS256"), ("ed25519", "EdDSA")];

/// A payload with bytes that are not UTF-8, so base64url carries it.
const PAYLOAD: &[u8] = b"{\"interop\":\"cryptohost\",\"n\":[1,2,3]}\x00\xff\xfe binary tail \xe2\x80\x99";
/// An unencoded (RFC 7797) payload: text with '.', which a compact JWS can hold only detached.
const UNENCODED: &str = "$.02 \u{2014} it\u{2019}s an unencoded payload: {\"a\":[1,2]}.";

fn key_type(alg: &str) -> &'static str {
    match alg {
        "ES256" => "p256",
        "ES384" => "p384",
        "ES512" => "p521",
        "EdDSA" => "ed25519",
        _ => "rsa",
    }
}

/// cryptohost's signing key for `alg`: one simulation key per key type.
fn sim_key(alg: &str) -> String {
    format!("sim:interop-{}", key_type(alg))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// At most `n` characters of `text`, for a failure message.
fn clip(text: &str, n: usize) -> String {
    let t = text.trim();
    if t.chars().count() <= n { t.to_string() } else { format!("{}...", t.chars().take(n).collect::<String>()) }
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

// --- The peers ---------------------------------------------------------------------------

struct Peer {
    name: &'static str,
    command: Vec<String>,
    env: Vec<(String, String)>,
    version: String,
}

/// What one peer job printed.
struct PeerOut {
    code: i64,
    stdout: String,
    stderr: String,
}

impl PeerOut {
    fn show(&self, peer: &Peer, job: &[String]) -> String {
        format!(
            "{} {}: exit {}, stdout {:?}, stderr {:?}",
            peer.command.join(" "),
            job.join(" "),
            self.code,
            clip(&self.stdout, 300),
            clip(&self.stderr, 600)
        )
    }
}

static BATCHES: AtomicUsize = AtomicUsize::new(0);

impl Peer {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.command[0]);
        c.args(&self.command[1..]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs every job (an argument list of the peer's CLI) in one process.
    fn batch(&self, dir: &Path, jobs: &[Vec<String>]) -> Vec<PeerOut> {
        let n = BATCHES.fetch_add(1, Ordering::Relaxed);
        let file = dir.join(format!("{}-jobs-{n}.json", self.name));
        fs::write(&file, serde_json::to_vec(jobs).unwrap()).unwrap();
        let out = self.command().arg("batch").arg(&file).output().expect("run the peer");
        assert!(
            out.status.success(),
            "{} batch {} failed: {}",
            self.name,
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let results: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: batch output is not JSON ({e}): {}", self.name, stdout(&out)));
        assert_eq!(results.len(), jobs.len(), "{}: one result per job", self.name);
        results
            .into_iter()
            .map(|r| PeerOut {
                code: r["code"].as_i64().expect("code"),
                stdout: r["stdout"].as_str().unwrap_or_default().to_string(),
                stderr: r["stderr"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

/// A peer if its program runs and says which library it is (`version`), else why not.
fn probe(name: &'static str, command: Vec<String>, env: Vec<(String, String)>) -> Result<Peer, String> {
    let mut c = Command::new(&command[0]);
    c.args(&command[1..]).arg("version");
    for (k, v) in &env {
        c.env(k, v);
    }
    match c.output() {
        Ok(o) if o.status.success() && stdout(&o).starts_with(name) => {
            Ok(Peer { name, command, env, version: stdout(&o).trim().to_string() })
        }
        Ok(o) => Err(format!("{}: {}", command.join(" "), clip(&stderr(&o), 300))),
        Err(e) => Err(format!("{}: {e}", command[0])),
    }
}

fn find_peers() -> Result<Vec<Peer>, String> {
    let root = common::repo_root();
    let interop = root.join("target/interop");
    let scripts = root.join("tests/interop/jose");
    let py = scripts.join("peer.py").display().to_string();
    // The venv setup.sh makes, else its `pip install --target` fallback.
    let pylib = interop.join("pylib");
    let mut candidates = vec![(interop.join("venv/bin/python").display().to_string(), vec![])];
    if pylib.is_dir() {
        candidates.push(("python3".to_string(), vec![("PYTHONPATH".to_string(), pylib.display().to_string())]));
    }
    let mut why = Vec::new();
    let mut jwcrypto = None;
    for (python, env) in candidates {
        match probe("jwcrypto", vec![python, py.clone()], env) {
            Ok(p) => {
                jwcrypto = Some(p);
                break;
            }
            Err(e) => why.push(e),
        }
    }
    let node_dir = interop.join("node").display().to_string();
    let jose = probe(
        "jose",
        vec!["node".to_string(), scripts.join("peer.mjs").display().to_string()],
        vec![("JOSE_PEER_NODE_DIR".to_string(), node_dir)],
    );
    match (jwcrypto, jose) {
        (Some(a), Ok(b)) => Ok(vec![a, b]),
        (a, b) => {
            let mut missing = Vec::new();
            if a.is_none() {
                missing.push(format!("jwcrypto ({})", why.join("; ")));
            }
            if let Err(e) = b {
                missing.push(format!("jose ({e})"));
            }
            Err(missing.join(", "))
        }
    }
}

/// The two peers; or, when one is missing and CRYPTOHOST_SKIP_PEERS=1 outside CI, None (said).
fn peers_or_skip(test: &str) -> Option<Vec<Peer>> {
    match find_peers() {
        Ok(peers) => {
            println!("{test}: peers {}", peers.iter().map(|p| p.version.as_str()).collect::<Vec<_>>().join(", "));
            Some(peers)
        }
        Err(missing) => {
            let msg = format!(
                "JOSE interop peer(s) not installed: {missing}. `just jose-peers` \
                 (tests/interop/jose/setup.sh) installs them"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg} (CI=true: this test must run)");
            }
            if std::env::var("CRYPTOHOST_SKIP_PEERS").is_ok_and(|v| v == "1") {
                println!("NOT RUN: {test}: {msg} (CRYPTOHOST_SKIP_PEERS=1)");
                return None;
            }
            panic!("{msg}; or set CRYPTOHOST_SKIP_PEERS=1 to skip this test outside CI");
        }
    }
}

// --- Counting ----------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    run: usize,
    failures: Vec<String>,
}

impl Tally {
    fn case(&mut self, label: &str, result: Result<(), String>) {
        self.run += 1;
        if let Err(e) = result {
            self.failures.push(format!("{label}: {e}"));
        }
    }

    fn finish(self, test: &str, expected: usize) {
        println!("{test}: {} cases run, {} disagreements", self.run, self.failures.len());
        assert!(
            self.failures.is_empty(),
            "{test}: {} of {} cases disagree:\n\n{}",
            self.failures.len(),
            self.run,
            self.failures.join("\n\n")
        );
        assert_eq!(self.run, expected, "{test}: the number of cases run");
    }
}

// --- cryptohost --------------------------------------------------------------------------

/// What one cryptohost command did.
struct Ch {
    args: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ch {
    fn show(&self) -> String {
        format!(
            "cryptohost {}: exit {:?}, stdout {:?}, stderr {:?}",
            self.args,
            self.code,
            clip(&self.stdout, 300),
            clip(&self.stderr, 600)
        )
    }

    fn ok(self) -> Result<String, String> {
        if self.code == Some(0) { Ok(self.stdout) } else { Err(self.show()) }
    }
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    files: AtomicUsize,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::server::config(dir.path(), Some("jose-interop"), "");
        Setup { dir, config, files: AtomicUsize::new(0) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// A new file (a unique name from `stem`).
    fn fresh(&self, stem: &str, bytes: &[u8]) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        self.write(&format!("{stem}-{n}"), bytes)
    }

    fn ch(&self, args: &[&str]) -> Ch {
        let out = run(&self.config, args);
        Ch { args: args.join(" "), code: out.status.code(), stdout: stdout(&out), stderr: stderr(&out) }
    }

    /// The public key of cryptohost's simulation key for `alg`: SPKI PEM file, JWK file, JWK.
    fn sim_public(&self, alg: &str) -> (PathBuf, PathBuf, Value) {
        let key = sim_key(alg);
        let out = self.ch(&["keys", "public", &key, "--alg", alg, "--format", "jwk", "--json"]).ok().unwrap();
        let doc: Value = serde_json::from_str(&out).unwrap();
        let kt = key_type(alg);
        let pem = self.write(&format!("ch-{kt}.pub.pem"), doc["public_key"].as_str().unwrap().as_bytes());
        let jwk = self.write(&format!("ch-{kt}.jwk"), doc["jwk"].to_string().as_bytes());
        (pem, jwk, doc["jwk"].clone())
    }

    /// A key pair from `cryptohost keygen` for `alg`'s key type: PKCS#8 PEM, SPKI PEM.
    fn keygen(&self, alg: &str) -> (PathBuf, PathBuf) {
        let kt = key_type(alg);
        let (private, public) = (self.path(&format!("peer-{kt}.pem")), self.path(&format!("peer-{kt}.pub.pem")));
        self.ch(&["keygen", "--alg", alg, "--out", s(&private), "--pub", s(&public)]).ok().unwrap();
        (private, public)
    }

    /// cryptohost verifies `good` (valid; an attached payload exactly `payload`, through
    /// `--payload-out`) and `bad` (one payload byte changed: invalid, exit 1). `good` and `bad`
    /// are the arguments before the JWS (`--pub`, `--detached`).
    fn jws_verifies(
        &self,
        good: &[&str],
        bad: &[&str],
        jws: &Path,
        bad_jws: &Path,
        payload: &[u8],
    ) -> Result<(), String> {
        // A detached payload is the verifier's own file (and `--payload-out` writes nothing
        // then): only an attached one is compared.
        let detached = good.contains(&"--detached");
        let out = self.fresh("payload-out", b"");
        fs::remove_file(&out).unwrap();
        let mut args = vec!["jws", "verify"];
        args.extend_from_slice(good);
        if !detached {
            args.extend_from_slice(&["--payload-out", s(&out)]);
        }
        args.push(s(jws));
        let ch = self.ch(&args);
        let token = fs::read_to_string(jws).unwrap_or_default();
        ensure(ch.code == Some(0) && ch.stdout.trim() == "valid", || {
            format!("{} (the JWS: {})", ch.show(), clip(&token, 1500))
        })?;
        if !detached {
            let got = fs::read(&out).unwrap_or_default();
            ensure(got == payload, || {
                format!(
                    "{}: --payload-out holds {:?}, not the payload",
                    ch.args,
                    clip(&String::from_utf8_lossy(&got), 200)
                )
            })?;
        }
        let mut args = vec!["jws", "verify"];
        args.extend_from_slice(bad);
        args.push(s(bad_jws));
        let ch = self.ch(&args);
        ensure(ch.code == Some(1), || format!("one changed payload byte must be invalid (exit 1): {}", ch.show()))
    }
}

/// The protected headers of a JWS in any serialization.
fn protected_headers(jws: &str) -> Vec<Value> {
    let decode = |p: &str| -> Value {
        URL_SAFE_NO_PAD.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null)
    };
    let t = jws.trim();
    if t.starts_with('{') {
        let v: Value = serde_json::from_str(t).unwrap_or(Value::Null);
        match v["signatures"].as_array() {
            Some(sigs) => sigs.iter().map(|s| decode(s["protected"].as_str().unwrap_or_default())).collect(),
            None => vec![decode(v["protected"].as_str().unwrap_or_default())],
        }
    } else {
        vec![decode(t.split('.').next().unwrap_or_default())]
    }
}

/// `jws` with its payload changed by `change` (the payload's bytes: base64url-decoded, or the
/// unencoded text), in any serialization; None if it has no attached payload.
fn tamper_with(jws: &str, change: impl Fn(&mut [u8])) -> Option<String> {
    let t = jws.trim();
    let unencoded = protected_headers(t).first().is_some_and(|h| h["b64"] == json!(false));
    if t.starts_with('{') {
        let mut v: Value = serde_json::from_str(t).ok()?;
        let p = v["payload"].as_str()?.to_string();
        if unencoded {
            let mut bytes = p.into_bytes();
            change(&mut bytes);
            v["payload"] = json!(String::from_utf8(bytes).ok()?);
        } else {
            let mut bytes = URL_SAFE_NO_PAD.decode(p).ok()?;
            change(&mut bytes);
            v["payload"] = json!(b64u(&bytes));
        }
        Some(v.to_string())
    } else {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 || parts[1].is_empty() || unencoded {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(parts[1]).ok()?;
        change(&mut bytes);
        Some(format!("{}.{}.{}", parts[0], b64u(&bytes), parts[2]))
    }
}

/// The first payload byte changed (XOR 1: '$' becomes '%', '{' becomes 'z').
fn flip_first(bytes: &mut [u8]) {
    bytes[0] ^= 1;
}

fn tamper(jws: &str) -> Option<String> {
    tamper_with(jws, flip_first)
}

/// That `jws` is in the serialization asked for (one signature) and its protected header names
/// `alg`: a signer that wrote something else, or another algorithm, is caught here.
fn shape(jws: &str, serialization: &str, alg: &str) -> Result<(), String> {
    let t = jws.trim();
    let form = match serde_json::from_str::<Value>(t) {
        Ok(v) if v["signatures"].as_array().is_some_and(|a| a.len() == 1) && v.get("signature").is_none() => "general",
        Ok(v) if v["signature"].is_string() && v.get("signatures").is_none() => "flattened",
        Ok(_) => "JSON of another shape",
        Err(_) if t.split('.').count() == 3 => "compact",
        Err(_) => "not a JWS",
    };
    let headers = protected_headers(t);
    ensure(form == serialization && headers.len() == 1 && headers[0]["alg"] == json!(alg), || {
        format!("asked for {serialization} {alg}, got {form} with protected header(s) {headers:?}: {}", clip(t, 600))
    })
}

/// Whether the peer said `payload` (its verify prints the payload as base64).
fn says_payload(out: &PeerOut, payload: &[u8]) -> bool {
    out.code == 0 && STANDARD.decode(out.stdout.trim()).is_ok_and(|p| p == payload)
}

/// A peer's verify job and the same for the changed copy, for one case.
struct PeerCheck {
    label: String,
    good: Vec<String>,
    bad: Vec<String>,
    expect: Expect,
}

enum Expect {
    Payload(Vec<u8>),
    Claims(Value),
}

/// Runs the checks through `peer` in one batch and records each as a case: the good job is
/// valid with exactly the payload (or claims), the bad one invalid (exit 1).
fn peer_checks(tally: &mut Tally, peer: &Peer, dir: &Path, checks: Vec<PeerCheck>) {
    let jobs: Vec<Vec<String>> = checks.iter().flat_map(|c| [c.good.clone(), c.bad.clone()]).collect();
    let results = peer.batch(dir, &jobs);
    for (c, pair) in checks.iter().zip(results.chunks(2)) {
        let (good, bad) = (&pair[0], &pair[1]);
        let result = (|| {
            let ok = match &c.expect {
                Expect::Payload(p) => says_payload(good, p),
                Expect::Claims(claims) => {
                    good.code == 0 && serde_json::from_str::<Value>(good.stdout.trim()).is_ok_and(|v| &v == claims)
                }
            };
            let token = c.good.iter().skip_while(|a| *a != "--jws" && *a != "--jwt").nth(1);
            let token = token.map(|t| fs::read_to_string(t).unwrap_or_default()).unwrap_or_default();
            ensure(ok, || format!("{} (the token: {})", good.show(peer, &c.good), clip(&token, 1500)))?;
            ensure(bad.code == 1, || {
                format!("one changed payload byte must be invalid (exit 1): {}", bad.show(peer, &c.bad))
            })
        })();
        tally.case(&format!("{} [{}]", c.label, peer.version), result);
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

// --- The tests ---------------------------------------------------------------------------

/// cryptohost signs every algorithm in every serialization; each peer verifies it with the SPKI
/// PEM, and the compact one also with cryptohost's JWK. 60 + 20 cases.
#[test]
fn jws_cryptohost_signs_and_the_peers_verify() {
    let test = "jws_cryptohost_signs_and_the_peers_verify";
    let Some(peers) = peers_or_skip(test) else { return };
    let setup = Setup::new();
    let payload = setup.write("payload.bin", PAYLOAD);
    let publics: BTreeMap<&str, (PathBuf, PathBuf, Value)> =
        KEY_TYPES.iter().map(|(kt, alg)| (*kt, setup.sim_public(alg))).collect();
    let mut tally = Tally::default();
    // cryptohost's JWS (and a copy with one payload byte changed), or why there is none.
    let mut signed = Vec::new();
    for alg in ALGS {
        for ser in SERIALIZATIONS {
            let key = sim_key(alg);
            let ch = setup.ch(&["jws", "sign", "--key", &key, "--alg", alg, "--serialization", ser, s(&payload)]);
            let token = ch.ok().and_then(|t| {
                shape(&t, ser, alg)?;
                let bad = tamper(&t).ok_or_else(|| format!("no attached payload in cryptohost's JWS: {t}"))?;
                Ok((setup.write(&format!("ch-{alg}-{ser}.jws"), t.as_bytes()), setup.fresh("bad.jws", bad.as_bytes())))
            });
            signed.push((alg, ser, token));
        }
    }
    for peer in &peers {
        let mut checks = Vec::new();
        for (alg, ser, token) in &signed {
            let (pem, jwk, _) = &publics[key_type(alg)];
            let forms: &[(&str, &PathBuf)] =
                if *ser == "compact" { &[("SPKI PEM", pem), ("cryptohost's JWK", jwk)] } else { &[("SPKI PEM", pem)] };
            for (form, key) in forms {
                let label = format!("cryptohost signs {alg} {ser}, {} verifies with the {form}", peer.name);
                match token {
                    Ok((good, bad)) => checks.push(PeerCheck {
                        label,
                        good: args(&["verify", "--key", s(key), "--jws", s(good)]),
                        bad: args(&["verify", "--key", s(key), "--jws", s(bad)]),
                        expect: Expect::Payload(PAYLOAD.to_vec()),
                    }),
                    Err(e) => tally.case(&label, Err(e.clone())),
                }
            }
        }
        peer_checks(&mut tally, peer, setup.dir.path(), checks);
    }
    tally.finish(test, 2 * (30 + 10));
}

/// Each peer signs every algorithm in every serialization with a `cryptohost keygen` key;
/// cryptohost verifies with the SPKI PEM. 60 cases.
#[test]
fn jws_the_peers_sign_and_cryptohost_verifies() {
    let test = "jws_the_peers_sign_and_cryptohost_verifies";
    let Some(peers) = peers_or_skip(test) else { return };
    let setup = Setup::new();
    let payload = setup.write("payload.bin", PAYLOAD);
    let keys: BTreeMap<&str, (PathBuf, PathBuf)> = KEY_TYPES.iter().map(|(kt, alg)| (*kt, setup.keygen(alg))).collect();
    let mut tally = Tally::default();
    for peer in &peers {
        let mut jobs = Vec::new();
        for alg in ALGS {
            for ser in SERIALIZATIONS {
                let kid = format!("{}-{alg}", peer.name);
                let private = &keys[key_type(alg)].0;
                jobs.push((
                    (alg, ser),
                    args(&[
                        "sign",
                        "--alg",
                        alg,
                        "--key",
                        s(private),
                        "--serialization",
                        ser,
                        "--payload",
                        s(&payload),
                        "--kid",
                        &kid,
                    ]),
                ));
            }
        }
        let results = peer.batch(setup.dir.path(), &jobs.iter().map(|(_, j)| j.clone()).collect::<Vec<_>>());
        for (((alg, ser), job), out) in jobs.iter().zip(&results) {
            let label = format!("{} signs {alg} {ser}, cryptohost verifies with the SPKI PEM", peer.name);
            let result = (|| {
                ensure(out.code == 0, || format!("the peer could not sign: {}", out.show(peer, job)))?;
                let token = out.stdout.trim();
                shape(token, ser, alg)?;
                let bad = tamper(token).ok_or_else(|| format!("no attached payload in the peer's JWS: {token}"))?;
                let good = setup.fresh(&format!("{}-{alg}-{ser}.jws", peer.name), token.as_bytes());
                let bad = setup.fresh("bad.jws", bad.as_bytes());
                let public = s(&keys[key_type(alg)].1);
                setup.jws_verifies(&["--pub", public], &["--pub", public], &good, &bad, PAYLOAD)
            })();
            tally.case(&label, result);
        }
    }
    tally.finish(test, 2 * 30);
}

/// RFC 7797 (b64 false, crit ["b64"]) for ES256 and RS256, compact detached and flattened, both
/// ways. 16 cases. Both peers support it, with limits outside this matrix: jwcrypto cannot
/// verify an *attached* unencoded compact JWS (`JWS.deserialize` in jwcrypto/jws.py base64url-
/// decodes the compact payload part whatever b64 says: "Invalid format"), and jose's
/// `CompactSign` refuses b64 false ("use the flattened module for creating JWS with b64:
/// false", jose's lib/jws_sign.js) while `FlattenedSign` leaves the unencoded payload out of
/// what it returns: peer.mjs attaches it, or writes the compact form from the flattened one.
#[test]
fn rfc7797_unencoded_payloads_both_ways() {
    let test = "rfc7797_unencoded_payloads_both_ways";
    let Some(peers) = peers_or_skip(test) else { return };
    let setup = Setup::new();
    let payload = setup.write("unencoded.txt", UNENCODED.as_bytes());
    let mut changed = UNENCODED.as_bytes().to_vec();
    flip_first(&mut changed);
    let changed = setup.write("unencoded-changed.txt", &changed);
    let unencoded_header = |token: &str| -> Result<(), String> {
        let h = &protected_headers(token)[0];
        ensure(h["b64"] == json!(false) && h["crit"] == json!(["b64"]), || {
            format!("the protected header is not b64 false with crit [\"b64\"]: {h}")
        })
    };
    let mut tally = Tally::default();
    const FORMS: [&str; 2] = ["compact detached", "flattened"];

    // cryptohost signs, each peer verifies.
    let mut signed = Vec::new();
    for alg in ["ES256", "RS256"] {
        let (pem, _, _) = setup.sim_public(alg);
        for form in FORMS {
            let key = sim_key(alg);
            let mut a = vec!["jws", "sign", "--key", &key, "--alg", alg, "--b64=false"];
            a.extend_from_slice(if form == "flattened" { &["--serialization", "flattened"] } else { &["--detached"] });
            a.push(s(&payload));
            let token = setup.ch(&a).ok().and_then(|t| {
                unencoded_header(&t)?;
                shape(&t, if form == "flattened" { "flattened" } else { "compact" }, alg)?;
                let good = setup.write(&format!("ch-{alg}-{}.jws", form.replace(' ', "-")), t.as_bytes());
                let bad = if form == "flattened" {
                    setup.fresh("bad.jws", tamper(&t).ok_or("no attached payload in cryptohost's JWS")?.as_bytes())
                } else {
                    ensure(t.trim().split('.').nth(1) == Some(""), || format!("not detached: {t}"))?;
                    good.clone()
                };
                Ok((good, bad))
            });
            signed.push((alg, form, pem.clone(), token));
        }
    }
    for peer in &peers {
        let mut checks = Vec::new();
        for (alg, form, pem, token) in &signed {
            let label = format!("cryptohost signs {alg} unencoded {form}, {} verifies", peer.name);
            match token {
                Ok((good, bad)) => {
                    let (mut g, mut b) = (
                        args(&["verify", "--key", s(pem), "--unencoded", "--jws", s(good)]),
                        args(&["verify", "--key", s(pem), "--unencoded", "--jws", s(bad)]),
                    );
                    if *form == "compact detached" {
                        g.extend(args(&["--detached", s(&payload)]));
                        b.extend(args(&["--detached", s(&changed)]));
                    }
                    checks.push(PeerCheck {
                        label,
                        good: g,
                        bad: b,
                        expect: Expect::Payload(UNENCODED.as_bytes().to_vec()),
                    });
                }
                Err(e) => tally.case(&label, Err(e.clone())),
            }
        }
        peer_checks(&mut tally, peer, setup.dir.path(), checks);
    }

    // Each peer signs with a keygen key, cryptohost verifies.
    let keys: BTreeMap<&str, (PathBuf, PathBuf)> =
        ["ES256", "RS256"].iter().map(|alg| (key_type(alg), setup.keygen(alg))).collect();
    for peer in &peers {
        let mut jobs = Vec::new();
        for alg in ["ES256", "RS256"] {
            let private = &keys[key_type(alg)].0;
            for form in FORMS {
                let mut job =
                    args(&["sign", "--alg", alg, "--key", s(private), "--payload", s(&payload), "--unencoded"]);
                job.extend(if form == "flattened" {
                    args(&["--serialization", "flattened"])
                } else {
                    args(&["--serialization", "compact", "--detached"])
                });
                jobs.push(((alg, form), job));
            }
        }
        let results = peer.batch(setup.dir.path(), &jobs.iter().map(|(_, j)| j.clone()).collect::<Vec<_>>());
        for (((alg, form), job), out) in jobs.iter().zip(&results) {
            let label = format!("{} signs {alg} unencoded {form}, cryptohost verifies", peer.name);
            let result = (|| {
                ensure(out.code == 0, || format!("the peer could not sign: {}", out.show(peer, job)))?;
                let token = out.stdout.trim();
                unencoded_header(token)?;
                shape(token, if *form == "flattened" { "flattened" } else { "compact" }, alg)?;
                let public = s(&keys[key_type(alg)].1);
                let good = setup.fresh(&format!("{}-{alg}-unencoded.jws", peer.name), token.as_bytes());
                if *form == "flattened" {
                    let bad = tamper(token).ok_or_else(|| format!("no attached payload in the peer's JWS: {token}"))?;
                    let bad = setup.fresh("bad.jws", bad.as_bytes());
                    setup.jws_verifies(&["--pub", public], &["--pub", public], &good, &bad, UNENCODED.as_bytes())
                } else {
                    ensure(token.split('.').nth(1) == Some(""), || format!("not detached: {token}"))?;
                    setup.jws_verifies(
                        &["--pub", public, "--detached", s(&payload)],
                        &["--pub", public, "--detached", s(&changed)],
                        &good,
                        &good,
                        UNENCODED.as_bytes(),
                    )
                }
            })();
            tally.case(&label, result);
        }
    }
    tally.finish(test, 16);
}

/// Thumbprints and JWK members agree for every key type (10 cases), and each peer's JWK of a
/// keygen public key verifies that peer's compact JWS as cryptohost's `--pub` (20 cases).
#[test]
fn jwk_thumbprints_agree_and_the_peers_jwks_verify_in_cryptohost() {
    let test = "jwk_thumbprints_agree_and_the_peers_jwks_verify_in_cryptohost";
    let Some(peers) = peers_or_skip(test) else { return };
    let setup = Setup::new();
    let payload = setup.write("payload.bin", PAYLOAD);
    let publics: BTreeMap<&str, (PathBuf, PathBuf, Value)> =
        KEY_TYPES.iter().map(|(kt, alg)| (*kt, setup.sim_public(alg))).collect();
    let keys: BTreeMap<&str, (PathBuf, PathBuf)> = KEY_TYPES.iter().map(|(kt, alg)| (*kt, setup.keygen(alg))).collect();
    let thumbprint = |key: &Path| -> Result<String, String> {
        let out = setup.ch(&["trust", "fingerprint", "--json", s(key)]).ok()?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        v["jwk_thumbprint"].as_str().map(str::to_string).ok_or_else(|| format!("no jwk_thumbprint: {out}"))
    };
    let members = |jwk: &Value| -> BTreeMap<String, Value> {
        ["kty", "crv", "x", "y", "n", "e"]
            .iter()
            .filter_map(|m| jwk.get(*m).map(|v| (m.to_string(), v.clone())))
            .collect()
    };
    let mut tally = Tally::default();
    for peer in &peers {
        // One batch: for each key type, the peer's thumbprints of cryptohost's PEM and JWK, its
        // JWK of cryptohost's PEM, its JWK and thumbprint of the keygen public key; then its
        // compact JWS for every algorithm.
        let mut jobs = Vec::new();
        for (kt, _) in KEY_TYPES {
            let (pem, jwk, _) = &publics[kt];
            let keygen_pub = &keys[kt].1;
            jobs.push(args(&["thumbprint", "--key", s(pem)]));
            jobs.push(args(&["thumbprint", "--key", s(jwk)]));
            jobs.push(args(&["jwk", "--key", s(pem)]));
            jobs.push(args(&["jwk", "--key", s(keygen_pub)]));
            jobs.push(args(&["thumbprint", "--key", s(keygen_pub)]));
        }
        for alg in ALGS {
            let private = &keys[key_type(alg)].0;
            jobs.push(args(&[
                "sign",
                "--alg",
                alg,
                "--key",
                s(private),
                "--serialization",
                "compact",
                "--payload",
                s(&payload),
            ]));
        }
        let results = peer.batch(setup.dir.path(), &jobs);
        let mut peer_jwks = BTreeMap::new();
        for (i, (kt, _)) in KEY_TYPES.iter().enumerate() {
            let r = &results[5 * i..5 * i + 5];
            let j = &jobs[5 * i..5 * i + 5];
            let (pem, _, ch_jwk) = &publics[kt];
            let label = format!("{kt}: thumbprints and JWK members, cryptohost and {}", peer.name);
            let result = (|| {
                for (out, job) in r.iter().zip(j) {
                    ensure(out.code == 0, || out.show(peer, job))?;
                }
                let ours = thumbprint(pem)?;
                ensure(ch_jwk["kid"] == json!(ours), || {
                    format!("cryptohost's JWK kid {} is not its thumbprint {ours}", ch_jwk["kid"])
                })?;
                for (out, job) in r[..2].iter().zip(j) {
                    ensure(out.stdout.trim() == ours, || {
                        format!("cryptohost's thumbprint is {ours}; {}", out.show(peer, job))
                    })?;
                }
                let theirs: Value =
                    serde_json::from_str(r[2].stdout.trim()).map_err(|e| format!("{e}: {}", r[2].stdout))?;
                ensure(members(&theirs) == members(ch_jwk), || {
                    format!("the peer's JWK of cryptohost's PEM {theirs} differs from cryptohost's JWK {ch_jwk}")
                })?;
                // The keygen public key: the peer's JWK, read by cryptohost, has the thumbprint
                // the peer computes, and the one cryptohost gives the PEM.
                let peer_jwk = setup.write(&format!("{}-{kt}.jwk", peer.name), r[3].stdout.trim().as_bytes());
                let of_jwk = thumbprint(&peer_jwk)?;
                let of_pem = thumbprint(&keys[kt].1)?;
                let peer_thumb = r[4].stdout.trim();
                ensure(of_jwk == peer_thumb && of_pem == peer_thumb, || {
                    format!(
                        "keygen public key: the peer's thumbprint {peer_thumb}, cryptohost's of the peer's JWK {of_jwk}, of the PEM {of_pem}"
                    )
                })?;
                peer_jwks.insert(*kt, peer_jwk);
                Ok(())
            })();
            tally.case(&label, result);
        }
        for (i, alg) in ALGS.iter().enumerate() {
            let (out, job) = (&results[25 + i], &jobs[25 + i]);
            let label =
                format!("{} signs {alg} compact, cryptohost verifies with the {} JWK as --pub", peer.name, peer.name);
            let result = (|| {
                let jwk = peer_jwks.get(key_type(alg)).ok_or("no JWK from the peer for this key type (above)")?;
                ensure(out.code == 0, || format!("the peer could not sign: {}", out.show(peer, job)))?;
                let token = out.stdout.trim();
                shape(token, "compact", alg)?;
                let bad = tamper(token).ok_or_else(|| format!("no attached payload in the peer's JWS: {token}"))?;
                let good = setup.fresh(&format!("{}-{alg}.jws", peer.name), token.as_bytes());
                let bad = setup.fresh("bad.jws", bad.as_bytes());
                setup.jws_verifies(&["--pub", s(jwk)], &["--pub", s(jwk)], &good, &bad, PAYLOAD)
            })();
            tally.case(&label, result);
        }
    }
    tally.finish(test, 2 * (5 + 10));
}

/// JWTs both ways for every algorithm, claims equal. 40 cases.
#[test]
fn jwt_both_ways_with_equal_claims() {
    let test = "jwt_both_ways_with_equal_claims";
    let Some(peers) = peers_or_skip(test) else { return };
    let setup = Setup::new();
    let (iss, aud) = ("https://issuer.interop.example", "cryptohost-interop");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "iss": iss,
        "aud": aud,
        "sub": "alice",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "jti": "interop-1",
        "name": "Zo\u{eb} \u{2019}quoted\u{2019}",
        "roles": ["signer", "verifier"],
        "nested": {"k": [1, 2.5, true, null]},
    });
    let claims_file = setup.write("claims.json", claims.to_string().as_bytes());
    // One changed payload byte: "alice" becomes "alicf", so the claims stay JSON and only the
    // signature can tell.
    let tamper_claims = |jwt: &str| {
        tamper_with(jwt, |b| {
            let i = b.windows(5).position(|w| w == b"alice").expect("the sub claim");
            b[i + 4] ^= 3;
        })
    };
    // A compact JWS of `alg` with typ JWT.
    let jwt_shape = |token: &str, alg: &str| -> Result<(), String> {
        shape(token, "compact", alg)?;
        let h = &protected_headers(token)[0];
        ensure(h["typ"] == json!("JWT"), || format!("typ is not JWT: {h}"))
    };
    let mut tally = Tally::default();

    // cryptohost issues, each peer verifies.
    let mut issued = Vec::new();
    let publics: BTreeMap<&str, PathBuf> = KEY_TYPES.iter().map(|(kt, alg)| (*kt, setup.sim_public(alg).0)).collect();
    for alg in ALGS {
        let key = sim_key(alg);
        let token =
            setup.ch(&["jwt", "sign", "--claims", s(&claims_file), "--key", &key, "--alg", alg]).ok().and_then(|t| {
                jwt_shape(&t, alg)?;
                let bad = tamper_claims(&t).ok_or_else(|| format!("not a compact JWT: {t}"))?;
                Ok((setup.write(&format!("ch-{alg}.jwt"), t.trim().as_bytes()), setup.fresh("bad.jwt", bad.as_bytes())))
            });
        issued.push((alg, token));
    }
    for peer in &peers {
        let mut checks = Vec::new();
        for (alg, token) in &issued {
            let label = format!("cryptohost issues a {alg} JWT, {} verifies", peer.name);
            let pem = s(&publics[key_type(alg)]);
            match token {
                Ok((good, bad)) => checks.push(PeerCheck {
                    label,
                    good: args(&["jwt-verify", "--key", pem, "--jwt", s(good), "--iss", iss, "--aud", aud]),
                    bad: args(&["jwt-verify", "--key", pem, "--jwt", s(bad), "--iss", iss, "--aud", aud]),
                    expect: Expect::Claims(claims.clone()),
                }),
                Err(e) => tally.case(&label, Err(e.clone())),
            }
        }
        peer_checks(&mut tally, peer, setup.dir.path(), checks);
    }

    // Each peer issues with a keygen key, cryptohost verifies.
    let keys: BTreeMap<&str, (PathBuf, PathBuf)> = KEY_TYPES.iter().map(|(kt, alg)| (*kt, setup.keygen(alg))).collect();
    for peer in &peers {
        let jobs: Vec<Vec<String>> = ALGS
            .iter()
            .map(|alg| {
                args(&["jwt-sign", "--alg", alg, "--key", s(&keys[key_type(alg)].0), "--claims", s(&claims_file)])
            })
            .collect();
        let results = peer.batch(setup.dir.path(), &jobs);
        for ((alg, job), out) in ALGS.iter().zip(&jobs).zip(&results) {
            let label = format!("{} issues a {alg} JWT, cryptohost verifies (--iss --aud)", peer.name);
            let result = (|| {
                ensure(out.code == 0, || format!("the peer could not sign: {}", out.show(peer, job)))?;
                let token = out.stdout.trim();
                jwt_shape(token, alg)?;
                let bad = tamper_claims(token).ok_or_else(|| format!("not a compact JWT: {token}"))?;
                let good = setup.fresh(&format!("{}-{alg}.jwt", peer.name), token.as_bytes());
                let bad = setup.fresh("bad.jwt", bad.as_bytes());
                let public = s(&keys[key_type(alg)].1);
                let verify = |t: &Path| setup.ch(&["jwt", "verify", "--pub", public, "--iss", iss, "--aud", aud, s(t)]);
                let ch = verify(&good);
                let said: Option<Value> = serde_json::from_str(ch.stdout.trim()).ok();
                ensure(ch.code == Some(0) && said.as_ref() == Some(&claims), || {
                    format!("{} (the JWT: {token}; the claims: {claims})", ch.show())
                })?;
                let ch = verify(&bad);
                ensure(ch.code == Some(1), || {
                    format!("one changed payload byte must be invalid (exit 1): {}", ch.show())
                })
            })();
            tally.case(&label, result);
        }
    }
    tally.finish(test, 2 * 2 * 10);
}
